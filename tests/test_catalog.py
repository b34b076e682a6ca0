"""The MAESTRO catalog: schema-valid data, cross-checked references, agreement with the seeds."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from maestro_gate.core.catalog.files import load_catalog, read_documents, schema_path
from maestro_gate.core.catalog.model import DOCUMENTS, Catalog, CatalogError

CATALOG_DIR = Path(__file__).resolve().parents[1] / "catalog"

# Seed 003 (MAESTRO seven layers reference page), per layer: the union of the threats its
# "Threats that target this layer" bullets name and its "Threats at this layer" summary line.
# L3 has bullets only (its summary line is absent although it says 17 threats touch it).
SEED_LAYER_THREATS: dict[str, set[str]] = {
    "l1_foundation_models": {"T1", "T5", "T7", "T17", "T26", "T48"},
    "l2_data_operations": {"T1", "T5", "T12", "T17", "T18", "T27", "T28", "T49"},
    "l3_agent_frameworks": {"T2", "T5", "T6", "T11", "T16"},
    "l4_deployment_infrastructure": {
        *("T3", "T4", "T11", "T13", "T14", "T22", "T33", "T34", "T43"),
    },
    "l5_evaluation_observability": {"T5", "T8", "T10", "T23", "T35", "T44"},
    "l6_security_compliance": {"T3", "T7", "T8", "T10", "T24", "T36", "T45", "T46"},
    "l7_agent_ecosystem": {"T9", "T13", "T14", "T15", "T16", "T25", "T37", "T38", "T47"},
    "cross_layer": {
        *("T1", "T2", "T3", "T4", "T5", "T6", "T7", "T8", "T9", "T12", "T13", "T14", "T15"),
        "T16",
    },
}
SEED_KNOWN = set().union(*SEED_LAYER_THREATS.values())
# Threats seed 003 places nowhere; the OWASP MAS guide v1.0 puts all of them at Agent Frameworks.
MAS_GUIDE_L3 = {"T19", "T20", "T21", "T29", "T30", "T31", "T32", "T39", "T40", "T41", "T42"}

# Seed 003, per layer: the "Mitigations anchored here" list, as catalog ids.
SEED_LAYER_MITIGATIONS: dict[str, set[str]] = {
    "l1_foundation_models": {"model_registry", "signed_aibom", "behavioural_red_teaming"},
    "l2_data_operations": {
        *("memory_content_validation", "memory_anomaly_detection", "memory_poisoning_defence"),
        *("permission_aware_retrieval", "output_provenance_tracking", "data_classification"),
    },
    "l3_agent_frameworks": {
        *("input_sanitisation", "least_privilege_tool_scoping", "plan_vs_goal_validation"),
        *("context_isolation", "mcp_response_sanitisation", "reflection_loop_depth_cap"),
        "code_generation_review_gate",
    },
    "l4_deployment_infrastructure": {
        *("sandboxing", "nhi_lifecycle", "per_agent_quota_budgets", "rbac_abac"),
        *("time_bounded_privilege", "workload_identity", "policy_bound_autonomy"),
    },
    "l5_evaluation_observability": {
        *("behavioural_divergence_monitoring", "goal_consistency_monitoring"),
        *("multi_source_verification", "human_dual_control", "plan_vs_goal_validation"),
        *("legal_hold_worm_retention", "sigstore_signing"),
    },
    "l6_security_compliance": {
        *("rbac_abac", "nhi_lifecycle", "open_policy_agent", "policy_bound_autonomy"),
        *("trust_scoring", "behavioural_red_teaming", "mfa_high_privilege", "emergency_stop"),
    },
    "l7_agent_ecosystem": {
        *("workload_identity", "message_signing", "trust_scoring", "multi_agent_consensus"),
        *("tool_description_validation", "insider_threat_program", "restricted_link_rendering"),
    },
    "cross_layer": {
        *("multi_agent_consensus", "behavioural_anomaly_isolation"),
        *("identity_behaviour_monitoring", "output_egress_dlp"),
    },
}

# OWASP Top 10 for Agentic Applications 2026, Appendix A mapping to T&M v1.1 (reference B.3).
ASI_THREATS = {
    "ASI01": {"T6", "T7"},
    "ASI02": {"T2", "T4", "T16"},
    "ASI03": {"T3"},
    "ASI04": {"T17", "T2", "T11", "T12", "T13", "T16"},
    "ASI05": {"T11"},
    "ASI06": {"T1", "T4", "T6", "T12"},
    "ASI07": {"T12", "T16"},
    "ASI08": {"T5", "T8"},
    "ASI09": {"T7", "T8", "T10"},
    "ASI10": {"T13", "T14", "T15"},
}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    """The project's catalog."""
    return load_catalog(CATALOG_DIR)


