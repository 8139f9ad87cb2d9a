//! Socketpair doorbell for cross-process wake-ups, wire-compatible with roam 7.x
//! (notes §8).
//!
//! A doorbell is one end of a `socketpair(AF_UNIX, SOCK_STREAM)`, non-blocking and
//! close-on-exec. Ringing sends one byte (value 1); the bytes carry no meaning, only
//! readiness does, so a full socket buffer simply coalesces rings. The waiting side polls
//! for readability and drains everything. The socket also tells a peer's death: when
//! the last descriptor of the other end closes (including by `kill -9`), the waiter sees
//! end-of-file, or `ECONNRESET` if the dead end still had unread bytes (Linux).
//!
//! Improvement over roam: ringing uses `MSG_NOSIGNAL` (`SO_NOSIGPIPE` on Apple), so
//! ringing a dead peer never raises `SIGPIPE`. The bytes on the wire are the same.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType};

/// Bytes read per `recv` while draining (as roam does).
const DRAIN_CHUNK: usize = 64;

/// Upper bound on `recv` calls per drain, so a peer ringing in a tight loop cannot keep
/// the waiter draining forever; leftover bytes just make the next wait return at once.
const MAX_DRAIN_ROUNDS: usize = 4096;

/// Errors of the doorbell (failures of our own descriptor or of the OS, never the peer's
/// state: a dead peer is an ordinary outcome).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DoorbellError {
    /// `socketpair` failed.
    #[error("socketpair(AF_UNIX, SOCK_STREAM) failed: {0}")]
    Socketpair(Errno),
    /// Configuring a descriptor failed.
    #[error("doorbell fd {fd}: {op} failed: {errno}")]
    Setup {
        /// The descriptor.
        fd: RawFd,
        /// The operation.
        op: &'static str,
        /// The error.
        errno: Errno,
    },
    /// [`Doorbell::from_fd`] got something other than a stream socket.
    #[error("doorbell fd {fd} is not a SOCK_STREAM socket")]
    NotStreamSocket {
        /// The descriptor.
        fd: RawFd,
    },
    /// `poll` failed.
    #[error("doorbell fd {fd}: poll failed: {errno}")]
    Poll {
        /// The descriptor.
        fd: RawFd,
        /// The error.
        errno: Errno,
    },
    /// `recv` failed with an error that does not mean "peer gone".
    #[error("doorbell fd {fd}: recv failed: {errno}")]
    Recv {
        /// The descriptor.
        fd: RawFd,
        /// The error.
        errno: Errno,
    },
    /// `poll` reported `POLLNVAL`: our descriptor is not open.
    #[error("doorbell fd {fd} is not open")]
    InvalidFd {
        /// The descriptor.
        fd: RawFd,
    },
}

/// Result of [`Doorbell::signal`] (roam's `SignalResult`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalResult {
    /// The byte was sent.
    Sent,
    /// The socket buffer is full (`EAGAIN`/`ENOBUFS`): the peer has unread rings
    /// pending, so this one is coalesced with them. Not an error.
    BufferFull,
    /// The peer's end is closed (or the send failed otherwise).
    PeerDead,
}

/// Result of [`Doorbell::wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    /// The peer rang at least once; all pending rings were consumed.
    Signaled,
    /// The timeout expired without a ring.
    Timeout,
    /// The peer's end is closed (end-of-file, `ECONNRESET`, `POLLHUP`/`POLLERR`). Rings
    /// it sent before closing are reported first (as `Signaled`); this is reported from
    /// then on, on every call.
    PeerGone,
}

/// Result of [`Doorbell::drain`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainOutcome {
    /// Nothing was pending.
    Empty,
    /// This many ring bytes were consumed.
    Drained {
        /// Bytes read.
        bytes: usize,
    },
    /// The peer's end is closed (see [`WaitOutcome::PeerGone`]).
    PeerGone,
}

/// Our end of a doorbell. All methods take `&self`: one thread may ring while another
/// waits.
#[derive(Debug)]
pub struct Doorbell {
    fd: OwnedFd,
}

/// The peer's end of a doorbell, to hand to another process (`SCM_RIGHTS`, or
/// inheritance after clearing close-on-exec in the child). Once handed over, the
/// creating process must close its copy (drop it, or [`crate::fd::close_peer_fd`]),
/// otherwise it never sees the peer die. The receiving process wraps it with
/// [`Doorbell::from_fd`].
#[derive(Debug)]
pub struct DoorbellHandle {
    fd: OwnedFd,
}

impl DoorbellHandle {
    /// Give up ownership of the descriptor.
    pub fn into_raw_fd(self) -> RawFd {
        self.fd.into_raw_fd()
    }

