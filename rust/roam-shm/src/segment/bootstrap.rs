//! The bootstrap handshake over a Unix control socket (notes §6).
//!
//! Request (guest → host): `RSH0`, sid_len u16, sid (opaque bytes); exactly
//! `6 + sid_len` bytes. Response (host → guest): `RSP0`, status u8 @4, peer_id u32
//! @5, payload_len u16 @9, payload @11; exactly `11 + payload_len` bytes.
//! Status 0 (Success): the payload is the segment path and three fds travel with
//! the frame in ONE `SCM_RIGHTS` message, in the order doorbell, segment,
//! mmap-control. Status 1 (Error): peer_id 0, the payload is a UTF-8 message, no
//! fds. Any other status is a protocol error.
//!
//! Differences from roam, none visible on the wire:
//! - the receiver closes every fd it received on every error path (roam leaks them
//!   when the frame does not decode), and receives them close-on-exec;
//! - after the single `recvmsg` that carries the fds, a response cut short by the
//!   stream is completed with plain reads (roam needs it all in one `recvmsg`);
//! - a partial `sendmsg` is completed with plain sends (the fds went with the first
//!   byte).
//!
//! [`BootstrapError::kind`] gives the distinctions roam's C ABI codes need.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::errno::Errno;

/// Magic of a request.
pub const REQUEST_MAGIC: [u8; 4] = *b"RSH0";
/// Magic of a response.
pub const RESPONSE_MAGIC: [u8; 4] = *b"RSP0";
/// Size of a request header.
pub const REQUEST_HEADER_LEN: usize = 6;
/// Size of a response header.
pub const RESPONSE_HEADER_LEN: usize = 11;
/// Largest response frame.
pub const MAX_RESPONSE_LEN: usize = RESPONSE_HEADER_LEN + u16::MAX as usize;
/// Number of fds a Success response carries.
pub const SUCCESS_FD_COUNT: usize = 3;

/// Errors of the bootstrap codec and socket I/O.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BootstrapError {
    /// The sid does not fit the u16 length field.
    #[error("sid of {0} bytes does not fit a u16 length")]
    SidTooLong(usize),
    /// The payload does not fit the u16 length field.
    #[error("payload of {0} bytes does not fit a u16 length")]
    PayloadTooLong(usize),
    /// The output buffer is too small.
    #[error("buffer of {available} bytes is too small for {needed}")]
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// Fewer bytes than a header.
    #[error("truncated {context}: {available} bytes, needs {needed}")]
    Truncated {
        /// "request" or "response".
        context: &'static str,
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// Wrong magic.
    #[error("bad {context} magic {found:?}")]
    BadMagic {
        /// "request" or "response".
        context: &'static str,
        /// The bytes found.
        found: [u8; 4],
    },
    /// The frame is not exactly header + declared length.
    #[error("{context} length mismatch: declared {declared}, actual {actual}")]
    LengthMismatch {
        /// "request" or "response".
        context: &'static str,
        /// Header + declared length.
        declared: usize,
        /// Bytes present.
        actual: usize,
    },
    /// A status other than 0 or 1.
    #[error("unknown bootstrap status {0}")]
    UnknownStatus(u8),
    /// An Error response with a non-zero peer id.
    #[error("error response must carry peer_id 0, got {0}")]
    ErrorWithPeerId(u32),
    /// The caller passed fds that do not match the status (3 for Success, none for
    /// Error).
    #[error("a {0:?} response is sent with 3 fds on Success and none on Error")]
    SendFdsMismatch(BootstrapStatus),
    /// The received fd count does not match the status.
    #[error("{status:?} response arrived with {count} fds (expected 3 on Success, 0 on Error)")]
    FdCount {
        /// The response status.
        status: BootstrapStatus,
        /// Fds received.
        count: usize,
    },
    /// The control message was truncated (`MSG_CTRUNC`).
    #[error("control message truncated (MSG_CTRUNC)")]
    ControlTruncated,
    /// The peer closed the socket before a frame arrived.
    #[error("peer closed the bootstrap socket")]
    Eof,
    /// A socket call failed.
    #[error("bootstrap socket: {0}")]
    Io(#[from] Errno),
}

/// Coarse classes of [`BootstrapError`], matching roam's C ABI return codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootstrapErrorKind {
    /// Invalid arguments (roam −1; sid/payload too long is roam's −3 "encode failure").
    BadArgs,
    /// Output buffer too small (roam −2).
    BufferTooSmall,
    /// A malformed frame or fd set (roam −2 on decode, −1 on receive).
    Malformed,
    /// An unknown status or status/peer-id mismatch (roam −3 on encode).
    BadStatus,
    /// The socket failed or closed.
    Io,
}

