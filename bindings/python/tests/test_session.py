"""Host and guest sessions in one process: sending, receiving, views, errors."""

from __future__ import annotations

import array
import gc
import os
import signal
import socket
import struct
import threading
import time

import pytest

import roam_shm
from conftest import connect, in_thread

Pair = tuple[roam_shm.Host, roam_shm.Guest, int]


def test_version_matches_metadata() -> None:
    from importlib.metadata import version

    assert roam_shm.__version__ == version("roam-shm")


def test_exception_hierarchy() -> None:
    assert issubclass(roam_shm.RoamTimeoutError, TimeoutError)
    assert issubclass(roam_shm.RoamTimeoutError, roam_shm.RoamError)
    assert issubclass(roam_shm.PeerGoneError, ConnectionError)
    assert issubclass(roam_shm.HostGoodbyeError, roam_shm.PeerGoneError)
    assert issubclass(roam_shm.RingFullError, roam_shm.WouldBlock)
    assert issubclass(roam_shm.PoolExhaustedError, roam_shm.WouldBlock)
    assert issubclass(roam_shm.WouldBlock, BlockingIOError)
    assert issubclass(roam_shm.CorruptError, roam_shm.ProtocolError)
    assert issubclass(roam_shm.RejectedError, roam_shm.ProtocolError)
    assert issubclass(roam_shm.ConfigError, ValueError)
    assert issubclass(roam_shm.PayloadTooLargeError, ValueError)
    assert issubclass(roam_shm.RoamOSError, OSError)
    for name in roam_shm.__all__:
        obj = getattr(roam_shm, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            assert issubclass(obj, roam_shm.RoamError), name
            assert obj.__module__ == "roam_shm"


def test_roundtrip_both_directions(pair: Pair) -> None:
    host, guest, peer = pair
    assert host.peers == [peer]
    guest.send(b"ping")
    msg = host.recv(peer, timeout=5)
    assert bytes(msg) == b"ping" and len(msg) == 4 and msg.peer == peer
    assert msg.kind == "inline"
    host.send(peer, b"pong")
    reply = guest.recv(timeout=5)
    assert reply.tobytes() == b"pong" and reply.peer == 0


@pytest.mark.parametrize(
    ("size", "kind"), [(0, "inline"), (100, "inline"), (5000, "slot"), (300_000, "mmap")]
)
def test_payload_kinds(pair: Pair, size: int, kind: str) -> None:
    host, guest, peer = pair
    data = os.urandom(size)
    guest.send(data, timeout=5)
    msg = host.recv(peer, timeout=5)
    assert msg.kind == kind
    assert msg.data == data
    assert bytes(msg) == data


def test_buffer_protocol_sources(pair: Pair) -> None:
    host, guest, peer = pair
    sources: list[object] = [
        b"bytes",
        bytearray(b"bytearray"),
        memoryview(b"memoryview"),
        array.array("I", [1, 2, 3]),
        memoryview(b"0123456789")[::2],  # non-contiguous
        memoryview(bytearray(8000)),  # copied with the GIL released
    ]
    for src in sources:
        guest.send(src, timeout=5)  # type: ignore[arg-type]
        got = host.recv(peer, timeout=5)
        assert bytes(got) == memoryview(src).tobytes()  # type: ignore[arg-type]


def test_send_accepts_a_received_message(pair: Pair) -> None:
    host, guest, peer = pair
    guest.send(b"x" * 3000)
    msg = host.recv(peer, timeout=5)
    host.send(peer, msg)  # zero-copy source: the message's own buffer
    assert bytes(guest.recv(timeout=5)) == b"x" * 3000


def test_bad_arguments(pair: Pair) -> None:
    host, guest, peer = pair
    with pytest.raises(TypeError):
        guest.send("not bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        guest.send(12)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        guest.reserve(-1)
    with pytest.raises(ValueError):
        guest.recv(timeout=-1)
    with pytest.raises(ValueError):
        guest.recv(timeout=float("nan"))
    with pytest.raises(ValueError):
        host.send(0, b"x")
    with pytest.raises(ValueError):
        host.send(256, b"x")
    with pytest.raises(roam_shm.PeerGoneError):
        host.send(7, b"x")
    with pytest.raises(TypeError):
        host.recv("1")  # type: ignore[arg-type]
    with pytest.raises(roam_shm.PayloadTooLargeError):
        guest.send(bytes(guest.max_payload_size + 1))
    with pytest.raises(roam_shm.ConfigError):
        roam_shm.Host(ring_capacity=100)
    with pytest.raises(roam_shm.ConfigError):
        roam_shm.Host(size_classes=[])
    with pytest.raises(OverflowError):
        roam_shm.Host(max_guests=-1)
    with pytest.raises(roam_shm.RoamOSError):
        roam_shm.Guest("/nonexistent/dir/sock")


def test_views_raise_after_release(pair: Pair) -> None:
    host, guest, peer = pair
    guest.send(b"abc")
    msg = host.recv(peer, timeout=5)
    view = msg.data
    with pytest.raises(BufferError):
        msg.release()
    assert not msg.released
    assert view.tobytes() == b"abc"
    view.release()
    msg.release()
    assert msg.released
    msg.release()  # idempotent
    with pytest.raises(roam_shm.ClosedError):
        _ = msg.data
    with pytest.raises(roam_shm.ClosedError):
        bytes(msg)
    with pytest.raises(roam_shm.ClosedError):
        memoryview(msg)


def test_message_is_read_only(pair: Pair) -> None:
    host, guest, peer = pair
    guest.send(b"abc")
    with host.recv(peer, timeout=5) as msg:
        with msg.data as v:
            assert v.readonly
            with pytest.raises(TypeError):
                v[0] = 1
    assert msg.released


def test_next_receive_releases_previous_unless_exported(pair: Pair) -> None:
    host, guest, peer = pair
    for i in range(3):
        guest.send(bytes([i]) * 600)
    first = host.recv(peer, timeout=5)
    view = first.data
    with pytest.raises(BufferError):
        host.recv(peer, timeout=5)
    with pytest.raises(BufferError):
        host.poll(0)
    with pytest.raises(BufferError):
        host.close()
    assert not host.closed
    view.release()
    second = host.recv(peer, timeout=5)
    assert first.released and bytes(second) == b"\x01" * 600
    assert [bytes(m) for m in host.messages(peer)] == [b"\x02" * 600]


def test_dropping_a_message_frees_its_slot(pair: Pair) -> None:
    host, guest, peer = pair
    guest.send(b"s" * 2000)
    msg = host.recv(peer, timeout=5)
    assert msg.kind == "slot"
    assert sum(s.allocated for s in host.pool_stats()) == 1
    del msg
    gc.collect()
    assert sum(s.allocated for s in host.pool_stats()) == 0


def test_reservation_zero_copy(pair: Pair) -> None:
    host, guest, peer = pair
    res = guest.reserve(5000)
    assert len(res) == 5000 and res.pending
    with memoryview(res) as mv:
        mv[:] = b"z" * 5000
        with pytest.raises(BufferError):
            res.commit()
    with pytest.raises(roam_shm.ReservationPendingError):
        guest.send(b"other")
    res.commit()
    assert not res.pending
    with pytest.raises(roam_shm.ClosedError):
        res.commit()
    with pytest.raises(roam_shm.ClosedError):
        memoryview(res)
    assert bytes(host.recv(peer, timeout=5)) == b"z" * 5000
    # Context manager: commit on success, cancel on error.
    with host.reserve(peer, 3) as r:
        r.buffer[:] = b"abc"
    assert bytes(guest.recv(timeout=5)) == b"abc"
    with pytest.raises(RuntimeError):
        with host.reserve(peer, 3) as r:
            raise RuntimeError("boom")
    assert not r.pending
    assert guest.try_recv() is None
    r2 = guest.reserve(10)
    r2.cancel()
    assert host.try_recv(peer) is None


def test_backpressure_and_timeouts(sock: str) -> None:
    with roam_shm.Host(sock, ring_capacity=1024, inline_threshold=200) as host:
        guest, peer = connect(host, sock)
        with guest:
            with pytest.raises(roam_shm.RingFullError):
                for _ in range(100):
                    guest.try_send(b"f" * 150)
            with pytest.raises(roam_shm.RoamTimeoutError):
                guest.send(b"f" * 150, timeout=0.05)
            with pytest.raises(TimeoutError):
                host.recv(peer, timeout=0).release()
                guest.recv(timeout=0.05)
            n = sum(1 for _ in host.messages(peer))
            assert n > 0
            guest.send(b"f" * 150, timeout=1)


def test_guest_iteration_ends_on_host_goodbye(pair: Pair) -> None:
    host, guest, peer = pair
    for i in range(5):
        host.send(peer, struct.pack("<I", i))
    host.shutdown()
    got = [struct.unpack("<I", m.data)[0] for m in guest]
    assert got == [0, 1, 2, 3, 4]
    with pytest.raises(roam_shm.HostGoodbyeError):
        guest.send(b"late")


def test_closed_sessions_raise(pair: Pair) -> None:
    host, guest, peer = pair
    guest.close()
    guest.close()  # idempotent
    assert guest.closed
    for call in (lambda: guest.send(b"x"), guest.try_recv, lambda: guest.reserve(1), guest.check_host):
        with pytest.raises(roam_shm.ClosedError):
            call()
    events = host.poll(2)
    assert [e.kind for e in events] == ["peer_gone"] and events[0].peer == peer
    assert events[0].recovery is not None
    host.close()
    with pytest.raises(roam_shm.ClosedError):
        host.poll(0)
    with pytest.raises(roam_shm.ClosedError):
        host.send(1, b"x")


def test_context_managers_close(sock: str) -> None:
    with roam_shm.Host(sock) as host:
        with connect(host, sock)[0] as guest:
            guest.send(b"x")
        assert guest.closed
        path = host.segment_path
        assert path.startswith("/proc/")
    assert host.closed
    assert not os.path.exists(sock)


def test_file_backed_segment_is_removed(tmpdir_short: object, sock: str) -> None:
    seg = f"{sock}.seg"
    with roam_shm.Host(sock, segment_path=seg) as host:
        assert host.segment_path == seg and os.path.exists(seg)
    assert not os.path.exists(seg)


def test_message_survives_host_object_but_not_close(pair: Pair) -> None:
    host, guest, peer = pair
    guest.send(b"keep")
    msg = host.recv(peer, timeout=5)
    view = msg.data
    with pytest.raises(BufferError):
        host.close()
    assert view.tobytes() == b"keep"
    del view
    host.close()
    with pytest.raises(roam_shm.ClosedError):
        bytes(msg)


def test_goodbye_waits_for_the_held_message(pair: Pair) -> None:
    """A guest that says goodbye while the host holds one of its messages: the host
    may finish with it (no recovery yet); once released, the guest is reported gone
    with reason "goodbye" and its slots are reclaimed."""
    host, guest, peer = pair
    guest.send(b"x" * 2000)
    msg = host.recv(peer, timeout=5)
    guest.close()
    events = host.poll(0.5)
    assert not any(e.kind == "peer_gone" for e in events)
    assert not msg.released and bytes(msg) == b"x" * 2000
    msg.release()
    deadline = time.monotonic() + 5
    gone: list[roam_shm.HostEvent] = []
    while not gone:
        assert time.monotonic() < deadline, "departure never reported"
        gone = [e for e in host.poll(0.5) if e.kind == "peer_gone"]
    assert gone[0].reason == "goodbye"
    with pytest.raises(roam_shm.ClosedError):
        bytes(msg)
    assert sum(s.allocated for s in host.pool_stats()) == 0


def test_disconnect(pair: Pair) -> None:
    host, guest, peer = pair
    guest.send(b"y" * 2000)
    rec = host.disconnect(peer)
    assert rec.reclaimed_slots == 1
    assert host.peers == []
    with pytest.raises(roam_shm.PeerGoneError):
        host.disconnect(peer)
    with pytest.raises(roam_shm.PeerGoneError):
        guest.check_host()


def test_rejected_when_full(sock: str) -> None:
    with roam_shm.Host(sock, max_guests=1) as host:
        g1, _ = connect(host, sock)
        errors: list[BaseException] = []

        def second() -> None:
            try:
                roam_shm.Guest(sock, timeout=5)
            except BaseException as e:
                errors.append(e)

        t = threading.Thread(target=second)
        t.start()
        deadline = time.monotonic() + 5
        while t.is_alive() and time.monotonic() < deadline:
            host.poll(0.05)
        t.join()
        assert len(errors) == 1 and isinstance(errors[0], roam_shm.RejectedError)
        g1.close()


def test_garbage_bootstrap_frames(sock: str) -> None:
    frames = [
        b"",
        b"garbage!",
        b"RSH0",
        b"RSH0" + struct.pack("<H", 100) + b"short",
        b"XXXX" + struct.pack("<H", 2) + b"ab",
        b"RSH0" + struct.pack("<H", 0xFFFF) + os.urandom(1000),
    ]
    with roam_shm.Host(sock) as host:
        for f in frames:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(sock)
                if f:
                    s.sendall(f)
                s.shutdown(socket.SHUT_WR)
                host.poll(0.2)
                s.settimeout(2)
                try:
                    reply = s.recv(100)
                except (ConnectionResetError, TimeoutError):
                    reply = b""
                assert not reply.startswith(b"RSP0\x00"), f
        assert host.peers == []
        guest, peer = connect(host, sock)
        with guest:
            guest.send(b"still works")
            assert bytes(host.recv(peer, timeout=5)) == b"still works"


def test_blocked_receive_releases_the_gil(pair: Pair) -> None:
    host, guest, peer = pair
    result: list[bytes] = []
    t = threading.Thread(target=lambda: result.append(bytes(guest.recv(timeout=10))))
    t.start()
    count = 0
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        count += 1
    assert count > 10_000  # this thread ran while the other was blocked in recv
    host.send(peer, b"wake")
    t.join(5)
    assert result == [b"wake"]


def test_wait_is_interruptible(pair: Pair) -> None:
    _, guest, _ = pair
    # Python leaves SIGINT ignored when it starts with it ignored (as in a shell's
    # background job, where CI may run us): install the Ctrl-C handler ourselves.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        timer = threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGINT))
        timer.start()
        start = time.monotonic()
        # A blocking receive (a long timeout, so a regression fails as a timeout
        # rather than hanging the suite).
        with pytest.raises(KeyboardInterrupt):
            guest.recv(timeout=30)
        assert time.monotonic() - start < 5
        timer.join()
    finally:
        signal.signal(signal.SIGINT, previous)


def _slow_wakes(waits: list[float]) -> int:
    """How many blocked waits lasted about a wait slice (50 ms) or more."""
    return sum(1 for w in waits if w > 0.03)


def test_host_recv_after_poll_is_woken_by_the_send(pair: Pair) -> None:
    # poll() leaves the host's "busy-polling, do not ring" flags set; a blocking
    # recv() must clear them before it sleeps, or every message waits out a slice.
    host, guest, peer = pair
    rounds = 20
    waits: list[float] = []

    def guest_side() -> None:
        for i in range(rounds):
            time.sleep(0.002)  # let the host block first
            guest.send(b"ping %d" % i, timeout=10)
            guest.recv(timeout=10).release()

    with in_thread(guest_side):
        for i in range(rounds):
            host.poll(0)
            start = time.monotonic()
            m = host.recv(peer, timeout=10)
            waits.append(time.monotonic() - start)
            assert bytes(m) == b"ping %d" % i
            m.release()
            host.send(peer, b"pong", timeout=10)
    # Woken by the send, each wait is the 2 ms head start plus a wake-up; a lost
    # ring waits out the 50 ms slice. Scheduling hiccups may stretch a few waits.
    assert _slow_wakes(waits) < rounds // 2, [round(w * 1e3, 1) for w in waits]


def test_host_send_blocked_after_poll_is_woken_by_the_release(pair: Pair) -> None:
    # The same for room: a blocked send() must ask the guest to ring on release.
    host, guest, peer = pair
    payload = b"x" * 200
    rounds = 10
    waits: list[float] = []
    drain = threading.Event()

    def guest_side() -> None:
        for _ in range(rounds):
            drain.wait(10)
            drain.clear()
            time.sleep(0.002)  # let the host block first
            while (m := guest.try_recv()) is not None:
                m.release()

    with in_thread(guest_side):
        try:
            for _ in range(rounds):
                while True:  # fill the guest's ring
                    try:
                        host.try_send(peer, payload)
                    except roam_shm.WouldBlock:
                        break
                host.poll(0)
                drain.set()
                start = time.monotonic()
                host.send(peer, payload, timeout=10)
                waits.append(time.monotonic() - start)
        finally:
            drain.set()  # never leave the guest side waiting
    assert _slow_wakes(waits) < rounds // 2, [round(w * 1e3, 1) for w in waits]


def test_guest_wait_and_grow(pair: Pair) -> None:
    host, guest, peer = pair
    assert guest.wait(0.01) is False
    host.send(peer, b"ring")
    assert guest.wait(5) is True
    host.grow(8 << 20)
    assert bytes(guest.recv(timeout=5)) == b"ring"


def test_listen_later_sid_and_heartbeat(tmpdir_short: object, sock: str) -> None:
    with roam_shm.Host(heartbeat_interval=0.5, max_guests=2) as host:
        assert host.peers == []
        host.listen(sock)
        guest, peer = connect(host, sock, sid=b"0123456789abcdef0123456789abcdef")
        with guest:
            assert guest.segment_path.startswith("/proc/")
            assert guest.max_payload_size == host.max_payload_size == 16 * 1024 * 1024
            time.sleep(0.6)  # the guest heartbeats, so it is not reported stale
            assert all(e.kind != "peer_gone" for e in host.poll(0.1))
            guest.check_host()
            assert repr(guest).startswith("<roam_shm.Guest peer_id=")
            assert "peers=[1]" in repr(host)
        with pytest.raises(roam_shm.RoamOSError):
            roam_shm.Host(sock)  # a live host listens there
    with pytest.raises(ValueError):
        roam_shm.Host(heartbeat_interval=-1.0)
