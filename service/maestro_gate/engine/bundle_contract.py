"""The bundle contract, checked on the engine that will run a bundle before it is activated.

On every probe request of engine/probes.py, the candidate's `data.maestro.decision.result`
must evaluate without a run-time error and be defined, have the shape `PolicyResult`
describes, give every MAESTRO layer a verdict in `layers`, and never allow while a layer
denies or escalates. A bundle that breaks it would deny every request (or allow with no
layer's say): it is refused with a BundleError naming each probe and problem, and the active
bundle stays. The candidate is compiled on a probe engine of the same kind, once, apart from
the workers' copies the engine compiles when it activates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from maestro_gate.core.decision.decisions import LAYERS, PolicyResult, check_policy_result
from maestro_gate.core.errors import BundleError, EngineError
from maestro_gate.engine import native_eval
from maestro_gate.engine.bundle import DECISION_ENTRYPOINT, Bundle
from maestro_gate.engine.embedded import compile_bundle
from maestro_gate.engine.inprocess import DECISION_DOCUMENT, compile_opa, opa_error
from maestro_gate.engine.probes import probe_documents

Evaluate = Callable[[dict[str, Any]], Any]


def check_contract(bundle: Bundle, engine: str) -> None:
    """Raise BundleError unless the bundle keeps the contract on engine `embedded` or
    `opa-inprocess` (an OPA server checks its own bundles: nothing to do for `opa`)."""
    if engine == "embedded":
        rego, program = compile_bundle(bundle)
        entrypoint = DECISION_ENTRYPOINT.encode()
        _check(bundle, lambda document: native_eval.evaluate(rego, program, entrypoint, document))
    elif engine == "opa-inprocess":
        opa = compile_opa(bundle.modules, bundle.data)
        try:
            _check(bundle, lambda document: _opa_evaluate(opa, document))
        finally:
            opa.close()


def contract_problems(value: Any) -> list[str]:
    """What is wrong with one decision document, by the contract (empty when nothing)."""
    try:
        result = PolicyResult.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the result"
        return [
            f"the result has the wrong shape ({exc.error_count()} error(s); {where}: "
            f"{first['msg']})"
        ]
    checked = check_policy_result(value)
    problems = [r.message for r in checked.reasons if r.rule == "GATE.malformed_policy_result"]
    missing = [layer for layer in LAYERS if layer not in result.layers]
    if missing:
        problems.append(f"no verdict for the layer(s) {', '.join(missing)}")
    unknown = sorted(set(result.layers) - set(LAYERS))
    if unknown:
        problems.append(f"verdicts for unknown layer(s) {', '.join(unknown)}")
    objecting = sorted(layer for layer, verdict in result.layers.items() if verdict != "allow")
    if result.decision == "allow" and objecting:
        problems.append(f"allows while {', '.join(objecting)} does not")
    return problems


def _opa_evaluate(opa: Any, document: dict[str, Any]) -> Any:
    """The decision document on OPA's engine; EngineError as the engine adapter raises it."""
    from opa_bindings import OpaUndefinedError

    try:
        return opa.eval_document(DECISION_DOCUMENT, document)
    except OpaUndefinedError:
        raise EngineError("the decision document is undefined for this input") from None
    except opa_error() as exc:
        message = " ".join(str(getattr(exc, "message", exc)).split())[:500]
        raise EngineError(f"evaluation failed: {message}") from None


def _check(bundle: Bundle, evaluate: Evaluate) -> None:
    errors: list[dict[str, Any]] = []
    for name, document in probe_documents(bundle.data).items():
        try:
            problems = contract_problems(evaluate(document))
        except EngineError as exc:
            problems = [exc.message]
        errors += [
            {"code": "contract_violation", "message": problem, "location": {"probe": name}}
            for problem in problems
        ]
    if errors:
        listed = "; ".join(f"{e['location']['probe']}: {e['message']}" for e in errors[:4])
        more = f" (and {len(errors) - 4} more)" if len(errors) > 4 else ""
        raise BundleError(
            f"bundle breaks the decision contract on {DECISION_ENTRYPOINT}: {listed}{more}",
            errors=errors,
        )
