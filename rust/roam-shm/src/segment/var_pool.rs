//! The shared variable-size slot pool (VarSlotPool), roam v7 layout (notes §5).
//!
//! Layout at `var_pool_offset` (64-aligned): `num_classes` × 64-byte
//! [`SizeClassHeader`]s, then for each class its meta array (16 B × count, rounded up
//! to 64) followed by its data (slot_size × count, rounded up to 64).
//!
//! ## Protocol (byte- and behaviour-compatible with roam 7.x)
//! Each class keeps a Treiber stack of free slots: the header's `free_head` packs the
//! top slot index (low 32 bits, [`FREE_LIST_END`] when empty) with an ABA tag (high
//! 32 bits, incremented by every successful CAS), and each free slot's
//! [`VarSlotMeta::next_free`] links to the next one. Allocation pops and then bumps the
//! slot's generation (the first allocation is generation 1); free checks the handle's
//! generation, marks the slot Free and pushes it back.
//!
//! ## Trust model
//! The pool lives in memory that other processes write, and a peer may be buggy or
//! hostile. Everything read back from shared memory is treated as untrusted: the class
//! table is read once at attach time, validated and cached, and every index or link
//! read later (the free-list head, `next_free`, handles received from peers) is
//! range-checked before use. A corrupt free list makes an allocation fail with
//! [`VarPoolError::Corrupt`] (or `None` from [`RawVarSlotPool::alloc`]); it never causes
//! an out-of-bounds access, and no traversal runs for more than `slot_count` steps.
//! Unlike roam, the state and generation transitions are compare-and-swaps, so two
//! racing frees of one handle cannot push a slot twice.
//!
//! ## Raw vs Region API
//! [`RawVarSlotPool`] works on a raw `(pointer, length, base offset)` triple that can be
//! re-pointed after a remap ([`RawVarSlotPool::update_region`]); this is what the C ABI
//! wraps. [`VarSlotPool`] borrows a [`Region`] and derefs to the raw pool.

use std::marker::PhantomData;
use std::mem::size_of;
use std::ops::Deref;
use std::ptr;

use crate::region::Region;
use crate::sync::{self, AtomicU32, AtomicU64, Ordering};

/// Size of one size-class header in shared memory: 64 bytes (larger only under the
/// `loom` test feature, where atomics are not plain bytes).
pub const SIZE_CLASS_HEADER_SIZE: u64 = size_of::<SizeClassHeader>() as u64;
/// Size of one slot's metadata entry in shared memory: 16 bytes (larger only under
/// the `loom` test feature).
pub const VAR_SLOT_META_SIZE: u64 = size_of::<VarSlotMeta>() as u64;
/// Free-list index meaning "end of list" (an empty class when found in the head).
pub const FREE_LIST_END: u32 = u32::MAX;
/// Maximum number of size classes (a handle's `class_idx` is a `u8`).
pub const MAX_CLASSES: usize = 256;
/// Required alignment of the pool's start (roam asserts a 64-aligned pool offset).
pub const POOL_ALIGN: usize = 64;
/// A size class: `count` slots of `slot_size` bytes each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct SizeClass {
    /// Bytes per slot (including the 4-byte length prefix used by slot-ref frames).
    pub slot_size: u32,
    /// Number of slots in the class.
    pub count: u32,
}

/// Round `x` up to a multiple of 64 (`None` on overflow).
#[inline]
pub const fn align64(x: u64) -> Option<u64> {
    match x.checked_add(63) {
        Some(v) => Some(v & !63),
        None => None,
    }
}

/// Offsets of one class's meta array and data, relative to the pool start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassLayout {
    /// Offset of the class's `SizeClassHeader`.
    pub header_offset: u64,
    /// Offset of the class's meta array (16 B per slot).
    pub meta_offset: u64,
    /// Offset of the class's slot data (`slot_size` B per slot).
    pub data_offset: u64,
}

/// Compute every class's offsets and the pool's total size, or `None` when a size
/// overflows `u64`. This is the single place the pool layout formula lives.
pub fn pool_layout(classes: &[SizeClass]) -> Option<(Vec<ClassLayout>, u64)> {
    let n = classes.len() as u64;
    let mut off = n.checked_mul(SIZE_CLASS_HEADER_SIZE)?;
    let mut out = Vec::with_capacity(classes.len());
    for (i, c) in classes.iter().enumerate() {
        let meta_offset = off;
        let meta_len = align64(u64::from(c.count).checked_mul(VAR_SLOT_META_SIZE)?)?;
        let data_offset = meta_offset.checked_add(meta_len)?;
        let data_len = align64(u64::from(c.slot_size).checked_mul(u64::from(c.count))?)?;
        off = data_offset.checked_add(data_len)?;
        out.push(ClassLayout {
            header_offset: i as u64 * SIZE_CLASS_HEADER_SIZE,
            meta_offset,
            data_offset,
        });
    }
    Some((out, off))
}

/// Total size in bytes of a pool with these classes (roam's `calculate_size`);
/// `None` on overflow.
pub fn calculate_size(classes: &[SizeClass]) -> Option<u64> {
    pool_layout(classes).map(|(_, size)| size)
}

/// Pack a free-list head: slot index in the low 32 bits, ABA tag in the high 32 bits.
#[inline]
pub const fn pack_head(slot_idx: u32, tag: u32) -> u64 {
    ((tag as u64) << 32) | slot_idx as u64
}

/// Unpack a free-list head into `(slot_idx, tag)`.
#[inline]
pub const fn unpack_head(head: u64) -> (u32, u32) {
    (head as u32, (head >> 32) as u32)
}

/// Per-class header in shared memory (64 bytes).
#[repr(C)]
pub struct SizeClassHeader {
    /// Bytes per slot. Written once by `init`; never trusted without validation.
    pub slot_size: u32,
    /// Number of slots. Written once by `init`; never trusted without validation.
    pub slot_count: u32,
    /// Treiber stack head: [`pack_head`]`(slot_idx, aba_tag)`.
    pub free_head: AtomicU64,
    _pad: [u8; 48],
}

/// Per-slot metadata in shared memory (16 bytes).
#[repr(C)]
pub struct VarSlotMeta {
    /// Bumped by every allocation (the first allocation is 1).
    pub generation: AtomicU32,
    /// [`SlotState`] as a `u32`: 0 Free, 1 Allocated.
    pub state: AtomicU32,
    /// Peer id of the allocating peer (0 = host) while Allocated, else 0.
    pub owner_peer: AtomicU32,
    /// Next slot on the class's free list ([`FREE_LIST_END`] at the end).
    pub next_free: AtomicU32,
}

#[cfg(not(feature = "loom"))]
const _: () = {
    use std::mem::{align_of, offset_of};
    assert!(size_of::<SizeClassHeader>() == 64);
    assert!(offset_of!(SizeClassHeader, slot_size) == 0);
    assert!(offset_of!(SizeClassHeader, slot_count) == 4);
    assert!(offset_of!(SizeClassHeader, free_head) == 8);
    assert!(size_of::<VarSlotMeta>() == 16);
    assert!(offset_of!(VarSlotMeta, generation) == 0);
    assert!(offset_of!(VarSlotMeta, state) == 4);
    assert!(offset_of!(VarSlotMeta, owner_peer) == 8);
    assert!(offset_of!(VarSlotMeta, next_free) == 12);
    // The C ABI's RoamVarSlotHandle: offsets 0/1/4/8, 12 bytes, align 4.
    assert!(size_of::<VarSlotHandle>() == 12);
    assert!(align_of::<VarSlotHandle>() == 4);
    assert!(offset_of!(VarSlotHandle, class_idx) == 0);
    assert!(offset_of!(VarSlotHandle, extent_idx) == 1);
    assert!(offset_of!(VarSlotHandle, slot_idx) == 4);
    assert!(offset_of!(VarSlotHandle, generation) == 8);
};

/// State of a slot as stored in [`VarSlotMeta::state`] (roam has no InFlight in SHM).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum SlotState {
    /// On the free list.
    Free = 0,
    /// Handed out by an allocation and not freed yet.
    Allocated = 1,
}

/// A reference to one allocated slot: the body of a slot-ref frame (notes §4).
///
/// `#[repr(C)]` with the layout of the C ABI's `RoamVarSlotHandle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct VarSlotHandle {
    /// Size class index.
    pub class_idx: u8,
    /// Extent index; always 0 (roam v7 has no extents).
    pub extent_idx: u8,
    /// Slot index within the class.
    pub slot_idx: u32,
    /// Generation of the allocation this handle refers to.
    pub generation: u32,
}

