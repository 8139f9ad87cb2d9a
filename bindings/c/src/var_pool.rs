//! `roam_var_slot_pool_*`: the shared variable-size slot pool (layout notes §5) over a
//! caller-provided region, behind an opaque `RoamVarSlotPool*`.
//!
//! Stricter than roam (same signatures):
//! - `attach` validates the classes (non-zero size and count, at most 256) and that
//!   the pool fits in the region at a 64-aligned `base_offset`; it returns NULL
//!   otherwise (roam only rejects NULL and 0 classes);
//! - every handle is range-checked (class, extent 0, slot index): `payload_ptr`
//!   returns NULL for any out-of-range handle (roam checks only the class);
//! - a free list corrupted by another process makes `alloc` fail instead of handing
//!   out a bad slot, and racing frees of one handle cannot push a slot twice;
//! - `mark_in_flight` returns -1 unless this process allocated the slot, the
//!   generation is current and it is still Allocated (roam always returns 0);
//! - `slot_state` reads the slot's real state from shared memory (roam answers 0
//!   "Free" for any slot this process did not allocate);
//! - `free_allocated` refuses a slot this process marked InFlight (use `free`).
//!
//! InFlight is process-local, as in roam: shared memory only has Free and
//! Allocated; a per-pool map records which of this process's allocations were
//! marked InFlight. It is forgotten when the slot is freed or its owner recovered.
//!
//! Thread safety: every function except `init`, `update_region` and `destroy` is
//! thread-safe (lock-free on shared memory; the InFlight map has a mutex). `init`
//! must not race with any use of the pool (in any process); `update_region` and
//! `destroy` must not race with other calls on the same handle.

use std::collections::HashMap;
use std::sync::Mutex;

use roam_shm::segment::var_pool::{
    MAX_CLASSES, RawVarSlotPool, SizeClass, SlotState, VarSlotHandle, calculate_size,
};

use crate::status::{ffi_guard, set_last_error};

/// A size class: `count` slots of `slot_size` bytes (slot-ref payloads use the first
/// 4 bytes of a slot for their length).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoamSizeClass {
    /// Bytes per slot.
    pub slot_size: u32,
    /// Number of slots.
    pub count: u32,
}

/// A reference to one allocated slot (the body of a slot-ref frame): class, extent
/// (always 0 in roam v7), slot index and the generation of the allocation.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoamVarSlotHandle {
    /// Size class index.
    pub class_idx: u8,
    /// Extent index (always 0).
    pub extent_idx: u8,
    /// Slot index within the class.
    pub slot_idx: u32,
    /// Generation of the allocation.
    pub generation: u32,
}

// The layouts C and Swift code compiled against roam's header rely on (notes §10).
const _: () = {
    use std::mem::offset_of;
    assert!(size_of::<RoamSizeClass>() == 8);
    assert!(align_of::<RoamSizeClass>() == 4);
    assert!(size_of::<RoamVarSlotHandle>() == 12);
    assert!(align_of::<RoamVarSlotHandle>() == 4);
    assert!(offset_of!(RoamVarSlotHandle, class_idx) == 0);
    assert!(offset_of!(RoamVarSlotHandle, extent_idx) == 1);
    assert!(offset_of!(RoamVarSlotHandle, slot_idx) == 4);
    assert!(offset_of!(RoamVarSlotHandle, generation) == 8);
    // Identical to the core's VarSlotHandle, so the two convert field by field.
    assert!(size_of::<VarSlotHandle>() == size_of::<RoamVarSlotHandle>());
    assert!(size_of::<SizeClass>() == size_of::<RoamSizeClass>());
};

impl From<RoamVarSlotHandle> for VarSlotHandle {
    fn from(h: RoamVarSlotHandle) -> VarSlotHandle {
        VarSlotHandle {
            class_idx: h.class_idx,
            extent_idx: h.extent_idx,
            slot_idx: h.slot_idx,
            generation: h.generation,
        }
    }
}

impl From<VarSlotHandle> for RoamVarSlotHandle {
    fn from(h: VarSlotHandle) -> RoamVarSlotHandle {
        RoamVarSlotHandle {
            class_idx: h.class_idx,
            extent_idx: h.extent_idx,
            slot_idx: h.slot_idx,
            generation: h.generation,
        }
    }
}

