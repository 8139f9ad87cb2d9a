//! The roam v7 wire format without the session layer: a real segment (header, peer
//! table, per-guest BipBuffers, slot pool) in a memfd, frames written and read the
//! way `link.rs` does (inline up to the inline threshold, else a slot-ref with the
//! `u32` length prefix in the slot; the receiver validates the ref, frees the slot,
//! then releases the ring bytes), but no doorbell. Receivers spin, or wait on a
//! futex `WaitCell` in the control block (which senders notify after each commit;
//! the notify costs no syscall unless the receiver sleeps).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use roam_shm::bipbuf::{BipBufRaw, GrantOutcome, ReadOutcome};
use roam_shm::segment::config::SegmentConfig;
use roam_shm::segment::frame::{self, Frame};
use roam_shm::segment::shared::SegmentShared;
use roam_shm::segment::var_pool::{SizeClass, VarSlotHandle};
use roam_shm::waiter::{WaitCell, WaitConfig, WaitResult};

use crate::BoxError;
use crate::ctl::Ctl;
use crate::endpoint::{Endpoint, Side, Source, Spinner, read_seq};
use crate::rows::Mode;

/// The segment geometry of the `format` and `session` rows: 1 MiB rings (so a
/// stream of small inline frames has room), and slot classes up to 4 MiB so every
/// payload of the sweep above the inline threshold travels in a slot (zero-copy),
/// never through the mmap path.
pub fn bench_config() -> SegmentConfig {
    SegmentConfig {
        max_guests: 1,
        bipbuf_capacity: 1 << 20,
        size_classes: vec![
            SizeClass {
                slot_size: 1024,
                count: 256,
            },
            SizeClass {
                slot_size: 64 << 10,
                count: 32,
            },
            SizeClass {
                slot_size: (1 << 20) + 64,
                count: 8,
            },
            SizeClass {
                slot_size: (4 << 20) + 64,
                count: 4,
            },
        ],
        inline_threshold: 0,
        max_payload_size: 16 << 20,
        heartbeat_interval: Duration::ZERO,
    }
}

/// How a side waits.
#[derive(Debug, Clone, Copy)]
enum Wait {
    Spin,
    Cell(WaitConfig),
}

/// One side of a format link. Side A plays the host (owner 0), B the guest (peer 1).
#[derive(Debug)]
pub struct FormatEp<'c> {
    seg: Arc<SegmentShared>,
    tx: BipBufRaw,
    rx: BipBufRaw,
    owner: u32,
    peer_owner: u32,
    threshold: usize,
    wait: Wait,
    /// Cells: the peer's "data" cell we notify, our "space" cell we wait on when
    /// full; our "data" cell we wait on when empty, the peer's "space" cell we notify
    /// after releasing.
    tx_data: &'c WaitCell,
    tx_space: &'c WaitCell,
    rx_data: &'c WaitCell,
    rx_space: &'c WaitCell,
    src: Source,
    spin: Spinner,
    /// Prototype of a proposed core change (the `format-cached` rows): keep our own
    /// cursor locally and a cached copy of the peer's, like `SpscRing` does.
    cache: Option<Cursors>,
}

/// Process-local cursor copies of the `format-cached` prototype.
#[derive(Debug, Default, Clone, Copy)]
struct Cursors {
    /// Producer: our `write` (exact) and the last `read` we loaded.
    write: u32,
    read_seen: u32,
    /// Consumer: our `read` (exact) and the last `write` we loaded (frames below it
    /// are ready without loading `write` again).
    read: u32,
    write_seen: u32,
    /// Whether the copies were loaded (after the first slow-path operation).
    tx_valid: bool,
    rx_valid: bool,
}

