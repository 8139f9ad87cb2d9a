//! Futex-based wait/wake on a word in shared memory, for processes that map the same
//! bytes. Not part of the roam 7.x wire format: it is our addition, so that a busy peer
//! can skip the doorbell syscall (performance-facts.md: a wake with nobody asleep costs
//! ~0.3 µs, a doorbell round trip ~20 µs; spinning ~20 µs before sleeping turns a
//! ~21.6 µs futex wake-up into ~0.19 µs).
//!
//! # Layout (8 bytes, 4-aligned, in shared memory)
//! | off | field | meaning |
//! |---|---|---|
//! | 0 | `seq: u32` | bumped (wrapping) by every [`WaitCell::notify`]; the futex word |
//! | 4 | `sleepers: u32` | number of waiters registered to sleep |
//!
//! Zeroed memory is a valid initial cell (in a real mapping; under loom, initialise it
//! with [`WaitCell::init_in_region`] or build it with [`WaitCell::new`]).
//!
//! # Protocol
//! Waker ([`WaitCell::notify`]), after publishing its data:
//! - **N1** `seq.fetch_add(1, AcqRel)`;
//! - **N2** `if sleepers.load(Relaxed) != 0 { futex_wake(&seq, all) }`.
//!
//! Waiter ([`WaitCell::wait`]), having read `expected = seq` *before* checking its
//! condition:
//! - spin for a while (default [`DEFAULT_SPIN`]) on `seq.load(Acquire) != expected`;
//! - **W1** `sleepers.fetch_add(1, Relaxed)`;
//! - **W2** `if seq.fetch_add(0, AcqRel) != expected` → deregister, `Notified`;
//! - `futex_wait(&seq, expected, timeout)` (the kernel re-compares the word atomically
//!   with respect to `futex_wake`);
//! - `sleepers.fetch_sub(1, Relaxed)`; `Notified` if `seq.load(Acquire) != expected`,
//!   else loop (spurious wake-up) or `TimedOut`.
//!
//! # Why no wake-up is lost
//! This is a store-buffering (Dekker) pattern: each side writes one word, then reads the
//! other's. With plain release/acquire both reads could see the old values (the waiter
//! sleeps on a stale `seq`, the waker skips the wake). Instead of `SeqCst` accesses
//! (which loom models only as `AcqRel`, so it could not check them) or `SeqCst` fences
//! (an extra `mfence` on every notify), both accesses to `seq` are read-modify-writes,
//! and RMWs on one location are totally ordered and each reads the newest value:
//! - if N1 precedes W2 in `seq`'s modification order, W2 reads the bumped value and the
//!   waiter does not sleep;
//! - otherwise N1 reads W2's value; W2 is a release and N1 an acquire, so W2
//!   synchronises-with N1; W1 is sequenced before W2 and N1 before N2, hence W1
//!   happens-before N2 and N2 (by coherence, whatever its ordering) reads `sleepers >= 1`
//!   and issues the wake. The waiter either sees the new `seq` in `futex_wait` (which
//!   then returns at once) or is already queued and is woken.
//!
//! The notifier's hot path is one RMW plus one plain load: no syscall and no fence when
//! nobody sleeps. Data written before `notify` is visible after `Notified`: the
//! waiter's loads of `seq` that return the new value are acquires of N1's release.
//! `tests/loom_waiter.rs` checks all this under every interleaving, including a seeded
//! bug (W2 as a plain load) that loom catches as a lost wake-up.
//!
//! Cross-language peers must follow the same protocol with the same orderings.
//!
//! # Robustness
//! A peer controls both words; nothing here panics on their values. A waiter killed while
//! registered leaves `sleepers` too high: notifiers then always issue a (harmless) wake.
//! If the futex syscall is unavailable (seccomp, unsupported OS) waiting degrades to
//! polling `seq` every millisecond.
//!
//! # Platforms
//! Linux/Android: `futex(FUTEX_WAIT / FUTEX_WAKE)`, *not* `FUTEX_PRIVATE_FLAG` (the
//! word is shared between processes). macOS: `__ulock_wait`/`__ulock_wake` with
//! `UL_COMPARE_AND_WAIT_SHARED` (compiled, not tested here). Under `--features loom` the
//! kernel is replaced by an emulation on a loom `Mutex` + `Condvar` with the same
//! semantics (sleep only if the word still equals the expected value; wake wakes every
//! sleeper), see `loom_emulation` (loom builds only).

