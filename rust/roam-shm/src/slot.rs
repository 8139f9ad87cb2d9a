//! Per-slot metadata shared by the slot allocators.
//!
//! A [`SlotMeta`] lives in shared memory next to each slot of a
//! [`crate::treiber::TreiberSlab`]: a generation counter that makes handles to a
//! reused slot detectably stale, and a [`SlotState`].

use crate::sync::AtomicU32;

/// Lifecycle state of a slot, stored as a `u32` in [`SlotMeta::state`].
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SlotState {
    /// On the free list; nobody owns it.
    Free = 0,
    /// Handed out by `alloc`; owned by the holder of the handle.
    Allocated = 1,
    /// Allocated and handed to the peer (e.g. referenced by a frame in flight); still
    /// owned, and freed like an allocated slot.
    InFlight = 2,
}

impl SlotState {
    /// Decode a state word read from shared memory (`None` for a value no correct peer
    /// writes).
    #[inline]
    pub const fn from_u32(v: u32) -> Option<SlotState> {
        match v {
            0 => Some(SlotState::Free),
            1 => Some(SlotState::Allocated),
            2 => Some(SlotState::InFlight),
            _ => None,
        }
    }

    /// The value stored in shared memory.
    #[inline]
    pub const fn as_u32(self) -> u32 {
        self as u32
    }
}

/// Shared metadata of one slot (8 bytes: `generation` u32 @0, `state` u32 @4).
///
/// The generation is even while the slot is free and odd while it is allocated: it is
/// bumped once by `alloc` and once by `free`, so the first allocation of a slot has
/// generation 1 and a handle of any earlier allocation no longer matches.
#[repr(C)]
#[derive(Debug)]
pub struct SlotMeta {
    /// Generation counter (wrapping; even = free, odd = allocated).
    pub generation: AtomicU32,
    /// A [`SlotState`] value.
    pub state: AtomicU32,
}

#[cfg(not(feature = "loom"))]
const _: () = {
    assert!(size_of::<SlotMeta>() == 8);
    assert!(align_of::<SlotMeta>() == 4);
    assert!(core::mem::offset_of!(SlotMeta, generation) == 0);
    assert!(core::mem::offset_of!(SlotMeta, state) == 4);
};

impl SlotMeta {
    /// A free slot that was never allocated (generation 0).
    pub fn new() -> SlotMeta {
        SlotMeta {
            generation: AtomicU32::new(0),
            state: AtomicU32::new(SlotState::Free.as_u32()),
        }
    }
}

impl Default for SlotMeta {
    fn default() -> SlotMeta {
        SlotMeta::new()
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;
    use crate::sync::Ordering;

    #[test]
    fn state_roundtrip() {
        for s in [SlotState::Free, SlotState::Allocated, SlotState::InFlight] {
            assert_eq!(SlotState::from_u32(s.as_u32()), Some(s));
        }
        assert_eq!(SlotState::from_u32(3), None);
        assert_eq!(SlotState::from_u32(u32::MAX), None);
    }

    #[test]
    fn new_meta_is_free_generation_zero() {
        let m = SlotMeta::default();
        assert_eq!(m.generation.load(Ordering::Relaxed), 0);
        assert_eq!(m.state.load(Ordering::Relaxed), SlotState::Free.as_u32());
    }
}
