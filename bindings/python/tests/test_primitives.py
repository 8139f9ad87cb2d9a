"""SharedMemory, BipBuffer, SpscRing, VarSlotPool, Doorbell and WaitCell."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import roam_shm


def test_shared_memory_memfd_and_views() -> None:
    with roam_shm.SharedMemory(4096) as shm:
        assert shm.size == len(shm) == 4096
        assert shm.path.startswith("/proc/")
        view = memoryview(shm)
        view[:5] = b"hello"
        with pytest.raises(BufferError):
            shm.close()
        other = roam_shm.SharedMemory.open(shm.path)
        assert bytes(memoryview(other)[:5]) == b"hello"
        other.close()
        by_fd = roam_shm.SharedMemory.from_fd(shm.fileno())
        assert bytes(memoryview(by_fd)[:5]) == b"hello"
        by_fd.close()
        view.release()
    assert shm.closed
    with pytest.raises(roam_shm.ClosedError):
        memoryview(shm)
    with pytest.raises(roam_shm.ClosedError):
        shm.fileno()


def test_shared_memory_file(tmpdir_short: Path) -> None:
    p = tmpdir_short / "region"
    shm = roam_shm.SharedMemory(8192, path=p)
    assert p.exists() and shm.path == str(p)
    with pytest.raises(roam_shm.RoamOSError):
        roam_shm.SharedMemory(8192, path=p)  # exists
    shm.close()
    assert not p.exists()


def test_shared_memory_bad_input(tmpdir_short: Path) -> None:
    with pytest.raises(ValueError):
        roam_shm.SharedMemory(-1)
    with pytest.raises(roam_shm.ConfigError):
        roam_shm.SharedMemory(0)
    with pytest.raises(roam_shm.RoamOSError):
        roam_shm.SharedMemory.open(tmpdir_short / "missing")
    (tmpdir_short / "empty").write_bytes(b"")
    with pytest.raises(roam_shm.ConfigError):
        roam_shm.SharedMemory.open(tmpdir_short / "empty")
    with pytest.raises(roam_shm.RoamOSError):
        roam_shm.SharedMemory.from_fd(999_999)
    with pytest.raises(ValueError):
        roam_shm.SharedMemory.from_fd(-1)


def test_bipbuffer_roundtrip_and_grants() -> None:
    shm = roam_shm.SharedMemory(roam_shm.BipBuffer.required_size(256))
    prod = roam_shm.BipBuffer.create(shm, 0, 256)
    cons = roam_shm.BipBuffer.attach(shm, 0)
    assert cons.capacity == 256 and cons.is_empty()
    assert prod.try_write(b"abc")
    assert cons.peek() == b"abc"
    assert cons.read(2) == b"ab" and cons.read() == b"c"
    assert cons.read() is None
    grant = prod.grant(10)
    assert grant is not None and len(grant) == 10
    with pytest.raises(ValueError):
        prod.grant(1)
    with memoryview(grant) as mv:
        mv[:4] = b"wxyz"
        with pytest.raises(BufferError):
            grant.commit(4)
    grant.commit(4)
    with pytest.raises(roam_shm.ClosedError):
        grant.commit()
    assert cons.read() == b"wxyz"
    with prod.grant(3) as g:  # type: ignore[union-attr]
        memoryview(g)[:] = b"123"
    assert cons.read() == b"123"
    big = os.urandom(200)
    assert prod.try_write(big)
    assert not prod.try_write(big)  # full
    assert cons.read() == big
    with pytest.raises(roam_shm.PayloadTooLargeError):
        prod.grant(1000)
    with pytest.raises(ValueError):
        cons.release(10_000)
    with pytest.raises(roam_shm.ConfigError):
        roam_shm.BipBuffer.create(shm, 1, 64)  # misaligned
    with pytest.raises(roam_shm.ConfigError):
        roam_shm.BipBuffer.create(shm, 0, 100_000)  # does not fit


def test_spsc_ring() -> None:
    shm = roam_shm.SharedMemory(roam_shm.SpscRing.required_size(8))
    ring = roam_shm.SpscRing.create(shm, 0, 8)
    p = ring.producer()
    c = roam_shm.SpscRing.attach(shm, 0).consumer()
    with pytest.raises(ValueError):
        ring.producer()
    assert c.pop() is None
    assert p.push(2**64 - 1)
    assert p.push_batch(list(range(20))) == 7
    assert not p.push(5)
    assert len(ring) == 8 and p.free_slots() == 0
    assert c.peek() == 2**64 - 1
    assert c.pop() == 2**64 - 1
    assert c.pop_batch(100) == list(range(7))
    with pytest.raises(OverflowError):
        p.push(-1)
    with pytest.raises(roam_shm.ConfigError):
        roam_shm.SpscRing.create(shm, 0, 6)


def test_var_slot_pool() -> None:
    classes = [(64, 2), (1024, 1)]
    shm = roam_shm.SharedMemory(roam_shm.VarSlotPool.required_size(classes))
    pool = roam_shm.VarSlotPool.create(shm, 0, classes)
    peer = roam_shm.VarSlotPool.attach(shm, 0, 2)
    assert peer.classes == classes
    a = pool.alloc(10, owner=3)
    assert a.size == 64 and a.state() == "allocated" and a.handle[0] == 0
    b = pool.alloc(64)
    c = pool.alloc(64)  # falls through to the 1024 class
    assert c.size == 1024
    assert pool.try_alloc(1) is None
    with pytest.raises(roam_shm.PoolExhaustedError):
        pool.alloc(1)
    memoryview(a)[:3] = b"abc"
    same = peer.slot_from_handle(*a.handle)
    view = memoryview(same)
    assert bytes(view[:3]) == b"abc"
    with pytest.raises(BufferError):
        pool.free(a)  # another Slot object of this process has a view
    view.release()
    assert [s.allocated for s in pool.stats()] == [2, 1]
    pool.free(a)
    assert a.state() == "free"
    with pytest.raises(roam_shm.InvalidHandleError):
        a.free()  # double free
    with pytest.raises(roam_shm.ClosedError):
        memoryview(a)
    with pool.alloc(8) as d:
        assert d.state() == "allocated"
    assert d.state() == "free"
    assert pool.reclaim(0) == 2  # b and c were owned by the host (0)
    assert b.state() == "free" and c.state() == "free"
    assert [s.allocated for s in pool.stats()] == [0, 0]
    assert pool.free_count(0) == 2
    with pytest.raises(roam_shm.InvalidHandleError):
        pool.slot_from_handle(0, 99, 1)
    with pytest.raises(roam_shm.InvalidHandleError):
        pool.free_count(5)
    with pytest.raises(roam_shm.ConfigError):
        roam_shm.VarSlotPool.create(shm, 0, [])
    with pytest.raises(roam_shm.ConfigError):
        roam_shm.VarSlotPool.create(shm, 0, [(64, 10_000)])


def test_doorbell_pair() -> None:
    a, b = roam_shm.Doorbell.pair()
    assert b.wait(0.01) == "timeout"
    assert a.signal() == "sent"
    assert b.wait(1) == "signaled"
    assert b.drain() == 0
    result: list[str] = []
    t = threading.Thread(target=lambda: result.append(b.wait(5)))
    t.start()
    time.sleep(0.05)
    a.signal()
    t.join()
    assert result == ["signaled"]
    with roam_shm.Doorbell.from_fd(a.fileno()) as dup:
        assert dup.is_peer_alive()
    a.close()
    assert a.closed and b.wait(1) == "peer_gone" and not b.is_peer_alive()
    with pytest.raises(roam_shm.PeerGoneError):
        b.drain()
    assert b.signal() == "peer_gone"
    with pytest.raises(roam_shm.ClosedError):
        a.signal()
    with pytest.raises(roam_shm.RoamOSError):
        roam_shm.Doorbell.from_fd(os.open("/dev/null", os.O_RDONLY))


def test_doorbell_across_processes() -> None:
    a, b = roam_shm.Doorbell.pair()
    fd = b.fileno()
    code = (
        "import sys, roam_shm; d = roam_shm.Doorbell.from_fd(int(sys.argv[1]));"
        "d.signal(); print(d.wait(10))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(fd)], pass_fds=[fd], stdout=subprocess.PIPE, text=True
    )
    b.close()
    assert a.wait(10) == "signaled"
    a.signal()
    out, _ = proc.communicate(timeout=20)
    assert out.strip() == "signaled" and proc.returncode == 0


def test_wait_cell() -> None:
    shm = roam_shm.SharedMemory(64)
    cell = roam_shm.WaitCell(shm, 8)
    other = roam_shm.WaitCell(shm, 8)
    assert roam_shm.WaitCell.SIZE == 8
    seq = cell.seq
    assert cell.wait(seq, timeout=0.01) is False
    assert other.notify() is False  # nobody sleeps
    assert cell.wait(seq, timeout=1) is True
    seq = cell.seq
    got: list[bool] = []
    t = threading.Thread(target=lambda: got.append(cell.wait(seq, timeout=5, spin=0)))
    t.start()
    deadline = time.monotonic() + 5
    while cell.sleepers == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    other.notify()
    t.join()
    assert got == [True]
    with pytest.raises(roam_shm.ConfigError):
        roam_shm.WaitCell(shm, 2)
    with pytest.raises(roam_shm.ConfigError):
        roam_shm.WaitCell(shm, 60)
    with pytest.raises(ValueError):
        cell.wait(0, timeout=-1)
