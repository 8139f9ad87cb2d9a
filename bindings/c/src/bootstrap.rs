//! `roam_shm_bootstrap_*`: the RSH0/RSP0 bootstrap frames (layout notes §6), encoded
//! into and decoded from caller buffers, and the response sent/received with its
//! three fds over a Unix stream socket.
//!
//! Return codes are roam's (0 ok; -1 bad arguments or I/O; -2 buffer too small or
//! malformed frame; -3 encode failure), and every failure also sets the last-error
//! message. Input byte buffers may be NULL only with length 0 (an empty sid or
//! payload); every other pointer must be non-NULL.
//!
//! Stricter than roam: a received response's fds are closed on every error path
//! (roam leaks them when the frame does not decode), the fd out-parameters are set to
//! -1 on every non-success return, and a response the stream delivers in pieces is
//! reassembled instead of rejected.
//!
//! Thread safety: every function is thread-safe; concurrent sends or receives on the
//! same socket interleave frames, so use one socket per thread.

use std::os::fd::{BorrowedFd, IntoRawFd};

use roam_shm::segment::bootstrap::{
    self, BootstrapError, BootstrapErrorKind, BootstrapStatus, REQUEST_HEADER_LEN,
    RESPONSE_HEADER_LEN,
};

use crate::status::{ffi_guard, set_last_error};

/// The fixed fields of a bootstrap response: status (0 Success, 1 Error), the peer
/// id assigned to the guest (0 on Error) and the payload length.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoamShmBootstrapResponseInfo {
    /// 0 = Success (payload = segment path), 1 = Error (payload = message).
    pub status: u8,
    /// Peer id assigned to the guest; 0 on Error.
    pub peer_id: u32,
    /// Payload length in bytes.
    pub payload_len: u16,
}

const _: () = {
    use std::mem::offset_of;
    assert!(size_of::<RoamShmBootstrapResponseInfo>() == 12);
    assert!(align_of::<RoamShmBootstrapResponseInfo>() == 4);
    assert!(offset_of!(RoamShmBootstrapResponseInfo, status) == 0);
    assert!(offset_of!(RoamShmBootstrapResponseInfo, peer_id) == 4);
    assert!(offset_of!(RoamShmBootstrapResponseInfo, payload_len) == 8);
};

/// # Safety
/// `p` is NULL or valid for reads of `len` bytes.
unsafe fn input<'a>(p: *const u8, len: usize, what: &str, func: &str) -> Option<&'a [u8]> {
    if p.is_null() {
        if len == 0 {
            return Some(&[]);
        }
        set_last_error(format!("{func}: {what} is NULL with length {len}"));
        return None;
    }
    // SAFETY: non-null and valid for `len` reads (caller contract).
    Some(unsafe { std::slice::from_raw_parts(p, len) })
}

/// # Safety
/// `p` is NULL or valid for writes of `len` bytes.
unsafe fn output<'a>(p: *mut u8, len: usize, what: &str, func: &str) -> Option<&'a mut [u8]> {
    if p.is_null() {
        set_last_error(format!("{func}: {what} is NULL"));
        return None;
    }
    // SAFETY: non-null and valid for `len` writes (caller contract). The bytes are
    // zeroed first, so the slice never exposes uninitialized memory (C callers
    // often pass fresh malloc'd buffers).
    Some(unsafe {
        p.write_bytes(0, len);
        std::slice::from_raw_parts_mut(p, len)
    })
}

fn err(func: &str, e: &BootstrapError, code: i32) -> i32 {
    set_last_error(format!("{func}: {e}"));
    code
}

/// Size of a request header (`RSH0` + sid length): 6.
///
/// Thread-safe.
///
/// # Safety
/// Always safe to call.
#[unsafe(no_mangle)]
pub extern "C" fn roam_shm_bootstrap_request_header_size() -> u32 {
    REQUEST_HEADER_LEN as u32
}

