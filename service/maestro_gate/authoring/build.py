"""`maestro-gate policy build` and `policy sign`: OPA bundle tarballs and `.signatures.json`.

The tarball holds `.manifest` (with the revision and roots), every `*.rego` (tests included, as
`opa build` includes them) and every `data.json`, under their bundle-relative paths, plus
`.signatures.json` when signed. Its bytes depend only on those files: entries in path order,
mtime 0, uid/gid 0, no owner names, mode 0644, a gzip header with mtime 0 and no file name, so
building the same tree twice gives the same bytes.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

from maestro_gate.core.errors import BundleError
from maestro_gate.engine.bundle import bundle_files, read_bundle
from maestro_gate.engine.bundle_signatures import SIGNATURES_FILE, sign


@dataclass(frozen=True)
class BuildResult:
    """What `build_tarball` wrote."""

    path: Path
    revision: str
    digest: str
    files: tuple[str, ...]
    signed: bool


def build_tarball(
    directory: Path,
    out: Path,
    *,
    revision: str | None = None,
    signing_key: bytes | None = None,
    key_id: str | None = None,
    scope: str | None = None,
    algorithm: str | None = None,
) -> BuildResult:
    """Write the bundle in `directory` to `out` as a deterministic `.tar.gz`, optionally signed.

    `revision` replaces the manifest's revision. The result is read back before it replaces
    `out`, so a missing manifest or invalid JSON is refused (BundleError) and `out` is untouched.
    """
    files, _ = bundle_files(directory)
    if revision is not None:
        files[".manifest"] = _with_revision(files.get(".manifest"), revision)
    with_signature = dict(files)
    if signing_key is not None:
        with_signature[SIGNATURES_FILE] = sign(
            files, signing_key, key_id=key_id, scope=scope, algorithm=algorithm
        )
    payload = tarball_bytes(with_signature)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(payload)
    try:
        bundle = read_bundle(tmp)
    except BundleError:
        tmp.unlink()
        raise
    tmp.replace(out)
    return BuildResult(
        path=out,
        revision=bundle.revision,
        digest=bundle.digest,
        files=tuple(sorted(with_signature)),
        signed=signing_key is not None,
    )


def tarball_bytes(files: dict[str, bytes]) -> bytes:
    """A gzipped tar of `files` (relative path → bytes) whose bytes depend on nothing else."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            content = files[name]
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(content))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def sign_directory(
    directory: Path,
    signing_key: bytes,
    *,
    key_id: str | None = None,
    scope: str | None = None,
    algorithm: str | None = None,
) -> Path:
    """Write `.signatures.json` into a bundle directory, signing the files the service loads."""
    if not directory.is_dir():
        raise BundleError(f"{directory} is not a bundle directory")
    read_bundle(directory)
    files, _ = bundle_files(directory)
    path = directory / SIGNATURES_FILE
    path.write_bytes(sign(files, signing_key, key_id=key_id, scope=scope, algorithm=algorithm))
    return path


def _with_revision(manifest: bytes | None, revision: str) -> bytes:
    if not revision:
        raise BundleError("--revision must not be empty")
    try:
        document = json.loads(manifest) if manifest is not None else {}
    except ValueError as exc:
        raise BundleError(f".manifest is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise BundleError(".manifest must hold a JSON object")
    document["revision"] = revision
    document.setdefault("roots", [""])
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()
