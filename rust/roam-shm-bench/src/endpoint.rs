//! The common shape of every transport ([`Endpoint`]) and the measurement loops that
//! drive them: ping-pong ([`ping`]/[`pong`]) and one-way streams
//! ([`stream_send`]/[`stream_recv`]). Also the two simplest endpoints: the raw floor
//! ([`FloorEp`], two processes spinning on one cache line) and the bare futex
//! ping-pong ([`FutexEp`]).
//!
//! Every message carries a sequence number in its first 8 bytes; the sender writes
//! the whole payload (copying it from a source buffer, as an application that
//! serialises into the buffer would), the receiver reads the sequence number and
//! checks it. [`STOP`] ends a loop.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::BoxError;
use crate::clock::Clock;

/// Set (by the parent's watcher of the child process) when the peer process has
/// exited: spinners then fail at their next check instead of waiting for their
/// deadline.
pub static PEER_GONE: AtomicBool = AtomicBool::new(false);

/// The sequence number that ends a ping-pong or a stream.
pub const STOP: u64 = u64::MAX;

/// One side of a two-way link.
pub trait Endpoint {
    /// Send a `len`-byte message (`len >= 8`) carrying `seq`, waiting for room.
    fn send(&mut self, seq: u64, len: usize) -> Result<(), BoxError>;
    /// Receive the next message and return its sequence number, waiting for it.
    fn recv(&mut self) -> Result<u64, BoxError>;
}

/// Busy-wait helper: a `spin_loop` hint per call, and every 16 Ki calls a check of the
/// deadline (a peer that died or stalled turns into an error, not a hang) and, when
/// both sides share one CPU, a `yield`.
#[derive(Debug)]
pub struct Spinner {
    n: u32,
    deadline: Instant,
    yield_cpu: bool,
}

impl Spinner {
    /// A spinner that gives up at `deadline`.
    pub fn new(deadline: Instant) -> Spinner {
        Spinner {
            n: 0,
            deadline,
            yield_cpu: crate::affinity::single_cpu(),
        }
    }

    /// One wait step.
    #[inline(always)]
    pub fn spin(&mut self) -> Result<(), BoxError> {
        self.n = self.n.wrapping_add(1);
        if self.n & 0x3fff == 0 {
            self.check()?;
        }
        std::hint::spin_loop();
        Ok(())
    }

    /// The deadline check alone (for loops that block in the kernel).
    #[cold]
    pub fn check(&mut self) -> Result<(), BoxError> {
        // Relaxed: a flag set by the watcher thread; nothing else is published with it.
        if PEER_GONE.load(Ordering::Relaxed) {
            return Err("the peer process exited".into());
        }
        if Instant::now() > self.deadline {
            return Err("peer stalled: no progress before the row's deadline".into());
        }
        if self.yield_cpu {
            std::thread::yield_now();
        }
        Ok(())
    }
}

/// A payload source: `len` bytes of a fixed pattern, reused for every message.
#[derive(Debug)]
pub struct Source(Vec<u8>);

impl Source {
    /// A source for payloads up to `max` bytes.
    pub fn new(max: usize) -> Source {
        Source((0..max.max(8)).map(|i| (i * 31 + 7) as u8).collect())
    }

    /// Write a `len`-byte message carrying `seq` to `dst`.
    ///
    /// # Safety
    /// `dst` must be valid for writes of `len` bytes, `8 <= len <= max`.
    #[inline]
    pub unsafe fn write_to(&self, dst: *mut u8, len: usize, seq: u64) {
        debug_assert!(len >= 8 && len <= self.0.len());
        // SAFETY: the caller guarantees `dst` holds `len` bytes; our buffer holds
        // at least `len` bytes (debug-checked; callers size it for the row); the
        // regions are distinct (ours is private heap memory).
        unsafe {
            std::ptr::copy_nonoverlapping(self.0.as_ptr(), dst, len);
            std::ptr::write_unaligned(dst.cast::<u64>(), seq.to_le());
        }
    }

    /// The first `len` bytes with `seq` stamped in (for transports that copy
    /// from a user buffer themselves: sockets, pipes, iceoryx2's `write_from_slice`).
    pub fn stamped(&mut self, len: usize, seq: u64) -> &[u8] {
        self.0[..8].copy_from_slice(&seq.to_le_bytes());
        &self.0[..len]
    }
}

/// Read the sequence number at the start of a received payload.
///
/// # Safety
/// `p` must be valid for reads of 8 bytes.
#[inline]
pub unsafe fn read_seq(p: *const u8) -> u64 {
    // SAFETY: guaranteed by the caller.
    u64::from_le(unsafe { std::ptr::read_unaligned(p.cast::<u64>()) })
}

