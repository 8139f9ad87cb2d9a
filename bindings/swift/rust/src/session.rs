//! Session set-up for Swift: create a host (and listen) or connect a guest through
//! the C ABI of `roam-shm-ffi`, turning its status codes into [`RoamError`]s, and
//! hand the resulting `RoamHost*` / `RoamGuest*` to Swift, whose `Host` / `Guest`
//! own it from then on and drive the hot path through `roam_shm.h` directly.
//!
//! Until Swift takes the handle, a [`NativeSession`] owns it and destroys it when
//! dropped, so no path leaks it.

use std::ffi::{CStr, CString, c_char};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use roam_shm_ffi::session::{
    roam_guest_connect, roam_guest_destroy, roam_guest_peer_id, roam_host_create,
    roam_host_destroy, roam_host_listen, roam_host_segment_path,
};
use roam_shm_ffi::status::roam_last_error_message;
use roam_shm_ffi::{RoamGuest, RoamHost, RoamSegmentConfig, RoamSizeClass, RoamStatus};

use crate::{RoamError, SegmentConfig};

/// The C handle a [`NativeSession`] holds.
#[derive(Debug)]
enum Handle {
    Host(*mut RoamHost),
    Guest(*mut RoamGuest),
}

// SAFETY: the C handles may move between threads ("not thread-safe: use it from one
// thread at a time (it may move between threads)"); the Mutex in NativeSession
// serializes every use.
unsafe impl Send for Handle {}

impl Handle {
    fn raw(&self) -> u64 {
        match *self {
            Handle::Host(p) => p as usize as u64,
            Handle::Guest(p) => p as usize as u64,
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        match *self {
            // SAFETY: the pointer came from roam_host_create, is owned by this Handle
            // and is not used again.
            Handle::Host(p) => unsafe { roam_host_destroy(p) },
            // SAFETY: as above, from roam_guest_connect.
            Handle::Guest(p) => unsafe { roam_guest_destroy(p) },
        }
    }
}

/// A host or guest created by the control plane, not yet adopted by Swift.
#[derive(Debug, uniffi::Object)]
pub struct NativeSession {
    handle: Mutex<Option<Handle>>,
    segment_path: Option<String>,
    peer_id: Option<u8>,
}

#[uniffi::export]
impl NativeSession {
    /// Give up ownership of the C handle and return its address (a `RoamHost*` for
    /// a host, a `RoamGuest*` for a guest). The caller must eventually pass it to
    /// `roam_host_destroy` / `roam_guest_destroy`. Throws `RoamError.Released` if
    /// it was already taken.
    pub fn take_handle(&self) -> Result<u64, RoamError> {
        let mut h = self.handle.lock().unwrap_or_else(PoisonError::into_inner);
        let handle = h.take().ok_or(RoamError::Released)?;
        let raw = handle.raw();
        std::mem::forget(handle); // ownership moves to the caller
        Ok(raw)
    }

    /// Whether this is a host (else a guest).
    pub fn is_host(&self) -> bool {
        self.segment_path.is_some()
    }

    /// Host: the path guests (including roam 7.x ones) open to map the segment.
    pub fn segment_path(&self) -> Option<String> {
        self.segment_path.clone()
    }

