//! The session API: `RoamHost*` and `RoamGuest*`, so a C program can create or join
//! a roam v7 segment and exchange messages without reimplementing the protocol.
//!
//! Conventions (see `bindings/c/README.md`):
//! - every function returns a `RoamStatus` (`ROAM_OK` = 0) and writes results
//!   through out-parameters, which come last;
//! - every pointer argument is checked: NULL gives `ROAM_ERR_NULL_POINTER` (byte
//!   inputs may be NULL only with length 0);
//! - on failure, `roam_last_error_message()` has the details;
//! - handles are created by `*_create` / `*_connect` and freed by `*_destroy`, which
//!   accepts NULL; a handle is **not thread-safe**: use it from one thread at a time
//!   (it may move between threads);
//! - timeouts are `int32_t` milliseconds: negative waits forever, 0 does not wait.
//!
//! Zero-copy: `*_reserve` hands out a pointer into shared memory to fill, then
//! `*_commit` publishes it (or `*_cancel` abandons it); one reservation per link at a
//! time. `*_try_recv` / `*_recv` hand out a `RoamMessage` view into shared memory that
//! stays valid (and is returned again by the next receive) until `*_release`.

use std::collections::{HashMap, VecDeque};
use std::ffi::{CStr, c_char};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use roam_shm::doorbell::WaitOutcome;
use roam_shm::segment::SessionError;
use roam_shm::segment::bootstrap::BootstrapErrorKind;
use roam_shm::segment::config::SegmentConfig;
use roam_shm::segment::guest::{Guest, GuestOptions};
use roam_shm::segment::host::{GoneReason, Host, HostEvent, HostOptions};
use roam_shm::segment::link::{MessageKind, RawMessage, RecvError, Reservation, SendError};
use roam_shm::segment::mapping::PathCleanup;
use roam_shm::segment::shared::SegmentBacking;
use roam_shm::segment::var_pool::SizeClass;

use crate::status::{FfiError, FfiResult, RoamStatus, status_guard};
use crate::var_pool::RoamSizeClass;

use RoamStatus::*;

// ---------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------

/// Geometry of a segment a host creates. `roam_segment_config_default` fills a
/// working one.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RoamSegmentConfig {
    /// Number of guest slots, 1..=255.
    pub max_guests: u32,
    /// Ring data bytes per direction per guest: a multiple of 64, 256..=2^30.
    pub bipbuf_capacity: u32,
    /// Slot classes of the shared pool, ascending by `slot_size` (each > 4 bytes).
    /// Read during `roam_host_create` only.
    pub classes: *const RoamSizeClass,
    /// Number of entries at `classes`, 1..=255.
    pub num_classes: usize,
    /// Payloads up to this many bytes travel inline in the ring (0 = 256). The
    /// largest inline frame must fit in half the ring.
    pub inline_threshold: u32,
    /// Largest payload a sender may send, in bytes.
    pub max_payload: u32,
    /// Guest heartbeat interval in milliseconds (0 = off; roam 7.x guests never
    /// heartbeat, so keep 0 if they may connect).
    pub heartbeat_ms: u64,
}

/// Where a received payload lives (`RoamMessage.kind`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum RoamMessageKind {
    /// Inline in the ring.
    ROAM_MESSAGE_INLINE = 1,
    /// In a slot of the shared pool.
    ROAM_MESSAGE_SLOT = 2,
    /// In a separately mapped region.
    ROAM_MESSAGE_MMAP = 3,
}

/// A received message: a read-only, zero-copy view of the payload in shared memory,
/// valid until the matching `roam_host_release` / `roam_guest_release` (or until the
/// link goes away: disconnect, a poll that reports the peer gone, close, destroy).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RoamMessage {
    /// First payload byte (never NULL on success, even for an empty payload).
    pub data: *const u8,
    /// Payload length in bytes.
    pub len: usize,
    /// A `RoamMessageKind` value.
    pub kind: u32,
}

/// What happened, in a `RoamHostEvent`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum RoamHostEventKind {
    /// A guest completed the handshake and got `peer_id`.
    ROAM_EVENT_CONNECTED = 1,
    /// `peer_id` has messages to receive.
    ROAM_EVENT_READABLE = 2,
    /// `peer_id` went away (`reason`); its resources were recovered and its id may be
    /// reused by a later connection.
    ROAM_EVENT_PEER_GONE = 3,
}

/// Why a peer went away (`RoamHostEvent.reason`, 0 for other events).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum RoamGoneReason {
    /// Not a `ROAM_EVENT_PEER_GONE` event.
    ROAM_GONE_NONE = 0,
    /// Its doorbell was closed: the process closed it or died.
    ROAM_GONE_DOORBELL_CLOSED = 1,
    /// The process recorded in its peer entry no longer exists (`pid` says which).
    ROAM_GONE_PROCESS_GONE = 2,
    /// Its heartbeat is older than twice the interval.
    ROAM_GONE_HEARTBEAT_STALE = 3,
    /// It said goodbye and its ring is drained.
    ROAM_GONE_GOODBYE = 4,
    /// It never claimed its peer entry after the handshake.
    ROAM_GONE_NEVER_ATTACHED = 5,
    /// It wrote data that failed validation.
    ROAM_GONE_CORRUPT = 6,
    /// The host disconnected it.
    ROAM_GONE_REQUESTED = 7,
}

/// One event from `roam_host_poll`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoamHostEvent {
    /// A `RoamHostEventKind` value.
    pub kind: u32,
    /// The peer concerned (1..=255).
    pub peer_id: u32,
    /// A `RoamGoneReason` value (`ROAM_EVENT_PEER_GONE` only, else 0).
    pub reason: u32,
    /// `ROAM_GONE_PROCESS_GONE`: the pid that vanished; else 0.
    pub pid: u32,
    /// `ROAM_EVENT_PEER_GONE`: frames it never read (their slots were freed).
    pub drained_frames: u32,
    /// `ROAM_EVENT_PEER_GONE`: host slots it held, now freed.
    pub freed_sent_slots: u32,
    /// `ROAM_EVENT_PEER_GONE`: its own slots reclaimed from the pool.
    pub reclaimed_slots: u32,
}

