#![cfg(feature = "loom")]
//! Loom models of the Treiber slab.
//!
//! Slot data is raw memory, invisible to loom, so each test keeps a shadow
//! `loom::cell::UnsafeCell` per slot that the owner writes and reads back while it holds
//! the slot. Loom flags two owners at once, and a hand-off (free → next alloc) without
//! happens-before.
//!
//! Run: `cargo test -p roam-shm --release --features loom --test loom_treiber -- --test-threads=1`

use std::sync::Arc;

use loom::cell::UnsafeCell;
use loom::thread;
use roam_shm::region::HeapRegion;
use roam_shm::sync::seeded_bug;
use roam_shm::treiber::{AllocResult, SlotHandle, TreiberSlab};

/// Turns the seeded bug off again when dropped. It lives on the test function's own
/// stack, which unwinds normally when `check` panics (the model closure's stack may
/// not: loom can abandon it when the failure is found in another model thread).
struct ResetSeededBug;

impl Drop for ResetSeededBug {
    fn drop(&mut self) {
        seeded_bug::set(false);
    }
}

/// Run a model that must pass, refusing to start if a seeded bug leaked.
fn check(f: impl Fn() + Sync + Send + 'static) {
    assert!(
        !seeded_bug::enabled(),
        "seeded bug leaked from another test"
    );
    builder().check(f);
}

/// Shadow cells, one per ring entry / slot.
struct Shadow(Vec<UnsafeCell<u64>>);

// SAFETY: every access to the cells goes through loom's `with`/`with_mut`, which checks
// (and fails the model on) any access not ordered by happens-before; that check is the
// point of sharing them.
unsafe impl Sync for Shadow {}
// SAFETY: as above; the cells hold plain u64s.
unsafe impl Send for Shadow {}

impl std::ops::Index<usize> for Shadow {
    type Output = UnsafeCell<u64>;
    fn index(&self, i: usize) -> &UnsafeCell<u64> {
        &self.0[i]
    }
}

fn builder() -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    b
}

struct Shared {
    region: HeapRegion,
    shadow: Shadow,
}

fn setup(slots: u32) -> Arc<Shared> {
    let region = HeapRegion::new_zeroed(TreiberSlab::required_size(slots, 8));
    TreiberSlab::init(region.region(), slots, 8).expect("init");
    Arc::new(Shared {
        region,
        shadow: Shadow((0..slots).map(|_| UnsafeCell::new(0)).collect()),
    })
}

/// Use a slot we own: write and read back its shadow (loom checks exclusivity).
fn touch(sh: &Shared, h: SlotHandle, who: u64) {
    let cell = &sh.shadow[h.index as usize];
    cell.with_mut(|p| {
        // SAFETY: loom checks that no other access to this cell is concurrent.
        unsafe { *p = who }
    });
    let back = cell.with(|p| {
        // SAFETY: as above.
        unsafe { *p }
    });
    assert_eq!(back, who, "slot {} written by someone else", h.index);
}

/// `threads` threads each allocate a slot (if any is free), use it, and free it.
fn alloc_free_model(slots: u32, threads: u64) {
    let sh = setup(slots);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let sh = Arc::clone(&sh);
            thread::spawn(move || {
                let slab = TreiberSlab::attach(sh.region.region()).expect("attach");
                match slab.alloc() {
                    AllocResult::Ok(h) => {
                        touch(&sh, h, t + 1);
                        slab.free(h).expect("free own slot");
                    }
                    AllocResult::Exhausted => {}
                    AllocResult::Corrupt(e) => panic!("corrupt: {e}"),
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    let slab = TreiberSlab::attach(sh.region.region()).expect("attach");
    assert_list_intact(&slab, slots);
}

/// With every slot free, the list must hold each slot exactly once (bounded: a cycle
/// must not hang the test).
fn assert_list_intact(slab: &TreiberSlab<'_>, slots: u32) {
    let mut seen = Vec::new();
    for _ in 0..=slots {
        match slab.alloc() {
            AllocResult::Ok(h) => {
                assert!(
                    !seen.contains(&h.index),
                    "slot {} on the list twice",
                    h.index
                );
                seen.push(h.index);
            }
            AllocResult::Exhausted => break,
            AllocResult::Corrupt(e) => panic!("corrupt: {e}"),
        }
    }
    assert_eq!(seen.len(), slots as usize, "a slot was lost or duplicated");
}

#[test]
fn two_threads_one_slot() {
    check(|| alloc_free_model(1, 2));
}

#[test]
fn three_threads_two_slots() {
    check(|| alloc_free_model(2, 3));
}

/// The ABA shape: A pops while B pops two slots and pushes the first back, so A may
/// have read `(head = 0, next = 1)` when the head is 0 again but 1 is owned by B.
/// The tag must make A's CAS fail.
#[test]
fn aba_pop_pop_push() {
    check(|| {
        let sh = setup(3);
        let a = {
            let sh = Arc::clone(&sh);
            thread::spawn(move || {
                let slab = TreiberSlab::attach(sh.region.region()).expect("attach");
                let h = slab.alloc().ok();
                if let Some(h) = h {
                    touch(&sh, h, 1);
                }
                h
            })
        };
        let slab = TreiberSlab::attach(sh.region.region()).expect("attach");
        let h1 = slab.alloc().ok();
        let h2 = slab.alloc().ok();
        if let Some(h1) = h1 {
            touch(&sh, h1, 2);
            slab.free(h1).expect("free");
        }
        if let Some(h2) = h2 {
            touch(&sh, h2, 3);
        }
        let ha = a.join().expect("thread a");
        let live: Vec<_> = [ha, h2].into_iter().flatten().collect();
        assert_eq!(live.len(), 2, "3 slots, at most 3 in use at once");
        assert_ne!(live[0].index, live[1].index, "one slot handed out twice");
        for h in live {
            slab.free(h).expect("free");
        }
        assert_eq!(slab.free_count(), 3);
        assert_list_intact(&slab, 3);
    });
}

/// Two threads free the same handle while one of them then reallocates: exactly one
/// free wins, and the loser never frees the new allocation.
#[test]
fn racing_frees_of_one_handle() {
    check(|| {
        let sh = setup(1);
        let slab = TreiberSlab::attach(sh.region.region()).expect("attach");
        let h = slab.alloc().ok().expect("one slot");
        let other = {
            let sh = Arc::clone(&sh);
            thread::spawn(move || {
                let slab = TreiberSlab::attach(sh.region.region()).expect("attach");
                slab.free(h).is_ok()
            })
        };
        let mine = slab.free(h).is_ok();
        // Reallocate if the slot is back; a stale free must not take it from us.
        let again = slab.alloc().ok();
        if let Some(h2) = again {
            touch(&sh, h2, 7);
        }
        let theirs = other.join().expect("thread");
        assert!(mine ^ theirs, "exactly one free of a handle succeeds");
        if let Some(h2) = again {
            assert_eq!(h2.generation, h.generation + 2);
            slab.free(h2).expect("the new allocation is still ours");
        }
        assert_eq!(slab.free_count(), 1);
        assert_list_intact(&slab, 1);
    });
}

/// With publish()/observe() weakened to Relaxed, loom must find the hand-off race.
#[test]
#[should_panic]
fn seeded_bug_is_caught() {
    let _reset = ResetSeededBug;
    builder().check(|| {
        seeded_bug::set(true);
        alloc_free_model(1, 2);
    });
}
