"""RFC 6962 tree math against transparency-dev's published vectors and a naive reference tree."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from maestro_gate.core.ledger import merkle

VECTORS = Path(__file__).parent / "data" / "merkle"


def _load(kind: str) -> list[Any]:
    files = sorted((VECTORS / kind).rglob("*.json"))
    assert files, f"no {kind} vectors under {VECTORS}"
    return [pytest.param(json.loads(f.read_text()), id=str(f.relative_to(VECTORS))) for f in files]


def _b(value: str | None) -> bytes:
    return base64.b64decode(value) if value else b""


def _proof(vector: dict[str, Any]) -> list[bytes]:
    return [_b(p) for p in vector["proof"] or []]


def _outcome(check: Any, *args: Any) -> bool:
    try:
        check(*args)
    except merkle.ProofError:
        return False
    return True


@pytest.mark.parametrize("vector", _load("inclusion"))
def test_inclusion_vector(vector: dict[str, Any]) -> None:
    """Every transparency-dev inclusion probe verifies exactly when it should."""
    ok = _outcome(
        merkle.verify_inclusion,
        _b(vector["leafHash"]),
        vector["leafIdx"],
        vector["treeSize"],
        _proof(vector),
        _b(vector["root"]),
    )
    assert ok is not vector["wantErr"], vector["desc"]


@pytest.mark.parametrize("vector", _load("consistency"))
def test_consistency_vector(vector: dict[str, Any]) -> None:
    """Every transparency-dev consistency probe verifies exactly when it should."""
    ok = _outcome(
        merkle.verify_consistency,
        vector["size1"],
        vector["size2"],
        _b(vector["root1"]),
        _b(vector["root2"]),
        _proof(vector),
    )
    assert ok is not vector["wantErr"], vector["desc"]


@pytest.mark.parametrize("vector", _load("subtreeinclusion"))
def test_subtree_inclusion_vector(vector: dict[str, Any]) -> None:
    """Every subtree inclusion probe verifies exactly when it should."""
    ok = _outcome(
        merkle.verify_subtree_inclusion,
        _b(vector["leafHash"]),
        vector["leafIdx"],
        vector["start"],
        vector["end"],
        _proof(vector),
        _b(vector["root"]),
    )
    assert ok is not vector["wantErr"], vector["desc"]


@pytest.mark.parametrize("vector", _load("subtreeconsistency"))
def test_subtree_consistency_vector(vector: dict[str, Any]) -> None:
    """Every subtree consistency probe verifies exactly when it should."""
    ok = _outcome(
        merkle.verify_subtree_consistency,
        vector["start"],
        vector["end"],
        vector["size"],
        _proof(vector),
        _b(vector["root1"]),
        _b(vector["root2"]),
    )
    assert ok is not vector["wantErr"], vector["desc"]


def _leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(f"leaf {i}".encode()) for i in range(n)]


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 §2.1 written recursively, as the reference the fast code is compared with."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return merkle.node_hash(_mth(leaves[:k]), _mth(leaves[k:]))


def _reader(leaves: list[bytes]) -> merkle.NodeReader:
    tree = merkle.levels(leaves)

    def read(nodes: list[merkle.Node]) -> Mapping[merkle.Node, bytes]:
        return {(lv, i): tree[lv][i] for lv, i in nodes}

    return read


def test_roots_match_the_recursive_definition() -> None:
    """Roots folded from stored complete subtrees equal RFC 6962's recursive MTH for 0..70."""
    leaves = _leaves(70)
    read = _reader(leaves)
    tree = merkle.levels(leaves)
    for n in range(71):
        assert merkle.root(n, read) == _mth(leaves[:n])
        if n:
            assert merkle.root_from_levels(tree, n) == _mth(leaves[:n])


def test_generated_proofs_verify_and_have_rfc_lengths() -> None:
    """Inclusion and consistency proofs built from stored nodes verify for every size to 40."""
    leaves = _leaves(40)
    read = _reader(leaves)
    for size in range(1, 41):
        root = _mth(leaves[:size])
        for index in range(size):
            proof = merkle.inclusion_proof(index, size, read)
            merkle.verify_inclusion(leaves[index], index, size, proof, root)
        for first in range(1, size + 1):
            proof = merkle.consistency_proof(first, size, read)
            merkle.verify_consistency(first, size, _mth(leaves[:first]), root, proof)


def test_rfc6962_worked_example_lengths() -> None:
    """RFC 6962 §2.1.3: PROOF(3,D[7]) has 4 nodes, PROOF(4,D[7]) 1, PROOF(6,D[7]) 3."""
    assert len(merkle.consistency_ranges(3, 7)) == 4
    assert merkle.consistency_ranges(4, 7) == [(4, 7)]
    assert len(merkle.consistency_ranges(6, 7)) == 3


def test_extend_produces_every_new_complete_node() -> None:
    """Appending in uneven batches yields exactly the complete subtrees of the final tree."""
    leaves = _leaves(100)
    tree = merkle.levels(leaves)
    stored: dict[merkle.Node, bytes] = {}
    size = 0
    for batch in (1, 2, 3, 7, 1, 16, 30, 40):
        frontier = {
            n: (leaves[n[1]] if n[0] == 0 else stored[n]) for n in merkle.complete_nodes(0, size)
        }
        stored.update(merkle.extend(size, frontier, leaves[size : size + batch]))
        size += batch
    expected = {(lv, i): h for lv, hashes in enumerate(tree) if lv for i, h in enumerate(hashes)}
    assert stored == expected


def test_tampered_leaf_fails_inclusion() -> None:
    """A proof for one leaf does not verify another leaf's hash at the same index."""
    leaves = _leaves(9)
    proof = merkle.inclusion_proof(4, 9, _reader(leaves))
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(leaves[5], 4, 9, proof, _mth(leaves))
