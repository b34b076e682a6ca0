"""The MAESTRO threat catalog: layers, threats T1..T49, mitigations and three crosswalks.

The catalog is data (`catalog/*.json`); this module is its model and its cross-reference check.
It never opens files: `maestro_gate.core.catalog.files.load_catalog` reads and schema-checks the
documents and hands them to `Catalog.from_documents`.
"""

from __future__ import annotations

from collections import Counter
from functools import cached_property
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

LayerId = Literal[
    "l1_foundation_models",
    "l2_data_operations",
    "l3_agent_frameworks",
    "l4_deployment_infrastructure",
    "l5_evaluation_observability",
    "l6_security_compliance",
    "l7_agent_ecosystem",
    "cross_layer",
]
ThreatSource = Literal[
    "owasp_tm_v1_0", "owasp_tm_v1_1", "owasp_mas_guide_v1_0", "helmwart_renumbering"
]
THREAT_ID_PATTERN = r"^T[1-9][0-9]?$"
SNAKE_PATTERN = r"^[a-z][a-z0-9_]*$"
DOCUMENTS = (
    "layers",
    "threats",
    "mitigations",
    "crosswalk_concerns",
    "crosswalk_owasp_asi",
    "crosswalk_stride",
)


class CatalogError(ValueError):
    """The catalog documents are malformed or refer to missing ids; `problems` lists each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid MAESTRO catalog:\n  " + "\n  ".join(problems))
        self.problems = problems


class Entry(BaseModel):
    """Base for catalog entries: immutable, unknown fields rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


EntryT = TypeVar("EntryT", bound=Entry)


class Layer(Entry):
    """A MAESTRO layer (L1..L7) or the cross-layer category (CL, no number)."""

    id: LayerId
    code: str = Field(pattern=r"^(L[1-7]|CL)$")
    number: int | None = Field(ge=1, le=7)
    name: str = Field(min_length=1)
    vertical: bool
    description: str = Field(min_length=1)


class Threat(Entry):
    """An OWASP agentic threat, the document that defined it and the layers it touches."""

    id: str = Field(pattern=THREAT_ID_PATTERN)
    name: str = Field(min_length=1)
    source: ThreatSource
    layers: tuple[LayerId, ...] = Field(min_length=1)
    cross_layer: bool
    description: str = Field(min_length=1)
    aliases: tuple[str, ...] = ()
    renumbered_from: str | None = Field(default=None, pattern=THREAT_ID_PATTERN)
    note: str | None = None


class Mitigation(Entry):
    """A control named by the seeds, the layers it sits in and the threats it addresses."""

    id: str = Field(pattern=SNAKE_PATTERN)
    name: str = Field(min_length=1)
    layers: tuple[LayerId, ...] = Field(min_length=1)
    threats: tuple[str, ...] = Field(min_length=1)
    named_by: tuple[Literal["maestro_layer_reference", "csa_maestro_article"], ...]
    description: str = Field(min_length=1)


class ControlConcern(Entry):
    """One of the CSA MAESTRO article's seven control concerns and the layers it maps to."""

    id: str = Field(pattern=SNAKE_PATTERN)
    article_number: int = Field(ge=1, le=7)
    name: str = Field(min_length=1)
    primary_layer: LayerId
    layers: tuple[LayerId, ...] = Field(min_length=1)
    description: str = Field(min_length=1)


class AsiRisk(Entry):
    """An OWASP Top 10 for Agentic Applications 2026 risk (ASI01..ASI10) and its T-numbers."""

    id: str = Field(pattern=r"^ASI(0[1-9]|10)$")
    name: str = Field(min_length=1)
    threats: tuple[str, ...] = Field(min_length=1)


class StrideCategory(Entry):
    """A STRIDE category, the question it asks of an orchestrator, and its catalog threats."""

    id: Literal[
        "spoofing",
        "tampering",
        "repudiation",
        "information_disclosure",
        "denial_of_service",
        "elevation_of_privilege",
    ]
    letter: Literal["S", "T", "R", "I", "D", "E"]
    name: str = Field(min_length=1)
    question: str = Field(min_length=1)
    threats: tuple[str, ...] = Field(min_length=1)


