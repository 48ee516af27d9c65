"""Kafka's default partitioner: the Java client's murmur2 of the key, one key or many at once."""

from __future__ import annotations

import struct
from array import array
from collections.abc import Sequence

_WORDS: dict[int, struct.Struct] = {}


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (the Java client's key hash), reading whole 32-bit words at once."""
    length = len(data)
    h = 0x9747B28C ^ length
    n4 = length >> 2
    if n4:
        words = _WORDS.get(n4)
        if words is None:
            words = _WORDS[n4] = struct.Struct(f"<{n4}I")
        for word in words.unpack_from(data):
            k = (word * 0x5BD1E995) & 0xFFFFFFFF
            h = ((h * 0x5BD1E995) ^ ((k ^ (k >> 24)) * 0x5BD1E995)) & 0xFFFFFFFF
    rest = length & 3
    if rest:
        tail = length & ~3
        if rest == 3:
            h ^= data[tail + 2] << 16
        if rest >= 2:
            h ^= data[tail + 1] << 8
        h = ((h ^ data[tail]) * 0x5BD1E995) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0x5BD1E995) & 0xFFFFFFFF
    return h ^ (h >> 15)


def key_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for a key."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


_M = 0x5BD1E995
_LANES: dict[int, tuple[int, int]] = {}  # lane count -> (1 in every lane, 2**32-1 in every lane)
_SWAR_MIN = 16  # fewer keys than this: one by one
_SWAR_MAX_LEN = 256  # longer keys are hashed one by one (the lanes would be mostly padding)


def murmur2_many(keys: Sequence[bytes]) -> list[int]:
    """``murmur2(key) & 0x7FFFFFFF`` of many keys at once.

    Every key gets a 64-bit lane of one big integer and each step of the hash runs on all the
    lanes in one integer operation (the lanes hold 32-bit values, so a product by a 32-bit
    constant never reaches the next lane; bits shifted in from a neighbour are masked off).
    Keys of different lengths share the pass: lane masks pick, word by word, the lanes that
    take a full word, the lanes that take their tail, and the lanes that are already done.
    """
    n = len(keys)
    if n < _SWAR_MIN:
        return [murmur2(k) & 0x7FFFFFFF for k in keys]
    lens = array("Q", map(len, keys))
    lo, hi = min(lens), max(lens)
    if hi > _SWAR_MAX_LEN:
        short = [i for i, size in enumerate(lens) if size <= _SWAR_MAX_LEN]
        out = [0] * n
        for i, h in zip(short, murmur2_many([keys[i] for i in short]), strict=True):
            out[i] = h
        for i, size in enumerate(lens):
            if size > _SWAR_MAX_LEN:
                out[i] = murmur2(keys[i]) & 0x7FFFFFFF
        return out
    lanes = _LANES.get(n)
    if lanes is None:
        ones = int.from_bytes(b"\x01\x00\x00\x00\x00\x00\x00\x00" * n, "little")
        lanes = _LANES[n] = (ones, ones * 0xFFFFFFFF)
        if len(_LANES) > 64:
            _LANES.pop(next(iter(_LANES)))
    ones, m32 = lanes
    words = (hi + 3) >> 2
    width = words * 4
    size_lanes = int.from_bytes(lens, "little")
    h = size_lanes ^ (ones * 0x9747B28C)
    matrix = b"".join(keys) if lo == width else b"".join([k.ljust(width, b"\0") for k in keys])
    lane = bytearray(8 * n)
    if lo != hi:
        n4 = (size_lanes >> 2) & m32
        has_tail = (((size_lanes & (ones * 3)) + m32) >> 32) & ones
    for j in range(words):
        base = 4 * j
        for b in range(4):
            lane[b::8] = matrix[base + b :: width]
        w = int.from_bytes(lane, "little")
        if lo == hi:  # every lane takes the same step
            if base + 4 <= lo:
                k = (w * _M) & m32
                k = (((k ^ (k >> 24)) & m32) * _M) & m32
                h = ((h * _M) & m32) ^ k
            else:
                h = ((h ^ w) * _M) & m32
            continue
        full = ((n4 + ones * (0xFFFFFFFF - j)) >> 32) & ones  # n4 > j: a whole word
        tail = ((((n4 + ones * (0x100000000 - j)) >> 32) & ones) ^ full) & has_tail  # n4 == j
        k = (w * _M) & m32
        k = (((k ^ (k >> 24)) & m32) * _M) & m32
        full_mask = full * 0xFFFFFFFF
        tail_mask = tail * 0xFFFFFFFF
        h = (
            ((((h * _M) & m32) ^ k) & full_mask)
            | ((((h ^ w) * _M) & m32) & tail_mask)
            | (h & (m32 ^ full_mask ^ tail_mask))
        )
    h = (h ^ (h >> 13)) & m32
    h = (h * _M) & m32
    h = (h ^ (h >> 15)) & (ones * 0x7FFFFFFF)
    return array("Q", h.to_bytes(8 * n, "little")).tolist()