    /// Guest: the peer id the host assigned (1...255).
    pub fn peer_id(&self) -> Option<u8> {
        self.peer_id
    }
}

/// The last-error message of the calling thread (set by the failed C call).
fn last_error() -> String {
    let p = roam_last_error_message();
    if p.is_null() {
        return String::new();
    }
    // SAFETY: non-null, NUL-terminated and valid until the next roam call on this
    // thread; it is copied at once.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// `Ok` for `ROAM_OK`, else the error for the status and this thread's last-error
/// message.
fn check(status: RoamStatus) -> Result<(), RoamError> {
    match status {
        RoamStatus::ROAM_OK => Ok(()),
        s => Err(RoamError::from_status(s as i32, last_error())),
    }
}

fn c_string(s: &str, what: &str) -> Result<CString, RoamError> {
    if s.is_empty() {
        return Err(RoamError::InvalidArgument {
            message: format!("{what} is empty"),
        });
    }
    CString::new(s).map_err(|_| RoamError::InvalidArgument {
        message: format!("{what} contains a NUL byte"),
    })
}

/// Create a segment and a host for it. `segment_path` `nil` backs the segment with
/// an anonymous memfd (roam-shm guests only); a path such as `/dev/shm/NAME` (which
/// must not exist) creates that file, removed when the host is destroyed (roam 7.x
/// guests need a file). With `socket_path`, the host also listens there.
///
/// Throws `InvalidConfig` (naming the rule), `InvalidArgument`, `Io`.
#[uniffi::export]
pub fn create_host(
    config: SegmentConfig,
    segment_path: Option<String>,
    socket_path: Option<String>,
) -> Result<Arc<NativeSession>, RoamError> {
    // Validate first: the core's message names the rule and the values.
    crate::config::segment_layout(config.clone())?;
    let classes: Vec<RoamSizeClass> = config
        .size_classes
        .iter()
        .map(|c| RoamSizeClass {
            slot_size: c.slot_size,
            count: c.count,
        })
        .collect();
    let heartbeat_ms = config.heartbeat_interval.as_millis()
        + u128::from(config.heartbeat_interval.subsec_nanos() % 1_000_000 != 0);
    let c_config = RoamSegmentConfig {
        max_guests: config.max_guests,
        bipbuf_capacity: config.bipbuf_capacity,
        classes: classes.as_ptr(),
        num_classes: classes.len(),
        inline_threshold: config.inline_threshold,
        max_payload: config.max_payload_size,
        heartbeat_ms: u64::try_from(heartbeat_ms).map_err(|_| RoamError::InvalidConfig {
            message: "heartbeat_interval does not fit in u64 milliseconds".into(),
        })?,
    };
    let seg_path = segment_path
        .as_deref()
        .map(|p| c_string(p, "segment path"))
        .transpose()?;
    let sock_path = socket_path
        .as_deref()
        .map(|p| c_string(p, "socket path"))
        .transpose()?;
    let mut host: *mut RoamHost = std::ptr::null_mut();
    // SAFETY: c_config and `classes` (which it points to) live across the call; the
    // path is NULL or NUL-terminated; `host` is writable.
    check(unsafe {
        roam_host_create(
            &c_config,
            seg_path.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()),
            &mut host,
        )
    })?;
    let handle = Handle::Host(host); // destroys the host if anything below fails
    if let Some(sock) = &sock_path {
        // SAFETY: `host` is live and only used by this thread; `sock` is NUL-terminated.
        check(unsafe { roam_host_listen(host, sock.as_ptr()) })?;
    }
    let segment_path = host_segment_path(host)?;
    Ok(Arc::new(NativeSession {
        handle: Mutex::new(Some(handle)),
        segment_path: Some(segment_path),
        peer_id: None,
    }))
}

fn host_segment_path(host: *mut RoamHost) -> Result<String, RoamError> {
    let mut len = 0usize;
    // SAFETY: `host` is live; a NULL buffer with length 0 asks for the length.
    let status = unsafe { roam_host_segment_path(host, std::ptr::null_mut(), 0, &mut len) };
    if status != RoamStatus::ROAM_ERR_BUFFER_TOO_SMALL {
        check(status)?;
    }
    let mut buf = vec![0u8; len + 1];
    // SAFETY: `buf` is writable for len + 1 bytes, enough for the path and its NUL.
    check(unsafe {
        roam_host_segment_path(host, buf.as_mut_ptr().cast::<c_char>(), buf.len(), &mut len)
    })?;
    buf.truncate(len);
    String::from_utf8(buf).map_err(|e| RoamError::Internal {
        message: format!("segment path is not UTF-8: {e}"),
    })
}

/// Connect to the host listening at `socket_path`: bootstrap handshake, map the
/// segment, claim a peer entry. `timeout` bounds the handshake (zero: 5 s).
///
/// Throws `Io` (e.g. no such socket), `Rejected` (the host refused, e.g. it is
/// full), `Protocol`, `BadSegment`, `PeerGone`.
#[uniffi::export]
pub fn connect_guest(
    socket_path: String,
    timeout: Duration,
) -> Result<Arc<NativeSession>, RoamError> {
    let sock = c_string(&socket_path, "socket path")?;
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    let mut guest: *mut RoamGuest = std::ptr::null_mut();
    // SAFETY: `sock` is NUL-terminated; `guest` is writable.
    check(unsafe { roam_guest_connect(sock.as_ptr(), ms, &mut guest) })?;
    let handle = Handle::Guest(guest);
    let mut peer = 0u8;
    // SAFETY: `guest` is live and only used by this thread; `peer` is writable.
    check(unsafe { roam_guest_peer_id(guest, &mut peer) })?;
    Ok(Arc::new(NativeSession {
        handle: Mutex::new(Some(handle)),
        segment_path: None,
        peer_id: Some(peer),
    }))
}

/// The [`RoamError`] for a C ABI status code and its last-error message (the Swift
/// hot path calls this for the statuses it does not map itself).
#[uniffi::export]
pub fn error_for_status(status: i32, message: String) -> RoamError {
    RoamError::from_status(status, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::default_segment_config;

    fn tmp(prefix: &str) -> String {
        std::env::temp_dir()
            .join(crate::unique_name(prefix.into()).unwrap())
            .display()
            .to_string()
    }

    #[test]
    fn host_and_guest_set_up_and_hand_over_their_handles() {
        let sock = tmp("roam-swift-sess");
        let host = create_host(default_segment_config(), None, Some(sock.clone())).unwrap();
        assert!(host.is_host());
        assert!(host.segment_path().is_some_and(|p| !p.is_empty()));
        let h = host.take_handle().unwrap() as usize as *mut RoamHost;
        assert_eq!(host.take_handle(), Err(RoamError::Released));

        // The guest handshake needs the host to accept: do it from another thread.
        let g = std::thread::spawn(move || connect_guest(sock, Duration::from_secs(5)));
        let mut peer = 0u8;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            // SAFETY: `h` is live and used by this thread only.
            let s = unsafe { roam_shm_ffi::session::roam_host_accept(h, &mut peer) };
            if s == RoamStatus::ROAM_OK {
                break;
            }
            assert_eq!(s, RoamStatus::ROAM_ERR_WOULD_BLOCK);
            assert!(std::time::Instant::now() < deadline, "no guest connected");
            std::thread::sleep(Duration::from_millis(1));
        }
        let guest = g.join().unwrap().unwrap();
        assert!(!guest.is_host());
        assert_eq!(guest.peer_id(), Some(peer));
        drop(guest); // never taken: destroyed by the NativeSession
        // SAFETY: taken above; destroyed exactly once.
        unsafe { roam_host_destroy(h) };
    }

    #[test]
    fn set_up_failures_are_typed() {
        let mut bad = default_segment_config();
        bad.max_guests = 0;
        assert!(matches!(
            create_host(bad, None, None),
            Err(RoamError::InvalidConfig { .. })
        ));
        assert!(matches!(
            create_host(default_segment_config(), Some(String::new()), None),
            Err(RoamError::InvalidArgument { .. })
        ));
        assert!(matches!(
            create_host(
                default_segment_config(),
                Some("/nonexistent/dir/seg".into()),
                None
            ),
            Err(RoamError::Io { .. })
        ));
        assert!(matches!(
            connect_guest(tmp("roam-swift-nobody"), Duration::from_millis(100)),
            Err(RoamError::Io { .. })
        ));
        assert!(matches!(
            connect_guest("a\0b".into(), Duration::ZERO),
            Err(RoamError::InvalidArgument { .. })
        ));
    }
}
