"""`maestro-gate policy ...` and `catalog coverage`: author, check, build and sign bundles."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from maestro_gate.config import Settings
from maestro_gate.core.errors import GateError


def _policy_check(args: argparse.Namespace, settings: Settings) -> int:
    from maestro_gate.authoring.check import main_check

    catalog = Path(args.catalog) if args.catalog else settings.catalog_dir
    return main_check(Path(args.dir) if args.dir else settings.bundle_dir, catalog, args.engine)


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

    report = run_tests(Path(args.dir) if args.dir else settings.bundle_dir, args.run, args.engine)
    print(format_report(report, verbose=args.verbose))
    return 0 if report.ok else 1


def catalog_coverage(args: argparse.Namespace, settings: Settings) -> int:
    from maestro_gate.core.catalog.coverage import main_coverage

    policies = Path(args.policies) if args.policies else settings.bundle_dir
    catalog = Path(args.catalog) if args.catalog else settings.catalog_dir or Path("catalog")
    return main_coverage(policies, catalog, args.json)


def add_commands(policy: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    test = policy.add_parser(
        "test", help="run test_* rules in *_test.rego like `opa test`; exit 1 on any failure"
    )
    test.add_argument("dir", nargs="?", help="bundle directory (default: bundle dir)")
    test.add_argument("-r", "--run", help="only tests whose data.<package>.<name> matches")
    test.add_argument("-v", "--verbose", action="store_true", help="list passing tests too")
    test.add_argument(
        "--engine",
        choices=("embedded", "opa"),
        default="embedded",
        help="evaluator: embedded (rego-cpp, one process per file) or opa (OPA's own, in process)",
    )
    test.set_defaults(handler=_policy_test)

    check = policy.add_parser(
        "check",
        help="parse, check built-ins, engine divergences and the reason contract; exit 1 on any"
        " problem",
    )
    check.add_argument("dir", nargs="?", help="bundle directory or .tar.gz (default: bundle dir)")
    check.add_argument("--catalog", help="MAESTRO catalog directory (default: catalog dir)")
    check.add_argument(
        "--engine",
        choices=("embedded", "opa", "opa-inprocess"),
        default="embedded",
        help="the engine the bundle will run on: refuse built-ins it lacks (default: embedded)",
    )
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
