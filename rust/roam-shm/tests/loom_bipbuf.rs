#![cfg(feature = "loom")]
//! Loom models of the BipBuffer: a producer thread and a consumer (the model's main
//! thread) pass a few records through a tiny ring, so the wrap, the kept wrap and the
//! consumer's reset all run under every interleaving.
//!
//! The ring's data bytes are plain memory, which loom cannot see; each model keeps a
//! shadow array of `loom::cell::UnsafeCell<u8>` (one per data byte), written by the
//! producer before commit and read by the consumer after read (before release), so a
//! missing Release/Acquire between them shows up as a loom causality violation.
//!
//! The raw-API models also pair each side with a transcription of roam 7.3's code, so
//! interoperability with roam peers is model-checked, and `roam73_wrap_race_is_real`
//! keeps the proof of the wrap race in roam 7.3 that our two sides are hardened
//! against (see the `bipbuf` module docs).
//!
//! Run: `cargo test -p roam-shm --release --features loom --test loom_bipbuf -- --test-threads=1`
//! (`--test-threads=1` because the seeded-bug switch is process-wide).

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::AtomicU32;
use loom::thread;
use roam_shm::bipbuf::{BIPBUF_HEADER_SIZE, BipBuf, BipBufRaw, GrantOutcome, ReadOutcome};
use roam_shm::region::{HeapRegion, Region};
use roam_shm::sync::seeded_bug;
use std::sync::atomic::Ordering::{Acquire, Release};

/// One loom cell per data byte, mirroring what the ring's bytes should hold.
struct Shadow(Vec<UnsafeCell<u8>>);

// SAFETY: the cells are only accessed as the ring protocol allows (producer inside a
// grant, consumer inside a read); whether that protocol really orders the accesses is
// exactly what loom checks on every `with`/`with_mut`.
unsafe impl Sync for Shadow {}
// SAFETY: as above.
unsafe impl Send for Shadow {}

impl Shadow {
    fn new(len: usize) -> Shadow {
        Shadow((0..len).map(|_| UnsafeCell::new(0)).collect())
    }

    /// Producer side: record what was written into `[off, off + bytes.len())`.
    fn write(&self, off: u32, bytes: &[u8]) {
        for (i, &b) in bytes.iter().enumerate() {
            // SAFETY: loom tracks this access; the pointer is valid for the cell.
            self.0[off as usize + i].with_mut(|p| unsafe { *p = b });
        }
    }

    /// Consumer side: the shadow must agree with the bytes read from the ring.
    fn check(&self, off: u32, bytes: &[u8]) {
        for (i, &b) in bytes.iter().enumerate() {
            // SAFETY: loom tracks this access; the pointer is valid for the cell.
            let s = self.0[off as usize + i].with(|p| unsafe { *p });
            assert_eq!(
                s,
                b,
                "ring byte {} differs from its shadow",
                off as usize + i
            );
        }
    }
}

/// Turns the seeded bug on for one model execution and always off again (also when
/// the execution panics).
struct SeededBug;

impl SeededBug {
    fn on() -> SeededBug {
        seeded_bug::set(true);
        SeededBug
    }
}

impl Drop for SeededBug {
    fn drop(&mut self) {
        seeded_bug::set(false);
    }
}

fn builder() -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    // The interesting interleavings (a preemption between the wrap's two stores,
    // between commit and read, between release and grant) need at most two; 3 keeps
    // the whole file at a few seconds in release. LOOM_MAX_PREEMPTIONS overrides it:
    // every model also passes with 6 (the slowest takes ~45 s on 2 cores).
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    b
}

/// A heap ring whose `Region` may move into a loom thread. The memory is freed only
/// after the producer thread is joined (the caller keeps `HeapRegion` alive until then).
fn heap_ring(capacity: u32) -> (HeapRegion, Region<'static>) {
    let mem = HeapRegion::new_zeroed(BipBuf::required_size(capacity));
    // SAFETY: `mem` stays alive (returned to the caller, dropped after the join) for as
    // long as the region or anything derived from it is used.
    let region = unsafe { Region::from_raw(mem.region().as_ptr(), mem.len()) };
    (mem, region)
}

