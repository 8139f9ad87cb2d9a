//! Loom models of the peer-table claims: no slot is ever claimed twice, and the
//! claim's Acquire observes what the host's `reset` published.
//!
//! Run: `cargo test -p roam-shm --release --features loom --test loom_peer -- --test-threads=1`
#![cfg(feature = "loom")]

use loom::sync::Arc;
use loom::thread;
use roam_shm::segment::peer::{PeerEntry, PeerState, PeerTable};
use roam_shm::sync::{self, AtomicU32, Ordering};

fn entries(n: usize) -> Arc<Vec<PeerEntry>> {
    Arc::new((0..n).map(|i| PeerEntry::new(i as u64 * 4096)).collect())
}

/// Two walk-in guests, two slots: both get one, never the same one.
#[test]
fn walk_ins_get_distinct_slots() {
    loom::model(|| {
        let t = entries(2);
        let t2 = t.clone();
        let g = thread::spawn(move || PeerTable::from_slice(&t2).find_walk_in(11).unwrap().0);
        let mine = PeerTable::from_slice(&t).find_walk_in(22).unwrap().0;
        let theirs = g.join().unwrap();
        assert_ne!(mine, theirs);
        for e in t.iter() {
            assert_eq!(e.state(), Ok(PeerState::Attached));
            assert_eq!(e.epoch(), 1);
        }
    });
}

/// Two walk-in guests, one slot: exactly one wins.
#[test]
fn one_slot_one_winner() {
    loom::model(|| {
        let t = entries(1);
        let t2 = t.clone();
        let g = thread::spawn(move || PeerTable::from_slice(&t2).find_walk_in(1).is_ok());
        let a = PeerTable::from_slice(&t).find_walk_in(2).is_ok();
        let b = g.join().unwrap();
        assert!(a ^ b, "exactly one claim succeeds");
        assert_eq!(t[0].epoch(), 1);
    });
}

/// Host reserve races a walk-in guest on one slot: exactly one wins; a reservation
/// can then be claimed by its ticket holder without a second epoch bump.
#[test]
fn host_reserve_vs_walk_in() {
    loom::model(|| {
        let t = entries(1);
        let t2 = t.clone();
        let g = thread::spawn(move || t2[0].walk_in_attach(5).is_ok());
        let host = t[0].host_reserve().is_ok();
        let guest = g.join().unwrap();
        assert!(host ^ guest);
        assert_eq!(t[0].epoch(), 1);
        if host {
            t[0].guest_attach_reserved(6).unwrap();
            assert_eq!(t[0].epoch(), 1);
        }
        assert_eq!(t[0].state(), Ok(PeerState::Attached));
    });
}

/// The host recovers a slot (zeroes the ring word, then `reset`); a walk-in guest
/// that claims the slot must see the zeroed ring.
fn reset_then_claim() {
    loom::model(|| {
        let t = entries(1);
        t[0].goodbye();
        let ring = Arc::new(AtomicU32::new(7));
        let (t2, ring2) = (t.clone(), ring.clone());
        let host = thread::spawn(move || {
            // Relaxed: published by the reset's Release store of the state.
            ring2.store(0, Ordering::Relaxed);
            t2[0].reset();
        });
        if t[0].walk_in_attach(9).is_ok() {
            // Relaxed: ordered by the claim's Acquire.
            assert_eq!(
                ring.load(Ordering::Relaxed),
                0,
                "claimed a slot with a stale ring"
            );
        }
        host.join().unwrap();
    });
}

#[test]
fn claim_observes_reset() {
    sync::seeded_bug::set(false);
    reset_then_claim();
}

/// Restores the facade after a seeded test, even when it panics.
struct Unseed;
impl Drop for Unseed {
    fn drop(&mut self) {
        sync::seeded_bug::set(false);
    }
}

/// The same model with `publish`/`observe` weakened to Relaxed: loom must find the
/// stale ring.
#[test]
#[should_panic(expected = "stale ring")]
fn claim_without_acquire_is_caught() {
    let _unseed = Unseed;
    sync::seeded_bug::set(true);
    reset_then_claim();
}