class Catalog(Entry):
    """The whole catalog, with every reference between its parts known to resolve."""

    layers: tuple[Layer, ...]
    threats: tuple[Threat, ...]
    mitigations: tuple[Mitigation, ...]
    concerns: tuple[ControlConcern, ...]
    asi: tuple[AsiRisk, ...]
    stride: tuple[StrideCategory, ...] = ()

    @classmethod
    def from_documents(cls, docs: dict[str, Any]) -> Catalog:
        """Build a catalog from the parsed JSON documents keyed by file stem; raise CatalogError.

        `docs` holds `layers`, `threats`, `mitigations`, `crosswalk_concerns`,
        `crosswalk_owasp_asi` and `crosswalk_stride`, each the object stored in
        `catalog/<stem>.json`.
        """
        missing = [name for name in DOCUMENTS if name not in docs]
        if missing:
            raise CatalogError([f"missing catalog document(s): {', '.join(missing)}"])
        parts: dict[str, Any] = {}
        problems: list[str] = []
        for field, doc_name, key, model in (
            ("layers", "layers", "layers", Layer),
            ("threats", "threats", "threats", Threat),
            ("mitigations", "mitigations", "mitigations", Mitigation),
            ("concerns", "crosswalk_concerns", "concerns", ControlConcern),
            ("asi", "crosswalk_owasp_asi", "risks", AsiRisk),
            ("stride", "crosswalk_stride", "categories", StrideCategory),
        ):
            doc = docs[doc_name]
            entries = doc.get(key) if isinstance(doc, dict) else None
            if not isinstance(entries, list):
                problems.append(f"{doc_name}: expected an object with a {key!r} list")
                continue
            parts[field], entry_problems = _parse_entries(doc_name, entries, model)
            problems += entry_problems
        if problems:
            raise CatalogError(problems)
        catalog = cls(**parts)
        problems = catalog.reference_problems()
        if problems:
            raise CatalogError(problems)
        return catalog

    def reference_problems(self) -> list[str]:
        """Every duplicate id, dangling reference or inconsistent flag in the catalog, as text."""
        problems: list[str] = []
        id_lists: dict[str, list[str]] = {
            "layer": [x.id for x in self.layers],
            "threat": [x.id for x in self.threats],
            "mitigation": [x.id for x in self.mitigations],
            "concern": [x.id for x in self.concerns],
            "ASI risk": [x.id for x in self.asi],
            "STRIDE category": [x.id for x in self.stride],
        }
        for kind, ids in id_lists.items():
            counts = Counter(ids)
            problems += [f"duplicate {kind} id {i!r}" for i in sorted(counts) if counts[i] > 1]
        layer_ids = {layer.id for layer in self.layers}
        threat_ids = {threat.id for threat in self.threats}
        for layer in self.layers:
            if (layer.id == "cross_layer") != (layer.number is None):
                problems.append(f"layer {layer.id}: only cross_layer has no number")
            if layer.code != (f"L{layer.number}" if layer.number else "CL"):
                problems.append(f"layer {layer.id}: code {layer.code!r} disagrees with its number")
        for threat in self.threats:
            problems += [
                f"threat {threat.id}: unknown layer {x!r}"
                for x in threat.layers
                if x not in layer_ids
            ]
            if threat.cross_layer != ("cross_layer" in threat.layers):
                problems.append(f"threat {threat.id}: cross_layer flag disagrees with its layers")
        for mit in self.mitigations:
            problems += [
                f"mitigation {mit.id}: unknown layer {x!r}"
                for x in mit.layers
                if x not in layer_ids
            ]
            problems += [
                f"mitigation {mit.id}: unknown threat {t!r}"
                for t in mit.threats
                if t not in threat_ids
            ]
        for concern in self.concerns:
            targets = (concern.primary_layer, *concern.layers)
            problems += [
                f"concern {concern.id}: unknown layer {x!r}" for x in targets if x not in layer_ids
            ]
            if concern.primary_layer not in concern.layers:
                problems.append(f"concern {concern.id}: primary_layer is not among its layers")
        for risk in self.asi:
            problems += [
                f"{risk.id}: unknown threat {t!r}" for t in risk.threats if t not in threat_ids
            ]
        for category in self.stride:
            problems += [
                f"STRIDE {category.id}: unknown threat {t!r}"
                for t in category.threats
                if t not in threat_ids
            ]
        return problems

    @cached_property
    def _layers_by_id(self) -> dict[str, Layer]:
        return {layer.id: layer for layer in self.layers}

    @cached_property
    def _threats_by_id(self) -> dict[str, Threat]:
        return {threat.id: threat for threat in self.threats}

    @cached_property
    def _mitigations_by_id(self) -> dict[str, Mitigation]:
        return {mit.id: mit for mit in self.mitigations}

    def layer(self, layer_id: str) -> Layer | None:
        """The layer with this id, or None."""
        return self._layers_by_id.get(layer_id)

    def threat(self, threat_id: str) -> Threat | None:
        """The threat with this id (e.g. `T2`), or None."""
        return self._threats_by_id.get(threat_id)

    def mitigation(self, mitigation_id: str) -> Mitigation | None:
        """The mitigation with this id, or None."""
        return self._mitigations_by_id.get(mitigation_id)

    def layer_for_code(self, code: str) -> Layer | None:
        """The layer whose rule-id prefix is `code` (`L1`..`L7`, `CL`), or None."""
        return next((layer for layer in self.layers if layer.code == code), None)

    def threats_at(self, layer_id: str) -> tuple[Threat, ...]:
        """The threats the catalog places at this layer, in catalog order."""
        return tuple(t for t in self.threats if layer_id in t.layers)

    def mitigations_at(self, layer_id: str) -> tuple[Mitigation, ...]:
        """The mitigations the catalog places at this layer, in catalog order."""
        return tuple(m for m in self.mitigations if layer_id in m.layers)