impl<'c> FormatEp<'c> {
    /// An endpoint on `seg` for `side`, waiting as `mode` says.
    pub fn new(
        seg: Arc<SegmentShared>,
        ctl: &'c Ctl,
        side: Side,
        mode: Mode,
        max_len: usize,
        deadline: Instant,
        cached: bool,
    ) -> Result<FormatEp<'c>, BoxError> {
        let g2h = seg.ring(1, true)?;
        let h2g = seg.ring(1, false)?;
        let (tx, rx, owner, peer_owner) = match side {
            Side::A => (h2g, g2h, 0, 1),
            Side::B => (g2h, h2g, 1, 0),
        };
        let (tx_cells, rx_cells) = match side {
            Side::A => ((0, 1), (2, 3)),
            Side::B => ((2, 3), (0, 1)),
        };
        let wait = match mode {
            Mode::Spin => Wait::Spin,
            Mode::Wait => Wait::Cell(WaitConfig::default()),
            Mode::Wake => Wait::Cell(WaitConfig {
                spin: Duration::ZERO,
            }),
            other => return Err(format!("format rows have no {} mode", other.name()).into()),
        };
        let threshold = seg.inline_threshold() as usize;
        Ok(FormatEp {
            seg,
            tx,
            rx,
            owner,
            peer_owner,
            threshold,
            wait,
            tx_data: ctl.cell(tx_cells.0),
            tx_space: ctl.cell(tx_cells.1),
            rx_data: ctl.cell(rx_cells.0),
            rx_space: ctl.cell(rx_cells.1),
            src: Source::new(max_len),
            spin: Spinner::new(deadline),
            cache: cached.then(Cursors::default),
        })
    }

    fn tx_header(&self) -> &roam_shm::bipbuf::BipBufHeader {
        // SAFETY: the header of a ring of the mapped segment, which `seg` keeps mapped;
        // its fields are atomics.
        unsafe { &*self.tx.header_ptr() }
    }

    fn rx_header(&self) -> &roam_shm::bipbuf::BipBufHeader {
        // SAFETY: as in tx_header.
        unsafe { &*self.rx.header_ptr() }
    }

    /// Wait step while the ring or the pool is full.
    fn wait_space(&mut self, expected: Option<u32>) -> Result<(), BoxError> {
        match (self.wait, expected) {
            (Wait::Cell(cfg), Some(e)) => {
                let r = self
                    .tx_space
                    .wait_with(e, Some(Duration::from_millis(10)), &cfg);
                if r == WaitResult::TimedOut {
                    self.spin.check()?;
                }
                Ok(())
            }
            _ => self.spin.spin(),
        }
    }

    fn space_seq(&self) -> Option<u32> {
        match self.wait {
            Wait::Cell(_) => Some(self.tx_space.seq()),
            Wait::Spin => None,
        }
    }

    /// Grant `n` ring bytes, waiting for room.
    fn grant(&mut self, n: u32) -> Result<u32, BoxError> {
        if let Some(c) = self.cache {
            // With write >= read, [write, capacity) is free whatever the consumer did
            // since we loaded `read` (it only moves towards `write`; it resets to 0
            // only after a wrap, which our slow path below sees).
            if c.tx_valid && c.write >= c.read_seen && self.tx.capacity() - c.write >= n {
                return Ok(c.write);
            }
            let off = self.grant_slow(n)?;
            // Acquire: pairs with the consumer's Release store of `read`.
            let read_seen = self.tx_header().read.load(Ordering::Acquire);
            if let Some(c) = &mut self.cache {
                c.write = off;
                c.read_seen = read_seen;
                c.tx_valid = true;
            }
            return Ok(off);
        }
        self.grant_slow(n)
    }

    fn grant_slow(&mut self, n: u32) -> Result<u32, BoxError> {
        loop {
            let e = self.space_seq();
            match self.tx.try_grant_outcome(n)? {
                GrantOutcome::Granted { offset } => return Ok(offset),
                GrantOutcome::FullWrapped => {
                    // The consumer must read once to reset the cursors (§13 stall).
                    if matches!(self.wait, Wait::Cell(_)) {
                        self.tx_data.notify();
                    }
                }
                GrantOutcome::Full => {}
            }
            self.wait_space(e)?;
        }
    }

    fn alloc(&mut self, need: u32) -> Result<VarSlotHandle, BoxError> {
        loop {
            let e = self.space_seq();
            if let Some(h) = self.seg.pool().try_alloc(need, self.owner)? {
                return Ok(h);
            }
            self.wait_space(e)?;
        }
    }

    /// Consume one frame if there is one.
    fn try_recv(&mut self) -> Result<Option<u64>, BoxError> {
        if let Some(c) = self.cache.filter(|c| c.rx_valid) {
            if c.read < c.write_seen {
                // Frames we already know are committed (no wrap in between: the
                // producer only wraps once we moved past them... and we have not).
                return self.consume(c.read, c.write_seen - c.read).map(Some);
            }
            // Acquire: pairs with the producer's Release store of `write`.
            let w = self.rx_header().write.load(Ordering::Acquire);
            if w == c.read {
                // Nothing new (a post-wrap `write` is always below `read`).
                return Ok(None);
            }
            if w > c.read && w <= self.rx.capacity() {
                // No wrap in progress: the frames are [read, write).
                let r = c.read;
                if let Some(c) = &mut self.cache {
                    c.write_seen = w;
                }
                return self.consume(r, w - r).map(Some);
            }
        }
        let got = self.try_recv_slow()?;
        if self.cache.is_some() {
            // Relaxed: our own cursor, stored by this thread.
            let r = self.rx_header().read.load(Ordering::Relaxed);
            if let Some(c) = &mut self.cache {
                c.read = r;
                c.write_seen = r;
                c.rx_valid = true;
            }
        }
        Ok(got)
    }

    fn try_recv_slow(&mut self) -> Result<Option<u64>, BoxError> {
        let (off, avail) = match self.rx.try_read_outcome()? {
            ReadOutcome::Data { offset, len } => (offset, len),
            ReadOutcome::Empty => return Ok(None),
            ReadOutcome::EmptyAfterReset => {
                if matches!(self.wait, Wait::Cell(_)) {
                    self.rx_space.notify();
                }
                return Ok(None);
            }
        };
        self.consume(off, avail).map(Some)
    }

    /// Decode, use and release the frame at `off` (`avail` readable bytes).
    fn consume(&mut self, off: u32, avail: u32) -> Result<u64, BoxError> {
        // SAFETY: [off, off + avail) is committed data the consumer owns until
        // released (BipBufRaw or the cached fast path checked it against the capacity).
        let bytes = unsafe {
            std::slice::from_raw_parts(self.rx.data_ptr().add(off as usize), avail as usize)
        };
        let (f, consumed) = frame::decode(bytes)?;
        let seq = match f {
            Frame::Inline { payload } => {
                if payload.len() < 8 {
                    return Err("inline frame shorter than a sequence number".into());
                }
                // SAFETY: the payload holds at least 8 bytes (checked).
                unsafe { read_seq(payload.as_ptr()) }
            }
            Frame::SlotRef {
                class_idx,
                extent_idx,
                slot_idx,
                generation,
            } => {
                let h = VarSlotHandle {
                    class_idx,
                    extent_idx,
                    slot_idx,
                    generation,
                };
                let pool = self.seg.pool();
                let (p, slot_size) = pool.validate_ref(h, Some(self.peer_owner))?;
                if slot_size < 12 {
                    return Err("slot too small for a length and a sequence number".into());
                }
                // SAFETY: validate_ref checked the whole slot lies in the pool; 4 <= size.
                let len = u32::from_le(unsafe { std::ptr::read_unaligned(p.cast::<u32>()) });
                let len = frame::check_slot_payload_len(len, slot_size)?;
                if len < 8 {
                    return Err("slot payload shorter than a sequence number".into());
                }
                // SAFETY: 4 + len <= slot_size (checked) and len >= 8.
                let seq = unsafe { read_seq(p.add(4)) };
                pool.free(h)?;
                seq
            }
            Frame::MmapRef { .. } => return Err("unexpected mmap-ref frame".into()),
        };
        match &mut self.cache {
            Some(c) if c.rx_valid && off == c.read => {
                c.read += consumed as u32;
                let r = c.read;
                // Release: our reads of the frame happen-before the producer reuses
                // its bytes (the store BipBufRaw::release makes without a wrap).
                self.rx_header().read.store(r, Ordering::Release);
            }
            _ => self.rx.release(consumed as u32)?,
        }
        if matches!(self.wait, Wait::Cell(_)) {
            self.rx_space.notify();
        }
        Ok(seq)
    }
}