/// Size of a response header (`RSP0` + status + peer id + payload length): 11.
///
/// Thread-safe.
///
/// # Safety
/// Always safe to call.
#[unsafe(no_mangle)]
pub extern "C" fn roam_shm_bootstrap_response_header_size() -> u32 {
    RESPONSE_HEADER_LEN as u32
}

/// Encode a request (`RSH0`, sid length u16, sid) into `out`; writes the frame
/// length (`6 + sid_len`) to `*written`. Returns 0; -1 on a NULL argument; -2 if
/// `out_len` is too small; -3 if the sid is longer than 65535 bytes.
///
/// Thread-safe.
///
/// # Safety
/// `sid` (if non-NULL) readable for `sid_len` bytes; `out` (if non-NULL) writable for
/// `out_len` bytes; `written` (if non-NULL) writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_shm_bootstrap_request_encode(
    sid: *const u8,
    sid_len: usize,
    out: *mut u8,
    out_len: usize,
    written: *mut usize,
) -> i32 {
    ffi_guard(-1, || {
        let f = "roam_shm_bootstrap_request_encode";
        if written.is_null() {
            set_last_error(format!("{f}: written is NULL"));
            return -1;
        }
        // SAFETY: caller contract.
        let (Some(sid), Some(out)) = (unsafe { input(sid, sid_len, "sid", f) }, unsafe {
            output(out, out_len, "out", f)
        }) else {
            return -1;
        };
        match bootstrap::encode_request(sid, out) {
            Ok(n) => {
                // SAFETY: non-null (checked), writable (contract).
                unsafe { written.write(n) };
                0
            }
            Err(e @ BootstrapError::BufferTooSmall { .. }) => err(f, &e, -2),
            Err(e) => err(f, &e, -3),
        }
    })
}

/// Decode a request frame of exactly `len` bytes. On success (0), `*sid` points at
/// the sid inside `buf` and `*sid_len` is its length. Returns -1 on a NULL argument,
/// -2 on a malformed frame (shorter than 6 bytes, wrong magic, length mismatch).
///
/// Thread-safe.
///
/// # Safety
/// `buf` (if non-NULL) readable for `len` bytes and kept alive while `*sid` is used;
/// `sid` and `sid_len` (if non-NULL) writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_shm_bootstrap_request_decode(
    buf: *const u8,
    len: usize,
    sid: *mut *const u8,
    sid_len: *mut u16,
) -> i32 {
    ffi_guard(-1, || {
        let f = "roam_shm_bootstrap_request_decode";
        if sid.is_null() || sid_len.is_null() {
            set_last_error(format!("{f}: sid or sid_len is NULL"));
            return -1;
        }
        if buf.is_null() {
            set_last_error(format!("{f}: buf is NULL"));
            return -1;
        }
        // SAFETY: non-null, readable for len (contract).
        let bytes = unsafe { std::slice::from_raw_parts(buf, len) };
        match bootstrap::decode_request(bytes) {
            Ok(s) => {
                // SAFETY: both non-null (checked) and writable (contract). The sid is
                // at most 65535 bytes (its length came from a u16).
                unsafe {
                    sid.write(s.as_ptr());
                    sid_len.write(s.len() as u16);
                }
                0
            }
            Err(e) => err(f, &e, -2),
        }
    })
}

