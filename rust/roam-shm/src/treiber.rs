//! Lock-free fixed-size slot allocator in shared memory: a Treiber stack of free slots.
//!
//! # Layout (all offsets from the start of the slab, 64-byte aligned)
//! - `0`: [`TreiberSlabHeader`] (64 bytes): `slot_size` u32 @0, `slot_count` u32 @4,
//!   reserved u64 @8, `free_head` u64 @16, `free_count` u32 @24.
//! - `64`: `slot_count` [`SlotMeta`]s (8 bytes each).
//! - next multiple of 64: `slot_count` free-list links (`u32` each: the index of the
//!   next free slot, `u32::MAX` = end).
//! - next multiple of 64: the slot data, `slot_size` bytes per slot; slot `i` at
//!   `data + i * slot_size`.
//!
//! The links live outside the slot data so that a stale reader of a link (a popper that
//! lost the race) never races with the new owner writing the slot's bytes.
//!
//! # Free list
//! `free_head` packs the index of the top free slot in its low 32 bits (`u32::MAX` =
//! empty) and an ABA tag in its high 32 bits, bumped by every successful CAS, so a
//! popper that read `(i, tag)` and `next = link[i]` cannot succeed after `i` was popped
//! and pushed back in between.
//!
//! # Ownership
//! A [`SlotHandle`] is `(index, generation)`. The generation is even while the slot is
//! free and odd while it is allocated: `alloc` bumps it (first allocation: 1) and `free`
//! bumps it again with a single CAS from the handle's generation, which is the one
//! linearisation point of a free: of two concurrent frees of a handle exactly one
//! wins, and a stale handle (of an earlier allocation of the slot) can never free the
//! current one. Generations wrap after 2^31 reuses of one slot.
//!
//! # A peer can be broken
//! Indices read from shared memory (head, links) are range-checked; a bad one ends the
//! allocation with [`AllocResult::Corrupt`], never an out-of-bounds access. A peer can
//! still break the *logic* (e.g. push a slot twice) but never this process's memory
//! safety.

use core::fmt;
use core::ptr;

use crate::region::{Region, RegionError};
use crate::slot::{SlotMeta, SlotState};
use crate::sync::{self, Ordering};

use crate::sync::{AtomicU32, AtomicU64};

/// End of the free list / empty stack.
pub const FREE_LIST_END: u32 = u32::MAX;

/// Shared header of a slab (64 bytes, 64-byte aligned; see the module docs).
#[repr(C, align(64))]
pub struct TreiberSlabHeader {
    slot_size: AtomicU32,
    slot_count: AtomicU32,
    _reserved: u64,
    free_head: AtomicU64,
    free_count: AtomicU32,
}

#[cfg(not(feature = "loom"))]
const _: () = {
    use core::mem::offset_of;
    assert!(size_of::<TreiberSlabHeader>() == 64);
    assert!(align_of::<TreiberSlabHeader>() == 64);
    assert!(offset_of!(TreiberSlabHeader, slot_size) == 0);
    assert!(offset_of!(TreiberSlabHeader, slot_count) == 4);
    assert!(offset_of!(TreiberSlabHeader, free_head) == 16);
    assert!(offset_of!(TreiberSlabHeader, free_count) == 24);
};

#[inline]
fn pack(index: u32, tag: u32) -> u64 {
    (u64::from(tag) << 32) | u64::from(index)
}

#[inline]
fn unpack(head: u64) -> (u32, u32) {
    (head as u32, (head >> 32) as u32)
}

/// `AcqRel`, or `Relaxed` when a loom test seeded the ordering bug (derived from the
/// [`sync`] facade so the seeded bug weakens the CAS too).
#[inline]
fn acq_rel() -> Ordering {
    if sync::observe() == Ordering::Relaxed {
        Ordering::Relaxed
    } else {
        Ordering::AcqRel
    }
}

/// Handle to an allocated slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SlotHandle {
    /// Slot index.
    pub index: u32,
    /// Generation of the allocation (odd).
    pub generation: u32,
}

/// Outcome of [`TreiberSlab::alloc`].
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocResult {
    /// A slot, now owned by the caller.
    Ok(SlotHandle),
    /// No free slot (back-pressure).
    Exhausted,
    /// The free list in shared memory is corrupt (an index out of range); nothing was
    /// allocated.
    Corrupt(SlotError),
}

impl AllocResult {
    /// The handle, if a slot was allocated.
    #[inline]
    pub fn ok(self) -> Option<SlotHandle> {
        match self {
            AllocResult::Ok(h) => Some(h),
            _ => None,
        }
    }
}