/// Per-class occupancy, for diagnostics (`segment inspect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassStats {
    /// Bytes per slot.
    pub slot_size: u32,
    /// Number of slots.
    pub slot_count: u32,
    /// Slots whose state is Allocated (a racy snapshot under concurrent use).
    pub allocated: u32,
}

/// Errors of the var-slot pool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VarPoolError {
    /// The class table is empty.
    #[error("a var-slot pool needs at least one size class")]
    NoClasses,
    /// More classes than a `u8` class index can address.
    #[error("{count} size classes; at most 256 are addressable")]
    TooManyClasses {
        /// Number of classes requested.
        count: usize,
    },
    /// A class with a zero slot size or a zero slot count.
    #[error(
        "size class {class_idx} has slot_size {slot_size} and count {count}; both must be non-zero"
    )]
    InvalidClass {
        /// Index of the offending class.
        class_idx: usize,
        /// Its slot size.
        slot_size: u32,
        /// Its slot count.
        count: u32,
    },
    /// The layout's size overflows.
    #[error("the var-slot pool layout overflows")]
    LayoutOverflow,
    /// The region pointer is null.
    #[error("null region pointer")]
    NullRegion,
    /// The pool's start is not 64-byte aligned.
    #[error("the pool start {addr:#x} is not {POOL_ALIGN}-byte aligned")]
    Misaligned {
        /// Address of the pool's start.
        addr: usize,
    },
    /// The region is too small for the pool at this offset.
    #[error("the pool needs {need} bytes at offset {offset}, but the region has {have} bytes")]
    TooSmall {
        /// Offset of the pool in the region.
        offset: usize,
        /// Bytes the pool (or its class table) needs.
        need: u64,
        /// Length of the region.
        have: usize,
    },
    /// A handle or argument names a class that does not exist.
    #[error("class {class_idx} out of range ({num_classes} classes)")]
    ClassOutOfRange {
        /// The class index.
        class_idx: usize,
        /// Number of classes in the pool.
        num_classes: usize,
    },
    /// A handle names an extent other than 0.
    #[error("extent {extent_idx} does not exist (roam v7 only has extent 0)")]
    ExtentOutOfRange {
        /// The extent index.
        extent_idx: u8,
    },
    /// A handle names a slot past the end of its class.
    #[error("slot {slot_idx} out of range in class {class_idx} ({slot_count} slots)")]
    SlotOutOfRange {
        /// The class index.
        class_idx: u8,
        /// The slot index.
        slot_idx: u32,
        /// Slots in the class.
        slot_count: u32,
    },
    /// The slot is not Allocated (already freed, or never allocated).
    #[error("double free of {handle:?}")]
    DoubleFree {
        /// The handle passed to free.
        handle: VarSlotHandle,
    },
    /// The handle's generation is not the slot's current generation.
    #[error("stale handle {handle:?}: the slot is at generation {current}")]
    StaleGeneration {
        /// The handle.
        handle: VarSlotHandle,
        /// The slot's current generation.
        current: u32,
    },
    /// A received slot ref names a slot that is not Allocated.
    #[error("slot {handle:?} is not allocated")]
    NotAllocated {
        /// The handle.
        handle: VarSlotHandle,
    },
    /// A received slot ref names a slot owned by another peer.
    #[error("slot {handle:?} is owned by peer {actual}, expected peer {expected}")]
    WrongOwner {
        /// The handle.
        handle: VarSlotHandle,
        /// The expected owner.
        expected: u32,
        /// The owner recorded in shared memory.
        actual: u32,
    },
    /// Shared memory holds values the protocol cannot produce.
    #[error("corrupt var-slot pool (class {class_idx}): {what}")]
    Corrupt {
        /// The class whose data is corrupt.
        class_idx: usize,
        /// What was found.
        what: &'static str,
    },
}

/// Validated, process-local copy of one class's geometry.
#[derive(Debug, Clone, Copy)]
struct ClassView {
    slot_size: u32,
    slot_count: u32,
    /// Offsets relative to the pool's start.
    header_off: usize,
    meta_off: usize,
    data_off: usize,
}

/// A var-slot pool over raw memory: `region_len` bytes at `region`, with the pool at
/// `base_offset` inside them.
///
/// The class geometry is validated and cached when the pool is built; nothing about it
/// is re-read from shared memory afterwards. All operations take `&self` and are safe
/// to call concurrently from any number of threads and processes.
#[derive(Debug)]
pub struct RawVarSlotPool {
    region: *mut u8,
    region_len: usize,
    base_offset: usize,
    size: usize,
    classes: Vec<ClassView>,
}

// SAFETY: the pool only holds addresses into memory that the constructor's contract
// keeps valid; every access to shared state goes through atomics (or volatile reads of
// the init-time class fields), so moving the view to another thread adds no race.
unsafe impl Send for RawVarSlotPool {}
// SAFETY: as for Send: all `&self` methods use atomics only on shared memory.
unsafe impl Sync for RawVarSlotPool {}

fn corrupt(class_idx: usize, what: &'static str) -> VarPoolError {
    VarPoolError::Corrupt { class_idx, what }
}

/// Check that `need` bytes at `base_offset` fit in the region and start 64-aligned.
fn check_placement(
    region: *mut u8,
    region_len: usize,
    base_offset: usize,
    need: u64,
) -> Result<(), VarPoolError> {
    if region.is_null() {
        return Err(VarPoolError::NullRegion);
    }
    let too_small = VarPoolError::TooSmall {
        offset: base_offset,
        need,
        have: region_len,
    };
    let need_usize = usize::try_from(need).map_err(|_| too_small.clone())?;
    match base_offset.checked_add(need_usize) {
        Some(end) if end <= region_len => {}
        _ => return Err(too_small),
    }
    let addr = (region as usize).wrapping_add(base_offset);
    if addr % POOL_ALIGN != 0 {
        return Err(VarPoolError::Misaligned { addr });
    }
    Ok(())
}

impl RawVarSlotPool {
    /// Build a view of a pool with these classes at `base_offset` in the region,
    /// without reading or writing the memory (the C ABI's `attach`; call
    /// [`init`](Self::init) on a fresh segment).
    ///
    /// Errors: no classes, more than 256, a zero size or count, a layout that
    /// overflows or does not fit, or a pool start that is not 64-byte aligned.
    ///
    /// # Safety
    /// `region` must be valid for reads and writes of `region_len` bytes until the pool
    /// is dropped or re-pointed with [`update_region`](Self::update_region), and
    /// nothing else may hold Rust references to those bytes. Under the `loom` feature
    /// the pool must also have been initialised with [`init`](Self::init) before any
    /// other method is called (loom atomics are not plain bytes).
    pub unsafe fn new(
        region: *mut u8,
        region_len: usize,
        base_offset: usize,
        classes: &[SizeClass],
    ) -> Result<RawVarSlotPool, VarPoolError> {
        if classes.is_empty() {
            return Err(VarPoolError::NoClasses);
        }
        if classes.len() > MAX_CLASSES {
            return Err(VarPoolError::TooManyClasses {
                count: classes.len(),
            });
        }
        for (class_idx, c) in classes.iter().enumerate() {
            if c.slot_size == 0 || c.count == 0 {
                return Err(VarPoolError::InvalidClass {
                    class_idx,
                    slot_size: c.slot_size,
                    count: c.count,
                });
            }
        }
        let (layout, total) = pool_layout(classes).ok_or(VarPoolError::LayoutOverflow)?;
        check_placement(region, region_len, base_offset, total)?;
        // Every offset below is <= total <= region_len, so they all fit in usize.
        let to_usize = |v: u64| usize::try_from(v).map_err(|_| VarPoolError::LayoutOverflow);
        let mut views = Vec::with_capacity(classes.len());
        for (c, l) in classes.iter().zip(&layout) {
            views.push(ClassView {
                slot_size: c.slot_size,
                slot_count: c.count,
                header_off: to_usize(l.header_offset)?,
                meta_off: to_usize(l.meta_offset)?,
                data_off: to_usize(l.data_offset)?,
            });
        }
        Ok(RawVarSlotPool {
            region,
            region_len,
            base_offset,
            size: to_usize(total)?,
            classes: views,
        })
    }

