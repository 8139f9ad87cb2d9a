"""Functions run in multiprocessing (spawn) children by test_multiprocess.py."""

from __future__ import annotations

from collections import deque

import roam_shm
from payloads import crc, payload, sizes


def echo_client(sock: str, seed: int, count: int, window: int) -> tuple[int, int, int, int]:
    """Send ``count`` payloads, check every echo byte for byte; return
    (peer_id, received, crc of sent, crc of received)."""
    g = roam_shm.Guest(sock, timeout=20)
    peer = g.peer_id
    lens = sizes(seed, count)
    pending: deque[bytes] = deque()
    sent = received = 0
    crc_sent = crc_recv = 0
    while received < count:
        while sent < count and sent - received < window:
            data = payload(seed, sent, lens[sent])
            g.send(data, timeout=60)
            crc_sent = crc(data, crc_sent)
            pending.append(data)
            sent += 1
        with g.recv(timeout=60) as msg:
            expected = pending.popleft()
            if msg.data != expected:
                raise AssertionError(f"echo #{received} differs ({len(msg)} vs {len(expected)} bytes)")
            crc_recv = crc(msg.data, crc_recv)
        received += 1
    g.close()
    return peer, received, crc_sent, crc_recv


def flood(sock: str) -> None:
    """Send slot-sized messages forever (until killed), never reading."""
    g = roam_shm.Guest(sock, timeout=20)
    i = 0
    while True:
        try:
            g.send(i.to_bytes(4, "little") * 750, timeout=0.05)
            i += 1
        except roam_shm.WouldBlock:
            pass
        except TimeoutError:
            pass
