"""Whether the engine can decide now: not only loaded, but free and answering within its deadline.

An engine can be loaded and still unable to decide: every worker held by evaluations that ran
past their deadline (saturated), or evaluations queueing for longer than the deadline (wedged).
`EngineHealth` tells both apart from a loaded engine:
- **saturated:** the evaluations still running past their deadline (counted by `Admission`,
  whatever engine or thread pool runs them) are at least the engine's workers;
- **wedged:** a probe evaluation, at most one per `interval_s`, did not answer within the
  decision deadline.
`/ready` answers 503 and `maestro_engine_up` is 0 while either holds; both recover by
themselves once the overrunning evaluations end and a probe answers in time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from maestro_gate.core.decision.admission import Admission
from maestro_gate.core.decision.ports import PolicyEngine
from maestro_gate.core.errors import EngineTimeout

# Decided like any request of an unknown kind: a deny from the bundle, cheap on every engine.
PROBE = {"kind": "readiness_probe", "state": {}}


class EngineHealth:
    """Saturation from the admission counts, responsiveness from a rate-limited probe."""

    def __init__(
        self,
        engine: PolicyEngine,
        admission: Admission | None,
        *,
        workers: int,
        timeout_s: float,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.admission = admission
        self.workers = workers
        self.timeout_s = timeout_s
        self.interval_s = interval_s
        self._clock = clock
        self._probed_at: float | None = None
        self._responsive = True

    @property
    def saturated(self) -> bool:
        """Every worker is held by an evaluation running past its deadline."""
        return self.admission is not None and self.admission.overrunning() >= self.workers

    @property
    def responsive(self) -> bool:
        """The last probe answered within the deadline (True before the first)."""
        return self._responsive

    def up(self) -> bool:
        """Neither saturated nor wedged, from what is known now (no probe is run)."""
        return self._responsive and not self.saturated

    async def check(self) -> str | None:
        """None when the engine can decide now, else why not; probes at most once an interval."""
        now = self._clock()
        if self._probed_at is None or now - self._probed_at >= self.interval_s:
            self._probed_at = now
            try:
                await self.engine.evaluate(PROBE, self.timeout_s)
                self._responsive = True
            except EngineTimeout:
                self._responsive = False
            except Exception:
                self._responsive = True
        if self.saturated:
            assert self.admission is not None
            return (
                f"{self.admission.overrunning()} evaluations are running past their deadline,"
                f" holding all {self.workers} engine workers"
            )
        if not self._responsive:
            return f"a probe evaluation did not answer within {self.timeout_s * 1000:.0f} ms"
        return None
