"""Step 5, blast radius: what an agent assumed compromised can reach, as the policy decides.

Nothing here decides; the engine does. From each compromised agent the walk asks the policy
about every candidate the registry names: each tool, a read and a write of each store (data at
the store's classification and tenant), an export of data at each classification to each
external destination, and a delegation to each other agent. A delegation the policy allows (or
sends to a human) is followed: the delegatee is asked the same questions with the delegation
chain that led to it, its task carrying the scopes the hop keeps (the delegator's held scopes
that the delegatee registers). A hop that keeps no scope hands over no authority and is not
followed. Each (agent, kept scopes) is walked once, nearest first, to `max_depth` hops.

Every reached tool, store, destination and agent is reported with the best answer it got
(allow over require_hitl over deny), the rules behind it and the path; the ranking puts the
highest classification reached first. The prober's bound cuts the walk and says so.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from maestro_gate.posture import probe
from maestro_gate.posture.registry_view import Registry

SCHEMA = "maestro-gate/posture/blast-radius/v1"
ORDER = {"allow": 3, "require_hitl": 2, "deny": 1, "not_evaluated": 0}
REACHING = ("allow", "require_hitl")


@dataclass(frozen=True)
class Step:
    """An agent acting under a delegation chain (empty for the compromised agent itself)."""

    agent: str
    chain: tuple[probe.Hop, ...]
    via_hitl: bool

    @property
    def path(self) -> list[str]:
        """The agents from the compromised one to this one."""
        return [h["delegator"] for h in self.chain] + [self.agent]

    def held(self, registry: Registry) -> set[str]:
        """The scopes the agent holds here: its registered ones, narrowed by its parent hop."""
        scopes = set(registry.scopes(self.agent))
        return scopes & set(self.chain[-1]["scopes"]) if self.chain else scopes


@dataclass(frozen=True)
class Candidate:
    """One question for the policy, and what reaching it would mean."""

    category: str  # tool | store | destination | agent
    target: str
    operation: str
    level: str | None
    tenant: str | None
    request: dict[str, Any]


def candidates(registry: Registry, step: Step) -> list[Candidate]:
    """Every question to ask about `step.agent` acting under `step.chain`."""
    agent, chain = step.agent, list(step.chain)
    found = [
        Candidate(
            "tool",
            tool,
            "call",
            registry.level_of("tool", tool),
            None,
            probe.tool_call(registry, agent, tool, chain),
        )
        for tool in sorted(registry.tools)
    ]
    lowest = registry.levels[0] if registry.levels else "public"
    for store, entry in sorted(registry.stores.items()):
        level = registry.level_of("store", store)
        tenant = entry.get("tenant") if isinstance(entry.get("tenant"), str) else None
        data_level = level or lowest
        read = probe.movement(
            agent, ("store", store), ("agent", agent), "read", data_level, tenant, chain
        )
        write = probe.movement(
            agent, ("agent", agent), ("store", store), "write", data_level, tenant, chain
        )
        found.append(Candidate("store", store, "read", level, tenant, read))
        found.append(Candidate("store", store, "write", level, tenant, write))
    for destination in sorted(registry.destinations):
        for level in registry.levels or [lowest]:
            export = probe.movement(
                agent, ("agent", agent), ("external", destination), "export", level, None, chain
            )
            found.append(Candidate("destination", destination, "export", level, None, export))
    held = step.held(registry)
    visited = set(step.path)
    for other in sorted(registry.agents):
        if other in visited:
            continue
        kept = sorted(held & set(registry.scopes(other)))
        request = probe.delegation(agent, other, kept, chain)
        level = registry.level_of("agent", other)
        found.append(Candidate("agent", other, "delegate", level, None, request))
    return found


@dataclass
class Reached:
    """The best answer one target got, and how."""

    candidate: Candidate
    verdict: probe.Verdict
    step: Step

    def as_json(self, registry: Registry) -> dict[str, Any]:
        """A reached target as the report's schema writes it."""
        c = self.candidate
        return {
            "category": c.category,
            "id": c.target,
            "operation": c.operation,
            "classification": c.level,
            "rank": registry.rank(c.level),
            "tenant": c.tenant,
            "decision": self.verdict.decision,
            "rules": self.verdict.rules,
            "path": self.step.path,
            "hops": len(self.step.chain),
            "hitl_on_path": self.step.via_hitl,
        }


