//! Single atomic operations on raw pointers into shared memory.
//!
//! These are the helpers the C ABI exposes as `roam_atomic_*` (roam 7.x, layout notes
//! §10), for bindings that keep their own shared counters (peer-table state, slot-pool
//! heads) but have no portable atomics of their own. They follow roam's orderings:
//! loads Acquire, stores Release, read-modify-writes AcqRel (a CAS failure loads with
//! Acquire), and the CAS is *weak* (it may fail spuriously; callers loop).
//!
//! # Why these use core atomics, even under loom
//! Every function here is a single atomic operation on memory that this crate does not
//! own (a pointer handed in from C, Swift or Python). There is no algorithm here for
//! loom to explore, and a loom atomic cannot be conjured from a raw `*mut u32` anyway,
//! so these cast the pointer to a core atomic with `from_ptr` instead of going through
//! [`crate::sync`]. The algorithms built on top of them (in the bindings) are what
//! needs model checking.
//!
//! # Safety (common to every function)
//! `p` must be non-null, aligned to the size of the value (4 bytes for `u32`, 8 for
//! `u64`), valid for reads and writes for the duration of the call, and the location
//! must only ever be accessed atomically (by this process and by every other process
//! that maps it) while any thread may access it concurrently. Alignment and non-null
//! are checked by `debug_assert!` in debug builds only.
//!
//! ```
//! use roam_shm::atomics;
//!
//! let mut word = 5u32;
//! let p = &raw mut word;
//! // SAFETY: `p` is a valid, aligned, exclusively owned u32 for the whole example.
//! unsafe {
//!     assert_eq!(atomics::fetch_add_u32(p, 2), 5);
//!     let mut expected = 6;
//!     // Wrong expectation: fails and reports the actual value.
//!     assert!(!atomics::compare_exchange_u32(p, &mut expected, 9));
//!     assert_eq!(expected, 7);
//!     // Weak CAS: may fail spuriously, so loop.
//!     while !atomics::compare_exchange_u32(p, &mut expected, 9) {}
//!     assert_eq!(atomics::load_u32_acquire(p), 9);
//! }
//! ```
// See the module docs: single operations on foreign memory use core atomics directly.
#![allow(clippy::disallowed_types)]

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

#[inline(always)]
fn debug_check<T>(p: *const T) {
    debug_assert!(!p.is_null(), "roam_shm::atomics: null pointer");
    debug_assert!(
        p.is_aligned(),
        "roam_shm::atomics: pointer {p:p} is not aligned to {}",
        align_of::<T>()
    );
}

/// Load a `u32` with Acquire ordering.
///
/// # Safety
/// See the [module docs](self): `p` non-null, 4-byte aligned, valid, and only ever
/// accessed atomically.
#[inline]
pub unsafe fn load_u32_acquire(p: *const u32) -> u32 {
    debug_check(p);
    // SAFETY: the caller guarantees `p` is non-null, aligned, valid for the call and
    // only accessed atomically, which is exactly `AtomicU32::from_ptr`'s contract.
    let a = unsafe { AtomicU32::from_ptr(p.cast_mut()) };
    // Acquire: pairs with the Release store (or AcqRel RMW) that published the value.
    a.load(Ordering::Acquire)
}

/// Store a `u32` with Release ordering.
///
/// # Safety
/// See the [module docs](self): `p` non-null, 4-byte aligned, valid, and only ever
/// accessed atomically.
#[inline]
pub unsafe fn store_u32_release(p: *mut u32, value: u32) {
    debug_check(p);
    // SAFETY: caller contract, as for `load_u32_acquire`.
    let a = unsafe { AtomicU32::from_ptr(p) };
    // Release: pairs with the Acquire load that observes `value`, publishing the
    // writes made before this store.
    a.store(value, Ordering::Release);
}

/// Add `value` to a `u32` (wrapping) with AcqRel ordering; returns the previous value.
///
/// # Safety
/// See the [module docs](self): `p` non-null, 4-byte aligned, valid, and only ever
/// accessed atomically.
#[inline]
pub unsafe fn fetch_add_u32(p: *mut u32, value: u32) -> u32 {
    debug_check(p);
    // SAFETY: caller contract, as for `load_u32_acquire`.
    let a = unsafe { AtomicU32::from_ptr(p) };
    // AcqRel: acquires the previous writer's Release, releases ours to the next reader.
    a.fetch_add(value, Ordering::AcqRel)
}

