//! `roam_bipbuf_*`: the BipBuffer over a caller-provided header (128 bytes, 64-byte
//! aligned) followed by its data area at `header + 128`. Offsets returned are
//! relative to the data area.
//!
//! These run roam-shm's BipBuffer algorithm (`roam_shm::bipbuf::BipBufRaw`), not
//! roam 7.3's: the producer's wrap stores `write = 0` before the watermark and the
//! consumer resets only once it sees that store, which closes a race in roam where
//! a consumer could re-read stale bytes. Both are compatible with a roam peer on the
//! other side of the ring.
//!
//! Stricter than roam:
//! - every cursor read from the header is checked against the capacity; a value out
//!   of range (a corrupt or hostile peer) makes the call fail with -1 instead of
//!   returning an out-of-bounds offset;
//! - the seed functions read the peer-writable `capacity` field once per call and
//!   check everything against that one value; the `_ex` variants take the capacity
//!   from the caller (e.g. from the segment header, fixed at attach) and never read
//!   the shared field at all: prefer them;
//! - `commit` and `release` refuse lengths beyond what could have been granted or is
//!   readable (roam only checks the capacity);
//! - NULL or misaligned header pointers and NULL out-pointers are rejected.
//!
//! Thread safety: single producer, single consumer. At most one thread (in any
//! process) calls the producer functions (`try_grant*`, `commit*`) and at most one
//! calls the consumer functions (`try_read*`, `release*`) at a time; the `load_*`
//! and `capacity` functions may be called from any thread. `init` must not race
//! with anything.

use std::ffi::c_void;
use std::sync::atomic::{AtomicU32, Ordering};

use roam_shm::bipbuf::{
    BIPBUF_HEADER_SIZE, BipBufError, BipBufHeader, BipBufRaw, GrantOutcome, ReadOutcome,
};

use crate::status::{ffi_guard, set_last_error};

/// `roam_bipbuf_try_grant_ex`: granted.
pub const ROAM_BIPBUF_GRANTED: i32 = 1;
/// `roam_bipbuf_try_grant_ex` / `try_read_ex`: nothing now (full / empty).
pub const ROAM_BIPBUF_WOULD_BLOCK: i32 = 0;
/// `roam_bipbuf_try_grant_ex`: full, and this call wrapped the ring: the producer
/// must signal the consumer (its next read resets the cursors), then wait.
pub const ROAM_BIPBUF_FULL_WRAPPED: i32 = 2;
/// `roam_bipbuf_try_read_ex`: data available.
pub const ROAM_BIPBUF_DATA: i32 = 1;
/// `roam_bipbuf_try_read_ex`: empty, but this call reset the cursors after a wrap,
/// freeing room the producer may be waiting for: the consumer must signal the
/// producer.
pub const ROAM_BIPBUF_EMPTY_AFTER_RESET: i32 = 2;
/// Any `roam_bipbuf_*` returning `int32_t`: error (bad argument, corrupt header,
/// overflow). See `roam_last_error_message`.
pub const ROAM_BIPBUF_ERROR: i32 = -1;

fn header_of(h: *const c_void, func: &str) -> Option<*mut BipBufHeader> {
    if h.is_null() {
        set_last_error(format!("{func}: header pointer is NULL"));
        return None;
    }
    let header = h.cast::<BipBufHeader>().cast_mut();
    if !header.is_aligned() {
        set_last_error(format!("{func}: header {h:p} is not 64-byte aligned"));
        return None;
    }
    Some(header)
}

/// The ring at `h` with capacity `cap` (0 = read the header's field once).
///
/// # Safety
/// `h` (non-null, aligned: checked by `header_of`) must point to an initialized
/// header followed by at least the capacity's data bytes.
unsafe fn ring(h: *const c_void, cap: u32, func: &str) -> Option<BipBufRaw> {
    let header = header_of(h, func)?;
    // SAFETY: the header is 64-byte aligned and, per the caller's contract, valid and
    // followed by its data area, so +128 stays inside the same allocation.
    let data = unsafe { header.cast::<u8>().add(BIPBUF_HEADER_SIZE) };
    // SAFETY: caller contract (valid initialized header, data of the capacity).
    let r = unsafe {
        if cap == 0 {
            BipBufRaw::attach(header, data)
        } else {
            BipBufRaw::from_parts(header, data, cap)
        }
    };
    match r {
        Ok(r) => Some(r),
        Err(e) => {
            set_last_error(format!("{func}: {e}"));
            None
        }
    }
}

