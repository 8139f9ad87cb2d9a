//! A guest: connects to a host's Unix socket, receives the segment, its doorbell
//! and its mmap control channel (RSH0/RSP0 bootstrap with three fds), claims its
//! peer entry and exchanges messages with the host.

use crate::sync::{AtomicBool, Ordering};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::SessionError;
use super::bootstrap::{self, BootstrapStatus};
use super::link::{Message, RecvError, Rx, SEND_WAIT_SLICE, SendBuf, SendError, Tx, WakeFlags};
use super::mmap_ctrl::{MmapAttachments, MmapRegistry};
use super::peer::{PeerState, now_ns, own_pid};
use super::shared::SegmentShared;
use crate::doorbell::{Doorbell, WaitOutcome};

/// How long a blocking receive busy-polls before sleeping on the doorbell.
const SPIN_BEFORE_SLEEP: Duration = Duration::from_micros(20);

/// Options for [`Guest::connect`].
#[derive(Debug, Clone)]
pub struct GuestOptions {
    /// How long to wait for the host's bootstrap response.
    pub timeout: Duration,
    /// The session id sent in the RSH0 request (opaque to the host; 32 hex
    /// characters are generated when `None`, as Swift roam guests send).
    pub sid: Option<Vec<u8>>,
}

impl Default for GuestOptions {
    fn default() -> Self {
        GuestOptions {
            timeout: Duration::from_secs(5),
            sid: None,
        }
    }
}

/// The guest side of a segment.
#[derive(Debug)]
pub struct Guest {
    seg: Arc<SegmentShared>,
    peer_id: u8,
    /// Epoch of our peer entry when we claimed it: a different epoch means the host
    /// evicted us and the entry now belongs to another guest.
    epoch: u32,
    tx: Tx,
    rx: Rx,
    doorbell: Arc<Doorbell>,
    heartbeat: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
    closed: bool,
}

fn random_sid() -> Vec<u8> {
    let mut x = now_ns() ^ (u64::from(own_pid()) << 32) ^ 0x9E37_79B9_7F4A_7C15;
    let mut s = String::with_capacity(32);
    for _ in 0..32 {
        // xorshift64*: only needs to be distinct, not secret.
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
        s.push(char::from_digit((v >> 60) as u32, 16).unwrap_or('0'));
    }
    s.into_bytes()
}

impl Guest {
    /// Connect to the host listening at `socket_path`.
    pub fn connect(
        socket_path: impl AsRef<Path>,
        opts: GuestOptions,
    ) -> Result<Guest, SessionError> {
        let stream = UnixStream::connect(socket_path.as_ref())
            .map_err(|e| SessionError::io("connect", e))?;
        stream
            .set_read_timeout(Some(opts.timeout))
            .map_err(|e| SessionError::io("set_read_timeout", e))?;
        stream
            .set_write_timeout(Some(opts.timeout))
            .map_err(|e| SessionError::io("set_write_timeout", e))?;
        let sid = opts.sid.unwrap_or_else(random_sid);
        bootstrap::send_request(stream.as_fd(), &sid)?;
        let mut buf = vec![0u8; bootstrap::MAX_RESPONSE_LEN];
        let resp = bootstrap::recv_response_unix(stream.as_fd(), &mut buf)?;
        if resp.info.status == BootstrapStatus::Error {
            return Err(SessionError::Rejected(
                String::from_utf8_lossy(resp.payload).into_owned(),
            ));
        }
        let peer_id = u8::try_from(resp.info.peer_id)
            .map_err(|_| SessionError::BadPeerId(resp.info.peer_id))?;
        let [db_fd, seg_fd, ctl_fd]: [OwnedFd; 3] = resp
            .fds
            .ok_or(SessionError::Internal("success response without fds"))?;
        Self::attach(seg_fd, db_fd, ctl_fd, peer_id)
    }