#[cfg(target_pointer_width = "64")]
const _: () = {
    use std::mem::offset_of;
    assert!(size_of::<RoamSegmentConfig>() == 40);
    assert!(align_of::<RoamSegmentConfig>() == 8);
    assert!(offset_of!(RoamSegmentConfig, max_guests) == 0);
    assert!(offset_of!(RoamSegmentConfig, bipbuf_capacity) == 4);
    assert!(offset_of!(RoamSegmentConfig, classes) == 8);
    assert!(offset_of!(RoamSegmentConfig, num_classes) == 16);
    assert!(offset_of!(RoamSegmentConfig, inline_threshold) == 24);
    assert!(offset_of!(RoamSegmentConfig, max_payload) == 28);
    assert!(offset_of!(RoamSegmentConfig, heartbeat_ms) == 32);
    assert!(size_of::<RoamMessage>() == 24);
    assert!(align_of::<RoamMessage>() == 8);
    assert!(offset_of!(RoamMessage, data) == 0);
    assert!(offset_of!(RoamMessage, len) == 8);
    assert!(offset_of!(RoamMessage, kind) == 16);
};
const _: () = {
    assert!(size_of::<RoamHostEvent>() == 28);
    assert!(align_of::<RoamHostEvent>() == 4);
};

/// Opaque host handle (`roam_host_create` / `roam_host_destroy`). Not thread-safe.
#[derive(Debug)]
pub struct RoamHost {
    host: Host,
    /// Events `roam_host_poll` got but could not return yet (caller's array full).
    queued: VecDeque<HostEvent>,
    /// Outstanding zero-copy reservations, one per peer at most.
    reservations: HashMap<u8, Reservation>,
}

