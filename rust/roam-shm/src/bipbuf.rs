//! BipBuffer: the variable-length, single-producer/single-consumer byte ring that
//! carries frames in each direction between the host and a guest (roam 7.x, layout
//! notes §3).
//!
//! # Layout (128-byte header, data at +128)
//! | offset | field | owner |
//! |---|---|---|
//! | 0 | `write` u32 | producer |
//! | 4 | `watermark` u32 (0 = no wrap) | producer sets, consumer clears |
//! | 8 | `capacity` u32 | fixed at init |
//! | 12..64 | padding | |
//! | 64 | `read` u32 | consumer |
//! | 68..128 | padding | |
//!
//! # Algorithm (roam 7.3's states and decisions, so either side can be a roam peer)
//! - **grant(n)**: n = 0 succeeds. If `write >= read`: grant `[write, write+n)` when it
//!   fits before the end; else if `read == 0` the ring is full; else *wrap*: set
//!   `watermark` to the old `write` and `write = 0`, and grant `[0, n)` if `n < read`;
//!   otherwise report full **but keep the wrap**. If `write < read`: grant `[write, write+n)`
//!   only if `write + n < read` (strict).
//! - **commit(n)**: `write += n`.
//! - **read**: if a wrap is active (`watermark != 0`), return the tail
//!   `[read, watermark)`, or once it is consumed reset `read = watermark = 0` and return
//!   `[0, write)`; without a wrap, return `[read, write)`.
//! - **release(n)**: `read += n`; reaching the watermark resets `read = watermark = 0`.
//!
//! # Two deliberate differences from roam 7.3's code (a race fix)
//! roam's producer stores `watermark` and then `write = 0`. A consumer that runs
//! between the two stores with the tail consumed sees the watermark, resets, and
//! returns `[0, old write)`: records it already consumed, which the producer is about
//! to overwrite (a data race and lost/duplicated records; loom finds it, see
//! `tests/loom_bipbuf.rs`). Both sides here are hardened without changing any state
//! either side can observe:
//! - our producer stores `write = 0` *first*, then the watermark (seeing the watermark
//!   implies seeing `write = 0`; a roam consumer reads the gap as empty);
//! - our consumer resets only once it sees the wrap's `write = 0` (a post-wrap `write`
//!   is always below the watermark); while a roam producer is between its two stores
//!   it reports empty (or, in release, stores `read = watermark`, a state roam's
//!   read also resets from).
//!
//! # Beyond roam: a corrupt peer cannot make us go out of bounds
//! Every cursor loaded from shared memory is peer-controlled. All of them are checked
//! against the capacity fixed when this process attached (kept process-locally; the
//! shared `capacity` field is never trusted again), and a value out of range yields
//! [`BipBufError::Corrupt`] instead of an offset. A roam peer never stores such values,
//! so the extra checks never reject a well-behaved peer.
//!
//! # Stall (§13) and how to avoid it
//! When an entry may be larger than half the ring, both cursors can rest at a position
//! `p` with `capacity - n < p <= n`: the grant wraps, cannot fit before `read`, keeps the
//! wrap (as roam does) and fails; only a consumer `read` resets the cursors, but the
//! consumer has nothing new to read and is not woken. The wake-up protocol that
//! avoids it (model-checked in `tests/loom_bipbuf.rs`):
//! - producer: ring the consumer after each commit, and after a grant that reports
//!   [`GrantOutcome::FullWrapped`] ([`BipBufRaw::would_stall`] detects the state
//!   without a grant);
//! - consumer: ring the producer after each release, and after a read that reports
//!   [`ReadOutcome::EmptyAfterReset`] (the reset freed the room).
//!
//! The segment configuration also rejects entries larger than half the ring.
//!
//! # Example
//! ```
//! use roam_shm::bipbuf::BipBuf;
//! use roam_shm::region::HeapRegion;
//!
//! let mem = HeapRegion::new_zeroed(BipBuf::required_size(64));
//! // SAFETY: this is the only handle to this ring, and `mem` outlives it.
//! let buf = unsafe { BipBuf::init(mem.region(), 64) }.unwrap();
//! let (mut producer, mut consumer) = buf.split();
//!
//! let mut grant = producer.grant(5).unwrap().expect("room");
//! grant.copy_from_slice(b"hello");
//! grant.commit(5).unwrap();
//!
//! assert_eq!(consumer.read().unwrap(), Some(&b"hello"[..]));
//! consumer.release(5).unwrap();
//! assert_eq!(consumer.read().unwrap(), None);
//! ```

use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::ptr;

use crate::region::{Region, RegionError};
use crate::sync::{self, Ordering};

use crate::sync::AtomicU32;

/// Size of the BipBuffer header in bytes; the data starts this far after the header.
pub const BIPBUF_HEADER_SIZE: usize = 128;

const WORD: usize = size_of::<AtomicU32>();

/// The shared BipBuffer header: 128 bytes, two cache lines (producer's, consumer's).
///
/// The cursor fields are public (as in roam) for bindings, diagnostics and tests that
/// emulate other peers; the protocol itself lives in [`BipBufRaw`]. Anything stored
/// here is peer-controlled: [`BipBufRaw`] validates every value it loads.
#[repr(C, align(64))]
#[derive(Debug)]
pub struct BipBufHeader {
    // --- cache line 0: producer-owned ---
    /// Producer cursor: offset of the next write (u32 @0).
    pub write: AtomicU32,
    /// Wrap boundary, 0 = no wrap (u32 @4): set by the producer, cleared by the
    /// consumer.
    pub watermark: AtomicU32,
    /// Data capacity in bytes (u32 @8), fixed at init. Atomic here (a plain u32 in
    /// roam, same bytes) so that reading a value a misbehaving peer is rewriting is not
    /// a data race; [`BipBufRaw`] reads it once, at attach.
    pub capacity: AtomicU32,
    _pad0: [u8; 64 - 3 * WORD],
    // --- cache line 1: consumer-owned ---
    /// Consumer cursor: offset of the consumed frontier (u32 @64).
    pub read: AtomicU32,
    _pad1: [u8; 64 - WORD],
}

// Loom's atomics are not 4 bytes, so the layout is only asserted for the real build.
#[cfg(not(feature = "loom"))]
const _: () = {
    assert!(size_of::<BipBufHeader>() == BIPBUF_HEADER_SIZE);
    assert!(align_of::<BipBufHeader>() == 64);
    assert!(core::mem::offset_of!(BipBufHeader, write) == BipBufHeader::WRITE_OFFSET);
    assert!(core::mem::offset_of!(BipBufHeader, watermark) == BipBufHeader::WATERMARK_OFFSET);
    assert!(core::mem::offset_of!(BipBufHeader, capacity) == BipBufHeader::CAPACITY_OFFSET);
    assert!(core::mem::offset_of!(BipBufHeader, read) == BipBufHeader::READ_OFFSET);
};
// Under loom the data must still start after the (bigger) header.
#[cfg(feature = "loom")]
const _: () = assert!(size_of::<BipBufHeader>() <= BIPBUF_HEADER_SIZE);

impl BipBufHeader {
    /// Byte offset of `write` (u32, producer cursor).
    pub const WRITE_OFFSET: usize = 0;
    /// Byte offset of `watermark` (u32, 0 = no wrap).
    pub const WATERMARK_OFFSET: usize = 4;
    /// Byte offset of `capacity` (u32).
    pub const CAPACITY_OFFSET: usize = 8;
    /// Byte offset of `read` (u32, consumer cursor).
    pub const READ_OFFSET: usize = 64;

    /// A fresh, empty header for `capacity` data bytes (all cursors 0, padding 0).
    ///
    /// Write it into shared memory with `ptr::write` (as [`BipBufRaw::init`] does);
    /// zeroed memory is not assumed to be a valid atomic (it is not under loom).
    pub fn new(capacity: u32) -> BipBufHeader {
        BipBufHeader {
            write: AtomicU32::new(0),
            watermark: AtomicU32::new(0),
            capacity: AtomicU32::new(capacity),
            _pad0: [0; 64 - 3 * WORD],
            read: AtomicU32::new(0),
            _pad1: [0; 64 - WORD],
        }
    }
}