    /// Build a view of an existing pool by reading its `num_classes` class headers
    /// (what a guest does, with the count from the segment header).
    ///
    /// Errors: `num_classes` is 0 or above 256, the headers do not fit in the region, a
    /// header has a zero size or count, or the layout they describe does not fit.
    ///
    /// # Safety
    /// As for [`new`](Self::new).
    pub unsafe fn from_headers(
        region: *mut u8,
        region_len: usize,
        base_offset: usize,
        num_classes: u32,
    ) -> Result<RawVarSlotPool, VarPoolError> {
        let n = num_classes as usize;
        if n == 0 {
            return Err(VarPoolError::NoClasses);
        }
        if n > MAX_CLASSES {
            return Err(VarPoolError::TooManyClasses { count: n });
        }
        check_placement(
            region,
            region_len,
            base_offset,
            num_classes as u64 * SIZE_CLASS_HEADER_SIZE,
        )?;
        let mut classes = Vec::with_capacity(n);
        for i in 0..n {
            // SAFETY: base_offset + n * header size <= region_len was checked, the
            // start is 64-aligned and the header size is a multiple of its alignment.
            let hdr = unsafe {
                region
                    .add(base_offset + i * SIZE_CLASS_HEADER_SIZE as usize)
                    .cast::<SizeClassHeader>()
            };
            // SAFETY: `hdr` is in bounds and aligned (above); the two u32 fields are
            // plain bytes a peer may rewrite at any time, hence volatile reads of
            // values that are validated before use.
            let (slot_size, count) = unsafe {
                (
                    ptr::read_volatile(ptr::addr_of!((*hdr).slot_size)),
                    ptr::read_volatile(ptr::addr_of!((*hdr).slot_count)),
                )
            };
            classes.push(SizeClass { slot_size, count });
        }
        // SAFETY: forwarded from this function's contract.
        unsafe { RawVarSlotPool::new(region, region_len, base_offset, &classes) }
    }

    /// Write every class header and meta array: heads (0, tag 0), chains
    /// 0→1→…→END, generations, states and owners 0. Slot data is not touched.
    ///
    /// # Safety
    /// Nobody else (thread or process) may access the pool's bytes while this runs,
    /// and it must happen-before any other party's use of the pool (roam publishes the
    /// segment only after creating it).
    pub unsafe fn init(&self) {
        for c in &self.classes {
            // SAFETY: header_off + header size <= size, the start is 64-aligned and
            // header_off a multiple of the header size; exclusive access is the
            // caller's contract, so a non-atomic write is fine.
            unsafe {
                ptr::write(
                    self.pool_base().add(c.header_off).cast::<SizeClassHeader>(),
                    SizeClassHeader {
                        slot_size: c.slot_size,
                        slot_count: c.slot_count,
                        free_head: AtomicU64::new(pack_head(0, 0)),
                        _pad: [0; 48],
                    },
                );
            }
            for i in 0..c.slot_count {
                let next = if i + 1 < c.slot_count {
                    i + 1
                } else {
                    FREE_LIST_END
                };
                // SAFETY: i < slot_count, so the meta is inside the class's meta array
                // (in bounds, 64-aligned array start, 16-byte stride); exclusive access
                // per the caller's contract.
                unsafe {
                    ptr::write(
                        self.meta_ptr(c, i),
                        VarSlotMeta {
                            generation: AtomicU32::new(0),
                            state: AtomicU32::new(SlotState::Free as u32),
                            owner_peer: AtomicU32::new(0),
                            next_free: AtomicU32::new(next),
                        },
                    );
                }
            }
        }
    }

    /// Re-point the pool at a remapped region (the same bytes at a new address or with
    /// a new length). On error the pool keeps its old region.
    ///
    /// # Safety
    /// As for [`new`](Self::new), for the new region; the new region must hold the
    /// same pool at the same `base_offset`.
    pub unsafe fn update_region(
        &mut self,
        region: *mut u8,
        region_len: usize,
    ) -> Result<(), VarPoolError> {
        check_placement(region, region_len, self.base_offset, self.size as u64)?;
        self.region = region;
        self.region_len = region_len;
        Ok(())
    }

    /// The pool's classes, as validated at construction.
    pub fn classes(&self) -> Vec<SizeClass> {
        self.classes
            .iter()
            .map(|c| SizeClass {
                slot_size: c.slot_size,
                count: c.slot_count,
            })
            .collect()
    }

    /// Number of size classes.
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// Slot size of class `class_idx`, or `None` if out of range.
    pub fn slot_size(&self, class_idx: usize) -> Option<u32> {
        self.classes.get(class_idx).map(|c| c.slot_size)
    }

    /// Size of the pool in bytes (roam's `calculate_size` of its classes).
    pub fn pool_size(&self) -> usize {
        self.size
    }

    /// Length of the region the pool was given (the whole mapping, not just the pool).
    pub fn region_len(&self) -> usize {
        self.region_len
    }

    /// Offset of the pool's start in its region.
    pub fn base_offset(&self) -> usize {
        self.base_offset
    }

    /// Start of the pool (`region + base_offset`).
    pub fn pool_base(&self) -> *mut u8 {
        // SAFETY: base_offset + size <= region_len was checked when the region was set.
        unsafe { self.region.add(self.base_offset) }
    }

    /// Allocate a slot that holds at least `size` bytes, owned by peer `owner` (0 =
    /// host): the first class with `slot_size >= size`, falling through to the later
    /// (larger) classes when one is exhausted. `None` when every candidate class is
    /// exhausted (backpressure) or corrupt.
    pub fn alloc(&self, size: u32, owner: u32) -> Option<VarSlotHandle> {
        self.try_alloc(size, owner).ok().flatten()
    }

