"""The audit trail over HTTP: signed checkpoints, records, inclusion and consistency proofs.

Hashes are lower-case hex, as in `POST /v1/decide`'s `audit.leaf_hash` and the records' `prev`;
the checkpoint note carries its root in base64, as C2SP tlog-checkpoint specifies. A proof's tree
size defaults to the latest signed checkpoint, so clients check it against a signed root.
Indexes and sizes are bounded by MAX_INDEX in the schema: a record's `index` is an RFC 8785
number, so no log holds more than 2**53 - 1 records (past the bound: 422, as for any parameter
the schema refuses; within it, a value the log does not reach: 400).
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from maestro_gate.core.chain import MAX_SAFE_INTEGER
from maestro_gate.core.errors import InvalidRequest, NotFound, NotReady
from maestro_gate.core.ports import AuditEntry, StoredCheckpoint
from maestro_gate.core.records import export_line
from maestro_gate.wiring import Gate

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


def _gate(request: Request) -> Gate:
    gate: Gate = request.app.state.gate
    return gate


def _line(entry: AuditEntry) -> dict[str, Any]:
    return export_line(orjson.loads(entry.record), entry.record, entry.leaf_hash)


def _checkpoint(stored: StoredCheckpoint) -> CheckpointOut:
    return CheckpointOut(
        tree_size=stored.size, root=stored.root.hex(), note=stored.note, issued_at=stored.issued_at
    )


async def _signed_size(gate: Gate, size: int | None) -> int:
    """The requested tree size, or the latest checkpoint's, checked against the log."""
    current = await gate.audit.size()
    if size is None:
        latest = await gate.audit.latest_checkpoint()
        size = latest.size if latest is not None else current
    if size > current:
        raise InvalidRequest(f"tree size {size} is beyond the log's {current} records")
    return size


@router.get("/checkpoint", summary="The latest signed checkpoint (or a fresh one)")
async def checkpoint(
    request: Request,
    fresh: Annotated[bool, Query(description="Sign a checkpoint of the log as it is now.")] = False,
) -> CheckpointOut:
    """The newest signed checkpoint; with `fresh=true`, or if none exists yet, one issued now."""
    gate = _gate(request)
    latest = None if fresh else await gate.audit.latest_checkpoint()
    if latest is None:
        if gate.checkpointer is None or gate.checkpointer.signer is None:
            raise NotReady("no checkpoint signing key is loaded")
        latest = await gate.checkpointer.issue()
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
            description=f"Exclusive; at most {PAGE_MAX} after start (400 past it); "
            "at or before start, the page is empty.",
        ),
    ] = None,
) -> EntriesOut:
    """Records with `start <= index < end` (at most PAGE_MAX) as export lines."""
    gate = _gate(request)
    stop = start + PAGE_MAX if end is None else max(end, start)
    if stop - start > PAGE_MAX:
        raise InvalidRequest(f"end must be at most start + {PAGE_MAX}")
    rows = await gate.audit.entries(start, stop)
    size = await gate.audit.size()
    return EntriesOut(start=start, end=min(stop, size), size=size, entries=[_line(r) for r in rows])


@router.get("/entries/{decision_id}", summary="The audit record of one decision")
async def entry(request: Request, decision_id: str) -> dict[str, Any]:
    """The export line of the record with this decision id; 404 if there is none."""
    found = await _gate(request).audit.entry(decision_id)
    if found is None:
        raise NotFound(f"no audit record for decision {decision_id}")
    return _line(found)


@router.get("/proof/inclusion", summary="Inclusion proof of one record")
async def inclusion(
    request: Request,
    index: Annotated[int, Query(ge=0, le=MAX_INDEX, description="Below tree_size (400 if not).")],
    tree_size: Annotated[
        int | None,
        Query(
            ge=1, le=MAX_INDEX, description="Default: latest checkpoint; at most the log's size."
        ),
    ] = None,
) -> InclusionOut:
    """The audit path of record `index` in the tree of `tree_size` records."""
    gate = _gate(request)
    size = await _signed_size(gate, tree_size)
    if index >= size:
        raise InvalidRequest(f"index {index} is not in a tree of {size} records")
    [row] = await gate.audit.entries(index, index + 1)
    proof = await gate.audit.inclusion_proof(index, size)
    root = await gate.audit.root(size)
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
    first: Annotated[int, Query(ge=1, le=MAX_INDEX, description="At most second (400 if not).")],
    second: Annotated[
        int | None,
        Query(
            ge=1, le=MAX_INDEX, description="Default: latest checkpoint; at most the log's size."
        ),
    ] = None,
) -> ConsistencyOut:
    """The proof that the first `first` records are a prefix of the first `second` records."""
    gate = _gate(request)
    size = await _signed_size(gate, second)
    if first > size:
        raise InvalidRequest(f"first ({first}) must not exceed second ({size})")
    proof = await gate.audit.consistency_proof(first, size)
    return ConsistencyOut(
        first=first,
        second=size,
        first_root=(await gate.audit.root(first)).hex(),
        second_root=(await gate.audit.root(size)).hex(),
        proof=[p.hex() for p in proof],
    )
