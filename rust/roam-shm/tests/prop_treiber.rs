#![cfg(not(feature = "loom"))]
//! Property tests of the Treiber slab against a model of live and dead handles.

use std::collections::HashMap;

use proptest::prelude::*;
use roam_shm::region::HeapRegion;
use roam_shm::slot::SlotState;
use roam_shm::treiber::{AllocResult, FreeError, SlotError, SlotHandle, TreiberSlab};

const SLOT_SIZE: u32 = 24;

#[derive(Debug, Clone)]
enum Op {
    Alloc,
    /// Free the n-th live handle.
    Free(usize),
    /// Free the n-th handle that was already freed (double or stale free).
    FreeDead(usize),
    /// Mark the n-th live handle in flight.
    MarkInFlight(usize),
    /// Mark the n-th dead handle in flight (must fail).
    MarkDead(usize),
    /// Free a made-up handle.
    Forged(u32, u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Alloc),
        3 => any::<usize>().prop_map(Op::Free),
        1 => any::<usize>().prop_map(Op::FreeDead),
        1 => any::<usize>().prop_map(Op::MarkInFlight),
        1 => any::<usize>().prop_map(Op::MarkDead),
        1 => (0u32..20, 0u32..8).prop_map(|(i, g)| Op::Forged(i, g)),
    ]
}

/// Fill a slot with a pattern derived from its handle.
fn stamp(slab: &TreiberSlab<'_>, h: SlotHandle) {
    let p = slab.slot_ptr(h).unwrap();
    let b = (h.index as u8) ^ (h.generation as u8).rotate_left(4);
    // SAFETY: we own the slot, which has SLOT_SIZE bytes.
    unsafe { p.write_bytes(b, SLOT_SIZE as usize) };
}

/// Check the pattern is intact (no other allocation overlapped the slot).
fn check_stamp(slab: &TreiberSlab<'_>, h: SlotHandle) -> bool {
    let p = slab.slot_ptr(h).unwrap();
    let b = (h.index as u8) ^ (h.generation as u8).rotate_left(4);
    // SAFETY: as in stamp.
    (0..SLOT_SIZE as usize).all(|i| unsafe { p.add(i).read() } == b)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn slab_matches_model(
        slots in 1u32..12,
        ops in prop::collection::vec(op(), 1..300),
    ) {
        let region = HeapRegion::new_zeroed(TreiberSlab::required_size(slots, SLOT_SIZE));
        let slab = TreiberSlab::init(region.region(), slots, SLOT_SIZE).unwrap();
        // Model: per-slot generation (even = free), live handles and their state, dead
        // handles.
        let mut generation = vec![0u32; slots as usize];
        let mut live: Vec<(SlotHandle, SlotState)> = Vec::new();
        let mut dead: Vec<SlotHandle> = Vec::new();

        for op in ops {
            match op {
                Op::Alloc => match slab.alloc() {
                    AllocResult::Ok(h) => {
                        prop_assert!((live.len() as u32) < slots);
                        prop_assert!(!live.iter().any(|(l, _)| l.index == h.index));
                        let g = &mut generation[h.index as usize];
                        prop_assert_eq!(h.generation, *g + 1);
                        *g += 1;
                        stamp(&slab, h);
                        live.push((h, SlotState::Allocated));
                    }
                    AllocResult::Exhausted => prop_assert_eq!(live.len() as u32, slots),
                    AllocResult::Corrupt(e) => prop_assert!(false, "corrupt: {e}"),
                },
                Op::Free(n) if !live.is_empty() => {
                    let (h, _) = live.swap_remove(n % live.len());
                    prop_assert!(check_stamp(&slab, h), "slot {} overwritten", h.index);
                    prop_assert_eq!(slab.free(h), Ok(()));
                    generation[h.index as usize] += 1;
                    dead.push(h);
                }
                Op::FreeDead(n) if !dead.is_empty() => {
                    let h = dead[n % dead.len()];
                    let current = generation[h.index as usize];
                    let expect = if current == h.generation + 1 {
                        FreeError::DoubleFree { index: h.index, generation: h.generation }
                    } else {
                        FreeError::StaleGeneration { index: h.index, handle: h.generation, current }
                    };
                    prop_assert_eq!(slab.free(h), Err(expect));
                }
                Op::MarkInFlight(n) if !live.is_empty() => {
                    let i = n % live.len();
                    let (h, state) = live[i];
                    let r = slab.mark_in_flight(h);
                    if state == SlotState::Allocated {
                        prop_assert_eq!(r, Ok(()));
                        live[i].1 = SlotState::InFlight;
                    } else {
                        prop_assert_eq!(r, Err(SlotError::InvalidState { index: h.index, state: 2 }));
                    }
                }
                Op::MarkDead(n) if !dead.is_empty() => {
                    let h = dead[n % dead.len()];
                    let r = slab.mark_in_flight(h);
                    let is_stale = matches!(r, Err(SlotError::StaleGeneration { .. }));
                    prop_assert!(is_stale, "{:?}", r);
                    prop_assert!(slab.slot_ptr(h).is_err());
                    prop_assert!(slab.slot_state(h).is_err());
                }
                Op::Forged(index, g) => {
                    let h = SlotHandle { index, generation: g };
                    if live.iter().any(|(l, _)| *l == h) {
                        continue; // that is a real handle, not a forgery
                    }
                    let r = slab.free(h);
                    if index >= slots {
                        prop_assert_eq!(r, Err(FreeError::OutOfRange { index, slot_count: slots }));
                    } else {
                        prop_assert!(r.is_err(), "forged {:?} was freed", h);
                    }
                }
                _ => {}
            }
            prop_assert_eq!(slab.free_count(), slots - live.len() as u32);
            for (h, state) in &live {
                prop_assert_eq!(slab.slot_state(*h), Ok(*state));
            }
        }

        // Everything comes back exactly once.
        for (h, _) in live.drain(..) {
            prop_assert!(check_stamp(&slab, h));
            prop_assert_eq!(slab.free(h), Ok(()));
        }
        let mut seen: HashMap<u32, SlotHandle> = HashMap::new();
        for _ in 0..slots {
            let h = slab.alloc().ok();
            prop_assert!(h.is_some());
            let h = h.unwrap();
            prop_assert!(seen.insert(h.index, h).is_none(), "slot {} twice", h.index);
        }
        prop_assert_eq!(slab.alloc(), AllocResult::Exhausted);
    }
}