    /// The descriptor number (still owned by the handle).
    pub fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Take ownership of a raw descriptor.
    ///
    /// # Safety
    /// `fd` must be an open descriptor that nothing else owns or will close.
    pub unsafe fn from_raw_fd(fd: RawFd) -> DoorbellHandle {
        DoorbellHandle {
            // SAFETY: the caller guarantees `fd` is open and exclusively ours.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        }
    }

    /// Turn the handle into a usable doorbell in this process.
    pub fn into_doorbell(self) -> Result<Doorbell, DoorbellError> {
        Doorbell::from_fd(self.fd)
    }
}

impl AsFd for DoorbellHandle {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl From<OwnedFd> for DoorbellHandle {
    fn from(fd: OwnedFd) -> Self {
        DoorbellHandle { fd }
    }
}

impl From<DoorbellHandle> for OwnedFd {
    fn from(h: DoorbellHandle) -> Self {
        h.fd
    }
}

fn setup_err(fd: RawFd, op: &'static str) -> impl FnOnce(crate::fd::FdError) -> DoorbellError {
    move |e| DoorbellError::Setup {
        fd,
        op,
        errno: match e {
            crate::fd::FdError::Invalid { .. } => Errno::EBADF,
            crate::fd::FdError::Sys { errno, .. } => errno,
        },
    }
}

/// Make `fd` a well-behaved doorbell end: non-blocking, close-on-exec, and (Apple) no
/// `SIGPIPE` on send.
fn configure(fd: BorrowedFd<'_>) -> Result<(), DoorbellError> {
    let raw = fd.as_raw_fd();
    crate::fd::set_nonblocking(fd).map_err(setup_err(raw, "set O_NONBLOCK"))?;
    crate::fd::set_cloexec(fd).map_err(setup_err(raw, "set FD_CLOEXEC"))?;
    #[cfg(target_vendor = "apple")]
    {
        let one: nix::libc::c_int = 1;
        // SAFETY: `raw` is open (borrowed for this call); the option value points to a
        // live c_int of the size passed.
        let r = unsafe {
            nix::libc::setsockopt(
                raw,
                nix::libc::SOL_SOCKET,
                nix::libc::SO_NOSIGPIPE,
                (&one as *const nix::libc::c_int).cast(),
                std::mem::size_of::<nix::libc::c_int>() as nix::libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(DoorbellError::Setup {
                fd: raw,
                op: "setsockopt(SO_NOSIGPIPE)",
                errno: Errno::last(),
            });
        }
    }
    Ok(())
}

/// Platforms where `socketpair` takes `SOCK_NONBLOCK | SOCK_CLOEXEC` atomically.
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "illumos",
    target_os = "solaris"
))]
fn socketpair_flags() -> SockFlag {
    SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "illumos",
    target_os = "solaris"
)))]
fn socketpair_flags() -> SockFlag {
    SockFlag::empty()
}

/// Flags of the ring `send`: never block; never raise `SIGPIPE` where the flag exists
/// (Apple uses `SO_NOSIGPIPE`, set in [`configure`]).
fn send_flags() -> MsgFlags {
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "dragonfly",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "illumos",
        target_os = "solaris"
    ))]
    return MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
    #[cfg(not(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "dragonfly",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "illumos",
        target_os = "solaris"
    )))]
    return MsgFlags::MSG_DONTWAIT;
}

/// Errors of `recv` that mean the other end is gone.
fn is_peer_gone(e: Errno) -> bool {
    matches!(e, Errno::ECONNRESET | Errno::EPIPE | Errno::ENOTCONN)
}

fn is_would_block(e: Errno) -> bool {
    e == Errno::EAGAIN || e == Errno::EWOULDBLOCK
}

/// Poll timeout for the time left until `deadline`, rounded *up* to whole milliseconds
/// (rounding down would turn a sub-millisecond remainder into a busy loop).
fn poll_timeout(deadline: Option<Instant>) -> PollTimeout {
    let Some(deadline) = deadline else {
        return PollTimeout::NONE;
    };
    let left = deadline.saturating_duration_since(Instant::now());
    let ms = left.as_nanos().div_ceil(1_000_000);
    let ms = i32::try_from(ms).unwrap_or(i32::MAX);
    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
}