    /// [`alloc`](Self::alloc) that reports corruption: `Ok(None)` when every candidate
    /// class is exhausted, `Err(Corrupt)` when none yielded a slot and at least one had
    /// a corrupt free list.
    pub fn try_alloc(&self, size: u32, owner: u32) -> Result<Option<VarSlotHandle>, VarPoolError> {
        let mut first_err = None;
        for (class_idx, c) in self.classes.iter().enumerate() {
            // roam assumes ascending classes and tries every later class; checking the
            // size again is the same for sorted tables and safe for unsorted ones.
            if c.slot_size < size {
                continue;
            }
            match self.pop(class_idx, owner) {
                Ok(Some(h)) => return Ok(Some(h)),
                Ok(None) => {}
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(None), Err)
    }

    /// Treiber pop from one class, then claim the slot.
    fn pop(&self, class_idx: usize, owner: u32) -> Result<Option<VarSlotHandle>, VarPoolError> {
        let c = &self.classes[class_idx];
        let head_atomic = self.free_head(c);
        loop {
            // Acquire (observe): pairs with the Release (publish) CAS in `push`; since
            // every later change of the head is a CAS (an RMW continues the release
            // sequence), we synchronise with every push before this value, so the
            // pusher's `next_free`, state/owner stores and its last accesses to the
            // slot's bytes happen-before our use of the slot.
            let head = head_atomic.load(sync::observe());
            let (idx, tag) = unpack_head(head);
            if idx == FREE_LIST_END {
                return Ok(None);
            }
            if idx >= c.slot_count {
                return Err(corrupt(class_idx, "free-list head index out of range"));
            }
            let meta = self.meta(c, idx);
            // Relaxed: ordered after the head Acquire above. A stale value only comes
            // with a changed head, and then the tagged CAS below fails.
            let next = meta.next_free.load(Ordering::Relaxed);
            if next != FREE_LIST_END && next >= c.slot_count {
                // Every legitimate push stores an in-range index or END.
                return Err(corrupt(class_idx, "next_free index out of range"));
            }
            // Success Acquire (observe): as for the load above (the CAS reads the same
            // value). Failure Relaxed: the next iteration reloads with Acquire. The
            // tag makes an A-B-A change of the head fail this CAS.
            if head_atomic
                .compare_exchange(
                    head,
                    pack_head(next, tag.wrapping_add(1)),
                    sync::observe(),
                    Ordering::Relaxed,
                )
                .is_err()
            {
                sync::spin_loop();
                continue;
            }
            // Relaxed: the freer's state store precedes its Release push, which we
            // acquired. Not Free means the list linked an allocated slot (a cycle or a
            // slot pushed twice): report it rather than hand the slot out twice.
            if meta.state.load(Ordering::Relaxed) != SlotState::Free as u32 {
                return Err(corrupt(class_idx, "free list links an allocated slot"));
            }
            // Relaxed: both are published by the Release state CAS below.
            let generation = meta
                .generation
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_add(1);
            meta.owner_peer.store(owner, Ordering::Relaxed);
            // Success Release (publish): pairs with the Acquire (observe) state loads
            // in free/validate_ref/slot_state, so whoever sees Allocated also sees this
            // generation and owner. The CAS (roam stores) makes two poppers of a
            // doubly-linked slot unable to both claim it. Failure Relaxed: error path.
            if meta
                .state
                .compare_exchange(
                    SlotState::Free as u32,
                    SlotState::Allocated as u32,
                    sync::publish(),
                    Ordering::Relaxed,
                )
                .is_err()
            {
                return Err(corrupt(class_idx, "slot claimed twice from the free list"));
            }
            return Ok(Some(VarSlotHandle {
                // class_idx < classes.len() <= 256.
                class_idx: class_idx as u8,
                extent_idx: 0,
                slot_idx: idx,
                generation,
            }));
        }
    }

    /// Treiber push of a slot the caller has just moved from Allocated to Free.
    fn push(&self, c: &ClassView, slot_idx: u32, meta: &VarSlotMeta) {
        let head_atomic = self.free_head(c);
        // Relaxed: the value is only copied into next_free and re-checked by the CAS.
        let mut head = head_atomic.load(Ordering::Relaxed);
        loop {
            let (idx, tag) = unpack_head(head);
            // Relaxed: published by the Release CAS below.
            meta.next_free.store(idx, Ordering::Relaxed);
            // Success Release (publish): pairs with the Acquire (observe) head load and
            // CAS in `pop`: our next_free, state and owner stores and every access to
            // the slot's bytes before this free happen-before the slot's next
            // allocation. Failure Relaxed: we retry with the value read.
            match head_atomic.compare_exchange(
                head,
                pack_head(slot_idx, tag.wrapping_add(1)),
                sync::publish(),
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => {
                    head = actual;
                    sync::spin_loop();
                }
            }
        }
    }

    /// Free an allocated slot: the handle's generation must be the slot's current one
    /// ([`VarPoolError::StaleGeneration`]) and the slot must be Allocated
    /// ([`VarPoolError::DoubleFree`]). Out-of-range handles are errors too.
    ///
    /// Racing frees of one handle: exactly one succeeds. A *stale* free racing with
    /// the slot's free and re-allocation may briefly mark the new allocation Free
    /// before undoing it; a free or `validate_ref` of the new handle inside that
    /// window fails (DoubleFree / NotAllocated) instead of corrupting the free list.
    pub fn free(&self, handle: VarSlotHandle) -> Result<(), VarPoolError> {
        let (c, meta) = self.locate(handle)?;
        // Acquire (observe): pairs with the Release (publish) state CAS of the
        // allocation, so the generation read next is at least that allocation's.
        let state = meta.state.load(sync::observe());
        // Relaxed: ordered after the state Acquire.
        let current = meta.generation.load(Ordering::Relaxed);
        if current != handle.generation {
            return Err(VarPoolError::StaleGeneration { handle, current });
        }
        if state != SlotState::Allocated as u32 {
            return Err(VarPoolError::DoubleFree { handle });
        }
        // Success Acquire: pairs with the Release state CAS of whichever allocation
        // set Allocated, so the generation re-check below sees its bump. Exactly one
        // of several racing frees (or reclaims) wins. Failure Relaxed: error path.
        if meta
            .state
            .compare_exchange(
                SlotState::Allocated as u32,
                SlotState::Free as u32,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return Err(VarPoolError::DoubleFree { handle });
        }
        // Relaxed: ordered after the CAS's Acquire.
        let now = meta.generation.load(Ordering::Relaxed);
        if now != handle.generation {
            // A free and a new allocation slipped in between the check and the CAS: the
            // slot belongs to that newer allocation and is not on the free list, so
            // nobody else can touch its state; give it back. Release (publish): as for
            // the allocation's own state CAS.
            meta.state
                .store(SlotState::Allocated as u32, sync::publish());
            return Err(VarPoolError::StaleGeneration {
                handle,
                current: now,
            });
        }
        // Relaxed: published by the Release CAS in push.
        meta.owner_peer.store(0, Ordering::Relaxed);
        self.push(c, handle.slot_idx, meta);
        Ok(())
    }

    /// Free a slot that was allocated but never sent; identical to
    /// [`free`](Self::free) (shared memory has no InFlight state).
    pub fn free_allocated(&self, handle: VarSlotHandle) -> Result<(), VarPoolError> {
        self.free(handle)
    }

    /// The slot's state, if the handle's generation is current
    /// ([`VarPoolError::StaleGeneration`] otherwise).
    pub fn slot_state(&self, handle: VarSlotHandle) -> Result<SlotState, VarPoolError> {
        let (_, meta) = self.locate(handle)?;
        // Acquire (observe): pairs with the allocation's Release state CAS.
        let state = meta.state.load(sync::observe());
        // Relaxed: ordered after the state Acquire.
        let current = meta.generation.load(Ordering::Relaxed);
        if current != handle.generation {
            return Err(VarPoolError::StaleGeneration { handle, current });
        }
        match state {
            0 => Ok(SlotState::Free),
            1 => Ok(SlotState::Allocated),
            _ => Err(corrupt(
                usize::from(handle.class_idx),
                "slot state is neither Free nor Allocated",
            )),
        }
    }

    /// Pointer to the start of the slot (where a slot-ref frame's u32 length prefix
    /// goes); `slot_size` bytes are valid from there. Class, extent and slot indices are
    /// checked (roam checks only the class); the generation is not.
    pub fn payload_ptr(&self, handle: VarSlotHandle) -> Result<*mut u8, VarPoolError> {
        let (c, _) = self.locate(handle)?;
        Ok(self.slot_ptr(c, handle.slot_idx))
    }

    /// Validate a slot ref received from a peer before reading it: indices in range,
    /// slot Allocated, generation current and, if given, owned by `expected_owner`.
    /// Returns the slot's start and its size.
    pub fn validate_ref(
        &self,
        handle: VarSlotHandle,
        expected_owner: Option<u32>,
    ) -> Result<(*mut u8, u32), VarPoolError> {
        let (c, meta) = self.locate(handle)?;
        // Acquire (observe): pairs with the allocation's Release state CAS, so the
        // generation and owner read next are at least that allocation's.
        let state = meta.state.load(sync::observe());
        // Relaxed: ordered after the state Acquire.
        let current = meta.generation.load(Ordering::Relaxed);
        // Relaxed: as above.
        let owner = meta.owner_peer.load(Ordering::Relaxed);
        if current != handle.generation {
            return Err(VarPoolError::StaleGeneration { handle, current });
        }
        if state != SlotState::Allocated as u32 {
            return Err(VarPoolError::NotAllocated { handle });
        }
        if let Some(expected) = expected_owner {
            if owner != expected {
                return Err(VarPoolError::WrongOwner {
                    handle,
                    expected,
                    actual: owner,
                });
            }
        }
        Ok((self.slot_ptr(c, handle.slot_idx), c.slot_size))
    }

    /// Free every Allocated slot owned by peer `owner` (crash recovery; roam's
    /// `recover_peer`). Returns the number of slots freed.
    pub fn reclaim_peer_slots(&self, owner: u32) -> usize {
        let mut freed = 0;
        for (class_idx, c) in self.classes.iter().enumerate() {
            for slot_idx in 0..c.slot_count {
                let meta = self.meta(c, slot_idx);
                // Acquire (observe): pairs with the allocation's Release state CAS; the
                // generation and owner read next then belong to that allocation or a
                // later one, and `free` re-checks the generation.
                if meta.state.load(sync::observe()) != SlotState::Allocated as u32 {
                    continue;
                }
                // Relaxed: ordered after the state Acquire.
                let generation = meta.generation.load(Ordering::Relaxed);
                // Relaxed: as above.
                if meta.owner_peer.load(Ordering::Relaxed) != owner {
                    continue;
                }
                let handle = VarSlotHandle {
                    class_idx: class_idx as u8,
                    extent_idx: 0,
                    slot_idx,
                    generation,
                };
                if self.free(handle).is_ok() {
                    freed += 1;
                }
            }
        }
        freed
    }

    /// Length of class `class_idx`'s free list (diagnostics; a snapshot that is only
    /// exact when nobody allocates or frees concurrently). The walk stops after
    /// `slot_count` links: a longer list is a cycle and reported as corruption.
    pub fn free_count(&self, class_idx: usize) -> Result<u32, VarPoolError> {
        let c = self
            .classes
            .get(class_idx)
            .ok_or(VarPoolError::ClassOutOfRange {
                class_idx,
                num_classes: self.classes.len(),
            })?;
        // Acquire (observe): pairs with the Release CAS of push, so the links of the
        // slots pushed so far are visible.
        let (mut idx, _) = unpack_head(self.free_head(c).load(sync::observe()));
        let mut n = 0u32;
        while idx != FREE_LIST_END {
            if idx >= c.slot_count {
                return Err(corrupt(class_idx, "free-list link out of range"));
            }
            if n == c.slot_count {
                return Err(corrupt(
                    class_idx,
                    "free list longer than the class (cycle)",
                ));
            }
            n += 1;
            // Relaxed: a diagnostic walk, ordered after the head Acquire.
            idx = self.meta(c, idx).next_free.load(Ordering::Relaxed);
        }
        Ok(n)
    }

    /// Per-class size, count and number of Allocated slots (for `segment inspect`).
    pub fn stats(&self) -> Vec<ClassStats> {
        self.classes
            .iter()
            .map(|c| ClassStats {
                slot_size: c.slot_size,
                slot_count: c.slot_count,
                allocated: (0..c.slot_count)
                    // Relaxed: a diagnostic snapshot.
                    .filter(|&i| {
                        self.meta(c, i).state.load(Ordering::Relaxed) == SlotState::Allocated as u32
                    })
                    .count() as u32,
            })
            .collect()
    }

    /// Range-check a handle and return its class and meta.
    fn locate(&self, handle: VarSlotHandle) -> Result<(&ClassView, &VarSlotMeta), VarPoolError> {
        let c = self.classes.get(usize::from(handle.class_idx)).ok_or(
            VarPoolError::ClassOutOfRange {
                class_idx: usize::from(handle.class_idx),
                num_classes: self.classes.len(),
            },
        )?;
        if handle.extent_idx != 0 {
            return Err(VarPoolError::ExtentOutOfRange {
                extent_idx: handle.extent_idx,
            });
        }
        if handle.slot_idx >= c.slot_count {
            return Err(VarPoolError::SlotOutOfRange {
                class_idx: handle.class_idx,
                slot_idx: handle.slot_idx,
                slot_count: c.slot_count,
            });
        }
        Ok((c, self.meta(c, handle.slot_idx)))
    }

    fn free_head(&self, c: &ClassView) -> &AtomicU64 {
        // SAFETY: the header is inside the pool (header_off + header size <= size),
        // aligned (64-aligned start, offset a multiple of the header size), and was
        // initialised by `init` (here or in another process); only the atomic field
        // is borrowed, the plain fields a peer may rewrite are never referenced.
        unsafe {
            &*ptr::addr_of!(
                (*self.pool_base().add(c.header_off).cast::<SizeClassHeader>()).free_head
            )
        }
    }

    /// Pointer to slot `i`'s meta; the caller ensures `i < c.slot_count`.
    fn meta_ptr(&self, c: &ClassView, i: u32) -> *mut VarSlotMeta {
        debug_assert!(i < c.slot_count);
        // SAFETY: i < slot_count, and the meta array of slot_count entries lies inside
        // the pool (pool_layout), so the offset stays in bounds.
        unsafe {
            self.pool_base()
                .add(c.meta_off + i as usize * VAR_SLOT_META_SIZE as usize)
                .cast::<VarSlotMeta>()
        }
    }

    /// Slot `i`'s meta; the caller ensures `i < c.slot_count`.
    fn meta(&self, c: &ClassView, i: u32) -> &VarSlotMeta {
        // SAFETY: in bounds (meta_ptr), aligned (64-aligned array start, stride a
        // multiple of the alignment), initialised by `init`; all fields are atomics,
        // so a shared reference is sound while peers modify them.
        unsafe { &*self.meta_ptr(c, i) }
    }

    /// Start of slot `i`'s data; the caller ensures `i < c.slot_count`.
    fn slot_ptr(&self, c: &ClassView, i: u32) -> *mut u8 {
        debug_assert!(i < c.slot_count);
        // SAFETY: i < slot_count and the class's data (slot_size * slot_count bytes)
        // lies inside the pool, so the slot's start and its slot_size bytes are in
        // bounds.
        unsafe {
            self.pool_base()
                .add(c.data_off + i as usize * c.slot_size as usize)
        }
    }
}

/// A var-slot pool borrowing a [`Region`] that starts at the pool (for a segment, the
/// sub-region at `var_pool_offset`). Derefs to [`RawVarSlotPool`] for every operation.
#[derive(Debug)]
pub struct VarSlotPool<'a> {
    raw: RawVarSlotPool,
    _region: PhantomData<Region<'a>>,
}

