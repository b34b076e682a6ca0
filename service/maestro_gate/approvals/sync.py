"""Keeps the DecisionPoint's controls and pending-approval count in step with the database.

The hot path reads both from memory; this re-reads them at start, after every local change,
and every `MAESTRO_GATE_CONTROLS_REFRESH_S` so that other workers' and replicas' changes (and
expiries) arrive within that interval.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from maestro_gate.approvals.sql import SqlApprovalStore
from maestro_gate.core.decision.controls import Controls
from maestro_gate.periodic import Periodic


class ControlsSync:
    """Applies the stored controls and recounts pending approvals, once now and periodically."""

    def __init__(
        self,
        store: SqlApprovalStore,
        default: Controls,
        apply: Callable[[Controls], None],
        interval_s: float,
    ) -> None:
        self.store = store
        self.default = default
        self._apply = apply
        self._log = structlog.get_logger("maestro_gate.controls")
        self._refresh = Periodic("controls-sync", interval_s, self.tick, self._failed)

    async def start(self) -> None:
        """Open the store, apply what it holds, and start the periodic refresh."""
        await self.store.start()
        await self.tick()
        self._refresh.start()

    async def tick(self) -> Controls:
        """Re-read and apply the controls and the pending count now."""
        controls = await self.store.load(self.default)
        self._apply(controls)
        await self.store.refresh()
        return controls

    async def close(self) -> None:
        """Stop refreshing and close the store."""
        await self._refresh.stop()
        await self.store.close()

    def _failed(self, exc: Exception) -> None:
        self._log.error("controls_refresh_failed", error=f"{type(exc).__name__}: {exc}")