impl BootstrapError {
    /// The class of this error.
    pub fn kind(&self) -> BootstrapErrorKind {
        use BootstrapError::*;
        match self {
            SidTooLong(_) | PayloadTooLong(_) | SendFdsMismatch(_) => BootstrapErrorKind::BadArgs,
            BufferTooSmall { .. } => BootstrapErrorKind::BufferTooSmall,
            Truncated { .. }
            | BadMagic { .. }
            | LengthMismatch { .. }
            | FdCount { .. }
            | ControlTruncated => BootstrapErrorKind::Malformed,
            UnknownStatus(_) | ErrorWithPeerId(_) => BootstrapErrorKind::BadStatus,
            Eof | Io(_) => BootstrapErrorKind::Io,
        }
    }
}

/// Response status.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BootstrapStatus {
    /// The guest may attach; the payload is the segment path.
    Success = 0,
    /// Refused; the payload is a UTF-8 message.
    Error = 1,
}

impl BootstrapStatus {
    /// Decode a status byte.
    pub fn from_u8(v: u8) -> Result<BootstrapStatus, BootstrapError> {
        match v {
            0 => Ok(BootstrapStatus::Success),
            1 => Ok(BootstrapStatus::Error),
            other => Err(BootstrapError::UnknownStatus(other)),
        }
    }
}

/// The fixed fields of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseInfo {
    /// Status.
    pub status: BootstrapStatus,
    /// Peer id assigned to the guest (0 on Error).
    pub peer_id: u32,
    /// Payload length.
    pub payload_len: u16,
}

fn sized(out: &mut [u8], needed: usize) -> Result<&mut [u8], BootstrapError> {
    let available = out.len();
    out.get_mut(..needed)
        .ok_or(BootstrapError::BufferTooSmall { needed, available })
}

/// Encode a request into `out`; returns the bytes written (`6 + sid.len()`).
pub fn encode_request(sid: &[u8], out: &mut [u8]) -> Result<usize, BootstrapError> {
    let len = u16::try_from(sid.len()).map_err(|_| BootstrapError::SidTooLong(sid.len()))?;
    let total = REQUEST_HEADER_LEN + sid.len();
    let o = sized(out, total)?;
    o[..4].copy_from_slice(&REQUEST_MAGIC);
    o[4..6].copy_from_slice(&len.to_le_bytes());
    o[6..].copy_from_slice(sid);
    Ok(total)
}

/// Decode a request frame (exactly `6 + sid_len` bytes); returns the sid.
pub fn decode_request(bytes: &[u8]) -> Result<&[u8], BootstrapError> {
    let Some((hdr, sid)) = bytes.split_first_chunk::<REQUEST_HEADER_LEN>() else {
        return Err(BootstrapError::Truncated {
            context: "request",
            needed: REQUEST_HEADER_LEN,
            available: bytes.len(),
        });
    };
    check_magic(hdr, REQUEST_MAGIC, "request")?;
    let declared = REQUEST_HEADER_LEN + usize::from(u16::from_le_bytes([hdr[4], hdr[5]]));
    if bytes.len() != declared {
        return Err(BootstrapError::LengthMismatch {
            context: "request",
            declared,
            actual: bytes.len(),
        });
    }
    Ok(sid)
}

fn check_magic(hdr: &[u8], magic: [u8; 4], context: &'static str) -> Result<(), BootstrapError> {
    let mut found = [0u8; 4];
    found.copy_from_slice(&hdr[..4]);
    if found != magic {
        return Err(BootstrapError::BadMagic { context, found });
    }
    Ok(())
}