/// `slot_state` value of a slot this process marked InFlight.
const STATE_IN_FLIGHT: u8 = 2;
/// `slot_state` value of an Allocated slot.
const STATE_ALLOCATED: u8 = 1;

#[derive(Debug, Clone, Copy)]
struct Tracked {
    generation: u32,
    state: u8,
    owner: u8,
}

/// Opaque handle to a pool view (heap-allocated; `roam_var_slot_pool_attach` creates
/// it, `roam_var_slot_pool_destroy` frees it).
#[derive(Debug)]
pub struct RoamVarSlotPool {
    pool: RawVarSlotPool,
    /// (class, extent, slot) → this process's allocation and its local state.
    tracked: Mutex<HashMap<(u8, u8, u32), Tracked>>,
}

impl RoamVarSlotPool {
    fn tracked(&self) -> std::sync::MutexGuard<'_, HashMap<(u8, u8, u32), Tracked>> {
        // A panic while holding the lock cannot leave the map inconsistent (single
        // inserts/removes), so a poisoned lock is simply taken over.
        self.tracked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn key(h: &RoamVarSlotHandle) -> (u8, u8, u32) {
    (h.class_idx, h.extent_idx, h.slot_idx)
}

/// # Safety
/// `pool` is NULL or a live pointer from `roam_var_slot_pool_attach`.
unsafe fn pool_ref<'a>(pool: *const RoamVarSlotPool, func: &str) -> Option<&'a RoamVarSlotPool> {
    if pool.is_null() {
        set_last_error(format!("{func}: pool is NULL"));
        return None;
    }
    // SAFETY: non-null, and live per the caller's contract.
    Some(unsafe { &*pool })
}

/// # Safety
/// `classes` is NULL or valid for reads of `n` entries.
unsafe fn classes_of(
    classes: *const RoamSizeClass,
    n: usize,
    func: &str,
) -> Option<Vec<SizeClass>> {
    if classes.is_null() || n == 0 {
        set_last_error(format!("{func}: classes is NULL or num_classes is 0"));
        return None;
    }
    if n > MAX_CLASSES {
        set_last_error(format!("{func}: {n} classes; at most {MAX_CLASSES}"));
        return None;
    }
    // SAFETY: non-null and valid for `n` reads (caller contract); RoamSizeClass is
    // plain old data, so any bytes are a valid value.
    let s = unsafe { std::slice::from_raw_parts(classes, n) };
    Some(
        s.iter()
            .map(|c| SizeClass {
                slot_size: c.slot_size,
                count: c.count,
            })
            .collect(),
    )
}

/// Create a pool view over an existing region: the pool lies at `base_offset`
/// (64-byte aligned address) inside `region_len` bytes at `region_ptr`. Does not
/// touch the memory; call `roam_var_slot_pool_init` once on a fresh segment.
///
/// Returns NULL (and sets the last error) on a NULL pointer, 0 or more than 256
/// classes, a class with a zero size or count, a pool that does not fit in the
/// region, or a misaligned pool start.
///
/// Thread-safe.
///
/// # Safety
/// `region_ptr` (if non-NULL) must be valid for reads and writes of `region_len`
/// bytes for as long as the pool is used (or until `update_region`); `classes` (if
/// non-NULL) must be valid for reads of `num_classes` entries during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_var_slot_pool_attach(
    region_ptr: *mut u8,
    region_len: usize,
    base_offset: u64,
    classes: *const RoamSizeClass,
    num_classes: usize,
) -> *mut RoamVarSlotPool {
    ffi_guard(std::ptr::null_mut(), || {
        let f = "roam_var_slot_pool_attach";
        if region_ptr.is_null() {
            set_last_error(format!("{f}: region_ptr is NULL"));
            return std::ptr::null_mut();
        }
        // SAFETY: caller contract on `classes`.
        let Some(classes) = (unsafe { classes_of(classes, num_classes, f) }) else {
            return std::ptr::null_mut();
        };
        let Ok(base) = usize::try_from(base_offset) else {
            set_last_error(format!("{f}: base_offset {base_offset} is out of range"));
            return std::ptr::null_mut();
        };
        // SAFETY: caller contract on the region (valid for region_len bytes while the
        // pool is used); nothing else holds Rust references into it.
        match unsafe { RawVarSlotPool::new(region_ptr, region_len, base, &classes) } {
            Ok(pool) => Box::into_raw(Box::new(RoamVarSlotPool {
                pool,
                tracked: Mutex::new(HashMap::new()),
            })),
            Err(e) => {
                set_last_error(format!("{f}: {e}"));
                std::ptr::null_mut()
            }
        }
    })
}