impl Endpoint for FormatEp<'_> {
    fn send(&mut self, seq: u64, len: usize) -> Result<(), BoxError> {
        let entry_len;
        if len <= self.threshold {
            entry_len = frame::inline_entry_len(len)? as u32;
            let off = self.grant(entry_len)?;
            // SAFETY: the grant gives us [off, off + entry_len) of the ring's data.
            let entry = unsafe {
                std::slice::from_raw_parts_mut(
                    self.tx.data_ptr().add(off as usize),
                    entry_len as usize,
                )
            };
            frame::encode_inline_header(entry, len)?;
            // SAFETY: the payload follows the 8-byte header inside the granted entry
            // (inline_entry_len >= 8 + len).
            unsafe {
                self.src
                    .write_to(entry.as_mut_ptr().add(frame::FRAME_HEADER_SIZE), len, seq)
            };
        } else {
            let need = u32::try_from(len + 4)?;
            let h = self.alloc(need)?;
            let p = self.seg.pool().payload_ptr(h)?;
            // SAFETY: the slot is ours (just allocated) and holds >= len + 4 bytes.
            unsafe {
                std::ptr::write_unaligned(p.cast::<u32>(), (len as u32).to_le());
                self.src.write_to(p.add(4), len, seq);
            }
            entry_len = frame::SLOT_REF_ENTRY_SIZE as u32;
            let off = self.grant(entry_len)?;
            // SAFETY: granted, as above.
            let entry = unsafe {
                std::slice::from_raw_parts_mut(
                    self.tx.data_ptr().add(off as usize),
                    entry_len as usize,
                )
            };
            frame::encode_slot_ref(entry, h.class_idx, h.extent_idx, h.slot_idx, h.generation)?;
        }
        match &mut self.cache {
            Some(c) => {
                c.write += entry_len;
                let w = c.write;
                // Release: publishes the frame to the consumer's Acquire load of
                // `write` (the same store BipBufRaw::commit makes).
                self.tx_header().write.store(w, Ordering::Release);
            }
            None => self.tx.commit(entry_len)?,
        }
        if matches!(self.wait, Wait::Cell(_)) {
            self.tx_data.notify();
        }
        Ok(())
    }

    fn recv(&mut self) -> Result<u64, BoxError> {
        loop {
            let expected = match self.wait {
                Wait::Cell(_) => Some(self.rx_data.seq()),
                Wait::Spin => None,
            };
            if let Some(seq) = self.try_recv()? {
                return Ok(seq);
            }
            match (self.wait, expected) {
                (Wait::Cell(cfg), Some(e)) => {
                    let r = self
                        .rx_data
                        .wait_with(e, Some(Duration::from_millis(100)), &cfg);
                    if r == WaitResult::TimedOut {
                        self.spin.check()?;
                    }
                }
                _ => self.spin.spin()?,
            }
        }
    }
}