/// Errors of [`TreiberSlab::free`]. The free list is untouched when one is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FreeError {
    /// This allocation was already freed (and the slot not reallocated since).
    #[error("slot {index} (generation {generation}) was already freed")]
    DoubleFree {
        /// Slot index.
        index: u32,
        /// Generation of the handle.
        generation: u32,
    },
    /// The handle is not the slot's current allocation (freed and reallocated since, or
    /// never issued).
    #[error("slot {index}: handle generation {handle} but the slot is at {current}")]
    StaleGeneration {
        /// Slot index.
        index: u32,
        /// Generation of the handle.
        handle: u32,
        /// Current generation of the slot.
        current: u32,
    },
    /// The index is not a slot of this slab.
    #[error("slot index {index} out of range (slot count {slot_count})")]
    OutOfRange {
        /// Slot index.
        index: u32,
        /// Number of slots.
        slot_count: u32,
    },
}

/// Errors of the slab other than freeing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SlotError {
    /// `slot_count` must be in `1..u32::MAX` and `slot_size` non-zero.
    #[error("invalid slab geometry: {slot_count} slots of {slot_size} bytes")]
    InvalidConfig {
        /// Number of slots.
        slot_count: u32,
        /// Slot size in bytes.
        slot_size: u32,
    },
    /// The memory is too small for the slab.
    #[error("slab needs {needed} bytes but only {available} are available")]
    RegionTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// The slab base is not 64-byte aligned.
    #[error("slab at {addr:#x} is not 64-byte aligned")]
    Misaligned {
        /// Address of the slab.
        addr: usize,
    },
    /// The index is not a slot of this slab.
    #[error("slot index {index} out of range (slot count {slot_count})")]
    OutOfRange {
        /// Slot index.
        index: u32,
        /// Number of slots.
        slot_count: u32,
    },
    /// The handle is not the slot's current allocation.
    #[error("slot {index}: handle generation {handle} but the slot is at {current}")]
    StaleGeneration {
        /// Slot index.
        index: u32,
        /// Generation of the handle.
        handle: u32,
        /// Current generation of the slot.
        current: u32,
    },
    /// The slot is not in a state that allows the operation (the raw state word).
    #[error("slot {index} is in state {state}, which does not allow this operation")]
    InvalidState {
        /// Slot index.
        index: u32,
        /// Raw state word.
        state: u32,
    },
    /// The free list holds an index out of range.
    #[error("free list is corrupt: index {index} out of range (slot count {slot_count})")]
    CorruptFreeList {
        /// The offending index.
        index: u32,
        /// Number of slots.
        slot_count: u32,
    },
}

/// Byte offsets of the parts of a slab.
#[derive(Debug, Clone, Copy)]
struct SlabLayout {
    metas: usize,
    links: usize,
    data: usize,
    total: usize,
}

const fn align64(x: usize) -> Option<usize> {
    match x.checked_add(63) {
        Some(v) => Some(v & !63),
        None => None,
    }
}

impl SlabLayout {
    fn new(slot_count: u32, slot_size: u32) -> Option<SlabLayout> {
        let n = slot_count as usize;
        let metas = size_of::<TreiberSlabHeader>();
        let links = align64(metas.checked_add(n.checked_mul(size_of::<SlotMeta>())?)?)?;
        let data = align64(links.checked_add(n.checked_mul(size_of::<AtomicU32>())?)?)?;
        let total = data.checked_add(n.checked_mul(slot_size as usize)?)?;
        Some(SlabLayout {
            metas,
            links,
            data,
            total,
        })
    }
}

fn check_config(slot_count: u32, slot_size: u32) -> Result<SlabLayout, SlotError> {
    let bad = SlotError::InvalidConfig {
        slot_count,
        slot_size,
    };
    if slot_count == 0 || slot_count == FREE_LIST_END || slot_size == 0 {
        return Err(bad);
    }
    SlabLayout::new(slot_count, slot_size).ok_or(bad)
}

/// Raw-pointer view of a slab; no lifetime, the caller keeps the memory mapped.
///
/// The geometry (`slot_count`, `slot_size`) is read once by [`init`](Self::init) or
/// [`attach`](Self::attach) and validated; a peer changing it later has no effect.
/// All operations are lock-free and may be called from any number of threads and
/// processes at once.
#[derive(Clone, Copy)]
pub struct TreiberSlabRaw {
    header: *mut TreiberSlabHeader,
    metas: *mut SlotMeta,
    links: *mut AtomicU32,
    data: *mut u8,
    slot_count: u32,
    slot_size: u32,
}

impl fmt::Debug for TreiberSlabRaw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TreiberSlabRaw")
            .field("header", &self.header)
            .field("slot_count", &self.slot_count)
            .field("slot_size", &self.slot_size)
            .finish()
    }
}