/// Region API: three 3-byte records through an 8-byte ring. The third must wrap; it
/// either fits before `read` or fails and keeps the wrap until the consumer resets.
fn three_records_through_8_bytes() {
    const CAP: u32 = 8;
    const REC: u32 = 3;
    let (mem, region) = heap_ring(CAP);
    // SAFETY: the only handle to this ring; `mem` outlives both halves (joined below).
    let buf = unsafe { BipBuf::init(region, CAP) }.unwrap();
    let data = buf.raw().data_ptr() as usize;
    let (mut p, mut c) = buf.split();
    let shadow = Arc::new(Shadow::new(CAP as usize));

    let producer = {
        let shadow = shadow.clone();
        thread::spawn(move || {
            for i in 0..3u8 {
                loop {
                    if let Some(mut g) = p.grant(REC).unwrap() {
                        let rec = [i + 1; REC as usize];
                        g.copy_from_slice(&rec);
                        shadow.write(g.offset(), &rec);
                        g.commit(REC).unwrap();
                        break;
                    }
                    // The consumer polls here, so it needs no wake-up for a stall.
                    thread::yield_now();
                }
            }
        })
    };

    let mut got = 0u8;
    while got < 3 {
        let Some(bytes) = c.read().unwrap() else {
            thread::yield_now();
            continue;
        };
        let off = (bytes.as_ptr() as usize - data) as u32;
        assert_eq!(bytes.len() % REC as usize, 0, "whole records only");
        let rec: [u8; REC as usize] = bytes[..REC as usize].try_into().unwrap();
        assert_eq!(rec, [got + 1; REC as usize]);
        shadow.check(off, &rec);
        c.release(REC).unwrap();
        got += 1;
    }
    producer.join().unwrap();
    assert!(c.is_empty());
    drop(mem);
}

#[test]
fn region_api_wraps_and_resets() {
    builder().check(three_records_through_8_bytes);
}

/// Which implementation plays a role in a raw-API model.
#[derive(Clone, Copy)]
enum Peer {
    /// This crate's `BipBufRaw`.
    Ours,
    /// roam 7.3's code, transcribed below (the peer we must interoperate with).
    Roam,
}

/// roam 7.3 `BipBufRaw`, transcribed from shm-primitives/src/bipbuf.rs at tag
/// roam-shm-v7.3.0 (orderings included); operates on the same header.
mod roam73 {
    use roam_shm::bipbuf::BipBufHeader;
    use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

    pub fn try_grant(h: &BipBufHeader, len: u32) -> Option<u32> {
        let capacity = h.capacity.load(Relaxed);
        let write = h.write.load(Relaxed);
        let read = h.read.load(Acquire);
        if write >= read {
            if capacity - write >= len {
                return Some(write);
            }
            if read == 0 {
                return None;
            }
            h.watermark.store(write, Release);
            h.write.store(0, Release);
            if len < read { Some(0) } else { None }
        } else if write + len < read {
            Some(write)
        } else {
            None
        }
    }

    pub fn commit(h: &BipBufHeader, len: u32) {
        let write = h.write.load(Relaxed);
        h.write.store(write + len, Release);
    }

    pub fn try_read(h: &BipBufHeader) -> Option<(u32, u32)> {
        let read = h.read.load(Relaxed);
        let write = h.write.load(Acquire);
        let watermark = h.watermark.load(Acquire);
        if watermark != 0 {
            if read < watermark {
                return Some((read, watermark - read));
            }
            h.read.store(0, Release);
            h.watermark.store(0, Release);
            let current_write = h.write.load(Acquire);
            return (current_write > 0).then_some((0, current_write));
        }
        (read < write).then(|| (read, write - read))
    }

    pub fn release(h: &BipBufHeader, len: u32) {
        let read = h.read.load(Relaxed);
        let new_read = read + len;
        let watermark = h.watermark.load(Acquire);
        if watermark != 0 && new_read >= watermark {
            h.read.store(0, Release);
            h.watermark.store(0, Release);
        } else {
            h.read.store(new_read, Release);
        }
    }
}

