"""Administrative operations: `POST /v1/admin/bundle/reload`.

A reload activates the configured bundle only when it reads, verifies (when a public key is
set), passes `policy check`, compiles and keeps the decision contract on its probe requests
(engine/bundle_contract.py), and, with signing on, is newer than the newest signed revision
the store accepted (engine/revision.py); otherwise the active bundle stays, the failure is
counted and shown in `/v1/status`, and the answer is 422 `{code: "bundle_error", message, errors}`.
`allow_downgrade=true` lets an admin activate an older signed bundle; the downgrade is audited
(`bundle_downgrade_allowed`) first. A store that cannot be read or written answers 503
`audit_unavailable`. With engine=opa a reload asks OPA for its active revision; an OPA that
cannot be reached or will not take the gate's token answers 503 `engine_error`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from maestro_gate.api.security import caller_of
from maestro_gate.api.services import services_of
from maestro_gate.core.decision.ports import BundleInfo

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.post(
    "/bundle/reload",
    summary="Re-read the bundle and activate it if it passes every check",
    responses={
        422: {
            "description": "The bundle was refused (checks, contract, or an older signed "
            "revision); the active one stays."
        },
        503: {
            "description": "The audit store cannot record the accepted revision, or "
            "engine=opa: OPA could not be reached or refused the gate's token."
        },
    },
)
async def reload_bundle(
    request: Request,
    allow_downgrade: bool = Query(
        False,
        description="Activate a signed bundle whose revision is not newer than the newest "
        "accepted one; the downgrade is audited.",
    ),
) -> dict[str, Any]:
    """The now active bundle and the one it replaced; 422 `bundle_error` when refused."""
    reloads = services_of(request).reloads
    previous = reloads.engine.active_bundle()
    by = caller_of(request).principal
    info = await reloads.reload(allow_downgrade=allow_downgrade, by=by)
    return {
        "status": "activated",
        "changed": previous is None or previous.digest != info.digest,
        "bundle": _bundle(info),
        "previous": _bundle(previous) if previous else None,
    }


def _bundle(info: BundleInfo) -> dict[str, str]:
    return {"revision": info.revision, "digest": info.digest, "activated_at": info.activated_at}
