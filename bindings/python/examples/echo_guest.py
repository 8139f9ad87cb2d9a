"""Connect to a roam-shm echo host, send mixed-size messages, check every echo.

    python echo_guest.py SOCKET [COUNT]

Small payloads travel inline in the ring, medium ones in a slot of the shared pool,
large ones in a mapped region; half are sent by copy, half written in place through
a zero-copy reservation. Echoes are received as zero-copy views and compared byte
for byte with what was sent.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections import Counter, deque

import roam_shm


def payload(seq: int, size: int) -> bytes:
    seed = hashlib.blake2b(seq.to_bytes(8, "little"), digest_size=32).digest()
    return (seed * (size // 32 + 1))[:size]


def size_of(seq: int) -> int:
    r = (seq * 2654435761) % 1000
    if r < 700:
        return r % 200  # inline
    if r < 980:
        return 300 + r * 97  # slot
    return 300_000 + r * 500  # mapped region


def main() -> int:
    sock = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    window = 8
    kinds: Counter[str] = Counter()
    in_flight: deque[int] = deque()
    sent = received = total = 0
    start = time.perf_counter()
    with roam_shm.Guest(sock) as g:
        while received < count:
            while sent < count and len(in_flight) < window:
                data = payload(sent, size_of(sent))
                if sent % 2:
                    g.send(data, timeout=10.0)
                else:
                    with g.reserve(len(data)) as r:
                        r.buffer[:] = data
                in_flight.append(sent)
                sent += 1
                total += len(data)
            msg = g.recv(timeout=10.0)
            seq = in_flight.popleft()
            with msg, msg.data as view:
                if view != payload(seq, size_of(seq)):
                    print(f"python guest: echo {seq} differs", file=sys.stderr)
                    return 1
                kinds[msg.kind] += 1
            received += 1
        peer = g.peer_id
    dt = time.perf_counter() - start
    print(
        f"python guest {peer}: {received} echoes verified ({dict(kinds)}), "
        f"{total} bytes each way, {received / dt:.0f} msg/s round trip"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