/// Opaque guest handle (`roam_guest_connect` / `roam_guest_destroy`). Not
/// thread-safe.
#[derive(Debug)]
pub struct RoamGuest {
    guest: Guest,
    reservation: Option<Reservation>,
    closed: bool,
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn session_err(e: SessionError) -> FfiError {
    let status = match &e {
        SessionError::Io { .. } => ROAM_ERR_IO,
        SessionError::Config(_) => ROAM_ERR_INVALID_CONFIG,
        SessionError::Mapping(_) => ROAM_ERR_MAPPING,
        SessionError::BadSegment(_) | SessionError::Segment(_) | SessionError::Region(_) => {
            ROAM_ERR_BAD_SEGMENT
        }
        SessionError::SegmentTruncated => ROAM_ERR_SEGMENT_TRUNCATED,
        SessionError::Frame(_) | SessionError::Peer(_) | SessionError::BadPeerId(_) => {
            ROAM_ERR_PROTOCOL
        }
        SessionError::Ring(_) | SessionError::Pool(_) => ROAM_ERR_CORRUPT,
        SessionError::Bootstrap(b) => match b.kind() {
            BootstrapErrorKind::Io => {
                if matches!(b, roam_shm::segment::bootstrap::BootstrapError::Eof) {
                    ROAM_ERR_PEER_GONE
                } else {
                    ROAM_ERR_IO
                }
            }
            BootstrapErrorKind::BadArgs => ROAM_ERR_INVALID_ARGUMENT,
            BootstrapErrorKind::BufferTooSmall
            | BootstrapErrorKind::Malformed
            | BootstrapErrorKind::BadStatus => ROAM_ERR_PROTOCOL,
        },
        SessionError::MmapControl(_) | SessionError::Doorbell(_) => ROAM_ERR_IO,
        SessionError::Rejected(_) => ROAM_ERR_REJECTED,
        SessionError::ReservationPending => ROAM_ERR_RESERVATION_PENDING,
        SessionError::NoFreePeer => ROAM_ERR_NO_FREE_PEER,
        SessionError::UnknownPeer(_) => ROAM_ERR_UNKNOWN_PEER,
        SessionError::HostGoodbye => ROAM_ERR_HOST_GOODBYE,
        SessionError::Evicted => ROAM_ERR_EVICTED,
        SessionError::Internal(_) => ROAM_ERR_INTERNAL,
    };
    FfiError::new(status, e.to_string())
}

fn send_err(e: SendError) -> FfiError {
    let status = match &e {
        SendError::Full => ROAM_ERR_FULL,
        SendError::PoolExhausted(_) => ROAM_ERR_POOL_EXHAUSTED,
        SendError::TooLarge { .. } => ROAM_ERR_TOO_LARGE,
        SendError::PeerGone => ROAM_ERR_PEER_GONE,
        SendError::Timeout => ROAM_ERR_TIMEOUT,
        SendError::Session(_) => {
            let SendError::Session(s) = e else {
                unreachable!()
            };
            return session_err(s);
        }
    };
    FfiError::new(status, e.to_string())
}

fn recv_err(e: RecvError) -> FfiError {
    let status = match &e {
        RecvError::Corrupt(_) => ROAM_ERR_CORRUPT,
        RecvError::PeerGone => ROAM_ERR_PEER_GONE,
        RecvError::Timeout => ROAM_ERR_TIMEOUT,
        RecvError::Session(_) => {
            let RecvError::Session(s) = e else {
                unreachable!()
            };
            return session_err(s);
        }
    };
    FfiError::new(status, e.to_string())
}

/// `Some(duration)` for `ms >= 0`, `None` (forever) for negative values.
fn timeout_of(ms: i32) -> Option<Duration> {
    u64::try_from(ms).ok().map(Duration::from_millis)
}

/// A deadline far enough to mean "forever" for APIs that need a `Duration`.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

fn check_null<T>(p: *const T, name: &str) -> FfiResult {
    if p.is_null() {
        Err(FfiError::null(name))
    } else {
        Ok(())
    }
}

/// # Safety
/// `p` is NULL or a NUL-terminated string readable during the call.
unsafe fn path_arg(p: *const c_char, name: &str) -> FfiResult<PathBuf> {
    check_null(p, name)?;
    // SAFETY: non-null and NUL-terminated (caller contract).
    let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
    if bytes.is_empty() {
        return Err(FfiError::new(
            ROAM_ERR_INVALID_ARGUMENT,
            format!("`{name}` is an empty string"),
        ));
    }
    Ok(Path::new(std::ffi::OsStr::from_bytes(bytes)).to_path_buf())
}

/// # Safety
/// `p` is NULL or readable for `len` bytes during the call.
unsafe fn bytes_arg<'a>(p: *const u8, len: usize, name: &str) -> FfiResult<&'a [u8]> {
    if p.is_null() {
        if len == 0 {
            return Ok(&[]);
        }
        return Err(FfiError::new(
            ROAM_ERR_NULL_POINTER,
            format!("`{name}` is NULL with length {len}"),
        ));
    }
    // SAFETY: non-null and readable for `len` bytes (caller contract).
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// # Safety
/// `p` is NULL or a live, exclusively used handle.
unsafe fn handle_mut<'a, T>(p: *mut T, name: &str) -> FfiResult<&'a mut T> {
    check_null(p, name)?;
    // SAFETY: non-null; live and used by one thread at a time (caller contract).
    Ok(unsafe { &mut *p })
}

/// # Safety
/// `out` is non-null and writable.
unsafe fn write_message(out: *mut RoamMessage, m: RawMessage) {
    let kind = match m.kind {
        MessageKind::Inline => RoamMessageKind::ROAM_MESSAGE_INLINE,
        MessageKind::Slot => RoamMessageKind::ROAM_MESSAGE_SLOT,
        MessageKind::Mmap => RoamMessageKind::ROAM_MESSAGE_MMAP,
    };
    // SAFETY: caller contract.
    unsafe {
        out.write(RoamMessage {
            data: m.ptr,
            len: m.len,
            kind: kind as u32,
        })
    };
}

fn event_of(e: &HostEvent) -> RoamHostEvent {
    match *e {
        HostEvent::Connected(p) => RoamHostEvent {
            kind: RoamHostEventKind::ROAM_EVENT_CONNECTED as u32,
            peer_id: u32::from(p),
            ..Default::default()
        },
        HostEvent::Readable(p) => RoamHostEvent {
            kind: RoamHostEventKind::ROAM_EVENT_READABLE as u32,
            peer_id: u32::from(p),
            ..Default::default()
        },
        HostEvent::PeerGone {
            peer,
            reason,
            recovery,
        } => {
            let (reason, pid) = match reason {
                GoneReason::DoorbellClosed => (RoamGoneReason::ROAM_GONE_DOORBELL_CLOSED, 0),
                GoneReason::ProcessGone(pid) => (RoamGoneReason::ROAM_GONE_PROCESS_GONE, pid),
                GoneReason::HeartbeatStale => (RoamGoneReason::ROAM_GONE_HEARTBEAT_STALE, 0),
                GoneReason::Goodbye => (RoamGoneReason::ROAM_GONE_GOODBYE, 0),
                GoneReason::NeverAttached => (RoamGoneReason::ROAM_GONE_NEVER_ATTACHED, 0),
                GoneReason::Corrupt => (RoamGoneReason::ROAM_GONE_CORRUPT, 0),
                GoneReason::Requested => (RoamGoneReason::ROAM_GONE_REQUESTED, 0),
            };
            let sat = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
            RoamHostEvent {
                kind: RoamHostEventKind::ROAM_EVENT_PEER_GONE as u32,
                peer_id: u32::from(peer),
                reason: reason as u32,
                pid,
                drained_frames: sat(recovery.drained_frames),
                freed_sent_slots: sat(recovery.freed_sent_slots),
                reclaimed_slots: sat(recovery.reclaimed_slots),
            }
        }
    }
}

static DEFAULT_CLASSES: [RoamSizeClass; 3] = [
    RoamSizeClass {
        slot_size: 1024,
        count: 64,
    },
    RoamSizeClass {
        slot_size: 16 * 1024,
        count: 16,
    },
    RoamSizeClass {
        slot_size: 256 * 1024,
        count: 4,
    },
];

/// # Safety
/// `c.classes` is NULL or readable for `c.num_classes` entries.
unsafe fn config_of(c: &RoamSegmentConfig) -> FfiResult<SegmentConfig> {
    if c.classes.is_null() && c.num_classes != 0 {
        return Err(FfiError::new(
            ROAM_ERR_NULL_POINTER,
            format!("config.classes is NULL with num_classes {}", c.num_classes),
        ));
    }
    if c.num_classes > 255 {
        return Err(FfiError::new(
            ROAM_ERR_INVALID_CONFIG,
            format!("config.num_classes {} exceeds 255", c.num_classes),
        ));
    }
    let classes = if c.num_classes == 0 {
        Vec::new()
    } else {
        // SAFETY: non-null and readable for num_classes entries (caller contract).
        unsafe { std::slice::from_raw_parts(c.classes, c.num_classes) }
            .iter()
            .map(|k| SizeClass {
                slot_size: k.slot_size,
                count: k.count,
            })
            .collect()
    };
    Ok(SegmentConfig {
        max_guests: c.max_guests,
        bipbuf_capacity: c.bipbuf_capacity,
        size_classes: classes,
        inline_threshold: c.inline_threshold,
        max_payload_size: c.max_payload,
        heartbeat_interval: Duration::from_millis(c.heartbeat_ms),
    })
}

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// Fill `*out_config` with a working default: 8 guests, 64 KiB rings, slot classes
/// 1 KiB x 64, 16 KiB x 16, 256 KiB x 4 (static storage, never free it), inline
/// threshold 0 (256 bytes), 16 MiB max payload, heartbeats off.
///
/// Thread-safe.
///
/// # Safety
/// `out_config` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_segment_config_default(
    out_config: *mut RoamSegmentConfig,
) -> RoamStatus {
    status_guard(|| {
        check_null(out_config, "out_config")?;
        let d = SegmentConfig::default();
        // SAFETY: non-null (checked) and writable (contract).
        unsafe {
            out_config.write(RoamSegmentConfig {
                max_guests: d.max_guests,
                bipbuf_capacity: d.bipbuf_capacity,
                classes: DEFAULT_CLASSES.as_ptr(),
                num_classes: DEFAULT_CLASSES.len(),
                inline_threshold: d.inline_threshold,
                max_payload: d.max_payload_size,
                heartbeat_ms: 0,
            })
        };
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// Host
// ---------------------------------------------------------------------------

/// Create a segment and a host for it. `segment_path` NULL backs the segment with an
/// anonymous memfd (roam-shm guests only); a path (e.g. `/dev/shm/NAME`, which must
/// not exist) creates that file, removed again by `roam_host_destroy` (roam 7.x
/// guests open the segment by path, so they need this). On success `*out_host`
/// receives the handle; on failure it is set to NULL.
///
/// Errors: `ROAM_ERR_NULL_POINTER`, `ROAM_ERR_INVALID_ARGUMENT` (empty path),
/// `ROAM_ERR_INVALID_CONFIG` (the message names the rule), `ROAM_ERR_MAPPING`,
/// `ROAM_ERR_IO`.
///
/// Thread-safe (creates a new handle).
///
/// # Safety
/// `config` is NULL or readable, with `classes` as documented on
/// `RoamSegmentConfig`; `segment_path` is NULL or NUL-terminated; `out_host` is NULL
/// or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_host_create(
    config: *const RoamSegmentConfig,
    segment_path: *const c_char,
    out_host: *mut *mut RoamHost,
) -> RoamStatus {
    status_guard(|| {
        check_null(out_host, "out_host")?;
        // SAFETY: non-null (checked) and writable (contract).
        unsafe { out_host.write(std::ptr::null_mut()) };
        check_null(config, "config")?;
        // SAFETY: non-null, readable (contract).
        let config = unsafe { config_of(&*config) }?;
        let backing = if segment_path.is_null() {
            SegmentBacking::Anonymous
        } else {
            SegmentBacking::File {
                // SAFETY: non-null, NUL-terminated (contract).
                path: unsafe { path_arg(segment_path, "segment_path") }?,
                cleanup: PathCleanup::Delete,
                mode: 0o600,
            }
        };
        let host = Host::create(HostOptions { config, backing }).map_err(session_err)?;
        let h = Box::new(RoamHost {
            host,
            queued: VecDeque::new(),
            reservations: HashMap::new(),
        });
        // SAFETY: as above.
        unsafe { out_host.write(Box::into_raw(h)) };
        Ok(())
    })
}

/// Listen for guests on a Unix socket at `socket_path` (a stale socket file nobody
/// listens on is replaced; a live one is `ROAM_ERR_IO`). Connections are accepted by
/// `roam_host_poll` or `roam_host_accept`.
///
/// Not thread-safe (one thread at a time per host).
///
/// # Safety
/// `host` is NULL or live; `socket_path` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_host_listen(
    host: *mut RoamHost,
    socket_path: *const c_char,
) -> RoamStatus {
    status_guard(|| {
        // SAFETY: caller contract.
        let h = unsafe { handle_mut(host, "host") }?;
        // SAFETY: caller contract.
        let path = unsafe { path_arg(socket_path, "socket_path") }?;
        h.host.listen(path).map_err(session_err)
    })
}

/// Copy the path guests can open to map the segment (NUL-terminated) into `buf`
/// and store its length (without the NUL) in `*out_len`. If `buf_len` is too small,
/// returns `ROAM_ERR_BUFFER_TOO_SMALL` with `*out_len` = the length needed (without
/// the NUL); `buf` may then be NULL when `buf_len` is 0.
///
/// Not thread-safe (one thread at a time per host).
///
/// # Safety
/// `host` is NULL or live; `buf` is NULL or writable for `buf_len` bytes; `out_len`
/// is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_host_segment_path(
    host: *mut RoamHost,
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> RoamStatus {
    status_guard(|| {
        // SAFETY: caller contract.
        let h = unsafe { handle_mut(host, "host") }?;
        check_null(out_len, "out_len")?;
        let path = h.host.segment_path();
        let bytes = path.as_os_str().as_bytes();
        // SAFETY: non-null (checked), writable (contract).
        unsafe { out_len.write(bytes.len()) };
        if buf_len < bytes.len() + 1 {
            return Err(FfiError::new(
                ROAM_ERR_BUFFER_TOO_SMALL,
                format!("the path needs {} bytes plus a NUL", bytes.len()),
            ));
        }
        check_null(buf, "buf")?;
        // SAFETY: buf is non-null and writable for buf_len > bytes.len() bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast::<u8>(), bytes.len());
            buf.add(bytes.len()).write(0);
        }
        Ok(())
    })
}

/// Accept waiting connections and complete the bootstrap handshake of one whose
/// request has arrived, without blocking; `*out_peer` receives the new peer id.
/// `ROAM_ERR_WOULD_BLOCK` if no handshake is ready (a connection whose request is
/// still arriving stays pending for up to 5 s: call again, or poll),
/// `ROAM_ERR_INVALID_STATE` if not listening, `ROAM_ERR_NO_FREE_PEER` if the segment
/// is full (the guest was refused), `ROAM_ERR_PROTOCOL` / `ROAM_ERR_IO` if that
/// guest's handshake failed. `roam_host_poll` accepts by itself; use one or the other.
///
/// Not thread-safe (one thread at a time per host).
///
/// # Safety
/// `host` is NULL or live; `out_peer` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_host_accept(host: *mut RoamHost, out_peer: *mut u8) -> RoamStatus {
    status_guard(|| {
        // SAFETY: caller contract.
        let h = unsafe { handle_mut(host, "host") }?;
        check_null(out_peer, "out_peer")?;
        match h.host.try_accept() {
            Ok(Some(id)) => {
                // SAFETY: non-null (checked), writable (contract).
                unsafe { out_peer.write(id) };
                Ok(())
            }
            Ok(None) => Err(FfiError::new(
                ROAM_ERR_WOULD_BLOCK,
                "no connection is pending",
            )),
            Err(SessionError::Internal(m)) if m.contains("not listening") => Err(FfiError::new(
                ROAM_ERR_INVALID_STATE,
                "roam_host_accept: the host is not listening (call roam_host_listen)",
            )),
            Err(e) => Err(session_err(e)),
        }
    })
}