impl Doorbell {
    /// Create a connected pair: our [`Doorbell`] and the peer's [`DoorbellHandle`]. Both
    /// ends are non-blocking and close-on-exec.
    pub fn create_pair() -> Result<(Doorbell, DoorbellHandle), DoorbellError> {
        let (ours, theirs) = socket::socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            socketpair_flags(),
        )
        .map_err(DoorbellError::Socketpair)?;
        configure(ours.as_fd())?;
        configure(theirs.as_fd())?;
        Ok((Doorbell { fd: ours }, DoorbellHandle { fd: theirs }))
    }

    /// Wrap a received end (from a [`DoorbellHandle`], `SCM_RIGHTS` or an inherited
    /// `--doorbell-fd`). It must be a `SOCK_STREAM` socket; it is made non-blocking and
    /// close-on-exec.
    pub fn from_fd(fd: OwnedFd) -> Result<Doorbell, DoorbellError> {
        let raw = fd.as_raw_fd();
        match socket::getsockopt(&fd, socket::sockopt::SockType) {
            Ok(SockType::Stream) => {}
            Ok(_) | Err(Errno::ENOTSOCK) => return Err(DoorbellError::NotStreamSocket { fd: raw }),
            Err(Errno::EBADF) => return Err(DoorbellError::InvalidFd { fd: raw }),
            Err(errno) => {
                return Err(DoorbellError::Setup {
                    fd: raw,
                    op: "getsockopt(SO_TYPE)",
                    errno,
                });
            }
        }
        configure(fd.as_fd())?;
        Ok(Doorbell { fd })
    }

    /// Ring: send one byte (value 1) without blocking.
    pub fn signal(&self) -> SignalResult {
        loop {
            match socket::send(self.fd.as_raw_fd(), &[1u8], send_flags()) {
                Ok(1) => return SignalResult::Sent,
                Ok(_) => return SignalResult::PeerDead,
                Err(Errno::EINTR) => continue,
                Err(e) if is_would_block(e) || e == Errno::ENOBUFS => {
                    return SignalResult::BufferFull;
                }
                Err(_) => return SignalResult::PeerDead,
            }
        }
    }

    /// Wait until the peer rings, the peer goes away, or `timeout` expires (`None`:
    /// wait forever). Pending rings are drained, so rings are coalesced. A signal
    /// interrupting the wait (`EINTR`) resumes it with the remaining time.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<WaitOutcome, DoorbellError> {
        let raw = self.fd.as_raw_fd();
        // A deadline too far away to represent is the same as no deadline.
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            let n = match poll(&mut fds, poll_timeout(deadline)) {
                Ok(n) => n,
                Err(Errno::EINTR) => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Ok(WaitOutcome::Timeout);
                    }
                    continue;
                }
                Err(errno) => return Err(DoorbellError::Poll { fd: raw, errno }),
            };
            if n == 0 {
                if deadline.is_some_and(|d| Instant::now() < d) {
                    continue; // woke a little early: wait out the rest
                }
                return Ok(WaitOutcome::Timeout);
            }
            let revents = fds[0].revents().unwrap_or(PollFlags::empty());
            if revents.contains(PollFlags::POLLNVAL) {
                return Err(DoorbellError::InvalidFd { fd: raw });
            }
            let hangup = revents.intersects(PollFlags::POLLHUP | PollFlags::POLLERR);
            match self.drain()? {
                DrainOutcome::Drained { .. } => return Ok(WaitOutcome::Signaled),
                DrainOutcome::PeerGone => return Ok(WaitOutcome::PeerGone),
                DrainOutcome::Empty if hangup => return Ok(WaitOutcome::PeerGone),
                // Spurious readiness (someone else drained first): keep waiting.
                DrainOutcome::Empty => continue,
            }
        }
    }

    /// Consume pending rings without blocking.
    pub fn drain(&self) -> Result<DrainOutcome, DoorbellError> {
        let raw = self.fd.as_raw_fd();
        let mut buf = [0u8; DRAIN_CHUNK];
        let mut total = 0usize;
        let mut rounds = 0;
        while rounds < MAX_DRAIN_ROUNDS {
            rounds += 1;
            match socket::recv(raw, &mut buf, MsgFlags::MSG_DONTWAIT) {
                Ok(n) if n > 0 => {
                    total = total.saturating_add(n);
                    if n < buf.len() {
                        // A stream socket returns everything queued up to the buffer
                        // size: less means drained (saves the EAGAIN round trip).
                        break;
                    }
                }
                Err(Errno::EINTR) => continue,
                Err(e) if is_would_block(e) => break,
                // End-of-file or reset. Report the rings read first: the condition stays
                // (a closed stream socket keeps returning end-of-file, and after an
                // ECONNRESET it returns end-of-file), so the next call says PeerGone.
                Ok(_) if total > 0 => break,
                Err(e) if is_peer_gone(e) && total > 0 => break,
                Ok(_) => return Ok(DrainOutcome::PeerGone),
                Err(e) if is_peer_gone(e) => return Ok(DrainOutcome::PeerGone),
                Err(errno) => return Err(DoorbellError::Recv { fd: raw, errno }),
            }
        }
        Ok(if total == 0 {
            DrainOutcome::Empty
        } else {
            DrainOutcome::Drained { bytes: total }
        })
    }

    /// Whether the peer's end still looks open, without consuming rings. A `false` is
    /// definitive; a `true` can be outdated by the time it is returned.
    pub fn is_peer_alive(&self) -> bool {
        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
        let revents = match poll(&mut fds, PollTimeout::ZERO) {
            Ok(0) => return true,
            Ok(_) => fds[0].revents().unwrap_or(PollFlags::empty()),
            Err(Errno::EINTR) => return true,
            Err(_) => return false,
        };
        if revents.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL) {
            return false;
        }
        if !revents.contains(PollFlags::POLLIN) {
            return true;
        }
        // Readable: pending rings, or end-of-file (platforms without POLLHUP here).
        let mut b = [0u8; 1];
        match socket::recv(
            self.fd.as_raw_fd(),
            &mut b,
            MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(0) => false,
            Ok(_) => true,
            Err(e) => is_would_block(e) || e == Errno::EINTR,
        }
    }

    /// Give up the doorbell, keeping the descriptor.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