fn fail(func: &str, e: &BipBufError) -> i32 {
    set_last_error(format!("{func}: {e}"));
    ROAM_BIPBUF_ERROR
}

/// Size of a BipBuffer header: 128. The data area starts this far after it.
///
/// Thread-safe.
///
/// # Safety
/// Always safe to call.
#[unsafe(no_mangle)]
pub extern "C" fn roam_bipbuf_header_size() -> u32 {
    BIPBUF_HEADER_SIZE as u32
}

/// Initialize a BipBuffer header for `capacity` data bytes (cursors 0, padding 0).
///
/// Does nothing (and sets the last error) if `header_ptr` is NULL, not 64-byte
/// aligned, or `capacity` is 0.
///
/// Not thread-safe: nobody may use the ring during initialization.
///
/// # Safety
/// A non-NULL `header_ptr` must be valid for writes of 128 bytes followed by
/// `capacity` bytes of data, owned by the caller for the duration of the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_bipbuf_init(header_ptr: *mut c_void, capacity: u32) {
    ffi_guard((), || {
        let Some(header) = header_of(header_ptr, "roam_bipbuf_init") else {
            return;
        };
        // SAFETY: non-null, aligned (checked); valid for 128 + capacity bytes and not
        // shared during the call (caller contract).
        let r = unsafe {
            BipBufRaw::init(
                header,
                header.cast::<u8>().add(BIPBUF_HEADER_SIZE),
                capacity,
            )
        };
        if let Err(e) = r {
            set_last_error(format!("roam_bipbuf_init: {e}"));
        }
    })
}

/// The `capacity` field of the header (0 if `header_ptr` is NULL or misaligned).
///
/// Thread-safe.
///
/// # Safety
/// A non-NULL `header_ptr` must point to an initialized BipBuffer header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_bipbuf_capacity(header_ptr: *const c_void) -> u32 {
    ffi_guard(0, || {
        // SAFETY: caller contract; capacity 0 = read it from the header.
        unsafe { ring(header_ptr, 0, "roam_bipbuf_capacity") }.map_or(0, |r| r.capacity())
    })
}

/// Load `write` with Acquire ordering (0 if `header_ptr` is NULL or misaligned).
/// The value is what the header holds, unvalidated (diagnostics).
///
/// Thread-safe.
///
/// # Safety
/// A non-NULL `header_ptr` must point to an initialized BipBuffer header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_bipbuf_load_write_acquire(header_ptr: *const c_void) -> u32 {
    ffi_guard(0, || {
        load(header_ptr, "roam_bipbuf_load_write_acquire", Cursor::Write)
    })
}

/// Load `read` with Acquire ordering (0 if `header_ptr` is NULL or misaligned).
///
/// Thread-safe.
///
/// # Safety
/// A non-NULL `header_ptr` must point to an initialized BipBuffer header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_bipbuf_load_read_acquire(header_ptr: *const c_void) -> u32 {
    ffi_guard(0, || {
        load(header_ptr, "roam_bipbuf_load_read_acquire", Cursor::Read)
    })
}

/// Load `watermark` with Acquire ordering (0 if `header_ptr` is NULL or misaligned).
///
/// Thread-safe.
///
/// # Safety
/// A non-NULL `header_ptr` must point to an initialized BipBuffer header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_bipbuf_load_watermark_acquire(header_ptr: *const c_void) -> u32 {
    ffi_guard(0, || {
        load(
            header_ptr,
            "roam_bipbuf_load_watermark_acquire",
            Cursor::Watermark,
        )
    })
}

#[derive(Clone, Copy)]
enum Cursor {
    Write,
    Read,
    Watermark,
}

fn load(h: *const c_void, func: &str, which: Cursor) -> u32 {
    let Some(header) = header_of(h, func) else {
        return 0;
    };
    // SAFETY: non-null and aligned (checked); the caller guarantees an initialized
    // header. Only the selected atomic field is borrowed, never the whole header
    // (whose padding a peer may write to).
    let field: &AtomicU32 = unsafe {
        match which {
            Cursor::Write => &(*header).write,
            Cursor::Read => &(*header).read,
            Cursor::Watermark => &(*header).watermark,
        }
    };
    // Acquire: pairs with the Release store of the cursor by its owner.
    field.load(Ordering::Acquire)
}

