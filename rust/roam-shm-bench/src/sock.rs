//! Kernel baselines: a `SOCK_STREAM` Unix socket pair and a pair of pipes, with
//! blocking `write`/`read` of whole messages (the kernel copies each payload in and
//! out; the receiver reads every byte, which it has to).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use crate::BoxError;
use crate::endpoint::{Endpoint, Source};

/// `socketpair(AF_UNIX, SOCK_STREAM)`, both ends close-on-exec.
pub fn socketpair() -> Result<(OwnedFd, OwnedFd), BoxError> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors the call writes.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// `pipe2(O_CLOEXEC)`: (read end, write end).
pub fn pipe() -> Result<(OwnedFd, OwnedFd), BoxError> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors the call writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Take ownership of an inherited fd.
///
/// # Safety
/// `fd` must be an open descriptor nobody else in this process owns.
pub unsafe fn adopt(fd: RawFd) -> OwnedFd {
    // SAFETY: forwarded caller contract.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Blocking byte-stream endpoint (socket or pipes).
#[derive(Debug)]
pub struct StreamEp {
    r: File,
    w: File,
    src: Source,
    buf: Vec<u8>,
    len: usize,
}

impl StreamEp {
    /// Over a read and a write descriptor (the same socket twice is fine: pass a dup).
    pub fn new(r: OwnedFd, w: OwnedFd, len: usize) -> StreamEp {
        StreamEp {
            r: File::from(r),
            w: File::from(w),
            src: Source::new(len),
            buf: vec![0; len.max(8)],
            len,
        }
    }

    /// Over one socket.
    pub fn socket(s: OwnedFd, len: usize) -> Result<StreamEp, BoxError> {
        let w = s.try_clone()?;
        Ok(StreamEp::new(s, w, len))
    }
}

impl Endpoint for StreamEp {
    fn send(&mut self, seq: u64, len: usize) -> Result<(), BoxError> {
        debug_assert_eq!(len, self.len);
        let bytes = self.src.stamped(len, seq);
        self.w.write_all(bytes)?;
        Ok(())
    }

    fn recv(&mut self) -> Result<u64, BoxError> {
        self.r.read_exact(&mut self.buf[..self.len])?;
        Ok(u64::from_le_bytes(self.buf[..8].try_into()?))
    }
}
