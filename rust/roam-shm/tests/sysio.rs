#![cfg(not(feature = "loom"))]
//! Cross-process tests with real processes: shared memfd and `/dev/shm` mappings, the
//! doorbell, the futex waiter, and a peer killed with SIGKILL.
//!
//! Children are this test binary re-run with `--exact child_entry` and a role in the
//! environment (no `fork` of the multi-threaded test harness). Descriptors reach the
//! child through `dup2` in a `pre_exec` hook, so they are never inheritable in the
//! parent: a child spawned concurrently by another test cannot keep a doorbell end open
//! (which would hide a peer's death). Every wait is bounded.

mod common;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use roam_shm::doorbell::{Doorbell, SignalResult, WaitOutcome};
use roam_shm::mmap::{MmapOptions, MmapRegion, ShmRegion};
use roam_shm::region::Region;
use roam_shm::waiter::{WaitCell, WaitConfig, WaitResult};

const ROLE_ENV: &str = "ROAM_SYSIO_CHILD_ROLE";
const ARG_ENV: &str = "ROAM_SYSIO_CHILD_ARG";
/// Descriptor numbers the child finds its inherited descriptors at.
const CHILD_FD_A: RawFd = common::FIRST_CHILD_FD;
const CHILD_FD_B: RawFd = 201;
/// Upper bound of any single wait in these tests.
const BOUND: Duration = Duration::from_secs(10);
const PING_PONG_ROUNDS: u32 = 200;
const NO_SPIN: WaitConfig = WaitConfig {
    spin: Duration::ZERO,
};

// ---------------------------------------------------------------------------------
// Helpers

fn write_bytes(r: Region<'_>, off: usize, bytes: &[u8]) {
    let p = r.ptr_at(off, bytes.len()).unwrap();
    // SAFETY: in bounds (checked); the test protocol gives this process exclusive use
    // of these bytes while it writes them.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len()) }
}

fn read_bytes(r: Region<'_>, off: usize, n: usize) -> Vec<u8> {
    let p = r.ptr_at(off, n).unwrap();
    let mut v = vec![0; n];
    // SAFETY: in bounds (checked); the writer finished (it exited, or notified).
    unsafe { std::ptr::copy_nonoverlapping(p, v.as_mut_ptr(), n) }
    v
}

