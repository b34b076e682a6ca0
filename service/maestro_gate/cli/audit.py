"""`maestro-gate audit ...`: verify, export, checkpoint and prove the audit trail.

`audit verify` exits 0 when the log verifies and 1 naming the first bad record otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from maestro_gate.config import Settings


def _audit_log(args: argparse.Namespace, settings: Settings) -> Any:
    from maestro_gate.audit.backends import is_postgres, open_log, sqlite_file

    dsn = args.dsn or settings.audit_dsn
    if not is_postgres(dsn) and not sqlite_file(dsn).is_file():
        raise SystemExit(f"no audit log at {sqlite_file(dsn)}")
    return open_log(dsn)


def _audit_signer(settings: Settings) -> Any:
    from maestro_gate.audit.checkpoint_keys import load_signer

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
    from maestro_gate.audit.checkpoint_keys import read_verifier_key
    from maestro_gate.audit.export import export_rows, verify, verify_store

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
    from maestro_gate.audit.checkpoint_issuer import issue

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


def add_commands(audit: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
