//! In-process baselines: two threads pinned to different cores, 8-byte messages
//! (`u64`), busy-polling. roam's `SpscRing` over heap memory against `rtrb` and a
//! bounded `crossbeam-channel`.

use std::time::Instant;

use roam_shm::region::HeapRegion;
use roam_shm::spsc::{PushResult, SpscConsumer, SpscProducer, SpscRing};

use crate::BoxError;
use crate::endpoint::{Endpoint, Spinner};
use crate::rows::Transport;

/// Capacity of every in-process queue.
pub const CAP: usize = 1024;

/// A pair of rings' memory (kept alive by the caller while endpoints borrow it).
pub struct RoamMem(HeapRegion, HeapRegion);

impl RoamMem {
    /// Memory for two rings of [`CAP`] `u64`s.
    pub fn new() -> RoamMem {
        let n = SpscRing::<u64>::required_size(CAP as u32);
        RoamMem(HeapRegion::new_zeroed(n), HeapRegion::new_zeroed(n))
    }
}

impl std::fmt::Debug for RoamMem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RoamMem")
    }
}

impl Default for RoamMem {
    fn default() -> Self {
        Self::new()
    }
}

/// One side of an in-process link.
#[derive(Debug)]
pub enum InprocEp<'a> {
    /// roam `SpscRing`.
    Roam(SpscProducer<'a, u64>, SpscConsumer<'a, u64>, Spinner),
    /// `rtrb`.
    Rtrb(rtrb::Producer<u64>, rtrb::Consumer<u64>, Spinner),
    /// `crossbeam-channel` (bounded).
    Crossbeam(
        crossbeam_channel::Sender<u64>,
        crossbeam_channel::Receiver<u64>,
        Spinner,
    ),
}

/// Both sides of a link of `transport`.
pub fn pair(
    transport: Transport,
    mem: &RoamMem,
    deadline: Instant,
) -> Result<(InprocEp<'_>, InprocEp<'_>), BoxError> {
    let s = || Spinner::new(deadline);
    Ok(match transport {
        Transport::InprocRoam => {
            let (p1, c1) = SpscRing::<u64>::init(mem.0.region(), CAP as u32)?.split();
            let (p2, c2) = SpscRing::<u64>::init(mem.1.region(), CAP as u32)?.split();
            (InprocEp::Roam(p1, c2, s()), InprocEp::Roam(p2, c1, s()))
        }
        Transport::InprocRtrb => {
            let (p1, c1) = rtrb::RingBuffer::new(CAP);
            let (p2, c2) = rtrb::RingBuffer::new(CAP);
            (InprocEp::Rtrb(p1, c2, s()), InprocEp::Rtrb(p2, c1, s()))
        }
        Transport::InprocCrossbeam => {
            let (p1, c1) = crossbeam_channel::bounded(CAP);
            let (p2, c2) = crossbeam_channel::bounded(CAP);
            (
                InprocEp::Crossbeam(p1, c2, s()),
                InprocEp::Crossbeam(p2, c1, s()),
            )
        }
        other => return Err(format!("{} is not an in-process transport", other.name()).into()),
    })
}

impl Endpoint for InprocEp<'_> {
    #[inline]
    fn send(&mut self, seq: u64, _len: usize) -> Result<(), BoxError> {
        match self {
            InprocEp::Roam(p, _, spin) => loop {
                match p.push(seq) {
                    PushResult::Ok => return Ok(()),
                    PushResult::Full(_) => spin.spin()?,
                    PushResult::Corrupt(_) => return Err("ring corrupt".into()),
                }
            },
            InprocEp::Rtrb(p, _, spin) => loop {
                match p.push(seq) {
                    Ok(()) => return Ok(()),
                    Err(_) => spin.spin()?,
                }
            },
            InprocEp::Crossbeam(p, _, spin) => loop {
                match p.try_send(seq) {
                    Ok(()) => return Ok(()),
                    Err(crossbeam_channel::TrySendError::Full(_)) => spin.spin()?,
                    Err(e) => return Err(e.to_string().into()),
                }
            },
        }
    }

    #[inline]
    fn recv(&mut self) -> Result<u64, BoxError> {
        match self {
            InprocEp::Roam(_, c, spin) => loop {
                if let Some(v) = c.try_pop()? {
                    return Ok(v);
                }
                spin.spin()?;
            },
            InprocEp::Rtrb(_, c, spin) => loop {
                if let Ok(v) = c.pop() {
                    return Ok(v);
                }
                spin.spin()?;
            },
            InprocEp::Crossbeam(_, c, spin) => loop {
                match c.try_recv() {
                    Ok(v) => return Ok(v),
                    Err(crossbeam_channel::TryRecvError::Empty) => spin.spin()?,
                    Err(e) => return Err(e.to_string().into()),
                }
            },
        }
    }
}
