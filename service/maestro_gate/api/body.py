"""Reading a JSON body strictly: JSON media type, UTF-8, size and nesting caps, one value per key.

The body is decided on exactly as it is audited, so nothing that would change a value on the way
is accepted: a duplicate key (parsers disagree on which copy wins), a number that overflows a
double (`1e400` would become `null`), NaN/Infinity, and a lone UTF-16 surrogate (`"\\ud800"`,
which has no UTF-8 form) are all 400s. The stdlib parser is used on purpose: it keeps integers
exact (a faster parser turned integers past 64 bits into floats), and its `object_pairs_hook`
sees every key, which is how duplicates are found in the same single pass at no measurable cost.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

from starlette.requests import Request

from maestro_gate.api.http_errors import DuplicateKey, UnsupportedMediaType
from maestro_gate.core.errors import InvalidRequest, RequestTooDeep, RequestTooLarge

# A `\uD800`-`\uDFFF` escape: the only way a lone surrogate gets into a str from strict UTF-8.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The body's bytes; 415 unless the media type is JSON, 413 past `max_bytes`."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise RequestTooLarge(f"request body exceeds {max_bytes} bytes")
    check_media_type(request.headers.get("content-type"))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise RequestTooLarge(f"request body exceeds {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def check_media_type(content_type: str | None) -> None:
    """Admit `application/json` and `application/*+json` in UTF-8; 415 for anything else."""
    if content_type is None:
        raise UnsupportedMediaType("Content-Type is required: application/json")
    media, *params = (part.strip().lower() for part in content_type.split(";"))
    kind, _, subtype = media.partition("/")
    if kind != "application" or not (subtype == "json" or subtype.endswith("+json")):
        raise UnsupportedMediaType(f"Content-Type {media!r} is not JSON; send application/json")
    for param in params:
        name, _, value = param.partition("=")
        if name.strip() == "charset" and value.strip().strip('"') not in ("utf-8", "utf8"):
            raise UnsupportedMediaType("the body must be UTF-8 (charset=utf-8)")


def parse_json(raw: bytes, max_depth: int) -> Any:
    """The JSON value of `raw`, refusing (400) what would not be recorded exactly as sent."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(
            f"request body is not UTF-8: {exc.reason} at byte {exc.start}"
        ) from None
    if not text.strip():
        raise InvalidRequest("request body is empty; a JSON object is required")
    try:
        value = json.loads(
            text,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
            object_pairs_hook=_object,
        )
    except RecursionError:
        raise RequestTooDeep(f"request body nests deeper than {max_depth} levels") from None
    except _Duplicate:
        raise _duplicate_error(text) from None
    except ValueError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
    if depth_exceeds(value, max_depth):
        raise RequestTooDeep(f"request body nests deeper than {max_depth} levels")
    if "\\u" in text and _SURROGATE_ESCAPE.search(text):
        _refuse_lone_surrogates(value)
    return value


class _Duplicate(Exception):
    """Raised inside the parser at the first object with a repeated key."""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _Duplicate
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(token: str) -> float:
    value = float(token)
    if math.isinf(value):
        raise InvalidRequest(f"the number {token[:40]} overflows a double; it cannot be recorded")
    return value


class _Pairs(list[tuple[str, Any]]):
    """An object as parsed, repeated keys kept, to say where the first repetition is."""


def _duplicate_error(text: str) -> InvalidRequest:
    """The 400 naming the first repeated key in document order, as a JSON pointer.

    The first parse stopped at the duplicate; this one reads the whole text, so it may find
    the text too deep or not JSON after all, and says so instead.
    """
    try:
        root = json.loads(text, object_pairs_hook=_Pairs, parse_constant=_reject_constant)
    except RecursionError:
        return RequestTooDeep("request body nests too deep to be read")
    except ValueError as exc:
        return InvalidRequest(f"request body is not valid JSON: {exc}")
    stack: list[tuple[Any, str]] = [(root, "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, _Pairs):
            seen: set[str] = set()
            for key, _ in node:
                if key in seen:
                    where = f"{path}/{_escape(key)}"
                    return DuplicateKey(
                        f"key {key!r} appears more than once at {path or '/'}",
                        errors=[
                            {
                                "code": DuplicateKey.code,
                                "message": "duplicate key",
                                "location": where,
                            }
                        ],
                    )
                seen.add(key)
            children: Iterable[tuple[Any, str]] = ((v, f"{path}/{_escape(k)}") for k, v in node)
        elif isinstance(node, list):
            children = ((v, f"{path}/{i}") for i, v in enumerate(node))
        else:
            continue
        stack.extend(reversed(list(children)))
    raise AssertionError("the parser reported a duplicate key that is not there")


def _refuse_lone_surrogates(value: Any) -> None:
    """400 at the first string (key or value) holding an unpaired UTF-16 surrogate."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            for key, child in node.items():
                where = f"{path}/{_escape(key)}"
                if not _encodable(key):
                    _raise_surrogate(where)
                stack.append((child, where))
        elif isinstance(node, list):
            stack.extend((child, f"{path}/{i}") for i, child in enumerate(node))
        elif isinstance(node, str) and not _encodable(node):
            _raise_surrogate(path)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _raise_surrogate(location: str) -> None:
    raise InvalidRequest(
        "a string holds a lone UTF-16 surrogate, which the audit log cannot record",
        errors=[{"code": "lone_surrogate", "message": "lone surrogate", "location": location}],
    )


def _escape(key: str) -> str:
    """`key` as a JSON pointer token; a lone surrogate shown as its escape, so it can be sent."""
    token = key.replace("~", "~0").replace("/", "~1")
    return token if _encodable(token) else token.encode("utf-8", "backslashreplace").decode()


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