/// Encode a response into `out`; returns the bytes written (`11 + payload.len()`).
/// An Error response must carry peer id 0.
pub fn encode_response(
    status: BootstrapStatus,
    peer_id: u32,
    payload: &[u8],
    out: &mut [u8],
) -> Result<usize, BootstrapError> {
    let len =
        u16::try_from(payload.len()).map_err(|_| BootstrapError::PayloadTooLong(payload.len()))?;
    if status == BootstrapStatus::Error && peer_id != 0 {
        return Err(BootstrapError::ErrorWithPeerId(peer_id));
    }
    let total = RESPONSE_HEADER_LEN + payload.len();
    let o = sized(out, total)?;
    o[..4].copy_from_slice(&RESPONSE_MAGIC);
    o[4] = status as u8;
    o[5..9].copy_from_slice(&peer_id.to_le_bytes());
    o[9..11].copy_from_slice(&len.to_le_bytes());
    o[11..].copy_from_slice(payload);
    Ok(total)
}

/// Decode a response frame (exactly `11 + payload_len` bytes; status 0 or 1; an
/// Error response must carry peer id 0). Returns the fields and the payload.
///
/// The peer id of a Success response is not range-checked here (roam does not);
/// the peer table bounds-checks it.
pub fn decode_response(bytes: &[u8]) -> Result<(ResponseInfo, &[u8]), BootstrapError> {
    let Some((hdr, payload)) = bytes.split_first_chunk::<RESPONSE_HEADER_LEN>() else {
        return Err(BootstrapError::Truncated {
            context: "response",
            needed: RESPONSE_HEADER_LEN,
            available: bytes.len(),
        });
    };
    check_magic(hdr, RESPONSE_MAGIC, "response")?;
    let status = BootstrapStatus::from_u8(hdr[4])?;
    let peer_id = u32::from_le_bytes([hdr[5], hdr[6], hdr[7], hdr[8]]);
    let payload_len = u16::from_le_bytes([hdr[9], hdr[10]]);
    let declared = RESPONSE_HEADER_LEN + usize::from(payload_len);
    if bytes.len() != declared {
        return Err(BootstrapError::LengthMismatch {
            context: "response",
            declared,
            actual: bytes.len(),
        });
    }
    if status == BootstrapStatus::Error && peer_id != 0 {
        return Err(BootstrapError::ErrorWithPeerId(peer_id));
    }
    Ok((
        ResponseInfo {
            status,
            peer_id,
            payload_len,
        },
        payload,
    ))
}

/// Low-level `SCM_RIGHTS` helpers shared with the mmap control channel.
pub(crate) mod scm {
    use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

