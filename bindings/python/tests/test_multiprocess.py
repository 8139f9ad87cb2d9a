"""Python host with spawned Python guest processes: volume with checksums, SIGKILL."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor

import pytest

import mp_helpers
import roam_shm
from payloads import crc

GUESTS = 4
PER_GUEST = 25_000  # 100,000 messages each way in total


def echo_until_done(host: roam_shm.Host, expected_guests: int, deadline: float) -> dict[int, int]:
    """Echo every message back; return the crc of what each peer sent."""
    crcs: dict[int, int] = {}
    gone = 0
    while gone < expected_guests:
        assert time.monotonic() < deadline, "guests did not finish in time"
        for ev in host.poll(1.0):
            if ev.kind == "connected":
                crcs[ev.peer] = 0
            elif ev.kind == "peer_gone":
                gone += 1
            elif ev.kind == "readable":
                for msg in host.messages(ev.peer):
                    crcs[ev.peer] = crc(msg.data, crcs[ev.peer])
                    host.send(ev.peer, msg, timeout=30)
    return crcs


@pytest.mark.timeout(600)
def test_spawned_guests_exchange_100k_messages(sock: str) -> None:
    ctx = mp.get_context("spawn")
    with roam_shm.Host(sock, max_guests=GUESTS) as host:
        with ProcessPoolExecutor(GUESTS, mp_context=ctx) as ex:
            futures = [
                ex.submit(mp_helpers.echo_client, sock, seed, PER_GUEST, 32)
                for seed in range(1, GUESTS + 1)
            ]
            host_crcs = echo_until_done(host, GUESTS, time.monotonic() + 540)
            results = [f.result(timeout=60) for f in futures]
        assert sum(r[1] for r in results) == GUESTS * PER_GUEST
        for peer, received, crc_sent, crc_recv in results:
            assert received == PER_GUEST
            assert crc_sent == crc_recv == host_crcs[peer]
        assert host.peers == []
        assert sum(s.allocated for s in host.pool_stats()) == 0


def test_sigkilled_guest_is_recovered(sock: str) -> None:
    ctx = mp.get_context("spawn")
    with roam_shm.Host(sock) as host:
        proc = ctx.Process(target=mp_helpers.flood, args=(sock,))
        proc.start()
        peer = host.accept(timeout=60)
        # Mid-stream: the guest fills its ring and slots while the host sends to it too.
        deadline = time.monotonic() + 30
        while sum(s.allocated for s in host.pool_stats()) < 5:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        for _ in range(10):
            host.try_send(peer, b"h" * 5000)
        assert proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
        gone: list[roam_shm.HostEvent] = []
        deadline = time.monotonic() + 30
        while not gone:
            assert time.monotonic() < deadline
            gone = [e for e in host.poll(1.0) if e.kind == "peer_gone"]
        ev = gone[0]
        assert ev.peer == peer and ev.recovery is not None
        assert ev.reason in ("doorbell_closed", "process_gone")
        assert ev.recovery.reclaimed_slots + ev.recovery.drained_frames > 0
        assert ev.recovery.drained_frames == 10
        assert [s.allocated for s in host.pool_stats()] == [0, 0, 0]
        assert host.peers == []
        # The peer entry is reusable.
        from conftest import connect

        g, p2 = connect(host, sock)
        g.send(b"again")
        assert bytes(host.recv(p2, timeout=5)) == b"again"
        g.close()