// SAFETY: the view only holds pointers into shared memory whose every shared field is
// an atomic; slot data is only handed out as raw pointers, owned via handles.
unsafe impl Send for TreiberSlabRaw {}
// SAFETY: all methods take &self and are safe to call concurrently (lock-free, atomics).
unsafe impl Sync for TreiberSlabRaw {}

impl TreiberSlabRaw {
    /// Bytes needed for a slab of `slot_count` slots of `slot_size` bytes (saturating
    /// at `usize::MAX`, which no region can satisfy).
    pub fn required_size(slot_count: u32, slot_size: u32) -> usize {
        SlabLayout::new(slot_count, slot_size).map_or(usize::MAX, |l| l.total)
    }

    /// Initialise a slab at `base`: every slot free, chained `0 → 1 → … → end`.
    /// Slot data is left as it is.
    ///
    /// # Safety
    /// `base` must be valid for reads and writes of `len` bytes for as long as the
    /// returned view or anything derived from it is used, and no other party may access
    /// the slab while it is being initialised.
    pub unsafe fn init(
        base: *mut u8,
        len: usize,
        slot_count: u32,
        slot_size: u32,
    ) -> Result<Self, SlotError> {
        let layout = check_config(slot_count, slot_size)?;
        let raw = Self::view(base, len, layout, slot_count, slot_size)?;
        for i in 0..slot_count {
            let next = if i + 1 == slot_count {
                FREE_LIST_END
            } else {
                i + 1
            };
            // SAFETY: i < slot_count, so both elements are inside the arrays, which lie
            // inside `len` bytes (view checked the layout); they are suitably aligned
            // (64-aligned array starts, 4-aligned element sizes); nobody else accesses
            // the slab during init (caller).
            unsafe {
                ptr::write(raw.metas.add(i as usize), SlotMeta::new());
                ptr::write(raw.links.add(i as usize), AtomicU32::new(next));
            }
        }
        let header = TreiberSlabHeader {
            slot_size: AtomicU32::new(slot_size),
            slot_count: AtomicU32::new(slot_count),
            _reserved: 0,
            free_head: AtomicU64::new(pack(0, 0)),
            free_count: AtomicU32::new(slot_count),
        };
        // SAFETY: base is 64-aligned and holds the header (view checked); exclusive
        // during init (caller).
        unsafe { ptr::write(raw.header, header) };
        Ok(raw)
    }

    /// View a slab initialised by another party, validating its header against the
    /// `len` bytes at `base`.
    ///
    /// # Safety
    /// `base` must be valid for reads and writes of `len` bytes for as long as the
    /// returned view or anything derived from it is used, and must have been
    /// initialised by [`init`](Self::init) (later scribbles are detected, not trusted).
    pub unsafe fn attach(base: *mut u8, len: usize) -> Result<Self, SlotError> {
        let header_size = size_of::<TreiberSlabHeader>();
        check_aligned(base)?;
        if len < header_size {
            return Err(SlotError::RegionTooSmall {
                needed: header_size,
                available: len,
            });
        }
        let header = base.cast::<TreiberSlabHeader>();
        // SAFETY: base is aligned and holds a whole header (checked); atomics may be
        // shared with concurrent writers.
        let (size_field, count_field) = unsafe {
            (
                &*ptr::addr_of!((*header).slot_size),
                &*ptr::addr_of!((*header).slot_count),
            )
        };
        // Relaxed: the initialised header reached us with the mapping (thread spawn or a
        // file created before it was passed on); this is just a well-defined read.
        let slot_size = size_field.load(Ordering::Relaxed);
        // Relaxed: as above.
        let slot_count = count_field.load(Ordering::Relaxed);
        let layout = check_config(slot_count, slot_size)?;
        let raw = Self::view(base, len, layout, slot_count, slot_size)?;
        // observe(): pairs with the publish() CAS of the last free; only a sanity check.
        let (head, _) = unpack(raw.free_head().load(sync::observe()));
        if head != FREE_LIST_END && head >= slot_count {
            return Err(SlotError::CorruptFreeList {
                index: head,
                slot_count,
            });
        }
        Ok(raw)
    }

    fn view(
        base: *mut u8,
        len: usize,
        layout: SlabLayout,
        slot_count: u32,
        slot_size: u32,
    ) -> Result<Self, SlotError> {
        check_aligned(base)?;
        if layout.total > len {
            return Err(SlotError::RegionTooSmall {
                needed: layout.total,
                available: len,
            });
        }
        Ok(TreiberSlabRaw {
            header: base.cast(),
            metas: base.wrapping_add(layout.metas).cast(),
            links: base.wrapping_add(layout.links).cast(),
            data: base.wrapping_add(layout.data),
            slot_count,
            slot_size,
        })
    }

    /// Number of slots.
    #[inline]
    pub fn slot_count(&self) -> u32 {
        self.slot_count
    }