/// Re-run this binary as a child in `role`, with `fds` dup2-ed to the given numbers.
fn spawn_child(role: &str, arg: &str, fds: &[(BorrowedFd<'_>, RawFd)]) -> Child {
    let mut cmd = common::child_command(ROLE_ENV, role);
    cmd.env(ARG_ENV, arg).stdout(Stdio::null());
    common::pass_fds(&mut cmd, fds);
    cmd.spawn().expect("spawn child")
}

/// Wait for the child at most `BOUND`; kill it and fail if it takes longer.
fn wait_child(child: &mut Child) -> ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if t0.elapsed() > BOUND {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child {} did not finish within {BOUND:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn assert_child_ok(child: &mut Child) {
    let status = wait_child(child);
    assert!(status.success(), "child failed: {status:?}");
}

/// Take the descriptor the parent placed at `fd`.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < BOUND, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn unique_shm_path(tag: &str) -> PathBuf {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    dir.join(format!("roam-sysio-{}-{tag}-{nanos}", std::process::id()))
}

// ---------------------------------------------------------------------------------
// Child side

/// Entry point of the child processes; a no-op in a normal test run.
#[test]
fn child_entry() {
    let Ok(role) = std::env::var(ROLE_ENV) else {
        return;
    };
    let arg = std::env::var(ARG_ENV).unwrap_or_default();
    match role.as_str() {
        "memfd_write" => {
            let shm = ShmRegion::from_fd_with_min_len(common::inherited(CHILD_FD_A), 4096).unwrap();
            #[cfg(any(target_os = "linux", target_os = "android"))]
            {
                assert!(shm.is_shrink_sealed().unwrap(), "seal travels with the fd");
                let f = std::fs::File::from(shm.try_clone_fd().unwrap());
                assert_eq!(
                    f.set_len(1).unwrap_err().raw_os_error(),
                    Some(libc::EPERM),
                    "a sealed memfd cannot be shrunk"
                );
            }
            write_bytes(shm.region(), 64, arg.as_bytes());
        }
        "file_write" => {
            let m = MmapRegion::open_with_min_len(&arg, 4096).unwrap();
            write_bytes(m.region(), 128, b"written by the child");
        }
        "doorbell_echo" => {
            let bell = Doorbell::from_fd(common::inherited(CHILD_FD_A)).unwrap();
            for _ in 0..PING_PONG_ROUNDS {
                assert_eq!(bell.wait(Some(BOUND)).unwrap(), WaitOutcome::Signaled);
                assert_eq!(bell.signal(), SignalResult::Sent);
            }
        }
        "doorbell_ring_then_hang" => {
            let bell = Doorbell::from_fd(common::inherited(CHILD_FD_A)).unwrap();
            assert_eq!(bell.signal(), SignalResult::Sent);
            // Wait to be killed (bounded, in case the parent is gone).
            std::thread::sleep(BOUND);
            std::process::exit(3);
        }
        "futex_wait" => {
            let shm = ShmRegion::from_fd(common::inherited(CHILD_FD_A)).unwrap();
            let cell = WaitCell::from_region(shm.region(), 0).unwrap();
            let expected: u32 = arg.parse().unwrap();
            let r = cell.wait_with(expected, Some(BOUND), &NO_SPIN);
            assert_eq!(r, WaitResult::Notified);
            // The parent wrote this before notifying.
            assert_eq!(read_bytes(shm.region(), 64, 5), b"hello");
        }
        "futex_wait_forever" => {
            let shm = ShmRegion::from_fd(common::inherited(CHILD_FD_A)).unwrap();
            let cell = WaitCell::from_region(shm.region(), 0).unwrap();
            cell.wait_with(cell.seq(), Some(BOUND), &NO_SPIN);
            std::process::exit(3);
        }
        "futex_notify" => {
            let shm = ShmRegion::from_fd(common::inherited(CHILD_FD_A)).unwrap();
            let cell = WaitCell::from_region(shm.region(), 0).unwrap();
            wait_until("the parent sleeps", || cell.sleepers() != 0);
            write_bytes(shm.region(), 64, b"world");
            assert!(cell.notify(), "a sleeping parent must get a wake syscall");
        }
        "futex_pingpong" => {
            let shm = ShmRegion::from_fd(common::inherited(CHILD_FD_A)).unwrap();
            let ping = WaitCell::from_region(shm.region(), 0).unwrap();
            let pong = WaitCell::from_region(shm.region(), 8).unwrap();
            for i in 0..PING_PONG_ROUNDS {
                let cfg = if i % 2 == 0 {
                    NO_SPIN
                } else {
                    WaitConfig::default()
                };
                assert_eq!(ping.wait_with(i, Some(BOUND), &cfg), WaitResult::Notified);
                pong.notify();
            }
        }
        "mixed" => {
            // memfd and /dev/shm file at once, plus a doorbell to say "done".
            let shm = ShmRegion::from_fd(common::inherited(CHILD_FD_A)).unwrap();
            let bell = Doorbell::from_fd(common::inherited(CHILD_FD_B)).unwrap();
            let file = MmapRegion::open(&arg).unwrap();
            write_bytes(shm.region(), 0, b"memfd!");
            write_bytes(file.region(), 0, b"file!");
            assert_eq!(bell.signal(), SignalResult::Sent);
            assert_eq!(bell.wait(Some(BOUND)).unwrap(), WaitOutcome::Signaled);
        }
        other => panic!("unknown child role {other}"),
    }
}

// ---------------------------------------------------------------------------------
// Parent side

#[test]
fn memfd_shared_with_child_and_sealed() {
    let shm = ShmRegion::create("sysio-memfd", 4096).unwrap();
    #[cfg(any(target_os = "linux", target_os = "android"))]
    shm.seal_shrink().unwrap();
    let msg = format!("child of {}", std::process::id());
    let mut child = spawn_child("memfd_write", &msg, &[(shm.fd(), CHILD_FD_A)]);
    assert_child_ok(&mut child);
    assert_eq!(read_bytes(shm.region(), 64, msg.len()), msg.as_bytes());
    assert_eq!(shm.file_len().unwrap(), 4096);
}

#[test]
fn dev_shm_file_shared_with_child() {
    let path = unique_shm_path("file");
    let m = MmapRegion::create(&path, 4096, &MmapOptions::new()).unwrap();
    let mut child = spawn_child("file_write", path.to_str().unwrap(), &[]);
    assert_child_ok(&mut child);
    assert_eq!(read_bytes(m.region(), 128, 20), b"written by the child");
    drop(m);
    assert!(!path.exists(), "Delete cleanup removes the file");
}

#[test]
fn doorbell_ping_pong_between_processes() {
    let (bell, handle) = Doorbell::create_pair().unwrap();
    let mut child = spawn_child("doorbell_echo", "", &[(handle.as_fd(), CHILD_FD_A)]);
    drop(handle);
    for _ in 0..PING_PONG_ROUNDS {
        assert_eq!(bell.signal(), SignalResult::Sent);
        assert_eq!(bell.wait(Some(BOUND)).unwrap(), WaitOutcome::Signaled);
    }
    assert_child_ok(&mut child);
    // The child exited: its end is closed.
    assert_eq!(bell.wait(Some(BOUND)).unwrap(), WaitOutcome::PeerGone);
    assert_eq!(bell.signal(), SignalResult::PeerDead);
}

#[test]
fn sigkilled_peer_is_peer_gone_while_waiting() {
    let (bell, handle) = Doorbell::create_pair().unwrap();
    let mut child = spawn_child(
        "doorbell_ring_then_hang",
        "",
        &[(handle.as_fd(), CHILD_FD_A)],
    );
    // Our copy of the child's end must go, or its death would never show.
    roam_shm::fd::close_peer_fd(OwnedFd::from(handle)).unwrap();
    assert_eq!(bell.wait(Some(BOUND)).unwrap(), WaitOutcome::Signaled);
    assert!(bell.is_peer_alive());

    // Kill it while we are blocked in wait().
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    });
    let t0 = Instant::now();
    assert_eq!(bell.wait(Some(BOUND)).unwrap(), WaitOutcome::PeerGone);
    assert!(t0.elapsed() < BOUND);
    killer.join().unwrap();
    let status = wait_child(&mut child);
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert!(!bell.is_peer_alive());
    assert_eq!(bell.signal(), SignalResult::PeerDead);
}

#[test]
fn futex_parent_notifies_sleeping_child() {
    let shm = ShmRegion::create("sysio-futex-1", 4096).unwrap();
    let cell = WaitCell::init_in_region(shm.region(), 0).unwrap();
    assert!(!cell.notify(), "nobody sleeps yet: no syscall");
    let expected = cell.seq();
    let mut child = spawn_child(
        "futex_wait",
        &expected.to_string(),
        &[(shm.fd(), CHILD_FD_A)],
    );
    wait_until("the child sleeps", || cell.sleepers() != 0);
    write_bytes(shm.region(), 64, b"hello");
    assert!(cell.notify(), "a sleeping child must get a wake syscall");
    assert_child_ok(&mut child);
    assert_eq!(cell.sleepers(), 0);
}

#[test]
fn futex_child_notifies_sleeping_parent() {
    let shm = ShmRegion::create("sysio-futex-2", 4096).unwrap();
    let cell = WaitCell::init_in_region(shm.region(), 0).unwrap();
    let expected = cell.seq();
    let mut child = spawn_child("futex_notify", "", &[(shm.fd(), CHILD_FD_A)]);
    let t0 = Instant::now();
    assert_eq!(
        cell.wait_with(expected, Some(BOUND), &NO_SPIN),
        WaitResult::Notified
    );
    assert!(t0.elapsed() < BOUND);
    assert_eq!(read_bytes(shm.region(), 64, 5), b"world");
    assert_child_ok(&mut child);
}

#[test]
fn futex_ping_pong_between_processes() {
    let shm = ShmRegion::create("sysio-futex-3", 4096).unwrap();
    let ping = WaitCell::init_in_region(shm.region(), 0).unwrap();
    let pong = WaitCell::init_in_region(shm.region(), 8).unwrap();
    let mut child = spawn_child("futex_pingpong", "", &[(shm.fd(), CHILD_FD_A)]);
    for i in 0..PING_PONG_ROUNDS {
        ping.notify();
        let cfg = if i % 3 == 0 {
            NO_SPIN
        } else {
            WaitConfig::default()
        };
        assert_eq!(pong.wait_with(i, Some(BOUND), &cfg), WaitResult::Notified);
    }
    assert_child_ok(&mut child);
}

#[test]
fn futex_waiter_killed_while_registered_is_harmless() {
    let shm = ShmRegion::create("sysio-futex-4", 4096).unwrap();
    let cell = WaitCell::init_in_region(shm.region(), 0).unwrap();
    let mut child = spawn_child("futex_wait_forever", "", &[(shm.fd(), CHILD_FD_A)]);
    wait_until("the child sleeps", || cell.sleepers() != 0);
    child.kill().unwrap();
    let status = wait_child(&mut child);
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    // Its registration is stale: notifiers now issue a spare wake, nothing worse.
    assert_eq!(cell.sleepers(), 1);
    assert!(cell.notify());
    let s = cell.seq();
    assert_eq!(
        cell.wait_with(s, Some(Duration::from_millis(5)), &NO_SPIN),
        WaitResult::TimedOut
    );
}

#[test]
fn memfd_file_and_doorbell_together() {
    let shm = ShmRegion::create("sysio-mixed", 4096).unwrap();
    let path = unique_shm_path("mixed");
    let file = MmapRegion::create(&path, 4096, &MmapOptions::new()).unwrap();
    let (bell, handle) = Doorbell::create_pair().unwrap();
    let mut child = spawn_child(
        "mixed",
        path.to_str().unwrap(),
        &[(shm.fd(), CHILD_FD_A), (handle.as_fd(), CHILD_FD_B)],
    );
    drop(handle);
    assert_eq!(bell.wait(Some(BOUND)).unwrap(), WaitOutcome::Signaled);
    assert_eq!(read_bytes(shm.region(), 0, 6), b"memfd!");
    assert_eq!(read_bytes(file.region(), 0, 5), b"file!");
    assert_eq!(bell.signal(), SignalResult::Sent);
    assert_child_ok(&mut child);
}