use std::time::{Duration, Instant};

use crate::region::{Region, RegionError};
use crate::sync::{AtomicU32, Ordering};

/// Default spin before sleeping (performance-facts.md: ~20 µs turns a ~21.6 µs futex
/// wake-up into ~0.19 µs when the notifier comes soon).
pub const DEFAULT_SPIN: Duration = Duration::from_micros(20);

/// Size in bytes of a [`WaitCell`] in shared memory.
pub const WAIT_CELL_SIZE: usize = 8;

/// How often the spin loop reads the clock (reading it costs ~30-40 ns).
const SPIN_CHECKS_PER_CLOCK_READ: u32 = 16;

/// Polling period when no futex is available.
const FALLBACK_POLL: Duration = Duration::from_millis(1);

/// The shared wait/wake word pair (see the module docs for layout and protocol).
#[repr(C)]
#[derive(Debug)]
pub struct WaitCell {
    seq: AtomicU32,
    sleepers: AtomicU32,
}

#[cfg(not(feature = "loom"))]
const _: () = {
    assert!(size_of::<WaitCell>() == WAIT_CELL_SIZE);
    assert!(align_of::<WaitCell>() == 4);
    assert!(std::mem::offset_of!(WaitCell, seq) == 0);
    assert!(std::mem::offset_of!(WaitCell, sleepers) == 4);
};

/// Errors locating a [`WaitCell`] in a region.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    /// The cell does not fit the region at that offset, or is misaligned.
    #[error("wait cell: {0}")]
    Region(#[from] RegionError),
}

/// Tuning of [`WaitCell::wait_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitConfig {
    /// How long to spin (re-reading `seq`) before registering as a sleeper. Zero sleeps
    /// at once.
    pub spin: Duration,
}

impl Default for WaitConfig {
    fn default() -> Self {
        WaitConfig { spin: DEFAULT_SPIN }
    }
}

/// Result of a wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitResult {
    /// `seq` differs from the expected value (a notify happened since it was read).
    Notified,
    /// The timeout expired with `seq` unchanged.
    TimedOut,
}

/// Result of one platform sleep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sleep {
    /// Woken, value changed, interrupted or spurious: re-check.
    Retry,
    /// The (possibly clamped) timeout expired.
    TimedOut,
    /// No kernel wait primitive: poll instead (never produced by the loom emulation).
    #[cfg_attr(feature = "loom", allow(dead_code))]
    Unsupported,
}

impl Default for WaitCell {
    fn default() -> Self {
        Self::new()
    }
}

impl WaitCell {
    /// A fresh cell (`seq = 0`, no sleepers), e.g. to `ptr::write` into shared memory or
    /// to use in-process.
    pub fn new() -> WaitCell {
        WaitCell {
            seq: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
        }
    }

    /// Initialise a cell at `ptr` (writing freshly constructed atomics) and view it.
    ///
    /// # Safety
    /// `ptr` must be valid for writes of a `WaitCell`, aligned, and stay valid (mapped)
    /// for `'a`; nobody may be using a cell there concurrently.
    pub unsafe fn init<'a>(ptr: *mut WaitCell) -> &'a WaitCell {
        // SAFETY: the caller guarantees `ptr` is valid, aligned and unused.
        unsafe { ptr.write(WaitCell::new()) };
        // SAFETY: just initialised; valid for 'a per the caller.
        unsafe { &*ptr }
    }

    /// View the cell at `ptr`.
    ///
    /// # Safety
    /// `ptr` must be aligned to 4 and point to 8 bytes that stay mapped for `'a` and
    /// were initialised (zeroed shared memory qualifies outside loom; under loom the
    /// cell must have been written by [`WaitCell::init`]). Other processes may modify
    /// the words concurrently; that is what the atomics are for.
    pub unsafe fn from_ptr<'a>(ptr: *const WaitCell) -> &'a WaitCell {
        // SAFETY: the caller guarantees validity, alignment and initialisation for 'a.
        unsafe { &*ptr }
    }

