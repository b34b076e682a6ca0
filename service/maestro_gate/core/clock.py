"""UTC timestamps as audit records and log lines write them, formatted once a second.

`datetime.now(UTC).isoformat()` builds a datetime and formats every field on each call; the
date and time of day change once a second, so here they are formatted once per second and only
the microseconds per call. The text is the same for the same instant: `datetime.now` and
`time.time_ns` read the same system clock, and `datetime.now` floors it to the microsecond.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime

_NS_PER_SECOND = 1_000_000_000


@functools.lru_cache(maxsize=4)
def _second(epoch_second: int) -> str:
    """`YYYY-MM-DDTHH:MM:SS` of a whole UTC second."""
    return datetime.fromtimestamp(epoch_second, UTC).replace(tzinfo=None).isoformat()


def iso_microseconds(ns: int) -> str:
    """`isoformat(timespec="microseconds")` of the UTC instant `ns` nanoseconds after the epoch."""
    second, nanos = divmod(ns, _NS_PER_SECOND)
    return f"{_second(second)}.{nanos // 1000:06d}+00:00"


def iso_z(ns: int) -> str:
    """`isoformat()` of that instant with `Z` for `+00:00`, as structlog's UTC TimeStamper writes.

    Like `isoformat()`, it leaves out the fraction when the microseconds are zero.
    """
    second, nanos = divmod(ns, _NS_PER_SECOND)
    micros = nanos // 1000
    return f"{_second(second)}.{micros:06d}Z" if micros else f"{_second(second)}Z"
