"""A local engine: the embedded one or OPA's own in process, serving the bundle directory.

A local engine reads, verifies, checks and compiles the configured bundle itself, so `reload`
is the whole activation: read the bundle (and its signature, when a public key is set), hold
it to the decision contract on a probe engine while `policy check` lints it, compare a signed
revision with the newest the store accepted (no rollback, engine/revision.py), audit an allowed
downgrade, then raise the floor and activate. Any failure keeps the active bundle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from maestro_gate.core.decision.ports import (
    AcceptedRevision,
    BundleInfo,
    EngineResult,
    EngineStatus,
)
from maestro_gate.core.decision.registry import RegistryFacts
from maestro_gate.core.errors import BundleError
from maestro_gate.engine import patches, revision
from maestro_gate.engine.bundle import Bundle, read_bundle
from maestro_gate.engine.bundle_contract import check_contract
from maestro_gate.engine.embedded import EmbeddedEngine
from maestro_gate.engine.inprocess import InProcessOpaEngine

Runner = EmbeddedEngine | InProcessOpaEngine
EventSink = Callable[[str, str | None, dict[str, Any]], Awaitable[object]]


class RevisionFloor(Protocol):
    """Where the newest accepted signed revision is kept (the audit store)."""

    def accepted_revision(self) -> AcceptedRevision | None:
        """The floor, or None before any signed bundle was accepted."""
        ...

    def accept_revision(self, accepted: AcceptedRevision) -> None:
        """Make `accepted` the floor."""
        ...


@dataclass(frozen=True, slots=True)
class BundleSource:
    """Where the bundle is read from, how it is verified, and how often to look for changes."""

    bundle_dir: Path
    registry_file: Path | None = None
    public_key_file: Path | None = None
    signature_scope: str | None = None
    watch_s: float = 0.0


class LocalEngine:
    """ServingEngine over a runner that compiles bundles in this process."""

    def __init__(
        self,
        runner: Runner,
        source: BundleSource,
        *,
        lint: Callable[[Bundle], None],
        floor: RevisionFloor,
        events: EventSink,
        registry: RegistryFacts,
    ) -> None:
        self.name = runner.name
        self.runner = runner
        self.source = source
        self._lint = lint
        self._floor = floor
        self._events = events
        self._registry = registry

    async def start(self) -> None:
        """Nothing to open: the runner's workers exist from construction."""

    async def evaluate(self, document: dict[str, Any], timeout_s: float) -> EngineResult:
        """Evaluate on the runner."""
        return await self.runner.evaluate(document, timeout_s)

    def active_bundle(self) -> BundleInfo | None:
        """The bundle decisions are made with now."""
        return self.runner.active_bundle()

    async def ready(self) -> bool:
        """True when a bundle is active."""
        return await self.runner.ready()

    async def reload(self, *, allow_downgrade: bool = False, by: str | None = None) -> BundleInfo:
        """Read, check and activate the bundle; on failure keep the active one and raise.

        With signing on, a bundle not newer than the newest one the store accepted is refused
        unless `allow_downgrade`; an allowed downgrade is audited (`bundle_downgrade_allowed`,
        naming `by`) before it is activated.
        """
        bundle = await asyncio.to_thread(self._checked)
        verdict = await self._judge(bundle, allow_downgrade)
        if verdict is not None and verdict.downgrade:
            await self._events("bundle_downgrade_allowed", None, downgrade_detail(verdict, by))
        return await asyncio.to_thread(self._activate, bundle, verdict)

    async def close(self) -> None:
        """Stop the workers without waiting for runaway evaluations."""
        self.runner.close()

    def status(self) -> EngineStatus:
        """Loaded or not, the files watched for changes, and the native fixes' state."""
        bundle = self.runner.active_bundle()
        source = self.source
        watched = (source.bundle_dir, source.registry_file) if source.watch_s > 0 else ()
        return EngineStatus(
            name=self.name,
            bundle=bundle,
            up=bundle is not None,
            watched=tuple(p for p in watched if p is not None),
            patches=patches.status() if isinstance(self.runner, EmbeddedEngine) else None,
        )

    def _checked(self) -> Bundle:
        """The configured bundle, read, verified, linted and held to the decision contract."""
        source = self.source
        bundle = read_bundle(
            source.bundle_dir,
            source.registry_file,
            public_key=read_key(source.public_key_file),
            scope=source.signature_scope,
        )
        # The contract compiles and evaluates the bundle on a probe engine while `policy
        # check` lints it; with two cores this hides most of its cost in the reload time.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bundle-contract") as probe:
            contract = probe.submit(check_contract, bundle, self.name)
            self._lint(bundle)
            contract.result()
        return bundle

    async def _judge(self, bundle: Bundle, allow_downgrade: bool) -> revision.Verdict | None:
        """With signing on, the candidate against the store's floor (None with signing off)."""
        if self.source.public_key_file is None:
            return None
        floor = await asyncio.to_thread(self._floor.accepted_revision)
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        return revision.judge(bundle, floor, now, allow_downgrade=allow_downgrade)

    def _activate(self, bundle: Bundle, verdict: revision.Verdict | None) -> BundleInfo:
        """Raise the floor (when signing is on), then activate; a refused load restores it."""
        raised = verdict is not None and verdict.raises_floor
        if verdict is not None and raised:
            self._floor.accept_revision(verdict.candidate)
        try:
            info = self.runner.load(bundle)
        except BaseException:
            if verdict is not None and raised and verdict.floor is not None:
                self._floor.accept_revision(verdict.floor)
            raise
        self._registry.replace(bundle.data)
        return info


def downgrade_detail(verdict: revision.Verdict, by: str | None) -> dict[str, Any]:
    """The `bundle_downgrade_allowed` event: from which accepted bundle to which, and who."""
    floor = verdict.floor
    return {
        "from": {"revision": floor.revision, "digest": floor.digest} if floor else None,
        "to": {"revision": verdict.candidate.revision, "digest": verdict.candidate.digest},
        "by": by,
    }


def read_key(path: Path | None) -> bytes | None:
    """The bundle public key's bytes, or None when none is configured."""
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read the bundle public key {path}: {exc.strerror}") from exc