impl AsFd for Doorbell {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Doorbell {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;

    const LONG: Option<Duration> = Some(Duration::from_secs(5));

    fn pair() -> (Doorbell, Doorbell) {
        let (a, h) = Doorbell::create_pair().unwrap();
        (a, h.into_doorbell().unwrap())
    }

    #[test]
    fn ends_are_nonblocking_and_cloexec() {
        let (a, h) = Doorbell::create_pair().unwrap();
        for fd in [a.as_fd(), h.as_fd()] {
            assert!(crate::fd::is_nonblocking(fd).unwrap());
            assert!(crate::fd::is_cloexec(fd).unwrap());
        }
    }

    #[test]
    fn signal_wakes_wait_and_rings_are_one_byte_of_1() {
        let (a, b) = pair();
        assert_eq!(a.signal(), SignalResult::Sent);
        let mut buf = [0u8; 8];
        let n = socket::recv(b.as_raw_fd(), &mut buf, MsgFlags::MSG_PEEK).unwrap();
        assert_eq!(&buf[..n], &[1]);
        assert_eq!(b.wait(LONG).unwrap(), WaitOutcome::Signaled);
        assert_eq!(b.drain().unwrap(), DrainOutcome::Empty);
        // Both directions work.
        assert_eq!(b.signal(), SignalResult::Sent);
        assert_eq!(a.wait(LONG).unwrap(), WaitOutcome::Signaled);
    }

    #[test]
    fn wait_times_out() {
        let (a, _b) = pair();
        let t0 = Instant::now();
        assert_eq!(
            a.wait(Some(Duration::from_millis(30))).unwrap(),
            WaitOutcome::Timeout
        );
        assert!(t0.elapsed() >= Duration::from_millis(30));
        assert_eq!(a.wait(Some(Duration::ZERO)).unwrap(), WaitOutcome::Timeout);
        // Sub-millisecond timeouts still sleep rather than spin, and return Timeout.
        assert_eq!(
            a.wait(Some(Duration::from_micros(10))).unwrap(),
            WaitOutcome::Timeout
        );
    }

    #[test]
    fn rings_coalesce() {
        let (a, b) = pair();
        for _ in 0..3 {
            assert_eq!(a.signal(), SignalResult::Sent);
        }
        assert_eq!(b.wait(LONG).unwrap(), WaitOutcome::Signaled);
        assert_eq!(
            b.wait(Some(Duration::from_millis(10))).unwrap(),
            WaitOutcome::Timeout
        );
        for _ in 0..5 {
            a.signal();
        }
        assert_eq!(b.drain().unwrap(), DrainOutcome::Drained { bytes: 5 });
    }

    #[test]
    fn full_buffer_is_buffer_full_then_recovers() {
        let (a, b) = pair();
        let mut sent = 0usize;
        let full = loop {
            match a.signal() {
                SignalResult::Sent => sent += 1,
                other => break other,
            }
            assert!(sent < 10_000_000, "socket buffer never filled");
        };
        assert_eq!(full, SignalResult::BufferFull);
        assert!(a.is_peer_alive());
        assert_eq!(b.wait(LONG).unwrap(), WaitOutcome::Signaled);
        assert_eq!(b.drain().unwrap(), DrainOutcome::Empty);
        assert_eq!(a.signal(), SignalResult::Sent);
        assert!(sent > 0);
    }

