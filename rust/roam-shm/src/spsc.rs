//! Wait-free single-producer single-consumer ring of plain-data values in shared memory.
//!
//! # Layout
//! A 192-byte [`SpscRingHeader`] (the legacy pre-v7 shm-primitives layout):
//!
//! | offset | field | written by |
//! |---|---|---|
//! | 0   | producer index, u64 | producer |
//! | 64  | consumer index, u64 | consumer |
//! | 128 | capacity, u32 (a power of two) | `init` only |
//!
//! followed directly by `capacity` entries of `T`. Indices are free-running `u64`
//! counters (wrapping arithmetic); the entry of index `i` is at `i & (capacity - 1)`.
//! The ring holds `producer - consumer` entries, at most `capacity`.
//!
//! # Protocol
//! Each side keeps its own index in process-local memory (the shared copy is only ever
//! written, never read back, by its owner) plus a cached copy of the opposite index,
//! which it reloads only when the cache says the ring is full (producer) or empty
//! (consumer). So in the steady state each side touches the other's cache line only
//! once per "lap" of the cached window instead of once per operation.
//!
//! # A peer can be broken
//! The opposite index lives in shared memory and may be garbage (a crashed or malicious
//! peer). Every value read from shared memory is checked: a ring whose indices say more
//! than `capacity` entries are pending is reported as [`SpscError::Corrupt`]
//! (or [`PushResult::Corrupt`]) and nothing is read or written. Entry offsets are always
//! masked, so no access ever leaves the ring, and entries are [`Pod`], so every bit
//! pattern a peer could leave in a slot is a valid `T`.

use core::marker::PhantomData;
use core::ptr;

use crate::region::{Region, RegionError};
use crate::sync::{self, Ordering};

use crate::sync::{AtomicU32, AtomicU64};

/// Plain data that may be copied byte-for-byte between processes.
///
/// # Safety
/// Implement only for types that
/// - are valid for *every* bit pattern (a peer controls the bytes we read back),
/// - have no padding bytes (they would leak process memory into the mapping),
/// - contain no pointers, references or handles (another process maps the memory at a
///   different address; only offsets and indices mean anything there),
/// - and have no `Drop` (values are duplicated and discarded as raw bytes).
///
/// Integers, floats and arrays of `Pod` qualify; `bool`, `char`, enums and references
/// do not.
pub unsafe trait Pod: Copy + Send + Sync + 'static {}

macro_rules! impl_pod {
    ($($t:ty),* $(,)?) => {$(
        // SAFETY: a primitive integer/float: every bit pattern is valid, no padding, no
        // pointers, no Drop.
        unsafe impl Pod for $t {}
    )*};
}
impl_pod!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64
);

// SAFETY: an array of Pod is laid out contiguously without padding between elements,
// and every element is valid for every bit pattern.
unsafe impl<T: Pod, const N: usize> Pod for [T; N] {}

/// One cache line holding one field (`align(64)` pads the rest).
#[repr(C, align(64))]
struct CacheLine<T>(T);

/// Shared header of a ring (192 bytes, 64-byte aligned; see the module docs).
///
/// Built only by [`SpscRingRaw::init`]; its fields are private because only the ring
/// protocol may touch them.
#[repr(C)]
pub struct SpscRingHeader {
    /// Producer index: number of entries ever published (producer writes).
    producer: CacheLine<AtomicU64>,
    /// Consumer index: number of entries ever consumed (consumer writes).
    consumer: CacheLine<AtomicU64>,
    /// Capacity, a power of two (written by `init` only).
    capacity: CacheLine<AtomicU32>,
}

#[cfg(not(feature = "loom"))]
const _: () = {
    use core::mem::offset_of;
    assert!(size_of::<SpscRingHeader>() == 192);
    assert!(align_of::<SpscRingHeader>() == 64);
    assert!(offset_of!(SpscRingHeader, producer) == 0);
    assert!(offset_of!(SpscRingHeader, consumer) == 64);
    assert!(offset_of!(SpscRingHeader, capacity) == 128);
};

impl SpscRingHeader {
    /// Size of the header in bytes (192; larger only under the `loom` feature, whose
    /// atomics are not plain bytes); the entries start at this offset.
    pub const SIZE: usize = size_of::<SpscRingHeader>();

    fn new(capacity: u32) -> SpscRingHeader {
        SpscRingHeader {
            producer: CacheLine(AtomicU64::new(0)),
            consumer: CacheLine(AtomicU64::new(0)),
            capacity: CacheLine(AtomicU32::new(capacity)),
        }
    }
}