    /// Initialise a cell at `offset` in `region` (bounds and alignment checked).
    /// Only the creator of the shared memory does this, before publishing it.
    pub fn init_in_region<'a>(
        region: Region<'a>,
        offset: usize,
    ) -> Result<&'a WaitCell, WaitError> {
        let p = region.typed_ptr::<WaitCell>(offset)?;
        // SAFETY: typed_ptr checked bounds and alignment; the region is valid for 'a;
        // initialising before publication means nobody else uses the cell yet.
        Ok(unsafe { WaitCell::init(p) })
    }

    /// View the cell at `offset` in `region` (bounds and alignment checked). The bytes
    /// must have been initialised (zeroed memory is fine outside loom).
    pub fn from_region<'a>(region: Region<'a>, offset: usize) -> Result<&'a WaitCell, WaitError> {
        let p = region.typed_ptr::<WaitCell>(offset)?;
        // SAFETY: typed_ptr checked bounds and alignment; the region is valid for 'a;
        // any 8 initialised bytes are a valid pair of u32 atomics (and under loom the
        // documented precondition is that init_in_region wrote them).
        Ok(unsafe { WaitCell::from_ptr(p) })
    }

    /// Current `seq`. Read it *before* checking the condition you are about to wait
    /// for, then pass it to [`wait`](Self::wait) as `expected`.
    pub fn seq(&self) -> u32 {
        // Acquire: pairs with N1's release in `notify`, so data published before that
        // notify is visible once this returns the bumped value.
        self.seq.load(Ordering::Acquire)
    }

    /// Registered sleepers right now (diagnostics only).
    pub fn sleepers(&self) -> u32 {
        // Relaxed: a snapshot for diagnostics; nothing is ordered by it.
        self.sleepers.load(Ordering::Relaxed)
    }

    /// Publish a change: bump `seq` and wake every sleeper, issuing the wake syscall
    /// only if some waiter registered as a sleeper. Returns whether it issued one.
    pub fn notify(&self) -> bool {
        // N1. Release: publishes the caller's writes to a waiter whose Acquire load (or
        // W2) reads the bumped value. Acquire: the Dekker edge; when W2 precedes N1 in
        // seq's modification order, N1 reads from W2 (a release), which makes W1
        // (sleepers += 1) happen-before N2 below.
        self.seq.fetch_add(1, Ordering::AcqRel);
        // N2. Relaxed: the ordering comes from N1 (see above); by coherence this load
        // cannot miss a registration that happens-before it.
        if self.sleepers.load(Ordering::Relaxed) != 0 {
            platform::wake_all(&self.seq);
            true
        } else {
            false
        }
    }

    /// Wait until `seq != expected` or `timeout` expires (`None`: forever), spinning
    /// [`DEFAULT_SPIN`] first.
    pub fn wait(&self, expected: u32, timeout: Option<Duration>) -> WaitResult {
        self.wait_with(expected, timeout, &WaitConfig::default())
    }

    /// [`wait`](Self::wait) with explicit tuning.
    pub fn wait_with(
        &self,
        expected: u32,
        timeout: Option<Duration>,
        config: &WaitConfig,
    ) -> WaitResult {
        let start = Instant::now();
        // A deadline too far away to represent is the same as none.
        let deadline = timeout.and_then(|t| start.checked_add(t));
        let spin = match timeout {
            Some(t) => config.spin.min(t),
            None => config.spin,
        };
        if self.spin(expected, spin, start) {
            return WaitResult::Notified;
        }
        loop {
            // W1. Relaxed: the registration is ordered before W2 by program order, and
            // W2's release carries it to a notifier whose N1 reads from W2.
            self.sleepers.fetch_add(1, Ordering::Relaxed);
            if self.recheck() != expected {
                self.deregister();
                return WaitResult::Notified;
            }
            let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let outcome = match remaining {
                Some(r) if r.is_zero() => Sleep::TimedOut,
                _ => platform::wait(&self.seq, expected, remaining),
            };
            self.deregister();
            // Acquire: pairs with N1 (the notifier's data is visible after Notified).
            if self.seq.load(Ordering::Acquire) != expected {
                return WaitResult::Notified;
            }
            let expired = deadline.is_some_and(|d| Instant::now() >= d);
            match outcome {
                // Under loom a timed wait "expires" at once (time is not modelled), so
                // it must end here rather than loop until real time runs out.
                Sleep::TimedOut if expired || cfg!(feature = "loom") => {
                    return WaitResult::TimedOut;
                }
                // A clamped timeout (macOS) expired early: sleep again.
                Sleep::TimedOut => {}
                Sleep::Retry if expired => return WaitResult::TimedOut,
                Sleep::Retry => {}
                Sleep::Unsupported => {
                    if expired {
                        return WaitResult::TimedOut;
                    }
                    let nap = remaining.map_or(FALLBACK_POLL, |r| r.min(FALLBACK_POLL));
                    std::thread::sleep(nap);
                }
            }
        }
    }

    /// W2: the re-check after registering. An RMW (not a load) so that it is ordered
    /// with N1 in `seq`'s modification order; see the module docs.
    fn recheck(&self) -> u32 {
        #[cfg(feature = "loom")]
        if crate::sync::seeded_bug::enabled() {
            // Seeded bug for the loom tests: a plain load may read a `seq` older than a
            // concurrent N1 without synchronising with it: the wake-up can be lost.
            return self.seq.load(Ordering::Acquire);
        }
        // AcqRel. Release: publishes W1 to the notifier whose N1 reads from this RMW.
        // Acquire: pairs with N1's release when this reads the bumped value (Notified).
        self.seq.fetch_add(0, Ordering::AcqRel)
    }

    fn deregister(&self) {
        // Relaxed: a notifier that still sees the stale registration merely issues a
        // spare wake; the waiter re-checks `seq` after this anyway.
        self.sleepers.fetch_sub(1, Ordering::Relaxed);
    }

    /// Spin phase: true if `seq` moved away from `expected` within `spin`.
    fn spin(&self, expected: u32, spin: Duration, start: Instant) -> bool {
        // Acquire (all loads below): pairs with N1's release.
        if self.seq.load(Ordering::Acquire) != expected {
            return true;
        }
        // Under loom one check is enough: more iterations add no new behaviour, only
        // states to explore.
        if spin.is_zero() || cfg!(feature = "loom") {
            return false;
        }
        loop {
            for _ in 0..SPIN_CHECKS_PER_CLOCK_READ {
                crate::sync::spin_loop();
                if self.seq.load(Ordering::Acquire) != expected {
                    return true;
                }
            }
            if start.elapsed() >= spin {
                return false;
            }
        }
    }
}