    /// Size of each slot's data in bytes.
    #[inline]
    pub fn slot_size(&self) -> u32 {
        self.slot_size
    }

    #[inline]
    fn free_head(&self) -> &AtomicU64 {
        // SAFETY: the header is valid and aligned for the view's lifetime (init/attach
        // contract); only the atomic field is referenced.
        unsafe { &*ptr::addr_of!((*self.header).free_head) }
    }

    #[inline]
    fn free_counter(&self) -> &AtomicU32 {
        // SAFETY: as in free_head.
        unsafe { &*ptr::addr_of!((*self.header).free_count) }
    }

    /// Metadata of slot `i`; `i < slot_count` is checked by every caller.
    #[inline]
    fn meta(&self, i: u32) -> &SlotMeta {
        debug_assert!(i < self.slot_count);
        // SAFETY: i < slot_count (callers check), so the element is inside the metas
        // array, valid and aligned for the view's lifetime; SlotMeta is all atomics.
        unsafe { &*self.metas.add(i as usize) }
    }

    /// Free-list link of slot `i`; `i < slot_count` is checked by every caller.
    #[inline]
    fn link(&self, i: u32) -> &AtomicU32 {
        debug_assert!(i < self.slot_count);
        // SAFETY: as in meta, for the links array.
        unsafe { &*self.links.add(i as usize) }
    }