/// Errors of the SPSC ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SpscError {
    /// The capacity is zero or not a power of two.
    #[error("ring capacity {0} is not a non-zero power of two")]
    InvalidCapacity(u32),
    /// The memory is too small for the header and `capacity` entries.
    #[error("ring needs {needed} bytes but only {available} are available")]
    RegionTooSmall {
        /// Bytes the ring needs.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// The header address is not 64-byte aligned.
    #[error("ring header at {addr:#x} is not 64-byte aligned")]
    Misaligned {
        /// Address of the header.
        addr: usize,
    },
    /// The indices in shared memory claim more than `capacity` pending entries (or a
    /// negative count): the peer is broken. Nothing was read or written.
    #[error(
        "ring indices are inconsistent: producer {producer}, consumer {consumer}, capacity {capacity}"
    )]
    Corrupt {
        /// Producer index as seen by this side.
        producer: u64,
        /// Consumer index as seen by this side.
        consumer: u64,
        /// Capacity of the ring.
        capacity: u32,
    },
}

/// Outcome of [`SpscProducer::push`].
#[must_use = "a value that was not pushed is handed back"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushResult<T> {
    /// The value was published.
    Ok,
    /// The ring is full; the value is handed back.
    Full(T),
    /// The ring's indices are corrupt (see [`SpscError::Corrupt`]); the value is handed
    /// back and nothing was written.
    Corrupt(T),
}

impl<T> PushResult<T> {
    /// Whether the value was pushed.
    #[inline]
    pub fn is_ok(&self) -> bool {
        matches!(self, PushResult::Ok)
    }

    /// Whether the ring was full.
    #[inline]
    pub fn is_full(&self) -> bool {
        matches!(self, PushResult::Full(_))
    }
}

/// Error of [`SpscProducer::try_push`]: the value was not pushed and is handed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RingFull<T> {
    /// The ring has no free entry (back-pressure; retry later).
    #[error("ring is full")]
    Full(T),
    /// The ring's indices are corrupt; retrying will not help.
    #[error("ring is unusable: {1}")]
    Corrupt(T, SpscError),
}

impl<T> RingFull<T> {
    /// The value that was not pushed.
    #[inline]
    pub fn into_inner(self) -> T {
        match self {
            RingFull::Full(v) | RingFull::Corrupt(v, _) => v,
        }
    }
}

/// Raw-pointer view of a ring (see the module docs); no lifetime, the caller keeps the
/// memory mapped.
///
/// The capacity is read from shared memory once (by [`init`](Self::init) or
/// [`attach`](Self::attach)) and validated; a peer changing it later has no effect.
pub struct SpscRingRaw<T: Pod> {
    header: *mut SpscRingHeader,
    entries: *mut T,
    capacity: u32,
}

impl<T: Pod> Clone for SpscRingRaw<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: Pod> Copy for SpscRingRaw<T> {}

impl<T: Pod> core::fmt::Debug for SpscRingRaw<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SpscRingRaw")
            .field("header", &self.header)
            .field("capacity", &self.capacity)
            .finish()
    }
}

// SAFETY: the view only holds pointers into shared memory; every shared access goes
// through atomics, and entry accesses are confined to the producer/consumer roles,
// whose exclusivity the unsafe constructors of those roles require.
unsafe impl<T: Pod> Send for SpscRingRaw<T> {}
// SAFETY: as for Send; `&SpscRingRaw` only offers atomic loads.
unsafe impl<T: Pod> Sync for SpscRingRaw<T> {}

impl<T: Pod> SpscRingRaw<T> {
    /// Rejected at compile time: zero-sized entries, or entries more aligned than the
    /// 64-byte header (the entries start right after it).
    const ENTRY_OK: () = assert!(
        size_of::<T>() > 0 && align_of::<T>() <= 64,
        "SpscRing entries must be non-zero-sized and at most 64-byte aligned"
    );

    /// Bytes needed for the header and `capacity` entries (saturating at `usize::MAX`,
    /// which no region can satisfy).
    pub const fn required_size(capacity: u32) -> usize {
        SpscRingHeader::SIZE.saturating_add((capacity as usize).saturating_mul(size_of::<T>()))
    }

    /// Initialise a ring at `header` (header plus zeroed entries) and view it.
    ///
    /// # Safety
    /// `header` must be valid for reads and writes of
    /// [`required_size(capacity)`](Self::required_size) bytes for as long as the
    /// returned view or anything derived from it is used, and no other party may access
    /// the ring while it is being initialised.
    pub unsafe fn init(header: *mut SpscRingHeader, capacity: u32) -> Result<Self, SpscError> {
        let () = Self::ENTRY_OK;
        if !capacity.is_power_of_two() {
            return Err(SpscError::InvalidCapacity(capacity));
        }
        check_aligned(header)?;
        // SAFETY: header is aligned (checked) and valid for required_size bytes (caller),
        // which includes the header; nobody else accesses it during init (caller).
        unsafe { ptr::write(header, SpscRingHeader::new(capacity)) };
        let entries = entries_of::<T>(header);
        // SAFETY: the entries follow the header inside the required_size bytes the caller
        // vouched for; zeroing them means a corrupt producer index can only ever make
        // the consumer read initialised (zero or previously pushed) entries.
        unsafe { ptr::write_bytes(entries, 0, capacity as usize) };
        Ok(SpscRingRaw {
            header,
            entries,
            capacity,
        })
    }

