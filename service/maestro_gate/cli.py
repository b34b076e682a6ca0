"""The `maestro-gate` command line.

Exit codes of `decide`: 0 allow, 2 deny, 3 require_hitl, 1 bad input, 4 could not decide.
`audit verify` exits 0 when the log verifies and 1 naming the first bad record otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from maestro_gate.config import PREFIX, Settings
from maestro_gate.core.errors import GateError, InvalidRequest

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
    from maestro_gate.api.decide import parse_request
    from maestro_gate.logs import configure
    from maestro_gate.wiring import build

    configure("warning", sys.stderr)  # stdout carries the decision alone
    raw = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    try:
        request = parse_request(json.loads(raw))
    except (ValueError, InvalidRequest) as exc:
        print(json.dumps({"code": "invalid_request", "message": str(exc)}), file=sys.stderr)
        return 1

    async def run() -> int:
        gate = build(settings)
        await gate.start()
        try:
            response = await gate.point.decide(request)
        except GateError as exc:
            print(json.dumps({"code": exc.code, "message": exc.message}), file=sys.stderr)
            return 4
        finally:
            await gate.close()
        print(response.model_dump_json(indent=2, exclude_none=True))
        return DECISION_EXIT[response.decision]

    return asyncio.run(run())


def _audit_log(args: argparse.Namespace, settings: Settings) -> Any:
    from maestro_gate.audit.backends import is_postgres, open_log, sqlite_file

    dsn = args.dsn or settings.audit_dsn
    if not is_postgres(dsn) and not sqlite_file(dsn).is_file():
        raise SystemExit(f"no audit log at {sqlite_file(dsn)}")
    return open_log(dsn)


def _audit_signer(settings: Settings) -> Any:
    from maestro_gate.audit.signing import load_signer

    signer, created = load_signer(
        settings.checkpoint_key_file,
        settings.checkpoint_origin,
        create=settings.profile == "embedded",
    )
    if created:
        print(f"created checkpoint key {settings.checkpoint_key_file}", file=sys.stderr)
    return signer


def _audit_export(args: argparse.Namespace, settings: Settings) -> int:
    from maestro_gate.audit.export import export_entries

    log = _audit_log(args, settings)
    try:
        rows = log.rows(args.start, args.end)
        if args.out:
            with Path(args.out).open("wb") as out:
                count = export_entries(rows, out)
        else:
            count = export_entries(rows, sys.stdout.buffer)
    finally:
        log.close()
    print(f"exported {count} records", file=sys.stderr)
    return 0


def _audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    from maestro_gate.audit.export import export_rows, verify, verify_store
    from maestro_gate.audit.signing import read_verifier_key

    key = None
    if args.public_key:
        key = read_verifier_key(Path(args.public_key).read_text(), settings.checkpoint_origin)
    notes = [(f"saved checkpoint {name}", Path(name).read_text()) for name in args.checkpoint]
    if args.export:
        report = verify(export_rows(Path(args.export)), key, notes)
    else:
        log = _audit_log(args, settings)
        try:
            latest = log.last_checkpoint()
            if latest is not None and key is not None:
                notes.append(("the latest stored checkpoint", latest.note))
            elif latest is not None:
                print("note: stored checkpoints not checked (no --public-key)", file=sys.stderr)
            report = verify_store(log, key, notes)
        finally:
            log.close()
    if report.ok:
        sizes = ", ".join(str(s) for s in report.checkpoints) or "none"
        print(
            f"ok: {report.checked} records verified; root {report.root.hex()}; "
            f"signed checkpoints consistent at sizes: {sizes}"
        )
        return 0
    where = f" at index {report.bad_index}" if report.bad_index is not None else ""
    print(f"FAIL{where}: {report.problem}")
    return 1


def _audit_checkpoint(args: argparse.Namespace, settings: Settings) -> int:
    from maestro_gate.audit.checkpoints import issue

    log = _audit_log(args, settings)
    try:
        stored = issue(log, _audit_signer(settings))
    finally:
        log.close()
    if args.out:
        Path(args.out).write_text(stored.note)
    print(stored.note, end="")
    return 0


def _audit_prove(args: argparse.Namespace, settings: Settings) -> int:
    log = _audit_log(args, settings)
    try:
        size = log.count()
        if args.consistency:
            first, second = args.consistency
            proof = log.prove_consistency(first, second)
            out = {
                "first": first,
                "second": second,
                "first_root": log.root_at(first).hex(),
                "second_root": log.root_at(second).hex(),
            }
        elif args.index is not None:
            tree_size = args.tree_size or size
            proof = log.prove_inclusion(args.index, tree_size)
            [entry] = list(log.rows(args.index, args.index + 1))
            out = {
                "index": args.index,
                "tree_size": tree_size,
                "leaf_hash": entry.leaf_hash.hex(),
                "root": log.root_at(tree_size).hex(),
            }
        else:
            raise SystemExit("give --index N [--tree-size M] or --consistency A B")
    except ValueError as exc:
        print(f"cannot prove: {exc}", file=sys.stderr)
        return 1
    finally:
        log.close()
    print(json.dumps({**out, "proof": [p.hex() for p in proof]}, indent=2))
    return 0


def _audit_public_key(args: argparse.Namespace, settings: Settings) -> int:
    signer = _audit_signer(settings)
    print(
        signer.verifier_key.text() if args.vkey else signer.public_pem(),
        end="\n" if args.vkey else "",
    )
    return 0


def _audit_commands(audit: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dsn_help = "audit DSN (default: MAESTRO_GATE_AUDIT_DSN)"
    export = audit.add_parser(
        "export", help="write records as JSON Lines (OPA decision-log fields)"
    )
    export.add_argument("--dsn", help=dsn_help)
    export.add_argument("--out", help="file to write (default: stdout)")
    export.add_argument("--start", type=int, default=0, help="first index (inclusive)")
    export.add_argument("--end", type=int, help="last index (exclusive)")
    export.set_defaults(handler=_audit_export)

    verify = audit.add_parser(
        "verify",
        help="recompute records, chain, Merkle root and checkpoints; name the first bad record",
    )
    verify.add_argument("--dsn", help=dsn_help)
    verify.add_argument("--export", help="verify this export file instead of the database")
    verify.add_argument("--public-key", help="checkpoint key: PEM or C2SP vkey file")
    verify.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        help="a signed checkpoint saved earlier (repeat)",
    )
    verify.set_defaults(handler=_audit_verify)

    checkpoint = audit.add_parser(
        "checkpoint", help="sign a checkpoint of the log now and print it"
    )
    checkpoint.add_argument("--dsn", help=dsn_help)
    checkpoint.add_argument("--out", help="also save the signed note to this file")
    checkpoint.set_defaults(handler=_audit_checkpoint)

    prove = audit.add_parser("prove", help="print an inclusion or consistency proof (hex JSON)")
    prove.add_argument("--dsn", help=dsn_help)
    prove.add_argument("--index", type=int, help="record index for an inclusion proof")
    prove.add_argument("--tree-size", type=int, help="tree size (default: current size)")
    prove.add_argument("--consistency", type=int, nargs=2, metavar=("A", "B"))
    prove.set_defaults(handler=_audit_prove)

    public_key = audit.add_parser("public-key", help="print the checkpoint public key")
    public_key.add_argument("--vkey", action="store_true", help="C2SP verifier key form")
    public_key.set_defaults(handler=_audit_public_key)


def _auth_add_key(args: argparse.Namespace, settings: Settings) -> int:
    from maestro_gate.auth.keys import add_key

    path = Path(args.file) if args.file else settings.api_keys_file
    if path is None:
        print("set MAESTRO_GATE_API_KEYS_FILE or pass --file", file=sys.stderr)
        return 1
    roles = args.roles.split(",")
    if "agent" in roles and not args.subject:
        print("an agent key needs --subject (an agent id, or `*` for any)", file=sys.stderr)
        return 1
    try:
        key = add_key(path, args.name, roles, args.subject)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(key)
    print(
        f"stored the SHA-256 of this key as {args.name!r} in {path}; it is not shown again. "
        "Use it as `Authorization: Bearer <key>` or `X-API-Key: <key>`.",
        file=sys.stderr,
    )
    return 0


def _config(args: argparse.Namespace, settings: Settings) -> int:
    print("| variable | default | meaning |\n|---|---|---|")
    for name, field in Settings.model_fields.items():
        default = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
        shown = "" if default is None else f"`{default}`"
        print(f"| `{PREFIX}{name.upper()}` | {shown} | {field.description or ''} |")
    return 0


def _policy_check(args: argparse.Namespace, settings: Settings) -> int:
    from maestro_gate.authoring.check import main_check

    catalog = Path(args.catalog) if args.catalog else settings.catalog_dir
    return main_check(Path(args.dir) if args.dir else settings.bundle_dir, catalog)


def _policy_build(args: argparse.Namespace, settings: Settings) -> int:
    from maestro_gate.authoring.build import build_tarball

    directory = Path(args.dir) if args.dir else settings.bundle_dir
    try:
        result = build_tarball(
            directory,
            Path(args.out),
            revision=args.revision,
            signing_key=Path(args.signing_key).read_bytes() if args.signing_key else None,
            key_id=args.key_id,
            scope=args.scope,
            algorithm=args.signing_alg,
        )
    except (GateError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    signed = "signed" if result.signed else "unsigned"
    print(
        f"wrote {result.path}: revision {result.revision}, {len(result.files)} files, "
        f"{signed}, digest {result.digest}"
    )
    return 0


def _policy_sign(args: argparse.Namespace, settings: Settings) -> int:
    from maestro_gate.authoring.build import sign_directory

    try:
        path = sign_directory(
            Path(args.dir),
            Path(args.signing_key).read_bytes(),
            key_id=args.key_id,
            scope=args.scope,
            algorithm=args.signing_alg,
        )
    except (GateError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


def _policy_test(args: argparse.Namespace, settings: Settings) -> int:
    from maestro_gate.authoring.tester import format_report, run_tests

    report = run_tests(Path(args.dir) if args.dir else settings.bundle_dir, args.run)
    print(format_report(report, verbose=args.verbose))
    return 0 if report.ok else 1


def _catalog_coverage(args: argparse.Namespace, settings: Settings) -> int:
    from maestro_gate.coverage import main_coverage

    policies = Path(args.policies) if args.policies else settings.bundle_dir
    catalog = Path(args.catalog) if args.catalog else settings.catalog_dir or Path("catalog")
    return main_coverage(policies, catalog, args.json)


def _policy_commands(policy: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    test = policy.add_parser(
        "test", help="run test_* rules in *_test.rego like `opa test`; exit 1 on any failure"
    )
    test.add_argument("dir", nargs="?", help="bundle directory (default: bundle dir)")
    test.add_argument("-r", "--run", help="only tests whose data.<package>.<name> matches")
    test.add_argument("-v", "--verbose", action="store_true", help="list passing tests too")
    test.set_defaults(handler=_policy_test)

    check = policy.add_parser(
        "check", help="parse, check built-ins and the reason contract; exit 1 on any problem"
    )
    check.add_argument("dir", nargs="?", help="bundle directory or .tar.gz (default: bundle dir)")
    check.add_argument("--catalog", help="MAESTRO catalog directory (default: catalog dir)")
    check.set_defaults(handler=_policy_check)

    build = policy.add_parser("build", help="write a deterministic OPA bundle .tar.gz")
    build.add_argument("dir", nargs="?", help="bundle directory (default: bundle dir)")
    build.add_argument("-o", "--out", required=True, help="the .tar.gz to write")
    build.add_argument("-r", "--revision", help="replace the manifest's revision")
    signing = policy.add_parser("sign", help="write .signatures.json into a bundle directory")
    signing.add_argument("dir", help="bundle directory")
    for command, required in ((build, False), (signing, True)):
        command.add_argument("--signing-key", required=required, help="PEM private key")
        command.add_argument("--key-id", help="`kid` header and `keyid` claim")
        command.add_argument("--scope", help="`scope` claim (verifiers must expect it)")
        command.add_argument(
            "--signing-alg", help="JWT algorithm (default from the key: RS256, ES256, EdDSA)"
        )
    build.set_defaults(handler=_policy_build)
    signing.set_defaults(handler=_policy_sign)


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
    _audit_commands(audit)

    policy = sub.add_parser("policy", help="policy bundle tools").add_subparsers(
        required=True, metavar="action"
    )
    _policy_commands(policy)

    catalog = sub.add_parser("catalog", help="MAESTRO threat catalog").add_subparsers(
        required=True, metavar="action"
    )
    coverage = catalog.add_parser(
        "coverage", help="per layer: threats and mitigations, the rules and tests covering them"
    )
    coverage.add_argument("--policies", help="policy directory (default: bundle dir)")
    coverage.add_argument("--catalog", help="catalog directory (default: catalog dir)")
    coverage.add_argument("--json", action="store_true", help="machine-readable output")
    coverage.set_defaults(handler=_catalog_coverage)

    auth = sub.add_parser("auth", help="caller credentials").add_subparsers(
        required=True, metavar="action"
    )
    add_key = auth.add_parser("add-key", help="create an API key; print it once, store its hash")
    add_key.add_argument("--name", required=True, help="principal name (unique in the file)")
    add_key.add_argument(
        "--roles", required=True, help="comma-separated: agent, approver, auditor, policy_admin"
    )
    add_key.add_argument(
        "--subject",
        action="append",
        default=[],
        help="agent id an agent key may ask for (repeat; `*` for any)",
    )
    add_key.add_argument("--file", help="keys file (default: MAESTRO_GATE_API_KEYS_FILE)")
    add_key.set_defaults(handler=_auth_add_key)

    config = sub.add_parser("config", help="print the environment variables as a Markdown table")
    config.set_defaults(handler=_config)
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
