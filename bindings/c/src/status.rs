//! Status codes of the session API, the thread-local last-error message, and the
//! one panic trap every exported function runs inside ([`ffi_guard`]).

use std::cell::RefCell;
use std::ffi::{CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Status returned by every function of the session API (`roam_host_*`,
/// `roam_guest_*`, `roam_segment_config_*`, `roam_last_error_*`).
///
/// `ROAM_OK` is 0; every failure has its own code, grouped by hundreds:
/// 1xx caller errors (arguments, usage), 2xx transient conditions (nothing to
/// receive, ring or pool full, timeout; retry later), 3xx the peer is gone or
/// refused, 4xx protocol violations and corrupt shared data, 5xx operating-system
/// failures, 9xx bugs (a Rust panic caught at the boundary, impossible states).
/// Values are never renumbered; new codes get new numbers.
/// `roam_status_str` names a code; `roam_last_error_message` gives the details of
/// the last failure on the calling thread.
///
/// The seed functions inherited from roam (`roam_bipbuf_*`, `roam_var_slot_pool_*`,
/// `roam_shm_bootstrap_*`, `roam_mmap_*`, `roam_atomic_*`) keep roam's own return
/// values instead, but they also set the last-error message when they fail.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum RoamStatus {
    /// Success.
    ROAM_OK = 0,

    // --- 1xx: caller errors ---
    /// A required pointer argument was NULL.
    ROAM_ERR_NULL_POINTER = 100,
    /// An argument is out of range or malformed (e.g. a path with no bytes).
    ROAM_ERR_INVALID_ARGUMENT = 101,
    /// The segment configuration was refused (see the last-error message for the rule).
    ROAM_ERR_INVALID_CONFIG = 102,
    /// An output buffer is too small; the needed size is reported where documented.
    ROAM_ERR_BUFFER_TOO_SMALL = 103,
    /// The payload is larger than the segment's `max_payload`.
    ROAM_ERR_TOO_LARGE = 104,
    /// No connected peer has this id.
    ROAM_ERR_UNKNOWN_PEER = 105,
    /// A zero-copy reservation is already outstanding on this link.
    ROAM_ERR_RESERVATION_PENDING = 106,
    /// Commit or cancel without an outstanding reservation.
    ROAM_ERR_NO_RESERVATION = 107,
    /// The handle is in the wrong state for this call (e.g. accept before listen, use
    /// after close).
    ROAM_ERR_INVALID_STATE = 108,

    // --- 2xx: transient (retry later) ---
    /// Nothing to do now: no message to receive, no connection pending.
    ROAM_ERR_WOULD_BLOCK = 200,
    /// The ring towards the peer has no room for the frame now.
    ROAM_ERR_FULL = 201,
    /// No slot of a large enough class is free now.
    ROAM_ERR_POOL_EXHAUSTED = 202,
    /// A blocking call's timeout expired.
    ROAM_ERR_TIMEOUT = 203,
    /// Every peer entry of the segment is in use.
    ROAM_ERR_NO_FREE_PEER = 204,

    // --- 3xx: the peer is gone or refused ---
    /// The peer closed its end or died.
    ROAM_ERR_PEER_GONE = 300,
    /// The host said goodbye (orderly shutdown).
    ROAM_ERR_HOST_GOODBYE = 301,
    /// The host reset this guest's peer entry (it considers the guest gone).
    ROAM_ERR_EVICTED = 302,
    /// The host refused the connection (bootstrap error response).
    ROAM_ERR_REJECTED = 303,

    // --- 4xx: protocol violations, corrupt data ---
    /// The peer broke the wire protocol (bootstrap frame, fds, peer id).
    ROAM_ERR_PROTOCOL = 400,
    /// The peer wrote invalid data into shared memory; the link cannot be trusted.
    ROAM_ERR_CORRUPT = 401,
    /// The file is not a valid roam v7 segment.
    ROAM_ERR_BAD_SEGMENT = 402,
    /// The segment file was truncated under this process.
    ROAM_ERR_SEGMENT_TRUNCATED = 403,

    // --- 5xx: operating system ---
    /// A system call failed (socket, file, poll, ...).
    ROAM_ERR_IO = 500,
    /// Creating or mapping shared memory failed.
    ROAM_ERR_MAPPING = 501,

    // --- 9xx: bugs ---
    /// A Rust panic was caught at the C boundary (a bug in roam-shm).
    ROAM_ERR_PANIC = 900,
    /// An impossible state was reached (a bug in roam-shm).
    ROAM_ERR_INTERNAL = 901,
}

impl RoamStatus {
    /// Every status, in declaration order (tests, docs and the header check use it).
    pub const ALL: [RoamStatus; 27] = [
        RoamStatus::ROAM_OK,
        RoamStatus::ROAM_ERR_NULL_POINTER,
        RoamStatus::ROAM_ERR_INVALID_ARGUMENT,
        RoamStatus::ROAM_ERR_INVALID_CONFIG,
        RoamStatus::ROAM_ERR_BUFFER_TOO_SMALL,
        RoamStatus::ROAM_ERR_TOO_LARGE,
        RoamStatus::ROAM_ERR_UNKNOWN_PEER,
        RoamStatus::ROAM_ERR_RESERVATION_PENDING,
        RoamStatus::ROAM_ERR_NO_RESERVATION,
        RoamStatus::ROAM_ERR_INVALID_STATE,
        RoamStatus::ROAM_ERR_WOULD_BLOCK,
        RoamStatus::ROAM_ERR_FULL,
        RoamStatus::ROAM_ERR_POOL_EXHAUSTED,
        RoamStatus::ROAM_ERR_TIMEOUT,
        RoamStatus::ROAM_ERR_NO_FREE_PEER,
        RoamStatus::ROAM_ERR_PEER_GONE,
        RoamStatus::ROAM_ERR_HOST_GOODBYE,
        RoamStatus::ROAM_ERR_EVICTED,
        RoamStatus::ROAM_ERR_REJECTED,
        RoamStatus::ROAM_ERR_PROTOCOL,
        RoamStatus::ROAM_ERR_CORRUPT,
        RoamStatus::ROAM_ERR_BAD_SEGMENT,
        RoamStatus::ROAM_ERR_SEGMENT_TRUNCATED,
        RoamStatus::ROAM_ERR_IO,
        RoamStatus::ROAM_ERR_MAPPING,
        RoamStatus::ROAM_ERR_PANIC,
        RoamStatus::ROAM_ERR_INTERNAL,
    ];

    /// The status for a raw code, if it is one.
    pub fn from_code(code: i32) -> Option<RoamStatus> {
        RoamStatus::ALL.iter().copied().find(|s| *s as i32 == code)
    }

    /// The C name and a one-line description, NUL-terminated for `roam_status_str`.
    pub fn describe(self) -> &'static str {
        use RoamStatus::*;
        match self {
            ROAM_OK => "ROAM_OK: success\0",
            ROAM_ERR_NULL_POINTER => {
                "ROAM_ERR_NULL_POINTER: a required pointer argument was NULL\0"
            }
            ROAM_ERR_INVALID_ARGUMENT => "ROAM_ERR_INVALID_ARGUMENT: an argument is out of range\0",
            ROAM_ERR_INVALID_CONFIG => {
                "ROAM_ERR_INVALID_CONFIG: the segment configuration was refused\0"
            }
            ROAM_ERR_BUFFER_TOO_SMALL => {
                "ROAM_ERR_BUFFER_TOO_SMALL: an output buffer is too small\0"
            }
            ROAM_ERR_TOO_LARGE => "ROAM_ERR_TOO_LARGE: the payload exceeds the segment maximum\0",
            ROAM_ERR_UNKNOWN_PEER => "ROAM_ERR_UNKNOWN_PEER: no connected peer has this id\0",
            ROAM_ERR_RESERVATION_PENDING => {
                "ROAM_ERR_RESERVATION_PENDING: a reservation is already outstanding\0"
            }
            ROAM_ERR_NO_RESERVATION => "ROAM_ERR_NO_RESERVATION: no reservation is outstanding\0",
            ROAM_ERR_INVALID_STATE => {
                "ROAM_ERR_INVALID_STATE: the handle is in the wrong state for this call\0"
            }
            ROAM_ERR_WOULD_BLOCK => "ROAM_ERR_WOULD_BLOCK: nothing to do now; retry later\0",
            ROAM_ERR_FULL => "ROAM_ERR_FULL: the ring has no room now; retry later\0",
            ROAM_ERR_POOL_EXHAUSTED => "ROAM_ERR_POOL_EXHAUSTED: no free slot now; retry later\0",
            ROAM_ERR_TIMEOUT => "ROAM_ERR_TIMEOUT: the timeout expired\0",
            ROAM_ERR_NO_FREE_PEER => "ROAM_ERR_NO_FREE_PEER: every peer entry is in use\0",
            ROAM_ERR_PEER_GONE => "ROAM_ERR_PEER_GONE: the peer closed its end or died\0",
            ROAM_ERR_HOST_GOODBYE => "ROAM_ERR_HOST_GOODBYE: the host said goodbye\0",
            ROAM_ERR_EVICTED => "ROAM_ERR_EVICTED: the host reset this guest's peer entry\0",
            ROAM_ERR_REJECTED => "ROAM_ERR_REJECTED: the host refused the connection\0",
            ROAM_ERR_PROTOCOL => "ROAM_ERR_PROTOCOL: the peer broke the wire protocol\0",
            ROAM_ERR_CORRUPT => "ROAM_ERR_CORRUPT: the peer wrote invalid shared data\0",
            ROAM_ERR_BAD_SEGMENT => "ROAM_ERR_BAD_SEGMENT: not a valid roam v7 segment\0",
            ROAM_ERR_SEGMENT_TRUNCATED => {
                "ROAM_ERR_SEGMENT_TRUNCATED: the segment file was truncated\0"
            }
            ROAM_ERR_IO => "ROAM_ERR_IO: a system call failed\0",
            ROAM_ERR_MAPPING => "ROAM_ERR_MAPPING: creating or mapping shared memory failed\0",
            ROAM_ERR_PANIC => "ROAM_ERR_PANIC: a Rust panic was caught (bug)\0",
            ROAM_ERR_INTERNAL => "ROAM_ERR_INTERNAL: internal error (bug)\0",
        }
    }
}