    /// View a ring initialised by another party, validating its header against the
    /// `available` bytes at `header`.
    ///
    /// # Safety
    /// `header` must be valid for reads and writes of `available` bytes for as long as
    /// the returned view or anything derived from it is used, and the header must have
    /// been initialised by [`init`](Self::init) (the bytes may since have been
    /// scribbled on; that is detected, not trusted).
    pub unsafe fn attach(header: *mut SpscRingHeader, available: usize) -> Result<Self, SpscError> {
        let () = Self::ENTRY_OK;
        check_aligned(header)?;
        if available < SpscRingHeader::SIZE {
            return Err(SpscError::RegionTooSmall {
                needed: SpscRingHeader::SIZE,
                available,
            });
        }
        // SAFETY: header is aligned and valid for at least the header's bytes (checked
        // above, caller vouches for `available`); an atomic may be shared freely.
        let cap_field = unsafe { &*ptr::addr_of!((*header).capacity.0) };
        // Relaxed: the initialised header reached us with the mapping itself (thread
        // spawn, or the file was created before it was passed on); this load only has
        // to be a well-defined read in case a peer scribbles on it concurrently.
        let capacity = cap_field.load(Ordering::Relaxed);
        if !capacity.is_power_of_two() {
            return Err(SpscError::InvalidCapacity(capacity));
        }
        let needed = Self::required_size(capacity);
        if needed > available {
            return Err(SpscError::RegionTooSmall { needed, available });
        }
        Ok(SpscRingRaw {
            header,
            entries: entries_of::<T>(header),
            capacity,
        })
    }

    /// Capacity in entries (validated at init/attach).
    #[inline]
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Shared producer index.
    #[inline]
    fn producer_index(&self) -> &AtomicU64 {
        // SAFETY: header is valid and aligned for the view's lifetime (init/attach
        // contract); we only form a reference to the atomic field, which tolerates
        // concurrent access.
        unsafe { &*ptr::addr_of!((*self.header).producer.0) }
    }

    /// Shared consumer index.
    #[inline]
    fn consumer_index(&self) -> &AtomicU64 {
        // SAFETY: as in producer_index.
        unsafe { &*ptr::addr_of!((*self.header).consumer.0) }
    }

    /// Snapshot of the shared `(producer, consumer)` indices, for diagnostics.
    pub fn indices(&self) -> (u64, u64) {
        // Relaxed: a diagnostic snapshot; it orders no entry accesses.
        let p = self.producer_index().load(Ordering::Relaxed);
        // Relaxed: as above.
        let c = self.consumer_index().load(Ordering::Relaxed);
        (p, c)
    }

    /// Approximate number of pending entries (a momentary snapshot; a corrupt pair of
    /// indices is clamped to `capacity`).
    pub fn len(&self) -> usize {
        let (p, c) = self.indices();
        p.wrapping_sub(c).min(u64::from(self.capacity)) as usize
    }

    /// Whether the ring looked empty at the moment of the call.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Become the producer of this ring.
    ///
    /// # Safety
    /// - At most one producer may exist for the ring at any time, across all processes
    ///   (two would write the same entries concurrently).
    /// - The memory must stay valid for `'a` (the caller chooses `'a`).
    pub unsafe fn producer<'a>(&self) -> SpscProducer<'a, T> {
        // Relaxed: our own index, read once to resume where the previous producer (if
        // any) stopped; from now on it is kept locally and only stored.
        let head = self.producer_index().load(Ordering::Relaxed);
        // observe(): pairs with the consumer's publish() store of its index, so its reads
        // of every entry below the loaded index happen-before we overwrite them.
        let tail = self.consumer_index().load(sync::observe());
        SpscProducer {
            ring: *self,
            head,
            cached_tail: tail,
            _region: PhantomData,
        }
    }

    /// Become the consumer of this ring.
    ///
    /// # Safety
    /// - At most one consumer may exist for the ring at any time, across all processes.
    /// - The memory must stay valid for `'a` (the caller chooses `'a`).
    pub unsafe fn consumer<'a>(&self) -> SpscConsumer<'a, T> {
        // Relaxed: our own index, read once; from now on kept locally and only stored.
        let tail = self.consumer_index().load(Ordering::Relaxed);
        // observe(): pairs with the producer's publish() store of its index, so its
        // writes of every entry below the loaded index are visible to our reads.
        let head = self.producer_index().load(sync::observe());
        SpscConsumer {
            ring: *self,
            tail,
            cached_head: head,
            _region: PhantomData,
        }
    }
}

fn check_aligned(header: *mut SpscRingHeader) -> Result<(), SpscError> {
    let addr = header as usize;
    if addr == 0 || addr % align_of::<SpscRingHeader>() != 0 {
        return Err(SpscError::Misaligned { addr });
    }
    Ok(())
}

/// The entries start right after the header.
fn entries_of<T>(header: *mut SpscRingHeader) -> *mut T {
    header
        .cast::<u8>()
        .wrapping_add(SpscRingHeader::SIZE)
        .cast::<T>()
}