impl<'a> VarSlotPool<'a> {
    /// Lay out and initialise a fresh pool with these classes at the start of
    /// `region` (see [`RawVarSlotPool::init`]).
    ///
    /// # Safety
    /// Nobody else may access the region's pool bytes while this runs, and it must
    /// happen-before any other party's use of the pool.
    pub unsafe fn init(
        region: Region<'a>,
        classes: &[SizeClass],
    ) -> Result<VarSlotPool<'a>, VarPoolError> {
        let pool = Self::attach(region, classes)?;
        // SAFETY: exclusivity and ordering are this function's contract.
        unsafe { pool.raw.init() };
        Ok(pool)
    }

    /// View an initialised pool with these classes at the start of `region`.
    ///
    /// Shared contents are untrusted and validated on use, so any bytes are safe to
    /// attach to (under the `loom` test feature, only memory set up by
    /// [`init`](Self::init)).
    pub fn attach(
        region: Region<'a>,
        classes: &[SizeClass],
    ) -> Result<VarSlotPool<'a>, VarPoolError> {
        // SAFETY: the region is valid for reads and writes for 'a, which the returned
        // pool borrows; it never hands out Rust references to plain shared bytes.
        let raw = unsafe { RawVarSlotPool::new(region.as_ptr(), region.len(), 0, classes)? };
        Ok(VarSlotPool {
            raw,
            _region: PhantomData,
        })
    }

    /// View an initialised pool at the start of `region`, reading its `num_classes`
    /// classes back from the headers (see [`RawVarSlotPool::from_headers`]).
    pub fn attach_from_headers(
        region: Region<'a>,
        num_classes: u32,
    ) -> Result<VarSlotPool<'a>, VarPoolError> {
        // SAFETY: as in `attach`.
        let raw =
            unsafe { RawVarSlotPool::from_headers(region.as_ptr(), region.len(), 0, num_classes)? };
        Ok(VarSlotPool {
            raw,
            _region: PhantomData,
        })
    }

    /// The underlying raw pool.
    pub fn raw(&self) -> &RawVarSlotPool {
        &self.raw
    }
}

