"""A tool call's arguments against the JSON Schema the registry holds for the tool (T41).

rego-cpp has no `json.match_schema`, so the gate validates in Python, with the maintained
`jsonschema` library (Draft 2020-12), and hands the policy the outcome as `input.state.arguments`:
`{"tool": <name>, "valid": <bool>, "errors": [<message>, ...]}`. A tool whose registry entry
has an `input_schema` is denied by `L3.tool_argument_schema_mismatch` unless that outcome says
valid for the same tool, so a gate that could not check (an OPA server's registry is not
visible here) fails closed.
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

MAX_ERRORS = 3


class ToolSchemas:
    """The compiled `input_schema` of every registry tool that has one."""

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self._validators: dict[str, Draft202012Validator | None] = (
            compile_schemas(data) if data else {}
        )

    def check(self, tool: str, arguments: Any) -> dict[str, Any] | None:
        """The outcome for `input.state.arguments`, or None when the tool has no schema."""
        if tool not in self._validators:
            return None
        validator = self._validators[tool]
        if validator is None:
            errors = [f"the registry's input_schema for {tool} is not a valid JSON Schema"]
        else:
            found = sorted(validator.iter_errors(arguments), key=lambda e: list(e.path))
            errors = [describe(error) for error in found[:MAX_ERRORS]]
        return {"tool": tool, "valid": not errors, "errors": errors}


def compile_schemas(data: dict[str, Any]) -> dict[str, Draft202012Validator | None]:
    """Tool name to its validator (None for a schema that is not valid JSON Schema)."""
    tools = data.get("maestro", {}).get("registry", {}).get("tools", {})
    if not isinstance(tools, dict):
        return {}
    compiled: dict[str, Draft202012Validator | None] = {}
    for name, entry in tools.items():
        if isinstance(entry, dict) and "input_schema" in entry:
            compiled[name] = _validator(entry["input_schema"])
    return compiled


def describe(error: Any) -> str:
    """One mismatch as a sentence naming where it is: `arguments.<path>: <message>`.

    Double quotes and backslashes become single quotes and slashes: the policy prints the
    message with sprintf, and rego-cpp does not escape them in its JSON output.
    """
    where = ".".join(["arguments", *(str(p) for p in error.path)])
    message = f"{where}: {error.message}"
    return message.replace("\\", "/").replace('"', "'")[:300]


def _validator(schema: Any) -> Draft202012Validator | None:
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError:
        return None
    return Draft202012Validator(schema)
