"""A rule's reasons cite the threats its METADATA cites.

Each rule of the bundle names its threats twice: in its `# METADATA` block (what `catalog
coverage` and the console count) and in the reason it puts in a decision (what an agent runtime,
the audit log and the posture reports see), through `reason("<rule>", [<threats>], msg)` or an
obligation written out with `"rule"` and `"threats"`. The two lists are kept by hand; this test
keeps them equal, and makes sure every annotated rule is found by one of the two shapes.
"""

from __future__ import annotations

import re
from pathlib import Path

from maestro_gate.core.catalog.annotations import rule_annotations
from tests.conftest import POLICIES

REASON = re.compile(r'reason\(\s*"([A-Z0-9]+\.[a-z0-9_]+)",\s*\[([^\]]*)\]')
# The decision document's own default (maestro/decision): a fail-closed deny, not a layer rule.
UNANNOTATED = {"CL.policy_undefined"}
WRITTEN_OUT = re.compile(r'"rule":\s*"([A-Z0-9]+\.[a-z0-9_]+)",[^}]*?"threats":\s*\[([^\]]*)\]')


def cited_in_reasons(policy_dir: Path) -> dict[str, list[tuple[str, frozenset[str]]]]:
    """Rule id to (file, threats) of every reason that names it, outside `_test.rego` files."""
    found: dict[str, list[tuple[str, frozenset[str]]]] = {}
    for path in sorted(policy_dir.rglob("*.rego")):
        if path.name.endswith("_test.rego"):
            continue
        text = path.read_text()
        for match in (*REASON.finditer(text), *WRITTEN_OUT.finditer(text)):
            threats = frozenset(re.findall(r'"(T\d+)"', match.group(2)))
            found.setdefault(match.group(1), []).append((path.name, threats))
    return found


def test_every_reason_cites_the_threats_of_its_rule_s_metadata() -> None:
    annotated: dict[str, set[str]] = {}
    for annotation in rule_annotations(POLICIES):
        annotated.setdefault(annotation.rule, set()).update(annotation.threats)
    reasons = {r: s for r, s in cited_in_reasons(POLICIES).items() if r not in UNANNOTATED}
    assert set(annotated) <= set(reasons), (
        f"rules with no reason found: {set(annotated) - set(reasons)}"
    )
    assert set(reasons) <= set(annotated), (
        f"reasons with no METADATA: {set(reasons) - set(annotated)}"
    )
    wrong = [
        f"{file}: {rule} cites {sorted(threats)}, its METADATA {sorted(annotated[rule])}"
        for rule, sites in reasons.items()
        for file, threats in sites
        if threats != annotated[rule]
    ]
    assert not wrong, "\n".join(wrong)


def test_a_reason_citing_another_threat_list_is_caught(tmp_path: Path) -> None:
    """The check reads what it claims to: a copy of one layer with one threat dropped fails."""
    layer = POLICIES / "maestro/layers/cross_layer/policy.rego"
    text = layer.read_text()
    assert 'reason("CL.unknown_request_kind", ["T24"]' in text
    (tmp_path / "policy.rego").write_text(
        text.replace(
            'reason("CL.unknown_request_kind", ["T24"]', 'reason("CL.unknown_request_kind", []'
        )
    )
    sites = dict(cited_in_reasons(tmp_path))["CL.unknown_request_kind"]
    assert ("policy.rego", frozenset()) in sites
