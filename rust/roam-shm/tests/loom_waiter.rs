#![cfg(feature = "loom")]
//! Loom models of the futex wait/wake protocol in `roam_shm::waiter`.
//!
//! The kernel futex is replaced by `waiter::loom_emulation` (same semantics: sleep only
//! if the word still equals the expected value; wake wakes every sleeper), so what is
//! checked here is the protocol on top: no lost wake-up (a lost one shows up as a loom
//! "deadlock"), visibility of the data published before `notify`, and that the notifier
//! skips the wake when nobody sleeps.
//!
//! Run: `cargo test -p roam-shm --release --features loom --test loom_waiter -- --test-threads=1`

use std::sync::atomic::Ordering as StdOrdering;

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;
use roam_shm::region::HeapRegion;
use roam_shm::sync::{AtomicBool, Ordering};
use roam_shm::waiter::{WaitCell, WaitResult, loom_emulation};

/// Run a model, bounding preemptions (`None`: explore every interleaving), and report
/// how many executions loom explored.
fn model<F: Fn() + Sync + Send + 'static>(preemptions: Option<usize>, f: F) {
    #[allow(clippy::disallowed_types)] // a std counter across executions, not model state
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    // Relaxed (all RUNS/SKIPPED/WOKE accesses): plain counters; loom runs the executions
    // one after another on this thread, so they order nothing.
    RUNS.store(0, StdOrdering::Relaxed);
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = preemptions;
    }
    b.check(move || {
        RUNS.fetch_add(1, StdOrdering::Relaxed); // Relaxed: a counter, see above
        f()
    });
    eprintln!(
        "loom explored {} executions (preemption bound {:?})",
        RUNS.load(StdOrdering::Relaxed),
        b.preemption_bound
    );
}

/// Preemption bound of the models (`LOOM_MAX_PREEMPTIONS` overrides it).
const BOUND: Option<usize> = None;

/// Turns the seeded bug off again even when the model panics.
struct SeededBug;

impl SeededBug {
    fn on() -> SeededBug {
        roam_shm::sync::seeded_bug::set(true);
        SeededBug
    }
}

impl Drop for SeededBug {
    fn drop(&mut self) {
        roam_shm::sync::seeded_bug::set(false);
    }
}

/// One waiter, one notifier. The waiter must be notified (else loom reports a
/// deadlock), must see the data written before `notify`, and if the notifier skipped the
/// wake syscall the waiter must never have slept. Also checks, across executions, that
/// both the skip and the wake paths are explored.
#[test]
fn one_waiter_no_lost_wakeup_and_wake_skipped_when_nobody_sleeps() {
    #[allow(clippy::disallowed_types)] // a std counter across executions, not model state
    static SKIPPED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    #[allow(clippy::disallowed_types)] // as above
    static WOKE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    model(BOUND, || {
        let cell = Arc::new(WaitCell::new());
        let data = Arc::new(UnsafeCell::new(0u32));
        let (c2, d2) = (Arc::clone(&cell), Arc::clone(&data));
        let waiter = thread::spawn(move || {
            assert_eq!(c2.wait(0, None), WaitResult::Notified);
            // SAFETY: the notifier wrote before notify and never writes again; loom
            // checks that this read is ordered after that write.
            d2.with(|p| assert_eq!(unsafe { *p }, 42));
        });
        // SAFETY: no other access to `data` is concurrent with this write (the waiter
        // reads only after being notified, which loom verifies).
        data.with_mut(|p| unsafe { *p = 42 });
        let woke = cell.notify();
        waiter.join().unwrap();
        assert_eq!(loom_emulation::wake_calls(), usize::from(woke));
        if !woke {
            assert_eq!(loom_emulation::sleeps(), 0, "skipped the wake of a sleeper");
            SKIPPED.fetch_add(1, StdOrdering::Relaxed); // Relaxed: a counter
        } else {
            WOKE.fetch_add(1, StdOrdering::Relaxed); // Relaxed: a counter
        }
        assert_eq!(cell.sleepers(), 0);
    });
    assert!(
        SKIPPED.load(StdOrdering::Relaxed) > 0,
        "skip path never explored"
    );
    assert!(
        WOKE.load(StdOrdering::Relaxed) > 0,
        "wake path never explored"
    );
}