/// A ring over a borrowed [`Region`].
///
/// ```
/// use roam_shm::region::HeapRegion;
/// use roam_shm::spsc::{PushResult, SpscRing};
///
/// let region = HeapRegion::new_zeroed(SpscRing::<u64>::required_size(16));
/// let ring = SpscRing::<u64>::init(region.region(), 16).unwrap();
/// let (mut producer, mut consumer) = ring.split();
/// assert!(matches!(producer.push(42), PushResult::Ok));
/// assert_eq!(consumer.pop(), Some(42));
/// ```
///
/// Cross-process use: one process calls [`init`](Self::init) and keeps one role
/// ([`into_producer`](Self::into_producer) or [`into_consumer`](Self::into_consumer));
/// the other [`attach`](Self::attach)es and takes the other role. Each ring must have
/// exactly one producer and one consumer at a time: attaching twice and taking the same
/// role twice breaks the protocol (values get lost or duplicated; memory is never
/// accessed out of bounds).
#[derive(Debug)]
pub struct SpscRing<'a, T: Pod> {
    raw: SpscRingRaw<T>,
    _region: PhantomData<Region<'a>>,
}

impl<'a, T: Pod> SpscRing<'a, T> {
    /// Bytes a region needs for a ring of `capacity` entries (saturating).
    pub const fn required_size(capacity: u32) -> usize {
        SpscRingRaw::<T>::required_size(capacity)
    }

    /// Initialise a ring of `capacity` entries (a power of two) at the start of
    /// `region`. Must happen before any other party attaches.
    pub fn init(region: Region<'a>, capacity: u32) -> Result<Self, SpscError> {
        if !capacity.is_power_of_two() {
            return Err(SpscError::InvalidCapacity(capacity));
        }
        let needed = Self::required_size(capacity);
        let header = header_ptr(&region, needed)?;
        // SAFETY: the region is valid for 'a and holds `needed` bytes at `header`
        // (checked); the caller initialises before sharing.
        let raw = unsafe { SpscRingRaw::init(header, capacity)? };
        Ok(SpscRing {
            raw,
            _region: PhantomData,
        })
    }

    /// Attach to a ring initialised at the start of `region`, validating its header.
    pub fn attach(region: Region<'a>) -> Result<Self, SpscError> {
        let header = header_ptr(&region, SpscRingHeader::SIZE)?;
        // SAFETY: the region is valid for 'a and `header` points at its start, with
        // region.len() bytes available from there.
        let raw = unsafe { SpscRingRaw::attach(header, region.len())? };
        Ok(SpscRing {
            raw,
            _region: PhantomData,
        })
    }

    /// Both roles, for use within one process.
    pub fn split(self) -> (SpscProducer<'a, T>, SpscConsumer<'a, T>) {
        // SAFETY: `self` is consumed, so this view hands out each role once; the memory
        // is valid for 'a (borrowed region).
        unsafe { (self.raw.producer(), self.raw.consumer()) }
    }

    /// The producer role only (the consumer lives elsewhere, e.g. in another process).
    pub fn into_producer(self) -> SpscProducer<'a, T> {
        // SAFETY: see split.
        unsafe { self.raw.producer() }
    }

    /// The consumer role only.
    pub fn into_consumer(self) -> SpscConsumer<'a, T> {
        // SAFETY: see split.
        unsafe { self.raw.consumer() }
    }

    /// Capacity in entries.
    #[inline]
    pub fn capacity(&self) -> u32 {
        self.raw.capacity()
    }

    /// Approximate number of pending entries (see [`SpscRingRaw::len`]).
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Whether the ring looked empty at the moment of the call.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The raw view.
    pub fn raw(&self) -> &SpscRingRaw<T> {
        &self.raw
    }
}

fn header_ptr(region: &Region<'_>, needed: usize) -> Result<*mut SpscRingHeader, SpscError> {
    region
        .check(0, needed)
        .map_err(|_| SpscError::RegionTooSmall {
            needed,
            available: region.len(),
        })?;
    region.typed_ptr::<SpscRingHeader>(0).map_err(|e| match e {
        RegionError::Misaligned { .. } => SpscError::Misaligned {
            addr: region.as_ptr() as usize,
        },
        RegionError::OutOfBounds { .. } => SpscError::RegionTooSmall {
            needed,
            available: region.len(),
        },
    })
}

/// The producer role: pushes entries. Process-local state: its own index and a cached
/// copy of the consumer index.
pub struct SpscProducer<'a, T: Pod> {
    ring: SpscRingRaw<T>,
    /// Our index (authoritative; the shared copy is only written).
    head: u64,
    /// Last consumer index we loaded; entries below `cached_tail + capacity` are free.
    cached_tail: u64,
    _region: PhantomData<&'a ()>,
}

impl<T: Pod> core::fmt::Debug for SpscProducer<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SpscProducer")
            .field("head", &self.head)
            .field("cached_tail", &self.cached_tail)
            .field("capacity", &self.ring.capacity)
            .finish()
    }
}