@pytest.fixture
def docs() -> dict[str, Any]:
    """The project's catalog documents, parsed and schema-checked, free to mutate."""
    return read_documents(CATALOG_DIR)


@pytest.mark.parametrize("stem", DOCUMENTS)
def test_every_catalog_file_validates_against_its_schema(stem: str) -> None:
    """Each catalog/<stem>.json is valid JSON Schema 2020-12 data for catalog/schema/<stem>."""
    schema = json.loads(schema_path(CATALOG_DIR, stem).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    doc = json.loads((CATALOG_DIR / f"{stem}.json").read_text(encoding="utf-8"))
    assert list(Draft202012Validator(schema).iter_errors(doc)) == []


def test_catalog_has_eight_layers_in_stack_order(catalog: Catalog) -> None:
    """Layers are L1..L7 numbered 1..7 then cross_layer, and only L6 is vertical."""
    assert [(x.code, x.number) for x in catalog.layers] == [
        *((f"L{n}", n) for n in range(1, 8)),
        ("CL", None),
    ]
    assert [x.id for x in catalog.layers if x.vertical] == ["l6_security_compliance"]


def test_threat_ids_are_exactly_t1_to_t49(catalog: Catalog) -> None:
    """The catalog holds T1..T49, each once, in numeric order."""
    assert [t.id for t in catalog.threats] == [f"T{n}" for n in range(1, 50)]


def test_threat_sources_follow_the_owasp_documents(catalog: Catalog) -> None:
    """T1-T15 are from T&M v1.0, T16-T17 v1.1, T18-T47 the MAS guide, T48-T49 Helmwart."""
    expected = dict.fromkeys(range(1, 16), "owasp_tm_v1_0")
    expected |= {16: "owasp_tm_v1_1", 17: "owasp_tm_v1_1", 48: "helmwart_renumbering"}
    expected |= dict.fromkeys(range(18, 48), "owasp_mas_guide_v1_0")
    expected[49] = "helmwart_renumbering"
    assert {int(t.id[1:]): t.source for t in catalog.threats} == expected
    renumbered = {t.id: t.renumbered_from for t in catalog.threats if t.renumbered_from}
    assert renumbered == {"T48": "T16", "T49": "T17"}


@pytest.mark.parametrize("layer_id", list(SEED_LAYER_THREATS))
def test_catalog_places_exactly_the_seed_threats_at_each_layer(
    catalog: Catalog, layer_id: str
) -> None:
    """Of the threats seed 003 places anywhere, a layer holds exactly those it lists there."""
    at_layer = {t.id for t in catalog.threats_at(layer_id)}
    assert at_layer & SEED_KNOWN == SEED_LAYER_THREATS[layer_id]


def test_threats_the_seed_places_nowhere_sit_where_the_mas_guide_puts_them(
    catalog: Catalog,
) -> None:
    """Threats absent from seed 003 are the MAS guide's Agent Frameworks threats, placed at L3."""
    unplaced = {t.id for t in catalog.threats} - SEED_KNOWN
    assert unplaced == MAS_GUIDE_L3
    placed = {t.id: t.layers for t in catalog.threats if t.id in unplaced}
    assert placed == dict.fromkeys(MAS_GUIDE_L3, ("l3_agent_frameworks",))


def test_cross_layer_flag_matches_membership_of_the_cross_layer_category(
    catalog: Catalog,
) -> None:
    """A threat is flagged cross_layer exactly when cross_layer is among its layers."""
    assert all(t.cross_layer == ("cross_layer" in t.layers) for t in catalog.threats)


@pytest.mark.parametrize("layer_id", list(SEED_LAYER_MITIGATIONS))
def test_every_mitigation_seed_003_names_sits_at_its_layer(catalog: Catalog, layer_id: str) -> None:
    """Each mitigation seed 003 anchors at a layer is in the catalog at that layer."""
    assert SEED_LAYER_MITIGATIONS[layer_id] <= {m.id for m in catalog.mitigations_at(layer_id)}


def test_every_mitigation_addresses_existing_threats(catalog: Catalog) -> None:
    """Mitigations cite at least one threat and every cited threat is in the catalog."""
    assert all(m.threats for m in catalog.mitigations)
    assert all(catalog.threat(t) for m in catalog.mitigations for t in m.threats)


def test_asi_crosswalk_matches_the_reference_and_cites_existing_threats(catalog: Catalog) -> None:
    """ASI01..ASI10 map to the Appendix A T-numbers, all of which exist in the catalog."""
    assert {r.id: set(r.threats) for r in catalog.asi} == ASI_THREATS
    assert all(catalog.threat(t) for r in catalog.asi for t in r.threats)
    assert (catalog.asi[0].name, catalog.asi[9].name) == ("Agent Goal Hijack", "Rogue Agents")


def test_concern_crosswalk_maps_the_seven_article_concerns_to_layers(catalog: Catalog) -> None:
    """The seven control concerns of article 000 each map to existing canonical layers."""
    assert [c.id for c in catalog.concerns] == [
        *("infrastructure_placement", "agent_identity", "inter_agent_communication"),
        *("tool_use_governance", "data_flow", "orchestration", "human_oversight"),
    ]
    assert [c.article_number for c in catalog.concerns] == list(range(1, 8))
    assert all(catalog.layer(x) for c in catalog.concerns for x in c.layers)


def _break_threat_layer(d: dict[str, Any]) -> None:
    d["threats"]["threats"][1]["layers"] = ["l3_agent_frameworks", "l9_nowhere"]


def _break_mitigation_threat(d: dict[str, Any]) -> None:
    d["mitigations"]["mitigations"][0]["threats"].append("T99")


def _break_asi_threat(d: dict[str, Any]) -> None:
    d["crosswalk_owasp_asi"]["risks"][2]["threats"] = ["T3", "T50"]


def _break_concern_primary(d: dict[str, Any]) -> None:
    d["crosswalk_concerns"]["concerns"][0]["primary_layer"] = "cross_layer"


def _duplicate_threat(d: dict[str, Any]) -> None:
    d["threats"]["threats"].append(copy.deepcopy(d["threats"]["threats"][0]))


def _break_cross_layer_flag(d: dict[str, Any]) -> None:
    d["threats"]["threats"][0]["cross_layer"] = False


def _drop_layer(d: dict[str, Any]) -> None:
    d["layers"]["layers"] = [x for x in d["layers"]["layers"] if x["id"] != "l7_agent_ecosystem"]


def _drop_document(d: dict[str, Any]) -> None:
    del d["crosswalk_owasp_asi"]


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (_break_threat_layer, "threats[1] (T2).layers.1"),
        (_break_mitigation_threat, "mitigation model_registry: unknown threat 'T99'"),
        (_break_asi_threat, "ASI03: unknown threat 'T50'"),
        (_break_concern_primary, "concern infrastructure_placement: primary_layer is not among"),
        (_duplicate_threat, "duplicate threat id 'T1'"),
        (_break_cross_layer_flag, "threat T1: cross_layer flag disagrees with its layers"),
        (_drop_layer, "threat T9: unknown layer 'l7_agent_ecosystem'"),
        (_drop_document, "missing catalog document(s): crosswalk_owasp_asi"),
    ],
)
def test_broken_catalog_is_rejected_with_a_message_naming_the_fault(
    docs: dict[str, Any], breakage: Any, message: str
) -> None:
    """from_documents raises a ValueError that names the entry and the dangling reference."""
    breakage(docs)
    with pytest.raises(ValueError, match="invalid MAESTRO catalog") as caught:
        Catalog.from_documents(docs)
    assert message in str(caught.value)


def test_load_catalog_reports_schema_violations_by_file_and_path(tmp_path: Path) -> None:
    """A file that breaks its schema is refused with the file name and JSON path of the fault."""
    shutil.copytree(CATALOG_DIR, tmp_path / "catalog")
    path = tmp_path / "catalog" / "threats.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    del doc["threats"][1]["name"]
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(CatalogError) as caught:
        load_catalog(tmp_path / "catalog")
    assert caught.value.problems == ["threats.json $.threats[1]: 'name' is a required property"]


def test_load_catalog_reports_a_missing_file(tmp_path: Path) -> None:
    """A catalog directory without one of its documents is refused, naming the missing file."""
    shutil.copytree(CATALOG_DIR, tmp_path / "catalog")
    (tmp_path / "catalog" / "layers.json").unlink()
    with pytest.raises(CatalogError, match=r"layers\.json: cannot read"):
        load_catalog(tmp_path / "catalog")
