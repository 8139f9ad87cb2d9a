//! Re-running the current test binary as a child process, shared by the
//! cross-process tests: the child runs the test named `child_entry`, which reads its
//! role from an environment variable. Descriptors reach it through `dup2` in a
//! `pre_exec` hook, so they are never inheritable in the parent: a child spawned
//! concurrently by another test cannot keep a doorbell end open (which would hide a
//! peer's death).
#![allow(dead_code)] // Each test binary uses a different subset.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// Lowest descriptor number children receive descriptors at; sources must be below.
pub const FIRST_CHILD_FD: RawFd = 200;

/// A command re-running this test binary's `child_entry` test with `role_env=role`.
pub fn child_command(role_env: &str, role: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
    cmd.args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(role_env, role)
        .stdin(Stdio::null());
    cmd
}

/// Give the child `fds`, each `dup2`-ed to its target number (>= [`FIRST_CHILD_FD`]).
pub fn pass_fds(cmd: &mut Command, fds: &[(BorrowedFd<'_>, RawFd)]) {
    let pairs: Vec<(RawFd, RawFd)> = fds.iter().map(|(fd, to)| (fd.as_raw_fd(), *to)).collect();
    for &(from, to) in &pairs {
        assert!(
            from < FIRST_CHILD_FD && to >= FIRST_CHILD_FD,
            "fd {from} -> {to} would collide"
        );
    }
    // SAFETY: the hook runs in the forked child before exec and only calls dup2, which
    // is async-signal-safe; it does not allocate (it iterates a Vec built beforehand).
    unsafe {
        cmd.pre_exec(move || {
            for &(from, to) in &pairs {
                // dup2 yields a descriptor without FD_CLOEXEC, so it survives exec.
                if libc::dup2(from, to) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Take ownership of a descriptor the parent passed at number `fd`.
pub fn inherited(fd: RawFd) -> OwnedFd {
    roam_shm::fd::validate_fd(fd).expect("inherited fd");
    // SAFETY: the parent dup2-ed an open descriptor to this number for us, and nothing
    // else in this process owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}
