"""RFC 6962 Merkle tree math: hashes, roots, inclusion and consistency proofs, their checks.

Leaf `SHA-256(0x00 || data)`, node `SHA-256(0x01 || left || right)`, empty tree `SHA-256()`.
Stores keep the hash of every *complete* subtree, named `(level, index)`: level 0 is the leaves,
node `(l, i)` covers leaves `[i * 2**l, (i + 1) * 2**l)`. Any root or proof is then a fold over
O(log n) stored nodes (`complete_nodes`), fetched in one read through a `NodeReader`.
Verification follows RFC 9162 §2.1.3.2 / §2.1.4.2 and, for subtrees, the Merkle Tree
Certificates draft; it checks exact proof lengths, as transparency-dev/merkle does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

Node = tuple[int, int]
"""A complete subtree: (level, index on that level)."""

NodeReader = Callable[[list[Node]], Mapping[Node, bytes]]
"""Fetches stored node hashes; must return every node asked for."""


class ProofError(ValueError):
    """A proof does not verify or its parameters are impossible."""


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def complete_nodes(begin: int, end: int) -> list[Node]:
    """The maximal complete subtrees covering leaves `[begin, end)`, left to right."""
    nodes: list[Node] = []
    while begin < end:
        level = (end - begin).bit_length() - 1
        if begin:
            level = min(level, (begin & -begin).bit_length() - 1)
        nodes.append((level, begin >> level))
        begin += 1 << level
    return nodes


def fold(hashes: Sequence[bytes]) -> bytes:
    """The RFC 6962 hash of a range given its complete subtrees, left to right."""
    if not hashes:
        return EMPTY_ROOT
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes form PATH(index, D[size]), deepest first (RFC 6962 §2.1.1)."""
    if not 0 <= index < size:
        raise ProofError(f"index {index} is not in a tree of size {size}")
    ranges: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
    return ranges[::-1]