    /// Attach with fds obtained out of band (e.g. inherited by a spawned child).
    pub fn attach(
        seg_fd: OwnedFd,
        doorbell_fd: OwnedFd,
        ctl_fd: OwnedFd,
        peer_id: u8,
    ) -> Result<Guest, SessionError> {
        let seg = Arc::new(SegmentShared::open(Some(seg_fd), None)?);
        if peer_id == 0 || u32::from(peer_id) > seg.layout().max_guests {
            return Err(SessionError::BadPeerId(u32::from(peer_id)));
        }
        let doorbell = Arc::new(Doorbell::from_fd(doorbell_fd)?);
        let entry = seg.peer(peer_id)?;
        entry.guest_attach_reserved(own_pid())?;
        let epoch = entry.epoch();
        entry.heartbeat(now_ns());
        let ctl2 = ctl_fd
            .try_clone()
            .map_err(|e| SessionError::io("dup mmap control", e))?;
        let tx = Tx::new(
            seg.clone(),
            seg.ring(peer_id, true)?,
            u32::from(peer_id),
            doorbell.clone(),
            {
                let mut r = MmapRegistry::new(ctl_fd);
                r.set_retire_threshold(seg.max_slot_payload() as usize);
                r
            },
            false,
            WakeFlags::new(entry, false),
        );
        let rx = Rx::new(
            seg.clone(),
            seg.ring(peer_id, false)?,
            0,
            doorbell.clone(),
            Some(MmapAttachments::new(ctl2)?),
            WakeFlags::new(entry, false),
        );
        // Not waiting for room: the host need not ring on each release until a send
        // of ours blocks (every blocking path sets the flag first). The entry starts
        // zeroed, which reads as "waiting" and cost a doorbell syscall per message.
        tx.set_waiting(false);
        let heartbeat = Self::start_heartbeat(&seg, peer_id, epoch);
        Ok(Guest {
            seg,
            peer_id,
            epoch,
            tx,
            rx,
            doorbell,
            heartbeat,
            closed: false,
        })
    }

    fn start_heartbeat(
        seg: &Arc<SegmentShared>,
        peer_id: u8,
        epoch: u32,
    ) -> Option<(Arc<AtomicBool>, JoinHandle<()>)> {
        let interval = seg.header().heartbeat_interval;
        if interval == 0 {
            return None;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (seg, stop2) = (seg.clone(), stop.clone());
        let period = Duration::from_nanos(interval / 2).max(Duration::from_millis(1));
        let h = std::thread::Builder::new()
            .name(format!("roam-heartbeat-{peer_id}"))
            .spawn(move || {
                while !stop2.load(Ordering::Acquire) {
                    match seg.peer(peer_id) {
                        // Never heartbeat for the next owner of the entry after an
                        // eviction: that would hide its death.
                        Ok(e) if e.epoch() == epoch => e.heartbeat(now_ns()),
                        _ => break,
                    }
                    std::thread::park_timeout(period);
                }
            })
            .ok()?;
        Some((stop, h))
    }

    /// This guest's peer id (1..=255).
    pub fn peer_id(&self) -> u8 {
        self.peer_id
    }

    /// The segment.
    pub fn segment(&self) -> &Arc<SegmentShared> {
        &self.seg
    }

    /// Fail if the host said goodbye, reset our entry, or the segment was truncated.
    pub fn check_host(&self) -> Result<(), SessionError> {
        if self.seg.is_truncated() {
            return Err(SessionError::SegmentTruncated);
        }
        let verdict = if self.seg.header().host_goodbye() {
            Err(SessionError::HostGoodbye)
        } else {
            let entry = self.seg.peer(self.peer_id)?;
            match entry.state() {
                // Attached by us, not by the guest that got our entry after an eviction.
                Ok(PeerState::Attached) if entry.epoch() == self.epoch => Ok(()),
                _ => Err(SessionError::Evicted),
            }
        };
        // The reads above may have been the first to touch pages lost to a truncation
        // (they then read zeros, which looks like an eviction): say what happened.
        if self.seg.is_truncated() {
            return Err(SessionError::SegmentTruncated);
        }
        verdict
    }

    /// Send a copy of `payload` without blocking.
    pub fn try_send(&mut self, payload: &[u8]) -> Result<(), SendError> {
        self.check_host()?;
        self.tx.try_send(payload)
    }

    /// Reserve a zero-copy send.
    pub fn reserve(&mut self, len: usize) -> Result<SendBuf<'_>, SendError> {
        self.check_host()?;
        self.tx.reserve(len)
    }