impl<T: Pod> SpscProducer<'_, T> {
    /// Free entries, from the cache if it shows at least `want`, else after reloading
    /// the consumer index.
    #[inline]
    fn free(&mut self, want: u64) -> Result<u64, SpscError> {
        let cap = u64::from(self.ring.capacity);
        let used = self.head.wrapping_sub(self.cached_tail);
        if used <= cap && cap - used >= want {
            return Ok(cap - used);
        }
        self.reload(cap)
    }

    #[cold]
    fn reload(&mut self, cap: u64) -> Result<u64, SpscError> {
        // observe(): pairs with the consumer's publish() store of its index: its reads of
        // the entries it released happen-before our overwriting them.
        let tail = self.ring.consumer_index().load(sync::observe());
        let used = self.head.wrapping_sub(tail);
        if used > cap {
            return Err(SpscError::Corrupt {
                producer: self.head,
                consumer: tail,
                capacity: self.ring.capacity,
            });
        }
        self.cached_tail = tail;
        Ok(cap - used)
    }

    #[inline]
    fn publish(&mut self, n: u64) {
        self.head = self.head.wrapping_add(n);
        // publish(): pairs with the consumer's observe() load of our index: our entry
        // writes happen-before its reads.
        self.ring.producer_index().store(self.head, sync::publish());
    }

    /// Push one value (wait-free).
    pub fn push(&mut self, value: T) -> PushResult<T> {
        match self.try_push(value) {
            Ok(()) => PushResult::Ok,
            Err(RingFull::Full(v)) => PushResult::Full(v),
            Err(RingFull::Corrupt(v, _)) => PushResult::Corrupt(v),
        }
    }

    /// Push one value, handing it back in the error if the ring is full or corrupt.
    pub fn try_push(&mut self, value: T) -> Result<(), RingFull<T>> {
        match self.free(1) {
            Err(e) => Err(RingFull::Corrupt(value, e)),
            Ok(0) => Err(RingFull::Full(value)),
            Ok(_) => {
                let slot = (self.head & u64::from(self.ring.capacity - 1)) as usize;
                // SAFETY: slot < capacity, so the entry is inside the ring (init/attach
                // contract); we are the only producer (role contract) and the entry is
                // free (`free` checked it against an observed consumer index), so the
                // consumer is not reading it.
                unsafe { self.ring.entries.add(slot).write(value) };
                self.publish(1);
                Ok(())
            }
        }
    }

    /// Push as many of `values` as fit, in order; returns how many (0 if the ring is
    /// full or corrupt: [`try_push_batch`](Self::try_push_batch) tells them apart).
    pub fn push_batch(&mut self, values: &[T]) -> usize {
        self.try_push_batch(values).unwrap_or(0)
    }

    /// Push as many of `values` as fit, in order, with one index update.
    pub fn try_push_batch(&mut self, values: &[T]) -> Result<usize, SpscError> {
        if values.is_empty() {
            return Ok(0);
        }
        let free = self.free(values.len() as u64)?;
        let n = values.len().min(free as usize);
        if n == 0 {
            return Ok(0);
        }
        let cap = self.ring.capacity as usize;
        let start = (self.head & u64::from(self.ring.capacity - 1)) as usize;
        let first = n.min(cap - start);
        // SAFETY: [start, start + first) and [0, n - first) lie inside the ring
        // (start < cap, first <= cap - start, n <= free <= cap); those n entries are free
        // and only we write them (as in try_push); `values` is a distinct local slice.
        unsafe {
            ptr::copy_nonoverlapping(values.as_ptr(), self.ring.entries.add(start), first);
            ptr::copy_nonoverlapping(values.as_ptr().add(first), self.ring.entries, n - first);
        }
        self.publish(n as u64);
        Ok(n)
    }

    /// Number of values that can certainly be pushed now: from the cached consumer
    /// index, reloaded (with acquire) only if the cache says the ring is full.
    pub fn free_slots(&mut self) -> Result<usize, SpscError> {
        self.free(1).map(|n| n as usize)
    }

    /// Capacity in entries.
    #[inline]
    pub fn capacity(&self) -> u32 {
        self.ring.capacity
    }

    /// Approximate number of pending entries, from our index and a fresh load of the
    /// consumer's (clamped to the capacity if the consumer index is corrupt).
    pub fn len(&self) -> usize {
        // Relaxed: a diagnostic estimate; pushing reloads with observe().
        let tail = self.ring.consumer_index().load(Ordering::Relaxed);
        self.head
            .wrapping_sub(tail)
            .min(u64::from(self.ring.capacity)) as usize
    }

    /// Whether the ring looked empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the ring looked full (no push would succeed right now).
    pub fn is_full(&self) -> bool {
        self.len() == self.ring.capacity as usize
    }
}