/// Wait up to `timeout_ms` for events (connections, accepted and handshaken here;
/// messages; peers going away, recovered here) and copy up to `capacity` of them to
/// `events`; `*out_count` receives how many (0 when the timeout expired: that is
/// `ROAM_OK`). Events that do not fit are kept and returned by the next call without
/// waiting. Returns at once when messages are already waiting.
///
/// `ROAM_ERR_RESERVATION_PENDING` if a reservation is outstanding on any link:
/// commit or cancel it first (a peer found gone would take it with it).
/// A `ROAM_EVENT_PEER_GONE` invalidates that peer's held message view.
///
/// Not thread-safe (one thread at a time per host).
///
/// # Safety
/// `host` is NULL or live; `events` is NULL or writable for `capacity` entries;
/// `out_count` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_host_poll(
    host: *mut RoamHost,
    timeout_ms: i32,
    events: *mut RoamHostEvent,
    capacity: usize,
    out_count: *mut usize,
) -> RoamStatus {
    status_guard(|| {
        // SAFETY: caller contract.
        let h = unsafe { handle_mut(host, "host") }?;
        check_null(events, "events")?;
        check_null(out_count, "out_count")?;
        // SAFETY: non-null (checked), writable (contract).
        unsafe { out_count.write(0) };
        if capacity == 0 {
            return Err(FfiError::new(
                ROAM_ERR_INVALID_ARGUMENT,
                "roam_host_poll: capacity is 0",
            ));
        }
        if let Some(peer) = h.reservations.keys().next() {
            return Err(FfiError::new(
                ROAM_ERR_RESERVATION_PENDING,
                format!(
                    "a reservation to peer {peer} is outstanding; commit or cancel it before polling"
                ),
            ));
        }
        if h.queued.is_empty() {
            let got = h.host.poll(timeout_of(timeout_ms)).map_err(session_err)?;
            h.queued.extend(got);
        }
        let n = capacity.min(h.queued.len());
        for i in 0..n {
            let e = h.queued.pop_front().expect("n <= queued.len()");
            // SAFETY: i < n <= capacity; `events` is writable for capacity entries.
            unsafe { events.add(i).write(event_of(&e)) };
        }
        // SAFETY: as above.
        unsafe { out_count.write(n) };
        Ok(())
    })
}

