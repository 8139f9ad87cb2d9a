//! Memory regions: a [`Region`] is a borrowed `(pointer, length)` view of memory that
//! may be shared with other processes; [`HeapRegion`] owns zeroed, aligned heap memory
//! (tests, in-process use). File- and fd-backed owners live in [`crate::mmap`].
//!
//! Only *offsets* are ever stored inside shared memory: every process maps the same
//! bytes at its own address, so a `Region` is always process-local.

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::marker::PhantomData;
use std::ptr::NonNull;

/// Alignment of every region this crate allocates (one cache line; also enough for
/// every shared header, which are at most 64-byte aligned).
pub const REGION_ALIGN: usize = 64;

/// Errors of region arithmetic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegionError {
    /// `offset + len` is past the end of the region (or overflows).
    #[error("range {offset}+{len} is outside the region of {region_len} bytes")]
    OutOfBounds {
        /// Requested offset.
        offset: usize,
        /// Requested length.
        len: usize,
        /// Length of the region.
        region_len: usize,
    },
    /// The offset is not aligned as the caller requires.
    #[error("offset {offset} is not aligned to {align}")]
    Misaligned {
        /// Requested offset.
        offset: usize,
        /// Required alignment.
        align: usize,
    },
}

/// A borrowed view of `len` bytes at `ptr`, valid for `'a`.
///
/// A `Region` does not own its memory; the owner ([`HeapRegion`],
/// [`crate::mmap::MmapRegion`], [`crate::mmap::ShmRegion`]) hands it out with a
/// lifetime so the view cannot outlive the mapping. The bytes may be concurrently
/// modified by other threads or processes: a `Region` never hands out `&[u8]` or
/// `&mut [u8]` to its contents; algorithms access it through atomics and raw pointers.
#[derive(Clone, Copy, Debug)]
pub struct Region<'a> {
    ptr: NonNull<u8>,
    len: usize,
    _owner: PhantomData<&'a [u8]>,
}

// SAFETY: a Region is a pointer + length into memory that is, by construction, shared
// (between threads or processes); every access through it goes through atomics or is
// guarded by the algorithm that owns the bytes (SPSC roles, slot ownership), so sending
// or sharing the view itself between threads adds no new race.
unsafe impl Send for Region<'_> {}
// SAFETY: see the `Send` impl above.
unsafe impl Sync for Region<'_> {}

impl<'a> Region<'a> {
    /// Build a view from a raw pointer and length.
    ///
    /// # Safety
    /// `ptr` must be valid for reads and writes of `len` bytes for the whole of `'a`,
    /// and the memory must not be freed or unmapped while the view (or anything
    /// derived from it) is alive.
    pub unsafe fn from_raw(ptr: *mut u8, len: usize) -> Region<'a> {
        Region {
            ptr: NonNull::new(ptr).expect("Region::from_raw: null pointer"),
            len,
            _owner: PhantomData,
        }
    }

    /// Start of the region.
    #[inline]
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region has zero length.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Check that `[offset, offset + len)` lies inside the region.
    #[inline]
    pub fn check(&self, offset: usize, len: usize) -> Result<(), RegionError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(RegionError::OutOfBounds {
                offset,
                len,
                region_len: self.len,
            }),
        }
    }

    /// Pointer to `offset`, checked so that `len` bytes fit from there.
    #[inline]
    pub fn ptr_at(&self, offset: usize, len: usize) -> Result<*mut u8, RegionError> {
        self.check(offset, len)?;
        // SAFETY: offset + len <= self.len was checked, so the result stays inside
        // (or one past the end of) the allocation `ptr` points into.
        Ok(unsafe { self.ptr.as_ptr().add(offset) })
    }

    /// Typed pointer to `offset`, checked for bounds (`size_of::<T>()` bytes) and for
    /// `T`'s alignment.
    #[inline]
    pub fn typed_ptr<T>(&self, offset: usize) -> Result<*mut T, RegionError> {
        let p = self.ptr_at(offset, size_of::<T>())?;
        if (p as usize) % align_of::<T>() != 0 {
            return Err(RegionError::Misaligned {
                offset,
                align: align_of::<T>(),
            });
        }
        Ok(p.cast())
    }

    /// The sub-view `[offset, offset + len)`.
    pub fn sub(&self, offset: usize, len: usize) -> Result<Region<'a>, RegionError> {
        let p = self.ptr_at(offset, len)?;
        // SAFETY: the sub-range is inside `self`, which is valid for 'a.
        Ok(unsafe { Region::from_raw(p, len) })
    }
}

/// Zeroed, [`REGION_ALIGN`]-aligned heap memory (for tests and in-process use).
pub struct HeapRegion {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: HeapRegion uniquely owns its allocation; the bytes are only ever accessed
// through `Region` views (see Region's Send/Sync reasoning).
unsafe impl Send for HeapRegion {}
// SAFETY: as above: shared access goes through `Region`, never through `&mut`.
unsafe impl Sync for HeapRegion {}

impl HeapRegion {
    /// Allocate `len` zeroed bytes aligned to [`REGION_ALIGN`]. A zero `len` allocates
    /// one cache line so the pointer is always valid.
    ///
    /// # Panics
    /// If `len` overflows a `Layout` (more than `isize::MAX` bytes); aborts on OOM.
    pub fn new_zeroed(len: usize) -> HeapRegion {
        let layout = Layout::from_size_align(len.max(REGION_ALIGN), REGION_ALIGN)
            .expect("HeapRegion: size overflows isize");
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        HeapRegion { ptr, layout }
    }

    /// A view of the whole allocation, tied to `self`'s lifetime.
    pub fn region(&self) -> Region<'_> {
        // SAFETY: the allocation is valid for layout.size() bytes until self is dropped,
        // and the returned view borrows self.
        unsafe { Region::from_raw(self.ptr.as_ptr(), self.layout.size()) }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.layout.size()
    }

    /// Whether the region is empty (never true: at least one cache line is allocated).
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl Drop for HeapRegion {
    fn drop(&mut self) {
        // SAFETY: ptr was allocated with exactly this layout and is freed once.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;

    #[test]
    fn heap_region_is_zeroed_and_aligned() {
        let h = HeapRegion::new_zeroed(1000);
        let r = h.region();
        assert_eq!(r.as_ptr() as usize % REGION_ALIGN, 0);
        assert!(r.len() >= 1000);
        for i in 0..1000 {
            // SAFETY: i < len, memory is valid and zeroed.
            assert_eq!(unsafe { *r.as_ptr().add(i) }, 0);
        }
    }

    #[test]
    fn bounds_are_checked() {
        let h = HeapRegion::new_zeroed(128);
        let r = h.region();
        assert!(r.ptr_at(0, 128).is_ok());
        assert!(r.ptr_at(1, 128).is_err());
        assert!(r.ptr_at(usize::MAX, 2).is_err());
        assert!(r.typed_ptr::<u64>(4).is_err());
        assert!(r.typed_ptr::<u64>(8).is_ok());
        let s = r.sub(64, 64).unwrap();
        assert_eq!(s.len(), 64);
        assert!(r.sub(65, 64).is_err());
    }
}
