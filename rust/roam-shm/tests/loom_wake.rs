#![cfg(feature = "loom")]
//! The wake-suppression protocol (`roam_shm::wake`) over the real BipBuffer: a
//! consumer about to sleep and a producer that just committed never both miss each
//! other. Seeding the bug (dropping the fences) must be caught.

use loom::sync::Arc;
use loom::thread;
use roam_shm::bipbuf::{BipBufHeader, BipBufRaw};
use roam_shm::sync::{AtomicBool, AtomicU32, Ordering};

struct Shared {
    header: Box<BipBufHeader>,
    data: Box<[u8; 16]>,
    polling: AtomicU32,
    rung: AtomicBool,
}

fn ring(s: &Shared) -> BipBufRaw {
    let h = &*s.header as *const BipBufHeader as *mut BipBufHeader;
    let d = s.data.as_ptr() as *mut u8;
    // SAFETY: header and data live as long as `s` (kept alive by the Arc in each
    // thread); one thread produces and the other consumes.
    unsafe { BipBufRaw::from_parts(h, d, 16).unwrap() }
}

fn model() {
    let mut header = Box::new(BipBufHeader::new(16));
    let data = Box::new([0u8; 16]);
    let h = &mut *header as *mut BipBufHeader;
    // SAFETY: exclusive, freshly allocated header.
    unsafe { BipBufRaw::init(h, data.as_ptr() as *mut u8, 16).unwrap() };
    let s = Arc::new(Shared {
        header,
        data,
        polling: AtomicU32::new(1),
        rung: AtomicBool::new(false),
    });

    let p = s.clone();
    let producer = thread::spawn(move || {
        let r = ring(&p);
        let off = r.try_grant(4).unwrap().expect("room");
        assert_eq!(off, 0);
        r.commit(4).unwrap();
        if roam_shm::wake::should_wake(&p.polling) {
            p.rung.store(true, Ordering::Relaxed);
        }
    });

    // Consumer: about to sleep.
    let r = ring(&s);
    roam_shm::wake::announce(&s.polling, false);
    let saw_data = matches!(r.try_read(), Ok(Some(_)));
    producer.join().unwrap();
    assert!(
        saw_data || s.rung.load(Ordering::Relaxed),
        "lost wake-up: consumer sleeps on a committed frame"
    );
}

struct Reset;
impl Drop for Reset {
    fn drop(&mut self) {
        roam_shm::sync::seeded_bug::set(false);
    }
}

#[test]
fn no_lost_wakeup() {
    assert!(!roam_shm::sync::seeded_bug::enabled());
    loom::model(model);
}

#[test]
#[should_panic(expected = "lost wake-up")]
fn seeded_missing_fences_are_caught() {
    let _reset = Reset;
    roam_shm::sync::seeded_bug::set(true);
    loom::model(model);
}