/// Errors of BipBuffer operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BipBufError {
    /// A grant larger than the whole ring can never succeed.
    #[error("grant of {len} bytes exceeds the ring capacity of {capacity} bytes")]
    TooLarge {
        /// Requested length.
        len: usize,
        /// Ring capacity.
        capacity: u32,
    },
    /// `commit(len)` beyond what was granted (or beyond the capacity).
    #[error("commit of {len} bytes exceeds the {available} granted/grantable bytes")]
    CommitOverflow {
        /// Requested length.
        len: u32,
        /// The most that could have been committed.
        available: u32,
    },
    /// `release(len)` beyond what is readable.
    #[error("release of {len} bytes exceeds the {available} readable bytes")]
    ReleaseOverflow {
        /// Requested length.
        len: u32,
        /// The most that could have been released.
        available: u32,
    },
    /// A value in the shared header is out of range: the peer is corrupt or hostile.
    #[error("corrupt BipBuffer header: {field} = {value} exceeds capacity {capacity}")]
    Corrupt {
        /// Which header field (`"write"`, `"read"` or `"watermark"`).
        field: &'static str,
        /// The value found.
        value: u32,
        /// The capacity fixed at attach time.
        capacity: u32,
    },
    /// A capacity of 0 (at init, or found in the header at attach).
    #[error("invalid BipBuffer capacity {capacity}")]
    InvalidCapacity {
        /// The rejected capacity.
        capacity: u32,
    },
    /// The region cannot hold the header plus `capacity` bytes, or is misaligned.
    #[error(transparent)]
    Region(#[from] RegionError),
}

/// Result of [`BipBufRaw::try_grant_outcome`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantOutcome {
    /// `[offset, offset + len)` of the data area is now exclusively the producer's.
    Granted {
        /// Offset of the grant, relative to the data area.
        offset: u32,
    },
    /// Not enough contiguous room now; nothing changed. Wait for the consumer.
    Full,
    /// Not enough contiguous room, **and this call wrapped** (`watermark = write`,
    /// `write = 0`; kept, as roam does). If the consumer has already consumed
    /// everything, only its next read resets the cursors, and no commit will wake it:
    /// the caller must wake the consumer (ring its doorbell), then wait as for
    /// [`Full`](Self::Full); the consumer's read then reports
    /// [`ReadOutcome::EmptyAfterReset`] and wakes the producer back.
    FullWrapped,
}

impl GrantOutcome {
    /// The granted offset, if any.
    pub fn offset(self) -> Option<u32> {
        match self {
            GrantOutcome::Granted { offset } => Some(offset),
            GrantOutcome::Full | GrantOutcome::FullWrapped => None,
        }
    }
}

/// Result of [`BipBufRaw::try_read_outcome`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// `[offset, offset + len)` of the data area is readable (`len > 0`) and stays the
    /// consumer's until released.
    Data {
        /// Offset relative to the data area.
        offset: u32,
        /// Number of contiguous readable bytes.
        len: u32,
    },
    /// Nothing to read; nothing changed.
    Empty,
    /// Nothing to read, but this call found the tail of a wrap consumed and reset
    /// `read = watermark = 0`, which frees room the producer may be waiting for (the
    /// §13 stall): wake the producer.
    EmptyAfterReset,
}

impl ReadOutcome {
    /// `(offset, len)` of the readable bytes, if any.
    pub fn data(self) -> Option<(u32, u32)> {
        match self {
            ReadOutcome::Data { offset, len } => Some((offset, len)),
            ReadOutcome::Empty | ReadOutcome::EmptyAfterReset => None,
        }
    }
}

/// The BipBuffer algorithm over raw pointers to a header and its data area.
///
/// This is the layer the C ABI exposes: it hands out *offsets* into the data area
/// (relative to `data`, which is normally `header + 128`), never references, and only
/// ever touches the header atomics; the caller reads and writes the data bytes.
///
/// Single producer, single consumer: at any time at most one party (in any process)
/// calls the producer methods ([`try_grant`](Self::try_grant),
/// [`try_grant_outcome`](Self::try_grant_outcome), [`commit`](Self::commit)) and at
/// most one calls the consumer methods ([`try_read`](Self::try_read),
/// [`release`](Self::release)). Breaking that cannot make these methods unsound, but
/// the offsets they return would then overlap.
///
/// The capacity is captured when the value is built and never re-read from shared
/// memory; every cursor loaded from the header is checked against it.
#[derive(Debug)]
pub struct BipBufRaw {
    header: *mut BipBufHeader,
    data: *mut u8,
    capacity: u32,
}

// SAFETY: BipBufRaw only accesses the header through atomics (valid from any thread)
// and never dereferences `data`; the pointers stay valid per the constructor contract.
unsafe impl Send for BipBufRaw {}
// SAFETY: as above; every method takes `&self` and only performs atomic operations.
unsafe impl Sync for BipBufRaw {}

impl BipBufRaw {
    /// Initialize a header for `capacity` data bytes (by `ptr::write` of
    /// [`BipBufHeader::new`]) and return a handle to it.
    ///
    /// # Errors
    /// [`BipBufError::InvalidCapacity`] if `capacity` is 0 (nothing is written).
    ///
    /// # Safety
    /// - `header` is non-null, 64-byte aligned and valid for writes of 128 bytes;
    ///   `data` is valid for reads and writes of `capacity` bytes; neither overlaps
    ///   the other; both stay valid for as long as the returned value (or anything
    ///   derived from its offsets) is used.
    /// - No one else accesses the header during initialization.
    /// - The header is thereafter only accessed atomically.
    pub unsafe fn init(
        header: *mut BipBufHeader,
        data: *mut u8,
        capacity: u32,
    ) -> Result<BipBufRaw, BipBufError> {
        if capacity == 0 {
            return Err(BipBufError::InvalidCapacity { capacity });
        }
        debug_assert!(header.is_aligned(), "BipBufRaw::init: misaligned header");
        // SAFETY: the caller guarantees `header` is valid, aligned and not accessed by
        // anyone else during initialization; a constructed value (not zeroed bytes) is
        // written, so the atomics are valid under loom too.
        unsafe { ptr::write(header, BipBufHeader::new(capacity)) };
        Ok(BipBufRaw {
            header,
            data,
            capacity,
        })
    }

    /// Attach to an initialized header, reading its capacity once.
    ///
    /// The caller must then make sure `data` really has that many bytes (the
    /// [`BipBuf`] wrapper checks it against its region); prefer
    /// [`from_parts`](Self::from_parts) when the capacity is known from elsewhere
    /// (e.g. the segment header).
    ///
    /// # Errors
    /// [`BipBufError::InvalidCapacity`] if the header's capacity is 0.
    ///
    /// # Safety
    /// `header` is non-null, 64-byte aligned, valid for 128 bytes and only accessed
    /// atomically; `data` is valid for reads and writes of the capacity stored in the
    /// header; both stay valid while the returned value is used.
    pub unsafe fn attach(
        header: *mut BipBufHeader,
        data: *mut u8,
    ) -> Result<BipBufRaw, BipBufError> {
        debug_assert!(header.is_aligned(), "BipBufRaw::attach: misaligned header");
        // SAFETY: the caller guarantees `header` points to a valid header; only the
        // `capacity` atomic is borrowed, not the whole struct.
        let cap = unsafe { &(*header).capacity };
        // Relaxed: the capacity is fixed before the ring is shared (the handoff of the
        // segment itself, e.g. the bootstrap socket, orders it); nothing else pairs.
        let capacity = cap.load(Ordering::Relaxed);
        // SAFETY: forwarded caller contract; `capacity` is the header's.
        unsafe { BipBufRaw::from_parts(header, data, capacity) }
    }

    /// Build a handle with a capacity the caller trusts (e.g. from the segment
    /// header), without reading the shared `capacity` field.
    ///
    /// # Errors
    /// [`BipBufError::InvalidCapacity`] if `capacity` is 0.
    ///
    /// # Safety
    /// `header` is non-null, 64-byte aligned, valid for 128 bytes and only accessed
    /// atomically; `data` is valid for reads and writes of `capacity` bytes; both stay
    /// valid while the returned value is used.
    pub unsafe fn from_parts(
        header: *mut BipBufHeader,
        data: *mut u8,
        capacity: u32,
    ) -> Result<BipBufRaw, BipBufError> {
        if capacity == 0 {
            return Err(BipBufError::InvalidCapacity { capacity });
        }
        Ok(BipBufRaw {
            header,
            data,
            capacity,
        })
    }

    #[inline]
    fn write(&self) -> &AtomicU32 {
        // SAFETY: constructor contract: `header` is valid while `self` is used; only
        // the atomic field is borrowed (never the padding a peer may scribble on).
        unsafe { &(*self.header).write }
    }

    #[inline]
    fn watermark(&self) -> &AtomicU32 {
        // SAFETY: as in `write()`.
        unsafe { &(*self.header).watermark }
    }

    #[inline]
    fn read(&self) -> &AtomicU32 {
        // SAFETY: as in `write()`.
        unsafe { &(*self.header).read }
    }