    /// Send, waiting up to `timeout` while the ring or pool is full.
    pub fn send(&mut self, payload: &[u8], timeout: Duration) -> Result<(), SendError> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.try_send(payload) {
                Err(e) if e.is_backpressure() => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(SendError::Timeout);
                    }
                    if self.wait_for_space(Some(left.min(SEND_WAIT_SLICE)))?
                        == WaitOutcome::PeerGone
                    {
                        return Err(SendError::PeerGone);
                    }
                }
                other => return other,
            }
        }
    }

    /// Receive the next message if one is waiting (zero-copy; released on drop).
    pub fn try_recv(&mut self) -> Result<Option<Message<'_>>, RecvError> {
        self.rx.try_recv()
    }

    /// Receive, waiting up to `timeout` (None = forever).
    pub fn recv(&mut self, timeout: Option<Duration>) -> Result<Message<'_>, RecvError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        // Spin briefly first: a reply often arrives within microseconds, and
        // sleeping on the doorbell costs tens of microseconds to wake up from.
        let spin_until = Instant::now() + SPIN_BEFORE_SLEEP;
        while Instant::now() < spin_until {
            if self.rx.try_recv_raw()?.is_some() {
                return self
                    .rx
                    .try_recv()?
                    .ok_or(RecvError::Session(SessionError::Internal(
                        "held message vanished",
                    )));
            }
            std::hint::spin_loop();
        }
        loop {
            if self.rx.try_recv_raw()?.is_some() {
                break;
            }
            self.check_host()?;
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left.is_some_and(|l| l.is_zero()) {
                return Err(RecvError::Timeout);
            }
            if self.wait(left)? == WaitOutcome::PeerGone {
                // The host may have written messages before it went away.
                if self.rx.try_recv_raw()?.is_some() {
                    break;
                }
                return Err(RecvError::PeerGone);
            }
        }
        self.rx
            .try_recv()?
            .ok_or(RecvError::Session(SessionError::Internal(
                "held message vanished",
            )))
    }

    /// Wait for a doorbell signal (something changed: data, space, goodbye, growth).
    /// Returns at once if data is already waiting or a send that found the ring
    /// full may now fit.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<WaitOutcome, SessionError> {
        // Ask to be rung for data and for space, then look once more (see
        // link::WakeFlags): nothing that happens after this look goes unrung.
        self.rx.set_polling(false);
        self.tx.set_waiting(true);
        let r = if !self.rx.is_empty() || self.tx.space_maybe_freed() {
            Ok(WaitOutcome::Signaled)
        } else {
            self.doorbell.wait(timeout)
        };
        // Awake: we look at both rings before sleeping again, so spare the host
        // the doorbell syscalls until then.
        self.rx.set_polling(true);
        self.tx.set_waiting(false);
        let r = r?;
        self.seg.refresh_size()?;
        Ok(r)
    }

    /// After a send found the link full: wait up to `timeout` (None = forever) for
    /// the host to free room (or go away). Unlike [`Guest::wait`], data waiting in
    /// the receive ring does not end the wait: a sender that does not read still
    /// sleeps, and so still learns from the doorbell's hang-up that the host died.
    /// Returns at once if room may already have been freed.
    pub fn wait_for_space(&self, timeout: Option<Duration>) -> Result<WaitOutcome, SessionError> {
        let r = self.tx.wait_for_space(timeout)?;
        self.seg.refresh_size()?;
        Ok(r)
    }

    /// Both halves of the link.
    pub fn link(&mut self) -> (&mut Tx, &mut Rx) {
        (&mut self.tx, &mut self.rx)
    }

    /// Say goodbye (peer entry → Goodbye) and stop heartbeating.
    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        let _ = self.rx.release();
        if let Some((stop, h)) = self.heartbeat.take() {
            stop.store(true, Ordering::Release);
            h.thread().unpark();
            let _ = h.join();
        }
        // Only on our own entry: after an eviction the host has reset it (and may have
        // given it to another guest, whom an unconditional Goodbye would disconnect,
        // or left it Empty, which an unconditional Goodbye would leak forever).
        if let Ok(e) = self.seg.peer(self.peer_id) {
            if e.epoch() == self.epoch {
                let _ = e.guest_goodbye();
            }
        }
        let _ = self.doorbell.signal();
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        self.close();
    }
}
