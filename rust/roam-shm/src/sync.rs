//! Atomics facade.
//!
//! Every atomic used by the algorithms of this crate comes from here, never from
//! `core::sync::atomic` directly (`clippy.toml` bans those types elsewhere). Normally
//! these are the core atomics; with `--features loom` they are loom's model-checked
//! atomics, so the very same algorithm code is explored under every interleaving.
//!
//! Rules for code that uses the facade:
//! - Shared headers are initialised by `ptr::write` of a value built with
//!   `AtomicU32::new(..)` etc., never by assuming zeroed memory is a valid atomic:
//!   under loom an atomic is not plain bytes.
//! - Size/offset assertions of `#[repr(C)]` shared structs are compiled only without
//!   loom (`#[cfg(not(feature = "loom"))]`), since loom atomics are larger.
//! - The stores that publish data to another process use [`publish`], and the loads
//!   that observe such a publication use [`observe`]; loom tests can seed a bug in
//!   them (see `seeded_bug`, loom builds only) to prove the models catch a missing release/acquire.
#![allow(clippy::disallowed_types)]

// Type aliases rather than `pub use`: clippy's `disallowed_types` follows re-exports
// to the core types, but not aliases, so code using the facade passes the ban.
macro_rules! facade {
    ($($name:ident),*) => {$(
        #[cfg(feature = "loom")]
        #[doc = concat!("`", stringify!($name), "` (loom's model-checked type under `--features loom`).")]
        pub type $name = loom::sync::atomic::$name;
        #[cfg(not(feature = "loom"))]
        #[doc = concat!("`", stringify!($name), "` (loom's model-checked type under `--features loom`).")]
        pub type $name = core::sync::atomic::$name;
    )*};
}
facade!(AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize);

#[cfg(not(feature = "loom"))]
pub use core::sync::atomic::fence;
#[cfg(feature = "loom")]
pub use loom::sync::atomic::fence;

pub use core::sync::atomic::Ordering;

/// A CPU relax hint inside a spin loop (a loom yield point under loom).
#[inline(always)]
pub fn spin_loop() {
    #[cfg(feature = "loom")]
    loom::thread::yield_now();
    #[cfg(not(feature = "loom"))]
    core::hint::spin_loop();
}

/// Ordering of a store that publishes data (or a freed resource) to another party.
///
/// Always `Release`, except in a loom test that seeded the bug with
/// `seeded_bug::set` (loom builds only), where it degrades to `Relaxed`.
#[inline(always)]
pub fn publish() -> Ordering {
    #[cfg(feature = "loom")]
    if seeded_bug::enabled() {
        return Ordering::Relaxed;
    }
    Ordering::Release
}

/// Ordering of a load that observes a [`publish`]ed store (`Acquire`; `Relaxed` when
/// a loom test seeded the bug).
#[inline(always)]
pub fn observe() -> Ordering {
    #[cfg(feature = "loom")]
    if seeded_bug::enabled() {
        return Ordering::Relaxed;
    }
    Ordering::Acquire
}

/// Test-only switch (loom builds only) that weakens [`publish`]/[`observe`] to
/// `Relaxed`, so a loom test can show that the models detect the missing ordering.
#[cfg(feature = "loom")]
pub mod seeded_bug {
    use std::sync::atomic::{AtomicBool, Ordering};

    static ENABLED: AtomicBool = AtomicBool::new(false);

    /// Turn the seeded bug on or off (process-wide; loom tests run one model at a time
    /// per test binary thread, so tests that seed it must not run in parallel with
    /// others: the loom test binary is run with `--test-threads=1`).
    pub fn set(on: bool) {
        ENABLED.store(on, Ordering::SeqCst);
    }

    /// Whether the bug is currently seeded.
    pub fn enabled() -> bool {
        ENABLED.load(Ordering::Relaxed)
    }
}