#[cfg(all(not(feature = "loom"), any(target_os = "linux", target_os = "android")))]
mod platform {
    use super::{AtomicU32, Sleep};
    use std::time::Duration;

    /// `FUTEX_WAIT` on `word` while it equals `expected`, for at most `timeout`.
    pub(super) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Sleep {
        let ts = timeout.map(|t| libc::timespec {
            tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: t.subsec_nanos() as _,
        });
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `word` is a live, 4-aligned u32 for the duration of the call (the
        // borrow); FUTEX_WAIT only reads it and compares it with `expected`; `ts_ptr` is
        // null or points to a timespec alive until the call returns. Not
        // FUTEX_PRIVATE_FLAG: other processes map the word.
        let r = unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT,
                expected,
                ts_ptr,
                std::ptr::null::<u32>(),
                0u32,
            )
        };
        if r == 0 {
            return Sleep::Retry;
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::ETIMEDOUT) => Sleep::TimedOut,
            Some(libc::EAGAIN) | Some(libc::EINTR) => Sleep::Retry,
            // ENOSYS, EPERM (seccomp), EFAULT/EINVAL (impossible for a valid cell).
            _ => Sleep::Unsupported,
        }
    }

    /// `FUTEX_WAKE` every waiter on `word`.
    pub(super) fn wake_all(word: &AtomicU32) {
        // SAFETY: `word` is a live, 4-aligned u32 (the borrow); FUTEX_WAKE does not
        // access the memory, it only uses the address as a key.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAKE,
                i32::MAX,
                std::ptr::null::<libc::timespec>(),
                std::ptr::null::<u32>(),
                0u32,
            );
        }
    }
}

#[cfg(all(not(feature = "loom"), target_os = "macos"))]
mod platform {
    use super::{AtomicU32, Sleep};
    use std::time::Duration;

    // Darwin's private (but stable, used by libc++ and Rust's std) ulock interface.
    const UL_COMPARE_AND_WAIT_SHARED: u32 = 3;
    const ULF_WAKE_ALL: u32 = 0x0000_0100;
    const ULF_NO_ERRNO: u32 = 0x0100_0000;

    unsafe extern "C" {
        fn __ulock_wait(
            operation: u32,
            addr: *mut libc::c_void,
            value: u64,
            timeout_us: u32,
        ) -> libc::c_int;
        fn __ulock_wake(operation: u32, addr: *mut libc::c_void, wake_value: u64) -> libc::c_int;
    }

