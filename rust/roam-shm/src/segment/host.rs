//! The host: creates the segment, accepts guests over a Unix socket with roam's
//! RSH0/RSP0 bootstrap, exchanges messages with each, detects dead guests and
//! recovers their resources so their peer slot can be reused.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::SessionError;
use super::bootstrap::{self, BootstrapStatus};
use super::config::SegmentConfig;
use super::link::{Message, RecvError, Rx, SEND_WAIT_SLICE, SendBuf, SendError, Tx, WakeFlags};
use super::mmap_ctrl::{self, MmapAttachments, MmapRegistry};
use super::peer::{PeerState, now_ns};
use super::shared::{SegmentBacking, SegmentShared};
use crate::doorbell::{Doorbell, DrainOutcome, WaitOutcome};

/// How long a reserved guest may take to claim its peer entry after the handshake.
const ATTACH_GRACE: Duration = Duration::from_secs(10);
/// How long a connection may take to send its whole RSH0 request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections whose request has not fully arrived, at most; beyond it the oldest
/// is dropped (a flood of silent connections cannot grow the host without bound).
const MAX_PENDING_CONNECTIONS: usize = 64;

/// An accepted connection whose RSH0 request is still arriving. Nothing is
/// reserved for it until the request is complete, and it is read without blocking:
/// a slow or silent client delays only itself, never the host's poll.
#[derive(Debug)]
struct PendingConnection {
    stream: UnixStream,
    /// The request bytes so far (header, then the sid).
    request: Vec<u8>,
    since: Instant,
}

impl PendingConnection {
    /// Read what has arrived (never more than the request). `Ok(Some(sid))` once
    /// it is complete, `Ok(None)` while more is due.
    fn read_request(&mut self) -> Result<Option<Vec<u8>>, SessionError> {
        const HEADER: usize = bootstrap::REQUEST_HEADER_LEN;
        loop {
            let want = if self.request.len() < HEADER {
                HEADER
            } else {
                // The header decides before any sid is read.
                bootstrap::check_request_header(&self.request[..HEADER])?;
                HEADER + usize::from(u16::from_le_bytes([self.request[4], self.request[5]]))
            };
            if self.request.len() == want {
                return Ok(Some(self.request.split_off(HEADER)));
            }
            let have = self.request.len();
            self.request.resize(want, 0);
            let r = bootstrap::recv_nonblocking(self.stream.as_fd(), &mut self.request[have..]);
            self.request.truncate(have + r.unwrap_or(0));
            match r {
                Ok(0) if have == 0 => return Err(bootstrap::BootstrapError::Eof.into()),
                Ok(0) => {
                    return Err(bootstrap::BootstrapError::Truncated {
                        context: "request",
                        needed: want,
                        available: have,
                    }
                    .into());
                }
                Ok(_) => {}
                Err(nix::errno::Errno::EAGAIN) => return Ok(None),
                Err(e) => return Err(bootstrap::BootstrapError::Io(e).into()),
            }
        }
    }
}

/// Options for [`Host::create`].
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// Segment geometry.
    pub config: SegmentConfig,
    /// File or memfd.
    pub backing: SegmentBacking,
}

/// Why a peer was disconnected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoneReason {
    /// Its doorbell reached EOF / was reset: the process closed it or died.
    DoorbellClosed,
    /// The pid it recorded in its peer entry no longer exists.
    ProcessGone(u32),
    /// Its heartbeat is older than twice the interval.
    HeartbeatStale,
    /// It set its entry to Goodbye and its ring is drained.
    Goodbye,
    /// It never claimed its reserved entry.
    NeverAttached,
    /// It sent data that failed validation.
    Corrupt,
    /// The host disconnected it on request.
    Requested,
}

/// What recovering a peer's resources did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Frames left unread in the host-to-guest ring (their slots were freed).
    pub drained_frames: usize,
    /// Host-sent slots the guest held when it went away, now freed.
    pub freed_sent_slots: usize,
    /// Guest-owned slots reclaimed from the pool.
    pub reclaimed_slots: usize,
}

/// Something that happened during [`Host::poll`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostEvent {
    /// A guest completed the bootstrap handshake and got this peer id.
    Connected(u8),
    /// A peer's ring has messages to receive.
    Readable(u8),
    /// A peer went away; its resources were recovered and its entry is reusable.
    PeerGone {
        /// Peer id.
        peer: u8,
        /// Why.
        reason: GoneReason,
        /// What the recovery freed.
        recovery: Recovery,
    },
}

