"""The hot path into rego-cpp's C API: set the input, evaluate the compiled bundle, read JSON.

`_rego.evaluate` (engine/_rego.c) does one decision's work in C: it walks the input value and
drives rego-cpp's input stack machine (`regoInput*`) with the library's own functions, sets the
input and evaluates the entrypoint. regopy's own `Input(value)` walks the value through Python
wrappers that copy every string into a fresh ctypes buffer (a session history of 20 entries
took ~450 µs that way), and each of its ctypes calls releases the GIL.

The GIL is released once per decision, for all of rego-cpp's work. Under load each release costs
a wait to take the GIL back behind the event loop and the other workers, which cost far more
than the calls themselves: the calls that read the output are short and go through a `PyDLL`
handle on the same library, which keeps the GIL for the length of the call.

Strings go in raw, as regopy passes them. rego-cpp then does not escape them when it serialises
a result: a result that echoes an input string holding a quote, backslash or control character
is not valid JSON, and the engine adapter turns that into a deny (fail closed). Such a string
also compares unequal to the Rego literal written with escapes. Both are rego-cpp limits,
documented in the README; passing strings JSON-encoded fixes equality but breaks `sprintf`.
A string holding a NUL character is refused (EngineError, so a deny): rego-cpp takes C strings
and would silently cut it short.

The output is read directly, skipping regopy's `Output`, which fetches and parses the result
JSON up to three times. The service's decisions take the same path through engine/_pool.c's
threads, which never hold the GIL (engine/pool.py); `result_of` reads what they return.
"""

from __future__ import annotations

import ctypes
import json
from typing import Any

import regopy
from regopy.rego_shared import rego as _lib

from maestro_gate.core.errors import EngineError
from maestro_gate.engine import _rego, patches

# The same shared library regopy loaded, through a handle whose calls keep the GIL.
_held = ctypes.PyDLL(_lib._name)
for _name in ("regoOutputJSONSize", "regoOutputJSON", "regoOutputOk", "regoFreeOutput"):
    _function = getattr(_held, _name)
    _function.restype = getattr(_lib, _name).restype
    _function.argtypes = getattr(_lib, _name).argtypes


def _address(name: str) -> int:
    return ctypes.cast(getattr(_held, name), ctypes.c_void_p).value or 0


_rego.bind({name: _address(name) for name in _rego.function_names()} | patches.addresses())

# What failed, by the stage `_rego` names.
_FAILED = {
    "refused": "the policy engine refused the input document",
    "input": "the engine refused the input",
    "query": "evaluation failed: the engine returned no output",
    "compile": "the bundle did not compile on an engine worker",
    "memory": "the engine ran out of memory",
    "closed": "the engine's workers were replaced before this evaluation ran",
}


def evaluate(rego: regopy.Interpreter, program: Any, entrypoint: bytes, document: Any) -> Any:
    """Evaluate `entrypoint` of a compiled bundle on `document`; the value, or EngineError."""
    try:
        output, failed, message = _rego.evaluate(rego._impl, program._impl, entrypoint, document)
    except (TypeError, ValueError) as exc:
        raise EngineError(str(exc)) from None
    return result_of(output, failed, message)


def failure(stage: str, message: str = "") -> EngineError:
    """The EngineError for a stage `_rego` reports failed, with rego-cpp's message if any."""
    detail = f": {first_line(message)}" if message.strip() else ""
    return EngineError(_FAILED.get(stage, f"evaluation failed at {stage}") + detail)


def result_of(output: int, failed: str | None, message: str) -> Any:
    """The decision document in a regoOutput (freed here), or EngineError for a failed stage."""
    if failed is not None:
        raise failure(failed, message)
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


def first_line(text: str) -> str:
    """The first lines of an engine message, on one line (rego-cpp's errors run long)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " ".join(lines[:6])[:500]