/// Encode a response (`RSP0`, status, peer id, payload length, payload) into `out`;
/// writes the frame length to `*written`. Returns 0; -1 on a NULL argument; -2 if
/// `out_len` is too small; -3 on a status other than 0/1, an Error response with a
/// non-zero peer id, or a payload longer than 65535 bytes.
///
/// Thread-safe.
///
/// # Safety
/// `payload` (if non-NULL) readable for `payload_len` bytes; `out` (if non-NULL)
/// writable for `out_len` bytes; `written` (if non-NULL) writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_shm_bootstrap_response_encode(
    status: u8,
    peer_id: u32,
    payload: *const u8,
    payload_len: usize,
    out: *mut u8,
    out_len: usize,
    written: *mut usize,
) -> i32 {
    ffi_guard(-1, || {
        let f = "roam_shm_bootstrap_response_encode";
        if written.is_null() {
            set_last_error(format!("{f}: written is NULL"));
            return -1;
        }
        // SAFETY: caller contract.
        let (Some(payload), Some(out)) = (
            unsafe { input(payload, payload_len, "payload", f) },
            unsafe { output(out, out_len, "out", f) },
        ) else {
            return -1;
        };
        let status = match BootstrapStatus::from_u8(status) {
            Ok(s) => s,
            Err(e) => return err(f, &e, -3),
        };
        match bootstrap::encode_response(status, peer_id, payload, out) {
            Ok(n) => {
                // SAFETY: non-null (checked), writable (contract).
                unsafe { written.write(n) };
                0
            }
            Err(e @ BootstrapError::BufferTooSmall { .. }) => err(f, &e, -2),
            Err(e) => err(f, &e, -3),
        }
    })
}

/// Decode a response frame of exactly `len` bytes into `*info`, with `*payload`
/// pointing at the payload inside `buf`. Returns 0; -1 on a NULL argument; -2 on a
/// malformed frame (short, wrong magic, length mismatch, unknown status, Error with
/// a non-zero peer id).
///
/// Thread-safe.
///
/// # Safety
/// `buf` (if non-NULL) readable for `len` bytes and alive while `*payload` is used;
/// `info` and `payload` (if non-NULL) writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_shm_bootstrap_response_decode(
    buf: *const u8,
    len: usize,
    info: *mut RoamShmBootstrapResponseInfo,
    payload: *mut *const u8,
) -> i32 {
    ffi_guard(-1, || {
        let f = "roam_shm_bootstrap_response_decode";
        if buf.is_null() || info.is_null() || payload.is_null() {
            set_last_error(format!("{f}: buf, info or payload is NULL"));
            return -1;
        }
        // SAFETY: non-null, readable for len (contract).
        let bytes = unsafe { std::slice::from_raw_parts(buf, len) };
        match bootstrap::decode_response(bytes) {
            Ok((i, p)) => {
                // SAFETY: non-null (checked) and writable (contract).
                unsafe {
                    info.write(RoamShmBootstrapResponseInfo {
                        status: i.status as u8,
                        peer_id: i.peer_id,
                        payload_len: i.payload_len,
                    });
                    payload.write(p.as_ptr());
                }
                0
            }
            Err(e) => err(f, &e, -2),
        }
    })
}

/// Send one response on a connected Unix stream socket. A Success (status 0)
/// carries the three fds in one `SCM_RIGHTS` message, in the order doorbell,
/// segment, mmap control; each must be >= 0. An Error (status 1) must pass -1 for
/// all three and peer id 0. Returns 0, or -1 on any error (bad arguments, fds not
/// matching the status, socket failure). `SIGPIPE` is never raised (`MSG_NOSIGNAL`).
/// The fds stay owned by the caller.
///
/// Thread-safe (one sender per socket).
///
/// # Safety
/// `payload` (if non-NULL) readable for `payload_len` bytes; the fds, if >= 0, must
/// be open for the duration of the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_shm_bootstrap_response_send_unix(
    control_fd: i32,
    status: u8,
    peer_id: u32,
    payload: *const u8,
    payload_len: usize,
    doorbell_fd: i32,
    segment_fd: i32,
    mmap_control_fd: i32,
) -> i32 {
    ffi_guard(-1, || {
        let f = "roam_shm_bootstrap_response_send_unix";
        if control_fd < 0 {
            set_last_error(format!("{f}: control_fd {control_fd} is invalid"));
            return -1;
        }
        // SAFETY: caller contract.
        let Some(payload) = (unsafe { input(payload, payload_len, "payload", f) }) else {
            return -1;
        };
        let status = match BootstrapStatus::from_u8(status) {
            Ok(s) => s,
            Err(e) => return err(f, &e, -1),
        };
        let fds = [doorbell_fd, segment_fd, mmap_control_fd];
        let borrowed = match status {
            BootstrapStatus::Success if fds.iter().all(|&fd| fd >= 0) => {
                // SAFETY: each fd is >= 0 (so not -1) and open for the call (contract).
                Some(fds.map(|fd| unsafe { BorrowedFd::borrow_raw(fd) }))
            }
            BootstrapStatus::Error if fds.iter().all(|&fd| fd == -1) => None,
            _ => {
                set_last_error(format!(
                    "{f}: a {status:?} response needs {} (got {fds:?})",
                    if status == BootstrapStatus::Success {
                        "three fds >= 0"
                    } else {
                        "all fds -1"
                    }
                ));
                return -1;
            }
        };
        // SAFETY: control_fd >= 0 and open for the call (contract).
        let ctl = unsafe { BorrowedFd::borrow_raw(control_fd) };
        match bootstrap::send_response_unix(ctl, status, peer_id, payload, borrowed) {
            Ok(()) => 0,
            Err(e) => err(f, &e, -1),
        }
    })
}

