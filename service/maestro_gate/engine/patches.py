"""Load the rego-cpp performance fixes of engine/_patches.cc before anything loads rego-cpp.

The fixes work by symbol interposition, so the module must be loaded with RTLD_GLOBAL and before
regopy loads librego_shared.so; the package root (`maestro_gate/__init__.py`) imports this
module first for that reason. `MAESTRO_GATE_ENGINE_PATCHES=off` leaves them unloaded, as does
a regopy other than the build they were checked with: rego-cpp then runs exactly as shipped,
about 3 times slower per decision.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from types import ModuleType

ENVIRONMENT_VARIABLE = "MAESTRO_GATE_ENGINE_PATCHES"

# The regopy release whose rego-cpp the fixes were read against and tested with, and the build
# of its library they were read off: the fixes read rego-cpp's objects at offsets taken from that
# binary's machine code, so another release or another build (another platform, another
# compiler) keeps them out until it is checked. The digest is of the file itself, in the form
# pip records it (the wheel's RECORD), of regopy-1.5.2-cp311-cp311-manylinux_2_34_x86_64.whl's
# regopy/librego_shared.so; it is computed from the bytes on disk that regopy will load (its
# package directory's librego_shared.so), never taken from the RECORD, which anyone can edit.
CHECKED_WITH = "1.5.2"
CHECKED_LIBRARY = "sha256=J0_uSk2YhngFqJ3DX9E6dorUkH-nJpw0xRM5CQ75TB8"
LIBRARY = "librego_shared.so"


def refusal(
    environ: Mapping[str, str], regopy_version: str | None, library: str | None = CHECKED_LIBRARY
) -> str | None:
    """Why the fixes must stay out of this process, or None when they may load.

    `library` is the digest of the librego_shared.so regopy loads (None: not found).
    """
    if environ.get(ENVIRONMENT_VARIABLE, "on").strip().lower() in {"off", "0", "false", "no"}:
        return f"{ENVIRONMENT_VARIABLE}=off"
    if regopy_version is None:
        return "regopy is not installed"
    if regopy_version != CHECKED_WITH:
        return f"checked with regopy {CHECKED_WITH}, found {regopy_version}"
    if library != CHECKED_LIBRARY:
        return (
            f"checked with regopy {CHECKED_WITH}'s manylinux x86_64 build ({LIBRARY} "
            f"{CHECKED_LIBRARY}), found {LIBRARY} {library or 'missing'}"
        )
    return None


def _why_not() -> str | None:
    try:
        regopy = metadata.distribution("regopy")
    except metadata.PackageNotFoundError:
        return refusal(os.environ, None, None)
    # regopy/rego_shared.py loads the library from its own directory: hash that file.
    path = Path(str(regopy.locate_file(f"regopy/{LIBRARY}")))
    return refusal(os.environ, regopy.version, file_digest(path) if path.is_file() else None)


def file_digest(path: Path) -> str:
    """`sha256=<urlsafe base64, unpadded>` of the file's bytes, as a wheel's RECORD writes it."""
    with path.open("rb") as library:
        digest = hashlib.file_digest(library, "sha256").digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _load() -> ModuleType:
    flags = sys.getdlopenflags()
    sys.setdlopenflags(flags | os.RTLD_GLOBAL)
    try:
        from maestro_gate.engine import _patches

        return _patches
    finally:
        sys.setdlopenflags(flags)


_refused = _why_not()
_module = None if _refused is not None else _load()


def addresses() -> dict[str, int]:
    """For engine/_rego.c's bind, by name: the module's hooks (maestro_gate_mark,
    maestro_gate_forget) and its replacement for regoSetInput. Empty when it is not loaded."""
    return _module.addresses() if _module else {}


def forget() -> None:
    """Verify every bundle again on its next query; called after compiling a bundle."""
    if _module:
        _module.forget()


def status() -> dict[str, object]:
    """Whether the fixes are loaded and in effect, for the startup log and the tests."""
    if _module is None:
        return {"loaded": False, "reason": _refused}
    return {"loaded": True, **_module.counts()}