/// A histogram of round-trip times in clock ticks.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 1_000_000_000_000, 3).expect("valid histogram bounds")
}

/// Round trips of warm-up at least (besides the warm-up time): the first ones pay
/// for page faults, connection set-up and the like.
pub const WARM_MIN: u64 = 200;
/// Samples a measurement takes at least (it runs past `dur` to get them, up to
/// 10 x `dur`).
pub const MIN_SAMPLES: u64 = 200;

/// The pinging side: round trips of `len`-byte messages for `warm` and at least
/// [`WARM_MIN`] round trips (not recorded), then for `dur` (and at least
/// [`MIN_SAMPLES`]), one round-trip time per sample; then [`STOP`].
pub fn ping<E: Endpoint>(
    ep: &mut E,
    len: usize,
    clock: &Clock,
    warm: Duration,
    dur: Duration,
) -> Result<Histogram<u64>, BoxError> {
    let mut hist = new_histogram();
    let mut seq = 0u64;
    let round_trip = |ep: &mut E, seq: u64| -> Result<(), BoxError> {
        ep.send(seq, len)?;
        let got = ep.recv()?;
        if got != seq {
            return Err(format!("ping-pong out of step: sent {seq}, got {got}").into());
        }
        Ok(())
    };
    let t0 = clock.now();
    let warm_ticks = clock.ticks(warm);
    while seq < WARM_MIN || clock.now() - t0 < warm_ticks {
        round_trip(ep, seq)?;
        seq += 1;
    }
    let start = clock.now();
    let end = start + clock.ticks(dur);
    let hard_end = start + clock.ticks(dur * 10);
    let mut prev = start;
    loop {
        round_trip(ep, seq)?;
        let now = clock.now();
        hist.record(now.saturating_sub(prev).max(1))?;
        if (now >= end && hist.len() >= MIN_SAMPLES) || now >= hard_end {
            break;
        }
        prev = now;
        seq += 1;
    }
    ep.send(STOP, len)?;
    Ok(hist)
}

/// The ponging side: echo every message (same size) until [`STOP`].
pub fn pong<E: Endpoint>(ep: &mut E, len: usize) -> Result<(), BoxError> {
    loop {
        let seq = ep.recv()?;
        if seq == STOP {
            return Ok(());
        }
        ep.send(seq, len)?;
    }
}

/// The producing side of a stream: send until `stop` is set, then [`STOP`].
pub fn stream_send<E: Endpoint>(ep: &mut E, len: usize, stop: &AtomicU32) -> Result<(), BoxError> {
    let mut seq = 0u64;
    // Relaxed: only a flag; no data is published with it.
    while stop.load(Ordering::Relaxed) == 0 {
        ep.send(seq, len)?;
        seq += 1;
    }
    ep.send(STOP, len)
}

/// Messages received and the seconds they took.
#[derive(Debug, Clone, Copy)]
pub struct StreamCount {
    /// Messages received in the measured window.
    pub msgs: u64,
    /// Length of the window.
    pub secs: f64,
}

/// The consuming side of a stream: receive for `warm` (and at least [`WARM_MIN`]
/// messages), then count for `dur`; then set `stop` and drain until [`STOP`]. The
/// clock is read every few messages only.
pub fn stream_recv<E: Endpoint>(
    ep: &mut E,
    len: usize,
    stop: &AtomicU32,
    clock: &Clock,
    warm: Duration,
    dur: Duration,
) -> Result<StreamCount, BoxError> {
    let check: u64 = match len {
        0..=64 => 256,
        65..=4095 => 16,
        _ => 1,
    };
    let t0 = clock.now();
    let warm_ticks = clock.ticks(warm);
    let dur_ticks = clock.ticks(dur);
    let mut n = 0u64;
    let mut mark: Option<(u64, u64)> = None;
    let count;
    loop {
        let seq = ep.recv()?;
        if seq != n {
            return Err(format!("stream out of order: expected {n}, got {seq}").into());
        }
        n += 1;
        if n % check == 0 {
            let now = clock.now();
            match mark {
                None if n >= WARM_MIN && now - t0 >= warm_ticks => mark = Some((now, n)),
                Some((t1, n1)) if now - t1 >= dur_ticks && n - n1 >= MIN_SAMPLES => {
                    count = StreamCount {
                        msgs: n - n1,
                        secs: clock.ns(now - t1) / 1e9,
                    };
                    break;
                }
                _ => {}
            }
        }
    }
    // Relaxed: a flag; the producer answers with a STOP message, which is ordered by
    // the transport itself.
    stop.store(1, Ordering::Relaxed);
    while ep.recv()? != STOP {}
    Ok(count)
}