/// Raw (C ABI) API: records `[len, i, i, ..]` of the given lengths through a ring of
/// `cap` bytes, the producer and consumer each played by `prod`/`cons`. Every record
/// must arrive once, in order, intact (real bytes and shadow).
fn raw_records(cap: u32, lens: &'static [u8], prod: Peer, cons: Peer) {
    let mem = Arc::new(HeapRegion::new_zeroed(BipBuf::required_size(cap)));
    let base = mem.region().as_ptr();
    // SAFETY: `mem` is 64-aligned and large enough; the Arc keeps it alive in both
    // threads for as long as their handles exist.
    let raw = Arc::new(unsafe {
        BipBufRaw::init(base.cast(), base.add(BIPBUF_HEADER_SIZE), cap).unwrap()
    });
    let shadow = Arc::new(Shadow::new(cap as usize));

    let producer = {
        let (raw, shadow, mem) = (raw.clone(), shadow.clone(), mem.clone());
        thread::spawn(move || {
            let _keep = mem;
            // SAFETY: the header stays valid while `_keep` holds the memory.
            let h = unsafe { &*raw.header_ptr() };
            for (i, &len) in lens.iter().enumerate() {
                let off = loop {
                    let got = match prod {
                        Peer::Ours => raw.try_grant(u32::from(len)).unwrap(),
                        Peer::Roam => roam73::try_grant(h, u32::from(len)),
                    };
                    if let Some(off) = got {
                        break off;
                    }
                    // The consumer polls, so a kept wrap needs no wake-up here.
                    thread::yield_now();
                };
                let rec: Vec<u8> = (0..len)
                    .map(|j| if j == 0 { len } else { i as u8 + 1 })
                    .collect();
                // SAFETY: [off, off+len) is granted to this single producer and lies
                // inside the data area.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        rec.as_ptr(),
                        raw.data_ptr().add(off as usize),
                        rec.len(),
                    )
                };
                shadow.write(off, &rec);
                match prod {
                    Peer::Ours => raw.commit(u32::from(len)).unwrap(),
                    Peer::Roam => roam73::commit(h, u32::from(len)),
                }
            }
        })
    };

    // SAFETY: the header stays valid while `mem` is alive (until the end).
    let h = unsafe { &*raw.header_ptr() };
    for (i, &len) in lens.iter().enumerate() {
        let (off, avail) = loop {
            let got = match cons {
                Peer::Ours => raw.try_read().unwrap(),
                Peer::Roam => roam73::try_read(h),
            };
            if let Some(r) = got {
                break r;
            }
            thread::yield_now();
        };
        assert!(avail >= u32::from(len), "record {i} split");
        // SAFETY: [off, off+avail) is readable, inside the data area, and the producer
        // does not touch it until release.
        let bytes =
            unsafe { std::slice::from_raw_parts(raw.data_ptr().add(off as usize), len as usize) };
        assert_eq!(
            bytes,
            &[len]
                .into_iter()
                .chain(std::iter::repeat_n(i as u8 + 1, len as usize - 1))
                .collect::<Vec<u8>>()[..],
            "record {i}"
        );
        shadow.check(off, bytes);
        match cons {
            Peer::Ours => raw.release(u32::from(len)).unwrap(),
            Peer::Roam => roam73::release(h, u32::from(len)),
        }
    }
    producer.join().unwrap();
    assert!(raw.is_empty());
}

/// Ours on both sides, variable lengths: 5, 7, 6 through 16 bytes (the 6 needs the
/// front; it may also hit the kept wrap while the tail is unread).
#[test]
fn raw_api_variable_records() {
    builder().check(|| raw_records(16, &[5, 7, 6], Peer::Ours, Peer::Ours));
}

/// Our consumer against roam 7.3's producer (watermark stored before `write = 0`).
#[test]
fn our_consumer_with_roam_producer() {
    builder().check(|| raw_records(8, &[3, 3, 3], Peer::Roam, Peer::Ours));
}

/// Our producer (`write = 0` stored first) against roam 7.3's consumer.
#[test]
fn our_producer_with_roam_consumer() {
    builder().check(|| raw_records(8, &[3, 3, 3], Peer::Ours, Peer::Roam));
}

/// roam 7.3 against itself: the consumer can run between the producer's two wrap
/// stores, see the watermark with the tail consumed, reset and re-read `[0, 6)`
/// (stale records), racing with the producer's next write. Kept as the regression
/// proof of why our two sides deviate.
#[test]
#[should_panic(expected = "record 2")]
fn roam73_wrap_race_is_real() {
    builder().check(|| raw_records(8, &[3, 3, 3], Peer::Roam, Peer::Roam));
}

/// A counting doorbell: `ring` bumps it, `wait(seen)` blocks until it moved past the
/// value read *before* the attempt that failed (so a ring in between is not lost).
struct Doorbell(AtomicU32);