/// A failure inside an exported function: the status to return and the detailed
/// message stored for `roam_last_error_message`.
#[derive(Debug)]
pub struct FfiError {
    /// Status code.
    pub status: RoamStatus,
    /// Detailed text.
    pub message: String,
}

impl FfiError {
    /// A failure with this status and message.
    pub fn new(status: RoamStatus, message: impl Into<String>) -> FfiError {
        FfiError {
            status,
            message: message.into(),
        }
    }

    /// `ROAM_ERR_NULL_POINTER` naming the argument.
    pub fn null(arg: &str) -> FfiError {
        FfiError::new(
            RoamStatus::ROAM_ERR_NULL_POINTER,
            format!("argument `{arg}` is NULL"),
        )
    }
}

/// Result of the body of an exported session function.
pub type FfiResult<T = ()> = Result<T, FfiError>;

thread_local! {
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

/// Store `message` as this thread's last error (interior NULs are replaced).
pub fn set_last_error(message: impl Into<String>) {
    let mut bytes = message.into().into_bytes();
    for b in &mut bytes {
        if *b == 0 {
            *b = b'?';
        }
    }
    let c = CString::new(bytes).unwrap_or_default();
    // try_with: during thread teardown the slot may be gone; the message is then lost.
    let _ = LAST_ERROR.try_with(|e| *e.borrow_mut() = Some(c));
}

/// Forget this thread's last error.
pub fn clear_last_error() {
    let _ = LAST_ERROR.try_with(|e| *e.borrow_mut() = None);
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// Run `f`, trapping any panic: a panic never unwinds into C. On a panic the
/// message "panic: ..." becomes the last error and `on_panic` is returned (the
/// function's error value: `ROAM_ERR_PANIC`, or the seed function's -1 / NULL / 0).
pub fn ffi_guard<R>(on_panic: R, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            set_last_error(format!(
                "panic: {} (a bug in roam-shm-ffi; please report it)",
                panic_text(payload.as_ref())
            ));
            on_panic
        }
    }
}