def consistency_ranges(first: int, second: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes form PROOF(first, D[second]), deepest first (§2.1.2)."""
    if not 0 < first <= second:
        raise ProofError(f"no consistency proof from size {first} to size {second}")
    ranges: list[tuple[int, int]] = []
    lo, hi, m, whole = 0, second, first, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    if not whole:
        ranges.append((lo, hi))
    return ranges[::-1]


def range_hashes(ranges: Sequence[tuple[int, int]], read: NodeReader) -> list[bytes]:
    """The hash of each range, from one read of the complete subtrees they are made of."""
    parts = [complete_nodes(lo, hi) for lo, hi in ranges]
    wanted = sorted({node for nodes in parts for node in nodes})
    stored = read(wanted) if wanted else {}
    return [fold([stored[node] for node in nodes]) for nodes in parts]


def root(size: int, read: NodeReader) -> bytes:
    """The root of the first `size` leaves."""
    return range_hashes([(0, size)], read)[0] if size else EMPTY_ROOT


def inclusion_proof(index: int, size: int, read: NodeReader) -> list[bytes]:
    """The audit path of leaf `index` in the tree of `size` leaves."""
    return range_hashes(inclusion_ranges(index, size), read)


def consistency_proof(first: int, second: int, read: NodeReader) -> list[bytes]:
    """The proof that the tree of `first` leaves is a prefix of the tree of `second` leaves."""
    return range_hashes(consistency_ranges(first, second), read)


def extend(size: int, frontier: Mapping[Node, bytes], leaves: Sequence[bytes]) -> dict[Node, bytes]:
    """Interior nodes completed by appending `leaves` to a tree of `size` leaves.

    `frontier` holds the hashes of `complete_nodes(0, size)`; the result has every new complete
    node of level 1 and above (the leaves themselves are level 0).
    """
    known: dict[Node, bytes] = dict(frontier)
    known.update(((0, size + i), leaf) for i, leaf in enumerate(leaves))
    end = size + len(leaves)
    created: dict[Node, bytes] = {}
    level = 1
    while (1 << level) <= end:
        for index in range(size >> level, end >> level):
            value = node_hash(known[(level - 1, 2 * index)], known[(level - 1, 2 * index + 1)])
            known[(level, index)] = created[(level, index)] = value
        level += 1
    return created


def levels(leaves: list[bytes]) -> list[list[bytes]]:
    """Every complete subtree hash, level by level, computed in bulk from the leaf hashes."""
    out = [leaves]
    sha = hashlib.sha256
    while len(out[-1]) > 1:
        below = out[-1]
        out.append(
            [sha(b"\x01" + below[i] + below[i + 1]).digest() for i in range(0, len(below) - 1, 2)]
        )
    return out


def root_from_levels(tree: list[list[bytes]], size: int) -> bytes:
    """The root of the first `size` leaves of a tree built by `levels`."""
    return fold([tree[level][index] for level, index in complete_nodes(0, size)])


def _check_hashes(*hashes: bytes | Iterable[bytes]) -> None:
    for item in hashes:
        for value in [item] if isinstance(item, bytes) else item:
            if len(value) != HASH_SIZE:
                raise ProofError(f"a hash is {len(value)} bytes, not {HASH_SIZE}")


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], expected_root: bytes
) -> None:
    """Check an inclusion proof (RFC 9162 §2.1.3.2); raise ProofError if it fails."""
    if not 0 <= index < size:
        raise ProofError(f"index {index} is not in a tree of size {size}")
    _check_hashes(leaf, proof)
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("inclusion proof is too short")
    if r != expected_root:
        raise ProofError("inclusion proof does not lead to the expected root")


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check a consistency proof (RFC 9162 §2.1.4.2); raise ProofError if it fails."""
    if first == 0 or second < first:
        raise ProofError(f"no consistency proof from size {first} to size {second}")
    if first == second:
        if proof:
            raise ProofError("equal sizes need an empty consistency proof")
        if first_root != second_root:
            raise ProofError("equal sizes but different roots")
        return
    _check_hashes(first_root, second_root, proof)
    if not proof:
        raise ProofError("consistency proof is empty")
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if fr != first_root:
        raise ProofError("consistency proof does not lead to the first root")
    if sr != second_root:
        raise ProofError("consistency proof does not lead to the second root")


def valid_subtree(start: int, end: int) -> bool:
    """True when `[start, end)` is a subtree: non-empty, `start` aligned to 2**ceil(log2 size)."""
    if not 0 <= start < end:
        return False
    width = 1 << (end - start - 1).bit_length()
    return start % width == 0


def verify_subtree_inclusion(
    leaf: bytes, index: int, start: int, end: int, proof: Sequence[bytes], subtree_root: bytes
) -> None:
    """Check that leaf `index` is in the subtree `[start, end)` with the given hash."""
    if not valid_subtree(start, end):
        raise ProofError(f"[{start}, {end}) is not a subtree")
    if not start <= index < end:
        raise ProofError(f"index {index} is outside the subtree [{start}, {end})")
    verify_inclusion(leaf, index - start, end - start, proof, subtree_root)


def verify_subtree_consistency(
    start: int,
    end: int,
    size: int,
    proof: Sequence[bytes],
    subtree_root: bytes,
    tree_root: bytes,
) -> None:
    """Check that the subtree `[start, end)` with the given hash sits in the tree of `size`.

    An empty subtree (`start == end <= size`) is vacuously consistent when its hash is the empty
    root and the proof is empty, as transparency-dev/merkle defines it.
    """
    if start == end and 0 <= start <= size:
        if proof or subtree_root != EMPTY_ROOT:
            raise ProofError("an empty subtree has the empty root and an empty proof")
        return
    if not valid_subtree(start, end) or end > size:
        raise ProofError(f"[{start}, {end}) is not a subtree of a tree of size {size}")
    if start == 0 and end == size:
        if proof or subtree_root != tree_root:
            raise ProofError("the whole tree needs an empty proof and equal roots")
        return
    _check_hashes(subtree_root, tree_root, proof)
    fn, sn, tn = start, end - 1, size - 1
    if sn == tn:
        while fn != sn:
            fn, sn, tn = fn >> 1, sn >> 1, tn >> 1
    else:
        while fn != sn and sn & 1:
            fn, sn, tn = fn >> 1, sn >> 1, tn >> 1
    rest = list(proof)
    if fn == sn:
        fr = sr = subtree_root
    else:
        if not rest:
            raise ProofError("subtree consistency proof is empty")
        fr = sr = rest.pop(0)
    for c in rest:
        if tn == 0:
            raise ProofError("subtree consistency proof is too long")
        if sn & 1 or sn == tn:
            if fn < sn:
                fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while sn and not sn & 1:
                fn, sn, tn = fn >> 1, sn >> 1, tn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn, tn = fn >> 1, sn >> 1, tn >> 1
    if tn != 0:
        raise ProofError("subtree consistency proof is too short")
    if fr != subtree_root:
        raise ProofError("subtree consistency proof does not lead to the subtree hash")
    if sr != tree_root:
        raise ProofError("subtree consistency proof does not lead to the tree root")
