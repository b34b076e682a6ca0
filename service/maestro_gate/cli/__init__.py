"""The `maestro-gate` command line.

Exit codes of `decide`: 0 allow, 2 deny, 3 require_hitl, 1 bad input, 4 could not decide.
`audit verify` exits 0 when the log verifies and 1 naming the first bad record otherwise.
The audit and policy commands live in `cli/audit.py` and `cli/policy.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from maestro_gate.cli import audit as audit_commands
from maestro_gate.cli import auth as auth_commands
from maestro_gate.cli import policy as policy_commands
from maestro_gate.cli import posture as posture_commands
from maestro_gate.config import PREFIX, Settings
from maestro_gate.core.errors import GateError

DECISION_EXIT = {"allow": 0, "deny": 2, "require_hitl": 3}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code."""
    args = _parser().parse_args(argv)
    settings = Settings.from_env(os.environ)
    handler = args.handler
    code: int = handler(args, settings)
    return code


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from maestro_gate.api.app import create_app
    from maestro_gate.logs import configure

    configure(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_config=None,
        access_log=False,
        loop="uvloop",
        http="httptools",
    )
    return 0


def _decide(args: argparse.Namespace, settings: Settings) -> int:
    from maestro_gate.api.body import parse_json
    from maestro_gate.api.decide import parse_request
    from maestro_gate.logs import configure
    from maestro_gate.wiring import build

    configure("warning", sys.stderr)  # stdout carries the decision alone
    # Bytes, parsed as strictly as `/v1/decide` parses a body: what is decided is what was sent.
    raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    try:
        request = parse_request(parse_json(raw, settings.max_depth))
    except GateError as exc:
        print(json.dumps({"code": exc.code, "message": exc.message}), file=sys.stderr)
        return 1

    async def run() -> int:
        gate = build(settings)
        await gate.start()
        try:
            response = await gate.services.decisions.decide(request)
        except GateError as exc:
            print(json.dumps({"code": exc.code, "message": exc.message}), file=sys.stderr)
            return 4
        finally:
            await gate.close()
        print(response.model_dump_json(indent=2, exclude_none=True))
        return DECISION_EXIT[response.decision]

    return asyncio.run(run())


def _config(args: argparse.Namespace, settings: Settings) -> int:
    print("| variable | default | meaning |\n|---|---|---|")
    for name, field in Settings.model_fields.items():
        default = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
        shown = "" if default is None else f"`{default}`"
        print(f"| `{PREFIX}{name.upper()}` | {shown} | {field.description or ''} |")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maestro-gate", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(required=True, metavar="command")

    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(handler=_serve)

    decide = sub.add_parser("decide", help="decide one request from a JSON file or - for stdin")
    decide.add_argument("file")
    decide.set_defaults(handler=_decide)

    audit = sub.add_parser("audit", help="audit log tools").add_subparsers(
        required=True, metavar="action"
    )
    audit_commands.add_commands(audit)

    policy = sub.add_parser("policy", help="policy bundle tools").add_subparsers(
        required=True, metavar="action"
    )
    policy_commands.add_commands(policy)

    posture = sub.add_parser(
        "posture", help="Threat Mapper: topology, permissions, classification, blast radius"
    ).add_subparsers(required=True, metavar="report")
    posture_commands.add_commands(posture)

    catalog = sub.add_parser("catalog", help="MAESTRO threat catalog").add_subparsers(
        required=True, metavar="action"
    )
    coverage = catalog.add_parser(
        "coverage", help="per layer: threats and mitigations, the rules and tests covering them"
    )
    coverage.add_argument("--policies", help="policy directory (default: bundle dir)")
    coverage.add_argument("--catalog", help="catalog directory (default: catalog dir)")
    coverage.add_argument("--json", action="store_true", help="machine-readable output")
    coverage.set_defaults(handler=policy_commands.catalog_coverage)
    posture_commands.add_traffic_options(coverage)

    auth = sub.add_parser("auth", help="caller credentials").add_subparsers(
        required=True, metavar="action"
    )
    auth_commands.add_commands(auth)

    config = sub.add_parser("config", help="print the environment variables as a Markdown table")
    config.set_defaults(handler=_config)
    return parser
