//! SIGBUS guard for file-backed segments.
//!
//! If another process truncates a segment file while it is mapped, touching the lost
//! pages raises SIGBUS, which would kill this process. Memfd segments are sealed
//! against shrinking, but a file under /dev/shm cannot be sealed. So every
//! [`super::mapping::SegmentMapping`] registers its address range here, and a
//! process-wide SIGBUS handler, on a fault inside a registered range, maps a private
//! zero page over the faulting page (so the access completes, reading zeros) and marks
//! that mapping truncated. The session layer checks the mark and reports
//! `SessionError::SegmentTruncated` on that link; other links keep working. Faults
//! outside every registered range are passed to the previous handler (or the default
//! action, which terminates the process as it would have without us).
#![allow(clippy::disallowed_types)] // Signal-handler state: plain core atomics, not a modelled algorithm.

use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

const SLOTS: usize = 256;

struct Slot {
    start: AtomicUsize,
    len: AtomicUsize,
    truncated: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot = Slot {
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    truncated: AtomicBool::new(false),
};

static TABLE: [Slot; SLOTS] = [EMPTY; SLOTS];
static INSTALL: Once = Once::new();
static mut PREVIOUS: Option<libc::sigaction> = None;

/// A registered range; unregisters on drop.
#[derive(Debug)]
pub struct Guard {
    slot: Option<usize>,
}

impl Guard {
    /// Whether a SIGBUS (truncation) was absorbed inside this range.
    pub fn truncated(&self) -> bool {
        // Acquire pairs with the handler's Release store.
        self.slot
            .is_some_and(|i| TABLE[i].truncated.load(Ordering::Acquire))
    }

    /// Stop guarding the range (idempotent). Call it *before* unmapping: a range
    /// still registered after its munmap may be reused by the next mapping at the
    /// same address, and a fault there would then mark the stale entry instead of
    /// the new mapping's.
    pub fn unregister(&mut self) {
        if let Some(i) = self.slot.take() {
            TABLE[i].len.store(0, Ordering::Release);
            TABLE[i].truncated.store(false, Ordering::Release);
            // Release the slot last: a registering thread claims it by CAS on start.
            TABLE[i].start.store(0, Ordering::Release);
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.unregister();
    }
}

/// Register `[start, start + len)` (the whole address reservation of a mapping).
/// If the table is full the range is simply not guarded (the guard is best effort
/// on top of the length checks done at every map).
pub fn register(start: usize, len: usize) -> Guard {
    install();
    for (i, s) in TABLE.iter().enumerate() {
        // AcqRel: claim the slot exclusively against concurrent registrations.
        if s.start
            .compare_exchange(0, start, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            s.truncated.store(false, Ordering::Release);
            s.len.store(len, Ordering::Release);
            return Guard { slot: Some(i) };
        }
    }
    Guard { slot: None }
}

fn install() {
    INSTALL.call_once(|| {
        // SAFETY: building a sigaction for our handler and installing it with
        // SA_SIGINFO|SA_ONSTACK|SA_NODEFER; the previous action is saved before any
        // SIGBUS can reach our handler through it (Once runs this exactly once).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = handler as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
            libc::sigemptyset(&mut sa.sa_mask);
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, &sa, &mut old) == 0 {
                PREVIOUS = Some(old);
            }
        }
    });
}

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    for s in TABLE.iter() {
        let start = s.start.load(Ordering::Acquire);
        let len = s.len.load(Ordering::Acquire);
        if start != 0 && addr >= start && addr - start < len {
            // SAFETY: sysconf is async-signal-safe.
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
            let page_start = addr & !(page - 1);
            // SAFETY: the page lies inside a reservation owned by a live
            // SegmentMapping (registered ranges are exactly reservations); replacing it
            // with a private zero page only changes what that mapping's owner reads.
            // mmap is a raw syscall and safe to call from a signal handler in practice.
            let p = unsafe {
                libc::mmap(
                    page_start as *mut libc::c_void,
                    page,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if p != libc::MAP_FAILED {
                // Release pairs with Guard::truncated's Acquire.
                s.truncated.store(true, Ordering::Release);
                return;
            }
        }
    }
    // Not ours: behave as if we were never installed.
    // SAFETY: PREVIOUS was written once before the handler could run and is only read.
    let prev = unsafe { *std::ptr::addr_of!(PREVIOUS) };
    match prev {
        Some(old) if old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN => {
            if old.sa_flags & libc::SA_SIGINFO != 0 {
                // SAFETY: the previous handler was installed as an SA_SIGINFO handler.
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    unsafe { std::mem::transmute(old.sa_sigaction) };
                f(sig, info, ctx);
            } else {
                // SAFETY: the previous handler was installed as a plain handler.
                let f: extern "C" fn(libc::c_int) =
                    unsafe { std::mem::transmute(old.sa_sigaction) };
                f(sig);
            }
        }
        _ => {
            // Restore the default action; returning re-executes the faulting access,
            // which now terminates the process with SIGBUS as without us.
            // SAFETY: resetting a signal disposition is async-signal-safe.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut());
            }
        }
    }
}
