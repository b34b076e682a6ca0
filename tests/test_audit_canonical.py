"""The fast canonical encoder is byte-for-byte RFC 8785 (`rfc8785`), on random and edge values."""

from __future__ import annotations

import random
import struct
from typing import Any

import orjson
import pytest
import rfc8785

from maestro_gate.core.ledger.chain import MAX_SAFE_INTEGER, canonical, is_canonical

ALPHABET = (
    [chr(c) for c in range(0x00, 0x80)]
    + ["é", "ß", "\u2028", "\u2029", "\u00a0", "\u07ff", "\u0800", "\ud7ff", "\ue000", "\uffff"]
    + ["\U00010000", "\U0001f600", "\U0010ffff", "中", "😀"]
)


def _string(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 8)))


def _float(rng: random.Random) -> float:
    choice = rng.random()
    if choice < 0.3:
        value: float = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        return value if value == value and abs(value) != float("inf") else 0.5
    if choice < 0.6:
        return rng.uniform(-1, 1) * 10 ** rng.randint(-30, 30)
    if choice < 0.8:
        return float(rng.randint(-(10**17), 10**17))
    return rng.choice(
        [0.0, -0.0, 1.0, 1e21, 1e-7, 1e-6, 1e16, 1e15, 0.1, 5e-324, 1.7976931348623157e308]
    )


def _value(rng: random.Random, depth: int = 0, floats: bool = True) -> Any:
    kinds = ["str", "int", "bool", "null", "bigint"] + (["float"] if floats else [])
    if depth < 4:
        kinds += ["dict", "dict", "list"]
    kind = rng.choice(kinds)
    if kind == "str":
        return _string(rng)
    if kind == "int":
        return rng.choice(
            [0, -1, 1, MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER, rng.randint(-(10**15), 10**15)]
        )
    if kind == "bigint":
        return rng.randint(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "float":
        return _float(rng)
    if kind == "list":
        return [_value(rng, depth + 1, floats) for _ in range(rng.randint(0, 4))]
    return {_string(rng): _value(rng, depth + 1, floats) for _ in range(rng.randint(0, 5))}


@pytest.mark.parametrize("seed", range(8))
def test_canonical_equals_rfc8785_on_random_values(seed: int) -> None:
    """`canonical` returns exactly `rfc8785.dumps` for random JSON values, floats included."""
    rng = random.Random(seed)
    for _ in range(2500):
        value = {"v": _value(rng)}
        assert canonical(value) == rfc8785.dumps(value)


@pytest.mark.parametrize("seed", range(8))
def test_is_canonical_agrees_with_rfc8785_on_random_bytes(seed: int) -> None:
    """`is_canonical` accepts RFC 8785 bytes and rejects orjson's differing forms of the value."""
    rng = random.Random(1000 + seed)
    for _ in range(2500):
        value = {"v": _value(rng)}
        reference = rfc8785.dumps(value)
        assert is_canonical(reference)
        other = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        assert is_canonical(other) is (other == reference)


def test_float_forms_match_rfc8785() -> None:
    """Floats over many magnitudes: orjson forms that differ from ECMAScript are never accepted."""
    rng = random.Random(7)
    for _ in range(40000):
        value = {"x": _float(rng)}
        ours = orjson.dumps(value)
        assert is_canonical(ours) is (ours == rfc8785.dumps(value))
        assert canonical(value) == rfc8785.dumps(value)


@pytest.mark.parametrize(
    "value",
    [
        {"\ue000": 1, "\U0001f600": 2},
        {"a": 2**53},
        {"a": -(2**53)},
        {"a": 1.0},
        {"a": -0.0},
        {"a": "\u0000\u001f\u007f\u2028"},
        {"a": [1e21, 1e-7, 123.456]},
        {"id": "8c6c1b1e-9a0e-4a8e-9d3c-6f1f6c1b1e9a", "n": 3},
    ],
)
def test_edge_values(value: dict[str, Any]) -> None:
    """Sort-order, integer-range, float and escape edge cases go the RFC 8785 way."""
    try:
        expected = rfc8785.dumps(value)
    except ValueError:
        with pytest.raises(ValueError, match=r"."):
            canonical(value)
        return
    assert canonical(value) == expected
    assert is_canonical(expected)


@pytest.mark.parametrize(
    "data",
    [b'{"b":1,"a":2}', b'{"a": 1}', b'{"a":1,"a":1}', b'{"a":1.50}', b'{"a":"\\u00E9"}', b"nope"],
)
def test_non_canonical_bytes_are_refused(data: bytes) -> None:
    """Unsorted keys, whitespace, duplicate keys, padded numbers, odd escapes, non-JSON: refused."""
    assert not is_canonical(data)


@pytest.mark.parametrize(
    "value", [{"a": float("nan")}, {"a": float("inf")}, {1: "x"}, {"a": object()}]
)
def test_values_jcs_cannot_represent_are_rejected(value: Any) -> None:
    """NaN, infinities, non-string keys and non-JSON types raise instead of being written."""
    with pytest.raises((ValueError, TypeError)):
        canonical(value)