fn known_peer(h: &RoamHost, peer: u8) -> FfiResult {
    if h.host.peer_ids().contains(&peer) {
        Ok(())
    } else {
        Err(FfiError::new(
            ROAM_ERR_UNKNOWN_PEER,
            format!("no connected peer has id {peer}"),
        ))
    }
}

/// Send a copy of `len` bytes at `data` to `peer_id` without blocking.
/// `ROAM_ERR_FULL` / `ROAM_ERR_POOL_EXHAUSTED` mean retry later (after a poll);
/// also `ROAM_ERR_TOO_LARGE`, `ROAM_ERR_UNKNOWN_PEER`, `ROAM_ERR_PEER_GONE`,
/// `ROAM_ERR_RESERVATION_PENDING`.
///
/// Not thread-safe (one thread at a time per host).
///
/// # Safety
/// `host` is NULL or live; `data` is NULL (only with `len` 0) or readable for `len`
/// bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_host_try_send(
    host: *mut RoamHost,
    peer_id: u8,
    data: *const u8,
    len: usize,
) -> RoamStatus {
    status_guard(|| {
        // SAFETY: caller contract.
        let h = unsafe { handle_mut(host, "host") }?;
        // SAFETY: caller contract.
        let payload = unsafe { bytes_arg(data, len, "data") }?;
        h.host.try_send(peer_id, payload).map_err(send_err)
    })
}

/// Send a copy, waiting up to `timeout_ms` (negative: forever) while the ring or
/// pool is full. `ROAM_ERR_TIMEOUT` when it expired; otherwise as
/// `roam_host_try_send`.
///
/// Not thread-safe (one thread at a time per host).
///
/// # Safety
/// As for `roam_host_try_send`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_host_send(
    host: *mut RoamHost,
    peer_id: u8,
    data: *const u8,
    len: usize,
    timeout_ms: i32,
) -> RoamStatus {
    status_guard(|| {
        // SAFETY: caller contract.
        let h = unsafe { handle_mut(host, "host") }?;
        // SAFETY: caller contract.
        let payload = unsafe { bytes_arg(data, len, "data") }?;
        let t = timeout_of(timeout_ms).unwrap_or(FOREVER);
        h.host.send(peer_id, payload, t).map_err(send_err)
    })
}

/// Reserve room for a `len`-byte message to `peer_id` (zero-copy send):
/// `*out_buf` receives a pointer to `len` writable bytes in shared memory (inline in
/// the ring, in a slot, or in a mapped region, by size). Fill them, then
/// `roam_host_commit` (or `roam_host_cancel`). One reservation per peer at a time
/// (`ROAM_ERR_RESERVATION_PENDING`). Errors as `roam_host_try_send`.
///
/// Not thread-safe (one thread at a time per host).
///
/// # Safety
/// `host` is NULL or live; `out_buf` is NULL or writable. The buffer is valid until
/// commit, cancel, disconnect or destroy.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_host_reserve(
    host: *mut RoamHost,
    peer_id: u8,
    len: usize,
    out_buf: *mut *mut u8,
) -> RoamStatus {
    status_guard(|| {
        // SAFETY: caller contract.
        let h = unsafe { handle_mut(host, "host") }?;
        check_null(out_buf, "out_buf")?;
        // SAFETY: non-null (checked), writable (contract).
        unsafe { out_buf.write(std::ptr::null_mut()) };
        if h.reservations.contains_key(&peer_id) {
            return Err(FfiError::new(
                ROAM_ERR_RESERVATION_PENDING,
                format!("a reservation to peer {peer_id} is already outstanding"),
            ));
        }
        let (tx, _) = h.host.link(peer_id).map_err(session_err)?;
        let r = tx.reserve_raw(len).map_err(send_err)?;
        let p = r.payload_ptr();
        h.reservations.insert(peer_id, r);
        // SAFETY: as above.
        unsafe { out_buf.write(p) };
        Ok(())
    })
}

/// Publish the reserved message to `peer_id` and wake it. `ROAM_ERR_NO_RESERVATION`
/// if none is outstanding. On any error the reservation is released.
///
/// Not thread-safe (one thread at a time per host).
///
/// # Safety
/// `host` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_host_commit(host: *mut RoamHost, peer_id: u8) -> RoamStatus {
    // SAFETY: forwarded caller contract.
    unsafe { host_finish_reservation(host, peer_id, true) }
}

/// Abandon the reservation to `peer_id` (its storage is returned; nothing is sent).
/// `ROAM_ERR_NO_RESERVATION` if none is outstanding.
///
/// Not thread-safe (one thread at a time per host).
///
/// # Safety
/// `host` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_host_cancel(host: *mut RoamHost, peer_id: u8) -> RoamStatus {
    // SAFETY: forwarded caller contract.
    unsafe { host_finish_reservation(host, peer_id, false) }
}

/// `roam_host_commit` (`send`) or `roam_host_cancel`.
///
/// # Safety
/// `host` is NULL or live.
unsafe fn host_finish_reservation(host: *mut RoamHost, peer_id: u8, send: bool) -> RoamStatus {
    status_guard(|| {
        // SAFETY: caller contract.
        let h = unsafe { handle_mut(host, "host") }?;
        let r = h.reservations.remove(&peer_id).ok_or_else(|| {
            FfiError::new(
                ROAM_ERR_NO_RESERVATION,
                format!("no reservation to peer {peer_id} is outstanding"),
            )
        })?;
        let (tx, _) = h.host.link(peer_id).map_err(session_err)?;
        if send {
            tx.commit_reserved(r).map_err(send_err)
        } else {
            tx.cancel_reserved(r).map_err(send_err)
        }
    })
}