    pub(super) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Sleep {
        // 0 means "forever", so a finite timeout is at least 1 µs; longer ones are
        // clamped and the caller sleeps again.
        let us = match timeout {
            None => 0,
            Some(t) => u32::try_from(t.as_micros()).unwrap_or(u32::MAX).max(1),
        };
        // SAFETY: `word` is a live, 4-aligned u32 for the duration of the call; the
        // kernel only reads it to compare with `expected`.
        let r = unsafe {
            __ulock_wait(
                UL_COMPARE_AND_WAIT_SHARED | ULF_NO_ERRNO,
                word.as_ptr().cast(),
                u64::from(expected),
                us,
            )
        };
        if r >= 0 {
            return Sleep::Retry;
        }
        match -r {
            libc::ETIMEDOUT => Sleep::TimedOut,
            libc::EINTR | libc::EAGAIN => Sleep::Retry,
            _ => Sleep::Unsupported,
        }
    }

    pub(super) fn wake_all(word: &AtomicU32) {
        // SAFETY: `word` is a live, 4-aligned u32; the address is only used as a key.
        unsafe {
            __ulock_wake(
                UL_COMPARE_AND_WAIT_SHARED | ULF_WAKE_ALL | ULF_NO_ERRNO,
                word.as_ptr().cast(),
                0,
            );
        }
    }
}

#[cfg(all(
    not(feature = "loom"),
    not(any(target_os = "linux", target_os = "android", target_os = "macos"))
))]
mod platform {
    use super::{AtomicU32, Sleep};
    use std::time::Duration;

    /// No cross-process wait primitive wired up here: the waiter polls.
    pub(super) fn wait(_word: &AtomicU32, _expected: u32, _timeout: Option<Duration>) -> Sleep {
        Sleep::Unsupported
    }

    pub(super) fn wake_all(_word: &AtomicU32) {}
}

#[cfg(feature = "loom")]
mod platform {
    pub(super) use super::loom_emulation::{wait, wake_all};
}

/// The loom stand-in for the kernel futex (`--features loom` only).
///
/// One process-wide (per model execution) loom `Mutex` + `Condvar`: `wait` takes the
/// mutex, compares the word with the expected value and only then sleeps on the condvar
/// (a timed wait "expires" at once instead, time is not modelled); `wake_all` takes the
/// mutex and wakes every sleeper. As with the kernel, a waker that changed the word
/// before calling `wake_all` cannot miss a waiter that saw the old value: the mutex
/// orders the waiter's comparison before the wake or the waker's store before the
/// comparison. Spare wake-ups of waiters on other words are spurious wake-ups, which
/// futex waiters tolerate.
#[cfg(feature = "loom")]
pub mod loom_emulation {
    use super::Sleep;
    use crate::sync::{AtomicU32, AtomicUsize, Ordering};
    use loom::sync::{Condvar, Mutex};
    use std::time::Duration;

    struct Emu {
        lock: Mutex<()>,
        cv: Condvar,
        wake_calls: AtomicUsize,
        sleeps: AtomicUsize,
    }

    loom::lazy_static! {
        static ref EMU: Emu = Emu {
            lock: Mutex::new(()),
            cv: Condvar::new(),
            wake_calls: AtomicUsize::new(0),
            sleeps: AtomicUsize::new(0),
        };
    }

    pub(super) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Sleep {
        let guard = EMU.lock.lock().unwrap_or_else(|p| p.into_inner());
        // Relaxed, like the kernel's read: the mutex provides the ordering against
        // wake_all (see the module docs).
        if word.load(Ordering::Relaxed) != expected {
            return Sleep::Retry;
        }
        if timeout.is_some() {
            return Sleep::TimedOut;
        }
        // Relaxed: a counter read by the test after joining all threads.
        EMU.sleeps.fetch_add(1, Ordering::Relaxed);
        drop(EMU.cv.wait(guard).unwrap_or_else(|p| p.into_inner()));
        Sleep::Retry
    }

    pub(super) fn wake_all(_word: &AtomicU32) {
        // Relaxed: a counter read by the test after joining all threads.
        EMU.wake_calls.fetch_add(1, Ordering::Relaxed);
        let _guard = EMU.lock.lock().unwrap_or_else(|p| p.into_inner());
        EMU.cv.notify_all();
    }

    /// Wake calls issued so far in this model execution.
    pub fn wake_calls() -> usize {
        // Relaxed: read by the test after joining the threads that counted.
        EMU.wake_calls.load(Ordering::Relaxed)
    }

