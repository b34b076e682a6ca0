"""The audit trail over HTTP: signed checkpoints, records, inclusion and consistency proofs.

Hashes are lower-case hex, as in `POST /v1/decide`'s `audit.leaf_hash` and the records' `prev`;
the checkpoint note carries its root in base64, as C2SP tlog-checkpoint specifies. A proof's tree
size defaults to the latest signed checkpoint, so clients check it against a signed root.
Indexes and sizes are bounded by MAX_INDEX in the schema: a record's `index` is an RFC 8785
number, so no log holds more than 2**53 - 1 records (past the bound: 422, as for any parameter
the schema refuses). Within the bounds every query the schema admits is answered: a page is cut
at PAGE_MAX records (its `end` says where), an empty range is an empty page, and a proof that
does not exist (a tree larger than the log, an index outside the tree, a consistency proof from
a larger tree to a smaller one) is 404 `resource_not_found`: no schema can say how long the log
is, or compare two parameters.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from maestro_gate.api.services import services_of
from maestro_gate.audit.store import TreeLog
from maestro_gate.core.decision.ports import AuditEntry, StoredCheckpoint
from maestro_gate.core.errors import NotFound, NotReady
from maestro_gate.core.ledger.chain import MAX_SAFE_INTEGER
from maestro_gate.core.ledger.records import export_line

router = APIRouter(prefix="/v1/audit", tags=["audit"])
PAGE_MAX = 1000
MAX_INDEX = MAX_SAFE_INTEGER
"""The largest index or tree size a parameter may name."""


class CheckpointOut(BaseModel):
    """A signed checkpoint: the C2SP note and its parsed size and root."""

    tree_size: int
    root: str = Field(description="Hex RFC 6962 root of the first tree_size records.")
    note: str = Field(description="The C2SP signed note (origin, size, base64 root, signature).")
    issued_at: str


class EntriesOut(BaseModel):
    """A page of records as export lines (OPA decision-log fields plus chain fields)."""

    start: int
    end: int
    size: int = Field(description="Records in the log when the page was read.")
    entries: list[dict[str, Any]]


class InclusionOut(BaseModel):
    """An RFC 6962 inclusion proof."""

    index: int
    tree_size: int
    leaf_hash: str
    root: str
    proof: list[str]


class ConsistencyOut(BaseModel):
    """An RFC 6962 consistency proof between two tree sizes."""

    first: int
    second: int
    first_root: str
    second_root: str
    proof: list[str]


def _log(request: Request) -> TreeLog:
    return services_of(request).audit


def _line(entry: AuditEntry) -> dict[str, Any]:
    return export_line(orjson.loads(entry.record), entry.record, entry.leaf_hash)


def _checkpoint(stored: StoredCheckpoint) -> CheckpointOut:
    return CheckpointOut(
        tree_size=stored.size, root=stored.root.hex(), note=stored.note, issued_at=stored.issued_at
    )


async def _signed_size(log: TreeLog, size: int | None) -> int:
    """The requested tree size, or the latest checkpoint's, checked against the log."""
    current = await log.size()
    if size is None:
        latest = await log.latest_checkpoint()
        size = latest.size if latest is not None else current
    if size > current:
        raise NotFound(f"no tree of {size} records: the log has {current}")
    return size


@router.get("/checkpoint", summary="The latest signed checkpoint (or a fresh one)")
async def checkpoint(
    request: Request,
    fresh: Annotated[bool, Query(description="Sign a checkpoint of the log as it is now.")] = False,
) -> CheckpointOut:
    """The newest signed checkpoint; with `fresh=true`, or if none exists yet, one issued now."""
    services = services_of(request)
    latest = None if fresh else await services.audit.latest_checkpoint()
    if latest is None:
        if services.checkpoints.signer is None:
            raise NotReady("no checkpoint signing key is loaded")
        latest = await services.checkpoints.issue()
    return _checkpoint(latest)


@router.get("/entries", summary="A page of audit records")
async def entries(
    request: Request,
    start: Annotated[int, Query(ge=0, le=MAX_INDEX)] = 0,
    end: Annotated[
        int | None,
        Query(
            ge=0,
            le=MAX_INDEX,
            description=f"Exclusive; a page holds at most {PAGE_MAX} records (the answer's "
            "`end` says where it stopped); at or before start, the page is empty.",
        ),
    ] = None,
) -> EntriesOut:
    """Records with `start <= index < end` (at most PAGE_MAX) as export lines."""
    log = _log(request)
    stop = start + PAGE_MAX if end is None else min(max(end, start), start + PAGE_MAX)
    rows = await log.entries(start, stop)
    size = await log.size()
    return EntriesOut(start=start, end=min(stop, size), size=size, entries=[_line(r) for r in rows])


@router.get("/entries/{decision_id}", summary="The audit record of one decision")
async def entry(request: Request, decision_id: str) -> dict[str, Any]:
    """The export line of the record with this decision id; 404 if there is none."""
    found = await _log(request).entry(decision_id)
    if found is None:
        raise NotFound(f"no audit record for decision {decision_id}")
    return _line(found)


@router.get("/proof/inclusion", summary="Inclusion proof of one record")
async def inclusion(
    request: Request,
    index: Annotated[int, Query(ge=0, le=MAX_INDEX, description="Below tree_size (404 if not).")],
    tree_size: Annotated[
        int | None,
        Query(
            ge=1, le=MAX_INDEX, description="Default: latest checkpoint; a size past the log: 404."
        ),
    ] = None,
) -> InclusionOut:
    """The audit path of record `index` in the tree of `tree_size` records."""
    log = _log(request)
    size = await _signed_size(log, tree_size)
    if index >= size:
        raise NotFound(f"no record {index} in a tree of {size} records")
    [row] = await log.entries(index, index + 1)
    proof = await log.inclusion_proof(index, size)
    root = await log.root(size)
    return InclusionOut(
        index=index,
        tree_size=size,
        leaf_hash=row.leaf_hash.hex(),
        root=root.hex(),
        proof=[p.hex() for p in proof],
    )


@router.get("/proof/consistency", summary="Consistency proof between two tree sizes")
async def consistency(
    request: Request,
    first: Annotated[int, Query(ge=1, le=MAX_INDEX, description="At most second (404 if not).")],
    second: Annotated[
        int | None,
        Query(
            ge=1, le=MAX_INDEX, description="Default: latest checkpoint; a size past the log: 404."
        ),
    ] = None,
) -> ConsistencyOut:
    """The proof that the first `first` records are a prefix of the first `second` records."""
    log = _log(request)
    size = await _signed_size(log, second)
    if first > size:
        raise NotFound(f"no consistency proof from a tree of {first} to a smaller one of {size}")
    proof = await log.consistency_proof(first, size)
    return ConsistencyOut(
        first=first,
        second=size,
        first_root=(await log.root(first)).hex(),
        second_root=(await log.root(size)).hex(),
        proof=[p.hex() for p in proof],
    )