/// [`ffi_guard`] for session functions: maps `Err` to its status and message.
pub fn status_guard(f: impl FnOnce() -> FfiResult) -> RoamStatus {
    ffi_guard(RoamStatus::ROAM_ERR_PANIC, || match f() {
        Ok(()) => RoamStatus::ROAM_OK,
        Err(e) => {
            set_last_error(e.message);
            e.status
        }
    })
}

/// Name and describe a status code: `"ROAM_ERR_FULL: the ring has no room now; ..."`.
/// Unknown codes give `"unknown roam status"`. The string is static: never free it.
///
/// Thread-safe.
///
/// # Safety
/// Always safe to call: any value may be passed.
#[unsafe(no_mangle)]
pub extern "C" fn roam_status_str(status: i32) -> *const c_char {
    ffi_guard(
        c"unknown roam status".as_ptr(),
        || match RoamStatus::from_code(status) {
            Some(s) => s.describe().as_ptr().cast(),
            None => c"unknown roam status".as_ptr(),
        },
    )
}

/// The detailed message of the last failure of a roam function on the calling
/// thread (NUL-terminated), or NULL if none failed yet or it was cleared.
///
/// Like `errno`, a successful call does not clear it: read it right after a call
/// failed. The pointer stays valid until the next roam call on this thread; copy
/// the text to keep it. Never free it.
///
/// Thread-safe (the message is per thread).
///
/// # Safety
/// Always safe to call; the result must not be used after the next roam call on
/// this thread.
#[unsafe(no_mangle)]
pub extern "C" fn roam_last_error_message() -> *const c_char {
    ffi_guard(std::ptr::null(), || {
        LAST_ERROR
            .try_with(|e| e.borrow().as_ref().map_or(std::ptr::null(), |c| c.as_ptr()))
            .unwrap_or(std::ptr::null())
    })
}