/// Write every class header and free list (all slots Free, generation 0). Call once
/// when creating a segment, before any other process uses the pool. Also forgets
/// this process's InFlight marks. Does nothing if `pool` is NULL.
///
/// Not thread-safe: nobody (in any process) may use the pool meanwhile.
///
/// # Safety
/// `pool` is NULL or a live pointer from `roam_var_slot_pool_attach` whose region is
/// writable and not in use by anyone else during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_var_slot_pool_init(pool: *mut RoamVarSlotPool) {
    ffi_guard((), || {
        // SAFETY: caller contract.
        let Some(p) = (unsafe { pool_ref(pool, "roam_var_slot_pool_init") }) else {
            return;
        };
        // SAFETY: exclusive use of the pool's bytes during init (caller contract).
        unsafe { p.pool.init() };
        p.tracked().clear();
    })
}

/// Re-point the pool at a remapped region holding the same pool at the same
/// `base_offset`. If the new region is NULL or too small, nothing changes (and the
/// last error is set).
///
/// Not thread-safe with other calls on the same pool.
///
/// # Safety
/// `pool` is NULL or a live pointer from `roam_var_slot_pool_attach`; a non-NULL
/// `region_ptr` must be valid as in `attach`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_var_slot_pool_update_region(
    pool: *mut RoamVarSlotPool,
    region_ptr: *mut u8,
    region_len: usize,
) {
    ffi_guard((), || {
        let f = "roam_var_slot_pool_update_region";
        if pool.is_null() {
            set_last_error(format!("{f}: pool is NULL"));
            return;
        }
        // SAFETY: non-null and live; no other call runs on it concurrently (contract).
        let p = unsafe { &mut *pool };
        // SAFETY: caller contract on the new region.
        if let Err(e) = unsafe { p.pool.update_region(region_ptr, region_len) } {
            set_last_error(format!("{f}: {e}"));
        }
    })
}

/// Allocate a slot holding at least `size` bytes, owned by peer `owner` (0 = host):
/// the first class whose slots are large enough, falling through to larger classes
/// when one is exhausted. Returns 1 and writes the handle; 0 if every candidate class
/// is exhausted (backpressure); -1 on a NULL argument or a corrupt free list.
///
/// Thread-safe.
///
/// # Safety
/// `pool` is NULL or live; a non-NULL `out_handle` must be writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_var_slot_pool_alloc(
    pool: *const RoamVarSlotPool,
    size: u32,
    owner: u8,
    out_handle: *mut RoamVarSlotHandle,
) -> i32 {
    ffi_guard(-1, || {
        let f = "roam_var_slot_pool_alloc";
        // SAFETY: caller contract.
        let Some(p) = (unsafe { pool_ref(pool, f) }) else {
            return -1;
        };
        if out_handle.is_null() {
            set_last_error(format!("{f}: out_handle is NULL"));
            return -1;
        }
        match p.pool.try_alloc(size, u32::from(owner)) {
            Ok(Some(h)) => {
                let h = RoamVarSlotHandle::from(h);
                p.tracked().insert(
                    key(&h),
                    Tracked {
                        generation: h.generation,
                        state: STATE_ALLOCATED,
                        owner,
                    },
                );
                // SAFETY: non-null (checked) and writable (caller contract).
                unsafe { out_handle.write(h) };
                1
            }
            Ok(None) => 0,
            Err(e) => {
                set_last_error(format!("{f}: {e}"));
                -1
            }
        }
    })
}