impl Deref for VarSlotPool<'_> {
    type Target = RawVarSlotPool;

    fn deref(&self) -> &RawVarSlotPool {
        &self.raw
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod layout_tests {
    use super::*;

    #[test]
    fn layout_matches_roam_formula() {
        let classes = [
            SizeClass {
                slot_size: 1024,
                count: 3,
            },
            SizeClass {
                slot_size: 100,
                count: 5,
            },
        ];
        let (l, total) = pool_layout(&classes).unwrap();
        // 2 headers = 128; class0 meta 48 -> 64; data 3072; class1 meta 80 -> 128; data 500 -> 512
        assert_eq!(
            l[0],
            ClassLayout {
                header_offset: 0,
                meta_offset: 128,
                data_offset: 192
            }
        );
        assert_eq!(
            l[1],
            ClassLayout {
                header_offset: 64,
                meta_offset: 192 + 3072,
                data_offset: 192 + 3072 + 128
            }
        );
        assert_eq!(total, 192 + 3072 + 128 + 512);
        // Sizes whose total does not fit in u64 are reported, not wrapped.
        let huge = SizeClass {
            slot_size: u32::MAX,
            count: u32::MAX,
        };
        assert_eq!(calculate_size(&[huge; 2]), None);
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;
    use crate::region::HeapRegion;

    const CLASSES: [SizeClass; 3] = [
        SizeClass {
            slot_size: 64,
            count: 3,
        },
        SizeClass {
            slot_size: 256,
            count: 2,
        },
        SizeClass {
            slot_size: 1024,
            count: 1,
        },
    ];

    fn heap_for(classes: &[SizeClass]) -> HeapRegion {
        HeapRegion::new_zeroed(calculate_size(classes).unwrap() as usize)
    }

    fn init<'a>(heap: &'a HeapRegion, classes: &[SizeClass]) -> VarSlotPool<'a> {
        // SAFETY: the heap region is fresh and used by this test thread only.
        unsafe { VarSlotPool::init(heap.region(), classes).unwrap() }
    }

    /// Little-endian u32 read byte by byte at a raw offset from the pool start.
    fn le_u32(pool: &RawVarSlotPool, off: usize) -> u32 {
        u32::from_le_bytes(std::array::from_fn(|i| byte(pool, off + i)))
    }

    fn le_u64(pool: &RawVarSlotPool, off: usize) -> u64 {
        u64::from_le_bytes(std::array::from_fn(|i| byte(pool, off + i)))
    }

    fn byte(pool: &RawVarSlotPool, off: usize) -> u8 {
        assert!(off < pool.pool_size());
        // SAFETY: in bounds (checked above); no concurrent writers in this test.
        unsafe { pool.pool_base().add(off).read() }
    }

    fn write_u32(pool: &RawVarSlotPool, off: usize, v: u32) {
        assert!(off + 4 <= pool.pool_size());
        // SAFETY: in bounds, 4-aligned offsets only; no concurrent access in this test.
        unsafe { pool.pool_base().add(off).cast::<u32>().write(v) }
    }

    fn write_u64(pool: &RawVarSlotPool, off: usize, v: u64) {
        assert!(off + 8 <= pool.pool_size());
        // SAFETY: as for write_u32, with 8-aligned offsets.
        unsafe { pool.pool_base().add(off).cast::<u64>().write(v) }
    }

    // Offsets of CLASSES, from the layout formula: 3 headers = 192; class 0 meta 48 ->
    // 64 @192, data 192 @256; class 1 meta 32 -> 64 @448, data 512 @512; class 2 meta
    // 16 -> 64 @1024, data 1024 @1088; total 2112.
    const META0: usize = 192;
    const DATA0: usize = 256;
    const META1: usize = 448;
    const DATA1: usize = 512;
    /// Meta array of class 0 in a pool of `[CLASSES[0]]` alone (one 64-byte header).
    const ONLY_META0: usize = 64;

    #[test]
    fn raw_bytes_after_init_alloc_free() {
        let heap = heap_for(&CLASSES);
        let pool = init(&heap, &CLASSES);
        assert_eq!(pool.pool_size(), 2112);
        for (i, c) in CLASSES.iter().enumerate() {
            let h = i * 64;
            assert_eq!(le_u32(&pool, h), c.slot_size);
            assert_eq!(le_u32(&pool, h + 4), c.count);
            assert_eq!(le_u64(&pool, h + 8), 0, "head = (idx 0, tag 0)");
            assert!((h + 16..h + 64).all(|o| byte(&pool, o) == 0));
        }
        for s in 0..3 {
            let m = META0 + 16 * s;
            assert_eq!(le_u32(&pool, m), 0, "generation");
            assert_eq!(le_u32(&pool, m + 4), 0, "state");
            assert_eq!(le_u32(&pool, m + 8), 0, "owner");
            let next = if s < 2 { s as u32 + 1 } else { u32::MAX };
            assert_eq!(le_u32(&pool, m + 12), next);
        }
        assert_eq!(le_u32(&pool, META1 + 12), 1);
        assert_eq!(le_u32(&pool, META1 + 16 + 12), u32::MAX);

        let h = pool.alloc(10, 5).unwrap();
        assert_eq!(
            h,
            VarSlotHandle {
                class_idx: 0,
                extent_idx: 0,
                slot_idx: 0,
                generation: 1
            }
        );
        assert_eq!(le_u64(&pool, 8), 1 | (1 << 32), "head = (idx 1, tag 1)");
        assert_eq!(le_u32(&pool, META0), 1);
        assert_eq!(le_u32(&pool, META0 + 4), 1);
        assert_eq!(le_u32(&pool, META0 + 8), 5);
        assert_eq!(
            pool.payload_ptr(h).unwrap(),
            heap.region().as_ptr().wrapping_add(DATA0)
        );

        pool.free(h).unwrap();
        assert_eq!(le_u64(&pool, 8), 2 << 32, "head = (idx 0, tag 2)");
        assert_eq!(le_u32(&pool, META0), 1, "generation kept");
        assert_eq!(le_u32(&pool, META0 + 4), 0);
        assert_eq!(le_u32(&pool, META0 + 8), 0);
        assert_eq!(le_u32(&pool, META0 + 12), 1, "next_free = old head");
    }

    #[test]
    fn generations_start_at_one_and_lifo_reuse_bumps_them() {
        let heap = heap_for(&CLASSES);
        let pool = init(&heap, &CLASSES);
        let a = pool.alloc(1, 0).unwrap();
        assert_eq!((a.slot_idx, a.generation), (0, 1));
        let b = pool.alloc(1, 0).unwrap();
        assert_eq!((b.slot_idx, b.generation), (1, 1));
        pool.free(a).unwrap();
        let c = pool.alloc(1, 0).unwrap();
        assert_eq!((c.slot_idx, c.generation), (0, 2));
    }

    #[test]
    fn class_selection_and_fall_through() {
        let heap = heap_for(&CLASSES);
        let pool = init(&heap, &CLASSES);
        assert_eq!(pool.alloc(65, 0).unwrap().class_idx, 1);
        assert_eq!(pool.alloc(257, 0).unwrap().class_idx, 2);
        assert_eq!(pool.alloc(1025, 0), None, "larger than every class");
        // Class 0 has 3 slots, then 64-byte requests fall through to class 1 (one left).
        let got: Vec<u8> = (0..4)
            .map(|_| pool.alloc(64, 0).unwrap().class_idx)
            .collect();
        assert_eq!(got, [0, 0, 0, 1]);
        assert_eq!(pool.alloc(64, 0), None, "every candidate class exhausted");
        assert_eq!(pool.try_alloc(0, 0), Ok(None));
        let s = pool.stats();
        assert_eq!(
            s.iter().map(|c| c.allocated).collect::<Vec<_>>(),
            [3, 2, 1],
            "{s:?}"
        );
        assert_eq!(pool.free_count(0), Ok(0));
    }

    #[test]
    fn unsorted_classes_never_fall_through_to_smaller_ones() {
        let classes = [
            SizeClass {
                slot_size: 256,
                count: 1,
            },
            SizeClass {
                slot_size: 64,
                count: 4,
            },
        ];
        let heap = heap_for(&classes);
        let pool = init(&heap, &classes);
        assert_eq!(pool.alloc(100, 0).unwrap().class_idx, 0);
        assert_eq!(pool.alloc(100, 0), None);
        assert_eq!(pool.alloc(10, 0).unwrap().class_idx, 1);
    }

    #[test]
    fn double_free_and_stale_generation() {
        let heap = heap_for(&CLASSES);
        let pool = init(&heap, &CLASSES);
        let h = pool.alloc(1, 3).unwrap();
        pool.free(h).unwrap();
        assert_eq!(pool.free(h), Err(VarPoolError::DoubleFree { handle: h }));
        assert_eq!(
            pool.free_allocated(h),
            Err(VarPoolError::DoubleFree { handle: h })
        );
        let h2 = pool.alloc(1, 3).unwrap();
        assert_eq!(h2.slot_idx, h.slot_idx);
        assert_eq!(
            pool.free(h),
            Err(VarPoolError::StaleGeneration {
                handle: h,
                current: 2
            })
        );
        assert_eq!(pool.slot_state(h2), Ok(SlotState::Allocated));
        pool.free_allocated(h2).unwrap();
        assert_eq!(pool.slot_state(h2), Ok(SlotState::Free));
        assert!(matches!(
            pool.slot_state(h),
            Err(VarPoolError::StaleGeneration { .. })
        ));
        assert_eq!(pool.free_count(0), Ok(3), "the list is intact");
    }

    #[test]
    fn reclaim_frees_only_the_dead_peers_slots() {
        let heap = heap_for(&CLASSES);
        let pool = init(&heap, &CLASSES);
        let a = pool.alloc(1, 7).unwrap();
        let b = pool.alloc(200, 7).unwrap();
        let keep = pool.alloc(1, 2).unwrap();
        let host = pool.alloc(1, 0).unwrap();
        assert_eq!(pool.reclaim_peer_slots(7), 2);
        assert_eq!(pool.reclaim_peer_slots(7), 0);
        assert!(pool.free(a).is_err());
        assert!(pool.free(b).is_err());
        assert_eq!(pool.slot_state(keep), Ok(SlotState::Allocated));
        assert_eq!(pool.free_count(0), Ok(1));
        assert_eq!(pool.free_count(1), Ok(2));
        assert_eq!(pool.reclaim_peer_slots(0), 1);
        assert!(pool.free(host).is_err());
        pool.free(keep).unwrap();
        assert_eq!(pool.free_count(0), Ok(3));
    }

    #[test]
    fn payload_ptr_is_checked() {
        let heap = heap_for(&CLASSES);
        let pool = init(&heap, &CLASSES);
        let base = heap.region().as_ptr();
        let mut h = pool.alloc(100, 0).unwrap();
        assert_eq!(pool.payload_ptr(h).unwrap(), base.wrapping_add(DATA1));
        h.slot_idx = 1;
        assert_eq!(pool.payload_ptr(h).unwrap(), base.wrapping_add(DATA1 + 256));
        h.slot_idx = 2;
        assert_eq!(
            pool.payload_ptr(h),
            Err(VarPoolError::SlotOutOfRange {
                class_idx: 1,
                slot_idx: 2,
                slot_count: 2
            })
        );
        h.slot_idx = 0;
        h.class_idx = 3;
        assert!(matches!(
            pool.payload_ptr(h),
            Err(VarPoolError::ClassOutOfRange { class_idx: 3, .. })
        ));
        h.class_idx = 1;
        h.extent_idx = 1;
        assert!(matches!(
            pool.payload_ptr(h),
            Err(VarPoolError::ExtentOutOfRange { extent_idx: 1 })
        ));
        assert!(pool.free(h).is_err(), "free checks the extent too");
        assert_eq!(pool.slot_size(2), Some(1024));
        assert_eq!(pool.slot_size(3), None);
        // Free with an out-of-range slot is an error, not an out-of-bounds write.
        let bogus = VarSlotHandle {
            class_idx: 0,
            extent_idx: 0,
            slot_idx: u32::MAX,
            generation: 1,
        };
        assert!(matches!(
            pool.free(bogus),
            Err(VarPoolError::SlotOutOfRange { .. })
        ));
    }

    #[test]
    fn payload_bytes_stay_in_their_slot() {
        let heap = heap_for(&CLASSES);
        let pool = init(&heap, &CLASSES);
        let hs: Vec<_> = std::iter::from_fn(|| pool.alloc(1, 1)).collect();
        assert_eq!(hs.len(), 6);
        for (i, h) in hs.iter().enumerate() {
            let (p, len) = pool.validate_ref(*h, Some(1)).unwrap();
            // SAFETY: the slot is allocated to this test and `len` bytes are valid.
            unsafe { p.write_bytes(i as u8 + 1, len as usize) };
        }
        for (i, h) in hs.iter().enumerate() {
            let (p, len) = pool.validate_ref(*h, None).unwrap();
            for o in 0..len as usize {
                // SAFETY: as above.
                assert_eq!(unsafe { p.add(o).read() }, i as u8 + 1);
            }
        }
        // The metas and headers were not overwritten by the payloads.
        assert_eq!(pool.stats().iter().map(|s| s.allocated).sum::<u32>(), 6);
    }

    #[test]
    fn validate_ref_checks_everything() {
        let heap = heap_for(&CLASSES);
        let pool = init(&heap, &CLASSES);
        let h = pool.alloc(1, 4).unwrap();
        let (p, len) = pool.validate_ref(h, Some(4)).unwrap();
        assert_eq!((p, len), (pool.payload_ptr(h).unwrap(), 64));
        assert_eq!(
            pool.validate_ref(h, Some(5)),
            Err(VarPoolError::WrongOwner {
                handle: h,
                expected: 5,
                actual: 4
            })
        );
        let stale = VarSlotHandle { generation: 7, ..h };
        assert!(matches!(
            pool.validate_ref(stale, None),
            Err(VarPoolError::StaleGeneration { current: 1, .. })
        ));
        let never = VarSlotHandle { slot_idx: 1, ..h };
        assert!(matches!(
            pool.validate_ref(never, None),
            Err(VarPoolError::StaleGeneration { current: 0, .. })
        ));
        pool.free(h).unwrap();
        assert_eq!(
            pool.validate_ref(h, None),
            Err(VarPoolError::NotAllocated { handle: h })
        );
        let far = VarSlotHandle { class_idx: 9, ..h };
        assert!(pool.validate_ref(far, None).is_err());
    }

    #[test]
    fn attach_from_headers_round_trip() {
        let heap = heap_for(&CLASSES);
        let host = init(&heap, &CLASSES);
        let guest = VarSlotPool::attach_from_headers(heap.region(), 3).unwrap();
        assert_eq!(guest.classes(), CLASSES);
        assert_eq!(guest.pool_size(), host.pool_size());
        let h = guest.alloc(100, 9).unwrap();
        assert_eq!(host.validate_ref(h, Some(9)).unwrap().1, 256);
        assert_eq!(host.payload_ptr(h).unwrap(), guest.payload_ptr(h).unwrap());
        host.free(h).unwrap();
        assert_eq!(guest.free(h), Err(VarPoolError::DoubleFree { handle: h }));
        // Fewer classes than written is a valid (smaller) view; more reads zeros.
        assert_eq!(
            VarSlotPool::attach_from_headers(heap.region(), 1)
                .unwrap()
                .num_classes(),
            1
        );
        assert!(matches!(
            VarSlotPool::attach_from_headers(heap.region(), 0),
            Err(VarPoolError::NoClasses)
        ));
        assert!(matches!(
            VarSlotPool::attach_from_headers(heap.region(), 300),
            Err(VarPoolError::TooManyClasses { count: 300 })
        ));
        let plain = VarSlotPool::attach(heap.region(), &CLASSES).unwrap();
        assert_eq!(plain.free_count(1), Ok(2));
    }

    #[test]
    fn bad_headers_are_errors() {
        let heap = heap_for(&CLASSES);
        let pool = init(&heap, &CLASSES);
        // Zero slot size in class 1.
        write_u32(&pool, 64, 0);
        assert_eq!(
            VarSlotPool::attach_from_headers(heap.region(), 3).unwrap_err(),
            VarPoolError::InvalidClass {
                class_idx: 1,
                slot_size: 0,
                count: 2
            }
        );
        // A count that does not fit the region.
        write_u32(&pool, 64, 256);
        write_u32(&pool, 64 + 4, 1 << 20);
        assert!(matches!(
            VarSlotPool::attach_from_headers(heap.region(), 3),
            Err(VarPoolError::TooSmall { .. })
        ));
        // A size whose layout overflows.
        write_u32(&pool, 64, u32::MAX);
        write_u32(&pool, 64 + 4, u32::MAX);
        write_u32(&pool, 128, u32::MAX);
        write_u32(&pool, 128 + 4, u32::MAX);
        assert!(matches!(
            VarSlotPool::attach_from_headers(heap.region(), 3),
            Err(VarPoolError::TooSmall { .. } | VarPoolError::LayoutOverflow)
        ));
        // Headers past the end of the region.
        let tiny = HeapRegion::new_zeroed(64);
        assert!(matches!(
            VarSlotPool::attach_from_headers(tiny.region(), 2),
            Err(VarPoolError::TooSmall { need: 128, .. })
        ));
    }

    #[test]
    fn construction_errors() {
        let heap = heap_for(&CLASSES);
        let r = heap.region();
        assert_eq!(
            VarSlotPool::attach(r, &[]).unwrap_err(),
            VarPoolError::NoClasses
        );
        let zero = [SizeClass {
            slot_size: 64,
            count: 0,
        }];
        assert!(matches!(
            VarSlotPool::attach(r, &zero),
            Err(VarPoolError::InvalidClass { class_idx: 0, .. })
        ));
        let many = vec![
            SizeClass {
                slot_size: 1,
                count: 1
            };
            257
        ];
        assert!(matches!(
            VarSlotPool::attach(r, &many),
            Err(VarPoolError::TooManyClasses { count: 257 })
        ));
        let big = [SizeClass {
            slot_size: 4096,
            count: 4,
        }];
        assert!(matches!(
            VarSlotPool::attach(r, &big),
            Err(VarPoolError::TooSmall { .. })
        ));
        // A misaligned start.
        let sub = r.sub(8, r.len() - 8).unwrap();
        assert!(matches!(
            VarSlotPool::attach(sub, &CLASSES[..1]),
            Err(VarPoolError::Misaligned { .. })
        ));
        // SAFETY: null is rejected before any access.
        let null = unsafe { RawVarSlotPool::new(std::ptr::null_mut(), 4096, 0, &CLASSES) };
        assert_eq!(null.unwrap_err(), VarPoolError::NullRegion);
        // A base offset inside a bigger region, as the C ABI passes it.
        let seg = HeapRegion::new_zeroed(4096 + 2112);
        // SAFETY: the heap region outlives the pool; this thread is its only user.
        let raw = unsafe { RawVarSlotPool::new(seg.region().as_ptr(), seg.len(), 4096, &CLASSES) }
            .unwrap();
        // SAFETY: fresh memory, used by this thread only.
        unsafe { raw.init() };
        assert_eq!(raw.pool_base(), seg.region().as_ptr().wrapping_add(4096));
        assert!(raw.alloc(1, 0).is_some());
        // SAFETY: as above.
        let off = unsafe { RawVarSlotPool::new(seg.region().as_ptr(), seg.len(), 4160, &CLASSES) };
        assert!(matches!(off, Err(VarPoolError::TooSmall { .. })));
    }

    #[test]
    fn update_region_follows_a_remap() {
        let a = heap_for(&CLASSES);
        // SAFETY: `a` and `b` outlive `raw`; this thread is their only user.
        let mut raw =
            unsafe { RawVarSlotPool::new(a.region().as_ptr(), a.len(), 0, &CLASSES) }.unwrap();
        // SAFETY: fresh memory, used by this thread only.
        unsafe { raw.init() };
        let h = raw.alloc(1, 1).unwrap();
        let b = HeapRegion::new_zeroed(a.len() * 2);
        // SAFETY: both regions are valid for their lengths and not otherwise accessed.
        unsafe { std::ptr::copy_nonoverlapping(a.region().as_ptr(), b.region().as_ptr(), a.len()) };
        // SAFETY: `b` holds the same pool and outlives `raw`.
        unsafe { raw.update_region(b.region().as_ptr(), b.len()) }.unwrap();
        assert_eq!(raw.pool_base(), b.region().as_ptr());
        assert_eq!(raw.slot_state(h), Ok(SlotState::Allocated));
        raw.free(h).unwrap();
        // A region too small for the pool is refused and the old one kept.
        let small = HeapRegion::new_zeroed(64);
        // SAFETY: rejected before use.
        let err = unsafe { raw.update_region(small.region().as_ptr(), small.len()) };
        assert!(matches!(err, Err(VarPoolError::TooSmall { .. })));
        assert_eq!(raw.pool_base(), b.region().as_ptr());
        assert_eq!(raw.free_count(0), Ok(3));
    }

    #[test]
    fn corrupt_head_is_an_error() {
        let heap = heap_for(&CLASSES);
        let pool = init(&heap, &CLASSES);
        write_u64(&pool, 8, pack_head(3, 0));
        assert_eq!(
            pool.try_alloc(1, 0),
            Ok(Some(VarSlotHandle {
                class_idx: 1,
                extent_idx: 0,
                slot_idx: 0,
                generation: 1
            })),
            "a corrupt class falls through to the next one"
        );
        assert!(matches!(
            pool.free_count(0),
            Err(VarPoolError::Corrupt { .. })
        ));
        // With only corrupt or exhausted candidates, try_alloc reports the corruption.
        assert!(matches!(
            pool.try_alloc(300, 0),
            Ok(Some(VarSlotHandle { class_idx: 2, .. }))
        ));
        let only0 = [CLASSES[0]];
        let small = VarSlotPool::attach(heap.region(), &only0).unwrap();
        assert_eq!(
            small.try_alloc(1, 0),
            Err(VarPoolError::Corrupt {
                class_idx: 0,
                what: "free-list head index out of range"
            })
        );
        assert_eq!(small.alloc(1, 0), None);
    }

    #[test]
    fn corrupt_next_free_is_an_error() {
        let heap = heap_for(&[CLASSES[0]]);
        let pool = init(&heap, &[CLASSES[0]]);
        write_u32(&pool, ONLY_META0 + 12, 1000);
        assert!(matches!(
            pool.try_alloc(1, 0),
            Err(VarPoolError::Corrupt {
                what: "next_free index out of range",
                ..
            })
        ));
        assert!(matches!(
            pool.free_count(0),
            Err(VarPoolError::Corrupt { .. })
        ));
        assert_eq!(le_u64(&pool, 8), 0, "the head was not moved");
    }

    #[test]
    fn free_list_cycle_never_hands_a_slot_out_twice() {
        let heap = heap_for(&[CLASSES[0]]);
        let pool = init(&heap, &[CLASSES[0]]);
        // 0 -> 1 -> 0 -> ...
        write_u32(&pool, ONLY_META0 + 16 + 12, 0);
        assert!(matches!(
            pool.free_count(0),
            Err(VarPoolError::Corrupt {
                what: "free list longer than the class (cycle)",
                ..
            })
        ));
        let a = pool.alloc(1, 0).unwrap();
        let b = pool.alloc(1, 0).unwrap();
        assert_ne!(a.slot_idx, b.slot_idx);
        assert!(matches!(
            pool.try_alloc(1, 0),
            Err(VarPoolError::Corrupt {
                what: "free list links an allocated slot",
                ..
            })
        ));
        assert_eq!(pool.slot_state(a), Ok(SlotState::Allocated));
        assert_eq!(pool.slot_state(b), Ok(SlotState::Allocated));
        // Zeroed (never initialised) memory: every next_free is 0, a self-loop.
        let zero = heap_for(&CLASSES);
        let z = VarSlotPool::attach(zero.region(), &CLASSES).unwrap();
        assert!(z.alloc(1, 0).is_some());
        for _ in 0..10 {
            // Class 0 is now corrupt; the others hand out their slot 0 once each.
            let _ = z.try_alloc(1, 0);
        }
        assert_eq!(z.stats().iter().map(|s| s.allocated).sum::<u32>(), 3);
    }

    #[test]
    fn corrupt_state_value_is_reported() {
        let heap = heap_for(&CLASSES);
        let pool = init(&heap, &CLASSES);
        let h = pool.alloc(1, 0).unwrap();
        write_u32(&pool, META0 + 4, 7);
        assert!(matches!(
            pool.slot_state(h),
            Err(VarPoolError::Corrupt { class_idx: 0, .. })
        ));
        assert_eq!(pool.free(h), Err(VarPoolError::DoubleFree { handle: h }));
    }

    #[test]
    fn aba_tag_increments_on_every_cas() {
        let heap = heap_for(&CLASSES);
        let pool = init(&heap, &CLASSES);
        let a = pool.alloc(1, 0).unwrap();
        let b = pool.alloc(1, 0).unwrap();
        pool.free(a).unwrap();
        // Same index on top as after init (slot 0), but the tag tells them apart, so a
        // popper that read (0, tag 0) with next = 1 cannot install slot 1 (allocated).
        assert_eq!(unpack_head(le_u64(&pool, 8)), (0, 3));
        assert_eq!(le_u32(&pool, META0 + 12), 2);
        pool.free(b).unwrap();
        assert_eq!(unpack_head(le_u64(&pool, 8)), (1, 4));
    }

    #[test]
    fn concurrent_threads_never_share_a_slot() {
        use std::sync::Mutex;
        let heap = heap_for(&CLASSES);
        let pool = init(&heap, &CLASSES);
        let busy: Vec<Mutex<bool>> = (0..6).map(|_| Mutex::new(false)).collect();
        let index = |h: VarSlotHandle| [0, 3, 5][h.class_idx as usize] + h.slot_idx as usize;
        std::thread::scope(|s| {
            for t in 1..=2u32 {
                let (pool, busy) = (&pool, &busy);
                s.spawn(move || {
                    for _ in 0..20_000 {
                        if let Some(h) = pool.alloc(1, t) {
                            let was = std::mem::replace(&mut *busy[index(h)].lock().unwrap(), true);
                            assert!(!was, "slot handed out twice");
                            *busy[index(h)].lock().unwrap() = false;
                            pool.free(h).unwrap();
                        }
                    }
                });
            }
        });
        assert_eq!(
            (0..3)
                .map(|c| pool.free_count(c).unwrap())
                .collect::<Vec<_>>(),
            [3, 2, 1]
        );
    }
}