#[derive(Debug)]
struct HostPeer {
    tx: Tx,
    rx: Rx,
    doorbell: Arc<Doorbell>,
    attached: bool,
    reserved_at: Instant,
}

/// The host side of a segment.
#[derive(Debug)]
pub struct Host {
    seg: Arc<SegmentShared>,
    listener: Option<(UnixListener, PathBuf)>,
    peers: Vec<Option<HostPeer>>,
    /// Accepted connections whose request is still arriving, oldest first.
    pending: Vec<PendingConnection>,
    shut_down: bool,
}

impl Host {
    /// Create the segment.
    pub fn create(opts: HostOptions) -> Result<Host, SessionError> {
        let seg = Arc::new(SegmentShared::create(&opts.config, &opts.backing)?);
        let n = seg.layout().max_guests as usize;
        Ok(Host {
            seg,
            listener: None,
            peers: (0..n).map(|_| None).collect(),
            pending: Vec::new(),
            shut_down: false,
        })
    }

    /// Listen for guests on a Unix socket at `path`. A leftover socket file nobody
    /// listens on is replaced; a live one is an error.
    pub fn listen(&mut self, path: impl AsRef<Path>) -> Result<(), SessionError> {
        let path = path.as_ref();
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(SessionError::Io {
                    op: "listen",
                    source: std::io::Error::new(
                        std::io::ErrorKind::AddrInUse,
                        format!("{} is in use", path.display()),
                    ),
                });
            }
            let _ = std::fs::remove_file(path);
        }
        let l = UnixListener::bind(path).map_err(|e| SessionError::io("bind control socket", e))?;
        l.set_nonblocking(true)
            .map_err(|e| SessionError::io("set_nonblocking", e))?;
        self.listener = Some((l, path.to_path_buf()));
        Ok(())
    }

    /// The segment.
    pub fn segment(&self) -> &Arc<SegmentShared> {
        &self.seg
    }

    /// A path guests (including roam-built ones) can open to map the segment.
    pub fn segment_path(&self) -> PathBuf {
        self.seg.mapping().shareable_path()
    }

    /// Ids of connected peers (handshake done), attached or not yet.
    pub fn peer_ids(&self) -> Vec<u8> {
        self.peers
            .iter()
            .enumerate()
            .filter(|(_, p)| p.is_some())
            .map(|(i, _)| (i + 1) as u8)
            .collect()
    }

    /// Accept waiting connections and complete the bootstrap handshake of one whose
    /// request has arrived; returns its peer id. `Ok(None)` when no handshake can
    /// complete without blocking: connections whose request is still on its way
    /// stay pending (each for up to 5 s) and complete in a later call or `poll`.
    /// A failed handshake is that connection's error (it is dropped): call again
    /// for the others.
    pub fn try_accept(&mut self) -> Result<Option<u8>, SessionError> {
        let Some((l, _)) = &self.listener else {
            return Err(SessionError::Internal("try_accept: not listening"));
        };
        loop {
            match l.accept() {
                Ok((stream, _)) => {
                    if self.pending.len() >= MAX_PENDING_CONNECTIONS {
                        self.pending.remove(0); // dropping closes it
                    }
                    self.pending.push(PendingConnection {
                        stream,
                        request: Vec::new(),
                        since: Instant::now(),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(SessionError::io("accept", e)),
            }
        }
        let mut i = 0;
        while i < self.pending.len() {
            match self.pending[i].read_request() {
                Ok(None) if self.pending[i].since.elapsed() < REQUEST_TIMEOUT => i += 1,
                Ok(None) => {
                    self.pending.remove(i);
                    return Err(SessionError::Rejected(format!(
                        "no complete bootstrap request within {REQUEST_TIMEOUT:?}"
                    )));
                }
                Ok(Some(sid)) => {
                    let c = self.pending.remove(i);
                    return self.handshake(c.stream, &sid).map(Some);
                }
                Err(e) => {
                    self.pending.remove(i);
                    return Err(e);
                }
            }
        }
        Ok(None)
    }

    /// The earliest moment a pending connection times out.
    fn pending_deadline(&self) -> Option<Instant> {
        self.pending.iter().map(|c| c.since + REQUEST_TIMEOUT).min()
    }

    fn handshake(&mut self, stream: UnixStream, _sid: &[u8]) -> Result<u8, SessionError> {
        // The response is one small frame into an empty socket buffer: a write that
        // blocks at all means a broken peer, so bound it.
        stream
            .set_nonblocking(false)
            .map_err(|e| SessionError::io("set_blocking", e))?;
        stream
            .set_write_timeout(Some(REQUEST_TIMEOUT))
            .map_err(|e| SessionError::io("set_write_timeout", e))?;
        if self.shut_down {
            let _ = bootstrap::send_response_unix(
                stream.as_fd(),
                BootstrapStatus::Error,
                0,
                b"host is shutting down",
                None,
            );
            return Err(SessionError::Rejected("host is shutting down".into()));
        }
        let peer_id = match self.seg.peer_table().reserve_any() {
            Ok((id, _epoch)) => id as u8,
            Err(_) => {
                let _ = bootstrap::send_response_unix(
                    stream.as_fd(),
                    BootstrapStatus::Error,
                    0,
                    b"no free peer slots",
                    None,
                );
                return Err(SessionError::NoFreePeer);
            }
        };
        let result = self.finish_handshake(&stream, peer_id);
        if result.is_err() {
            let _ = self
                .seg
                .peer(peer_id)
                .and_then(|e| Ok(e.release_reserved()?));
        }
        result
    }

    fn finish_handshake(&mut self, stream: &UnixStream, peer_id: u8) -> Result<u8, SessionError> {
        let (host_db, guest_db) = Doorbell::create_pair()?;
        let (host_ctl, guest_ctl) = mmap_ctrl::control_socketpair()?;
        let path = self.segment_path();
        let payload = path.to_string_lossy().into_owned();
        let guest_db_fd: OwnedFd = guest_db.into();
        bootstrap::send_response_unix(
            stream.as_fd(),
            BootstrapStatus::Success,
            u32::from(peer_id),
            payload.as_bytes(),
            Some([
                guest_db_fd.as_fd(),
                self.seg.mapping().fd(),
                guest_ctl.as_fd(),
            ]),
        )?;
        let host_db = Arc::new(host_db);
        let ctl2 = host_ctl
            .try_clone()
            .map_err(|e| SessionError::io("dup mmap control", e))?;
        let tx = Tx::new(
            self.seg.clone(),
            self.seg.ring(peer_id, false)?,
            0,
            host_db.clone(),
            {
                let mut r = MmapRegistry::new(host_ctl);
                r.set_retire_threshold(self.seg.max_slot_payload() as usize);
                r
            },
            true,
            WakeFlags::new(self.seg.peer(peer_id)?, true),
        );
        let rx = Rx::new(
            self.seg.clone(),
            self.seg.ring(peer_id, true)?,
            u32::from(peer_id),
            host_db.clone(),
            Some(MmapAttachments::new(ctl2)?),
            WakeFlags::new(self.seg.peer(peer_id)?, true),
        );
        self.peers[usize::from(peer_id) - 1] = Some(HostPeer {
            tx,
            rx,
            doorbell: host_db,
            attached: false,
            reserved_at: Instant::now(),
        });
        Ok(peer_id)
    }

    /// Wait up to `timeout` (None = forever) for something to happen: a connection
    /// (accepted and handshaken here), messages, or a peer going away (recovered
    /// here). Returns at once if messages are already waiting.
    pub fn poll(&mut self, timeout: Option<Duration>) -> Result<Vec<HostEvent>, SessionError> {
        let mut events = self.check_peers();
        // Ask every guest to ring us for data and space, then look once more (see
        // link::WakeFlags): whatever they commit after this look rings us.
        let mut space_freed = false;
        for p in self.peers.iter().flatten() {
            p.rx.set_polling(false);
            p.tx.set_waiting(true);
            space_freed |= p.tx.space_maybe_freed();
        }
        let readable_now = self.readable_events();
        let mut wait = if space_freed || !events.is_empty() || !readable_now.is_empty() {
            Some(Duration::ZERO)
        } else {
            timeout
        };
        // Wake up in time to drop a connection whose request is overdue.
        if let Some(d) = self.pending_deadline() {
            let left = d.saturating_duration_since(Instant::now());
            wait = Some(wait.map_or(left, |w| w.min(left)));
        }
        let mut fds: Vec<libc::pollfd> = Vec::new();
        // None: the listener or a connection whose request is arriving.
        let mut owners: Vec<Option<u8>> = Vec::new();
        let connections = self.listener.iter().map(|(l, _)| l.as_raw_fd());
        for fd in connections.chain(self.pending.iter().map(|c| c.stream.as_raw_fd())) {
            fds.push(libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            });
            owners.push(None);
        }
        for (i, p) in self.peers.iter().enumerate() {
            if let Some(p) = p {
                fds.push(libc::pollfd {
                    fd: p.doorbell.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
                owners.push(Some((i + 1) as u8));
            }
        }
        let ms = match wait {
            None => -1,
            // Rounded up: a wait shorter than its deadline would only spin.
            Some(d) => d.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32,
        };
        // SAFETY: fds is a valid array of fds.len() pollfd structs.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(SessionError::io("poll", e));
            }
        }
        // Awake: we look at every ring before sleeping again.
        for p in self.peers.iter().flatten() {
            p.rx.set_polling(true);
            p.tx.set_waiting(false);
        }
        let overdue = self.pending_deadline().is_some_and(|d| d <= Instant::now());
        let mut accept = overdue;
        for (pfd, owner) in fds.iter().zip(owners) {
            if pfd.revents == 0 {
                continue;
            }
            match owner {
                None => accept = true,
                Some(id) => {
                    let gone = matches!(
                        self.peers[usize::from(id) - 1]
                            .as_ref()
                            .map(|p| p.doorbell.drain()),
                        Some(Ok(DrainOutcome::PeerGone)) | Some(Err(_))
                    );
                    if gone {
                        let recovery = self.recover(id);
                        events.push(HostEvent::PeerGone {
                            peer: id,
                            reason: GoneReason::DoorbellClosed,
                            recovery,
                        });
                    }
                }
            }
        }
        if accept {
            // Accept everything that is ready; a failed handshake only affects that
            // guest.
            loop {
                match self.try_accept() {
                    Ok(Some(id)) => events.push(HostEvent::Connected(id)),
                    Ok(None) => break,
                    Err(SessionError::NoFreePeer)
                    | Err(SessionError::Bootstrap(_))
                    | Err(SessionError::Rejected(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        for e in self.readable_events() {
            if !events.contains(&e) {
                events.push(e);
            }
        }
        Ok(events)
    }

    fn readable_events(&self) -> Vec<HostEvent> {
        self.peers
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                p.as_ref()
                    .filter(|p| !p.rx.is_empty())
                    .map(|_| HostEvent::Readable((i + 1) as u8))
            })
            .collect()
    }

    /// Liveness checks that need no wake-up: attach deadline, goodbye, pid, heartbeat.
    fn check_peers(&mut self) -> Vec<HostEvent> {
        let interval = self.seg.header().heartbeat_interval;
        let now = now_ns();
        let mut gone = Vec::new();
        for (i, slot) in self.peers.iter_mut().enumerate() {
            let Some(p) = slot else { continue };
            let id = (i + 1) as u8;
            let Ok(entry) = self.seg.peer(id) else {
                continue;
            };
            let state = entry.state();
            if !p.attached {
                match state {
                    // Goodbye: it attached and already left before we looked.
                    Ok(PeerState::Attached) | Ok(PeerState::Goodbye) => p.attached = true,
                    Ok(PeerState::Reserved) if p.reserved_at.elapsed() > ATTACH_GRACE => {
                        gone.push((id, GoneReason::NeverAttached));
                        continue;
                    }
                    Ok(PeerState::Reserved) => continue,
                    // A state no protocol step produces: the guest scribbled on it.
                    Err(_) => {
                        gone.push((id, GoneReason::Corrupt));
                        continue;
                    }
                    _ => {
                        gone.push((id, GoneReason::NeverAttached));
                        continue;
                    }
                }
            }
            match state {
                Ok(PeerState::Goodbye) if p.rx.is_empty() => gone.push((id, GoneReason::Goodbye)),
                Ok(PeerState::Attached) | Ok(PeerState::Goodbye) => {
                    let pid = entry.guest_pid();
                    if pid != 0 && entry.guest_process_gone() {
                        gone.push((id, GoneReason::ProcessGone(pid)));
                    } else if entry.is_stale(now, interval) {
                        gone.push((id, GoneReason::HeartbeatStale));
                    }
                }
                _ => gone.push((id, GoneReason::Corrupt)),
            }
        }
        gone.into_iter()
            .map(|(peer, reason)| HostEvent::PeerGone {
                peer,
                reason,
                recovery: self.recover(peer),
            })
            .collect()
    }

    /// Disconnect a peer and recover its resources (roam's order: Goodbye, drain
    /// the host-to-guest ring freeing its slots, free host slots the guest still
    /// held, zero both rings, reclaim the guest's slots, Empty).
    pub fn disconnect(&mut self, peer: u8) -> Recovery {
        self.recover(peer)
    }

    fn recover(&mut self, peer: u8) -> Recovery {
        let Some(idx) = usize::from(peer).checked_sub(1) else {
            return Recovery::default();
        };
        let Some(mut p) = self.peers.get_mut(idx).and_then(Option::take) else {
            return Recovery::default();
        };
        let mut rec = Recovery::default();
        let Ok(entry) = self.seg.peer(peer) else {
            return rec;
        };
        if p.attached {
            entry.goodbye();
        }
        // Drain what we sent and the guest never read, freeing those slots.
        if let Ok(h2g) = self.seg.ring(peer, false) {
            let mut as_consumer = Rx::new(
                self.seg.clone(),
                h2g,
                0,
                p.doorbell.clone(),
                None,
                WakeFlags::new(entry, true),
            );
            rec.drained_frames = as_consumer.drain_all();
        }
        for h in p.tx.take_sent_slots() {
            if self.seg.pool().free(h).is_ok() {
                rec.freed_sent_slots += 1;
            }
        }
        for g2h in [true, false] {
            if let Ok(r) = self.seg.ring(peer, g2h) {
                r.reset();
            }
        }
        rec.reclaimed_slots = self.seg.pool().reclaim_peer_slots(u32::from(peer));
        drop(p);
        if entry.state() == Ok(PeerState::Reserved) {
            let _ = entry.release_reserved();
        } else {
            entry.reset();
        }
        rec
    }

    fn peer_mut(&mut self, peer: u8) -> Result<&mut HostPeer, SessionError> {
        usize::from(peer)
            .checked_sub(1)
            .and_then(|i| self.peers.get_mut(i))
            .and_then(Option::as_mut)
            .ok_or(SessionError::UnknownPeer(peer))
    }

    /// Both halves of a peer's link (e.g. to echo a message without copying it).
    pub fn link(&mut self, peer: u8) -> Result<(&mut Tx, &mut Rx), SessionError> {
        let p = self.peer_mut(peer)?;
        Ok((&mut p.tx, &mut p.rx))
    }

    /// Send a copy of `payload` to `peer` without blocking.
    pub fn try_send(&mut self, peer: u8, payload: &[u8]) -> Result<(), SendError> {
        self.peer_mut(peer)?.tx.try_send(payload)
    }

    /// Reserve a zero-copy send to `peer`.
    pub fn reserve(&mut self, peer: u8, len: usize) -> Result<SendBuf<'_>, SendError> {
        self.peer_mut(peer)?.tx.reserve(len)
    }

    /// Send, waiting up to `timeout` while the ring or pool is full.
    pub fn send(&mut self, peer: u8, payload: &[u8], timeout: Duration) -> Result<(), SendError> {
        let deadline = Instant::now() + timeout;
        loop {
            let p = self.peer_mut(peer)?;
            match p.tx.try_send(payload) {
                Err(e) if e.is_backpressure() => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(SendError::Timeout);
                    }
                    let waited = p.tx.wait_for_space(Some(left.min(SEND_WAIT_SLICE)));
                    if waited.map_err(SessionError::from)? == WaitOutcome::PeerGone {
                        return Err(SendError::PeerGone);
                    }
                }
                other => return other,
            }
        }
    }

    /// Receive the next message from `peer` (zero-copy; released on drop).
    pub fn try_recv(&mut self, peer: u8) -> Result<Option<Message<'_>>, RecvError> {
        self.peer_mut(peer)?.rx.try_recv()
    }

    /// Grow the segment to `new_size` bytes (ftruncate + map + `current_size`) and
    /// ring every guest so it remaps. The base address does not move.
    pub fn grow(&mut self, new_size: u64) -> Result<(), SessionError> {
        self.seg.mapping().grow(new_size)?;
        self.seg.header().set_current_size(new_size);
        for p in self.peers.iter().flatten() {
            let _ = p.doorbell.signal();
        }
        Ok(())
    }

    /// Orderly shutdown: set `host_goodbye`, ring every guest, stop accepting.
    pub fn shutdown(&mut self) {
        if self.shut_down {
            return;
        }
        self.shut_down = true;
        self.seg.header().set_host_goodbye();
        for p in self.peers.iter().flatten() {
            let _ = p.doorbell.signal();
        }
        if let Some((_, path)) = self.listener.take() {
            let _ = std::fs::remove_file(path);
        }
        // Connections still sending their request are closed unanswered.
        self.pending.clear();
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.shutdown();
    }
}
