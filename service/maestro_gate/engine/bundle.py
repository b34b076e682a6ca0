"""Reading an OPA-style policy bundle (a directory or a `.tar.gz`): manifest, modules, data,
digest, signature, built-in check.

A bundle is refused here, before any engine sees it, when its manifest is missing or invalid,
a data file is not JSON, its signature does not verify (when a public key is configured), or a
module calls a built-in the embedded engine lacks: rego-cpp answers *undefined* for some missing
built-ins, which would silently disable a deny.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from maestro_gate.core.decision.ports import BundleInfo
from maestro_gate.core.errors import BundleError
from maestro_gate.engine.bundle_signatures import SIGNATURES_FILE, verify

REGISTRY_PATH = ("maestro", "registry")
DECISION_ENTRYPOINT = "maestro/decision/result"
MAX_TARBALL_BYTES = 64 * 1024 * 1024

_COMMENT = re.compile(r"#[^\n]*")
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|`[^`]*`')
_CALL = re.compile(r"(?<![\w.])([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*)\s*\(")
_FUNC_HEAD = re.compile(r"^\s*([A-Za-z_][\w]*)\s*\(", re.MULTILINE)
_IMPORT = re.compile(r"^\s*import\s+(data|input)((?:\.[\w]+)*)(?:\s+as\s+(\w+))?", re.MULTILINE)
# `set()` is the empty-set literal, not a call.
_KEYWORDS = frozenset(
    {"if", "contains", "not", "some", "every", "in", "with", "else", "default", "set"}
)


@dataclass(frozen=True)
class Bundle:
    """A bundle read from disk: modules by relative path, the merged data document, identity."""

    root: Path
    revision: str
    roots: list[str]
    modules: dict[str, str]
    tests: dict[str, str]
    data: dict[str, Any]
    digest: str
    registry_source: str = "bundle"
    files: dict[str, bytes] = field(default_factory=dict, repr=False)


def read_bundle(
    root: Path,
    registry_file: Path | None = None,
    *,
    public_key: bytes | None = None,
    scope: str | None = None,
) -> Bundle:
    """Read a bundle directory or `.tar.gz`; `registry_file` replaces `data.maestro.registry`.

    With `public_key` (PEM), the bundle must carry a `.signatures.json` whose JWT verifies and
    lists exactly its `.manifest`, `*.rego` and `data.json` files with their hashes.
    """
    files, signatures = bundle_files(root)
    if public_key is not None:
        verify(signatures, files, public_key, scope=scope)
    if ".manifest" not in files:
        raise BundleError(f"bundle {root} has no .manifest")
    manifest = _manifest(files[".manifest"])
    modules: dict[str, str] = {}
    tests: dict[str, str] = {}
    data: dict[str, Any] = {}
    for rel, raw in sorted(files.items()):
        if rel.endswith(".rego"):
            try:
                text = raw.decode()
            except UnicodeDecodeError as exc:
                raise BundleError(f"{rel} is not UTF-8: {exc}") from exc
            (tests if rel.endswith("_test.rego") else modules)[rel] = text
        elif rel.rsplit("/", 1)[-1] == "data.json":
            _place(data, rel.split("/")[:-1], _json(raw, rel))
    files = dict(files)
    registry_source = "bundle"
    if registry_file is not None:
        raw = _read(registry_file)
        _place(data, REGISTRY_PATH, _json(raw, str(registry_file)), replace=True)
        files["<registry>"] = raw
        registry_source = str(registry_file)
    if not modules:
        raise BundleError(f"bundle {root} has no policy modules")
    return Bundle(
        root=root,
        revision=manifest["revision"],
        roots=manifest["roots"],
        modules=modules,
        tests=tests,
        data=data,
        digest=digest_of(files),
        registry_source=registry_source,
        files=files,
    )


def activation_info(bundle: Bundle) -> BundleInfo:
    """The BundleInfo of a bundle an engine activates now."""
    return BundleInfo(
        revision=bundle.revision,
        digest=bundle.digest,
        activated_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
    )


def bundle_files(root: Path) -> tuple[dict[str, bytes], bytes | None]:
    """The files a bundle directory or tarball holds (`.manifest`, `*.rego`, `data.json`, by
    relative path) and its `.signatures.json`, if any; every other file is ignored."""
    if root.is_dir():
        files: dict[str, bytes] = {}
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root).as_posix()
            if path.is_file() and _is_bundle_file(rel):
                files[rel] = _read(path)
        signatures = root / SIGNATURES_FILE
        return files, _read(signatures) if signatures.is_file() else None
    if root.is_file():
        return _tarball_files(root)
    raise BundleError(f"bundle directory {root} does not exist")


def _is_bundle_file(rel: str) -> bool:
    if rel == ".manifest":
        return True
    if any(part.startswith(".") for part in rel.split("/")):
        return False
    return rel.endswith(".rego") or rel.rsplit("/", 1)[-1] == "data.json"


def _tarball_files(path: Path) -> tuple[dict[str, bytes], bytes | None]:
    files: dict[str, bytes] = {}
    signatures: bytes | None = None
    total = 0
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                name = member.name.lstrip("/").removeprefix("./")
                if not member.isfile():
                    continue
                if not name or any(part in ("", "..") for part in name.split("/")):
                    raise BundleError(f"{path}: unsafe entry name {member.name!r}")
                total += member.size
                if total > MAX_TARBALL_BYTES:
                    raise BundleError(f"{path}: more than {MAX_TARBALL_BYTES} bytes unpacked")
                if name != SIGNATURES_FILE and not _is_bundle_file(name):
                    continue
                if name in files or (name == SIGNATURES_FILE and signatures is not None):
                    raise BundleError(f"{path}: entry {name} appears twice")
                extracted = tar.extractfile(member)
                raw = extracted.read() if extracted is not None else b""
                if name == SIGNATURES_FILE:
                    signatures = raw
                else:
                    files[name] = raw
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleError(f"{path} is not a readable .tar.gz bundle: {exc}") from exc
    return files, signatures


def digest_of(files: dict[str, bytes]) -> str:
    """SHA-256 over every file's path and bytes, in path order: the bundle's identity."""
    h = hashlib.sha256()
    for name in sorted(files):
        content = files[name]
        h.update(f"{name}\0{len(content)}\0".encode())
        h.update(content)
    return "sha256:" + h.hexdigest()


def unsupported_builtins(
    modules: dict[str, str], is_builtin: Callable[[str], bool]
) -> list[tuple[str, str]]:
    """(file, name) for every call that is neither a user function, a data ref nor a built-in."""
    defined = {name for src in modules.values() for name in _FUNC_HEAD.findall(_strip(src))}
    missing: list[tuple[str, str]] = []
    for file, src in sorted(modules.items()):
        text = _strip(src)
        aliases = _import_aliases(text)
        for name in sorted(set(_CALL.findall(text))):
            head = name.split(".", 1)[0]
            if name in _KEYWORDS or name in defined or head in aliases or head == "data":
                continue
            if not is_builtin(name):
                missing.append((file, name))
    return missing


def check_builtins(bundle: Bundle, is_builtin: Callable[[str], bool]) -> None:
    """Raise BundleError naming each built-in the engine lacks and the file that calls it."""
    missing = unsupported_builtins({**bundle.modules, **bundle.tests}, is_builtin)
    if missing:
        listed = ", ".join(f"{name} in {file}" for file, name in missing)
        raise BundleError(
            f"bundle calls built-ins the embedded engine lacks: {listed}",
            errors=[
                {"code": "unsupported_builtin", "message": name, "location": {"file": file}}
                for file, name in missing
            ],
        )


def _strip(src: str) -> str:
    return _COMMENT.sub("", _STRING.sub('""', src))


def _import_aliases(text: str) -> set[str]:
    aliases: set[str] = set()
    for root, path, alias in _IMPORT.findall(text):
        parts = path.strip(".").split(".") if path else [root]
        aliases.add(alias or parts[-1])
    return aliases


def _manifest(raw: bytes) -> dict[str, Any]:
    manifest = _json(raw, ".manifest")
    revision = manifest.get("revision") if isinstance(manifest, dict) else None
    roots = manifest.get("roots", [""]) if isinstance(manifest, dict) else None
    if not isinstance(revision, str) or not revision:
        raise BundleError(".manifest needs a non-empty string `revision`")
    if not isinstance(roots, list) or not all(isinstance(r, str) for r in roots):
        raise BundleError(".manifest `roots` must be a list of strings")
    return {"revision": revision, "roots": roots}


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read {path}: {exc.strerror}") from exc


def _json(raw: bytes, name: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{name} is not valid JSON: {exc}") from exc


def _place(
    data: dict[str, Any], parts: Iterable[str], value: Any, *, replace: bool = False
) -> None:
    keys = list(parts)
    if not keys:
        if not isinstance(value, dict):
            raise BundleError("a root data.json must hold an object")
        data.update(value)
        return
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    if replace or keys[-1] not in node:
        node[keys[-1]] = value
    elif isinstance(node[keys[-1]], dict) and isinstance(value, dict):
        node[keys[-1]].update(value)
    else:
        raise BundleError(f"data at {'/'.join(keys)} is defined twice")
