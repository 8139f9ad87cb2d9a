"""Shared fixtures: short socket paths, connected host/guest pairs, the Rust CLI."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import roam_shm

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def tmpdir_short() -> Iterator[Path]:
    """A short directory under /tmp (AF_UNIX paths are limited to 108 bytes)."""
    d = Path(tempfile.mkdtemp(prefix="roam-py-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def sock(tmpdir_short: Path) -> str:
    return str(tmpdir_short / "host.sock")


@contextlib.contextmanager
def in_thread(fn: Callable[[], None]) -> Iterator[None]:
    """Run ``fn`` on a thread during the ``with`` body; join it, then re-raise
    what it raised."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as e:  # pragma: no cover - re-raised below
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()
    try:
        yield
    finally:
        t.join()
    if errors:
        raise errors[0]


def connect(host: roam_shm.Host, sock: str, **kw: object) -> tuple[roam_shm.Guest, int]:
    """Connect a guest while a thread runs the host's accept (the handshake needs both)."""
    got: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            got.append(host.accept(timeout=10))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()
    try:
        guest = roam_shm.Guest(sock, **kw)  # type: ignore[arg-type]
    finally:
        t.join()
    if errors:
        raise errors[0]
    assert got == [guest.peer_id]
    return guest, got[0]


@pytest.fixture
def pair(sock: str) -> Iterator[tuple[roam_shm.Host, roam_shm.Guest, int]]:
    host = roam_shm.Host(sock)
    guest, peer = connect(host, sock)
    yield host, guest, peer
    guest.close()
    host.close()


def cli_path() -> Path | None:
    """The Rust CLI: $ROAM_SHM_CLI, else target/debug/roam-shm, else None."""
    env = os.environ.get("ROAM_SHM_CLI")
    candidates = [Path(env)] if env else []
    candidates.append(REPO / "target" / "debug" / "roam-shm")
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    return None


@pytest.fixture
def cli() -> Path:
    p = cli_path()
    if p is None:
        pytest.skip("the roam-shm CLI is not built (cargo build -p roam-shm-cli, or set ROAM_SHM_CLI)")
    return p
