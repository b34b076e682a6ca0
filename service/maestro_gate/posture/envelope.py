"""The header every posture report carries, whatever its body."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from maestro_gate.posture.registry_view import Registry
from maestro_gate.posture.window import Window, stamp


def envelope(
    schema: str, registry: Registry, window: Window | None, body: dict[str, Any]
) -> dict[str, Any]:
    """`{schema, generated_at, registry, window, ...body}`: a report, self-describing."""
    return {
        "schema": schema,
        "generated_at": stamp(datetime.now(UTC)),
        "registry": registry.describe(),
        "window": window.describe() if window is not None else None,
        **body,
    }
