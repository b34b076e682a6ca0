"""No rollback: how signed bundle revisions compare, and the floor a new one must rise above.

With signing on, a bundle's `.manifest` `revision` is one to four dot-separated decimal numbers
(`0.3.0`, `2026.11.21`, `7`), compared number by number with missing trailing numbers counted
as 0 (`1.2` = `1.2.0` < `1.10`). Anything else (`r1`, `1.2.0-rc1`, `v1`) cannot be compared and
is refused. The floor is the last signed bundle the store accepted: a candidate is accepted when
it is that same bundle (same signed files, so a restart or a changed registry file) or its
revision is newer; otherwise it is a downgrade, refused unless an admin allows it explicitly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from maestro_gate.core.decision.ports import AcceptedRevision
from maestro_gate.core.errors import BundleError
from maestro_gate.engine.bundle import Bundle, digest_of

_REVISION = re.compile(r"^(0|[1-9][0-9]{0,17})(\.(0|[1-9][0-9]{0,17})){0,3}$")
REVISION_FORMAT = "one to four dot-separated decimal numbers without leading zeros, e.g. 0.3.0"


def revision_key(revision: str) -> tuple[int, ...]:
    """The sort key of a comparable revision; BundleError naming it when it is not one."""
    if not _REVISION.match(revision):
        raise BundleError(
            f"bundle revision {revision!r} cannot be compared: with signing on, a revision is "
            f"{REVISION_FORMAT}",
            errors=[{"code": "revision_not_comparable", "message": revision}],
        )
    numbers = [int(part) for part in revision.split(".")]
    return tuple(numbers + [0] * (4 - len(numbers)))


def signed_digest(bundle: Bundle) -> str:
    """The digest of the files the signature covers (without a registry file given apart)."""
    return digest_of({name: raw for name, raw in bundle.files.items() if name != "<registry>"})


@dataclass(frozen=True)
class Verdict:
    """Whether a candidate may be activated over the floor, and whether it is a downgrade."""

    candidate: AcceptedRevision
    floor: AcceptedRevision | None
    downgrade: bool

    @property
    def raises_floor(self) -> bool:
        """True when the store must record the candidate as the new floor."""
        return self.floor is None or self.floor.digest != self.candidate.digest


def judge(
    bundle: Bundle, floor: AcceptedRevision | None, accepted_at: str, *, allow_downgrade: bool
) -> Verdict:
    """Compare a verified candidate with the floor; BundleError naming both revisions when it
    is not newer and no downgrade is allowed."""
    candidate = AcceptedRevision(bundle.revision, signed_digest(bundle), accepted_at)
    key = revision_key(bundle.revision)
    if floor is None or floor.digest == candidate.digest:
        return Verdict(candidate, floor, downgrade=False)
    if key > revision_key(floor.revision):
        return Verdict(candidate, floor, downgrade=False)
    if allow_downgrade:
        return Verdict(candidate, floor, downgrade=True)
    same = key == revision_key(floor.revision)
    raise BundleError(
        f"bundle revision {bundle.revision} is not newer than {floor.revision}, the newest "
        f"signed revision accepted{' (a different bundle with the same revision)' if same else ''}"
        "; an admin can allow a downgrade with POST /v1/admin/bundle/reload?allow_downgrade=true",
        errors=[
            {
                "code": "revision_not_newer",
                "message": f"{bundle.revision} <= {floor.revision}",
                "location": {"candidate": bundle.revision, "accepted": floor.revision},
            }
        ],
    )
