//! Session rows: the parent is a `Host` (memfd segment, Unix control socket), the
//! child a `Guest` that connects to it. Messages go through the links exactly as an
//! application sends them: `Tx::reserve_raw` → write the payload in place →
//! `Tx::commit_reserved` (which rings the doorbell), and `Rx::try_recv_raw` →
//! read → `Rx::release` (which rings it too). Receivers busy-poll (`spin`) or wait
//! on the doorbell (`doorbell`).
//!
//! When the core learns to skip the doorbell for a busy-polling receiver, the
//! `spin` rows pick it up with no change here (they already busy-poll).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use roam_shm::segment::guest::{Guest, GuestOptions};
use roam_shm::segment::host::{Host, HostOptions};
use roam_shm::segment::link::{Rx, Tx};
use roam_shm::segment::shared::SegmentBacking;

use crate::BoxError;
use crate::endpoint::{Endpoint, Source, Spinner, read_seq};
use crate::format::bench_config;
use crate::rows::Mode;

/// A unique control-socket path for one row.
pub fn socket_path(tag: usize) -> PathBuf {
    std::env::temp_dir().join(format!("roam-bench-{}-{tag}.sock", std::process::id()))
}

/// Create the host and listen (before the child is spawned).
pub fn host_listen(path: &Path) -> Result<Host, BoxError> {
    let mut host = Host::create(HostOptions {
        config: bench_config(),
        backing: SegmentBacking::Anonymous,
    })?;
    host.listen(path)?;
    Ok(host)
}

/// Accept the child guest (after it was spawned).
pub fn host_accept(host: &mut Host, deadline: Instant) -> Result<u8, BoxError> {
    loop {
        if let Some(peer) = host.try_accept()? {
            return Ok(peer);
        }
        if Instant::now() > deadline {
            return Err("the guest never connected".into());
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Connect as the guest.
pub fn guest_connect(path: &Path) -> Result<Guest, BoxError> {
    Ok(Guest::connect(path, GuestOptions::default())?)
}

/// The links of either side.
#[derive(Debug)]
pub enum Side {
    /// The parent.
    Host(Host, u8),
    /// The child.
    Guest(Box<Guest>),
}

/// One side of a session link.
#[derive(Debug)]
pub struct SessionEp {
    side: Side,
    doorbell: bool,
    src: Source,
    spin: Spinner,
}

impl SessionEp {
    /// An endpoint over `side`'s link, waiting as `mode` says.
    pub fn new(
        side: Side,
        mode: Mode,
        max_len: usize,
        deadline: Instant,
    ) -> Result<SessionEp, BoxError> {
        let doorbell = match mode {
            Mode::Spin => false,
            Mode::Doorbell => true,
            other => return Err(format!("session rows have no {} mode", other.name()).into()),
        };
        Ok(SessionEp {
            side,
            doorbell,
            src: Source::new(max_len),
            spin: Spinner::new(deadline),
        })
    }

    fn link(&mut self) -> Result<(&mut Tx, &mut Rx), BoxError> {
        Ok(match &mut self.side {
            Side::Host(h, peer) => h.link(*peer)?,
            Side::Guest(g) => g.link(),
        })
    }

    fn wait(&mut self) -> Result<(), BoxError> {
        if self.doorbell {
            let (tx, _) = self.link()?;
            tx.doorbell().wait(Some(Duration::from_millis(100)))?;
            self.spin.check()
        } else {
            self.spin.spin()
        }
    }
}

impl Endpoint for SessionEp {
    fn send(&mut self, seq: u64, len: usize) -> Result<(), BoxError> {
        loop {
            let (tx, _) = self.link()?;
            match tx.reserve_raw(len) {
                Ok(r) => {
                    // SAFETY: the reservation's payload pointer is valid for r.len() ==
                    // len bytes until it is committed.
                    unsafe { self.src.write_to(r.payload_ptr(), len, seq) };
                    let (tx, _) = self.link()?;
                    tx.commit_reserved(r)?;
                    return Ok(());
                }
                Err(e) if e.is_backpressure() => self.wait()?,
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn recv(&mut self) -> Result<u64, BoxError> {
        loop {
            let (_, rx) = self.link()?;
            if let Some(m) = rx.try_recv_raw()? {
                if m.len < 8 {
                    return Err("message shorter than a sequence number".into());
                }
                // SAFETY: the message is valid for m.len >= 8 bytes until release.
                let seq = unsafe { read_seq(m.ptr) };
                rx.release()?;
                return Ok(seq);
            }
            self.wait()?;
        }
    }
}
