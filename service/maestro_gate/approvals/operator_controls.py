"""Operator controls as a service: read them, and change them audit first.

Every change is written to the audit trail first (`mode_changed`, `emergency_stop_added`,
`emergency_stop_lifted`), then persisted in the approvals database (so it survives a restart
and reaches other replicas), then applied to the decision point at once (`ControlsSync.tick`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from maestro_gate.approvals.sync import ControlsSync
from maestro_gate.core.decision.controls import Controls, Stop, StopKind
from maestro_gate.core.decision.decisions import Mode
from maestro_gate.core.errors import NotFound, NotReady

EventSink = Callable[[str, str | None, dict[str, Any]], Awaitable[object]]


class OperatorControls:
    """The enforcement mode and emergency stops: the ones in force, and audited changes."""

    def __init__(
        self, current: Callable[[], Controls], sync: ControlsSync | None, events: EventSink
    ) -> None:
        self._current = current
        self._sync = sync
        self._events = events

    def current(self) -> Controls:
        """The controls in force now."""
        return self._current()

    async def set_mode(self, mode: Mode, shadow_layers: frozenset[str], by: str) -> Controls:
        """Audit, persist and apply a new mode."""
        after = {"mode": mode, "shadow_layers": sorted(shadow_layers)}
        detail = {"from": self.current().mode_view(), "to": after, "by": by}
        await self._events("mode_changed", None, detail)
        sync = self._required()
        await sync.store.save_mode(mode, shadow_layers)
        return await sync.tick()

    async def add_stop(self, stop: Stop) -> Controls:
        """Audit, persist and apply an emergency stop."""
        subject = stop.id if stop.kind == "agent" else None
        await self._events("emergency_stop_added", subject, stop_view(stop))
        sync = self._required()
        await sync.store.add_stop(stop)
        return await sync.tick()

    async def lift_stop(self, kind: StopKind, id: str, by: str) -> Controls:
        """Audit, persist and apply the lifting of a stop; NotFound when there is none."""
        sync = self._required()
        current = await sync.tick()
        if not any(s.kind == kind and s.id == id for s in current.stops):
            raise NotFound(f"no emergency stop for {kind} {id}")
        detail = {"kind": kind, "id": id, "by": by}
        await self._events("emergency_stop_lifted", id if kind == "agent" else None, detail)
        await sync.store.remove_stop(kind, id)
        return await sync.tick()

    def _required(self) -> ControlsSync:
        if self._sync is None:
            raise NotReady("operator controls are not configured")
        return self._sync


def stop_view(stop: Stop) -> dict[str, Any]:
    """One stop as the API and the audit event show it."""
    return {"kind": stop.kind, "id": stop.id, "by": stop.by, "at": stop.at, "reason": stop.reason}
