"""Tool arguments against the registry's input_schema (core/decision/arguments.py, T41).

The outcome reaching the policy is tested end to end by the scenario
tests/scenarios/l3_mcp_tool_arguments_off_schema.json (through the engine and /v1/decide) and
by RegistryFacts below, which the wiring hands the DecisionPoint.
"""

from __future__ import annotations

from typing import Any

from maestro_gate.core.decision.arguments import ToolSchemas
from maestro_gate.core.decision.registry import RegistryFacts
from maestro_gate.engine.bundle import read_bundle
from tests.conftest import POLICIES

SCHEMA = {
    "type": "object",
    "required": ["project", "summary"],
    "additionalProperties": False,
    "properties": {"project": {"type": "string"}, "summary": {"type": "string", "maxLength": 5}},
}


def schemas(**tools: Any) -> ToolSchemas:
    """ToolSchemas over a registry whose tools are `tools`."""
    return ToolSchemas({"maestro": {"registry": {"tools": tools}}})


def test_matching_arguments_are_valid() -> None:
    """Arguments the schema accepts give valid with no errors, named for the tool."""
    checked = schemas(jira={"input_schema": SCHEMA}).check("jira", {"project": "A", "summary": "s"})
    assert checked == {"tool": "jira", "valid": True, "errors": []}


def test_each_mismatch_is_named_with_where_it_is() -> None:
    """A missing, an extra and a too-long argument each give a message naming its place."""
    checked = schemas(jira={"input_schema": SCHEMA}).check(
        "jira", {"project": "A", "summary": "too long", "assignee": "x"}
    )
    assert checked is not None
    assert checked["valid"] is False
    assert (
        "arguments: Additional properties are not allowed ('assignee' was unexpected)"
        in (checked["errors"])
    )
    assert "arguments.summary: 'too long' is too long" in checked["errors"]


def test_a_tool_without_a_schema_is_not_checked() -> None:
    """No input_schema on record: None, and the policy's own rules decide."""
    assert schemas(kb={"risk_class": "read"}).check("kb", {"q": 1}) is None
    assert ToolSchemas().check("jira", {}) is None


def test_an_invalid_registry_schema_fails_every_call() -> None:
    """A schema that is not JSON Schema cannot pass anything."""
    checked = schemas(jira={"input_schema": {"type": "no-such-type"}}).check("jira", {})
    assert checked == {
        "tool": "jira",
        "valid": False,
        "errors": ["the registry's input_schema for jira is not a valid JSON Schema"],
    }


def test_messages_carry_no_double_quotes_and_at_most_three_errors() -> None:
    """Messages are printed by the policy's sprintf: double quotes are replaced, three at most."""
    schema = {"type": "object", "properties": {f"a{i}": {"type": "integer"} for i in range(5)}}
    checked = schemas(t={"input_schema": schema}).check("t", {f"a{i}": 'x"y' for i in range(5)})
    assert checked is not None
    assert len(checked["errors"]) == 3
    assert all('"' not in message for message in checked["errors"])


def test_registry_facts_check_the_active_bundles_schemas() -> None:
    """Before a bundle is active nothing is checked; after, the shipped Jira schema is."""
    facts = RegistryFacts()
    assert facts.argument_check("jira_create_issue", {}) is None
    facts.replace(read_bundle(POLICIES).data)
    ok = facts.argument_check("jira_create_issue", {"project": "SEC", "summary": "s"})
    assert ok == {"tool": "jira_create_issue", "valid": True, "errors": []}
    bad = facts.argument_check("jira_create_issue", {"project": "SEC"})
    assert bad is not None
    assert bad["errors"] == ["arguments: 'summary' is a required property"]