    #[test]
    fn wait_from_another_thread() {
        let (a, b) = pair();
        let t = std::thread::spawn(move || b.wait(None).unwrap());
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(a.signal(), SignalResult::Sent);
        assert_eq!(t.join().unwrap(), WaitOutcome::Signaled);
    }

    #[test]
    fn peer_drop_is_peer_gone_eof() {
        let (a, b) = pair();
        assert!(a.is_peer_alive());
        drop(b);
        assert!(!a.is_peer_alive());
        assert_eq!(a.wait(LONG).unwrap(), WaitOutcome::PeerGone);
        assert_eq!(a.drain().unwrap(), DrainOutcome::PeerGone);
        assert_eq!(a.signal(), SignalResult::PeerDead);
        // Sticky: waiting again still reports it (no hang).
        assert_eq!(a.wait(None).unwrap(), WaitOutcome::PeerGone);
    }

    #[test]
    fn peer_drop_with_unread_rings_resets_the_connection() {
        // The dying end had unread bytes: Linux reports ECONNRESET, not EOF.
        let (a, b) = pair();
        assert_eq!(a.signal(), SignalResult::Sent);
        drop(b);
        let mut buf = [0u8; 4];
        let raw = socket::recv(a.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT);
        #[cfg(any(target_os = "linux", target_os = "android"))]
        assert_eq!(raw, Err(Errno::ECONNRESET));
        let _ = raw;

        let (a, b) = pair();
        assert_eq!(a.signal(), SignalResult::Sent);
        drop(b);
        assert!(!a.is_peer_alive());
        assert_eq!(a.wait(LONG).unwrap(), WaitOutcome::PeerGone);
        assert_eq!(a.wait(LONG).unwrap(), WaitOutcome::PeerGone);
        assert_eq!(a.signal(), SignalResult::PeerDead);
    }

    #[test]
    fn last_rings_are_reported_before_peer_gone() {
        // A peer that rings and exits at once: the ring is not lost in the hang-up.
        let (a, b) = pair();
        b.signal();
        drop(b);
        assert_eq!(a.wait(LONG).unwrap(), WaitOutcome::Signaled);
        assert_eq!(a.wait(LONG).unwrap(), WaitOutcome::PeerGone);
        assert_eq!(a.wait(LONG).unwrap(), WaitOutcome::PeerGone);

        // Same when both sides had rings in flight (the dying end resets).
        let (a, b) = pair();
        b.signal();
        a.signal();
        drop(b);
        assert_eq!(a.drain().unwrap(), DrainOutcome::Drained { bytes: 1 });
        assert_eq!(a.drain().unwrap(), DrainOutcome::PeerGone);
        assert_eq!(a.drain().unwrap(), DrainOutcome::PeerGone);
    }

    #[test]
    fn from_fd_refuses_non_stream_sockets() {
        let (r, _w) = nix::unistd::pipe().unwrap();
        assert!(matches!(
            Doorbell::from_fd(r),
            Err(DoorbellError::NotStreamSocket { .. })
        ));
        let (d, _d2) = socket::socketpair(
            AddressFamily::Unix,
            SockType::Datagram,
            None,
            SockFlag::empty(),
        )
        .unwrap();
        assert!(matches!(
            Doorbell::from_fd(d),
            Err(DoorbellError::NotStreamSocket { .. })
        ));
    }

    #[test]
    fn from_fd_makes_a_blocking_socket_nonblocking() {
        let (s1, s2) = socket::socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::empty(),
        )
        .unwrap();
        let a = Doorbell::from_fd(s1).unwrap();
        assert!(crate::fd::is_nonblocking(&a).unwrap());
        assert!(crate::fd::is_cloexec(&a).unwrap());
        assert_eq!(a.drain().unwrap(), DrainOutcome::Empty);
        drop(s2);
        assert_eq!(a.wait(LONG).unwrap(), WaitOutcome::PeerGone);
    }

    #[test]
    fn handle_raw_round_trip() {
        let (a, h) = Doorbell::create_pair().unwrap();
        let raw = h.into_raw_fd();
        // SAFETY: `raw` came from into_raw_fd just above and is owned by nobody else.
        let h = unsafe { DoorbellHandle::from_raw_fd(raw) };
        assert_eq!(h.as_raw_fd(), raw);
        let b = Doorbell::from_fd(OwnedFd::from(h)).unwrap();
        a.signal();
        assert_eq!(b.wait(LONG).unwrap(), WaitOutcome::Signaled);
    }
}
