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
//! ## Example
//!
//! ```
//! use roam_shm::{HeapRegion, PushResult, SpscRing};
//!
//! // Create a ring buffer with capacity 16
//! let region = HeapRegion::new_zeroed(SpscRing::<u64>::required_size(16));
//! let ring = SpscRing::<u64>::init(region.region(), 16).unwrap();
//!
//! // Split into producer and consumer
//! let (mut producer, mut consumer) = ring.split();
//!
//! // Push some values
//! assert!(matches!(producer.push(42), PushResult::Ok));
//! assert!(matches!(producer.push(43), PushResult::Ok));
//!
//! // Pop them back
//! assert_eq!(consumer.pop(), Some(42));
//! assert_eq!(consumer.pop(), Some(43));
//! assert_eq!(consumer.pop(), None);
//! ```
//!
//! Across processes, map the same memory in each (e.g. [`mmap::ShmRegion`], whose fd
//! can be passed to a child) and give each process one role. For messaging between
//! processes use the session layer: [`segment::host::Host`] and
//! [`segment::guest::Guest`].
//!
//! ## Loom
//! All atomics come from [`sync`]; `cargo test -p roam-shm --release --features loom
//! --tests -- --test-threads=1` model-checks the algorithms (ring, slab, BipBuffer,
//! futex waiter, wake flags, peer claiming, slot pool) under every interleaving, each
//! with a seeded-bug model that must fail.
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

pub use bipbuf::{BipBuf, BipBufConsumer, BipBufProducer, BipBufRaw};
pub use doorbell::{Doorbell, DoorbellHandle, SignalResult};
pub use fd::{clear_cloexec, close_peer_fd, set_nonblocking, validate_fd};
pub use mmap::{FileCleanup, MmapRegion, ShmRegion};
pub use region::{HeapRegion, Region};
pub use slot::{SlotMeta, SlotState};
pub use spsc::{
    PushResult, RingFull, SpscConsumer, SpscProducer, SpscRing, SpscRingHeader, SpscRingRaw,
};
pub use treiber::{
    AllocResult, FreeError, SlotError, SlotHandle, TreiberSlab, TreiberSlabHeader, TreiberSlabRaw,
};
pub use waiter::WaitCell;
