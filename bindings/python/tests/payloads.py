"""Deterministic payloads shared by the tests and their child processes."""

from __future__ import annotations

import random
import zlib


def payload(seed: int, seq: int, size: int) -> bytes:
    """``size`` bytes determined by (seed, seq)."""
    rng = random.Random(seed * 1_000_003 + seq)
    return rng.randbytes(size)


def sizes(seed: int, n: int, small: int = 200, large: int = 70_000) -> list[int]:
    """A mix of inline, slot and mmap-sized payloads."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.7:
            out.append(rng.randrange(0, small))
        elif r < 0.98:
            out.append(rng.randrange(small, 16_000))
        else:
            out.append(rng.randrange(16_000, large))
    return out


def crc(data: bytes | memoryview, value: int = 0) -> int:
    return zlib.crc32(data, value)
