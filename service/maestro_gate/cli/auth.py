"""`maestro-gate auth ...`: API keys stored as hashes in the keys file.

A running gate takes changes to the file up within MAESTRO_GATE_CREDENTIALS_REFRESH_S.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from maestro_gate.config import Settings


def add_commands(auth: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `auth` subcommands."""
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
    revoke_key = auth.add_parser("revoke-key", help="remove an API key from the keys file")
    revoke_key.add_argument("--name", required=True, help="principal name the key is stored under")
    revoke_key.add_argument("--file", help="keys file (default: MAESTRO_GATE_API_KEYS_FILE)")
    revoke_key.set_defaults(handler=_auth_revoke_key)
    list_keys = auth.add_parser("list-keys", help="the stored keys: names, roles, subjects")
    list_keys.add_argument("--file", help="keys file (default: MAESTRO_GATE_API_KEYS_FILE)")
    list_keys.add_argument("--json", action="store_true", help="one JSON object per line")
    list_keys.set_defaults(handler=_auth_list_keys)


def _keys_file(args: argparse.Namespace, settings: Settings) -> Path | None:
    path = Path(args.file) if args.file else settings.api_keys_file
    if path is None:
        print("set MAESTRO_GATE_API_KEYS_FILE or pass --file", file=sys.stderr)
    return path


def _auth_add_key(args: argparse.Namespace, settings: Settings) -> int:
    from maestro_gate.auth.keys import add_key

    path = _keys_file(args, settings)
    if path is None:
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


def _auth_list_keys(args: argparse.Namespace, settings: Settings) -> int:
    from maestro_gate.auth.keys import read_keys

    path = _keys_file(args, settings)
    if path is None:
        return 1
    try:
        entries = read_keys(path)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    for entry in entries:
        shown = {k: v for k, v in entry.to_json().items() if k != "sha256"}
        if args.json:
            print(json.dumps(shown))
        else:
            subjects = ",".join(sorted(entry.subjects)) or "-"
            print(f"{entry.name}\troles={','.join(sorted(entry.roles))}\tsubjects={subjects}")
    print(f"{len(entries)} keys in {path} (their hashes are not shown)", file=sys.stderr)
    return 0


def _auth_revoke_key(args: argparse.Namespace, settings: Settings) -> int:
    from maestro_gate.auth.keys import revoke_key

    path = _keys_file(args, settings)
    if path is None:
        return 1
    try:
        revoke_key(path, args.name)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    every = settings.credentials_refresh_s
    print(
        f"removed the key {args.name!r} from {path}; a running gate refuses it from its next "
        f"check of the file (every {every:g} s: MAESTRO_GATE_CREDENTIALS_REFRESH_S)",
        file=sys.stderr,
    )
    return 0
