"""The hot path into rego-cpp's C API: build the input, query the compiled bundle, read JSON.

regopy's own `Input(value)` walks the value through Python wrappers that copy every string into
a fresh ctypes buffer; on a decision's input that walk cost more than the evaluation itself.
The input is built by `_input.build` (engine/_input.c), which walks the value in C and drives
rego-cpp's input stack machine (`regoInput*`) with the library's own functions: one Python call
per decision instead of one or two ctypes calls per JSON node (a session history of 20 entries
took ~450 µs through ctypes, ~15 µs this way).

Strings go in raw, as regopy passes them. rego-cpp then does not escape them when it serialises
a result: a result that echoes an input string holding a quote, backslash or control character
is not valid JSON, and the engine adapter turns that into a deny (fail closed). Such a string
also compares unequal to the Rego literal written with escapes. Both are rego-cpp limits,
documented in the README; passing strings JSON-encoded fixes equality but breaks `sprintf`.

`query` skips regopy's `Output`, which fetches and parses the result JSON up to three times.

Only the evaluation call releases the GIL. The input and output calls are short: made through
regopy's `CDLL` handle, each one released the GIL and then queued to take it back behind the
event loop and the other workers, which cost far more than the call itself under load. They go
through a `PyDLL` handle on the same library, which keeps the GIL for the length of the call.
"""

from __future__ import annotations

import ctypes
import json
from typing import Any

import regopy
from regopy.rego_shared import rego as _lib

from maestro_gate.core.errors import EngineError
from maestro_gate.engine import _input

# The same shared library regopy loaded, through a handle whose calls keep the GIL.
_held = ctypes.PyDLL(_lib._name)
for _name in (
    "regoNewInput",
    "regoFreeInput",
    "regoOutputJSONSize",
    "regoOutputJSON",
    "regoOutputOk",
    "regoFreeOutput",
):
    _function = getattr(_held, _name)
    _function.restype = getattr(_lib, _name).restype
    _function.argtypes = getattr(_lib, _name).argtypes


def _address(name: str) -> int:
    return ctypes.cast(getattr(_held, name), ctypes.c_void_p).value or 0


_input.bind(
    *(
        _address(name)
        for name in (
            "regoInputString",
            "regoInputObjectItem",
            "regoInputObject",
            "regoInputArray",
            "regoInputBoolean",
            "regoInputInt",
            "regoInputFloat",
            "regoInputNull",
        )
    )
)


def to_input(value: Any) -> regopy.Input:
    """A regopy Input holding `value` (JSON types only); raise EngineError when it cannot."""
    handle = _held.regoNewInput()
    try:
        _input.build(handle, value)
    except (TypeError, ValueError) as exc:
        _held.regoFreeInput(handle)
        raise EngineError(str(exc)) from None
    except BaseException:
        _held.regoFreeInput(handle)
        raise
    made = regopy.Input.__new__(regopy.Input)
    made._impl = handle
    return made


def query(rego: regopy.Interpreter, program: Any, entrypoint: bytes) -> Any:
    """Evaluate `entrypoint` of a compiled bundle; the parsed value, or EngineError."""
    output = _lib.regoBundleQueryEntrypoint(rego._impl, program._impl, entrypoint)
    if not output:
        raise EngineError("evaluation failed: the engine returned no output")
    try:
        size = _held.regoOutputJSONSize(output)
        buffer = ctypes.create_string_buffer(size)
        if _held.regoOutputJSON(output, buffer, size):
            raise EngineError("evaluation failed: the engine's output could not be read")
        text = buffer.value.decode()
        if not _held.regoOutputOk(output):
            raise EngineError(f"evaluation failed: {' '.join(text.split())[:500]}")
    finally:
        _held.regoFreeOutput(output)
    if text == "undefined":
        raise EngineError("the decision document is undefined for this input")
    try:
        expressions = json.loads(text).get("expressions") or []
    except (ValueError, AttributeError):
        raise EngineError(
            "the engine's result is not valid JSON (rego-cpp does not escape quotes or "
            "backslashes in input strings a policy echoes)"
        ) from None
    if not expressions:
        raise EngineError("the decision document is undefined for this input")
    return expressions[0]