def _parse_entries(
    doc_name: str, entries: list[Any], model: type[EntryT]
) -> tuple[tuple[EntryT, ...], list[str]]:
    """Validate each entry, naming the offending one by index and id in every problem."""
    parsed: list[EntryT] = []
    problems: list[str] = []
    for index, entry in enumerate(entries):
        try:
            parsed.append(model.model_validate(entry))
        except ValidationError as exc:
            label = entry.get("id") if isinstance(entry, dict) else None
            where = f"{doc_name}[{index}]" + (f" ({label})" if label else "")
            for error in exc.errors():
                field = ".".join(str(part) for part in error["loc"]) or "entry"
                problems.append(f"{where}.{field}: {error['msg']}")
    return tuple(parsed), problems


class Answer(Entry):
    """The threats and mitigations one entry of `catalog/answers.json` answers."""

    threats: tuple[str, ...] = ()
    mitigations: tuple[str, ...] = ()


class Credit(Answer):
    """Threats and mitigations answered by a gate mechanism rather than a rule, and its proof.

    `tests` are pytest node ids (`tests/test_x.py::test_name`) that exercise the mechanism.
    """

    mechanism: str = Field(min_length=1)
    tests: tuple[str, ...] = Field(min_length=1)


class OutOfReach(Answer):
    """Threats and mitigations a decision point cannot see: why, and the control that would."""

    reason: str = Field(min_length=1)
    control: str = Field(min_length=1)


class Answers(Entry):
    """What answers a threat or mitigation besides the rules: credited mechanisms, out of reach."""

    credited: tuple[Credit, ...] = ()
    out_of_reach: tuple[OutOfReach, ...] = ()

    @classmethod
    def from_document(cls, doc: Any) -> Answers:
        """Build from the parsed `catalog/answers.json`; raise CatalogError on a bad shape."""
        try:
            return cls.model_validate(
                {key: value for key, value in doc.items() if key != "$schema"}
            )
        except (ValidationError, AttributeError) as exc:
            raise CatalogError([f"answers.json: {exc}"]) from exc

    @property
    def entries(self) -> tuple[Answer, ...]:
        """Every credited and out-of-reach entry."""
        return (*self.credited, *self.out_of_reach)

    def problems(self, catalog: Catalog) -> list[str]:
        """Unknown ids, and an id answered twice (it must be in exactly one state)."""
        problems: list[str] = []
        seen: Counter[str] = Counter()
        for entry in self.entries:
            problems += [
                f"answers.json: unknown threat {t!r}"
                for t in entry.threats
                if catalog.threat(t) is None
            ]
            problems += [
                f"answers.json: unknown mitigation {m!r}"
                for m in entry.mitigations
                if catalog.mitigation(m) is None
            ]
            seen.update((*entry.threats, *entry.mitigations))
        problems += [
            f"answers.json: {key} is answered {n} times" for key, n in seen.items() if n > 1
        ]
        return problems
