"""Readable tables of the posture reports, for the terminal (the JSON is the contract)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain left-aligned text table."""
    cells = [[str(h) for h in headers], *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "-"
    if isinstance(value, dict):
        return ",".join(f"{k}:{v}" for k, v in value.items()) or "-"
    return str(value)


def short(agent: object) -> str:
    """The last segment of an agent id."""
    return str(agent).rstrip("/").rsplit("/", 1)[-1]


def header(report: dict[str, Any]) -> str:
    """The report's schema, registry and window in one line."""
    registry = report["registry"]
    window = report.get("window")
    where = f"registry {registry['source']} (bundle {registry['bundle_revision']})"
    if window:
        where += f"; {window['decisions']} decisions {window['since']} .. {window['until']}"
    return f"{report['schema']}: {where}"


def topology(report: dict[str, Any]) -> str:
    """Edges with their status and counts, then the accidental paths."""
    rows = [
        (
            short(e["from"]),
            short(e["to"]),
            e["kind"],
            e["status"],
            e["observed"]["allow"],
            e["observed"]["deny"],
            e["observed"]["require_hitl"],
            e["stopped_by"],
            e["policy"]["decision"] if e["policy"] else None,
        )
        for e in report["edges"]
    ]
    heads = ("from", "to", "kind", "status", "allow", "deny", "hitl", "stopped by", "policy")
    return "\n".join([header(report), table(heads, rows), _bound(report.get("bound"))])


def permissions(report: dict[str, Any]) -> str:
    """Per agent: grants, use, denials; then unused grants by risk and uncovered risky ones."""
    rows = [
        (
            short(a["agent"]),
            len(a["granted"]),
            a["used"],
            {t: d["count"] for t, d in a["denied"].items()},
            [g["tool"] for g in a["unused"]],
        )
        for a in report["agents"]
    ]
    unused = [
        (short(g["agent"]), g["tool"], g["risk"], g["factors"]) for g in report["unused_ranked"]
    ]
    uncovered = [
        (short(g["agent"]), g["tool"], g["risk"], g["factors"]) for g in report["uncovered_risky"]
    ]
    return "\n\n".join(
        [
            header(report),
            table(("agent", "granted", "used", "denied", "unused"), rows),
            "unused grants, riskiest first\n" + table(("agent", "tool", "risk", "factors"), unused),
            "risky grants no HITL or dual-control rule covers\n"
            + table(("agent", "tool", "risk", "factors"), uncovered),
        ]
    )


def classification(report: dict[str, Any]) -> str:
    """The level matrix, the allowed downward moves and what is unclassified."""
    matrix = [
        (m["source_level"], m["destination_level"], m["allow"], m["deny"], m["require_hitl"])
        for m in report["matrix"]
    ]
    downward = [
        (
            d["decision_id"],
            short(d["subject"]),
            d["operation"],
            f"{d['source']['type']}:{d['source']['id']}",
            f"{d['destination']['type']}:{d['destination']['id']}",
            f"{d['from_level']}->{d['to_level']}",
        )
        for d in report["downward_allowed"]
    ]
    unclassified = [(k, v) for k, v in report["unclassified"].items()]
    return "\n\n".join(
        [
            header(report),
            table(("source level", "destination level", "allow", "deny", "hitl"), matrix),
            "allowed downward moves\n"
            + table(("decision", "subject", "operation", "from", "to", "levels"), downward),
            "unclassified\n" + table(("kind", "entries"), unclassified),
        ]
    )


def blast_radius(report: dict[str, Any]) -> str:
    """Everything reached, highest classification first."""
    if "compare" in report:
        return _compare(report)
    rows = [
        (
            i["classification"],
            i["category"],
            i["id"],
            i["operation"],
            i["tenant"],
            i["decision"],
            " > ".join(short(a) for a in i["path"]),
        )
        for i in report["ranked"]
    ]
    heads = ("level", "category", "id", "operation", "tenant", "decision", "path")
    compromised = ", ".join(short(a) for a in report["compromised"])
    return "\n".join(
        [
            header(report),
            f"compromised: {compromised}; highest classification reached: "
            f"{report['highest_classification']}",
            table(heads, rows),
            _bound(report.get("bound")),
        ]
    )


def _bound(bound: dict[str, Any] | None) -> str:
    if not bound:
        return ""
    if bound["complete"]:
        return f"policy asked {bound['evaluations']} times; nothing cut"
    return (
        f"CUT: {bound['cut']} candidates not evaluated (bound: {bound['max_evaluations']} "
        f"evaluations, {bound['max_seconds']} s), e.g. {'; '.join(bound['cut_examples'][:3])}"
    )


def _compare(report: dict[str, Any]) -> str:
    """What a second registry or bundle opens, closes and changes."""
    change = report["compare"]
    rows = [
        ("opens", i["category"], i["id"], i["operation"], i["decision"]) for i in change["opens"]
    ]
    rows += [
        ("closes", i["category"], i["id"], i["operation"], i["decision"]) for i in change["closes"]
    ]
    rows += [
        (
            "changes",
            c["category"],
            c["id"],
            c["operation"],
            f"{c['before']['decision']}->{c['after']['decision']}",
        )
        for c in change["changes"]
    ]
    return "\n".join(
        [report["schema"], table(("change", "category", "id", "operation", "decision"), rows)]
    )


def orchestrator(report: dict[str, Any]) -> str:
    """Per orchestrating agent: each STRIDE category, its rules, denials and status."""
    parts = [header(report)]
    for entry in report["orchestrators"]:
        rows = [
            (
                f"{row['letter']} {row['name']}",
                row["status"],
                len(row["threats"]) - len(row["threats_without_rule"]),
                len(row["threats"]),
                [r["rule"] for r in row["rules"]][:4] + (["…"] if len(row["rules"]) > 4 else []),
                sum(len(r["tests"]) for r in row["rules"]),
                row["denials"],
                row["escalations"],
            )
            for row in entry["stride"]
        ]
        heads = ("category", "status", "enforced", "threats", "rules", "tests", "deny", "hitl")
        parts.append(f"{short(entry['agent'])}\n" + table(heads, rows))
    return "\n\n".join(parts)


def coverage(report: dict[str, Any]) -> str:
    """Per layer and threat: rules, denials, escalations; never-fired told from uncovered."""
    rows = [
        (
            layer["code"],
            t["id"],
            t["name"][:40],
            t["status"],
            len(t["rules"]),
            t["denials"],
            t["escalations"],
        )
        for layer in report["layers"]
        for t in layer["threats"]
    ]
    totals = ", ".join(f"{k} {v}" for k, v in report["totals"].items())
    heads = ("layer", "threat", "name", "status", "rules", "deny", "hitl")
    return "\n".join([header(report), table(heads, rows), totals])


def replay(report: dict[str, Any]) -> str:
    """The totals, then every decision the candidate would decide differently."""
    log = report["log"]
    lines = [
        f"{report['schema']}: candidate {report['registry']['source']} "
        f"(bundle {report['registry']['bundle_revision']}); decisions {log['first_index']}.."
        f"{log['last_index']} of the log",
        f"replayed {report['replayed']} ({report['approximate']} approximate: no recorded state "
        f"or masked input), skipped {report['skipped_gate_decisions']} gate decisions; "
        f"changed {report['changed']}, unchanged {report['unchanged']}; "
        f"{report['per_second']} decisions/s",
    ]
    for title, counts in (
        ("transitions", report["transitions"]),
        ("per rule", report["per_rule"]),
        ("per layer", report["per_layer"]),
    ):
        lines.append(f"{title}: " + (", ".join(f"{k} {v}" for k, v in counts.items()) or "-"))
    rows = [
        (
            c["decision_id"],
            c["index"],
            short(c["subject"]),
            c["kind"],
            f"{c['before']}->{c['after']}",
            ["+" + r for r in c["rules_added"]] + ["-" + r for r in c["rules_removed"]],
        )
        for c in report["changes"]
    ]
    heads = ("decision", "index", "subject", "kind", "change", "rules")
    return "\n".join([*lines, table(heads, rows)])
