//! Wake-up suppression flags (the protocol behind the session's `WakeFlags`).
//!
//! A consumer that will look at its ring before it next sleeps announces it in a
//! shared flag, and a producer that has just published skips the (syscall-priced)
//! wake-up while the flag is set. It is the store-buffer ("Dekker") pattern, with a
//! SeqCst fence on each side:
//!
//! - consumer, before sleeping: `announce(flag, false)` (store 0, fence), then look
//!   at the ring once more and sleep only if it is still empty;
//! - producer, after publishing: `should_wake(flag)` (fence, load) and wake the
//!   consumer if it returns true.
//!
//! Either the producer's load sees the 0 (and wakes), or the consumer's last look
//! sees the publication: no wake-up is lost. `tests/loom_wake.rs` checks this with
//! the real BipBuffer.

use crate::sync::{AtomicU32, Ordering, fence};

/// Announce whether this side busy-polls (`true`: peers may skip waking it). When
/// clearing, a SeqCst fence follows: look at the ring again before sleeping.
#[inline]
pub fn announce(flag: &AtomicU32, polling: bool) {
    // Relaxed: the fence below orders the clearing store before the consumer's last
    // look; setting the flag needs no ordering (it only suppresses wake-ups).
    flag.store(u32::from(polling), Ordering::Relaxed);
    if !polling {
        seq_cst_fence();
    }
}

/// After publishing: whether the other side must be woken (its flag is clear).
#[inline]
pub fn should_wake(flag: &AtomicU32) -> bool {
    seq_cst_fence();
    // Relaxed: ordered after our publication by the fence above.
    flag.load(Ordering::Relaxed) == 0
}

#[inline]
fn seq_cst_fence() {
    #[cfg(feature = "loom")]
    if crate::sync::seeded_bug::enabled() {
        return;
    }
    // SeqCst fence: pairs with the fence on the other side (store-buffer pattern).
    fence(Ordering::SeqCst);
}