    /// Reject a peer-controlled cursor beyond the capacity fixed at attach.
    #[inline]
    fn check(&self, field: &'static str, value: u32) -> Result<u32, BipBufError> {
        if value <= self.capacity {
            Ok(value)
        } else {
            Err(BipBufError::Corrupt {
                field,
                value,
                capacity: self.capacity,
            })
        }
    }

    /// Data capacity in bytes, as fixed when this handle was built.
    #[inline]
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// The header pointer this handle was built from.
    #[inline]
    pub fn header_ptr(&self) -> *mut BipBufHeader {
        self.header
    }

    /// The data-area pointer; offsets returned by this handle are relative to it.
    #[inline]
    pub fn data_ptr(&self) -> *mut u8 {
        self.data
    }

    /// Load `write` (Acquire), unvalidated (diagnostics, `roam_bipbuf_load_write_acquire`).
    pub fn load_write(&self) -> u32 {
        // Acquire: pairs with the producer's Release stores of `write`.
        self.write().load(Ordering::Acquire)
    }

    /// Load `read` (Acquire), unvalidated (diagnostics, `roam_bipbuf_load_read_acquire`).
    pub fn load_read(&self) -> u32 {
        // Acquire: pairs with the consumer's Release stores of `read`.
        self.read().load(Ordering::Acquire)
    }

    /// Load `watermark` (Acquire), unvalidated (`roam_bipbuf_load_watermark_acquire`).
    pub fn load_watermark(&self) -> u32 {
        // Acquire: pairs with the Release stores of `watermark` (wrap, reset).
        self.watermark().load(Ordering::Acquire)
    }

    /// Producer: reserve `len` contiguous bytes; `Ok(Some(offset))` on success (then
    /// write `[offset, offset + len)` and [`commit`](Self::commit)), `Ok(None)` when full.
    ///
    /// `len == 0` always succeeds with offset 0 (as roam's C ABI). A successful grant
    /// replaces any earlier uncommitted one.
    ///
    /// **Stall warning (layout notes §13):** a failed grant may have *wrapped*
    /// (`write = 0`, `watermark = old write`; roam keeps this state). If the consumer
    /// had already consumed everything, nothing wakes it to reset the cursors, and
    /// every later grant of `len` fails too. This happens when both cursors rest at `p`
    /// with `capacity - len < p <= len`, i.e. only for entries larger than half the
    /// ring. Use [`try_grant_outcome`](Self::try_grant_outcome) (reports
    /// [`GrantOutcome::FullWrapped`]) or [`would_stall`](Self::would_stall) and wake
    /// the consumer in that case.
    ///
    /// # Errors
    /// [`BipBufError::TooLarge`] if `len > capacity` (no side effects);
    /// [`BipBufError::Corrupt`] if a cursor in the header is out of range.
    pub fn try_grant(&self, len: u32) -> Result<Option<u32>, BipBufError> {
        self.try_grant_outcome(len).map(GrantOutcome::offset)
    }

    /// Producer: [`try_grant`](Self::try_grant), also telling whether a failed grant
    /// wrapped (see [`GrantOutcome::FullWrapped`]).
    ///
    /// # Errors
    /// As [`try_grant`](Self::try_grant).
    pub fn try_grant_outcome(&self, len: u32) -> Result<GrantOutcome, BipBufError> {
        if len == 0 {
            return Ok(GrantOutcome::Granted { offset: 0 });
        }
        let capacity = self.capacity;
        if len > capacity {
            return Err(BipBufError::TooLarge {
                len: len as usize,
                capacity,
            });
        }
        // Relaxed: `write` is our own cursor; only the producer stores it.
        let write = self.check("write", self.write().load(Ordering::Relaxed))?;
        // observe (Acquire): pairs with the consumer's publish of `read` in
        // release/try_read; bytes below it have been read, so we may overwrite them.
        let read = self.check("read", self.read().load(sync::observe()))?;

        if write >= read {
            if capacity - write >= len {
                return Ok(GrantOutcome::Granted { offset: write });
            }
            if read == 0 {
                // Wrapping would make write == read == 0, which means "empty".
                return Ok(GrantOutcome::Full);
            }
            // Wrap: `write = 0`, then `watermark = write`. roam 7.3 stores the two in
            // the other order, which lets a consumer that sees the watermark (tail
            // consumed) but still the old `write` reset and re-read stale bytes from
            // 0 (found by loom, see tests/loom_bipbuf.rs). In this order, seeing the
            // watermark implies seeing `write = 0`; roam's consumer is safe with it
            // too (while the watermark is not yet visible, post-wrap `write < read`
            // reads as empty).
            // publish (Release): pairs with the consumer's observe of `write`.
            self.write().store(0, sync::publish());
            // publish (Release): pairs with the consumer's observe of `watermark`: the
            // bytes committed below it and the `write = 0` above are visible with it.
            self.watermark().store(write, sync::publish());
            if len < read {
                Ok(GrantOutcome::Granted { offset: 0 })
            } else {
                // roam keeps the wrap (its spec says "undo"; its code does not).
                Ok(GrantOutcome::FullWrapped)
            }
        } else if len < read - write {
            // Strict `write + len < read`: the ring never becomes "write == read" full.
            Ok(GrantOutcome::Granted { offset: write })
        } else {
            Ok(GrantOutcome::Full)
        }
    }

    /// Producer: whether `len` bytes could be granted right now, without side effects
    /// (no wrap is taken). `len == 0` is always grantable, `len > capacity` never.
    ///
    /// # Errors
    /// [`BipBufError::Corrupt`] if a cursor in the header is out of range.
    pub fn can_grant(&self, len: u32) -> Result<bool, BipBufError> {
        if len == 0 {
            return Ok(true);
        }
        if len > self.capacity {
            return Ok(false);
        }
        // Relaxed: own cursor.
        let write = self.check("write", self.write().load(Ordering::Relaxed))?;
        // observe (Acquire): pairs with the consumer's publish of `read` (as try_grant).
        let read = self.check("read", self.read().load(sync::observe()))?;
        Ok(Self::grantable(self.capacity, write, read, len))
    }

    #[inline]
    fn grantable(capacity: u32, write: u32, read: u32, len: u32) -> bool {
        if write >= read {
            capacity - write >= len || (read != 0 && len < read)
        } else {
            len < read - write
        }
    }

    /// Producer: whether the ring is stalled for a grant of `len` (§13): the grant
    /// cannot succeed, the consumer has nothing left to read (so no commit will wake
    /// it), and only a consumer read, which resets the cursors to 0, can make room.
    /// When this is true after a failed grant, wake the consumer.
    ///
    /// It is `false` when `len` could be granted, when `len > capacity`, or when the
    /// consumer still has data to read (its own progress will free the room).
    ///
    /// # Errors
    /// [`BipBufError::Corrupt`] if a cursor in the header is out of range.
    pub fn would_stall(&self, len: u32) -> Result<bool, BipBufError> {
        if len == 0 || len > self.capacity {
            return Ok(false);
        }
        // Relaxed: own cursor.
        let write = self.check("write", self.write().load(Ordering::Relaxed))?;
        // observe (Acquire) for both: pair with the consumer's publish of `read` and
        // `watermark` (its reset). In the stalled state the consumer is idle, so these
        // are stable; while it is active a wrong answer only costs one wake-up.
        let read = self.check("read", self.read().load(sync::observe()))?;
        let watermark = self.check("watermark", self.watermark().load(sync::observe()))?;
        if Self::grantable(self.capacity, write, read, len) || read == 0 {
            return Ok(false);
        }
        let consumer_idle = if watermark == 0 {
            read == write
        } else {
            read >= watermark && write == 0
        };
        Ok(consumer_idle)
    }

    /// Producer: publish `len` granted bytes to the consumer (`write += len`).
    ///
    /// # Errors
    /// [`BipBufError::CommitOverflow`] if `len` is more than could have been granted
    /// at the current `write` (past the capacity, or, after a wrap, not strictly below
    /// `read`); [`BipBufError::Corrupt`] if a cursor is out of range. Nothing is
    /// stored on error.
    pub fn commit(&self, len: u32) -> Result<(), BipBufError> {
        // Relaxed: own cursor.
        let write = self.check("write", self.write().load(Ordering::Relaxed))?;
        let mut available = self.capacity - write;
        // Relaxed: only a sanity bound, no bytes are accessed because of it. `read`
        // only grows from what try_grant saw, or is reset to 0 (then `read <= write`),
        // so this never rejects a grant that was really made.
        let read = self.check("read", self.read().load(Ordering::Relaxed))?;
        if write < read {
            available = read - write - 1;
        }
        if len > available {
            return Err(BipBufError::CommitOverflow { len, available });
        }
        // publish (Release): pairs with the consumer's observe of `write` in
        // try_read/release: the bytes written into the grant become visible with it.
        self.write().store(write + len, sync::publish());
        Ok(())
    }

