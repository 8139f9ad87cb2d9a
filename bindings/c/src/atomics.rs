//! `roam_atomic_*`: single atomic operations on shared memory, with roam's orderings
//! (loads Acquire, stores Release, read-modify-writes AcqRel, weak CAS), for
//! bindings without portable atomics (Swift).
//!
//! Stricter than roam: a NULL or misaligned pointer is rejected instead of being
//! dereferenced (loads and `fetch_add` then return 0, stores do nothing, CAS returns
//! -1), and the reason is stored for `roam_last_error_message`.
//!
//! Thread safety: every function is thread-safe and lock-free (that is their point).

use roam_shm::atomics;

use crate::status::{ffi_guard, set_last_error};

fn usable<T>(p: *const T, func: &str) -> bool {
    if p.is_null() {
        set_last_error(format!("{func}: pointer is NULL"));
        return false;
    }
    if !p.is_aligned() {
        set_last_error(format!(
            "{func}: pointer {p:p} is not {}-byte aligned",
            align_of::<T>()
        ));
        return false;
    }
    true
}

/// Load a `uint32_t` with Acquire ordering. Returns 0 (and sets the last error) if
/// `ptr` is NULL or not 4-byte aligned.
///
/// Thread-safe.
///
/// # Safety
/// A non-NULL `ptr` must point to a `uint32_t` that is valid for reads and only ever
/// accessed atomically (by every process mapping it) while shared.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_atomic_load_u32_acquire(ptr: *const u32) -> u32 {
    ffi_guard(0, || {
        if !usable(ptr, "roam_atomic_load_u32_acquire") {
            return 0;
        }
        // SAFETY: non-null and aligned (checked); validity and atomic-only access are
        // the caller's contract.
        unsafe { atomics::load_u32_acquire(ptr) }
    })
}

/// Store a `uint32_t` with Release ordering. Does nothing (and sets the last error)
/// if `ptr` is NULL or not 4-byte aligned.
///
/// Thread-safe.
///
/// # Safety
/// A non-NULL `ptr` must point to a `uint32_t` that is valid for writes and only ever
/// accessed atomically while shared.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_atomic_store_u32_release(ptr: *mut u32, value: u32) {
    ffi_guard((), || {
        if usable(ptr, "roam_atomic_store_u32_release") {
            // SAFETY: non-null and aligned (checked); the rest is the caller's contract.
            unsafe { atomics::store_u32_release(ptr, value) }
        }
    })
}

/// Weak compare-and-exchange of a `uint32_t` (AcqRel; Acquire on failure): if
/// `*ptr == *expected`, store `desired` and return 1; otherwise write the value found
/// into `*expected` and return 0. It may fail spuriously: call it in a loop.
/// Returns -1 (nothing done) if `ptr` or `expected` is NULL or misaligned.
///
/// Thread-safe.
///
/// # Safety
/// Non-NULL `ptr` as for `roam_atomic_store_u32_release`; a non-NULL `expected` must
/// be valid for reads and writes and not shared with another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_atomic_compare_exchange_u32(
    ptr: *mut u32,
    expected: *mut u32,
    desired: u32,
) -> i32 {
    ffi_guard(-1, || {
        let f = "roam_atomic_compare_exchange_u32";
        if !usable(ptr, f) || !usable(expected, f) {
            return -1;
        }
        // SAFETY: `expected` is non-null, aligned, and valid and unshared per the
        // caller's contract; `ptr` as in the stores above.
        unsafe { i32::from(atomics::compare_exchange_u32(ptr, &mut *expected, desired)) }
    })
}

/// Add `value` to a `uint32_t` (wrapping, AcqRel) and return the previous value.
/// Returns 0 (nothing done) if `ptr` is NULL or not 4-byte aligned.
///
/// Thread-safe.
///
/// # Safety
/// As for `roam_atomic_store_u32_release`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_atomic_fetch_add_u32(ptr: *mut u32, value: u32) -> u32 {
    ffi_guard(0, || {
        if !usable(ptr, "roam_atomic_fetch_add_u32") {
            return 0;
        }
        // SAFETY: non-null and aligned (checked); the rest is the caller's contract.
        unsafe { atomics::fetch_add_u32(ptr, value) }
    })
}

/// Load a `uint64_t` with Acquire ordering. Returns 0 if `ptr` is NULL or not
/// 8-byte aligned.
///
/// Thread-safe.
///
/// # Safety
/// A non-NULL `ptr` must point to a `uint64_t` that is valid for reads and only ever
/// accessed atomically while shared.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_atomic_load_u64_acquire(ptr: *const u64) -> u64 {
    ffi_guard(0, || {
        if !usable(ptr, "roam_atomic_load_u64_acquire") {
            return 0;
        }
        // SAFETY: non-null and aligned (checked); the rest is the caller's contract.
        unsafe { atomics::load_u64_acquire(ptr) }
    })
}

/// Store a `uint64_t` with Release ordering. Does nothing if `ptr` is NULL or not
/// 8-byte aligned.
///
/// Thread-safe.
///
/// # Safety
/// A non-NULL `ptr` must point to a `uint64_t` that is valid for writes and only ever
/// accessed atomically while shared.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_atomic_store_u64_release(ptr: *mut u64, value: u64) {
    ffi_guard((), || {
        if usable(ptr, "roam_atomic_store_u64_release") {
            // SAFETY: non-null and aligned (checked); the rest is the caller's contract.
            unsafe { atomics::store_u64_release(ptr, value) }
        }
    })
}

/// Weak compare-and-exchange of a `uint64_t`; see
/// `roam_atomic_compare_exchange_u32` (1 swapped, 0 failed with `*expected`
/// updated, -1 NULL or misaligned argument).
///
/// Thread-safe.
///
/// # Safety
/// As for `roam_atomic_compare_exchange_u32`, with 8-byte values.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_atomic_compare_exchange_u64(
    ptr: *mut u64,
    expected: *mut u64,
    desired: u64,
) -> i32 {
    ffi_guard(-1, || {
        let f = "roam_atomic_compare_exchange_u64";
        if !usable(ptr, f) || !usable(expected, f) {
            return -1;
        }
        // SAFETY: as in roam_atomic_compare_exchange_u32.
        unsafe { i32::from(atomics::compare_exchange_u64(ptr, &mut *expected, desired)) }
    })
}
