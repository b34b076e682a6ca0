"""structlog configuration: one JSON line per event on stdout (stderr for `decide`)."""

from __future__ import annotations

import functools
import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from maestro_gate.core.clock import iso_z


def configure(level: str = "info", stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging to JSON lines on `stream` (stdout) at `level`."""
    numeric = logging.getLevelNamesMapping()[level.upper()]
    out = stream or sys.stdout
    structlog.configure(
        processors=processors(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.WriteLoggerFactory(file=out),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=numeric, stream=out, format="%(message)s", force=True)


def processors() -> list[Processor]:
    """Context variables, level, UTC ISO timestamp, formatted exception, then the JSON line."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        stamp_utc,
        structlog.processors.format_exc_info,
        structlog.processors.JSONRenderer(serializer=dumps),
    ]


def stamp_utc(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """`TimeStamper(fmt="iso", utc=True)`: the same `timestamp`, without a datetime per event."""
    event_dict["timestamp"] = iso_z(time.time_ns())
    return event_dict


def dumps(value: Any, *, default: Callable[[Any], Any]) -> str:
    """`json.dumps(value, default=default)`, without building a JSONEncoder on every call."""
    return _encoder(default).encode(value)


@functools.cache
def _encoder(default: Callable[[Any], Any]) -> json.JSONEncoder:
    return json.JSONEncoder(default=default)