    /// Times a waiter actually went to sleep in this model execution.
    pub fn sleeps() -> usize {
        // Relaxed: read by the test after joining the threads that counted.
        EMU.sleeps.load(Ordering::Relaxed)
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;
    use crate::region::HeapRegion;
    use std::sync::Arc;

    const NO_SPIN: WaitConfig = WaitConfig {
        spin: Duration::ZERO,
    };

    #[test]
    fn zeroed_memory_is_a_cell_and_bounds_are_checked() {
        let h = HeapRegion::new_zeroed(64);
        let c = WaitCell::from_region(h.region(), 8).unwrap();
        assert_eq!((c.seq(), c.sleepers()), (0, 0));
        assert!(WaitCell::from_region(h.region(), 2).is_err());
        assert!(WaitCell::from_region(h.region(), 60).is_err());
        let c = WaitCell::init_in_region(h.region(), 16).unwrap();
        assert!(!c.notify());
        assert_eq!(c.seq(), 1);
        // SAFETY: offset 16 of a live 64-aligned region, initialised just above.
        let same = unsafe { WaitCell::from_ptr(h.region().as_ptr().add(16).cast()) };
        assert_eq!(same.seq(), 1);
    }

    #[test]
    fn returns_at_once_when_seq_already_moved() {
        let c = WaitCell::new();
        c.notify();
        assert_eq!(c.wait(0, None), WaitResult::Notified);
        assert_eq!(c.sleepers(), 0);
    }

    #[test]
    fn times_out_and_deregisters() {
        let c = WaitCell::new();
        let t0 = Instant::now();
        assert_eq!(
            c.wait_with(0, Some(Duration::from_millis(20)), &NO_SPIN),
            WaitResult::TimedOut
        );
        assert!(t0.elapsed() >= Duration::from_millis(20));
        assert_eq!(c.wait(0, Some(Duration::ZERO)), WaitResult::TimedOut);
        assert_eq!(
            c.wait(0, Some(Duration::from_micros(50))),
            WaitResult::TimedOut
        );
        assert_eq!(c.sleepers(), 0);
    }

    #[test]
    fn notify_wakes_a_sleeping_thread_and_skips_when_nobody_sleeps() {
        let c = Arc::new(WaitCell::new());
        assert!(!c.notify(), "no sleeper: no wake syscall");
        let expected = c.seq();
        let c2 = Arc::clone(&c);
        let t = std::thread::spawn(move || {
            c2.wait_with(expected, Some(Duration::from_secs(10)), &NO_SPIN)
        });
        let t0 = Instant::now();
        while c.sleepers() == 0 {
            assert!(t0.elapsed() < Duration::from_secs(10));
            std::thread::yield_now();
        }
        assert!(c.notify(), "a registered sleeper gets a wake");
        assert_eq!(t.join().unwrap(), WaitResult::Notified);
        assert_eq!(c.sleepers(), 0);
    }

    #[test]
    fn ping_pong_threads_no_lost_wakeups() {
        // Two cells, strict alternation; a lost wake-up would hit the 10 s timeout.
        let cells = Arc::new([WaitCell::new(), WaitCell::new()]);
        let rounds = 2000u32;
        let c2 = Arc::clone(&cells);
        let t = std::thread::spawn(move || {
            for i in 0..rounds {
                let cfg = if i % 2 == 0 {
                    NO_SPIN
                } else {
                    WaitConfig::default()
                };
                assert_eq!(
                    c2[0].wait_with(i, Some(Duration::from_secs(10)), &cfg),
                    WaitResult::Notified
                );
                c2[1].notify();
            }
        });
        for i in 0..rounds {
            cells[0].notify();
            let cfg = if i % 3 == 0 {
                NO_SPIN
            } else {
                WaitConfig::default()
            };
            assert_eq!(
                cells[1].wait_with(i, Some(Duration::from_secs(10)), &cfg),
                WaitResult::Notified
            );
        }
        t.join().unwrap();
    }

    #[test]
    fn seq_wraps() {
        let h = HeapRegion::new_zeroed(8);
        // SAFETY: 8 bytes, 64-aligned, not in use.
        unsafe { h.region().as_ptr().cast::<u32>().write(u32::MAX) };
        let c = WaitCell::from_region(h.region(), 0).unwrap();
        assert_eq!(c.seq(), u32::MAX);
        c.notify();
        assert_eq!(c.seq(), 0);
        assert_eq!(c.wait(u32::MAX, None), WaitResult::Notified);
    }
}
