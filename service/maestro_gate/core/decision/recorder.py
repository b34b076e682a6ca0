"""The one way a record reaches the audit log: appended, timed, and fail closed.

A record that cannot be appended raises `AuditUnavailable`, so whatever was about to happen
because of it (a decision returned, a bundle activated, a vote kept) does not.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import structlog

from maestro_gate.core.clock import iso_microseconds
from maestro_gate.core.decision.ports import AuditLog, AuditReceipt, DecisionMetrics
from maestro_gate.core.errors import AuditUnavailable
from maestro_gate.core.ledger.records import event_record


class AuditRecorder:
    """Appends decision and event records to the audit log, counting each append."""

    def __init__(self, audit: AuditLog, metrics: DecisionMetrics) -> None:
        self.audit = audit
        self.metrics = metrics
        self._log = structlog.get_logger("maestro_gate.decision")

    async def append(self, record: dict[str, Any], decision_id: str) -> AuditReceipt:
        """Append `record` durably; raise AuditUnavailable when the log cannot take it."""
        started = time.perf_counter()
        try:
            receipt = await self.audit.append(record)
        except Exception as exc:
            self.metrics.audit_append(time.perf_counter() - started, failed=True)
            self._log.error("audit_append_failed", decision_id=decision_id, error=str(exc))
            raise AuditUnavailable(
                "the decision could not be written to the audit log; nothing was decided"
            ) from exc
        self.metrics.audit_append(time.perf_counter() - started, failed=False)
        return receipt

    async def event(self, type: str, subject: str | None, detail: dict[str, Any]) -> AuditReceipt:
        """Append a non-decision event record (approvals, admin changes, refused callers)."""
        record = event_record(
            event_id=str(uuid.uuid4()),
            timestamp=iso_microseconds(time.time_ns()),
            type=type,
            subject=subject,
            detail=detail,
        )
        return await self.append(record, record["decision_id"])
