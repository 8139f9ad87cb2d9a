//! Loom models of the VarSlotPool's Treiber free lists.
//!
//! Each slot has a test-local shadow `loom::cell::UnsafeCell` that the slot's owner
//! writes between alloc and free, standing in for the payload bytes: if a slot is ever
//! handed to two owners at once, or the free → next-alloc hand-off lacks a
//! happens-before edge, loom reports a causality violation.
//!
//! Run: `cargo test -p roam-shm --release --features loom --test loom_var_pool --
//! --test-threads=1` (the seeded-bug test flips a process-wide switch). The models are
//! small enough to explore without a preemption bound (`LOOM_MAX_PREEMPTIONS` sets one).
//!
//! ## DPOR hint
//! loom 0.7 remembers only the *last* access to each atomic, so when thread X loads the
//! free-list head and thread Y then loads it and CASes it, Y's CAS is compared with Y's
//! own load and the race with X's load is never explored (tokio-rs/loom#166, #392): a
//! model in which main allocates right after spawning a freer runs exactly one
//! interleaving. Every pool operation in these models therefore starts with a Relaxed
//! store to one shared `hint` atomic ([`Fixture::step`]), which makes each pair of
//! operations dependent for the DPOR without adding any happens-before edge. The fine
//! interleavings inside an operation (between a head load and its CAS) are explored by
//! loom on its own.
//!
//! Mutation checks done while writing these models (each fails the named model):
//! no tag increment → `aba_on_the_head_is_prevented_by_the_tag` (with or without the
//! hint); `publish()`/`observe()` Relaxed → `seeded_relaxed_hand_off_is_caught` passes
//! its `should_panic` only *with* the hint; a plain state store instead of the CAS in
//! free → `racing_frees_of_one_handle_push_once`; no generation re-check after that CAS
//! → `stale_free_never_frees_a_newer_allocation`.
#![cfg(feature = "loom")]

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use loom::thread;
use roam_shm::region::HeapRegion;
use roam_shm::segment::var_pool::{
    RawVarSlotPool, SizeClass, SlotState, VarPoolError, VarSlotHandle, calculate_size,
};

/// A pool of one class with `slots` slots, plus one shadow cell per slot.
struct Fixture {
    // Declared before `_heap`, so it is dropped first.
    pool: RawVarSlotPool,
    shadow: Vec<UnsafeCell<u32>>,
    hint: AtomicUsize,
    _heap: HeapRegion,
}

impl Fixture {
    fn new(slots: u32) -> Arc<Fixture> {
        let classes = [SizeClass {
            slot_size: 64,
            count: slots,
        }];
        let heap = HeapRegion::new_zeroed(calculate_size(&classes).unwrap() as usize);
        // SAFETY: the heap region lives in the fixture next to the pool and outlives it
        // (field drop order); nothing else references its bytes.
        let pool = unsafe { RawVarSlotPool::new(heap.region().as_ptr(), heap.len(), 0, &classes) }
            .unwrap();
        // SAFETY: the memory is fresh and not shared yet.
        unsafe { pool.init() };
        Arc::new(Fixture {
            pool,
            shadow: (0..slots).map(|_| UnsafeCell::new(0)).collect(),
            hint: AtomicUsize::new(0),
            _heap: heap,
        })
    }

    /// The DPOR hint (module docs): a Relaxed store, so no happens-before edge.
    fn step(&self) {
        self.hint.store(0, Relaxed);
    }

    fn alloc(&self, owner: u32) -> Option<VarSlotHandle> {
        self.step();
        self.pool.alloc(1, owner)
    }

    fn free(&self, h: VarSlotHandle) -> Result<(), VarPoolError> {
        self.step();
        self.pool.free(h)
    }

    /// What an owner does with its slot: write the shadow cell and read it back.
    fn touch(&self, h: VarSlotHandle, who: u32) {
        let cell = &self.shadow[h.slot_idx as usize];
        // SAFETY: loom checks this access: it is exclusive iff the pool handed the slot
        // to `who` alone and the previous owner's accesses happen-before this one.
        cell.with_mut(|p| unsafe { *p = who });
        // SAFETY: as above.
        assert_eq!(cell.with(|p| unsafe { *p }), who, "slot shared");
    }

    fn free_slots(&self) -> u32 {
        self.pool.free_count(0).unwrap()
    }
}

/// Explore every interleaving: no preemption bound unless `LOOM_MAX_PREEMPTIONS` sets
/// one (all models together take a few seconds in release).
fn model<F: Fn() + Sync + Send + 'static>(f: F) {
    loom::model::Builder::new().check(f);
}

/// Two threads allocate, use and free concurrently from a 2-slot pool (one of them
/// holds two slots at once): no slot is ever held by two owners, and every slot is
/// back on the free list at the end.
#[test]
fn concurrent_alloc_free_never_shares_a_slot() {
    model(|| {
        let fx = Fixture::new(2);
        let a = {
            let fx = fx.clone();
            thread::spawn(move || {
                let h1 = fx.alloc(1).expect("one slot is always free for A");
                fx.touch(h1, 1);
                if let Some(h2) = fx.alloc(1) {
                    fx.touch(h2, 11);
                    fx.free(h2).unwrap();
                }
                fx.free(h1).unwrap();
            })
        };
        if let Some(h) = fx.alloc(2) {
            fx.touch(h, 2);
            fx.free(h).unwrap();
        }
        a.join().unwrap();
        assert_eq!(fx.free_slots(), 2);
        assert_eq!(fx.pool.stats()[0].allocated, 0);
    });
}

