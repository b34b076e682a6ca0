"""A tool function behind the gate with the guard decorator. Run: python examples/guard_decorator.py"""

from __future__ import annotations

from local_gate import gate

from maestro_gate.client import ActionDenied, GateClient, acting_as, guard
from maestro_gate.core.decision.requests import Resource

with gate() as (url, key), GateClient(url, api_key=key) as client:

    @guard(client, target=Resource(type="store", id="docs"), on_obligations=print)
    def web_search(query: str, limit: int = 5) -> str:
        return f"{limit} results for {query!r}"

    @guard(client, action="shell.exec", reversible=False, side_effects=["exec"])
    def shell(command: str) -> str:
        raise AssertionError("never runs: the gate denies shell.exec")

    with acting_as("spiffe://corp.example/agent/analyst", session_id="s-1", trace_id="t-1"):
        print("allowed:", web_search("maestro layers"))
        try:
            shell("cat /etc/passwd")
        except ActionDenied as denied:
            print("denied:", [r.rule for r in denied.reasons])
