//! `SpscRing` rows: 8-byte entries (one ring per direction) for latency and single
//! push/pop throughput, and 64-byte entries in batches of 64 for the batched
//! throughput row. The rings live in the control region's area (a memfd).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use roam_shm::spsc::{PushResult, SpscConsumer, SpscProducer, SpscRingHeader, SpscRingRaw};

use crate::BoxError;
use crate::clock::Clock;
use crate::endpoint::{Endpoint, STOP, Side, Spinner, StreamCount};

/// Entries per 8-byte ring.
const CAP: u32 = 1024;
/// Entries per 64-byte ring (64 KiB of entries).
const BATCH_CAP: u32 = 1024;
/// Entries per batch.
pub const BATCH: usize = 64;

/// A 64-byte message: the sequence number, then payload.
type Msg64 = [u64; 8];

fn ring_bytes<T: roam_shm::spsc::Pod>(cap: u32) -> usize {
    SpscRingRaw::<T>::required_size(cap).next_multiple_of(64)
}

/// Area bytes the ring rows need.
pub fn area_size() -> usize {
    (2 * ring_bytes::<u64>(CAP)).max(ring_bytes::<Msg64>(BATCH_CAP))
}

/// Initialise the rings in the area (parent, before the child exists).
///
/// # Safety
/// `area` must be valid for `len >= area_size()` bytes, 64-byte aligned, and not yet
/// shared with anyone.
pub unsafe fn init(area: *mut u8, len: usize, batch: bool) -> Result<(), BoxError> {
    if len < area_size() {
        return Err("ring area too small".into());
    }
    // SAFETY: the caller guarantees the area; each ring gets its own disjoint,
    // 64-aligned part of it.
    unsafe {
        if batch {
            SpscRingRaw::<Msg64>::init(area.cast::<SpscRingHeader>(), BATCH_CAP)?;
        } else {
            let second = area.add(ring_bytes::<u64>(CAP));
            SpscRingRaw::<u64>::init(area.cast::<SpscRingHeader>(), CAP)?;
            SpscRingRaw::<u64>::init(second.cast::<SpscRingHeader>(), CAP)?;
        }
    }
    Ok(())
}

/// One side of a pair of 8-byte rings.
#[derive(Debug)]
pub struct RingEp {
    tx: SpscProducer<'static, u64>,
    rx: SpscConsumer<'static, u64>,
    spin: Spinner,
}

impl RingEp {
    /// Attach to the rings initialised by [`init`]: A produces into the first.
    ///
    /// # Safety
    /// The area must stay mapped while the endpoint lives, and each side must be
    /// taken by exactly one process.
    pub unsafe fn attach(
        area: *mut u8,
        len: usize,
        side: Side,
        deadline: Instant,
    ) -> Result<RingEp, BoxError> {
        let rb = ring_bytes::<u64>(CAP);
        // SAFETY: as in init; the rings were initialised before the child was spawned.
        let (first, second) = unsafe {
            (
                SpscRingRaw::<u64>::attach(area.cast(), rb)?,
                SpscRingRaw::<u64>::attach(area.add(rb).cast(), len - rb)?,
            )
        };
        let (t, r) = match side {
            Side::A => (first, second),
            Side::B => (second, first),
        };
        // SAFETY: this side is the only producer of `t` and the only consumer of `r`
        // (the other process takes the opposite roles); the caller keeps the memory
        // mapped for the endpoint's life.
        let (tx, rx) = unsafe { (t.producer(), r.consumer()) };
        Ok(RingEp {
            tx,
            rx,
            spin: Spinner::new(deadline),
        })
    }
}

impl Endpoint for RingEp {
    #[inline]
    fn send(&mut self, seq: u64, _len: usize) -> Result<(), BoxError> {
        loop {
            match self.tx.push(seq) {
                PushResult::Ok => return Ok(()),
                PushResult::Full(_) => self.spin.spin()?,
                PushResult::Corrupt(_) => return Err("ring corrupt".into()),
            }
        }
    }

    #[inline]
    fn recv(&mut self) -> Result<u64, BoxError> {
        loop {
            if let Some(v) = self.rx.try_pop()? {
                return Ok(v);
            }
            self.spin.spin()?;
        }
    }
}

/// Batched producer (child): batches of 64 entries until `stop`, then one STOP entry.
///
/// # Safety
/// As for [`RingEp::attach`]; the area holds a batch ring from [`init`].
pub unsafe fn batch_produce(
    area: *mut u8,
    len: usize,
    stop: &AtomicU32,
    deadline: Instant,
) -> Result<(), BoxError> {
    // SAFETY: forwarded caller contract.
    let ring = unsafe { SpscRingRaw::<Msg64>::attach(area.cast(), len)? };
    // SAFETY: the only producer (the parent consumes).
    let mut tx = unsafe { ring.producer() };
    let mut spin = Spinner::new(deadline);
    let mut batch = [[0u64; 8]; BATCH];
    for (i, m) in batch.iter_mut().enumerate() {
        for (j, w) in m.iter_mut().enumerate() {
            *w = (i * 8 + j) as u64;
        }
    }
    let mut seq = 0u64;
    // Relaxed: a flag only.
    while stop.load(Ordering::Relaxed) == 0 {
        for (i, m) in batch.iter_mut().enumerate() {
            m[0] = seq + i as u64;
        }
        let mut done = 0;
        while done < BATCH {
            let n = tx.try_push_batch(&batch[done..])?;
            if n == 0 {
                spin.spin()?;
            }
            done += n;
        }
        seq += BATCH as u64;
    }
    let mut end = [0u64; 8];
    end[0] = STOP;
    while tx.try_push_batch(&[end])? == 0 {
        spin.spin()?;
    }
    Ok(())
}

/// Batched consumer (parent): `pop_batch` up to 256 entries at a time.
///
/// # Safety
/// As for [`batch_produce`].
pub unsafe fn batch_consume(
    area: *mut u8,
    len: usize,
    stop: &AtomicU32,
    clock: &Clock,
    warm: Duration,
    dur: Duration,
    deadline: Instant,
) -> Result<StreamCount, BoxError> {
    // SAFETY: forwarded caller contract.
    let ring = unsafe { SpscRingRaw::<Msg64>::attach(area.cast(), len)? };
    // SAFETY: the only consumer.
    let mut rx = unsafe { ring.consumer() };
    let mut spin = Spinner::new(deadline);
    let mut buf = vec![[0u64; 8]; 256];
    let t0 = clock.now();
    let (warm_ticks, dur_ticks) = (clock.ticks(warm), clock.ticks(dur));
    let mut n = 0u64;
    let mut mark: Option<(u64, u64)> = None;
    let count = loop {
        let got = rx.try_pop_batch(&mut buf)?;
        if got == 0 {
            spin.spin()?;
            continue;
        }
        let last = buf[got - 1][0];
        if buf[0][0] != n || last != n + got as u64 - 1 {
            return Err(format!("batch stream out of order at {n}").into());
        }
        n += got as u64;
        let now = clock.now();
        match mark {
            None if now - t0 >= warm_ticks => mark = Some((now, n)),
            Some((t1, n1)) if now - t1 >= dur_ticks => {
                break StreamCount {
                    msgs: n - n1,
                    secs: clock.ns(now - t1) / 1e9,
                };
            }
            _ => {}
        }
    };
    // Relaxed: a flag; the STOP entry comes through the ring.
    stop.store(1, Ordering::Relaxed);
    loop {
        let got = rx.try_pop_batch(&mut buf)?;
        if got == 0 {
            spin.spin()?;
        } else if buf[got - 1][0] == STOP {
            return Ok(count);
        }
    }
}
