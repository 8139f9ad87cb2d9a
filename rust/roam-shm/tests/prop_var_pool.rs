//! Property test: random alloc / free / stale free / bogus free / reclaim sequences
//! against a model of the live handles. Checks that no slot is ever live twice, that
//! class choice, generations and counts match the model, and that the bytes written
//! into each live slot stay intact until it is freed.
#![cfg(not(feature = "loom"))]

use std::collections::HashMap;

use proptest::prelude::*;
use roam_shm::region::HeapRegion;
use roam_shm::segment::var_pool::{
    SizeClass, SlotState, VarPoolError, VarSlotHandle, VarSlotPool, calculate_size,
};

const CLASSES: [SizeClass; 3] = [
    SizeClass {
        slot_size: 16,
        count: 4,
    },
    SizeClass {
        slot_size: 64,
        count: 3,
    },
    SizeClass {
        slot_size: 256,
        count: 2,
    },
];

#[derive(Debug, Clone)]
enum Op {
    Alloc {
        size: u32,
        owner: u32,
    },
    Free(usize),
    StaleFree(usize),
    BogusFree {
        class_idx: u8,
        slot_idx: u32,
        generation: u32,
    },
    Validate(usize),
    Reclaim(u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u32..=300, 0u32..4).prop_map(|(size, owner)| Op::Alloc { size, owner }),
        3 => any::<usize>().prop_map(Op::Free),
        1 => any::<usize>().prop_map(Op::StaleFree),
        1 => (0u8..5, 0u32..6, 0u32..4).prop_map(|(class_idx, slot_idx, generation)| {
            Op::BogusFree { class_idx, slot_idx, generation }
        }),
        1 => any::<usize>().prop_map(Op::Validate),
        1 => (0u32..4).prop_map(Op::Reclaim),
    ]
}

struct Live {
    handle: VarSlotHandle,
    owner: u32,
    fill: u8,
}

/// Every byte of the slot equals `fill`.
fn check_fill(pool: &VarSlotPool<'_>, l: &Live) -> Result<(), TestCaseError> {
    let (p, len) = pool
        .validate_ref(l.handle, Some(l.owner))
        .map_err(|e| TestCaseError::fail(format!("live slot invalid: {e}")))?;
    for i in 0..len as usize {
        // SAFETY: the slot is live in the model, so this test owns its `len` bytes.
        let b = unsafe { p.add(i).read() };
        prop_assert_eq!(b, l.fill, "slot {:?} byte {} overwritten", l.handle, i);
    }
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let heap = HeapRegion::new_zeroed(calculate_size(&CLASSES).unwrap() as usize);
    // SAFETY: a fresh heap region used by this test thread only.
    let pool = unsafe { VarSlotPool::init(heap.region(), &CLASSES) }.unwrap();

    let mut live: Vec<Live> = Vec::new();
    let mut stale: Vec<VarSlotHandle> = Vec::new();
    let mut last_gen: HashMap<(u8, u32), u32> = HashMap::new();
    let mut next_fill = 1u8;

    for op in ops {
        match op {
            Op::Alloc { size, owner } => {
                let expect_class = CLASSES.iter().enumerate().position(|(i, c)| {
                    let used = live
                        .iter()
                        .filter(|l| l.handle.class_idx as usize == i)
                        .count();
                    c.slot_size >= size && used < c.count as usize
                });
                let got = pool.alloc(size, owner);
                prop_assert_eq!(got.map(|h| h.class_idx as usize), expect_class);
                if let Some(h) = got {
                    let key = (h.class_idx, h.slot_idx);
                    prop_assert!(
                        !live
                            .iter()
                            .any(|l| (l.handle.class_idx, l.handle.slot_idx) == key),
                        "slot {:?} handed out while live",
                        key
                    );
                    let prev = last_gen.insert(key, h.generation).unwrap_or(0);
                    prop_assert_eq!(h.generation, prev + 1);
                    let (p, len) = pool.validate_ref(h, Some(owner)).unwrap();
                    prop_assert!(len >= size);
                    // SAFETY: freshly allocated to this test: `len` bytes are ours.
                    unsafe { p.write_bytes(next_fill, len as usize) };
                    live.push(Live {
                        handle: h,
                        owner,
                        fill: next_fill,
                    });
                    next_fill = next_fill.wrapping_add(1).max(1);
                }
            }
            Op::Free(sel) if !live.is_empty() => {
                let l = live.swap_remove(sel % live.len());
                check_fill(&pool, &l)?;
                prop_assert_eq!(pool.free(l.handle), Ok(()));
                prop_assert_eq!(pool.slot_state(l.handle), Ok(SlotState::Free));
                stale.push(l.handle);
            }
            Op::StaleFree(sel) if !stale.is_empty() => {
                let h = stale[sel % stale.len()];
                let err = pool.free(h).unwrap_err();
                prop_assert!(
                    matches!(
                        err,
                        VarPoolError::DoubleFree { .. } | VarPoolError::StaleGeneration { .. }
                    ),
                    "{:?}",
                    err
                );
            }
            Op::BogusFree {
                class_idx,
                slot_idx,
                generation,
            } => {
                let h = VarSlotHandle {
                    class_idx,
                    extent_idx: 0,
                    slot_idx,
                    generation,
                };
                if let Some(i) = live.iter().position(|l| l.handle == h) {
                    // Happens to name a live allocation exactly: a legitimate free.
                    let l = live.swap_remove(i);
                    check_fill(&pool, &l)?;
                    prop_assert_eq!(pool.free(h), Ok(()));
                    stale.push(h);
                } else {
                    prop_assert!(pool.free(h).is_err());
                }
            }
            Op::Validate(sel) if !live.is_empty() => {
                check_fill(&pool, &live[sel % live.len()])?;
            }
            Op::Reclaim(owner) => {
                let (gone, kept): (Vec<Live>, Vec<Live>) =
                    live.into_iter().partition(|l| l.owner == owner);
                live = kept;
                for l in &gone {
                    check_fill(&pool, l)?;
                }
                prop_assert_eq!(pool.reclaim_peer_slots(owner), gone.len());
                stale.extend(gone.iter().map(|l| l.handle));
            }
            _ => {}
        }

        // Counts match the model after every step.
        let stats = pool.stats();
        for (i, c) in CLASSES.iter().enumerate() {
            let used = live
                .iter()
                .filter(|l| l.handle.class_idx as usize == i)
                .count() as u32;
            prop_assert_eq!(stats[i].allocated, used);
            prop_assert_eq!(pool.free_count(i), Ok(c.count - used));
        }
    }
    for l in &live {
        check_fill(&pool, l)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn var_pool_matches_model(ops in prop::collection::vec(op(), 1..200)) {
        run(ops)?;
    }
}