    /// Consumer: the contiguous readable bytes as `Some((offset, len))` (`len > 0`), or
    /// `None` when empty. Finishing the tail of a wrap resets `read = watermark = 0`
    /// here (as roam); use [`try_read_outcome`](Self::try_read_outcome) to learn when
    /// that reset freed room without returning data (then wake the producer).
    ///
    /// The bytes stay the consumer's until [`release`](Self::release).
    ///
    /// # Errors
    /// [`BipBufError::Corrupt`] if a cursor in the header is out of range.
    pub fn try_read(&self) -> Result<Option<(u32, u32)>, BipBufError> {
        self.try_read_outcome().map(ReadOutcome::data)
    }

    /// Consumer: [`try_read`](Self::try_read), also telling whether an empty read reset
    /// the cursors (see [`ReadOutcome::EmptyAfterReset`]).
    ///
    /// # Errors
    /// As [`try_read`](Self::try_read).
    pub fn try_read_outcome(&self) -> Result<ReadOutcome, BipBufError> {
        // Relaxed: own cursor.
        let read = self.check("read", self.read().load(Ordering::Relaxed))?;
        // observe (Acquire): pairs with the producer's publish of `write` (commits,
        // wrap). Loaded before the watermark as roam does; with either producer store
        // order, a post-wrap `write` seen without its watermark is below `read` and
        // reads as empty.
        let write = self.check("write", self.write().load(sync::observe()))?;
        // observe (Acquire): pairs with the producer's publish of `watermark` in the
        // wrap: the bytes below it were committed before it.
        let watermark = self.check("watermark", self.watermark().load(sync::observe()))?;

        if watermark != 0 {
            if read < watermark {
                return Ok(ReadOutcome::Data {
                    offset: read,
                    len: watermark - read,
                });
            }
            // Tail consumed: reset, but only once the wrap's `write = 0` is visible.
            if !self.wrap_done(watermark)? {
                return Ok(ReadOutcome::Empty);
            }
            self.reset_after_wrap();
            // observe (Acquire): pairs with the producer's publish of `write` (commits
            // at the front after the wrap).
            let write = self.check("write", self.write().load(sync::observe()))?;
            return Ok(if write > 0 {
                ReadOutcome::Data {
                    offset: 0,
                    len: write,
                }
            } else {
                ReadOutcome::EmptyAfterReset
            });
        }
        Ok(if read < write {
            ReadOutcome::Data {
                offset: read,
                len: write - read,
            }
        } else {
            ReadOutcome::Empty
        })
    }

    /// Consumer: give `len` bytes back to the producer (`read += len`; reaching the
    /// watermark resets `read = watermark = 0`, or, while the producer's wrap is still
    /// in progress, leaves `read = watermark` for the next [`try_read`](Self::try_read)
    /// to reset).
    ///
    /// # Errors
    /// [`BipBufError::ReleaseOverflow`] if `len` is more than is readable from `read`;
    /// [`BipBufError::Corrupt`] if a cursor is out of range. Nothing is stored on error.
    pub fn release(&self, len: u32) -> Result<(), BipBufError> {
        // Relaxed: own cursor.
        let read = self.check("read", self.read().load(Ordering::Relaxed))?;
        // observe (Acquire): pairs with the producer's publish of `write`; only used to
        // bound `len` (loaded before the watermark, as in try_read).
        let write = self.check("write", self.write().load(sync::observe()))?;
        // observe (Acquire): pairs with the producer's publish of `watermark` (roam).
        let watermark = self.check("watermark", self.watermark().load(sync::observe()))?;
        let available = if watermark != 0 {
            watermark.saturating_sub(read)
        } else if write >= read {
            write - read
        } else {
            // `write < read` without a visible watermark: a producer is between its
            // two wrap stores; what we read lies in the tail, below the capacity.
            self.capacity - read
        };
        if len > available {
            return Err(BipBufError::ReleaseOverflow { len, available });
        }
        let new_read = read + len; // <= capacity
        if watermark != 0 && new_read >= watermark && self.wrap_done(watermark)? {
            self.reset_after_wrap();
        } else {
            // publish (Release): pairs with the producer's observe of `read` in
            // try_grant; our reads of the released bytes happen-before their reuse.
            self.read().store(new_read, sync::publish());
        }
        Ok(())
    }

    /// Consumer, tail consumed (`read >= watermark != 0`): whether the producer's wrap
    /// is complete, i.e. its `write = 0` is visible, so that `[0, write)` is the new
    /// front and the cursors may be reset.
    ///
    /// A roam 7.3 producer stores the watermark *before* `write = 0`. Having observed
    /// the watermark (Acquire), we cannot see a `write` older than the one it was
    /// copied from, and every post-wrap `write` is below the watermark (grants stay
    /// strictly below `read <= watermark`). So `write >= watermark` means the wrap is
    /// still in progress: resetting now would hand out `[0, old write)`, stale bytes
    /// the producer is about to overwrite. Report "not yet"; the producer's next
    /// commit (or its wake-up after a failed wrap) brings the consumer back.
    fn wrap_done(&self, watermark: u32) -> Result<bool, BipBufError> {
        // observe (Acquire): pairs with the producer's publish of `write`; loaded after
        // the watermark, so it is at least the pre-wrap `write`.
        let write = self.check("write", self.write().load(sync::observe()))?;
        Ok(write < watermark)
    }

    /// Consumer: `read = 0`, then `watermark = 0` (roam's order).
    fn reset_after_wrap(&self) {
        // publish (Release): pairs with the producer's observe of `read` in try_grant;
        // our reads of the tail happen-before the producer reuses those bytes.
        self.read().store(0, sync::publish());
        // publish (Release), as roam; after `read = 0`, so a producer that later sees a
        // non-zero `read` (its condition to wrap again) also sees the watermark cleared.
        self.watermark().store(0, sync::publish());
    }

    /// Whether the ring is empty (`read == write` and no wrap). A ring whose failed
    /// grant kept a wrap over an empty tail is *not* empty until the consumer's next
    /// read resets it.
    pub fn is_empty(&self) -> bool {
        // Relaxed/Acquire as in try_read (diagnostic; no bytes are accessed).
        let read = self.read().load(Ordering::Relaxed);
        let write = self.write().load(Ordering::Acquire);
        let watermark = self.watermark().load(Ordering::Acquire);
        read == write && watermark == 0
    }

    /// Reset all cursors to 0, discarding unread data (host crash recovery, only once
    /// the peer is known to be gone; not part of the SPSC protocol).
    pub fn reset(&self) {
        // Release: pairs with the Acquire loads of whoever attaches next (as roam).
        self.write().store(0, Ordering::Release);
        self.watermark().store(0, Ordering::Release);
        self.read().store(0, Ordering::Release);
    }
}

/// A BipBuffer in a [`Region`] (header at offset 0, data at +128): init or attach,
/// then [`split`](Self::split) into the two single-threaded halves.
///
/// Single producer, single consumer: across all processes and threads there is at
/// most one [`BipBufProducer`] and one [`BipBufConsumer`] per ring. The halves are
/// `Send` (each may move to its own thread) but not `Clone`; that is why
/// [`init`](Self::init) and [`attach`](Self::attach) are `unsafe`: a second handle to
/// the same ring would hand out overlapping `&mut [u8]`.
///
/// A peer in another process that breaks the protocol can change the bytes behind a
/// grant or a read (treat read bytes as untrusted input), but can never make this
/// side access memory outside the data area.
#[derive(Debug)]
pub struct BipBuf<'a> {
    raw: BipBufRaw,
    _region: PhantomData<Region<'a>>,
}

impl<'a> BipBuf<'a> {
    /// Bytes a region needs for a ring of `capacity`: header plus data.
    pub const fn required_size(capacity: u32) -> usize {
        BIPBUF_HEADER_SIZE + capacity as usize
    }

    fn parts(
        region: &Region<'a>,
        capacity: u32,
    ) -> Result<(*mut BipBufHeader, *mut u8), BipBufError> {
        let header = region.typed_ptr::<BipBufHeader>(0)?;
        let data = region.ptr_at(BIPBUF_HEADER_SIZE, capacity as usize)?;
        Ok((header, data))
    }

