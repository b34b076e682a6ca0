"""Reading a JSON body safely: a size cap enforced while streaming, and a nesting cap.

The stdlib parser is used on purpose: it keeps integers exact (a faster parser turned integers
past 64 bits into floats, silently changing what was asked), and NaN/Infinity are refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from fastapi import Request

from maestro_gate.core.errors import InvalidRequest, RequestTooDeep, RequestTooLarge


async def read_json(request: Request, max_bytes: int, max_depth: int) -> Any:
    """The parsed body; 413 past `max_bytes`, 400 for bad JSON or nesting past `max_depth`."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise RequestTooLarge(f"request body exceeds {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise RequestTooLarge(f"request body exceeds {max_bytes} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise InvalidRequest("request body is empty; a JSON object is required")
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise RequestTooDeep(f"request body nests deeper than {max_depth} levels") from None
    except ValueError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
    if depth_exceeds(value, max_depth):
        raise RequestTooDeep(f"request body nests deeper than {max_depth} levels")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def depth_exceeds(value: Any, limit: int) -> bool:
    """True when containers nest more than `limit` levels (iterative: no recursion limit)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Iterable[Any] = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False
