//! # roam-shm
//!
//! Zero-copy shared-memory IPC: lock-free primitives over raw mapped memory and the
//! roam v7 segment (host, guests, per-guest BipBuffers, a shared variable-size slot
//! pool), byte-compatible with the published roam 7.x crates.
//!
//! ## Raw vs Region APIs
//! Each primitive has a *Raw* variant working on raw pointers into memory that other
//! processes may map at other addresses (only offsets are ever stored in shared
//! memory), and a *Region* variant that borrows a [`region::Region`] owned by a
//! [`region::HeapRegion`], [`mmap::MmapRegion`] or [`mmap::ShmRegion`].
//!
//! ## Loom
//! All atomics come from [`sync`]; `cargo test -p roam-shm --features loom --test loom`
//! model-checks the algorithms under every interleaving.
#![deny(missing_docs)]
#![cfg(unix)]

pub mod sync;

pub mod atomics;
pub mod bipbuf;
pub mod doorbell;
pub mod fd;
pub mod mmap;
pub mod region;
pub mod segment;
pub mod slot;
pub mod spsc;
pub mod treiber;
pub mod waiter;
pub mod wake;
