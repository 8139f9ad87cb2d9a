#![cfg(feature = "loom")]
//! Loom models of the SPSC ring.
//!
//! The ring's entries are raw memory, which loom cannot see, so each test keeps a shadow
//! `loom::cell::UnsafeCell` per ring entry: the producer writes the shadow of an entry
//! right before publishing it, the consumer reads the shadow of the entry it is about
//! to consume (after `peek` has observed it, before `pop` releases it). Loom then flags
//! a missing happens-before in either direction: producer write → consumer read (the
//! producer index) and consumer read → producer overwrite (the consumer index).
//!
//! Run: `cargo test -p roam-shm --release --features loom --test loom_spsc -- --test-threads=1`

use std::sync::Arc;

use loom::cell::UnsafeCell;
use loom::thread;
use roam_shm::region::HeapRegion;
use roam_shm::spsc::{PushResult, SpscRing};
use roam_shm::sync::seeded_bug;

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
        b.preemption_bound = Some(4);
    }
    b
}

/// Producer pushes the values `100..100 + n` through a ring of `capacity`, the consumer
/// pops them in order. `chunk == 1` uses push/peek/pop; `chunk > 1` uses the batch calls
/// with up to `chunk` values at a time (so a batch can wrap the end of the ring).
fn ring_model(capacity: u32, n: u64, chunk: usize) {
    let region = Arc::new(HeapRegion::new_zeroed(SpscRing::<u64>::required_size(
        capacity,
    )));
    SpscRing::<u64>::init(region.region(), capacity).expect("init");
    let shadow = Arc::new(Shadow(
        (0..capacity).map(|_| UnsafeCell::new(u64::MAX)).collect(),
    ));
    let slot = move |i: u64| (i % u64::from(capacity)) as usize;

    let producer = {
        let region = Arc::clone(&region);
        let shadow = Arc::clone(&shadow);
        thread::spawn(move || {
            let mut p = SpscRing::<u64>::attach(region.region())
                .expect("attach")
                .into_producer();
            let mut i = 0;
            while i < n {
                // free_slots() observes the consumer index (acquire), so the consumer's
                // reads of these entries' shadows happen-before our writes below.
                let free = p.free_slots().expect("not corrupt");
                if free == 0 {
                    thread::yield_now();
                    continue;
                }
                // A first batch of one puts the later batches across the end of the ring.
                let k = if i == 0 {
                    1
                } else {
                    free.min(chunk).min((n - i) as usize) as u64
                };
                let values: Vec<u64> = (i..i + k).map(|j| j + 100).collect();
                for j in i..i + k {
                    shadow[slot(j)].with_mut(|s| {
                        // SAFETY: loom checks that no other access to this cell is
                        // concurrent.
                        unsafe { *s = j + 100 }
                    });
                }
                if chunk == 1 {
                    match p.push(values[0]) {
                        PushResult::Ok => {}
                        other => panic!("free_slots said there was room: {other:?}"),
                    }
                } else {
                    assert_eq!(p.push_batch(&values), values.len(), "room was promised");
                }
                i += k;
            }
        })
    };

    let mut c = SpscRing::<u64>::attach(region.region())
        .expect("attach")
        .into_consumer();
    let mut i = 0;
    let mut out = vec![0u64; chunk];
    while i < n {
        // ready_slots()/try_peek() observe the producer index (acquire), so the
        // producer's shadow writes happen-before our reads.
        let ready = if chunk == 1 {
            let v = c.try_peek().expect("not corrupt");
            if let Some(v) = v {
                assert_eq!(v, i + 100, "FIFO order");
            }
            usize::from(v.is_some())
        } else {
            c.ready_slots().expect("not corrupt")
        };
        if ready == 0 {
            thread::yield_now();
            continue;
        }
        let k = ready.min(chunk) as u64;
        for j in i..i + k {
            let s = shadow[slot(j)].with(|s| {
                // SAFETY: loom checks that no write to this cell is concurrent.
                unsafe { *s }
            });
            assert_eq!(s, j + 100, "shadow matches the entry");
        }
        if chunk == 1 {
            assert_eq!(c.pop(), Some(i + 100));
        } else {
            let got = c.pop_batch(&mut out[..k as usize]);
            assert_eq!(got as u64, k, "ready entries were promised");
            for (j, v) in (i..i + k).zip(&out) {
                assert_eq!(*v, j + 100, "FIFO order");
            }
        }
        i += k;
    }
    assert_eq!(c.pop(), None);
    producer.join().expect("producer");
}

#[test]
fn capacity_1_three_values() {
    check(|| ring_model(1, 3, 1));
}

#[test]
fn capacity_2_three_values() {
    check(|| ring_model(2, 3, 1));
}

#[test]
fn capacity_2_batches_wrap() {
    check(|| ring_model(2, 3, 2));
}

/// With publish()/observe() weakened to Relaxed, loom must find the shadow race.
#[test]
#[should_panic]
fn seeded_bug_is_caught() {
    let _reset = ResetSeededBug;
    builder().check(|| {
        seeded_bug::set(true);
        ring_model(1, 2, 1);
    });
}