/// Receive the next message from `peer_id` without blocking, as a zero-copy view in
/// `*out_msg`. The message stays held (and is returned again by the next call) until
/// `roam_host_release`. `ROAM_ERR_WOULD_BLOCK` if nothing is waiting;
/// `ROAM_ERR_CORRUPT` if the peer wrote invalid data (disconnect it).
///
/// Not thread-safe (one thread at a time per host).
///
/// # Safety
/// `host` is NULL or live; `out_msg` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_host_try_recv(
    host: *mut RoamHost,
    peer_id: u8,
    out_msg: *mut RoamMessage,
) -> RoamStatus {
    status_guard(|| {
        // SAFETY: caller contract.
        let h = unsafe { handle_mut(host, "host") }?;
        check_null(out_msg, "out_msg")?;
        let (_, rx) = h.host.link(peer_id).map_err(session_err)?;
        match rx.try_recv_raw().map_err(recv_err)? {
            Some(m) => {
                // SAFETY: non-null (checked), writable (contract).
                unsafe { write_message(out_msg, m) };
                Ok(())
            }
            None => Err(FfiError::new(
                ROAM_ERR_WOULD_BLOCK,
                format!("no message from peer {peer_id}"),
            )),
        }
    })
}

/// Release the message held from `peer_id` (frees its slot, gives its ring bytes
/// back, wakes the peer). The `RoamMessage` view is invalid afterwards. Releasing
/// when nothing is held is `ROAM_OK`.
///
/// Not thread-safe (one thread at a time per host).
///
/// # Safety
/// `host` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_host_release(host: *mut RoamHost, peer_id: u8) -> RoamStatus {
    status_guard(|| {
        // SAFETY: caller contract.
        let h = unsafe { handle_mut(host, "host") }?;
        let (_, rx) = h.host.link(peer_id).map_err(session_err)?;
        rx.release().map_err(recv_err)
    })
}

/// Disconnect `peer_id` and recover its resources (its outstanding reservation is
/// cancelled, its held message released, unread frames drained, its slots
/// reclaimed); its id becomes reusable. Queued events about it are dropped.
///
/// Not thread-safe (one thread at a time per host).
///
/// # Safety
/// `host` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_host_disconnect(host: *mut RoamHost, peer_id: u8) -> RoamStatus {
    status_guard(|| {
        // SAFETY: caller contract.
        let h = unsafe { handle_mut(host, "host") }?;
        known_peer(h, peer_id)?;
        if let Some(r) = h.reservations.remove(&peer_id) {
            if let Ok((tx, _)) = h.host.link(peer_id) {
                let _ = tx.cancel_reserved(r);
            }
        }
        h.host.disconnect(peer_id);
        h.queued.retain(|e| match e {
            HostEvent::Connected(p) | HostEvent::Readable(p) => *p != peer_id,
            HostEvent::PeerGone { .. } => true,
        });
        Ok(())
    })
}

/// Orderly shutdown: tell every guest goodbye (`host_goodbye`), wake them, stop
/// accepting (the socket file is removed). Links stay usable until destroy.
/// Idempotent.
///
/// Not thread-safe (one thread at a time per host).
///
/// # Safety
/// `host` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_host_shutdown(host: *mut RoamHost) -> RoamStatus {
    status_guard(|| {
        // SAFETY: caller contract.
        let h = unsafe { handle_mut(host, "host") }?;
        h.host.shutdown();
        Ok(())
    })
}

/// Shut down (if not done) and free the host: outstanding reservations are
/// cancelled, the socket and a file-backed segment are removed, mappings unmapped
/// (guests keep theirs). NULL is accepted and ignored.
///
/// Not thread-safe (one thread at a time per host).
///
/// # Safety
/// `host` is NULL or a live pointer from `roam_host_create`, not used again after.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_host_destroy(host: *mut RoamHost) {
    crate::status::ffi_guard((), || {
        if host.is_null() {
            return;
        }
        // SAFETY: from Box::into_raw in roam_host_create, not freed before (contract).
        let mut h = unsafe { Box::from_raw(host) };
        let reservations: Vec<(u8, Reservation)> = h.reservations.drain().collect();
        for (peer, r) in reservations {
            if let Ok((tx, _)) = h.host.link(peer) {
                let _ = tx.cancel_reserved(r);
            }
        }
        h.host.shutdown();
        drop(h);
    })
}

// ---------------------------------------------------------------------------
// Guest
// ---------------------------------------------------------------------------

/// # Safety
/// `p` is NULL or a live handle used by one thread at a time.
unsafe fn open_guest<'a>(p: *mut RoamGuest) -> FfiResult<&'a mut RoamGuest> {
    // SAFETY: caller contract.
    let g = unsafe { handle_mut(p, "guest") }?;
    if g.closed {
        return Err(FfiError::new(
            ROAM_ERR_INVALID_STATE,
            "the guest is closed (only roam_guest_destroy may follow roam_guest_close)",
        ));
    }
    Ok(g)
}

/// Connect to the host listening at `socket_path`: bootstrap handshake (RSH0/RSP0
/// with the segment, doorbell and mmap-control fds), map the segment, claim the peer
/// entry. `timeout_ms` bounds the handshake (<= 0: 5000 ms). On success `*out_guest`
/// receives the handle, else NULL. Errors: `ROAM_ERR_IO` (no such socket, ...),
/// `ROAM_ERR_REJECTED` (host refused, e.g. full), `ROAM_ERR_PROTOCOL`,
/// `ROAM_ERR_BAD_SEGMENT`, `ROAM_ERR_MAPPING`, `ROAM_ERR_PEER_GONE`.
///
/// Thread-safe (creates a new handle).
///
/// # Safety
/// `socket_path` is NULL or NUL-terminated; `out_guest` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_guest_connect(
    socket_path: *const c_char,
    timeout_ms: i32,
    out_guest: *mut *mut RoamGuest,
) -> RoamStatus {
    status_guard(|| {
        check_null(out_guest, "out_guest")?;
        // SAFETY: non-null (checked), writable (contract).
        unsafe { out_guest.write(std::ptr::null_mut()) };
        // SAFETY: caller contract.
        let path = unsafe { path_arg(socket_path, "socket_path") }?;
        let timeout = if timeout_ms > 0 {
            Duration::from_millis(timeout_ms as u64)
        } else {
            GuestOptions::default().timeout
        };
        let guest =
            Guest::connect(path, GuestOptions { timeout, sid: None }).map_err(session_err)?;
        let g = Box::new(RoamGuest {
            guest,
            reservation: None,
            closed: false,
        });
        // SAFETY: as above.
        unsafe { out_guest.write(Box::into_raw(g)) };
        Ok(())
    })
}