    /// Take a free slot (lock-free).
    pub fn alloc(&self) -> AllocResult {
        // observe(): pairs with the publish() CAS of the free that pushed the top slot:
        // its link store, and the previous owner's data accesses, happen-before ours.
        let mut head = self.free_head().load(sync::observe());
        let index = loop {
            let (index, tag) = unpack(head);
            if index == FREE_LIST_END {
                return AllocResult::Exhausted;
            }
            if index >= self.slot_count {
                return AllocResult::Corrupt(SlotError::CorruptFreeList {
                    index,
                    slot_count: self.slot_count,
                });
            }
            // Relaxed: made visible by the acquire of `head` above (the pusher stored the
            // link before its publish() CAS); if it is stale, the CAS below fails.
            let next = self.link(index).load(Ordering::Relaxed);
            if next != FREE_LIST_END && next >= self.slot_count {
                return AllocResult::Corrupt(SlotError::CorruptFreeList {
                    index: next,
                    slot_count: self.slot_count,
                });
            }
            match self.free_head().compare_exchange_weak(
                head,
                pack(next, tag.wrapping_add(1)),
                // acq_rel(): Acquire re-asserts the acquire of the store we read `head`
                // from; Release keeps the release sequence of the free list explicit
                // for the next popper (an RMW continues it anyway).
                acq_rel(),
                // observe(): on failure we retry with the value read here and load its
                // link, so it must acquire like the initial load.
                sync::observe(),
            ) {
                Ok(_) => break index,
                Err(actual) => head = actual,
            }
        };
        let meta = self.meta(index);
        // Relaxed: we own the slot (it is off the list); whoever learns the handle does
        // so through a later synchronising hand-off, and the Release store of the state
        // below orders this for a concurrent stale mark_in_flight.
        let mut generation = meta
            .generation
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1);
        if generation & 1 == 0 {
            // A free slot had an odd generation: a broken peer. We own the slot, so
            // restore the invariant rather than hand out an unfreeable handle.
            // Relaxed: as above.
            generation = meta
                .generation
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_add(1);
        }
        // Release: pairs with the Acquire state CAS in mark_in_flight, so a stale handle
        // that sees Allocated also sees the new generation on its re-check.
        meta.state
            .store(SlotState::Allocated.as_u32(), Ordering::Release);
        // Relaxed: an approximate diagnostic counter.
        self.free_counter().fetch_sub(1, Ordering::Relaxed);
        AllocResult::Ok(SlotHandle { index, generation })
    }

    /// Return a slot to the free list (lock-free). Exactly one of any number of
    /// concurrent frees of a handle succeeds; a stale handle never frees the slot's
    /// current allocation.
    pub fn free(&self, handle: SlotHandle) -> Result<(), FreeError> {
        let SlotHandle { index, generation } = handle;
        if index >= self.slot_count {
            return Err(FreeError::OutOfRange {
                index,
                slot_count: self.slot_count,
            });
        }
        let meta = self.meta(index);
        if generation & 1 == 0 {
            // Relaxed: only reported.
            let current = meta.generation.load(Ordering::Relaxed);
            return Err(FreeError::StaleGeneration {
                index,
                handle: generation,
                current,
            });
        }
        // Relaxed: the CAS only decides who frees this allocation (coherence of one
        // location suffices); the data hand-off to the next owner goes through the
        // free list's publish()/observe() below.
        if let Err(current) = meta.generation.compare_exchange(
            generation,
            generation.wrapping_add(1),
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            return Err(if current == generation.wrapping_add(1) {
                FreeError::DoubleFree { index, generation }
            } else {
                FreeError::StaleGeneration {
                    index,
                    handle: generation,
                    current,
                }
            });
        }
        // Relaxed: ordered before the next allocator's accesses by the publish() CAS.
        meta.state
            .store(SlotState::Free.as_u32(), Ordering::Relaxed);
        // Relaxed: an approximate diagnostic counter (incremented before the push so it
        // never dips below the true count).
        self.free_counter().fetch_add(1, Ordering::Relaxed);
        // Relaxed: we only need some recent value to link to; the CAS validates it.
        let mut head = self.free_head().load(Ordering::Relaxed);
        loop {
            let (top, tag) = unpack(head);
            // Relaxed: published by the publish() CAS below.
            self.link(index).store(top, Ordering::Relaxed);
            match self.free_head().compare_exchange_weak(
                head,
                pack(index, tag.wrapping_add(1)),
                // publish(): pairs with alloc's observe() load/CAS of the head: our link
                // store, state store and the owner's data accesses happen-before the
                // next allocation of this slot.
                sync::publish(),
                // Relaxed: on failure we only relink to the new value.
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(actual) => head = actual,
            }
        }
    }

    /// Mark an allocated slot as in flight (handed to the peer). Only `Allocated` slots
    /// can be marked.
    ///
    /// With a stale handle racing a reallocation, the current owner may transiently
    /// see [`SlotError::InvalidState`] from its own `mark_in_flight`; frees are not
    /// affected (they are decided by the generation alone).
    pub fn mark_in_flight(&self, handle: SlotHandle) -> Result<(), SlotError> {
        let meta = self.checked_meta(handle)?;
        // Acquire: pairs with alloc's Release state store, so the re-check below sees
        // the generation of the allocation whose `Allocated` we replaced.
        if let Err(state) = meta.state.compare_exchange(
            SlotState::Allocated.as_u32(),
            SlotState::InFlight.as_u32(),
            Ordering::Acquire,
            Ordering::Relaxed,
        ) {
            return Err(SlotError::InvalidState {
                index: handle.index,
                state,
            });
        }
        // Relaxed: ordered after the state CAS's acquire (see above).
        let current = meta.generation.load(Ordering::Relaxed);
        if current != handle.generation {
            // We marked a newer allocation of the slot: undo (if its owner has not moved
            // on already) and report.
            // Relaxed: a single-location undo.
            let _ = meta.state.compare_exchange(
                SlotState::InFlight.as_u32(),
                SlotState::Allocated.as_u32(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            return Err(SlotError::StaleGeneration {
                index: handle.index,
                handle: handle.generation,
                current,
            });
        }
        Ok(())
    }

    /// State of the slot of a current handle (diagnostics).
    pub fn slot_state(&self, handle: SlotHandle) -> Result<SlotState, SlotError> {
        let meta = self.checked_meta(handle)?;
        // Relaxed: a diagnostic snapshot.
        let state = meta.state.load(Ordering::Relaxed);
        SlotState::from_u32(state).ok_or(SlotError::InvalidState {
            index: handle.index,
            state,
        })
    }

    /// Data pointer of the slot of a current handle (`slot_size` bytes, aligned to the
    /// largest power of two dividing both 64 and `slot_size`). The pointer is
    /// meaningful while the caller owns the handle; it is process-local (never store it
    /// in shared memory).
    pub fn slot_ptr(&self, handle: SlotHandle) -> Result<*mut u8, SlotError> {
        self.checked_meta(handle)?;
        let offset = handle.index as usize * self.slot_size as usize;
        // SAFETY: index < slot_count, so offset + slot_size <= slot_count * slot_size,
        // which lies inside the slab (layout checked at init/attach).
        Ok(unsafe { self.data.add(offset) })
    }

    /// Range and generation check of a handle.
    fn checked_meta(&self, handle: SlotHandle) -> Result<&SlotMeta, SlotError> {
        if handle.index >= self.slot_count {
            return Err(SlotError::OutOfRange {
                index: handle.index,
                slot_count: self.slot_count,
            });
        }
        let meta = self.meta(handle.index);
        // Relaxed: validation only; the caller's ownership of the handle (received
        // through a synchronising hand-off) is what orders its data accesses.
        let current = meta.generation.load(Ordering::Relaxed);
        if current != handle.generation || current & 1 == 0 {
            return Err(SlotError::StaleGeneration {
                index: handle.index,
                handle: handle.generation,
                current,
            });
        }
        Ok(meta)
    }

    /// Approximate number of free slots (diagnostics; clamped to the slot count).
    pub fn free_count(&self) -> u32 {
        // Relaxed: a diagnostic snapshot.
        self.free_counter()
            .load(Ordering::Relaxed)
            .min(self.slot_count)
    }
}

fn check_aligned(base: *mut u8) -> Result<(), SlotError> {
    let addr = base as usize;
    if addr == 0 || addr % align_of::<TreiberSlabHeader>() != 0 {
        return Err(SlotError::Misaligned { addr });
    }
    Ok(())
}

/// A slab over a borrowed [`Region`] (a thin, copyable wrapper of [`TreiberSlabRaw`]).
///
/// ```
/// use roam_shm::region::HeapRegion;
/// use roam_shm::treiber::{AllocResult, TreiberSlab};
///
/// let region = HeapRegion::new_zeroed(TreiberSlab::required_size(4, 256));
/// let slab = TreiberSlab::init(region.region(), 4, 256).unwrap();
/// let AllocResult::Ok(h) = slab.alloc() else { panic!("empty") };
/// let p = slab.slot_ptr(h).unwrap();
/// // SAFETY: we own the slot; it has 256 bytes.
/// unsafe { p.write_bytes(7, 256) };
/// slab.free(h).unwrap();
/// assert!(slab.free(h).is_err()); // double free is detected
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TreiberSlab<'a> {
    raw: TreiberSlabRaw,
    _region: core::marker::PhantomData<Region<'a>>,
}

