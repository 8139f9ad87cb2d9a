//! File-descriptor helpers for handing doorbells and segments to other processes.
//!
//! Everything this crate opens is close-on-exec. To let a spawned child inherit a
//! descriptor, clear the flag *in the child* (e.g. `dup2` in a `pre_exec` hook, which
//! yields a descriptor without the flag) or, if the parent spawns nothing else
//! concurrently, with [`clear_cloexec`] just before spawning; afterwards the parent
//! closes its copy of the peer end with [`close_peer_fd`], otherwise it would never see
//! the peer hang up.

use std::os::fd::{AsFd, AsRawFd, IntoRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};

/// Errors of the descriptor helpers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FdError {
    /// The number is not an open descriptor (negative, or `EBADF`).
    #[error("fd {fd} is not an open file descriptor")]
    Invalid {
        /// The descriptor number.
        fd: RawFd,
    },
    /// A system call on the descriptor failed.
    #[error("fd {fd}: {op} failed: {errno}")]
    Sys {
        /// The descriptor number.
        fd: RawFd,
        /// The operation.
        op: &'static str,
        /// The error.
        errno: Errno,
    },
}

fn sys(fd: RawFd, op: &'static str) -> impl FnOnce(Errno) -> FdError {
    move |errno| match errno {
        Errno::EBADF => FdError::Invalid { fd },
        errno => FdError::Sys { fd, op, errno },
    }
}

fn fd_flags(fd: impl AsFd) -> Result<FdFlag, FdError> {
    let raw = fd.as_fd().as_raw_fd();
    let bits = fcntl(fd, FcntlArg::F_GETFD).map_err(sys(raw, "fcntl(F_GETFD)"))?;
    Ok(FdFlag::from_bits_retain(bits))
}

fn set_fd_flag(fd: impl AsFd, flag: FdFlag, on: bool) -> Result<(), FdError> {
    let fd = fd.as_fd();
    let mut flags = fd_flags(fd)?;
    flags.set(flag, on);
    fcntl(fd, FcntlArg::F_SETFD(flags)).map_err(sys(fd.as_raw_fd(), "fcntl(F_SETFD)"))?;
    Ok(())
}

/// Clear the close-on-exec flag so the descriptor is inherited across `exec`.
///
/// The flag is per descriptor, process-wide: every child spawned from now on (by any
/// thread) inherits it, so prefer clearing it in the child only (see the module docs).
pub fn clear_cloexec(fd: impl AsFd) -> Result<(), FdError> {
    set_fd_flag(fd, FdFlag::FD_CLOEXEC, false)
}

/// Set the close-on-exec flag.
pub fn set_cloexec(fd: impl AsFd) -> Result<(), FdError> {
    set_fd_flag(fd, FdFlag::FD_CLOEXEC, true)
}

/// Whether the close-on-exec flag is set.
pub fn is_cloexec(fd: impl AsFd) -> Result<bool, FdError> {
    Ok(fd_flags(fd)?.contains(FdFlag::FD_CLOEXEC))
}

/// Set `O_NONBLOCK` (a flag of the open file description: every process sharing the
/// description sees it).
pub fn set_nonblocking(fd: impl AsFd) -> Result<(), FdError> {
    let fd = fd.as_fd();
    let raw = fd.as_raw_fd();
    let bits = fcntl(fd, FcntlArg::F_GETFL).map_err(sys(raw, "fcntl(F_GETFL)"))?;
    let flags = OFlag::from_bits_retain(bits);
    if !flags.contains(OFlag::O_NONBLOCK) {
        fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))
            .map_err(sys(raw, "fcntl(F_SETFL)"))?;
    }
    Ok(())
}

/// Whether `O_NONBLOCK` is set.
pub fn is_nonblocking(fd: impl AsFd) -> Result<bool, FdError> {
    let fd = fd.as_fd();
    let bits = fcntl(fd, FcntlArg::F_GETFL).map_err(sys(fd.as_raw_fd(), "fcntl(F_GETFL)"))?;
    Ok(OFlag::from_bits_retain(bits).contains(OFlag::O_NONBLOCK))
}

/// Close the parent's copy of a peer's end (after spawning the peer with it, or after
/// sending it with `SCM_RIGHTS`), reporting errors that dropping an [`OwnedFd`] would
/// swallow. Until it is closed, the parent never sees the peer hang up.
///
/// `EINTR` counts as success: on Linux the descriptor is released even then, and
/// retrying could close an unrelated, newly opened descriptor.
pub fn close_peer_fd(fd: OwnedFd) -> Result<(), FdError> {
    let raw = fd.as_raw_fd();
    match nix::unistd::close(fd.into_raw_fd()) {
        Ok(()) | Err(Errno::EINTR) => Ok(()),
        Err(e) => Err(sys(raw, "close")(e)),
    }
}

/// Check that `fd` is an open descriptor (`fcntl(F_GETFD)`), e.g. a number received on
/// the command line (`--doorbell-fd`) before taking ownership of it.
pub fn validate_fd(fd: RawFd) -> Result<(), FdError> {
    if fd < 0 {
        return Err(FdError::Invalid { fd });
    }
    // SAFETY: F_GETFD only reads the descriptor table; an invalid number just fails
    // with EBADF, so any integer is a sound argument (no BorrowedFd is created from it).
    let r = unsafe { nix::libc::fcntl(fd, nix::libc::F_GETFD) };
    if r < 0 {
        return Err(sys(fd, "fcntl(F_GETFD)")(Errno::last()));
    }
    Ok(())
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;

    fn pipe() -> (OwnedFd, OwnedFd) {
        nix::unistd::pipe().unwrap()
    }

    #[test]
    fn cloexec_round_trip() {
        let (r, _w) = pipe();
        set_cloexec(&r).unwrap();
        assert!(is_cloexec(&r).unwrap());
        clear_cloexec(&r).unwrap();
        assert!(!is_cloexec(&r).unwrap());
        set_cloexec(&r).unwrap();
        assert!(is_cloexec(&r).unwrap());
    }

    #[test]
    fn nonblocking() {
        let (r, _w) = pipe();
        assert!(!is_nonblocking(&r).unwrap());
        set_nonblocking(&r).unwrap();
        assert!(is_nonblocking(&r).unwrap());
        set_nonblocking(&r).unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(nix::unistd::read(&r, &mut buf), Err(Errno::EAGAIN));
    }

    #[test]
    fn validate_and_close() {
        let (r, w) = pipe();
        let raw = r.as_raw_fd();
        validate_fd(raw).unwrap();
        assert_eq!(validate_fd(-1), Err(FdError::Invalid { fd: -1 }));
        close_peer_fd(r).unwrap();
        // The number may be reused by another test thread; only assert on a number
        // that cannot be open.
        assert!(matches!(
            validate_fd(i32::MAX - 1),
            Err(FdError::Invalid { .. })
        ));
        // Closing the write end is visible to nobody here; it must just succeed.
        close_peer_fd(w).unwrap();
        let _ = raw;
    }
}