/// Mark a slot this process allocated as InFlight (sent). Returns 0, or -1 if the
/// handle is out of range, stale, not allocated by this process, or already
/// InFlight (roam always returns 0).
///
/// Thread-safe.
///
/// # Safety
/// `pool` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_var_slot_pool_mark_in_flight(
    pool: *const RoamVarSlotPool,
    handle: RoamVarSlotHandle,
) -> i32 {
    ffi_guard(-1, || {
        let f = "roam_var_slot_pool_mark_in_flight";
        // SAFETY: caller contract.
        let Some(p) = (unsafe { pool_ref(pool, f) }) else {
            return -1;
        };
        match p.pool.slot_state(handle.into()) {
            Ok(SlotState::Allocated) => {}
            Ok(SlotState::Free) => {
                set_last_error(format!("{f}: {handle:?} is not allocated"));
                return -1;
            }
            Err(e) => {
                set_last_error(format!("{f}: {e}"));
                return -1;
            }
        }
        let mut map = p.tracked();
        match map.get_mut(&key(&handle)) {
            Some(t) if t.generation == handle.generation && t.state == STATE_ALLOCATED => {
                t.state = STATE_IN_FLIGHT;
                0
            }
            Some(t) if t.generation == handle.generation => {
                set_last_error(format!("{f}: {handle:?} is already in flight"));
                -1
            }
            _ => {
                set_last_error(format!("{f}: {handle:?} was not allocated by this process"));
                -1
            }
        }
    })
}

fn free_impl(p: &RoamVarSlotPool, handle: RoamVarSlotHandle, f: &str) -> i32 {
    match p.pool.free(handle.into()) {
        Ok(()) => {
            let mut map = p.tracked();
            if map
                .get(&key(&handle))
                .is_some_and(|t| t.generation == handle.generation)
            {
                map.remove(&key(&handle));
            }
            0
        }
        Err(e) => {
            set_last_error(format!("{f}: {e}"));
            -1
        }
    }
}

/// Free a slot (typically by the receiver, once done with a slot-ref payload).
/// Returns 0, or -1 on a double free, a stale generation, an out-of-range handle or
/// a NULL pool (nothing is changed then).
///
/// Thread-safe.
///
/// # Safety
/// `pool` is NULL or live. The slot's bytes must not be used after a successful free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_var_slot_pool_free(
    pool: *const RoamVarSlotPool,
    handle: RoamVarSlotHandle,
) -> i32 {
    ffi_guard(-1, || {
        let f = "roam_var_slot_pool_free";
        // SAFETY: caller contract.
        let Some(p) = (unsafe { pool_ref(pool, f) }) else {
            return -1;
        };
        free_impl(p, handle, f)
    })
}

/// Free a slot that was allocated but never sent. As `roam_var_slot_pool_free`, and
/// also -1 if this process marked the slot InFlight (it may be in a peer's hands).
///
/// Thread-safe.
///
/// # Safety
/// As for `roam_var_slot_pool_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_var_slot_pool_free_allocated(
    pool: *const RoamVarSlotPool,
    handle: RoamVarSlotHandle,
) -> i32 {
    ffi_guard(-1, || {
        let f = "roam_var_slot_pool_free_allocated";
        // SAFETY: caller contract.
        let Some(p) = (unsafe { pool_ref(pool, f) }) else {
            return -1;
        };
        let in_flight = p
            .tracked()
            .get(&key(&handle))
            .is_some_and(|t| t.generation == handle.generation && t.state == STATE_IN_FLIGHT);
        if in_flight {
            set_last_error(format!(
                "{f}: {handle:?} is in flight; only the receiver (or roam_var_slot_pool_free) may free it"
            ));
            return -1;
        }
        free_impl(p, handle, f)
    })
}

/// Pointer to the start of the slot (where a slot-ref frame's 4-byte length prefix
/// goes; `roam_var_slot_pool_slot_size(class)` bytes are valid from there), or NULL
/// if `pool` is NULL or the class, extent or slot index is out of range. The
/// generation is not checked (use `slot_state` for that).
///
/// Thread-safe. The pointer is valid while the pool's region stays mapped.
///
/// # Safety
/// `pool` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_var_slot_pool_payload_ptr(
    pool: *const RoamVarSlotPool,
    handle: RoamVarSlotHandle,
) -> *mut u8 {
    ffi_guard(std::ptr::null_mut(), || {
        let f = "roam_var_slot_pool_payload_ptr";
        // SAFETY: caller contract.
        let Some(p) = (unsafe { pool_ref(pool, f) }) else {
            return std::ptr::null_mut();
        };
        match p.pool.payload_ptr(handle.into()) {
            Ok(ptr) => ptr,
            Err(e) => {
                set_last_error(format!("{f}: {e}"));
                std::ptr::null_mut()
            }
        }
    })
}

