#!/usr/bin/env python3
"""Round-trip latency and messages/s: roam_shm vs multiprocessing.Queue vs
multiprocessing.shared_memory + a Pipe, in one run, each against a spawned echo
process.

    python bindings/python/bench/bench.py            # full run (about a minute)
    python bindings/python/bench/bench.py --quick    # a few seconds

Latency: one message at a time, p50/p99 of the round trip. Throughput: up to WINDOW
messages in flight, echoes counted per second. The machine is noisy (2 shared vCPUs):
compare the rows of one run, not absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from typing import Protocol

import roam_shm

WINDOW = 32


class Transport(Protocol):
    def send(self, data: bytes) -> None: ...
    def recv(self) -> int: ...  # returns the echoed length
    def close(self) -> None: ...


# --- echo children (module level: spawn imports them) -------------------------------


def roam_echo(sock: str) -> None:
    with roam_shm.Guest(sock, timeout=30) as g:
        for msg in g:
            g.send(msg, timeout=30)
            msg.release()


def queue_echo(inq: mp.Queue[bytes | None], outq: mp.Queue[bytes]) -> None:
    while (item := inq.get()) is not None:
        outq.put(item)


def shm_echo(conn: Connection, name_in: str, name_out: str, slot: int) -> None:
    shm_in = SharedMemory(name_in)
    shm_out = SharedMemory(name_out)
    try:
        while True:
            hdr = conn.recv_bytes()
            if not hdr:
                break
            idx = int.from_bytes(hdr[:4], "little")
            n = int.from_bytes(hdr[4:], "little")
            off = idx * slot
            assert shm_in.buf is not None and shm_out.buf is not None
            shm_out.buf[off : off + n] = shm_in.buf[off : off + n]
            conn.send_bytes(hdr)
    finally:
        shm_in.close()
        shm_out.close()


# --- parent sides ---------------------------------------------------------------------


class RoamTransport:
    def __init__(self, ctx: mp.context.SpawnContext) -> None:
        self.dir = tempfile.mkdtemp(prefix="roam-bench-", dir="/tmp")
        sock = os.path.join(self.dir, "s")
        self.host = roam_shm.Host(sock, size_classes=[(1024, 256), (65 * 1024, 64)])
        self.proc = ctx.Process(target=roam_echo, args=(sock,))
        self.proc.start()
        self.peer = self.host.accept(timeout=60)

    def send(self, data: bytes) -> None:
        self.host.send(self.peer, data, timeout=30)

    def recv(self) -> int:
        with self.host.recv(self.peer, timeout=30) as m:
            return len(m)

    def close(self) -> None:
        self.host.close()
        self.proc.join(10)
        os.rmdir(self.dir)


class QueueTransport:
    def __init__(self, ctx: mp.context.SpawnContext) -> None:
        self.inq: mp.Queue[bytes | None] = ctx.Queue()
        self.outq: mp.Queue[bytes] = ctx.Queue()
        self.proc = ctx.Process(target=queue_echo, args=(self.inq, self.outq))
        self.proc.start()

    def send(self, data: bytes) -> None:
        self.inq.put(data)

    def recv(self) -> int:
        return len(self.outq.get(timeout=30))

    def close(self) -> None:
        self.inq.put(None)
        self.proc.join(10)


class ShmPipeTransport:
    """Payload in multiprocessing.shared_memory (WINDOW slots), slot index over a Pipe."""

    def __init__(self, ctx: mp.context.SpawnContext, size: int) -> None:
        self.slot = max(size, 1)
        self.shm_in = SharedMemory(create=True, size=self.slot * WINDOW)
        self.shm_out = SharedMemory(create=True, size=self.slot * WINDOW)
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=shm_echo, args=(child, self.shm_in.name, self.shm_out.name, self.slot)
        )
        self.proc.start()
        self.next = 0

    def send(self, data: bytes) -> None:
        idx = self.next % WINDOW
        self.next += 1
        off = idx * self.slot
        assert self.shm_in.buf is not None
        self.shm_in.buf[off : off + len(data)] = data
        self.conn.send_bytes(idx.to_bytes(4, "little") + len(data).to_bytes(4, "little"))

    def recv(self) -> int:
        hdr = self.conn.recv_bytes()
        idx = int.from_bytes(hdr[:4], "little")
        n = int.from_bytes(hdr[4:], "little")
        off = idx * self.slot
        assert self.shm_out.buf is not None
        return len(bytes(self.shm_out.buf[off : off + n]))

    def close(self) -> None:
        self.conn.send_bytes(b"")
        self.proc.join(10)
        for s in (self.shm_in, self.shm_out):
            s.close()
            s.unlink()


def latency(t: Transport, data: bytes, n: int) -> tuple[float, float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter_ns()
        t.send(data)
        got = t.recv()
        samples.append(time.perf_counter_ns() - start)
        assert got == len(data)
    samples.sort()
    return statistics.median(samples) / 1000, samples[int(len(samples) * 0.99) - 1] / 1000


def throughput(t: Transport, data: bytes, n: int) -> float:
    start = time.perf_counter()
    sent = received = 0
    while received < n:
        while sent < n and sent - received < WINDOW:
            t.send(data)
            sent += 1
        assert t.recv() == len(data)
        received += 1
    return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small counts: runs in seconds")
    ap.add_argument("--sizes", default="64,65536", help="payload sizes in bytes (comma-separated)")
    args = ap.parse_args()
    n_lat, n_tput = (300, 2000) if args.quick else (5000, 50_000)
    ctx = mp.get_context("spawn")
    sizes = [int(s) for s in args.sizes.split(",")]
    makers: dict[str, Callable[[int], Transport]] = {
        "roam_shm": lambda size: RoamTransport(ctx),
        "mp.Queue": lambda size: QueueTransport(ctx),
        "shared_memory+Pipe": lambda size: ShmPipeTransport(ctx, size),
    }
    if roam_shm.DEBUG_BUILD:
        print("warning: roam_shm is a debug build (maturin develop without --release), "
              "several times slower: rebuild with --release or pip install . to compare")
    print(f"roam_shm {roam_shm.__version__}; latency: {n_lat} round trips; throughput: "
          f"{n_tput} messages, window {WINDOW}")
    print(f"{'transport':<20} {'size':>7} {'rtt p50 us':>11} {'rtt p99 us':>11} {'msg/s':>10}")
    for size in sizes:
        data = os.urandom(size)
        for name, make in makers.items():
            t = make(size)
            try:
                latency(t, data, 20)  # warm-up
                p50, p99 = latency(t, data, n_lat)
                rate = throughput(t, data, n_tput)
            finally:
                t.close()
            print(f"{name:<20} {size:>7} {p50:>11.1f} {p99:>11.1f} {rate:>10.0f}", flush=True)


if __name__ == "__main__":
    main()