/// Load a `u64` with Acquire ordering.
///
/// # Safety
/// See the [module docs](self): `p` non-null, 8-byte aligned, valid, and only ever
/// accessed atomically.
#[inline]
pub unsafe fn load_u64_acquire(p: *const u64) -> u64 {
    debug_check(p);
    // SAFETY: caller contract (non-null, 8-aligned, valid, atomic-only access), which
    // is `AtomicU64::from_ptr`'s contract.
    let a = unsafe { AtomicU64::from_ptr(p.cast_mut()) };
    // Acquire: pairs with the Release store (or AcqRel RMW) that published the value.
    a.load(Ordering::Acquire)
}

/// Store a `u64` with Release ordering.
///
/// # Safety
/// See the [module docs](self): `p` non-null, 8-byte aligned, valid, and only ever
/// accessed atomically.
#[inline]
pub unsafe fn store_u64_release(p: *mut u64, value: u64) {
    debug_check(p);
    // SAFETY: caller contract, as for `load_u64_acquire`.
    let a = unsafe { AtomicU64::from_ptr(p) };
    // Release: pairs with the Acquire load that observes `value`.
    a.store(value, Ordering::Release);
}

/// Weak compare-and-exchange of a `u32`: if `*p == *expected`, store `desired` and
/// return `true`; otherwise write the value actually found into `*expected` and return
/// `false`. May fail spuriously (even when the values are equal), so call it in a loop.
///
/// # Safety
/// See the [module docs](self): `p` non-null, 4-byte aligned, valid, and only ever
/// accessed atomically.
#[inline]
pub unsafe fn compare_exchange_u32(p: *mut u32, expected: &mut u32, desired: u32) -> bool {
    debug_check(p);
    // SAFETY: caller contract, as for `load_u32_acquire`.
    let a = unsafe { AtomicU32::from_ptr(p) };
    // Success AcqRel: acquires the value we replace, releases ours to the next
    // acquirer. Failure Acquire: the returned actual value is synchronized-with, so a
    // retry built on it sees the data its writer published (roam's orderings).
    match a.compare_exchange_weak(*expected, desired, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => true,
        Err(actual) => {
            *expected = actual;
            false
        }
    }
}

/// Weak compare-and-exchange of a `u64`; see [`compare_exchange_u32`].
///
/// # Safety
/// See the [module docs](self): `p` non-null, 8-byte aligned, valid, and only ever
/// accessed atomically.
#[inline]
pub unsafe fn compare_exchange_u64(p: *mut u64, expected: &mut u64, desired: u64) -> bool {
    debug_check(p);
    // SAFETY: caller contract, as for `load_u64_acquire`.
    let a = unsafe { AtomicU64::from_ptr(p) };
    // Same orderings as compare_exchange_u32: AcqRel on success, Acquire on failure.
    match a.compare_exchange_weak(*expected, desired, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => true,
        Err(actual) => {
            *expected = actual;
            false
        }
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;

    #[test]
    fn u32_ops() {
        let mut v = 0u32;
        let p = &raw mut v;
        // SAFETY: `p` points to a live, aligned local accessed only through these calls.
        unsafe {
            store_u32_release(p, 41);
            assert_eq!(fetch_add_u32(p, 1), 41);
            assert_eq!(load_u32_acquire(p), 42);
            assert_eq!(fetch_add_u32(p, u32::MAX), 42); // wraps
            assert_eq!(load_u32_acquire(p), 41);
            let mut exp = 0;
            assert!(!compare_exchange_u32(p, &mut exp, 7));
            assert_eq!(exp, 41);
            while !compare_exchange_u32(p, &mut exp, 7) {}
            assert_eq!(load_u32_acquire(p), 7);
        }
    }

    #[test]
    fn u64_ops() {
        let mut v = 0u64;
        let p = &raw mut v;
        // SAFETY: `p` points to a live, aligned local accessed only through these calls.
        unsafe {
            store_u64_release(p, 1 << 40);
            assert_eq!(load_u64_acquire(p), 1 << 40);
            let mut exp = 3;
            assert!(!compare_exchange_u64(p, &mut exp, 9));
            assert_eq!(exp, 1 << 40);
            while !compare_exchange_u64(p, &mut exp, u64::MAX) {}
            assert_eq!(load_u64_acquire(p), u64::MAX);
        }
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "not aligned")]
    fn misaligned_pointer_is_caught_in_debug() {
        let mut v = [0u64; 2];
        let p = (&raw mut v).cast::<u8>().wrapping_add(1).cast::<u32>();
        // SAFETY: not sound to complete: the debug assertion panics before any access.
        unsafe {
            load_u32_acquire(p);
        }
    }
}