/// Receive one response on a connected Unix stream socket (blocking unless the
/// socket is non-blocking). On success (0): `*info` is filled, the payload is copied
/// into `payload_buf`, and on Success the three received fds (doorbell, segment,
/// mmap control; close-on-exec, now owned by the caller) are stored; on an Error
/// status the fds are set to -1. Returns -1 on a NULL argument, a socket error, EOF,
/// a malformed frame or wrong fd count; -2 if the payload does not fit `payload_len`
/// bytes. On every non-zero return all fds received are closed and the three fd
/// outputs are -1.
///
/// Thread-safe (one receiver per socket).
///
/// # Safety
/// `payload_buf` (if non-NULL) writable for `payload_len` bytes; the other pointers
/// (if non-NULL) writable; `control_fd`, if >= 0, open for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_shm_bootstrap_response_recv_unix(
    control_fd: i32,
    payload_buf: *mut u8,
    payload_len: usize,
    info: *mut RoamShmBootstrapResponseInfo,
    doorbell_fd: *mut i32,
    segment_fd: *mut i32,
    mmap_control_fd: *mut i32,
) -> i32 {
    ffi_guard(-1, || {
        let f = "roam_shm_bootstrap_response_recv_unix";
        if info.is_null()
            || doorbell_fd.is_null()
            || segment_fd.is_null()
            || mmap_control_fd.is_null()
        {
            set_last_error(format!("{f}: info or an fd out-pointer is NULL"));
            return -1;
        }
        // SAFETY: all three non-null (checked) and writable (contract).
        unsafe {
            doorbell_fd.write(-1);
            segment_fd.write(-1);
            mmap_control_fd.write(-1);
        }
        if control_fd < 0 {
            set_last_error(format!("{f}: control_fd {control_fd} is invalid"));
            return -1;
        }
        // SAFETY: caller contract.
        let Some(buf) = (unsafe { output(payload_buf, payload_len, "payload_buf", f) }) else {
            return -1;
        };
        // SAFETY: control_fd >= 0 and open for the call (contract).
        let ctl = unsafe { BorrowedFd::borrow_raw(control_fd) };
        match bootstrap::recv_response_unix(ctl, buf) {
            Ok(r) => {
                // SAFETY: out-pointers non-null (checked) and writable (contract).
                unsafe {
                    info.write(RoamShmBootstrapResponseInfo {
                        status: r.info.status as u8,
                        peer_id: r.info.peer_id,
                        payload_len: r.info.payload_len,
                    });
                    if let Some([db, seg, ctl]) = r.fds {
                        doorbell_fd.write(db.into_raw_fd());
                        segment_fd.write(seg.into_raw_fd());
                        mmap_control_fd.write(ctl.into_raw_fd());
                    }
                }
                0
            }
            Err(e) if e.kind() == BootstrapErrorKind::BufferTooSmall => err(f, &e, -2),
            Err(e) => err(f, &e, -1),
        }
    })
}