def keep_best(registry: Registry, best: dict[tuple[str, str, str], Reached], item: Reached) -> None:
    """Keep the better of two answers for one target: the more permissive decision, then no
    human on the path, then (for exports) the higher classification, then the shorter path."""
    c = item.candidate
    key = (c.category, c.target, c.operation)
    held = best.get(key)
    if held is None or _score(registry, item) > _score(registry, held):
        best[key] = item


def _score(registry: Registry, item: Reached) -> tuple[int, bool, int, int]:
    reaching = item.verdict.decision in REACHING
    rank = registry.rank(item.candidate.level) if reaching else None
    return (
        ORDER[item.verdict.decision],
        not item.step.via_hitl,
        rank if rank is not None else -1,
        -len(item.step.chain),
    )


async def walk(
    registry: Registry, compromised: list[str], prober: probe.Prober, max_depth: int
) -> tuple[dict[tuple[str, str, str], Reached], int]:
    """Every target reached from `compromised`, and how many (agent, scopes) steps were walked."""
    best: dict[tuple[str, str, str], Reached] = {}
    queue = deque(Step(agent, (), False) for agent in compromised)
    seen: set[tuple[str, frozenset[str]]] = set()
    walked = 0
    while queue:
        step = queue.popleft()
        key = (step.agent, frozenset(step.held(registry)))
        if key in seen:
            continue
        seen.add(key)
        walked += 1
        asked = candidates(registry, step)
        verdicts = await prober.ask_all([c.request for c in asked])
        for candidate, verdict in zip(asked, verdicts, strict=True):
            keep_best(registry, best, Reached(candidate, verdict, step))
            if candidate.category != "agent" or verdict.decision not in REACHING:
                continue
            scopes = candidate.request["task"]["scopes"]
            if scopes and len(step.chain) < max_depth:
                hop = probe.hop(step.agent, candidate.target, scopes)
                via_hitl = step.via_hitl or verdict.decision == "require_hitl"
                queue.append(Step(candidate.target, (*step.chain, hop), via_hitl))
    return best, walked


def rank_key(item: dict[str, Any]) -> tuple[int, int, str, str]:
    """Highest classification first, then allow before require_hitl, then by name."""
    rank = item["rank"] if item["rank"] is not None else -1
    return (-rank, -ORDER[item["decision"]], item["category"], item["id"])


async def report(
    registry: Registry, compromised: list[str], prober: probe.Prober, max_depth: int = 4
) -> dict[str, Any]:
    """The blast-radius report (schema `SCHEMA`) for agents assumed compromised."""
    unknown = sorted(set(compromised) - set(registry.agents))
    best, walked = await walk(registry, sorted(set(compromised)), prober, max_depth)
    items = sorted((r.as_json(registry) for r in best.values()), key=rank_key)
    reached = [i for i in items if i["decision"] in REACHING]
    by_category: dict[str, list[dict[str, Any]]] = {
        c: [i for i in reached if i["category"] == c]
        for c in ("tool", "store", "destination", "agent")
    }
    top = reached[0] if reached else None
    return {
        "compromised": sorted(set(compromised)),
        "unregistered": unknown,
        "max_depth": max_depth,
        "steps_walked": walked,
        "highest_classification": top["classification"] if top else None,
        "reach": by_category,
        "ranked": reached,
        "refused": [i for i in items if i["decision"] not in REACHING],
        "totals": {
            c: {
                "allow": sum(1 for i in v if i["decision"] == "allow"),
                "require_hitl": sum(1 for i in v if i["decision"] == "require_hitl"),
            }
            for c, v in by_category.items()
        },
        "bound": prober.bound(),
    }


def compare(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What the change from `before` to `after` opens, closes and changes."""

    def index(body: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
        return {(i["category"], i["id"], i["operation"]): i for i in body["ranked"]}

    old, new = index(before), index(after)
    opens = [new[k] for k in sorted(new.keys() - old.keys())]
    closes = [old[k] for k in sorted(old.keys() - new.keys())]
    changes = [
        {"category": k[0], "id": k[1], "operation": k[2], "before": old[k], "after": new[k]}
        for k in sorted(old.keys() & new.keys())
        if (old[k]["decision"], old[k]["classification"])
        != (new[k]["decision"], new[k]["classification"])
    ]
    return {"opens": opens, "closes": closes, "changes": changes}