/// The consumer role: pops entries. Process-local state: its own index and a cached
/// copy of the producer index.
pub struct SpscConsumer<'a, T: Pod> {
    ring: SpscRingRaw<T>,
    /// Our index (authoritative; the shared copy is only written).
    tail: u64,
    /// Last producer index we loaded; entries below it are ready.
    cached_head: u64,
    _region: PhantomData<&'a ()>,
}

impl<T: Pod> core::fmt::Debug for SpscConsumer<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SpscConsumer")
            .field("tail", &self.tail)
            .field("cached_head", &self.cached_head)
            .field("capacity", &self.ring.capacity)
            .finish()
    }
}

impl<T: Pod> SpscConsumer<'_, T> {
    /// Ready entries, from the cache if it shows at least `want`, else after reloading
    /// the producer index.
    #[inline]
    fn ready(&mut self, want: u64) -> Result<u64, SpscError> {
        let cap = u64::from(self.ring.capacity);
        let avail = self.cached_head.wrapping_sub(self.tail);
        if avail <= cap && avail >= want {
            return Ok(avail);
        }
        self.reload(cap)
    }

    #[cold]
    fn reload(&mut self, cap: u64) -> Result<u64, SpscError> {
        // observe(): pairs with the producer's publish() store of its index: its writes
        // of the entries below it happen-before our reads.
        let head = self.ring.producer_index().load(sync::observe());
        let avail = head.wrapping_sub(self.tail);
        if avail > cap {
            return Err(SpscError::Corrupt {
                producer: head,
                consumer: self.tail,
                capacity: self.ring.capacity,
            });
        }
        self.cached_head = head;
        Ok(avail)
    }

    #[inline]
    fn release(&mut self, n: u64) {
        self.tail = self.tail.wrapping_add(n);
        // publish(): pairs with the producer's observe() load of our index: our entry
        // reads happen-before its overwriting them.
        self.ring.consumer_index().store(self.tail, sync::publish());
    }

    #[inline]
    fn read_next(&self) -> T {
        let slot = (self.tail & u64::from(self.ring.capacity - 1)) as usize;
        // SAFETY: slot < capacity, so the entry is inside the ring; `ready` saw it
        // published by an observed producer index, the producer does not touch it until
        // we release it, and T: Pod makes any bytes a valid T.
        unsafe { self.ring.entries.add(slot).read() }
    }

    /// Pop the oldest value (wait-free); `None` if the ring is empty **or corrupt**
    /// ([`try_pop`](Self::try_pop) tells them apart).
    pub fn pop(&mut self) -> Option<T> {
        self.try_pop().ok().flatten()
    }

    /// Pop the oldest value: `Ok(None)` if empty, `Err` if the indices are corrupt.
    pub fn try_pop(&mut self) -> Result<Option<T>, SpscError> {
        if self.ready(1)? == 0 {
            return Ok(None);
        }
        let v = self.read_next();
        self.release(1);
        Ok(Some(v))
    }

    /// Copy of the oldest value without consuming it (`None` if empty or corrupt).
    pub fn peek(&mut self) -> Option<T> {
        self.try_peek().ok().flatten()
    }

    /// Copy of the oldest value without consuming it: `Ok(None)` if empty, `Err` if the
    /// indices are corrupt.
    pub fn try_peek(&mut self) -> Result<Option<T>, SpscError> {
        if self.ready(1)? == 0 {
            return Ok(None);
        }
        Ok(Some(self.read_next()))
    }

    /// Pop up to `out.len()` values, oldest first; returns how many (0 if empty or
    /// corrupt: [`try_pop_batch`](Self::try_pop_batch) tells them apart).
    pub fn pop_batch(&mut self, out: &mut [T]) -> usize {
        self.try_pop_batch(out).unwrap_or(0)
    }

    /// Pop up to `out.len()` values, oldest first, with one index update.
    pub fn try_pop_batch(&mut self, out: &mut [T]) -> Result<usize, SpscError> {
        if out.is_empty() {
            return Ok(0);
        }
        let avail = self.ready(out.len() as u64)?;
        let n = out.len().min(avail as usize);
        if n == 0 {
            return Ok(0);
        }
        let cap = self.ring.capacity as usize;
        let start = (self.tail & u64::from(self.ring.capacity - 1)) as usize;
        let first = n.min(cap - start);
        // SAFETY: [start, start + first) and [0, n - first) lie inside the ring
        // (start < cap, first <= cap - start, n <= avail <= cap); those entries are
        // published and not yet released, so the producer leaves them alone; `out` is a
        // distinct local slice; T: Pod makes any bytes valid.
        unsafe {
            ptr::copy_nonoverlapping(self.ring.entries.add(start), out.as_mut_ptr(), first);
            ptr::copy_nonoverlapping(self.ring.entries, out.as_mut_ptr().add(first), n - first);
        }
        self.release(n as u64);
        Ok(n)
    }

    /// Number of values that can certainly be popped now: from the cached producer
    /// index, reloaded (with acquire) only if the cache says the ring is empty.
    pub fn ready_slots(&mut self) -> Result<usize, SpscError> {
        self.ready(1).map(|n| n as usize)
    }

    /// Capacity in entries.
    #[inline]
    pub fn capacity(&self) -> u32 {
        self.ring.capacity
    }

    /// Approximate number of pending entries, from a fresh load of the producer index
    /// and our own (clamped to the capacity if the producer index is corrupt).
    pub fn len(&self) -> usize {
        // Relaxed: a diagnostic estimate; popping reloads with observe().
        let head = self.ring.producer_index().load(Ordering::Relaxed);
        head.wrapping_sub(self.tail)
            .min(u64::from(self.ring.capacity)) as usize
    }

    /// Whether the ring looked empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;
    use crate::region::HeapRegion;

    fn ring(region: &HeapRegion, cap: u32) -> SpscRing<'_, u64> {
        SpscRing::<u64>::init(region.region(), cap).unwrap()
    }

    #[test]
    fn layout_and_required_size() {
        assert_eq!(SpscRingHeader::SIZE, 192);
        assert_eq!(SpscRing::<u64>::required_size(16), 192 + 128);
        assert_eq!(SpscRing::<[u8; 3]>::required_size(4), 192 + 12);
        assert_eq!(
            SpscRing::<[u64; 1 << 33]>::required_size(u32::MAX),
            usize::MAX
        );
    }

    #[test]
    fn init_rejects_bad_capacity_and_small_region() {
        let r = HeapRegion::new_zeroed(4096);
        for cap in [0, 3, 6, 100] {
            assert_eq!(
                SpscRing::<u64>::init(r.region(), cap).unwrap_err(),
                SpscError::InvalidCapacity(cap)
            );
        }
        let small = HeapRegion::new_zeroed(SpscRing::<u64>::required_size(16) - 1);
        let small = small
            .region()
            .sub(0, SpscRing::<u64>::required_size(16) - 1)
            .unwrap();
        assert!(matches!(
            SpscRing::<u64>::init(small, 16),
            Err(SpscError::RegionTooSmall { .. })
        ));
        let mis = r.region().sub(8, 1024).unwrap();
        assert!(matches!(
            SpscRing::<u64>::init(mis, 4),
            Err(SpscError::Misaligned { .. })
        ));
    }

    #[test]
    fn attach_validates_header() {
        let r = HeapRegion::new_zeroed(4096);
        // Zeroed memory: capacity 0.
        assert_eq!(
            SpscRing::<u64>::attach(r.region()).unwrap_err(),
            SpscError::InvalidCapacity(0)
        );
        ring(&r, 16);
        let ok = SpscRing::<u64>::attach(r.region()).unwrap();
        assert_eq!(ok.capacity(), 16);
        // Too short for the declared capacity.
        let short = r.region().sub(0, 192 + 8 * 15).unwrap();
        assert!(matches!(
            SpscRing::<u64>::attach(short),
            Err(SpscError::RegionTooSmall { .. })
        ));
        // Scribbled capacity.
        // SAFETY: offset 128 holds the capacity atomic, which is plain bytes here.
        unsafe { r.region().as_ptr().add(128).cast::<u32>().write(12) };
        assert_eq!(
            SpscRing::<u64>::attach(r.region()).unwrap_err(),
            SpscError::InvalidCapacity(12)
        );
    }

    #[test]
    fn push_pop_fifo_with_wraparound() {
        let r = HeapRegion::new_zeroed(SpscRing::<u64>::required_size(4));
        let (mut p, mut c) = ring(&r, 4).split();
        let mut next_in = 0u64;
        let mut next_out = 0u64;
        for round in 0..100 {
            let k = round % 5;
            for _ in 0..k {
                match p.push(next_in) {
                    PushResult::Ok => next_in += 1,
                    PushResult::Full(v) => {
                        assert_eq!(v, next_in);
                        assert_eq!(next_in - next_out, 4);
                    }
                    PushResult::Corrupt(_) => panic!("corrupt"),
                }
            }
            while let Some(v) = c.pop() {
                assert_eq!(v, next_out);
                next_out += 1;
            }
            assert_eq!(next_in, next_out);
        }
        assert!(next_in > 100);
    }

    #[test]
    fn full_hands_value_back_and_capacity_one_works() {
        let r = HeapRegion::new_zeroed(SpscRing::<u64>::required_size(1));
        let (mut p, mut c) = ring(&r, 1).split();
        assert!(p.push(1).is_ok());
        assert_eq!(p.push(2), PushResult::Full(2));
        assert_eq!(p.try_push(3), Err(RingFull::Full(3)));
        assert!(p.is_full());
        assert_eq!(c.len(), 1);
        assert_eq!(c.peek(), Some(1));
        assert_eq!(c.pop(), Some(1));
        assert_eq!(c.pop(), None);
        assert_eq!(p.try_push(4), Ok(()));
        assert_eq!(c.pop(), Some(4));
        assert!(c.is_empty() && p.is_empty());
    }

    #[test]
    fn batches_wrap() {
        let r = HeapRegion::new_zeroed(SpscRing::<u32>::required_size(8));
        let (mut p, mut c) = SpscRing::<u32>::init(r.region(), 8).unwrap().split();
        let mut out = [0u32; 8];
        assert_eq!(p.push_batch(&[1, 2, 3, 4, 5]), 5);
        assert_eq!(c.pop_batch(&mut out[..3]), 3);
        assert_eq!(&out[..3], &[1, 2, 3]);
        // 2 pending, 6 free; the write wraps the end of the ring.
        assert_eq!(p.push_batch(&[6, 7, 8, 9, 10, 11, 12]), 6);
        assert_eq!(p.push_batch(&[13]), 0);
        assert_eq!(c.pop_batch(&mut out), 8);
        assert_eq!(out, [4, 5, 6, 7, 8, 9, 10, 11]);
        assert_eq!(c.pop_batch(&mut out), 0);
        assert_eq!(p.push_batch(&[]), 0);
        assert_eq!(c.pop_batch(&mut []), 0);
    }

    #[test]
    fn corrupt_indices_are_reported_not_trusted() {
        let r = HeapRegion::new_zeroed(SpscRing::<u64>::required_size(4));
        let (mut p, _c) = ring(&r, 4).split();
        let base = r.region().as_ptr();
        // A broken consumer says it consumed 1000 entries that were never produced.
        // SAFETY: offset 64 is the consumer index; plain bytes outside loom.
        unsafe { base.add(64).cast::<u64>().write(1000) };
        // The producer's cache says there is room, so the first pushes proceed...
        for i in 0..4 {
            assert!(p.push(i).is_ok());
        }
        // ...and the reload on "full" exposes the garbage.
        assert_eq!(p.push(9), PushResult::Corrupt(9));
        assert!(matches!(
            p.try_push(9),
            Err(RingFull::Corrupt(9, SpscError::Corrupt { .. }))
        ));
        assert_eq!(
            p.try_push_batch(&[1, 2]).unwrap_err(),
            SpscError::Corrupt {
                producer: 4,
                consumer: 1000,
                capacity: 4
            }
        );
        assert_eq!(p.len(), 4, "clamped");

        // A broken producer claims far more entries than the capacity.
        let r2 = HeapRegion::new_zeroed(SpscRing::<u64>::required_size(4));
        let (_p2, mut c2) = ring(&r2, 4).split();
        // SAFETY: offset 0 is the producer index.
        unsafe { r2.region().as_ptr().cast::<u64>().write(u64::MAX - 3) };
        assert!(matches!(c2.try_pop(), Err(SpscError::Corrupt { .. })));
        assert_eq!(c2.pop(), None);
        assert_eq!(c2.pop_batch(&mut [0; 4]), 0);
        assert_eq!(c2.len(), 4, "clamped");
        // Within capacity, a lying producer only yields zeroed/old entries, in bounds.
        // SAFETY: as above.
        unsafe { r2.region().as_ptr().cast::<u64>().write(3) };
        assert_eq!(c2.pop_batch(&mut [7; 4]), 3);
    }

    #[test]
    fn indices_wrap_around_u64() {
        let r = HeapRegion::new_zeroed(SpscRing::<u64>::required_size(4));
        ring(&r, 4);
        let base = r.region().as_ptr();
        // SAFETY: offsets 0 and 64 are the two indices; nobody else uses the region.
        unsafe {
            base.cast::<u64>().write(u64::MAX - 1);
            base.add(64).cast::<u64>().write(u64::MAX - 1);
        }
        let (mut p, mut c) = SpscRing::<u64>::attach(r.region()).unwrap().split();
        let mut out = [0u64; 4];
        for round in 0..5u64 {
            assert_eq!(p.push_batch(&[round, round + 1, round + 2]), 3);
            assert_eq!(c.pop_batch(&mut out), 3);
            assert_eq!(&out[..3], &[round, round + 1, round + 2]);
        }
        assert!(c.tail < 100, "wrapped: {}", c.tail);
    }

    #[test]
    fn roles_in_two_threads() {
        const N: u64 = 100_000;
        let r = HeapRegion::new_zeroed(SpscRing::<u64>::required_size(64));
        let ring = ring(&r, 64);
        let (mut p, mut c) = ring.split();
        std::thread::scope(|s| {
            s.spawn(move || {
                let mut i = 0;
                while i < N {
                    let batch: Vec<u64> = (i..(i + 7).min(N)).collect();
                    let n = p.push_batch(&batch);
                    i += n as u64;
                    if n == 0 {
                        std::thread::yield_now();
                    }
                }
            });
            let mut expect = 0;
            let mut buf = [0u64; 5];
            while expect < N {
                let n = c.pop_batch(&mut buf);
                for &v in &buf[..n] {
                    assert_eq!(v, expect);
                    expect += 1;
                }
                if n == 0 {
                    std::thread::yield_now();
                }
            }
        });
    }
}