/// With no waiter at all, notify never issues a wake.
#[test]
fn notify_without_sleepers_skips_the_wake() {
    model(BOUND, || {
        let cell = WaitCell::new();
        assert!(!cell.notify());
        assert!(!cell.notify());
        assert_eq!(loom_emulation::wake_calls(), 0);
        assert_eq!(cell.seq(), 2);
    });
}

/// Two waiters on one cell, one notifier: both are woken. Three threads make the full
/// state space too large for a test run, so preemptions are bounded here.
#[test]
fn two_waiters_both_notified() {
    model(Some(4), || {
        let cell = Arc::new(WaitCell::new());
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let c = Arc::clone(&cell);
                thread::spawn(move || assert_eq!(c.wait(0, None), WaitResult::Notified))
            })
            .collect();
        cell.notify();
        for w in waiters {
            w.join().unwrap();
        }
        assert_eq!(cell.sleepers(), 0);
    });
}

/// The intended usage: read `seq`, check the condition, wait on the `seq` read. The
/// cell lives in a region (as in shared memory), initialised with `init_in_region`.
#[test]
fn condition_loop_through_a_region() {
    model(BOUND, || {
        let mem = Arc::new(HeapRegion::new_zeroed(std::mem::size_of::<WaitCell>()));
        WaitCell::init_in_region(mem.region(), 0).unwrap();
        let ready = Arc::new(AtomicBool::new(false));
        let (m2, r2) = (Arc::clone(&mem), Arc::clone(&ready));
        let consumer = thread::spawn(move || {
            let cell = WaitCell::from_region(m2.region(), 0).unwrap();
            loop {
                let s = cell.seq();
                // Relaxed: the seq() acquire above (or the wait's) orders this read
                // after the producer's notify when it observed the bump.
                if r2.load(Ordering::Relaxed) {
                    break;
                }
                cell.wait(s, None);
            }
        });
        let cell = WaitCell::from_region(mem.region(), 0).unwrap();
        // Relaxed: published by the release in notify().
        ready.store(true, Ordering::Relaxed);
        cell.notify();
        consumer.join().unwrap();
    });
}

/// A timed wait never hangs; if it reports Notified the data is visible.
#[test]
fn timed_wait_is_notified_or_times_out() {
    model(BOUND, || {
        let cell = Arc::new(WaitCell::new());
        let data = Arc::new(UnsafeCell::new(0u32));
        let (c2, d2) = (Arc::clone(&cell), Arc::clone(&data));
        let waiter = thread::spawn(move || {
            match c2.wait(0, Some(std::time::Duration::from_secs(1))) {
                // SAFETY: written before notify, never again; loom checks the order.
                WaitResult::Notified => d2.with(|p| assert_eq!(unsafe { *p }, 7)),
                WaitResult::TimedOut => {}
            }
        });
        // SAFETY: the waiter only reads after observing the notify.
        data.with_mut(|p| unsafe { *p = 7 });
        cell.notify();
        waiter.join().unwrap();
        assert_eq!(cell.sleepers(), 0);
    });
}

/// Seeded bug: the waiter's re-check after registering is a plain load instead of a
/// read-modify-write. Then both sides of the store-buffering pattern can read the old
/// values: the waiter sleeps on a stale `seq` while the notifier sees no sleeper and
/// skips the wake. Loom must find that execution (reported as a deadlock).
#[test]
#[should_panic(expected = "deadlock")]
fn seeded_bug_plain_load_recheck_loses_the_wakeup() {
    let _bug = SeededBug::on();
    model(BOUND, || {
        // Leaked rather than in a loom `Arc`: when loom aborts the execution on the
        // deadlock, unwinding must not run loom destructors (they would panic again
        // outside the execution and abort the test binary).
        let cell: &'static WaitCell = Box::leak(Box::new(WaitCell::new()));
        let waiter = thread::spawn(move || {
            cell.wait(0, None);
        });
        cell.notify();
        waiter.join().unwrap();
    });
}