/// One 64-byte cache line holding `T`.
#[repr(C, align(64))]
#[derive(Debug, Default)]
pub struct Line<T>(pub T);

/// Which side of a two-party word an endpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The pinger / consumer (the parent process).
    A,
    /// The ponger / producer (the child).
    B,
}

/// The raw floor: both sides spin on one shared 64-bit word on one cache line.
/// A writes `2·seq + 1`, B writes `2·seq + 2`, [`STOP`] is `u64::MAX`; each side
/// waits until the word differs from what it last wrote (strict alternation).
#[derive(Debug)]
pub struct FloorEp<'a> {
    word: &'a AtomicU64,
    side: Side,
    last: u64,
    spin: Spinner,
}

impl<'a> FloorEp<'a> {
    /// An endpoint on a word that starts at 0 (A sends first).
    pub fn new(word: &'a AtomicU64, side: Side, deadline: Instant) -> FloorEp<'a> {
        FloorEp {
            word,
            side,
            last: 0,
            spin: Spinner::new(deadline),
        }
    }
}

impl Endpoint for FloorEp<'_> {
    #[inline]
    fn send(&mut self, seq: u64, _len: usize) -> Result<(), BoxError> {
        let v = if seq == STOP {
            u64::MAX
        } else {
            2 * seq + if self.side == Side::A { 1 } else { 2 }
        };
        self.last = v;
        // Release: pairs with the peer's Acquire load (nothing else is published,
        // but a real transport would publish its payload this way).
        self.word.store(v, Ordering::Release);
        Ok(())
    }

    #[inline]
    fn recv(&mut self) -> Result<u64, BoxError> {
        loop {
            // Acquire: pairs with the peer's Release store.
            let v = self.word.load(Ordering::Acquire);
            if v != self.last {
                return Ok(if v == u64::MAX { STOP } else { (v - 1) / 2 });
            }
            self.spin.spin()?;
        }
    }
}

/// `FUTEX_WAIT` while `*word == expected` (shared, not private: the word is in a
/// memfd mapped by two processes), for at most `timeout`.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a valid, aligned u32 for the duration of the call; the
    // timespec is a valid relative timeout; the kernel only reads both.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
        );
    }
}

/// `FUTEX_WAKE` one waiter on `word`.
pub fn futex_wake(word: &AtomicU32) {
    // SAFETY: `word` is a valid, aligned u32; FUTEX_WAKE only uses its address.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, 1);
    }
}

/// The bare futex ping-pong: the floor's word protocol on a 32-bit word, but every
/// send is a `FUTEX_WAKE` and every wait a `FUTEX_WAIT` straight away (no spin, no
/// "is anyone asleep" check): what a wake-up costs on this machine.
#[derive(Debug)]
pub struct FutexEp<'a> {
    word: &'a AtomicU32,
    side: Side,
    last: u32,
    spin: Spinner,
}

impl<'a> FutexEp<'a> {
    /// An endpoint on a word that starts at 0 (A sends first).
    pub fn new(word: &'a AtomicU32, side: Side, deadline: Instant) -> FutexEp<'a> {
        FutexEp {
            word,
            side,
            last: 0,
            spin: Spinner::new(deadline),
        }
    }
}

impl Endpoint for FutexEp<'_> {
    fn send(&mut self, seq: u64, _len: usize) -> Result<(), BoxError> {
        let v = if seq == STOP {
            u32::MAX
        } else {
            // Sequence numbers of a latency row stay far below 2^31.
            (seq as u32)
                .wrapping_mul(2)
                .wrapping_add(if self.side == Side::A { 1 } else { 2 })
        };
        self.last = v;
        // Release: pairs with the peer's Acquire load.
        self.word.store(v, Ordering::Release);
        futex_wake(self.word);
        Ok(())
    }

    fn recv(&mut self) -> Result<u64, BoxError> {
        loop {
            // Acquire: pairs with the peer's Release store.
            let v = self.word.load(Ordering::Acquire);
            if v != self.last {
                return Ok(if v == u32::MAX {
                    STOP
                } else {
                    u64::from((v - 1) / 2)
                });
            }
            futex_wait(self.word, v, Duration::from_millis(100));
            self.spin.check()?;
        }
    }
}
