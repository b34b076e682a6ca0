"""Where the reports' inputs come from: bundles and registries on disk, a local engine, the
audit log's window, and Graphviz. The one posture module that touches files and adapters."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from maestro_gate.audit.store import TreeLog
from maestro_gate.core.catalog.annotations import AnnotationError
from maestro_gate.core.catalog.coverage import CoverageReport, coverage_report
from maestro_gate.core.catalog.files import load_answers, load_catalog
from maestro_gate.core.catalog.model import Catalog, CatalogError
from maestro_gate.core.decision.ports import PolicyEngine
from maestro_gate.core.errors import NotReady
from maestro_gate.engine.bundle import Bundle, read_bundle
from maestro_gate.engine.embedded import EmbeddedEngine
from maestro_gate.engine.inprocess import InProcessOpaEngine
from maestro_gate.posture.registry_view import Registry
from maestro_gate.posture.window import Window, collect, first_at_or_after, stamp

LocalEngine = EmbeddedEngine | InProcessOpaEngine


def load_bundle(bundle_dir: Path, registry_file: Path | None = None) -> Bundle:
    """A bundle directory or tarball, with `registry_file` replacing its registry if given.

    Signatures are not checked: a posture report activates nothing, and a candidate bundle
    is often unsigned.
    """
    return read_bundle(bundle_dir, registry_file)


def registry_of(bundle: Bundle) -> Registry:
    """The bundle's registry, naming where it came from."""
    return Registry.of_bundle_data(
        bundle.data, bundle.registry_source, bundle.revision, bundle.digest
    )


@contextmanager
def local_engine(bundle: Bundle, kind: str = "embedded", workers: int = 2) -> Iterator[LocalEngine]:
    """An engine of `kind` (`opa-inprocess`, else the embedded one) with `bundle` loaded."""
    engine: LocalEngine = (
        InProcessOpaEngine(workers=workers)
        if kind == "opa-inprocess"
        else EmbeddedEngine(workers=workers)
    )
    try:
        engine.load(bundle)
        yield engine
    finally:
        engine.close()


def read_window(
    log: TreeLog, since: datetime, until: datetime, max_records: int | None = None
) -> Window:
    """The decision records of `log` inside the window, found by binary search on time; with
    `max_records`, only the window's newest that many records are read, the rest counted."""
    size = log.count()

    def timestamp_at(index: int) -> str:
        [entry] = list(log.rows(index, index + 1))
        return str(orjson.loads(entry.record).get("timestamp", ""))

    start = first_at_or_after(size, timestamp_at, stamp(since))
    bounded = start if max_records is None else max(start, size - max_records)
    window = collect(log.rows(bounded, size), since, until)
    return replace(window, cut_records=bounded - start)


def last_decisions(log: TreeLog, count: int, chunk: int = 4096) -> list[dict[str, Any]]:
    """The log's last `count` decision records, oldest first, read backwards in chunks."""
    found: list[dict[str, Any]] = []
    end = log.count()
    while end > 0 and len(found) < count:
        start = max(0, end - chunk)
        rows = [orjson.loads(entry.record) for entry in log.rows(start, end)]
        found[:0] = [r for r in rows if r.get("type") == "decision"]
        end = start
    return found[-count:] if count else []


def render_svg(dot: str) -> bytes | None:
    """The DOT graph rendered by Graphviz's `dot -Tsvg`, or None when `dot` is not installed."""
    program = shutil.which("dot")
    if program is None:
        return None
    done = subprocess.run(
        [program, "-Tsvg"], input=dot.encode(), capture_output=True, timeout=60, check=True
    )
    return done.stdout


@dataclass(frozen=True)
class PostureSources:
    """What the posture routes read: the enforced policy, the audit log, the bundle's files
    and the MAESTRO catalog."""

    engine: PolicyEngine
    audit: TreeLog
    bundle_dir: Path
    registry_file: Path | None = None
    catalog_dir: Path | None = None


def catalog_coverage(bundle_dir: Path, catalog_dir: Path | None) -> tuple[Catalog, CoverageReport]:
    """The catalog and the bundle's coverage of it (`catalog coverage`); NotReady when the
    bundle is not a directory of annotated Rego or the catalog does not load."""
    try:
        directory = catalog_dir or Path("catalog")
        catalog = load_catalog(directory)
        return catalog, coverage_report(bundle_dir, catalog, load_answers(directory))
    except (CatalogError, AnnotationError) as exc:
        raise NotReady(f"catalog coverage cannot be read: {exc}") from exc