    use nix::errno::Errno;
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};

    /// One received message.
    pub(crate) struct Received {
        /// Data bytes received (with `MSG_TRUNC` semantics on datagrams: the bytes
        /// copied, see `truncated`).
        pub bytes: usize,
        /// Every fd that arrived, already owned (closed on drop).
        pub fds: Vec<OwnedFd>,
        /// `MSG_CTRUNC`: some control data (fds) did not fit.
        pub ctrunc: bool,
        /// `MSG_TRUNC`: the datagram was longer than the buffer.
        pub truncated: bool,
    }

    /// Flags that stop a send on a closed peer from raising SIGPIPE.
    pub(crate) fn nosignal(fd: BorrowedFd<'_>) -> Result<MsgFlags, Errno> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            let _ = fd;
            Ok(MsgFlags::MSG_NOSIGNAL)
        }
        #[cfg(target_vendor = "apple")]
        {
            let one: libc::c_int = 1;
            // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from `&one`, which
            // lives across the call; `fd` is a valid descriptor borrowed for the call.
            let rc = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_NOSIGPIPE,
                    (&one as *const libc::c_int).cast(),
                    core::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            Errno::result(rc)?;
            Ok(MsgFlags::empty())
        }
        #[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
        {
            let _ = fd;
            Ok(MsgFlags::empty())
        }
    }

    /// Send `data` with `fds` in one `SCM_RIGHTS` message (none if empty); returns
    /// the bytes sent by that single `sendmsg` (retried on EINTR).
    pub(crate) fn send_with_fds(
        fd: BorrowedFd<'_>,
        data: &[u8],
        fds: &[RawFd],
    ) -> Result<usize, Errno> {
        let flags = nosignal(fd)?;
        let iov = [std::io::IoSlice::new(data)];
        let rights = [ControlMessage::ScmRights(fds)];
        let cmsgs: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &rights };
        loop {
            match sendmsg::<()>(fd.as_raw_fd(), &iov, cmsgs, flags, None) {
                Err(Errno::EINTR) => continue,
                other => return other,
            }
        }
    }

    /// Send all of `data` with plain sends (retried on EINTR and short writes).
    pub(crate) fn send_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> Result<(), Errno> {
        let flags = nosignal(fd)?;
        while !data.is_empty() {
            match nix::sys::socket::send(fd.as_raw_fd(), data, flags) {
                Ok(0) => return Err(Errno::EPIPE),
                Ok(n) => data = &data[n.min(data.len())..],
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Plain `recv` into `buf` (retried on EINTR); 0 = EOF.
    pub(crate) fn recv_some(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, Errno> {
        loop {
            match nix::sys::socket::recv(fd.as_raw_fd(), buf, MsgFlags::empty()) {
                Err(Errno::EINTR) => continue,
                other => return other,
            }
        }
    }

    /// One `recvmsg` with room for `max_fds` fds (retried on EINTR). Every fd that
    /// arrives is wrapped in an `OwnedFd` before anything else can fail, so error
    /// paths of callers close them. Fds arrive close-on-exec where the OS allows.
    pub(crate) fn recv_with_fds(
        fd: BorrowedFd<'_>,
        buf: &mut [u8],
        max_fds: usize,
    ) -> Result<Received, Errno> {
        let fd_bytes = (max_fds.max(1) * core::mem::size_of::<libc::c_int>()) as u32;
        // SAFETY: CMSG_SPACE is a pure size computation.
        let space = unsafe { libc::CMSG_SPACE(fd_bytes) } as usize;
        // u64 storage keeps the control buffer aligned for `cmsghdr`.
        let mut control = vec![0u64; space.div_ceil(8)];
        let control_len = control.len() * 8;
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: an all-zero msghdr is a valid empty header.
        let mut msg: libc::msghdr = unsafe { core::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = control_len as _;
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
        let flags = libc::MSG_CMSG_CLOEXEC;
        #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
        let flags = 0;
        let n = loop {
            // SAFETY: msg points at `iov` (valid for buf.len() writable bytes) and at
            // `control` (valid for control_len bytes); both outlive the call.
            let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, flags) };
            match Errno::result(n) {
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
                Ok(n) => break n as usize,
            }
        };
        let mut fds = Vec::new();
        let base = control.as_ptr() as usize;
        let end = base + control_len;
        // SAFETY: msg.msg_control/msg_controllen describe `control`, which the kernel
        // filled; CMSG_FIRSTHDR/NXTHDR only return headers inside it (or null).
        let mut c = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        while !c.is_null() {
            // SAFETY: `c` is a non-null header inside `control` (see above).
            let (level, ty, len) = unsafe { ((*c).cmsg_level, (*c).cmsg_type, (*c).cmsg_len) };
            if level == libc::SOL_SOCKET && ty == libc::SCM_RIGHTS {
                // SAFETY: pure pointer arithmetic on a header inside `control`.
                let data = unsafe { libc::CMSG_DATA(c) };
                // SAFETY: pure size computation.
                let hdr_len = unsafe { libc::CMSG_LEN(0) } as usize;
                #[allow(clippy::unnecessary_cast)] // socklen_t on some targets
                let claimed = (len as usize).saturating_sub(hdr_len);
                // Never read past the control buffer, whatever cmsg_len says.
                let room = end.saturating_sub(data as usize);
                let count = claimed.min(room) / core::mem::size_of::<libc::c_int>();
                for i in 0..count {
                    // SAFETY: i < count, so the int lies inside `control`; it may be
                    // unaligned, hence read_unaligned.
                    let raw = unsafe { data.cast::<libc::c_int>().add(i).read_unaligned() };
                    if raw >= 0 {
                        // SAFETY: SCM_RIGHTS installed this descriptor in our table
                        // and nothing else owns it yet.
                        fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
                    }
                }
            }
            // SAFETY: `c` is a valid header of `msg`'s control buffer.
            c = unsafe { libc::CMSG_NXTHDR(&msg, c) };
        }
        Ok(Received {
            bytes: n,
            fds,
            ctrunc: msg.msg_flags & libc::MSG_CTRUNC != 0,
            truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
        })
    }
}

/// Read exactly `buf.len()` bytes; `Ok(false)` on EOF before the first byte.
fn recv_exact(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    context: &'static str,
) -> Result<bool, BootstrapError> {
    let mut got = 0;
    while got < buf.len() {
        let n = scm::recv_some(fd, &mut buf[got..])?;
        if n == 0 {
            if got == 0 {
                return Ok(false);
            }
            return Err(BootstrapError::Truncated {
                context,
                needed: buf.len(),
                available: got,
            });
        }
        got += n;
    }
    Ok(true)
}

/// Guest: send a request for `sid` on a connected stream socket.
pub fn send_request(fd: BorrowedFd<'_>, sid: &[u8]) -> Result<(), BootstrapError> {
    let mut frame = vec![0u8; REQUEST_HEADER_LEN + sid.len()];
    let n = encode_request(sid, &mut frame)?;
    scm::send_all(fd, &frame[..n])?;
    Ok(())
}

/// Host: read one request from a stream socket (the 6-byte header, then exactly
/// `sid_len` bytes; at most 65535); returns the sid.
pub fn recv_request(fd: BorrowedFd<'_>) -> Result<Vec<u8>, BootstrapError> {
    let mut hdr = [0u8; REQUEST_HEADER_LEN];
    if !recv_exact(fd, &mut hdr, "request")? {
        return Err(BootstrapError::Eof);
    }
    check_magic(&hdr, REQUEST_MAGIC, "request")?;
    let mut sid = vec![0u8; usize::from(u16::from_le_bytes([hdr[4], hdr[5]]))];
    if !sid.is_empty() && !recv_exact(fd, &mut sid, "request")? {
        return Err(BootstrapError::Truncated {
            context: "request",
            needed: REQUEST_HEADER_LEN + sid.len(),
            available: REQUEST_HEADER_LEN,
        });
    }
    Ok(sid)
}

/// Host: check the 6-byte request header's magic (the sid length needs no check:
/// every u16 is valid).
pub fn check_request_header(hdr: &[u8]) -> Result<(), BootstrapError> {
    check_magic(hdr, REQUEST_MAGIC, "request")
}

/// One `recv` that never blocks (`MSG_DONTWAIT`; retried on EINTR): `EAGAIN` when
/// nothing has arrived, 0 at EOF.
pub fn recv_nonblocking(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, Errno> {
    loop {
        match nix::sys::socket::recv(
            fd.as_raw_fd(),
            buf,
            nix::sys::socket::MsgFlags::MSG_DONTWAIT,
        ) {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// Host: send a response. Success needs exactly the three fds (doorbell, segment,
/// mmap-control), sent in one `SCM_RIGHTS` message with the frame; Error sends none.
/// Uses `MSG_NOSIGNAL` (`SO_NOSIGPIPE` on Apple).
pub fn send_response_unix(
    fd: BorrowedFd<'_>,
    status: BootstrapStatus,
    peer_id: u32,
    payload: &[u8],
    fds: Option<[BorrowedFd<'_>; 3]>,
) -> Result<(), BootstrapError> {
    let raw: Vec<RawFd> = match (status, fds) {
        (BootstrapStatus::Success, Some(f)) => f.iter().map(|b| b.as_raw_fd()).collect(),
        (BootstrapStatus::Error, None) => Vec::new(),
        _ => return Err(BootstrapError::SendFdsMismatch(status)),
    };
    let mut frame = vec![0u8; RESPONSE_HEADER_LEN + payload.len().min(u16::MAX as usize)];
    let n = encode_response(status, peer_id, payload, &mut frame)?;
    let frame = &frame[..n];
    let sent = scm::send_with_fds(fd, frame, &raw)?;
    if sent == 0 {
        return Err(BootstrapError::Io(Errno::EPIPE));
    }
    scm::send_all(fd, &frame[sent.min(frame.len())..])?;
    Ok(())
}

/// What [`recv_response_unix`] returns.
#[derive(Debug)]
pub struct ReceivedResponse<'b> {
    /// The response fields.
    pub info: ResponseInfo,
    /// The payload, copied into the caller's buffer.
    pub payload: &'b [u8],
    /// On Success: doorbell, segment, mmap-control. `None` on Error.
    pub fds: Option<[OwnedFd; 3]>,
}

/// Guest: receive one response. One `recvmsg` of up to `11 + 65535` bytes with room
/// for 3 fds (a response the stream cut short is completed with plain reads); exactly
/// 3 fds on Success and none on Error; `MSG_CTRUNC` is an error. The payload is
/// copied into `payload_buf` ([`BootstrapError::BufferTooSmall`] if it does not
/// fit). Every received fd is closed on every error path.
pub fn recv_response_unix<'b>(
    fd: BorrowedFd<'_>,
    payload_buf: &'b mut [u8],
) -> Result<ReceivedResponse<'b>, BootstrapError> {
    let mut frame = vec![0u8; MAX_RESPONSE_LEN];
    // Room for one fd more than allowed, so an extra fd is counted, not truncated.
    let r = scm::recv_with_fds(fd, &mut frame, SUCCESS_FD_COUNT + 1)?;
    let fds = r.fds; // owned: dropped (closed) on every early return below
    if r.ctrunc {
        return Err(BootstrapError::ControlTruncated);
    }
    if r.bytes == 0 {
        return Err(BootstrapError::Eof);
    }
    let mut got = r.bytes;
    loop {
        let needed = if got < RESPONSE_HEADER_LEN {
            RESPONSE_HEADER_LEN
        } else {
            RESPONSE_HEADER_LEN + usize::from(u16::from_le_bytes([frame[9], frame[10]]))
        };
        if got >= needed {
            break;
        }
        let n = scm::recv_some(fd, &mut frame[got..needed])?;
        if n == 0 {
            return Err(BootstrapError::Truncated {
                context: "response",
                needed,
                available: got,
            });
        }
        got += n;
    }
    let (info, payload) = decode_response(&frame[..got])?;
    let expected = match info.status {
        BootstrapStatus::Success => SUCCESS_FD_COUNT,
        BootstrapStatus::Error => 0,
    };
    if fds.len() != expected {
        return Err(BootstrapError::FdCount {
            status: info.status,
            count: fds.len(),
        });
    }
    let available = payload_buf.len();
    let out = payload_buf
        .get_mut(..payload.len())
        .ok_or(BootstrapError::BufferTooSmall {
            needed: payload.len(),
            available,
        })?;
    out.copy_from_slice(payload);
    // None on Error status: the vector is empty (checked above).
    let fds = <[OwnedFd; 3]>::try_from(fds).ok();
    Ok(ReceivedResponse {
        info,
        payload: out,
        fds,
    })
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    fn stream_pair() -> (OwnedFd, OwnedFd) {
        socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap()
    }

    #[test]
    fn request_codec() {
        let mut out = [0u8; 64];
        let n = encode_request(b"abc", &mut out).unwrap();
        assert_eq!(&out[..n], b"RSH0\x03\x00abc");
        assert_eq!(decode_request(&out[..n]), Ok(&b"abc"[..]));
        // Exact length, both ways.
        assert!(matches!(
            decode_request(&out[..n + 1]),
            Err(BootstrapError::LengthMismatch { .. })
        ));
        assert!(matches!(
            decode_request(&out[..n - 1]),
            Err(BootstrapError::LengthMismatch { .. })
        ));
        assert!(matches!(
            decode_request(&out[..5]),
            Err(BootstrapError::Truncated { .. })
        ));
        let mut bad = out;
        bad[3] = b'1';
        assert!(matches!(
            decode_request(&bad[..n]),
            Err(BootstrapError::BadMagic { .. })
        ));
        // Empty sid is a valid 6-byte frame.
        assert_eq!(encode_request(b"", &mut out), Ok(6));
        assert_eq!(decode_request(&out[..6]), Ok(&b""[..]));
        // Buffer and length limits.
        let e = encode_request(b"abc", &mut [0u8; 8]).unwrap_err();
        assert_eq!(e.kind(), BootstrapErrorKind::BufferTooSmall);
        let long = vec![0u8; 65536];
        let e = encode_request(&long, &mut vec![0u8; 70000]).unwrap_err();
        assert_eq!(e, BootstrapError::SidTooLong(65536));
        assert_eq!(e.kind(), BootstrapErrorKind::BadArgs);
    }

    #[test]
    fn response_codec_and_status_rules() {
        let mut out = [0u8; 64];
        let n = encode_response(BootstrapStatus::Success, 3, b"/dev/shm/x", &mut out).unwrap();
        assert_eq!(&out[..11], b"RSP0\x00\x03\x00\x00\x00\x0a\x00");
        let (info, p) = decode_response(&out[..n]).unwrap();
        assert_eq!(
            info,
            ResponseInfo {
                status: BootstrapStatus::Success,
                peer_id: 3,
                payload_len: 10
            }
        );
        assert_eq!(p, b"/dev/shm/x");
        assert!(matches!(
            decode_response(&out[..n + 1]),
            Err(BootstrapError::LengthMismatch { .. })
        ));
        assert!(matches!(
            decode_response(&out[..10]),
            Err(BootstrapError::Truncated { .. })
        ));
        // Error needs peer id 0, on both sides.
        assert_eq!(
            encode_response(BootstrapStatus::Error, 1, b"no", &mut out),
            Err(BootstrapError::ErrorWithPeerId(1))
        );
        let n = encode_response(BootstrapStatus::Error, 0, b"no", &mut out).unwrap();
        assert_eq!(decode_response(&out[..n]).unwrap().1, b"no");
        out[5] = 9;
        let e = decode_response(&out[..n]).unwrap_err();
        assert_eq!(e, BootstrapError::ErrorWithPeerId(9));
        assert_eq!(e.kind(), BootstrapErrorKind::BadStatus);
        // Unknown status.
        out[5] = 0;
        out[4] = 2;
        let e = decode_response(&out[..n]).unwrap_err();
        assert_eq!(e, BootstrapError::UnknownStatus(2));
        assert_eq!(e.kind(), BootstrapErrorKind::BadStatus);
        assert!(matches!(
            encode_response(BootstrapStatus::Success, 1, b"abc", &mut [0u8; 13]),
            Err(BootstrapError::BufferTooSmall { .. })
        ));
    }

    #[test]
    fn request_over_a_stream() {
        let (a, b) = stream_pair();
        send_request(a.as_fd(), b"0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(
            recv_request(b.as_fd()).unwrap(),
            b"0123456789abcdef0123456789abcdef"
        );
        // A cut-off request is Truncated, a clean close is Eof.
        scm::send_all(a.as_fd(), b"RSH0\x05\x00ab").unwrap();
        drop(a);
        assert!(matches!(
            recv_request(b.as_fd()),
            Err(BootstrapError::Truncated { .. })
        ));
        assert_eq!(recv_request(b.as_fd()), Err(BootstrapError::Eof));
    }

    #[test]
    fn scm_rights_three_fd_round_trip() {
        let (host, guest) = stream_pair();
        // Three distinct kinds of usable fds.
        let (door_host, door_guest) = UnixStream::pair().unwrap();
        let (seg_r, seg_w) = nix::unistd::pipe().unwrap();
        let (ctl_host, ctl_guest) = UnixStream::pair().unwrap();
        send_response_unix(
            host.as_fd(),
            BootstrapStatus::Success,
            7,
            b"/dev/shm/seg",
            Some([door_guest.as_fd(), seg_w.as_fd(), ctl_guest.as_fd()]),
        )
        .unwrap();
        drop((door_guest, seg_w, ctl_guest));
        let mut buf = [0u8; 64];
        let r = recv_response_unix(guest.as_fd(), &mut buf).unwrap();
        assert_eq!(r.info.peer_id, 7);
        assert_eq!(r.payload, b"/dev/shm/seg");
        let [door, seg, ctl] = r.fds.unwrap();
        // Order: doorbell, segment, mmap-control — each is the right object.
        let mut door = UnixStream::from(door);
        door.write_all(b"d").unwrap();
        let mut one = [0u8; 1];
        (&door_host).read_exact(&mut one).unwrap();
        assert_eq!(&one, b"d");
        nix::unistd::write(&seg, b"s").unwrap();
        nix::unistd::read(&seg_r, &mut one).unwrap();
        assert_eq!(&one, b"s");
        let mut ctl = UnixStream::from(ctl);
        ctl.write_all(b"c").unwrap();
        (&ctl_host).read_exact(&mut one).unwrap();
        assert_eq!(&one, b"c");
    }

    #[test]
    fn error_response_has_no_fds() {
        let (host, guest) = stream_pair();
        send_response_unix(host.as_fd(), BootstrapStatus::Error, 0, b"full", None).unwrap();
        let mut buf = [0u8; 16];
        let r = recv_response_unix(guest.as_fd(), &mut buf).unwrap();
        assert_eq!(r.info.status, BootstrapStatus::Error);
        assert_eq!(r.payload, b"full");
        assert!(r.fds.is_none());
        // Mismatched fds are refused before anything is sent.
        let (x, _y) = UnixStream::pair().unwrap();
        assert_eq!(
            send_response_unix(
                host.as_fd(),
                BootstrapStatus::Error,
                0,
                b"",
                Some([x.as_fd(), x.as_fd(), x.as_fd()])
            ),
            Err(BootstrapError::SendFdsMismatch(BootstrapStatus::Error))
        );
        assert_eq!(
            send_response_unix(host.as_fd(), BootstrapStatus::Success, 1, b"", None),
            Err(BootstrapError::SendFdsMismatch(BootstrapStatus::Success))
        );
    }

    /// A malformed response carrying an fd: the receiver rejects it and closes the
    /// fd, which the other end of that socket observes as EOF.
    #[test]
    fn received_fds_are_closed_on_errors() {
        let cases: [(&[u8], usize); 3] = [
            (b"RSP0\x01\x00\x00\x00\x00\x00\x00", 1), // Error status with an fd
            (b"RSP0\x00\x01\x00\x00\x00\x00\x00", 1), // Success with 1 fd
            (b"XXXX\x00\x01\x00\x00\x00\x00\x00", 3), // bad magic
        ];
        for (frame, nfds) in cases {
            let (host, guest) = stream_pair();
            let (mine, theirs) = UnixStream::pair().unwrap();
            let raw = vec![theirs.as_raw_fd(); nfds];
            scm::send_with_fds(host.as_fd(), frame, &raw).unwrap();
            drop(theirs);
            let mut buf = [0u8; 16];
            assert!(recv_response_unix(guest.as_fd(), &mut buf).is_err());
            let mut b = [0u8; 1];
            assert_eq!((&mine).read(&mut b).unwrap(), 0, "fd leaked for {frame:?}");
        }
        // Payload buffer too small: also closes the fds.
        let (host, guest) = stream_pair();
        let (mine, theirs) = UnixStream::pair().unwrap();
        send_response_unix(
            host.as_fd(),
            BootstrapStatus::Success,
            1,
            b"a long path",
            Some([theirs.as_fd(), theirs.as_fd(), theirs.as_fd()]),
        )
        .unwrap();
        drop(theirs);
        let e = recv_response_unix(guest.as_fd(), &mut [0u8; 4]).unwrap_err();
        assert_eq!(e.kind(), BootstrapErrorKind::BufferTooSmall);
        let mut b = [0u8; 1];
        assert_eq!((&mine).read(&mut b).unwrap(), 0);
    }

    #[test]
    fn split_response_is_reassembled_and_eof_detected() {
        let (host, guest) = stream_pair();
        scm::send_all(host.as_fd(), b"RSP0\x01\x00\x00").unwrap();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            scm::send_all(host.as_fd(), b"\x00\x00\x02\x00ok").unwrap();
            host
        });
        let mut buf = [0u8; 8];
        let r = recv_response_unix(guest.as_fd(), &mut buf).unwrap();
        assert_eq!(r.payload, b"ok");
        drop(t.join().unwrap());
        assert_eq!(
            recv_response_unix(guest.as_fd(), &mut buf).unwrap_err(),
            BootstrapError::Eof
        );
    }
}