/// Three threads contend for two slots: whoever gets one uses it exclusively, at most
/// one thread can come away empty-handed, and all slots end up free. Bounded to 2
/// preemptions (unless `LOOM_MAX_PREEMPTIONS` says otherwise) to stay within seconds.
#[test]
fn three_threads_two_slots() {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    b.check(|| {
        let fx = Fixture::new(2);
        let worker = |who: u32| {
            let fx = fx.clone();
            thread::spawn(move || match fx.alloc(who) {
                Some(h) => {
                    fx.touch(h, who);
                    fx.free(h).unwrap();
                    true
                }
                None => false,
            })
        };
        let (a, b) = (worker(1), worker(2));
        let mine = match fx.alloc(3) {
            Some(h) => {
                fx.touch(h, 3);
                fx.free(h).unwrap();
                true
            }
            None => false,
        };
        let got = [mine, a.join().unwrap(), b.join().unwrap()];
        assert!(got.iter().filter(|&&g| g).count() >= 2);
        assert_eq!(fx.free_slots(), 2);
    });
}

/// The ABA case: A reads head (0, tag) with next = 1 and stalls; B pops 0, pops 1 and
/// pushes 0 back, so the head's index is 0 again. Only the tag makes A's CAS fail; an
/// untagged CAS would install slot 1 (held by B) as the head. Loom runs this
/// interleaving; the free list must still be exact afterwards.
#[test]
fn aba_on_the_head_is_prevented_by_the_tag() {
    model(|| {
        let fx = Fixture::new(3);
        let a = {
            let fx = fx.clone();
            thread::spawn(move || {
                let h = fx.alloc(1).expect("A gets a slot");
                fx.touch(h, 1);
                h
            })
        };
        let b0 = fx.alloc(2).expect("B gets a first slot");
        fx.touch(b0, 2);
        let b1 = fx.alloc(2).expect("B gets a second slot");
        fx.touch(b1, 2);
        fx.free(b0).unwrap();
        let ha = a.join().unwrap();

        assert_ne!(ha.slot_idx, b1.slot_idx);
        assert_eq!(fx.free_slots(), 1, "exactly one slot left on the list");
        let last = fx.pool.try_alloc(1, 3).unwrap().expect("the last slot");
        assert!(last.slot_idx != ha.slot_idx && last.slot_idx != b1.slot_idx);
        assert_eq!(fx.pool.try_alloc(1, 3), Ok(None));
    });
}

/// Two racing frees of one handle: exactly one wins and the slot is pushed once.
#[test]
fn racing_frees_of_one_handle_push_once() {
    model(|| {
        let fx = Fixture::new(2);
        let h = fx.alloc(1).unwrap();
        let t = {
            let fx = fx.clone();
            thread::spawn(move || fx.free(h).is_ok())
        };
        let mine = fx.free(h).is_ok();
        let theirs = t.join().unwrap();
        assert!(mine ^ theirs, "exactly one free succeeds");
        assert_eq!(fx.free_slots(), 2);
    });
}

/// A stale free racing with free + re-allocation of the same slot (1-slot pool) must
/// not free the new allocation: the generation re-check after the state CAS undoes it.
#[test]
fn stale_free_never_frees_a_newer_allocation() {
    model(|| {
        let fx = Fixture::new(1);
        let h = fx.alloc(1).unwrap();
        let t = {
            let fx = fx.clone();
            thread::spawn(move || fx.free(h).is_ok())
        };
        let realloc = match fx.free(h) {
            Ok(()) => fx.alloc(1),
            Err(_) => None,
        };
        let stale_ok = t.join().unwrap();
        match realloc {
            Some(h2) => {
                assert!(!stale_ok);
                assert_eq!(fx.pool.slot_state(h2), Ok(SlotState::Allocated));
                assert_eq!(fx.free_slots(), 0);
            }
            None => assert_eq!(fx.free_slots(), 1),
        }
    });
}

/// The hand-off free → next alloc carries the previous owner's writes (positive
/// control for the seeded-bug test below).
#[test]
fn free_publishes_the_slot_to_the_next_owner() {
    model(hand_off);
}

fn hand_off() {
    let fx = Fixture::new(1);
    let h = fx.alloc(1).unwrap();
    fx.touch(h, 1);
    let t = {
        let fx = fx.clone();
        thread::spawn(move || {
            fx.touch(h, 2);
            fx.free(h).unwrap();
        })
    };
    if let Some(h2) = fx.alloc(1) {
        // Only possible after the other thread's free; its writes must be visible.
        fx.touch(h2, 3);
    }
    t.join().unwrap();
}

/// Resets the seeded bug even when the model panics.
struct Unseed;

impl Drop for Unseed {
    fn drop(&mut self) {
        roam_shm::sync::seeded_bug::set(false);
    }
}

/// With `publish()`/`observe()` weakened to Relaxed, the push no longer releases the
/// freer's writes and the pop no longer acquires them: loom must report the race on
/// the shadow cell.
#[test]
#[should_panic(expected = "Causality violation")]
fn seeded_relaxed_hand_off_is_caught() {
    let _unseed = Unseed;
    roam_shm::sync::seeded_bug::set(true);
    model(hand_off);
}