impl Doorbell {
    fn new() -> Doorbell {
        Doorbell(AtomicU32::new(0))
    }
    fn seen(&self) -> u32 {
        // Acquire: pairs with `ring`'s Release.
        self.0.load(Acquire)
    }
    fn ring(&self) {
        // Release: the ring cursor stores before it are visible to the woken side.
        self.0.fetch_add(1, Release);
    }
    fn wait(&self, seen: u32) {
        while self.seen() == seen {
            thread::yield_now();
        }
    }
}

/// §13 wake-up protocol with entries larger than half the ring (three 5-byte records
/// through 8 bytes): both sides sleep on doorbells instead of polling. With the
/// cursors at 5 the producer's wrap fails and is kept; only the consumer's read can
/// reset it. The protocol of the `bipbuf` module docs must never leave both asleep; a
/// lost wake-up shows up as a loom livelock ("maximum number of branches").
fn doorbell_protocol(ring_on_full_wrapped: bool) {
    const CAP: u32 = 8;
    const LEN: u32 = 5;
    const N: u8 = 3;
    let mem = Arc::new(HeapRegion::new_zeroed(BipBuf::required_size(CAP)));
    let base = mem.region().as_ptr();
    // SAFETY: `mem` is 64-aligned and large enough; the Arc keeps it alive in both
    // threads for as long as their handles exist.
    let raw = Arc::new(unsafe {
        BipBufRaw::init(base.cast(), base.add(BIPBUF_HEADER_SIZE), CAP).unwrap()
    });
    let shadow = Arc::new(Shadow::new(CAP as usize));
    let to_consumer = Arc::new(Doorbell::new());
    let to_producer = Arc::new(Doorbell::new());

    let producer = {
        let (raw, shadow, mem) = (raw.clone(), shadow.clone(), mem.clone());
        let (to_consumer, to_producer) = (to_consumer.clone(), to_producer.clone());
        thread::spawn(move || {
            let _keep = mem;
            for i in 0..N {
                loop {
                    let seen = to_producer.seen();
                    match raw.try_grant_outcome(LEN).unwrap() {
                        GrantOutcome::Granted { offset } => {
                            let rec = [i + 1; LEN as usize];
                            // SAFETY: [offset, offset+LEN) is granted to this single
                            // producer and lies inside the data area.
                            unsafe {
                                std::ptr::copy_nonoverlapping(
                                    rec.as_ptr(),
                                    raw.data_ptr().add(offset as usize),
                                    rec.len(),
                                )
                            };
                            shadow.write(offset, &rec);
                            raw.commit(LEN).unwrap();
                            to_consumer.ring();
                            break;
                        }
                        GrantOutcome::FullWrapped => {
                            if ring_on_full_wrapped {
                                to_consumer.ring();
                            }
                            to_producer.wait(seen);
                        }
                        GrantOutcome::Full => to_producer.wait(seen),
                    }
                }
            }
        })
    };

    let mut got = 0u8;
    loop {
        let seen = to_consumer.seen();
        loop {
            match raw.try_read_outcome().unwrap() {
                ReadOutcome::Data { offset, len } => {
                    assert!(len >= LEN);
                    // SAFETY: readable, inside the data area, ours until release.
                    let bytes = unsafe {
                        std::slice::from_raw_parts(
                            raw.data_ptr().add(offset as usize),
                            LEN as usize,
                        )
                    };
                    assert_eq!(bytes, [got + 1; LEN as usize]);
                    shadow.check(offset, bytes);
                    raw.release(LEN).unwrap();
                    to_producer.ring();
                    got += 1;
                }
                ReadOutcome::EmptyAfterReset => {
                    to_producer.ring();
                    break;
                }
                ReadOutcome::Empty => break,
            }
        }
        if got == N {
            break;
        }
        to_consumer.wait(seen);
    }
    producer.join().unwrap();
}

#[test]
fn stall_is_woken_by_the_protocol() {
    builder().check(|| doorbell_protocol(true));
}

/// Without the producer's ring on `FullWrapped`, both sides sleep forever.
#[test]
#[should_panic(expected = "maximum number of branches")]
fn stall_without_the_full_wrapped_ring_hangs() {
    builder().check(|| doorbell_protocol(false));
}

/// With Release/Acquire on the cursors weakened to Relaxed (the seeded bug), the
/// consumer can see a commit without the bytes: loom must report it.
#[test]
#[should_panic(expected = "Causality violation")]
fn seeded_missing_release_acquire_is_caught() {
    builder().check(|| {
        let _bug = SeededBug::on();
        three_records_through_8_bytes();
    });
}
