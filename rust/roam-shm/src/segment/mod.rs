//! The roam v7 segment: header, peer table, per-guest BipBuffers, frames, the shared
//! variable-size slot pool, the bootstrap handshake and the host/guest sessions.
//! See `../shared/notes/roam-v7-layout.md` for the byte-level contract.

pub mod bootstrap;
pub mod config;
pub mod frame;
pub mod header;
pub mod mmap_ctrl;
pub mod peer;
pub mod var_pool;
