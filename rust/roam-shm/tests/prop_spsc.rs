#![cfg(not(feature = "loom"))]
//! Property tests of the SPSC ring against a `VecDeque` model.

use std::collections::{HashSet, VecDeque};

use proptest::prelude::*;
use roam_shm::region::HeapRegion;
use roam_shm::spsc::{PushResult, RingFull, SpscError, SpscRing};

#[derive(Debug, Clone)]
enum Op {
    Push,
    TryPush,
    Pop,
    Peek,
    PushBatch(usize),
    PopBatch(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Push),
        1 => Just(Op::TryPush),
        3 => Just(Op::Pop),
        1 => Just(Op::Peek),
        2 => (0usize..80).prop_map(Op::PushBatch),
        2 => (0usize..80).prop_map(Op::PopBatch),
    ]
}

/// Start both indices at `start` (near `u64::MAX` to wrap the counters themselves).
fn set_indices(region: &HeapRegion, producer: u64, consumer: u64) {
    let base = region.region().as_ptr();
    // SAFETY: offsets 0 and 64 hold the two u64 indices (plain bytes outside loom), and
    // no handle of the ring is alive while we write them.
    unsafe {
        base.cast::<u64>().write(producer);
        base.add(64).cast::<u64>().write(consumer);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn ring_matches_vecdeque(
        cap_log in 0u32..=6,
        near_wrap in any::<bool>(),
        ops in prop::collection::vec(op(), 1..400),
    ) {
        let cap = 1u32 << cap_log;
        let region = HeapRegion::new_zeroed(SpscRing::<u64>::required_size(cap));
        SpscRing::<u64>::init(region.region(), cap).unwrap();
        if near_wrap {
            let start = u64::MAX - 100;
            set_indices(&region, start, start);
        }
        let ring = SpscRing::<u64>::attach(region.region()).unwrap();
        prop_assert_eq!(ring.capacity(), cap);
        let (mut p, mut c) = ring.split();
        let mut model: VecDeque<u64> = VecDeque::new();
        let mut next = 1u64;
        let mut buf = vec![0u64; 80];

        for op in ops {
            match op {
                Op::Push => {
                    let r = p.push(next);
                    if model.len() < cap as usize {
                        prop_assert_eq!(r, PushResult::Ok);
                        model.push_back(next);
                        next += 1;
                    } else {
                        prop_assert_eq!(r, PushResult::Full(next));
                    }
                }
                Op::TryPush => {
                    let r = p.try_push(next);
                    if model.len() < cap as usize {
                        prop_assert_eq!(r, Ok(()));
                        model.push_back(next);
                        next += 1;
                    } else {
                        prop_assert_eq!(r, Err(RingFull::Full(next)));
                    }
                }
                Op::Pop => prop_assert_eq!(c.pop(), model.pop_front()),
                Op::Peek => prop_assert_eq!(c.peek(), model.front().copied()),
                Op::PushBatch(n) => {
                    let vals: Vec<u64> = (next..next + n as u64).collect();
                    let k = p.push_batch(&vals);
                    let expect = n.min(cap as usize - model.len());
                    prop_assert_eq!(k, expect);
                    model.extend(&vals[..k]);
                    next += k as u64;
                }
                Op::PopBatch(n) => {
                    let k = c.pop_batch(&mut buf[..n]);
                    let expect: Vec<u64> = model.drain(..n.min(model.len())).collect();
                    prop_assert_eq!(&buf[..k], &expect[..]);
                }
            }
            prop_assert_eq!(p.len(), model.len());
            prop_assert_eq!(c.len(), model.len());
            // Lower bounds from the cached opposite index, exact about zero.
            let free = p.free_slots().unwrap();
            prop_assert!(free <= cap as usize - model.len());
            prop_assert_eq!(free == 0, model.len() == cap as usize);
            let ready = c.ready_slots().unwrap();
            prop_assert!(ready <= model.len());
            prop_assert_eq!(ready == 0, model.is_empty());
            prop_assert_eq!(p.is_full(), model.len() == cap as usize);
            prop_assert_eq!(c.is_empty(), model.is_empty());
        }
    }

    /// A broken peer scribbles an index at random moments: the ring never panics or
    /// reads outside itself, only ever yields values that were pushed (or the zeroes
    /// the ring was initialised with), and reports corruption exactly when the indices
    /// it reads claim more than `capacity` pending entries.
    #[test]
    fn scribbled_indices_are_contained(
        cap_log in 0u32..=4,
        steps in prop::collection::vec(
            (op(), prop::option::weighted(0.1, (any::<bool>(), any::<u64>(), 0u64..40))),
            1..200,
        ),
    ) {
        let cap = 1u32 << cap_log;
        let region = HeapRegion::new_zeroed(SpscRing::<u64>::required_size(cap));
        let (mut p, mut c) = SpscRing::<u64>::init(region.region(), cap).unwrap().split();
        let base = region.region().as_ptr();
        let mut pushed: HashSet<u64> = HashSet::from([0]);
        let mut next = 1u64;
        let mut buf = vec![0u64; 80];

        for (op, scribble) in steps {
            if let Some((consumer_side, random, small)) = scribble {
                // Either an arbitrary value or one near the current indices.
                let v = if random % 2 == 0 { random } else { next.wrapping_add(small).wrapping_sub(20) };
                let off = if consumer_side { 64 } else { 0 };
                // SAFETY: an aligned u64 index inside the header; the ring's own
                // accesses to it are atomic, this test plays the concurrent peer.
                unsafe { base.add(off).cast::<u64>().write_volatile(v) };
            }
            match op {
                Op::Push | Op::TryPush => match p.push(next) {
                    PushResult::Ok => { pushed.insert(next); next += 1; }
                    PushResult::Full(v) | PushResult::Corrupt(v) => prop_assert_eq!(v, next),
                },
                Op::PushBatch(n) => {
                    let vals: Vec<u64> = (next..next + n as u64).collect();
                    match p.try_push_batch(&vals) {
                        Ok(k) => { pushed.extend(&vals[..k]); next += k as u64; }
                        Err(SpscError::Corrupt { producer, consumer, capacity }) => {
                            prop_assert!(producer.wrapping_sub(consumer) > u64::from(capacity));
                        }
                        Err(e) => prop_assert!(false, "unexpected {e}"),
                    }
                }
                Op::Pop | Op::Peek => match c.try_pop() {
                    Ok(Some(v)) => prop_assert!(pushed.contains(&v), "invented {v}"),
                    Ok(None) => {}
                    Err(SpscError::Corrupt { producer, consumer, capacity }) => {
                        prop_assert!(producer.wrapping_sub(consumer) > u64::from(capacity));
                    }
                    Err(e) => prop_assert!(false, "unexpected {e}"),
                },
                Op::PopBatch(n) => {
                    if let Ok(k) = c.try_pop_batch(&mut buf[..n]) {
                        for v in &buf[..k] {
                            prop_assert!(pushed.contains(v), "invented {v}");
                        }
                    }
                }
            }
            prop_assert!(p.len() <= cap as usize && c.len() <= cap as usize);
        }
    }
}
