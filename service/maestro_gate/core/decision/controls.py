"""Operator controls: the enforcement mode (global or per layer) and the emergency stop.

Shadow mode computes and audits every decision but answers allow; shadowing a layer means its
reasons cannot block. Two kinds of reason are never shadowed: the gate's own fail-closed reasons
(`GATE.*`) and the emergency stop, which the DecisionPoint enforces itself (`L6.emergency_stop`)
so that a bundle that forgot the rule still stops the agent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from maestro_gate.core.decision.decisions import LAYERS, Mode, PolicyResult, Reason, Verdict

STOP_RULE = "L6.emergency_stop"
STOP_LAYER = "l6_security_compliance"
STOP_THREATS = ["T13", "T7"]
StopKind = Literal["agent", "class"]
_RANK: dict[str, int] = {"allow": 0, "require_hitl": 1, "deny": 2}


@dataclass(frozen=True, slots=True)
class Stop:
    """One emergency stop: an agent id or an agent class, who stopped it, when and why."""

    kind: StopKind
    id: str
    by: str
    at: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Controls:
    """The mode and stops in force; replaced whole on every change (readers never lock)."""

    mode: Mode = "enforce"
    shadow_layers: frozenset[str] = frozenset()
    stops: tuple[Stop, ...] = ()
    agents: frozenset[str] = field(default=frozenset(), init=False)
    classes: frozenset[str] = field(default=frozenset(), init=False)

    def __post_init__(self) -> None:
        agents = frozenset(s.id for s in self.stops if s.kind == "agent")
        classes = frozenset(s.id for s in self.stops if s.kind == "class")
        object.__setattr__(self, "agents", agents)
        object.__setattr__(self, "classes", classes)

    def state(self) -> dict[str, list[str]]:
        """`input.state.emergency_stop`."""
        return {"agents": sorted(self.agents), "classes": sorted(self.classes)}

    def mode_view(self) -> dict[str, Any]:
        """The mode as `GET /v1/admin/mode` shows it."""
        return {"mode": self.mode, "shadow_layers": sorted(self.shadow_layers)}


def unknown_layers(layers: set[str] | frozenset[str]) -> list[str]:
    """Layer names that are not MAESTRO layers."""
    return sorted(set(layers) - set(LAYERS))


def stop_reasons(
    controls: Controls, actors: list[str], class_of: dict[str, str | None]
) -> list[Reason]:
    """A fail-safe deny reason for each actor (or its class) under emergency stop."""
    reasons = []
    for who in actors:
        cls = class_of.get(who)
        if who in controls.agents:
            message = f"agent {who} is under emergency stop"
        elif cls is not None and cls in controls.classes:
            message = f"agent class {cls} (agent {who}) is under emergency stop"
        else:
            continue
        reasons.append(
            Reason(rule=STOP_RULE, layer=STOP_LAYER, threats=STOP_THREATS, message=message)
        )
    return reasons


def unshadowable(reason: Reason) -> bool:
    """True for reasons no shadow setting may hide: gate failures and the emergency stop."""
    return reason.layer == "gate" or reason.rule == STOP_RULE


def answered(result: PolicyResult, controls: Controls) -> Verdict:
    """What the caller is told: the evaluated verdict minus what shadowed layers contributed."""
    evaluated = result.decision
    if controls.mode == "enforce" and not controls.shadow_layers:
        return evaluated
    if evaluated == "deny" and any(unshadowable(r) for r in result.reasons):
        return "deny"
    if controls.mode == "shadow":
        return "allow"
    verdict: Verdict = "allow"
    seen = set(result.layers)
    for layer, layer_verdict in result.layers.items():
        if layer not in controls.shadow_layers and _RANK[layer_verdict] > _RANK[verdict]:
            verdict = layer_verdict
    for reason in result.reasons:
        if reason.layer in seen or reason.layer in controls.shadow_layers:
            continue
        if _RANK[evaluated] > _RANK[verdict]:
            verdict = evaluated
    return verdict


class ControlStore(Protocol):
    """Where the controls persist, so a restart (or another replica) sees the same ones."""

    async def load(self, default: Controls) -> Controls:
        """The persisted controls; `default`'s mode when no mode was ever saved."""
        ...

    async def save_mode(self, mode: Mode, shadow_layers: frozenset[str]) -> None:
        """Persist the enforcement mode."""
        ...

    async def add_stop(self, stop: Stop) -> None:
        """Persist one emergency stop (replacing an earlier one for the same target)."""
        ...

    async def remove_stop(self, kind: StopKind, target: str) -> bool:
        """Lift one emergency stop; False when there was none."""
        ...