/// Forget the calling thread's last-error message (so a later
/// `roam_last_error_message` returns NULL until something fails).
///
/// Thread-safe.
///
/// # Safety
/// Always safe to call.
#[unsafe(no_mangle)]
pub extern "C" fn roam_last_error_clear() {
    ffi_guard((), clear_last_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn panics_are_trapped_and_reported() {
        let r = ffi_guard(-1, || -> i32 { panic!("boom") });
        assert_eq!(r, -1);
        let msg = roam_last_error_message();
        assert!(!msg.is_null());
        // SAFETY: non-null, NUL-terminated, valid until the next roam call here.
        let text = unsafe { CStr::from_ptr(msg) }
            .to_string_lossy()
            .into_owned();
        assert!(text.contains("panic: boom"), "{text}");
        assert_eq!(status_guard(|| panic!("again")), RoamStatus::ROAM_ERR_PANIC);
    }

    #[test]
    fn every_status_has_a_distinct_nul_terminated_description() {
        let mut seen = std::collections::HashSet::new();
        for s in RoamStatus::ALL {
            assert_eq!(RoamStatus::from_code(s as i32), Some(s));
            let d = s.describe();
            assert!(d.ends_with('\0') && d.starts_with("ROAM_"), "{d}");
            assert!(seen.insert(s as i32), "duplicate code {}", s as i32);
        }
        assert_eq!(RoamStatus::from_code(1), None);
    }

    #[test]
    fn last_error_replaces_interior_nuls() {
        set_last_error("a\0b");
        // SAFETY: as above.
        let text = unsafe { CStr::from_ptr(roam_last_error_message()) };
        assert_eq!(text.to_bytes(), b"a?b");
        roam_last_error_clear();
        assert!(roam_last_error_message().is_null());
    }
}