fn grant(h: *mut c_void, cap: u32, len: u32, out: *mut u32, func: &str) -> i32 {
    if out.is_null() {
        set_last_error(format!("{func}: out_offset is NULL"));
        return ROAM_BIPBUF_ERROR;
    }
    // SAFETY: forwarded caller contract of the exported function.
    let Some(r) = (unsafe { ring(h, cap, func) }) else {
        return ROAM_BIPBUF_ERROR;
    };
    match r.try_grant_outcome(len) {
        Ok(GrantOutcome::Granted { offset }) => {
            // SAFETY: `out` is non-null (checked) and writable (caller contract).
            unsafe { out.write(offset) };
            ROAM_BIPBUF_GRANTED
        }
        Ok(GrantOutcome::Full) => ROAM_BIPBUF_WOULD_BLOCK,
        Ok(GrantOutcome::FullWrapped) => ROAM_BIPBUF_FULL_WRAPPED,
        Err(e) => fail(func, &e),
    }
}

/// Producer: try to reserve `len` contiguous bytes. Returns 1 and writes the offset
/// (relative to the data area) to `*out_offset`; 0 if there is no room now; -1 if
/// `len` exceeds the capacity, the header is corrupt, or an argument is NULL or
/// misaligned. `len == 0` succeeds with offset 0.
///
/// Uses roam-shm's wrap order (see the module docs). A 0 may hide a wrap that only
/// a consumer read can complete (the "stall" of layout notes §13): use
/// `roam_bipbuf_try_grant_ex` to learn when to wake the consumer.
///
/// Thread safety: producer side only; one producer thread at a time (module docs).
///
/// # Safety
/// A non-NULL `header_ptr` must point to an initialized header followed by its data
/// area; a non-NULL `out_offset` must be writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_bipbuf_try_grant(
    header_ptr: *mut c_void,
    len: u32,
    out_offset: *mut u32,
) -> i32 {
    ffi_guard(ROAM_BIPBUF_ERROR, || {
        match grant(header_ptr, 0, len, out_offset, "roam_bipbuf_try_grant") {
            ROAM_BIPBUF_FULL_WRAPPED => ROAM_BIPBUF_WOULD_BLOCK,
            other => other,
        }
    })
}

/// Producer: `roam_bipbuf_try_grant` with a trusted `capacity` (0 = read the header's
/// field, as the seed function does) and the full outcome: 1 granted, 0 full,
/// 2 full *and this call wrapped the ring* (`ROAM_BIPBUF_FULL_WRAPPED`: signal the
/// consumer, then wait as for 0), -1 error.
///
/// Thread safety: producer side only; one producer thread at a time.
///
/// # Safety
/// As for `roam_bipbuf_try_grant`; the data area must hold `capacity` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_bipbuf_try_grant_ex(
    header_ptr: *mut c_void,
    capacity: u32,
    len: u32,
    out_offset: *mut u32,
) -> i32 {
    ffi_guard(ROAM_BIPBUF_ERROR, || {
        grant(
            header_ptr,
            capacity,
            len,
            out_offset,
            "roam_bipbuf_try_grant_ex",
        )
    })
}

fn commit(h: *mut c_void, cap: u32, len: u32, func: &str) -> i32 {
    // SAFETY: forwarded caller contract.
    let Some(r) = (unsafe { ring(h, cap, func) }) else {
        return ROAM_BIPBUF_ERROR;
    };
    match r.commit(len) {
        Ok(()) => 0,
        Err(e) => fail(func, &e),
    }
}

/// Producer: publish `len` granted bytes to the consumer. Returns 0, or -1 if `len`
/// is more than could have been granted at the current position (nothing is
/// stored), the header is corrupt, or `header_ptr` is NULL or misaligned.
///
/// Thread safety: producer side only; one producer thread at a time.
///
/// # Safety
/// A non-NULL `header_ptr` must point to an initialized header followed by its data.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_bipbuf_commit(header_ptr: *mut c_void, len: u32) -> i32 {
    ffi_guard(ROAM_BIPBUF_ERROR, || {
        commit(header_ptr, 0, len, "roam_bipbuf_commit")
    })
}

/// Producer: `roam_bipbuf_commit` with a trusted `capacity` (0 = read the header).
///
/// Thread safety: producer side only; one producer thread at a time.
///
/// # Safety
/// As for `roam_bipbuf_commit`; the data area must hold `capacity` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_bipbuf_commit_ex(
    header_ptr: *mut c_void,
    capacity: u32,
    len: u32,
) -> i32 {
    ffi_guard(ROAM_BIPBUF_ERROR, || {
        commit(header_ptr, capacity, len, "roam_bipbuf_commit_ex")
    })
}