/// This guest's peer id (1..=255) in `*out_peer`.
///
/// Not thread-safe (one thread at a time per guest).
///
/// # Safety
/// `guest` is NULL or live; `out_peer` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_guest_peer_id(
    guest: *mut RoamGuest,
    out_peer: *mut u8,
) -> RoamStatus {
    status_guard(|| {
        // SAFETY: caller contract.
        let g = unsafe { handle_mut(guest, "guest") }?;
        check_null(out_peer, "out_peer")?;
        // SAFETY: non-null (checked), writable (contract).
        unsafe { out_peer.write(g.guest.peer_id()) };
        Ok(())
    })
}

/// `ROAM_OK` if the host is still there for us; else `ROAM_ERR_HOST_GOODBYE`,
/// `ROAM_ERR_EVICTED` or `ROAM_ERR_SEGMENT_TRUNCATED`.
///
/// Not thread-safe (one thread at a time per guest).
///
/// # Safety
/// `guest` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_guest_check_host(guest: *mut RoamGuest) -> RoamStatus {
    status_guard(|| {
        // SAFETY: caller contract.
        let g = unsafe { open_guest(guest) }?;
        g.guest.check_host().map_err(session_err)
    })
}

/// Send a copy of `len` bytes at `data` to the host without blocking.
/// `ROAM_ERR_FULL` / `ROAM_ERR_POOL_EXHAUSTED`: retry after `roam_guest_wait`.
/// Also `ROAM_ERR_TOO_LARGE`, `ROAM_ERR_PEER_GONE`, `ROAM_ERR_HOST_GOODBYE`,
/// `ROAM_ERR_EVICTED`, `ROAM_ERR_RESERVATION_PENDING`.
///
/// Not thread-safe (one thread at a time per guest).
///
/// # Safety
/// `guest` is NULL or live; `data` is NULL (only with `len` 0) or readable for `len`
/// bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_guest_try_send(
    guest: *mut RoamGuest,
    data: *const u8,
    len: usize,
) -> RoamStatus {
    status_guard(|| {
        // SAFETY: caller contract.
        let g = unsafe { open_guest(guest) }?;
        // SAFETY: caller contract.
        let payload = unsafe { bytes_arg(data, len, "data") }?;
        g.guest.try_send(payload).map_err(send_err)
    })
}

/// Send a copy, waiting up to `timeout_ms` (negative: forever) while the ring or
/// pool is full. `ROAM_ERR_TIMEOUT` when it expired; otherwise as
/// `roam_guest_try_send`.
///
/// Not thread-safe (one thread at a time per guest).
///
/// # Safety
/// As for `roam_guest_try_send`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_guest_send(
    guest: *mut RoamGuest,
    data: *const u8,
    len: usize,
    timeout_ms: i32,
) -> RoamStatus {
    status_guard(|| {
        // SAFETY: caller contract.
        let g = unsafe { open_guest(guest) }?;
        // SAFETY: caller contract.
        let payload = unsafe { bytes_arg(data, len, "data") }?;
        let t = timeout_of(timeout_ms).unwrap_or(FOREVER);
        g.guest.send(payload, t).map_err(send_err)
    })
}

/// Reserve room for a `len`-byte message to the host (zero-copy send); see
/// `roam_host_reserve`. Then `roam_guest_commit` or `roam_guest_cancel`.
///
/// Not thread-safe (one thread at a time per guest).
///
/// # Safety
/// `guest` is NULL or live; `out_buf` is NULL or writable. The buffer is valid until
/// commit, cancel, close or destroy.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_guest_reserve(
    guest: *mut RoamGuest,
    len: usize,
    out_buf: *mut *mut u8,
) -> RoamStatus {
    status_guard(|| {
        // SAFETY: caller contract.
        let g = unsafe { open_guest(guest) }?;
        check_null(out_buf, "out_buf")?;
        // SAFETY: non-null (checked), writable (contract).
        unsafe { out_buf.write(std::ptr::null_mut()) };
        if g.reservation.is_some() {
            return Err(FfiError::new(
                ROAM_ERR_RESERVATION_PENDING,
                "a reservation is already outstanding",
            ));
        }
        g.guest.check_host().map_err(session_err)?;
        let r = g.guest.link().0.reserve_raw(len).map_err(send_err)?;
        let p = r.payload_ptr();
        g.reservation = Some(r);
        // SAFETY: as above.
        unsafe { out_buf.write(p) };
        Ok(())
    })
}

/// Publish the reserved message to the host and wake it. `ROAM_ERR_NO_RESERVATION`
/// if none is outstanding. On any error the reservation is released.
///
/// Not thread-safe (one thread at a time per guest).
///
/// # Safety
/// `guest` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_guest_commit(guest: *mut RoamGuest) -> RoamStatus {
    // SAFETY: forwarded caller contract.
    unsafe { guest_finish_reservation(guest, true) }
}

/// Abandon the outstanding reservation (nothing is sent). `ROAM_ERR_NO_RESERVATION`
/// if none is outstanding.
///
/// Not thread-safe (one thread at a time per guest).
///
/// # Safety
/// `guest` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_guest_cancel(guest: *mut RoamGuest) -> RoamStatus {
    // SAFETY: forwarded caller contract.
    unsafe { guest_finish_reservation(guest, false) }
}

/// `roam_guest_commit` (`send`) or `roam_guest_cancel`.
///
/// # Safety
/// `guest` is NULL or live.
unsafe fn guest_finish_reservation(guest: *mut RoamGuest, send: bool) -> RoamStatus {
    status_guard(|| {
        // SAFETY: caller contract.
        let g = unsafe { open_guest(guest) }?;
        let r = g.reservation.take().ok_or_else(|| {
            FfiError::new(ROAM_ERR_NO_RESERVATION, "no reservation is outstanding")
        })?;
        let tx = g.guest.link().0;
        if send {
            tx.commit_reserved(r).map_err(send_err)
        } else {
            tx.cancel_reserved(r).map_err(send_err)
        }
    })
}

/// Receive the next message from the host without blocking, as a zero-copy view in
/// `*out_msg`, held (and returned again) until `roam_guest_release`.
/// `ROAM_ERR_WOULD_BLOCK` if nothing is waiting; `ROAM_ERR_CORRUPT` on invalid data.
///
/// Not thread-safe (one thread at a time per guest).
///
/// # Safety
/// `guest` is NULL or live; `out_msg` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_guest_try_recv(
    guest: *mut RoamGuest,
    out_msg: *mut RoamMessage,
) -> RoamStatus {
    status_guard(|| {
        // SAFETY: caller contract.
        let g = unsafe { open_guest(guest) }?;
        check_null(out_msg, "out_msg")?;
        match g.guest.link().1.try_recv_raw().map_err(recv_err)? {
            Some(m) => {
                // SAFETY: non-null (checked), writable (contract).
                unsafe { write_message(out_msg, m) };
                Ok(())
            }
            None => Err(FfiError::new(
                ROAM_ERR_WOULD_BLOCK,
                "no message from the host",
            )),
        }
    })
}

