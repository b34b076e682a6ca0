"""Conversion of a JSON document into a regopy `Input`: correct for every string, and fast.

rego-cpp holds strings in their JSON-escaped, quoted form. regopy's own `Input(value)` passes
Python strings raw, so a string with a quote, backslash or control character in the input
compared unequal to the same Rego literal and broke the JSON of any result that echoed it. Here
every string (value or key) is passed JSON-encoded, as rego-cpp's own literals are.

It is also the hot path: regopy's walk copied each string into a fresh ctypes buffer through
Python wrappers and cost more than the evaluation; this drives the C stack-machine calls
(`regoInput*`) directly and reuses the encodings of object keys, which repeat on every request.
"""

from __future__ import annotations

import json
from typing import Any

import regopy
from regopy.rego_shared import rego as _lib

from maestro_gate.core.errors import EngineError

_KEY_CACHE: dict[str, bytes] = {}
_KEY_CACHE_MAX = 4096


def to_input(value: Any) -> regopy.Input:
    """A regopy Input holding `value` (JSON types only); raise EngineError on a C API failure."""
    handle = _lib.regoNewInput()
    try:
        _push(handle, value)
    except BaseException:
        _lib.regoFreeInput(handle)
        raise
    made = regopy.Input.__new__(regopy.Input)
    made._impl = handle
    return made


def _encode(text: str) -> bytes:
    if '"' in text or "\\" in text or not text.isprintable():
        return json.dumps(text, ensure_ascii=False).encode()
    return b'"' + text.encode() + b'"'


def _key(text: str) -> bytes:
    cached = _KEY_CACHE.get(text)
    if cached is None:
        cached = _encode(text)
        if len(_KEY_CACHE) < _KEY_CACHE_MAX:
            _KEY_CACHE[text] = cached
    return cached


def _push(handle: int, value: Any) -> None:
    string, item, obj, array = (
        _lib.regoInputString,
        _lib.regoInputObjectItem,
        _lib.regoInputObject,
        _lib.regoInputArray,
    )
    failed = 0
    if isinstance(value, dict):
        for key, child in value.items():
            failed |= string(handle, _key(key))
            _push(handle, child)
            failed |= item(handle)
        failed |= obj(handle, len(value))
    elif isinstance(value, str):
        failed |= string(handle, _encode(value))
    elif value is True or value is False:
        failed |= _lib.regoInputBoolean(handle, value)
    elif isinstance(value, int):
        failed |= _lib.regoInputInt(handle, value)
    elif isinstance(value, float):
        failed |= _lib.regoInputFloat(handle, value)
    elif value is None:
        failed |= _lib.regoInputNull(handle)
    elif isinstance(value, list | tuple):
        for child in value:
            _push(handle, child)
        failed |= array(handle, len(value))
    else:
        raise EngineError(f"cannot pass a {type(value).__name__} to the policy engine")
    if failed:
        raise EngineError("the policy engine refused the input document")