    /// Initialize an empty ring of `capacity` data bytes at the start of `region`.
    ///
    /// # Errors
    /// [`BipBufError::InvalidCapacity`] for 0; [`BipBufError::Region`] if the region is
    /// smaller than [`required_size`](Self::required_size) or not 64-byte aligned.
    ///
    /// # Safety
    /// No other handle to this ring exists or is created while this one (or its
    /// halves) lives, in this or any other process, except the one peer that attaches
    /// to play the other role; no one accesses the header during initialization.
    pub unsafe fn init(region: Region<'a>, capacity: u32) -> Result<BipBuf<'a>, BipBufError> {
        if capacity == 0 {
            return Err(BipBufError::InvalidCapacity { capacity });
        }
        let (header, data) = Self::parts(&region, capacity)?;
        // SAFETY: both pointers were bounds- and alignment-checked inside the region,
        // which is valid for 'a; exclusivity during init is the caller's contract.
        let raw = unsafe { BipBufRaw::init(header, data, capacity) }?;
        Ok(BipBuf {
            raw,
            _region: PhantomData,
        })
    }

    /// Attach to an initialized ring at the start of `region`, checking that the
    /// capacity found in the header fits the region (it is not re-read afterwards).
    ///
    /// # Errors
    /// [`BipBufError::InvalidCapacity`] for a capacity of 0; [`BipBufError::Region`] if
    /// the header's capacity does not fit the region, or the region is misaligned.
    ///
    /// # Safety
    /// As for [`init`](Self::init): this is the only handle to the ring on this side.
    pub unsafe fn attach(region: Region<'a>) -> Result<BipBuf<'a>, BipBufError> {
        let header = region.typed_ptr::<BipBufHeader>(0)?;
        // SAFETY: `header` is in bounds and aligned; the data pointer is provisional
        // (capacity-checked just below before any use).
        let probe = unsafe { BipBufRaw::attach(header, region.as_ptr()) }?;
        let (header, data) = Self::parts(&region, probe.capacity())?;
        // SAFETY: `data` has `probe.capacity()` bytes inside the region (checked).
        let raw = unsafe { BipBufRaw::from_parts(header, data, probe.capacity()) }?;
        Ok(BipBuf {
            raw,
            _region: PhantomData,
        })
    }

    /// Data capacity in bytes.
    pub fn capacity(&self) -> u32 {
        self.raw.capacity()
    }

    /// The raw handle (offset-based API).
    pub fn raw(&self) -> &BipBufRaw {
        &self.raw
    }

    /// Split into the producer and consumer halves.
    pub fn split(self) -> (BipBufProducer<'a>, BipBufConsumer<'a>) {
        let BipBufRaw {
            header,
            data,
            capacity,
        } = self.raw;
        let half = || BipBufRaw {
            header,
            data,
            capacity,
        };
        (
            BipBufProducer {
                raw: half(),
                granted: 0,
                _region: PhantomData,
            },
            BipBufConsumer {
                raw: half(),
                held: 0,
                reset: false,
                _region: PhantomData,
            },
        )
    }
}

/// The producer half of a [`BipBuf`]: grant, fill, commit.
#[derive(Debug)]
pub struct BipBufProducer<'a> {
    raw: BipBufRaw,
    /// Bytes granted and not yet committed (process-local).
    granted: u32,
    _region: PhantomData<Region<'a>>,
}

/// Granted bytes: exactly the requested length, contiguous, exclusively the
/// producer's until committed. Dereferences to `[u8]`.
#[derive(Debug)]
pub struct Grant<'g, 'a> {
    producer: &'g mut BipBufProducer<'a>,
    offset: u32,
    len: u32,
}

impl Grant<'_, '_> {
    /// Offset of the grant in the data area.
    pub fn offset(&self) -> u32 {
        self.offset
    }

    /// Commit the first `n` bytes (see [`BipBufProducer::commit`]).
    ///
    /// # Errors
    /// As [`BipBufProducer::commit`].
    pub fn commit(self, n: u32) -> Result<(), BipBufError> {
        self.producer.commit(n)
    }
}

impl Deref for Grant<'_, '_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: try_grant returned [offset, offset+len) inside the data area (offsets
        // are validated against the capacity, which fits the region); the algorithm
        // gives the single producer exclusive access to it until commit, and the
        // `&mut producer` held by the grant prevents a second grant meanwhile.
        unsafe {
            core::slice::from_raw_parts(
                self.producer.raw.data.add(self.offset as usize),
                self.len as usize,
            )
        }
    }
}

impl DerefMut for Grant<'_, '_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes this the only live view.
        unsafe {
            core::slice::from_raw_parts_mut(
                self.producer.raw.data.add(self.offset as usize),
                self.len as usize,
            )
        }
    }
}

impl<'a> BipBufProducer<'a> {
    /// Data capacity in bytes.
    pub fn capacity(&self) -> u32 {
        self.raw.capacity()
    }

    /// The raw handle.
    pub fn raw(&self) -> &BipBufRaw {
        &self.raw
    }

    /// Reserve exactly `len` contiguous bytes; `Ok(None)` when full (wait for the
    /// consumer and retry). Fill the grant, then commit it. A new grant replaces an
    /// uncommitted earlier one.
    ///
    /// After `Ok(None)`, check [`would_stall`](Self::would_stall) and wake the consumer
    /// if it is true (layout notes §13; see [`BipBufRaw::try_grant`]).
    ///
    /// # Errors
    /// [`BipBufError::TooLarge`] if `len > capacity`; [`BipBufError::Corrupt`].
    pub fn grant(&mut self, len: u32) -> Result<Option<Grant<'_, 'a>>, BipBufError> {
        self.granted = 0;
        match self.raw.try_grant(len)? {
            Some(offset) => {
                self.granted = len;
                Ok(Some(Grant {
                    producer: self,
                    offset,
                    len,
                }))
            }
            None => Ok(None),
        }
    }

    /// Publish the first `n` bytes of the current grant to the consumer; the rest of
    /// the grant (if any) stays granted.
    ///
    /// # Errors
    /// [`BipBufError::CommitOverflow`] if `n` exceeds what is still granted;
    /// [`BipBufError::Corrupt`].
    pub fn commit(&mut self, n: u32) -> Result<(), BipBufError> {
        if n > self.granted {
            return Err(BipBufError::CommitOverflow {
                len: n,
                available: self.granted,
            });
        }
        self.raw.commit(n)?;
        self.granted -= n;
        Ok(())
    }