/// The slot's state: 0 Free, 1 Allocated, 2 InFlight (allocated and marked by this
/// process), or -1 if the handle is stale (another generation), out of range, the
/// shared state is corrupt, or `pool` is NULL.
///
/// Thread-safe.
///
/// # Safety
/// `pool` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_var_slot_pool_slot_state(
    pool: *const RoamVarSlotPool,
    handle: RoamVarSlotHandle,
) -> i32 {
    ffi_guard(-1, || {
        let f = "roam_var_slot_pool_slot_state";
        // SAFETY: caller contract.
        let Some(p) = (unsafe { pool_ref(pool, f) }) else {
            return -1;
        };
        match p.pool.slot_state(handle.into()) {
            Ok(SlotState::Free) => 0,
            Ok(SlotState::Allocated) => {
                let in_flight = p.tracked().get(&key(&handle)).is_some_and(|t| {
                    t.generation == handle.generation && t.state == STATE_IN_FLIGHT
                });
                if in_flight { 2 } else { 1 }
            }
            Err(e) => {
                set_last_error(format!("{f}: {e}"));
                -1
            }
        }
    })
}

/// Slot size of class `class_idx`, or 0 if out of range or `pool` is NULL.
///
/// Thread-safe.
///
/// # Safety
/// `pool` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_var_slot_pool_slot_size(
    pool: *const RoamVarSlotPool,
    class_idx: u8,
) -> u32 {
    ffi_guard(0, || {
        // SAFETY: caller contract.
        let Some(p) = (unsafe { pool_ref(pool, "roam_var_slot_pool_slot_size") }) else {
            return 0;
        };
        p.pool.slot_size(usize::from(class_idx)).unwrap_or(0)
    })
}

/// Free every Allocated slot owned by `peer_id` (crash recovery) and forget this
/// process's InFlight marks for that owner. Does nothing if `pool` is NULL.
///
/// Thread-safe.
///
/// # Safety
/// `pool` is NULL or live. The peer must really be gone: its slots' bytes are
/// reused afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_var_slot_pool_recover_peer(
    pool: *const RoamVarSlotPool,
    peer_id: u8,
) {
    ffi_guard((), || {
        // SAFETY: caller contract.
        let Some(p) = (unsafe { pool_ref(pool, "roam_var_slot_pool_recover_peer") }) else {
            return;
        };
        p.pool.reclaim_peer_slots(u32::from(peer_id));
        p.tracked().retain(|_, t| t.owner != peer_id);
    })
}

/// Bytes a pool with these classes occupies (headers, meta arrays, data; each part
/// 64-aligned). Returns 0 if `classes` is NULL, `num_classes` is 0 or above 256, or
/// the size overflows.
///
/// Thread-safe.
///
/// # Safety
/// A non-NULL `classes` must be valid for reads of `num_classes` entries.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_var_slot_pool_calculate_size(
    classes: *const RoamSizeClass,
    num_classes: usize,
) -> u64 {
    ffi_guard(0, || {
        let f = "roam_var_slot_pool_calculate_size";
        // SAFETY: caller contract.
        let Some(classes) = (unsafe { classes_of(classes, num_classes, f) }) else {
            return 0;
        };
        calculate_size(&classes).unwrap_or_else(|| {
            set_last_error(format!("{f}: the pool size overflows"));
            0
        })
    })
}

/// Free a pool view (not the shared memory). NULL is accepted and ignored.
///
/// Not thread-safe with other calls on the same pool.
///
/// # Safety
/// `pool` is NULL or a live pointer from `roam_var_slot_pool_attach`, not used again
/// afterwards (a second destroy of the same pointer is undefined behaviour).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_var_slot_pool_destroy(pool: *mut RoamVarSlotPool) {
    ffi_guard((), || {
        if !pool.is_null() {
            // SAFETY: from Box::into_raw in attach, not freed before (contract).
            drop(unsafe { Box::from_raw(pool) });
        }
    })
}
