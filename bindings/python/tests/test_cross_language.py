"""Python against the Rust CLI: a Python guest with `roam-shm host --echo`, and the
Rust checking guest (`roam-shm guest`) with a Python echo host."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import pytest

import roam_shm
from payloads import payload, sizes


def wait_for_socket(path: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while not Path(path).exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the Rust host did not start listening"
        time.sleep(0.02)


@pytest.mark.parametrize("file_backed", [False, True])
def test_python_guest_with_rust_echo_host(cli: Path, sock: str, file_backed: bool) -> None:
    args = [str(cli), "host", "--socket", sock, "--echo", "--guests", "1"]
    if file_backed:
        args += ["--segment", f"/dev/shm/roam-py-test-{uuid.uuid4().hex}"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_socket(sock, proc)
        lens = sizes(7, 2000, large=400_000)  # inline, slot and mmap payloads
        with roam_shm.Guest(sock) as g:
            for i, n in enumerate(lens):
                data = payload(7, i, n)
                g.send(data, timeout=30)
                with g.recv(timeout=30) as echo:
                    assert echo.data == data, f"echo #{i} differs"
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out
    assert "2000 messages echoed" in out, out
    assert "0 slots in use at exit" in out, out


def test_rust_guest_with_python_echo_host(cli: Path, sock: str) -> None:
    with roam_shm.Host(sock) as host:
        proc = subprocess.Popen(
            [str(cli), "guest", "--socket", sock, "--count", "3000", "--size", "0",
             "--max-size", "300000", "--window", "8", "--timeout", "120"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        echoed = 0
        gone = False
        deadline = time.monotonic() + 180
        try:
            while not gone:
                assert time.monotonic() < deadline, "the Rust guest did not finish"
                for ev in host.poll(1.0):
                    if ev.kind == "readable":
                        for msg in host.messages(ev.peer):
                            host.send(ev.peer, msg, timeout=30)
                            echoed += 1
                    elif ev.kind == "peer_gone":
                        gone = True
            out, _ = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 0, out
        assert "3000 echoes verified" in out, out
        assert echoed == 3000
        assert sum(s.allocated for s in host.pool_stats()) == 0