/// Receive the next message, waiting up to `timeout_ms` (negative: forever); the
/// view is held until `roam_guest_release`. `ROAM_ERR_TIMEOUT` when it expired,
/// `ROAM_ERR_PEER_GONE` if the host died (messages it sent before are delivered
/// first), `ROAM_ERR_HOST_GOODBYE`, `ROAM_ERR_EVICTED`, `ROAM_ERR_CORRUPT`.
///
/// Not thread-safe (one thread at a time per guest).
///
/// # Safety
/// `guest` is NULL or live; `out_msg` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_guest_recv(
    guest: *mut RoamGuest,
    timeout_ms: i32,
    out_msg: *mut RoamMessage,
) -> RoamStatus {
    status_guard(|| {
        // SAFETY: caller contract.
        let g = unsafe { open_guest(guest) }?;
        check_null(out_msg, "out_msg")?;
        let deadline = timeout_of(timeout_ms).map(|t| std::time::Instant::now() + t);
        loop {
            if let Some(m) = g.guest.link().1.try_recv_raw().map_err(recv_err)? {
                // SAFETY: non-null (checked), writable (contract).
                unsafe { write_message(out_msg, m) };
                return Ok(());
            }
            g.guest.check_host().map_err(session_err)?;
            let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
            if left.is_some_and(|l| l.is_zero()) {
                return Err(FfiError::new(
                    ROAM_ERR_TIMEOUT,
                    "no message before the timeout",
                ));
            }
            if g.guest.wait(left).map_err(session_err)? == WaitOutcome::PeerGone {
                // The host may have written messages before it went away.
                if let Some(m) = g.guest.link().1.try_recv_raw().map_err(recv_err)? {
                    // SAFETY: as above.
                    unsafe { write_message(out_msg, m) };
                    return Ok(());
                }
                return Err(FfiError::new(ROAM_ERR_PEER_GONE, "the host is gone"));
            }
        }
    })
}

/// Release the held message (frees its slot, gives its ring bytes back, wakes the
/// host). The view is invalid afterwards. Releasing when nothing is held is
/// `ROAM_OK`.
///
/// Not thread-safe (one thread at a time per guest).
///
/// # Safety
/// `guest` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_guest_release(guest: *mut RoamGuest) -> RoamStatus {
    status_guard(|| {
        // SAFETY: caller contract.
        let g = unsafe { open_guest(guest) }?;
        g.guest.link().1.release().map_err(recv_err)
    })
}

/// Wait up to `timeout_ms` (negative: forever) for the host to ring this guest's
/// doorbell (new messages, freed room, goodbye, growth). `ROAM_OK` when it rang,
/// `ROAM_ERR_TIMEOUT`, or `ROAM_ERR_PEER_GONE` once the host's end is closed.
///
/// Not thread-safe (one thread at a time per guest).
///
/// # Safety
/// `guest` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_guest_wait(guest: *mut RoamGuest, timeout_ms: i32) -> RoamStatus {
    status_guard(|| {
        // SAFETY: caller contract.
        let g = unsafe { open_guest(guest) }?;
        match g.guest.wait(timeout_of(timeout_ms)).map_err(session_err)? {
            WaitOutcome::Signaled => Ok(()),
            WaitOutcome::Timeout => Err(FfiError::new(
                ROAM_ERR_TIMEOUT,
                "no signal before the timeout",
            )),
            WaitOutcome::PeerGone => Err(FfiError::new(ROAM_ERR_PEER_GONE, "the host is gone")),
        }
    })
}

/// Wait up to `timeout_ms` (negative: forever) for room after a send found the
/// link full (`ROAM_ERR_FULL` or `ROAM_ERR_POOL_EXHAUSTED`): `ROAM_OK` when the host
/// may have freed some (retry the send), `ROAM_ERR_TIMEOUT`, or
/// `ROAM_ERR_PEER_GONE` once the host's end is closed. Unlike `roam_guest_wait`,
/// messages waiting to be received do not end the wait, so a sender that does not
/// read neither spins nor misses the host's death.
///
/// Not thread-safe (one thread at a time per guest).
///
/// # Safety
/// `guest` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_guest_wait_for_space(
    guest: *mut RoamGuest,
    timeout_ms: i32,
) -> RoamStatus {
    status_guard(|| {
        // SAFETY: caller contract.
        let g = unsafe { open_guest(guest) }?;
        match g
            .guest
            .wait_for_space(timeout_of(timeout_ms))
            .map_err(session_err)?
        {
            WaitOutcome::Signaled => Ok(()),
            WaitOutcome::Timeout => Err(FfiError::new(
                ROAM_ERR_TIMEOUT,
                "no room freed before the timeout",
            )),
            WaitOutcome::PeerGone => Err(FfiError::new(ROAM_ERR_PEER_GONE, "the host is gone")),
        }
    })
}

/// Say goodbye: cancel an outstanding reservation, release the held message, mark
/// the peer entry Goodbye, stop heartbeating and wake the host. Afterwards only
/// `roam_guest_destroy` (and `roam_guest_peer_id`) may be called; other calls return
/// `ROAM_ERR_INVALID_STATE`. Idempotent.
///
/// Not thread-safe (one thread at a time per guest).
///
/// # Safety
/// `guest` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_guest_close(guest: *mut RoamGuest) -> RoamStatus {
    status_guard(|| {
        // SAFETY: caller contract.
        let g = unsafe { handle_mut(guest, "guest") }?;
        close_guest(g);
        Ok(())
    })
}

fn close_guest(g: &mut RoamGuest) {
    if g.closed {
        return;
    }
    if let Some(r) = g.reservation.take() {
        let _ = g.guest.link().0.cancel_reserved(r);
    }
    g.guest.close();
    g.closed = true;
}

/// Close (if not done) and free the guest. NULL is accepted and ignored.
///
/// Not thread-safe (one thread at a time per guest).
///
/// # Safety
/// `guest` is NULL or a live pointer from `roam_guest_connect`, not used again after.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_guest_destroy(guest: *mut RoamGuest) {
    crate::status::ffi_guard((), || {
        if guest.is_null() {
            return;
        }
        // SAFETY: from Box::into_raw in roam_guest_connect, not freed before (contract).
        let mut g = unsafe { Box::from_raw(guest) };
        close_guest(&mut g);
        drop(g);
    })
}