impl<'a> TreiberSlab<'a> {
    /// Bytes a region needs for the slab (saturating).
    pub fn required_size(slot_count: u32, slot_size: u32) -> usize {
        TreiberSlabRaw::required_size(slot_count, slot_size)
    }

    /// Initialise a slab at the start of `region`. Must happen before any other party
    /// attaches.
    pub fn init(region: Region<'a>, slot_count: u32, slot_size: u32) -> Result<Self, SlotError> {
        let layout = check_config(slot_count, slot_size)?;
        let base = base_ptr(&region, layout.total)?;
        // SAFETY: the region is valid for 'a and holds layout.total bytes at base
        // (checked); the caller initialises before sharing.
        let raw = unsafe { TreiberSlabRaw::init(base, region.len(), slot_count, slot_size)? };
        Ok(TreiberSlab {
            raw,
            _region: core::marker::PhantomData,
        })
    }

    /// Attach to a slab initialised at the start of `region`, validating its header.
    pub fn attach(region: Region<'a>) -> Result<Self, SlotError> {
        let base = base_ptr(&region, size_of::<TreiberSlabHeader>())?;
        // SAFETY: the region is valid for 'a with region.len() bytes at base.
        let raw = unsafe { TreiberSlabRaw::attach(base, region.len())? };
        Ok(TreiberSlab {
            raw,
            _region: core::marker::PhantomData,
        })
    }

    /// See [`TreiberSlabRaw::alloc`].
    #[inline]
    pub fn alloc(&self) -> AllocResult {
        self.raw.alloc()
    }

    /// See [`TreiberSlabRaw::free`].
    #[inline]
    pub fn free(&self, handle: SlotHandle) -> Result<(), FreeError> {
        self.raw.free(handle)
    }

    /// See [`TreiberSlabRaw::mark_in_flight`].
    pub fn mark_in_flight(&self, handle: SlotHandle) -> Result<(), SlotError> {
        self.raw.mark_in_flight(handle)
    }

    /// See [`TreiberSlabRaw::slot_state`].
    pub fn slot_state(&self, handle: SlotHandle) -> Result<SlotState, SlotError> {
        self.raw.slot_state(handle)
    }

    /// See [`TreiberSlabRaw::slot_ptr`].
    #[inline]
    pub fn slot_ptr(&self, handle: SlotHandle) -> Result<*mut u8, SlotError> {
        self.raw.slot_ptr(handle)
    }

    /// See [`TreiberSlabRaw::free_count`].
    pub fn free_count(&self) -> u32 {
        self.raw.free_count()
    }

    /// Number of slots.
    pub fn slot_count(&self) -> u32 {
        self.raw.slot_count()
    }

    /// Size of each slot in bytes.
    pub fn slot_size(&self) -> u32 {
        self.raw.slot_size()
    }

    /// The raw view.
    pub fn raw(&self) -> &TreiberSlabRaw {
        &self.raw
    }
}