    /// Grant, copy `bytes` and commit in one go; `Ok(false)` when full.
    ///
    /// # Errors
    /// [`BipBufError::TooLarge`] if `bytes` is longer than the capacity;
    /// [`BipBufError::Corrupt`].
    pub fn try_write(&mut self, bytes: &[u8]) -> Result<bool, BipBufError> {
        let len = u32::try_from(bytes.len()).map_err(|_| BipBufError::TooLarge {
            len: bytes.len(),
            capacity: self.capacity(),
        })?;
        match self.grant(len)? {
            Some(mut grant) => {
                grant.copy_from_slice(bytes);
                grant.commit(len)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Whether `len` bytes could be granted now (no side effects).
    ///
    /// # Errors
    /// [`BipBufError::Corrupt`].
    pub fn can_grant(&self, len: u32) -> Result<bool, BipBufError> {
        self.raw.can_grant(len)
    }

    /// Whether a grant of `len` is stalled until the consumer is woken (see
    /// [`BipBufRaw::would_stall`]).
    ///
    /// # Errors
    /// [`BipBufError::Corrupt`].
    pub fn would_stall(&self, len: u32) -> Result<bool, BipBufError> {
        self.raw.would_stall(len)
    }
}

/// The consumer half of a [`BipBuf`]: read, then release.
#[derive(Debug)]
pub struct BipBufConsumer<'a> {
    raw: BipBufRaw,
    /// Bytes returned by the last read and not yet released (process-local).
    held: u32,
    /// The last read returned nothing but reset the cursors after a wrap.
    reset: bool,
    _region: PhantomData<Region<'a>>,
}

impl<'a> BipBufConsumer<'a> {
    /// Data capacity in bytes.
    pub fn capacity(&self) -> u32 {
        self.raw.capacity()
    }

    /// The raw handle.
    pub fn raw(&self) -> &BipBufRaw {
        &self.raw
    }

    /// The contiguous readable bytes, or `None` when empty. They are the consumer's
    /// until released: the borrow ends before [`release`](Self::release) can be
    /// called, and the producer does not touch them until then. Whole commits are
    /// never split across two reads, but one read may return several commits.
    ///
    /// After `None`, check [`last_read_reset`](Self::last_read_reset) and wake the
    /// producer if it is true (layout notes §13).
    ///
    /// # Errors
    /// [`BipBufError::Corrupt`].
    pub fn read(&mut self) -> Result<Option<&[u8]>, BipBufError> {
        self.held = 0;
        self.reset = false;
        let (offset, len) = match self.raw.try_read_outcome()? {
            ReadOutcome::Data { offset, len } => (offset, len),
            ReadOutcome::Empty => return Ok(None),
            ReadOutcome::EmptyAfterReset => {
                self.reset = true;
                return Ok(None);
            }
        };
        self.held = len;
        // SAFETY: [offset, offset+len) was validated inside the data area (all cursors
        // <= capacity, which fits the region); the producer committed these bytes
        // (Release/Acquire on write/watermark) and will not reuse them before release.
        Ok(Some(unsafe {
            core::slice::from_raw_parts(self.raw.data.add(offset as usize), len as usize)
        }))
    }

    /// Give the first `n` bytes of the last read back to the producer.
    ///
    /// # Errors
    /// [`BipBufError::ReleaseOverflow`] if `n` exceeds what the last read returned and
    /// is not yet released; [`BipBufError::Corrupt`].
    pub fn release(&mut self, n: u32) -> Result<(), BipBufError> {
        if n > self.held {
            return Err(BipBufError::ReleaseOverflow {
                len: n,
                available: self.held,
            });
        }
        self.raw.release(n)?;
        self.held -= n;
        Ok(())
    }

    /// Whether the ring is empty (see [`BipBufRaw::is_empty`]).
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Whether the last [`read`](Self::read) returned `None` after resetting the
    /// cursors at the end of a wrap's tail ([`ReadOutcome::EmptyAfterReset`]): room
    /// was freed that a stalled producer waits for, so wake it.
    pub fn last_read_reset(&self) -> bool {
        self.reset
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;
    use crate::region::HeapRegion;

    fn raw_ring(capacity: u32) -> (HeapRegion, BipBufRaw) {
        let mem = HeapRegion::new_zeroed(BipBuf::required_size(capacity));
        let base = mem.region().as_ptr();
        // SAFETY: `mem` is 64-aligned and large enough; it outlives the handle in each
        // test because the tuple keeps it alive.
        let raw = unsafe {
            BipBufRaw::init(base.cast(), base.add(BIPBUF_HEADER_SIZE), capacity).unwrap()
        };
        (mem, raw)
    }

    fn hdr(raw: &BipBufRaw) -> &BipBufHeader {
        // SAFETY: the header is valid while `raw` is (test rings keep their memory).
        unsafe { &*raw.header_ptr() }
    }

    /// (write, watermark, read)
    fn cursors(raw: &BipBufRaw) -> (u32, u32, u32) {
        (raw.load_write(), raw.load_watermark(), raw.load_read())
    }

    #[test]
    fn header_layout() {
        assert_eq!(size_of::<BipBufHeader>(), 128);
        assert_eq!(align_of::<BipBufHeader>(), 64);
        assert_eq!(BipBuf::required_size(64), 192);
    }

    #[test]
    fn init_writes_roam_bytes_over_garbage() {
        let mem = HeapRegion::new_zeroed(BipBuf::required_size(64));
        let base = mem.region().as_ptr();
        // SAFETY: 192 bytes are allocated.
        unsafe { ptr::write_bytes(base, 0xAA, 192) };
        // SAFETY: exclusive, aligned, large enough.
        let buf = unsafe { BipBuf::init(mem.region(), 64) }.unwrap();
        assert_eq!(buf.capacity(), 64);
        // SAFETY: reading the 128 header bytes after init; no concurrent access.
        let bytes = unsafe { core::slice::from_raw_parts(base, 128) };
        let mut expected = [0u8; 128];
        expected[8..12].copy_from_slice(&64u32.to_le_bytes());
        assert_eq!(bytes, &expected[..]);
    }

    #[test]
    fn basic_roundtrip() {
        let (_m, raw) = raw_ring(64);
        assert!(raw.is_empty());
        assert_eq!(raw.try_grant(10), Ok(Some(0)));
        raw.commit(10).unwrap();
        assert_eq!(raw.try_grant(6), Ok(Some(10)));
        raw.commit(6).unwrap();
        assert_eq!(raw.try_read(), Ok(Some((0, 16))));
        raw.release(10).unwrap();
        assert_eq!(raw.try_read(), Ok(Some((10, 6))));
        raw.release(6).unwrap();
        assert_eq!(raw.try_read(), Ok(None));
        assert!(raw.is_empty());
        assert_eq!(cursors(&raw), (16, 0, 16));
    }

    #[test]
    fn zero_grant_and_too_large() {
        let (_m, raw) = raw_ring(32);
        assert_eq!(raw.try_grant(0), Ok(Some(0)));
        assert_eq!(
            raw.try_grant(33),
            Err(BipBufError::TooLarge {
                len: 33,
                capacity: 32
            })
        );
        assert!(!raw.can_grant(33).unwrap());
        assert!(raw.can_grant(0).unwrap());
        assert_eq!(raw.try_grant(32), Ok(Some(0)));
        raw.commit(32).unwrap();
        // Full, yet n = 0 still succeeds, and no state changed.
        assert_eq!(raw.try_grant(0), Ok(Some(0)));
        assert_eq!(raw.try_grant(1), Ok(None));
        assert_eq!(cursors(&raw), (32, 0, 0));
    }

    /// §3 wrap via watermark, read of the tail, reset, read of the front.
    #[test]
    fn wrap_via_watermark() {
        let (_m, raw) = raw_ring(32);
        raw.try_grant(24).unwrap().unwrap();
        raw.commit(24).unwrap();
        assert_eq!(raw.try_read(), Ok(Some((0, 24))));
        raw.release(20).unwrap();
        // 8 bytes left at the end: wrap, 16 < read = 20 fits at the front.
        assert!(raw.can_grant(16).unwrap());
        assert_eq!(cursors(&raw), (24, 0, 20), "can_grant has no side effects");
        assert_eq!(
            raw.try_grant_outcome(16),
            Ok(GrantOutcome::Granted { offset: 0 })
        );
        assert_eq!(cursors(&raw), (0, 24, 20));
        raw.commit(16).unwrap();
        // Tail first.
        assert_eq!(raw.try_read(), Ok(Some((20, 4))));
        raw.release(4).unwrap();
        // Reaching the watermark reset read and watermark.
        assert_eq!(cursors(&raw), (16, 0, 0));
        assert_eq!(raw.try_read(), Ok(Some((0, 16))));
        raw.release(16).unwrap();
        assert_eq!(raw.try_read(), Ok(None));
    }

    /// The consumer's read resets when it finds read >= watermark.
    #[test]
    fn read_resets_at_watermark() {
        let (_m, raw) = raw_ring(32);
        raw.try_grant(24).unwrap().unwrap();
        raw.commit(24).unwrap();
        raw.try_read().unwrap().unwrap();
        raw.release(24).unwrap();
        // Empty at p = 24; 16 does not fit at the end, 16 < 24 fits at the front.
        assert_eq!(raw.try_grant(16), Ok(Some(0)));
        raw.commit(16).unwrap();
        assert_eq!(cursors(&raw), (16, 24, 24));
        assert_eq!(raw.try_read(), Ok(Some((0, 16))));
        assert_eq!(cursors(&raw), (16, 0, 0));
    }

    /// Strict `w + n < r` after a wrap, and strict `n < r` when wrapping.
    #[test]
    fn strict_before_read() {
        let (_m, raw) = raw_ring(32);
        raw.try_grant(24).unwrap().unwrap();
        raw.commit(24).unwrap();
        raw.try_read().unwrap().unwrap();
        raw.release(20).unwrap();
        // 12 does not fit in the 8 bytes at the end: wrap to [0, 12); commit 4 of it.
        assert_eq!(raw.try_grant(12), Ok(Some(0)));
        raw.commit(4).unwrap();
        assert_eq!(cursors(&raw), (4, 24, 20));
        // 4 + 16 == 20 is not < 20.
        assert!(!raw.can_grant(16).unwrap());
        assert_eq!(raw.try_grant(16), Ok(None));
        assert_eq!(raw.try_grant(15), Ok(Some(4)));
        // Commit is bounded by the same strictness.
        assert_eq!(
            raw.commit(16),
            Err(BipBufError::CommitOverflow {
                len: 16,
                available: 15
            })
        );
        raw.commit(15).unwrap();
        assert_eq!(raw.try_grant(1), Ok(None)); // 19 + 1 == 20

        // Wrapping needs n < read, strictly.
        let (_m, raw) = raw_ring(32);
        raw.try_grant(24).unwrap().unwrap();
        raw.commit(24).unwrap();
        raw.try_read().unwrap().unwrap();
        raw.release(20).unwrap();
        assert_eq!(raw.try_grant_outcome(20), Ok(GrantOutcome::FullWrapped));
        assert_eq!(cursors(&raw), (0, 24, 20), "roam keeps the wrap");
        assert_eq!(raw.try_grant(19), Ok(Some(0)));
    }

    #[test]
    fn no_wrap_when_read_is_zero() {
        let (_m, raw) = raw_ring(16);
        raw.try_grant(12).unwrap().unwrap();
        raw.commit(12).unwrap();
        assert_eq!(raw.try_grant_outcome(8), Ok(GrantOutcome::Full));
        assert_eq!(cursors(&raw), (12, 0, 0));
        assert_eq!(raw.try_grant(4), Ok(Some(12)));
    }

    /// §13: both cursors at p with cap - e < p <= e. The grant wraps, fails, keeps the
    /// wrap; would_stall says so; the consumer's (empty) read resets; then it fits.
    #[test]
    fn full_but_keep_wrap_then_consumer_reset() {
        let (_m, raw) = raw_ring(32);
        let (e, p) = (20, 16);
        raw.try_grant(p).unwrap().unwrap();
        raw.commit(p).unwrap();
        raw.try_read().unwrap().unwrap();
        raw.release(p).unwrap();
        assert_eq!(cursors(&raw), (16, 0, 16));
        assert!(
            raw.would_stall(e).unwrap(),
            "stall predicted before the wrap"
        );
        assert_eq!(raw.try_grant_outcome(e), Ok(GrantOutcome::FullWrapped));
        assert_eq!(cursors(&raw), (0, 16, 16));
        assert!(!raw.is_empty());
        // Later grants fail without wrapping again: only the consumer can help.
        assert_eq!(raw.try_grant_outcome(e), Ok(GrantOutcome::Full));
        assert!(raw.would_stall(e).unwrap());
        assert!(!raw.would_stall(8).unwrap(), "8 < 16 fits before read");
        // The consumer has nothing to read, but its read resets the cursors, and says
        // so (wake the producer); a second read has nothing to reset.
        assert_eq!(raw.try_read_outcome(), Ok(ReadOutcome::EmptyAfterReset));
        assert_eq!(cursors(&raw), (0, 0, 0));
        assert_eq!(raw.try_read_outcome(), Ok(ReadOutcome::Empty));
        assert!(!raw.would_stall(e).unwrap());
        assert_eq!(raw.try_grant(e), Ok(Some(0)));
    }

    #[test]
    fn would_stall_is_false_while_consumer_has_data() {
        let (_m, raw) = raw_ring(32);
        raw.try_grant(16).unwrap().unwrap();
        raw.commit(16).unwrap();
        raw.try_read().unwrap().unwrap();
        raw.release(8).unwrap();
        // [8, 16) unread; 20 cannot fit (16 at end, 20 >= 8 at front).
        assert!(!raw.can_grant(20).unwrap());
        assert!(!raw.would_stall(20).unwrap());
        assert_eq!(raw.try_grant_outcome(20), Ok(GrantOutcome::FullWrapped));
        assert!(
            !raw.would_stall(20).unwrap(),
            "the tail [8, 16) is still unread"
        );
        raw.try_read().unwrap().unwrap();
        raw.release(8).unwrap(); // reaches the watermark: reset
        assert_eq!(cursors(&raw), (0, 0, 0));
        assert_eq!(raw.try_grant(20), Ok(Some(0)));
    }

    /// A roam 7.3 producer stores the watermark before `write = 0`. A consumer that
    /// sees only the watermark must not reset (it would re-read `[0, 6)`).
    #[test]
    fn roam_order_wrap_in_progress_is_not_reset() {
        let (_m, raw) = raw_ring(8);
        let h = hdr(&raw);
        raw.try_grant(6).unwrap().unwrap();
        raw.commit(6).unwrap();
        assert_eq!(raw.try_read(), Ok(Some((0, 6))));
        raw.release(6).unwrap();
        // Producer (roam order) wraps for 3 bytes: first store only.
        h.watermark.store(6, Ordering::Relaxed);
        assert_eq!(raw.try_read(), Ok(None));
        assert_eq!(
            cursors(&raw),
            (6, 6, 6),
            "no reset while write is the old one"
        );
        // Second store lands, then the commit of [0, 3).
        h.write.store(0, Ordering::Relaxed);
        h.write.store(3, Ordering::Relaxed);
        assert_eq!(raw.try_read(), Ok(Some((0, 3))));
        assert_eq!(cursors(&raw), (3, 0, 0));
    }

    /// Same race through release: the tail is released up to the watermark while the
    /// producer is between its stores: `read = watermark` is left for try_read.
    #[test]
    fn roam_order_wrap_in_progress_release() {
        let (_m, raw) = raw_ring(8);
        let h = hdr(&raw);
        raw.try_grant(6).unwrap().unwrap();
        raw.commit(6).unwrap();
        assert_eq!(raw.try_read(), Ok(Some((0, 6))));
        raw.release(3).unwrap();
        h.watermark.store(6, Ordering::Relaxed);
        assert_eq!(raw.try_read(), Ok(Some((3, 3))));
        raw.release(3).unwrap();
        assert_eq!(cursors(&raw), (6, 6, 6));
        h.write.store(0, Ordering::Relaxed);
        assert_eq!(raw.try_read(), Ok(None));
        assert_eq!(cursors(&raw), (0, 0, 0));
    }

    /// Our producer stores `write = 0` first: the gap reads as empty, and the bytes
    /// already read can still be released.
    #[test]
    fn write_first_wrap_in_progress() {
        let (_m, raw) = raw_ring(8);
        let h = hdr(&raw);
        raw.try_grant(6).unwrap().unwrap();
        raw.commit(6).unwrap();
        assert_eq!(raw.try_read(), Ok(Some((0, 6))));
        raw.release(3).unwrap();
        // The real producer's wrap: write = 0, then the watermark.
        assert_eq!(raw.try_grant_outcome(3), Ok(GrantOutcome::FullWrapped));
        assert_eq!(cursors(&raw), (0, 6, 3));
        // Replay the gap: watermark not yet visible.
        h.watermark.store(0, Ordering::Relaxed);
        assert_eq!(raw.try_read(), Ok(None));
        raw.release(3).unwrap();
        assert_eq!(cursors(&raw), (0, 0, 6));
        h.watermark.store(6, Ordering::Relaxed);
        assert_eq!(raw.try_read(), Ok(None));
        assert_eq!(cursors(&raw), (0, 0, 0));
    }

    #[test]
    fn commit_and_release_overflow() {
        let (_m, raw) = raw_ring(16);
        assert_eq!(
            raw.commit(17),
            Err(BipBufError::CommitOverflow {
                len: 17,
                available: 16
            })
        );
        raw.commit(10).unwrap();
        assert!(raw.commit(7).is_err());
        assert_eq!(
            raw.release(11),
            Err(BipBufError::ReleaseOverflow {
                len: 11,
                available: 10
            })
        );
        raw.release(10).unwrap();
        assert!(raw.release(1).is_err());
        assert_eq!(cursors(&raw), (10, 0, 10));
    }

    #[test]
    fn corrupt_cursors_are_errors_never_offsets() {
        let (_m, raw) = raw_ring(32);
        let h = hdr(&raw);
        let corrupt = |field, value| {
            Err::<(), _>(BipBufError::Corrupt {
                field,
                value,
                capacity: 32,
            })
        };

        h.write.store(33, Ordering::Relaxed);
        assert_eq!(raw.try_grant(1).map(drop), corrupt("write", 33));
        assert_eq!(raw.can_grant(1).map(drop), corrupt("write", 33));
        assert_eq!(raw.commit(0), corrupt("write", 33));
        assert_eq!(raw.try_read().map(drop), corrupt("write", 33));
        assert_eq!(raw.release(0), corrupt("write", 33));
        h.write.store(u32::MAX, Ordering::Relaxed);
        assert_eq!(raw.try_read().map(drop), corrupt("write", u32::MAX));
        h.write.store(0, Ordering::Relaxed);

        h.read.store(40, Ordering::Relaxed);
        assert_eq!(raw.try_grant(1).map(drop), corrupt("read", 40));
        assert_eq!(raw.would_stall(1).map(drop), corrupt("read", 40));
        assert_eq!(raw.try_read().map(drop), corrupt("read", 40));
        assert_eq!(raw.release(0), corrupt("read", 40));
        h.read.store(0, Ordering::Relaxed);

        h.watermark.store(1000, Ordering::Relaxed);
        h.read.store(8, Ordering::Relaxed);
        assert_eq!(raw.try_read().map(drop), corrupt("watermark", 1000));
        assert_eq!(raw.release(0), corrupt("watermark", 1000));
        h.watermark.store(0, Ordering::Relaxed);
        h.read.store(0, Ordering::Relaxed);

        // Nothing was stored by the failed calls.
        assert_eq!(cursors(&raw), (0, 0, 0));
        // The shared capacity is not re-trusted after attach.
        h.capacity.store(u32::MAX, Ordering::Relaxed);
        assert_eq!(raw.capacity(), 32);
        assert!(matches!(
            raw.try_grant(33),
            Err(BipBufError::TooLarge { .. })
        ));
        h.write.store(32, Ordering::Relaxed);
        h.read.store(32, Ordering::Relaxed);
        // Empty at the very end: 1 byte does not fit at the end; wrap to the front.
        assert_eq!(raw.try_grant(1), Ok(Some(0)));
    }

    /// Random garbage in every cursor: every returned range stays inside the ring.
    #[test]
    fn garbage_headers_never_go_out_of_bounds() {
        let (_m, raw) = raw_ring(16);
        let h = hdr(&raw);
        let vals = [0u32, 1, 7, 15, 16, 17, 255, u32::MAX];
        for &w in &vals {
            for &r in &vals {
                for &wm in &vals {
                    for len in [0u32, 1, 8, 16] {
                        let set = || {
                            h.write.store(w, Ordering::Relaxed);
                            h.read.store(r, Ordering::Relaxed);
                            h.watermark.store(wm, Ordering::Relaxed);
                        };
                        set();
                        if let Ok(Some(off)) = raw.try_grant(len) {
                            assert!(off as u64 + len as u64 <= 16, "{w} {r} {wm} {len}");
                        }
                        set();
                        let _ = raw.commit(len);
                        assert!(h.write.load(Ordering::Relaxed) <= 16 || w > 16);
                        set();
                        if let Ok(Some((off, n))) = raw.try_read() {
                            assert!(n > 0 && off as u64 + n as u64 <= 16, "{w} {r} {wm}");
                        }
                        set();
                        let _ = raw.release(len);
                        assert!(h.read.load(Ordering::Relaxed) <= 16 || r > 16);
                        set();
                        let _ = raw.would_stall(len);
                    }
                }
            }
        }
    }

    #[test]
    fn attach_validates() {
        let mem = HeapRegion::new_zeroed(BipBuf::required_size(64));
        let region = mem.region();
        // Each `unsafe` call below is the only live handle to this ring (handles are
        // not kept across calls), and `mem` outlives them all.
        let attach = |r| {
            // SAFETY: see above.
            unsafe { BipBuf::attach(r) }.map(|b| b.capacity())
        };
        let init = |r, cap| {
            // SAFETY: see above.
            unsafe { BipBuf::init(r, cap) }.map(|b| b.capacity())
        };
        // Zeroed header: capacity 0.
        assert_eq!(
            attach(region),
            Err(BipBufError::InvalidCapacity { capacity: 0 })
        );
        assert_eq!(
            init(region, 0),
            Err(BipBufError::InvalidCapacity { capacity: 0 })
        );
        // Larger than the region.
        assert!(matches!(
            init(region, 65),
            Err(BipBufError::Region(RegionError::OutOfBounds { .. }))
        ));
        assert_eq!(init(region, 64), Ok(64));
        assert_eq!(attach(region), Ok(64));
        // A peer wrote a capacity that does not fit our mapping.
        let cap_ptr = region
            .ptr_at(BipBufHeader::CAPACITY_OFFSET, 4)
            .unwrap()
            .cast::<u32>();
        // SAFETY: aligned u32 inside the region, accessed atomically only.
        unsafe { crate::atomics::store_u32_release(cap_ptr, 1 << 20) };
        assert!(matches!(
            attach(region),
            Err(BipBufError::Region(RegionError::OutOfBounds { .. }))
        ));
        // Misaligned region.
        let sub = region.sub(4, 128).unwrap();
        assert!(matches!(
            init(sub, 8),
            Err(BipBufError::Region(RegionError::Misaligned { .. }))
        ));
    }

    #[test]
    fn region_api_roundtrip_and_local_bounds() {
        let mem = HeapRegion::new_zeroed(BipBuf::required_size(32));
        // SAFETY: the only handle.
        let (mut p, mut c) = unsafe { BipBuf::init(mem.region(), 32) }.unwrap().split();
        assert_eq!(c.read(), Ok(None));
        assert!(matches!(
            c.release(1),
            Err(BipBufError::ReleaseOverflow { .. })
        ));
        assert!(matches!(
            p.commit(1),
            Err(BipBufError::CommitOverflow { .. })
        ));

        {
            let mut g = p.grant(8).unwrap().unwrap();
            assert_eq!(g.len(), 8);
            assert_eq!(g.offset(), 0);
            g.copy_from_slice(b"abcdefgh");
        } // the grant ends; commit through the producer
        assert_eq!(
            p.commit(9),
            Err(BipBufError::CommitOverflow {
                len: 9,
                available: 8
            })
        );
        p.commit(3).unwrap();
        p.commit(5).unwrap();
        assert!(p.commit(1).is_err());
        assert!(p.try_write(b"ij").unwrap());
        assert!(matches!(
            p.try_write(&[0; 33]),
            Err(BipBufError::TooLarge { len: 33, .. })
        ));

        assert_eq!(c.read().unwrap(), Some(&b"abcdefghij"[..]));
        c.release(4).unwrap();
        assert!(c.release(7).is_err());
        assert_eq!(c.read().unwrap(), Some(&b"efghij"[..]));
        c.release(6).unwrap();
        assert_eq!(c.read(), Ok(None));
        assert!(c.is_empty());

        // Fill to the brim, then the stall sequence through the region API.
        assert!(p.try_write(&[7; 20]).unwrap()); // [10, 30)
        assert_eq!(c.read().unwrap().map(<[u8]>::len), Some(20));
        c.release(20).unwrap(); // empty at 30
        assert_eq!(p.grant(30).unwrap().map(|g| g.offset()), None); // wraps, fails
        assert!(p.would_stall(30).unwrap());
        assert_eq!(c.read(), Ok(None)); // reset
        assert!(c.last_read_reset());
        assert_eq!(c.read(), Ok(None));
        assert!(!c.last_read_reset());
        assert_eq!(p.grant(30).unwrap().map(|g| g.offset()), Some(0));
        // A new grant replaces the uncommitted one; a failed grant cancels it.
        assert_eq!(p.grant(31).unwrap().map(|g| g.offset()), Some(0));
        assert!(p.can_grant(32).unwrap());
        p.commit(31).unwrap();
        assert!(!p.can_grant(2).unwrap());
        assert_eq!(p.grant(2).unwrap().map(|g| g.offset()), None);
        assert!(matches!(
            p.commit(1),
            Err(BipBufError::CommitOverflow { available: 0, .. })
        ));
    }

    #[test]
    fn halves_are_send() {
        fn send<T: Send>() {}
        send::<BipBufProducer<'static>>();
        send::<BipBufConsumer<'static>>();
    }

    #[test]
    fn threads_pass_records() {
        const N: u32 = 20_000;
        let mem = HeapRegion::new_zeroed(BipBuf::required_size(256));
        // SAFETY: the only handle.
        let (mut p, mut c) = unsafe { BipBuf::init(mem.region(), 256) }.unwrap().split();
        std::thread::scope(|s| {
            s.spawn(move || {
                for i in 0..N {
                    let len = 4 + (i % 61);
                    loop {
                        if let Some(mut g) = p.grant(len).unwrap() {
                            g[..4].copy_from_slice(&i.to_le_bytes());
                            g[4..].fill(i as u8);
                            g.commit(len).unwrap();
                            break;
                        }
                        std::hint::spin_loop();
                    }
                }
            });
            s.spawn(move || {
                let mut next = 0u32;
                while next < N {
                    let Some(bytes) = c.read().unwrap() else {
                        std::hint::spin_loop();
                        continue;
                    };
                    let mut used = 0usize;
                    while used < bytes.len() {
                        let len = 4 + (next % 61) as usize;
                        let rec = &bytes[used..used + len];
                        assert_eq!(rec[..4], next.to_le_bytes());
                        assert!(rec[4..].iter().all(|&b| b == next as u8));
                        used += len;
                        next += 1;
                    }
                    c.release(used as u32).unwrap();
                }
            });
        });
    }

    #[test]
    fn reset_discards() {
        let (_m, raw) = raw_ring(32);
        raw.try_grant(24).unwrap().unwrap();
        raw.commit(24).unwrap();
        raw.try_read().unwrap().unwrap();
        raw.release(20).unwrap();
        raw.try_grant(8).unwrap().unwrap();
        raw.reset();
        assert_eq!(cursors(&raw), (0, 0, 0));
        assert!(raw.is_empty());
    }
}