fn read(h: *mut c_void, cap: u32, out_off: *mut u32, out_len: *mut u32, func: &str) -> i32 {
    if out_off.is_null() || out_len.is_null() {
        set_last_error(format!("{func}: out_offset or out_len is NULL"));
        return ROAM_BIPBUF_ERROR;
    }
    // SAFETY: forwarded caller contract.
    let Some(r) = (unsafe { ring(h, cap, func) }) else {
        return ROAM_BIPBUF_ERROR;
    };
    match r.try_read_outcome() {
        Ok(ReadOutcome::Data { offset, len }) => {
            // SAFETY: both non-null (checked) and writable (caller contract).
            unsafe {
                out_off.write(offset);
                out_len.write(len);
            }
            ROAM_BIPBUF_DATA
        }
        Ok(ReadOutcome::Empty) => ROAM_BIPBUF_WOULD_BLOCK,
        Ok(ReadOutcome::EmptyAfterReset) => ROAM_BIPBUF_EMPTY_AFTER_RESET,
        Err(e) => fail(func, &e),
    }
}

/// Consumer: the contiguous readable bytes. Returns 1 and writes their offset
/// (relative to the data area) and length (> 0); 0 if empty; -1 if the header is
/// corrupt or an argument is NULL or misaligned. The bytes stay the consumer's until
/// `roam_bipbuf_release`.
///
/// A 0 may hide a cursor reset after a wrap that the producer is waiting for: use
/// `roam_bipbuf_try_read_ex` to learn when to wake the producer.
///
/// Thread safety: consumer side only; one consumer thread at a time.
///
/// # Safety
/// A non-NULL `header_ptr` must point to an initialized header followed by its data;
/// non-NULL out-pointers must be writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_bipbuf_try_read(
    header_ptr: *mut c_void,
    out_offset: *mut u32,
    out_len: *mut u32,
) -> i32 {
    ffi_guard(ROAM_BIPBUF_ERROR, || {
        match read(header_ptr, 0, out_offset, out_len, "roam_bipbuf_try_read") {
            ROAM_BIPBUF_EMPTY_AFTER_RESET => ROAM_BIPBUF_WOULD_BLOCK,
            other => other,
        }
    })
}

/// Consumer: `roam_bipbuf_try_read` with a trusted `capacity` (0 = read the header)
/// and the full outcome: 1 data, 0 empty, 2 empty *after this call reset the cursors*
/// (`ROAM_BIPBUF_EMPTY_AFTER_RESET`: signal the producer), -1 error.
///
/// Thread safety: consumer side only; one consumer thread at a time.
///
/// # Safety
/// As for `roam_bipbuf_try_read`; the data area must hold `capacity` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_bipbuf_try_read_ex(
    header_ptr: *mut c_void,
    capacity: u32,
    out_offset: *mut u32,
    out_len: *mut u32,
) -> i32 {
    ffi_guard(ROAM_BIPBUF_ERROR, || {
        read(
            header_ptr,
            capacity,
            out_offset,
            out_len,
            "roam_bipbuf_try_read_ex",
        )
    })
}

fn release(h: *mut c_void, cap: u32, len: u32, func: &str) -> i32 {
    // SAFETY: forwarded caller contract.
    let Some(r) = (unsafe { ring(h, cap, func) }) else {
        return ROAM_BIPBUF_ERROR;
    };
    match r.release(len) {
        Ok(()) => 0,
        Err(e) => fail(func, &e),
    }
}

/// Consumer: give `len` read bytes back to the producer. Returns 0, or -1 if `len`
/// is more than is readable (nothing is stored), the header is corrupt, or
/// `header_ptr` is NULL or misaligned.
///
/// Thread safety: consumer side only; one consumer thread at a time.
///
/// # Safety
/// A non-NULL `header_ptr` must point to an initialized header followed by its data.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_bipbuf_release(header_ptr: *mut c_void, len: u32) -> i32 {
    ffi_guard(ROAM_BIPBUF_ERROR, || {
        release(header_ptr, 0, len, "roam_bipbuf_release")
    })
}

/// Consumer: `roam_bipbuf_release` with a trusted `capacity` (0 = read the header).
///
/// Thread safety: consumer side only; one consumer thread at a time.
///
/// # Safety
/// As for `roam_bipbuf_release`; the data area must hold `capacity` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_bipbuf_release_ex(
    header_ptr: *mut c_void,
    capacity: u32,
    len: u32,
) -> i32 {
    ffi_guard(ROAM_BIPBUF_ERROR, || {
        release(header_ptr, capacity, len, "roam_bipbuf_release_ex")
    })
}