fn base_ptr(region: &Region<'_>, needed: usize) -> Result<*mut u8, SlotError> {
    region
        .check(0, needed)
        .map_err(|_| SlotError::RegionTooSmall {
            needed,
            available: region.len(),
        })?;
    region
        .typed_ptr::<TreiberSlabHeader>(0)
        .map(|p| p.cast::<u8>())
        .map_err(|e| match e {
            RegionError::Misaligned { .. } => SlotError::Misaligned {
                addr: region.as_ptr() as usize,
            },
            RegionError::OutOfBounds { .. } => SlotError::RegionTooSmall {
                needed,
                available: region.len(),
            },
        })
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;
    use crate::region::HeapRegion;
    use std::collections::HashSet;

    fn slab(region: &HeapRegion, n: u32, size: u32) -> TreiberSlab<'_> {
        TreiberSlab::init(region.region(), n, size).unwrap()
    }

    #[test]
    fn layout() {
        // 64 header + 8*4 metas -> 128, + 4*4 links -> 192, + 4*100 data.
        assert_eq!(TreiberSlab::required_size(4, 100), 192 + 400);
        assert_eq!(
            TreiberSlab::required_size(u32::MAX - 1, u32::MAX),
            usize::MAX
        );
        assert_eq!(pack(5, 7), (7 << 32) | 5);
        assert_eq!(unpack(pack(5, 7)), (5, 7));
    }

    #[test]
    fn init_and_attach_validate() {
        let r = HeapRegion::new_zeroed(4096);
        assert!(matches!(
            TreiberSlab::init(r.region(), 0, 8),
            Err(SlotError::InvalidConfig { .. })
        ));
        assert!(matches!(
            TreiberSlab::init(r.region(), 4, 0),
            Err(SlotError::InvalidConfig { .. })
        ));
        assert!(matches!(
            TreiberSlab::init(r.region(), u32::MAX, 1),
            Err(SlotError::InvalidConfig { .. })
        ));
        assert!(matches!(
            TreiberSlab::init(r.region(), 100, 64),
            Err(SlotError::RegionTooSmall { .. })
        ));
        assert!(matches!(
            TreiberSlab::init(r.region().sub(4, 1024).unwrap(), 2, 8),
            Err(SlotError::Misaligned { .. })
        ));
        // Zeroed memory does not attach.
        assert!(matches!(
            TreiberSlab::attach(r.region()),
            Err(SlotError::InvalidConfig { .. })
        ));
        slab(&r, 8, 64);
        let a = TreiberSlab::attach(r.region()).unwrap();
        assert_eq!((a.slot_count(), a.slot_size(), a.free_count()), (8, 64, 8));
        let short = r
            .region()
            .sub(0, TreiberSlab::required_size(8, 64) - 1)
            .unwrap();
        assert!(matches!(
            TreiberSlab::attach(short),
            Err(SlotError::RegionTooSmall { .. })
        ));
        // A corrupt head is refused at attach.
        // SAFETY: offset 16 is free_head, plain bytes outside loom; nobody else uses it.
        unsafe { r.region().as_ptr().add(16).cast::<u64>().write(pack(8, 0)) };
        assert!(matches!(
            TreiberSlab::attach(r.region()),
            Err(SlotError::CorruptFreeList { index: 8, .. })
        ));
    }

    #[test]
    fn alloc_all_then_exhausted_then_reuse() {
        let r = HeapRegion::new_zeroed(TreiberSlab::required_size(4, 16));
        let s = slab(&r, 4, 16);
        let hs: Vec<_> = (0..4).map(|_| s.alloc().ok().unwrap()).collect();
        let idx: HashSet<_> = hs.iter().map(|h| h.index).collect();
        assert_eq!(idx.len(), 4);
        assert!(hs.iter().all(|h| h.generation == 1));
        assert_eq!(s.alloc(), AllocResult::Exhausted);
        assert_eq!(s.free_count(), 0);
        let ptrs: HashSet<_> = hs
            .iter()
            .map(|&h| s.slot_ptr(h).unwrap() as usize)
            .collect();
        assert_eq!(ptrs.len(), 4);
        s.free(hs[2]).unwrap();
        let h = s.alloc().ok().unwrap();
        assert_eq!((h.index, h.generation), (hs[2].index, 3));
        assert_eq!(
            s.slot_ptr(h).unwrap() as usize,
            s.slot_ptr(hs[3]).unwrap() as usize - 16
        );
    }

    #[test]
    fn free_errors_leave_the_list_intact() {
        let r = HeapRegion::new_zeroed(TreiberSlab::required_size(2, 8));
        let s = slab(&r, 2, 8);
        let a = s.alloc().ok().unwrap();
        s.free(a).unwrap();
        assert_eq!(
            s.free(a),
            Err(FreeError::DoubleFree {
                index: a.index,
                generation: 1
            })
        );
        let b = s.alloc().ok().unwrap();
        assert_eq!(b.index, a.index);
        // a is now stale: it must not free b's allocation.
        assert!(matches!(
            s.free(a),
            Err(FreeError::StaleGeneration { current: 3, .. })
        ));
        assert!(matches!(
            s.free(SlotHandle {
                index: 2,
                generation: 1
            }),
            Err(FreeError::OutOfRange { .. })
        ));
        // A forged even generation matching a free slot is refused.
        let other = 1 - a.index;
        assert!(matches!(
            s.free(SlotHandle {
                index: other,
                generation: 0
            }),
            Err(FreeError::StaleGeneration { .. })
        ));
        assert_eq!(s.free_count(), 1);
        let c = s.alloc().ok().unwrap();
        assert_eq!(c.index, other);
        assert_eq!(s.alloc(), AllocResult::Exhausted);
        s.free(b).unwrap();
        s.free(c).unwrap();
        assert_eq!(s.free_count(), 2);
    }

    #[test]
    fn states_and_in_flight() {
        let r = HeapRegion::new_zeroed(TreiberSlab::required_size(2, 8));
        let s = slab(&r, 2, 8);
        let h = s.alloc().ok().unwrap();
        assert_eq!(s.slot_state(h), Ok(SlotState::Allocated));
        s.mark_in_flight(h).unwrap();
        assert_eq!(s.slot_state(h), Ok(SlotState::InFlight));
        assert!(matches!(
            s.mark_in_flight(h),
            Err(SlotError::InvalidState { state: 2, .. })
        ));
        s.free(h).unwrap();
        assert!(matches!(
            s.slot_state(h),
            Err(SlotError::StaleGeneration { .. })
        ));
        assert!(matches!(
            s.mark_in_flight(h),
            Err(SlotError::StaleGeneration { .. })
        ));
        assert!(matches!(
            s.slot_ptr(h),
            Err(SlotError::StaleGeneration { .. })
        ));
        assert!(matches!(
            s.slot_ptr(SlotHandle {
                index: 9,
                generation: 1
            }),
            Err(SlotError::OutOfRange { .. })
        ));
    }

    #[test]
    fn corrupt_links_end_alloc_with_an_error() {
        let r = HeapRegion::new_zeroed(TreiberSlab::required_size(4, 8));
        let s = slab(&r, 4, 8);
        // SAFETY: links start at offset 128 (64 header + 4*8 metas, aligned to 64);
        // link[0] := 77, plain bytes outside loom.
        unsafe { r.region().as_ptr().add(128).cast::<u32>().write(77) };
        assert_eq!(
            s.alloc(),
            AllocResult::Corrupt(SlotError::CorruptFreeList {
                index: 77,
                slot_count: 4
            })
        );
        // SAFETY: offset 16 is free_head.
        unsafe {
            r.region()
                .as_ptr()
                .add(16)
                .cast::<u64>()
                .write(pack(1_000_000, 3))
        };
        assert!(matches!(s.alloc(), AllocResult::Corrupt(_)));
        // SAFETY: as above: an empty list.
        unsafe {
            r.region()
                .as_ptr()
                .add(16)
                .cast::<u64>()
                .write(pack(FREE_LIST_END, 3))
        };
        assert_eq!(s.alloc(), AllocResult::Exhausted);
    }

    #[test]
    fn odd_generation_on_free_slot_is_repaired() {
        let r = HeapRegion::new_zeroed(TreiberSlab::required_size(1, 8));
        let s = slab(&r, 1, 8);
        // SAFETY: metas start at 64; generation of slot 0 := 5 (odd while free).
        unsafe { r.region().as_ptr().add(64).cast::<u32>().write(5) };
        let h = s.alloc().ok().unwrap();
        assert_eq!(h.generation & 1, 1);
        s.free(h).unwrap();
    }

    #[test]
    fn threads_never_share_a_slot() {
        const SLOTS: u32 = 8;
        let r = HeapRegion::new_zeroed(TreiberSlab::required_size(SLOTS, 8));
        let s = slab(&r, SLOTS, 8);
        std::thread::scope(|sc| {
            for t in 0..4u64 {
                sc.spawn(move || {
                    for i in 0..20_000u64 {
                        let AllocResult::Ok(h) = s.alloc() else {
                            std::thread::yield_now();
                            continue;
                        };
                        let p = s.slot_ptr(h).unwrap().cast::<u64>();
                        let tagv = (t << 32) | i;
                        // SAFETY: we own the slot (8 bytes, 8-aligned: slot_size 8).
                        unsafe { p.write_volatile(tagv) };
                        std::hint::spin_loop();
                        // SAFETY: as above.
                        assert_eq!(unsafe { p.read_volatile() }, tagv, "slot shared");
                        s.free(h).unwrap();
                    }
                });
            }
        });
        assert_eq!(s.free_count(), SLOTS);
        let all: HashSet<_> = (0..SLOTS).map(|_| s.alloc().ok().unwrap().index).collect();
        assert_eq!(all.len(), SLOTS as usize);
    }
}
