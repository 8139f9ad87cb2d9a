//! The two halves of a host↔guest link: [`Tx`] writes frames into one BipBuffer,
//! [`Rx`] reads them from the other, zero-copy.
//!
//! Sending routes each payload by size (roam's rule): inline in the ring when it is
//! at most the inline threshold, in a slot of the shared pool when it fits the
//! largest slot (the slot starts with a `u32` length), otherwise in a separately
//! mapped region announced on the mmap control channel. The frame space is granted
//! *before* the payload storage is allocated, so a full ring never strands a slot.
//! After each commit the peer's doorbell is rung.
//!
//! Receiving validates everything the peer wrote (frame structure, slot indices,
//! state, generation and owner, lengths against the slot or mapping) before forming
//! a view; a violation is a [`RecvError::Corrupt`] on this link only. A received
//! message stays *held* until released: the slot is freed first and the ring bytes
//! released second, so a crash in between leaves a frame the host's recovery still
//! sees (a double free is then detected by generation and ignored).

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::SessionError;
use super::frame::{self, Frame, FrameError, Route, RoutePolicy};
use super::mmap_ctrl::{MmapAlloc, MmapAttachments, MmapRegistry};
use super::peer::PeerEntry;
use super::shared::SegmentShared;
use super::var_pool::VarSlotHandle;
use crate::bipbuf::{BipBufRaw, GrantOutcome, ReadOutcome};
use crate::doorbell::{Doorbell, SignalResult};
use crate::wake;

/// How long a receiver retries a frame that names a mapping whose descriptor has
/// not arrived (see `Rx::resolve_mmap`).
const UNKNOWN_MAPPING_GRACE: Duration = Duration::from_millis(20);

/// The longest a blocked send sleeps before it looks again: room freed by another
/// peer (a shared pool slot) rings no doorbell of ours.
pub(crate) const SEND_WAIT_SLICE: Duration = Duration::from_millis(50);

/// Why a send did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The ring has no room for the frame now (backpressure: retry after the peer
    /// consumes; blocking sends wait on the doorbell).
    #[error("ring full")]
    Full,
    /// No slot of a large enough class is free (backpressure).
    #[error("slot pool exhausted for a {0}-byte payload")]
    PoolExhausted(usize),
    /// The payload exceeds the segment's max payload size.
    #[error("payload of {len} bytes exceeds the segment maximum of {max}")]
    TooLarge {
        /// Payload length.
        len: usize,
        /// Segment maximum.
        max: u32,
    },
    /// The peer is gone (doorbell EOF) or the link was shut down.
    #[error("peer gone")]
    PeerGone,
    /// The blocking send timed out.
    #[error("send timed out")]
    Timeout,
    /// Any other failure (corrupt ring, mmap control failure, …).
    #[error(transparent)]
    Session(#[from] SessionError),
}

impl From<super::var_pool::VarPoolError> for SendError {
    fn from(e: super::var_pool::VarPoolError) -> Self {
        SendError::Session(e.into())
    }
}

impl From<super::mmap_ctrl::MmapCtrlError> for SendError {
    fn from(e: super::mmap_ctrl::MmapCtrlError) -> Self {
        SendError::Session(e.into())
    }
}

impl SendError {
    /// Whether the error is transient backpressure (retrying later can succeed).
    pub fn is_backpressure(&self) -> bool {
        matches!(self, SendError::Full | SendError::PoolExhausted(_))
    }
}

/// Why a receive failed.
#[derive(Debug, thiserror::Error)]
pub enum RecvError {
    /// The peer wrote something invalid; the link cannot be trusted any more.
    #[error("peer sent corrupt data: {0}")]
    Corrupt(String),
    /// The peer is gone.
    #[error("peer gone")]
    PeerGone,
    /// The blocking receive timed out.
    #[error("receive timed out")]
    Timeout,
    /// Any other failure.
    #[error(transparent)]
    Session(#[from] SessionError),
}

impl From<FrameError> for RecvError {
    fn from(e: FrameError) -> Self {
        RecvError::Corrupt(e.to_string())
    }
}

/// Where a received payload lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// In the ring.
    Inline,
    /// In a pool slot.
    Slot,
    /// In a separately mapped region.
    Mmap,
}

#[derive(Debug, Clone, Copy)]
enum Pending {
    Inline,
    Slot(VarSlotHandle),
    Mmap(MmapAlloc),
}

/// Where a link's wake-suppression flags live: its peer entry (in the mapping kept
/// alive by the link's `Arc<SegmentShared>`) and which side this process is.
///
/// Protocol (store-buffer / Dekker with SeqCst fences on both sides):
/// - a receiver that will look at its ring before it next sleeps sets its `polling`
///   flag; before sleeping it clears the flag, issues a SeqCst fence and looks at
///   the ring once more;
/// - a sender commits, issues a SeqCst fence and rings the doorbell unless the
///   receiver's flag is set.
///
/// With both fences, either the sender sees the flag cleared (and rings) or the
/// receiver's last look sees the commit: no wake-up is lost. The same holds for
/// "space freed" rings with the sender's `nowait` flag. roam peers never write these
/// bytes (they stay 0, "ring me"), so they are always rung, as they expect.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WakeFlags {
    entry: *const PeerEntry,
    host_side: bool,
}

impl WakeFlags {
    pub(crate) fn new(entry: &PeerEntry, host_side: bool) -> WakeFlags {
        WakeFlags { entry, host_side }
    }

    fn entry(&self) -> &PeerEntry {
        // SAFETY: the entry lies in the segment mapping, which is address-stable and
        // kept alive by the Arc<SegmentShared> held by the same Tx/Rx as this value.
        unsafe { &*self.entry }
    }
}

/// The sending half of a link.
#[derive(Debug)]
pub struct Tx {
    seg: Arc<SegmentShared>,
    ring: BipBufRaw,
    /// Owner id written into allocated slots (0 = host, else the guest's peer id).
    owner: u32,
    doorbell: Arc<Doorbell>,
    mmap: MmapRegistry,
    /// Slots this side sent and the peer has not necessarily freed (host side uses it
    /// to free them if the peer dies holding them).
    sent_slots: Vec<VarSlotHandle>,
    track_sent: bool,
    /// Token of the outstanding reservation, if any.
    outstanding: Option<u64>,
    next_token: u64,
    wake: WakeFlags,
    /// The consumer's `read` index when a send last found the ring full (moved on
    /// each time [`Tx::space_maybe_freed`] reports a release; cleared by the next
    /// reservation attempt).
    last_full_read: Cell<Option<u32>>,
}

/// A zero-copy send reservation that does not borrow the link (for the C, Python
/// and Swift bindings): fill `len` bytes at [`Reservation::payload_ptr`], then pass
/// it to [`Tx::commit_reserved`] or [`Tx::cancel_reserved`]. A link has at most one
/// outstanding reservation (ring grants are sequential); Rust code uses [`SendBuf`].
#[derive(Debug)]
pub struct Reservation {
    grant_off: u32,
    entry_len: u32,
    payload: *mut u8,
    len: usize,
    pending: Pending,
    token: u64,
}

// SAFETY: a Reservation is plain data (offsets, a pointer into shared memory the link
// owns, a token); using it requires `&mut Tx` of the link that issued it.
unsafe impl Send for Reservation {}

impl Reservation {
    /// Where to write the payload (valid for [`Reservation::len`] bytes until the
    /// reservation is committed or cancelled on its link).
    pub fn payload_ptr(&self) -> *mut u8 {
        self.payload
    }

    /// Reserved payload length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the reservation is for an empty payload.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A reservation for a zero-copy send: write the payload into
/// [`SendBuf::bytes_mut`], then [`SendBuf::commit`]. Dropping it without commit
/// abandons the send (the slot or mapping space is returned; the granted ring bytes
/// are simply not committed).
#[derive(Debug)]
pub struct SendBuf<'a> {
    tx: &'a mut Tx,
    res: Option<Reservation>,
}

impl Tx {
    pub(crate) fn new(
        seg: Arc<SegmentShared>,
        ring: BipBufRaw,
        owner: u32,
        doorbell: Arc<Doorbell>,
        mmap: MmapRegistry,
        track_sent: bool,
        wake: WakeFlags,
    ) -> Tx {
        Tx {
            seg,
            ring,
            owner,
            doorbell,
            mmap,
            sent_slots: Vec::new(),
            track_sent,
            outstanding: None,
            next_token: 1,
            wake,
            last_full_read: Cell::new(None),
        }
    }

    fn policy(&self) -> RoutePolicy<'_> {
        RoutePolicy::from_header(self.seg.header(), self.seg.size_classes())
    }

    /// Reserve room for a `len`-byte payload (zero-copy send).
    pub fn reserve(&mut self, len: usize) -> Result<SendBuf<'_>, SendError> {
        let res = self.reserve_raw(len)?;
        Ok(SendBuf {
            tx: self,
            res: Some(res),
        })
    }

    /// Reserve room for a `len`-byte payload without borrowing the link (bindings).
    /// Fails with [`SendError::Session`]`(`[`SessionError::ReservationPending`]`)` if
    /// a reservation is already outstanding.
    pub fn reserve_raw(&mut self, len: usize) -> Result<Reservation, SendError> {
        if self.outstanding.is_some() {
            return Err(SessionError::ReservationPending.into());
        }
        // A new attempt: whatever an earlier one found full is its own business.
        self.last_full_read.set(None);
        if self.seg.is_truncated() {
            return Err(SessionError::SegmentTruncated.into());
        }
        let route = frame::route(len, &self.policy()).map_err(|e| match e {
            FrameError::PayloadTooLarge { len, max } => SendError::TooLarge { len, max },
            other => SendError::Session(SessionError::Frame(other)),
        })?;
        // Payload storage first (so pool exhaustion can fall back to a mapping, which
        // changes the frame size), then the frame space.
        let pending = match route {
            Route::Inline => Pending::Inline,
            Route::SlotRef { .. } => {
                let need = u32::try_from(len + 4)
                    .map_err(|_| SendError::TooLarge { len, max: u32::MAX })?;
                match self.seg.pool().try_alloc(need, self.owner)? {
                    Some(h) => Pending::Slot(h),
                    // Every slot that fits is in flight. Waiting for one can deadlock
                    // request/response peers that each hold slots while waiting for
                    // the other (roam returns WouldBlock here); a mapping always works.
                    None => Pending::Mmap(self.alloc_mmap(len)?),
                }
            }
            Route::MmapRef => Pending::Mmap(self.alloc_mmap(len)?),
        };
        let entry_len = match pending {
            Pending::Inline => frame::inline_entry_len(len).map_err(SessionError::Frame)?,
            Pending::Slot(_) => frame::SLOT_REF_ENTRY_SIZE,
            Pending::Mmap(_) => frame::MMAP_REF_ENTRY_SIZE,
        } as u32;
        let grant_off = match self.ring.try_grant_outcome(entry_len) {
            Ok(GrantOutcome::Granted { offset }) => offset,
            other => {
                self.last_full_read.set(Some(self.ring.load_read()));
                self.abandon(pending);
                return Err(match other {
                    Ok(GrantOutcome::FullWrapped) => {
                        // The wrap is taken but no commit will follow to wake the
                        // consumer, which must read once to reset the cursors (§13
                        // stall): wake it.
                        let _ = self.doorbell.signal();
                        SendError::Full
                    }
                    Err(e) => SessionError::from(e).into(),
                    _ => SendError::Full,
                });
            }
        };
        let payload = match pending {
            // SAFETY: the grant gives this producer exclusive use of
            // [grant_off, grant_off + entry_len) of the ring's data, and the payload
            // (len <= entry_len - 8) starts after the 8-byte header.
            Pending::Inline => unsafe {
                self.ring
                    .data_ptr()
                    .add(grant_off as usize + frame::FRAME_HEADER_SIZE)
            },
            Pending::Slot(h) => match self.seg.pool().payload_ptr(h) {
                // SAFETY: the slot is at least len + 4 bytes (alloc picked a class with
                // slot_size >= len + 4) and is exclusively ours until sent.
                Ok(p) => unsafe { p.add(4) },
                Err(e) => {
                    self.abandon(pending);
                    return Err(SessionError::from(e).into());
                }
            },
            Pending::Mmap(a) => a.ptr,
        };
        let token = self.next_token;
        self.next_token += 1;
        self.outstanding = Some(token);
        Ok(Reservation {
            grant_off,
            entry_len,
            payload,
            len,
            pending,
            token,
        })
    }

    fn check_token(&mut self, r: &Reservation) -> Result<(), SendError> {
        if self.outstanding != Some(r.token) {
            return Err(SessionError::Internal("reservation does not belong to this link").into());
        }
        self.outstanding = None;
        Ok(())
    }

    /// Abandon a reservation: its slot or mapping space is returned and nothing is
    /// sent (the granted ring bytes are simply not committed).
    pub fn cancel_reserved(&mut self, r: Reservation) -> Result<(), SendError> {
        self.check_token(&r)?;
        self.abandon(r.pending);
        Ok(())
    }

    /// Publish a reserved message to the peer and ring its doorbell.
    pub fn commit_reserved(&mut self, r: Reservation) -> Result<(), SendError> {
        self.check_token(&r)?;
        // SAFETY: [grant_off, grant_off + entry_len) was granted to us and is inside
        // the ring's data area.
        let entry = unsafe {
            std::slice::from_raw_parts_mut(
                self.ring.data_ptr().add(r.grant_off as usize),
                r.entry_len as usize,
            )
        };
        let res = match r.pending {
            Pending::Inline => frame::encode_inline_header(entry, r.len),
            Pending::Slot(h) => {
                // The length prefix at the start of the slot.
                // SAFETY: payload - 4 is the slot start, which we own; 4 bytes fit.
                unsafe {
                    std::ptr::write_unaligned(
                        r.payload.sub(4).cast::<u32>(),
                        (r.len as u32).to_le(),
                    )
                };
                frame::encode_slot_ref(entry, h.class_idx, h.extent_idx, h.slot_idx, h.generation)
            }
            Pending::Mmap(a) => frame::encode_mmap_ref(
                entry,
                a.map_id,
                a.map_generation,
                a.map_offset,
                r.len as u32,
            ),
        };
        if let Err(e) = res {
            self.abandon(r.pending);
            return Err(SessionError::Frame(e).into());
        }
        if let Err(e) = self.ring.commit(r.entry_len) {
            self.abandon(r.pending);
            return Err(SessionError::from(e).into());
        }
        // The grant, the slot or this commit may have been the first touch of pages a
        // truncation took away (they then read and write a private zero page): the
        // message went nowhere, so do not report success.
        if self.seg.is_truncated() {
            return Err(SessionError::SegmentTruncated.into());
        }
        match r.pending {
            Pending::Slot(h) => self.remember_sent(h),
            // The receiver maps the region itself; bytes are never reused, so the
            // sender's lease ends at commit and fully used regions are dropped.
            Pending::Mmap(a) => self.release_mmap(&a),
            Pending::Inline => {}
        }
        self.notify()
    }

    /// Room for a payload in a mapped region. A full control socket (the receiver
    /// has not yet taken the previous regions' descriptors) is backpressure, like a
    /// full ring: nothing was allocated, and the receiver drains the socket as it
    /// reads the frames that reference those regions.
    fn alloc_mmap(&mut self, len: usize) -> Result<MmapAlloc, SendError> {
        match self.mmap.alloc(len) {
            Ok(a) => Ok(a),
            Err(super::mmap_ctrl::MmapCtrlError::WouldBlock) => {
                self.last_full_read.set(Some(self.ring.load_read()));
                Err(SendError::Full)
            }
            // The receiver's end of the control socket is gone with its process.
            Err(super::mmap_ctrl::MmapCtrlError::PeerClosed) => Err(SendError::PeerGone),
            Err(e) => Err(e.into()),
        }
    }

    /// Return the payload storage of a send that will not be committed.
    fn abandon(&mut self, pending: Pending) {
        match pending {
            Pending::Slot(h) => {
                let _ = self.seg.pool().free_allocated(h);
            }
            Pending::Mmap(a) => self.release_mmap(&a),
            Pending::Inline => {}
        }
    }

    /// Copy `payload` into the segment and send it (non-blocking).
    pub fn try_send(&mut self, payload: &[u8]) -> Result<(), SendError> {
        let mut buf = self.reserve(payload.len())?;
        buf.bytes_mut().copy_from_slice(payload);
        buf.commit()
    }

    /// Tell the receiver about new data: ring its doorbell unless it busy-polls
    /// (see [`crate::wake`]'s protocol). A dead peer is [`SendError::PeerGone`].
    pub fn notify(&self) -> Result<(), SendError> {
        if !wake::should_wake(self.wake.entry().rx_polling(!self.wake.host_side)) {
            return Ok(());
        }
        self.ring_doorbell()
    }

    /// Ring the peer's doorbell unconditionally.
    pub fn ring_doorbell(&self) -> Result<(), SendError> {
        match self.doorbell.signal() {
            SignalResult::Sent | SignalResult::BufferFull => Ok(()),
            SignalResult::PeerDead => Err(SendError::PeerGone),
        }
    }

    /// Declare whether this sender is about to wait for room in the ring. Waiting
    /// (`true`) asks the receiver to ring on every release and issues a SeqCst
    /// fence; afterwards check [`Tx::space_maybe_freed`] before sleeping.
    pub fn set_waiting(&self, waiting: bool) {
        wake::announce(self.wake.entry().tx_nowait(self.wake.host_side), !waiting);
    }

    /// Whether the consumer released bytes since the last send attempt found the
    /// ring full, or since this last returned `true`. Each release is reported once
    /// (edge-triggered): a caller that does not retry the send is not woken again
    /// until the consumer releases more, so an idle `Host::poll` keeps sleeping.
    pub fn space_maybe_freed(&self) -> bool {
        let Some(mark) = self.last_full_read.get() else {
            return false;
        };
        let read = self.ring.load_read();
        if read == mark {
            return false;
        }
        self.last_full_read.set(Some(read));
        true
    }

    /// After a send found the ring or pool full: sleep on the doorbell until the
    /// receiver may have made room, up to `timeout` (None = forever). Returns at
    /// once when room may already have been freed. Only room counts: a sender that
    /// does not read its own receive ring must still sleep here, and so still learn
    /// from the doorbell's hang-up that the peer died.
    pub fn wait_for_space(
        &self,
        timeout: Option<Duration>,
    ) -> Result<crate::doorbell::WaitOutcome, crate::doorbell::DoorbellError> {
        self.set_waiting(true);
        let r = if self.space_maybe_freed() {
            Ok(crate::doorbell::WaitOutcome::Signaled)
        } else {
            self.doorbell.wait(timeout)
        };
        self.set_waiting(false);
        r
    }

    /// Slots sent and possibly still held by the peer (pruned of freed ones).
    pub(crate) fn take_sent_slots(&mut self) -> Vec<VarSlotHandle> {
        std::mem::take(&mut self.sent_slots)
    }

    fn remember_sent(&mut self, h: VarSlotHandle) {
        if !self.track_sent {
            return;
        }
        if self.sent_slots.len() >= 4096 {
            // Keep only handles whose allocation is still live (same generation).
            let pool = self.seg.pool();
            self.sent_slots
                .retain(|s| pool.validate_ref(*s, Some(0)).is_ok());
        }
        self.sent_slots.push(h);
    }

    fn release_mmap(&mut self, a: &MmapAlloc) {
        let _ = self.mmap.release(a);
        self.mmap.reclaim();
    }

    /// The ring this side produces into.
    pub fn ring(&self) -> &BipBufRaw {
        &self.ring
    }

    /// The doorbell shared with the peer.
    pub fn doorbell(&self) -> &Arc<Doorbell> {
        &self.doorbell
    }
}

impl SendBuf<'_> {
    fn res(&self) -> &Reservation {
        self.res
            .as_ref()
            .expect("SendBuf holds its reservation until commit or drop")
    }

    /// The payload bytes to fill (exactly the reserved length).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        let r = self.res();
        // SAFETY: `payload` points to `len` bytes exclusively reserved for this send
        // (ring grant, freshly allocated slot, or fresh mmap bump allocation), and
        // `&mut self` makes this the only view.
        unsafe { std::slice::from_raw_parts_mut(r.payload, r.len) }
    }

    /// Raw pointer to the payload bytes.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.res().payload
    }

    /// Reserved payload length.
    pub fn len(&self) -> usize {
        self.res().len
    }

    /// Whether the reservation is for an empty payload.
    pub fn is_empty(&self) -> bool {
        self.res().len == 0
    }

    /// Publish the message to the peer and ring its doorbell.
    pub fn commit(mut self) -> Result<(), SendError> {
        let r = self
            .res
            .take()
            .expect("SendBuf holds its reservation until commit or drop");
        self.tx.commit_reserved(r)
    }
}

impl Drop for SendBuf<'_> {
    fn drop(&mut self) {
        if let Some(r) = self.res.take() {
            let _ = self.tx.cancel_reserved(r);
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Held {
    consumed: u32,
    ptr: *const u8,
    len: usize,
    kind: MessageKind,
    slot: Option<VarSlotHandle>,
    mmap: Option<(u32, u32)>,
}

/// A received payload exposed as a raw pointer + length, valid until
/// [`Rx::release`] (for the C ABI and other bindings; Rust code uses [`Message`]).
#[derive(Debug, Clone, Copy)]
pub struct RawMessage {
    /// First payload byte.
    pub ptr: *const u8,
    /// Payload length.
    pub len: usize,
    /// Where the payload lives.
    pub kind: MessageKind,
}

/// The receiving half of a link.
#[derive(Debug)]
pub struct Rx {
    seg: Arc<SegmentShared>,
    ring: BipBufRaw,
    /// The sender's owner id (slots it sends must carry it).
    sender_owner: u32,
    doorbell: Arc<Doorbell>,
    /// None only for the host's recovery drain, which never resolves mappings.
    mmap: Option<MmapAttachments>,
    held: Option<Held>,
    wake: WakeFlags,
}

impl Rx {
    pub(crate) fn new(
        seg: Arc<SegmentShared>,
        ring: BipBufRaw,
        sender_owner: u32,
        doorbell: Arc<Doorbell>,
        mmap: Option<MmapAttachments>,
        wake: WakeFlags,
    ) -> Rx {
        Rx {
            seg,
            ring,
            sender_owner,
            doorbell,
            mmap,
            held: None,
            wake,
        }
    }

    /// Peek the next message without copying. Calling it again before
    /// [`Rx::release`] returns the same message.
    pub fn try_recv_raw(&mut self) -> Result<Option<RawMessage>, RecvError> {
        if let Some(h) = self.held {
            return Ok(Some(RawMessage {
                ptr: h.ptr,
                len: h.len,
                kind: h.kind,
            }));
        }
        if self.seg.is_truncated() {
            return Err(SessionError::SegmentTruncated.into());
        }
        let outcome = self.ring.try_read_outcome();
        // Reading the cursors may have been the first touch of truncated pages (they
        // read as zeros, i.e. "empty"): report the truncation instead.
        if self.seg.is_truncated() {
            return Err(SessionError::SegmentTruncated.into());
        }
        let (off, avail) = match outcome.map_err(|e| RecvError::Corrupt(e.to_string()))? {
            ReadOutcome::Data { offset, len } => (offset, len),
            ReadOutcome::Empty => return Ok(None),
            ReadOutcome::EmptyAfterReset => {
                // The reset freed room a producer may be waiting for: wake it.
                let _ = self.doorbell.signal();
                return Ok(None);
            }
        };
        // SAFETY: [off, off + avail) is committed data owned by the consumer until
        // released (BipBufRaw validated it against the capacity).
        let bytes = unsafe {
            std::slice::from_raw_parts(self.ring.data_ptr().add(off as usize), avail as usize)
        };
        // Frames never straddle the wrap and are committed whole, so an incomplete
        // frame here means a corrupt peer, not "wait for more".
        let (frame, consumed) = frame::decode(bytes)?;
        let consumed = consumed as u32;
        let held = match frame {
            Frame::Inline { payload } => Held {
                consumed,
                ptr: payload.as_ptr(),
                len: payload.len(),
                kind: MessageKind::Inline,
                slot: None,
                mmap: None,
            },
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
                let (p, slot_size) = self
                    .seg
                    .pool()
                    .validate_ref(h, Some(self.sender_owner))
                    .map_err(|e| RecvError::Corrupt(e.to_string()))?;
                if slot_size < 4 {
                    return Err(RecvError::Corrupt(format!(
                        "slot class of {slot_size} bytes cannot hold a length prefix"
                    )));
                }
                // SAFETY: validate_ref checked that the whole slot [p, p + slot_size)
                // lies inside the pool, and slot_size >= 4 was just checked.
                let len = u32::from_le(unsafe { std::ptr::read_unaligned(p.cast::<u32>()) });
                let len = frame::check_slot_payload_len(len, slot_size)?;
                // SAFETY: 4 + len <= slot_size (checked above), inside the validated slot.
                let ptr = unsafe { p.add(4) };
                Held {
                    consumed,
                    ptr,
                    len,
                    kind: MessageKind::Slot,
                    slot: Some(h),
                    mmap: None,
                }
            }
            Frame::MmapRef {
                map_id,
                map_generation,
                map_offset,
                payload_len,
            } => {
                let p = self.resolve_mmap(map_id, map_generation, map_offset, payload_len)?;
                Held {
                    consumed,
                    ptr: p,
                    len: payload_len as usize,
                    kind: MessageKind::Mmap,
                    slot: None,
                    mmap: Some((map_id, map_generation)),
                }
            }
        };
        self.held = Some(held);
        Ok(Some(RawMessage {
            ptr: held.ptr,
            len: held.len,
            kind: held.kind,
        }))
    }

    fn resolve_mmap(
        &mut self,
        id: u32,
        generation: u32,
        off: u64,
        len: u32,
    ) -> Result<*const u8, RecvError> {
        // The attach datagram is sent before the frame (roam does the same: "each fd
        // is sent once, before the first MMAP_REF that uses it"), and a Unix
        // datagram is queued at the receiver once its send returns, so one drain
        // finds it. Retry only briefly: roam waits up to 2 s, but a frame naming a
        // mapping that never comes is a hostile peer, and waiting here blocks the
        // receiving thread (a host's poll loop, serving every other guest).
        let Some(mmap) = self.mmap.as_mut() else {
            return Err(RecvError::Corrupt(
                "mmap ref on a link without a control channel".into(),
            ));
        };
        let deadline = Instant::now() + UNKNOWN_MAPPING_GRACE;
        loop {
            match mmap.resolve(id, generation, off, len) {
                Ok(p) => {
                    mmap.lease(id, generation, off, len);
                    return Ok(p);
                }
                Err(super::mmap_ctrl::ResolveError::Unknown) if Instant::now() < deadline => {
                    mmap.drain_control()
                        .map_err(|e| RecvError::Corrupt(e.to_string()))?;
                    if mmap.resolve(id, generation, off, len).is_err() {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
                Err(e) => {
                    return Err(RecvError::Corrupt(format!(
                        "mmap ref ({id},{generation},{off},{len}): {e}"
                    )));
                }
            }
        }
    }

    /// Release the held message: free its slot (or mapping lease), then release its
    /// ring bytes and ring the sender's doorbell (it may be waiting for space).
    pub fn release(&mut self) -> Result<(), RecvError> {
        let Some(h) = self.held.take() else {
            return Ok(());
        };
        let mut first_err = None;
        if let Some(slot) = h.slot {
            if let Err(e) = self.seg.pool().free(slot) {
                first_err = Some(RecvError::Corrupt(format!("freeing received slot: {e}")));
            }
        }
        if let (Some((id, generation)), Some(mmap)) = (h.mmap, self.mmap.as_mut()) {
            mmap.unlease(id, generation, self.seg.max_slot_payload());
        }
        self.ring
            .release(h.consumed)
            .map_err(|e| RecvError::Corrupt(e.to_string()))?;
        // Ring only a sender that waits for room (see crate::wake).
        if wake::should_wake(self.wake.entry().tx_nowait(!self.wake.host_side)) {
            let _ = self.doorbell.signal();
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Receive the next message as a zero-copy view (released when dropped).
    pub fn try_recv(&mut self) -> Result<Option<Message<'_>>, RecvError> {
        match self.try_recv_raw()? {
            Some(raw) => Ok(Some(Message { rx: self, raw })),
            None => Ok(None),
        }
    }

    /// Declare whether this receiver busy-polls its ring (senders then skip the
    /// doorbell). Clearing it issues a SeqCst fence: look at the ring once more
    /// ([`Rx::is_empty`]) before sleeping.
    pub fn set_polling(&self, polling: bool) {
        wake::announce(self.wake.entry().rx_polling(self.wake.host_side), polling);
    }

    /// Whether a message is held (peeked and not yet released).
    pub fn is_holding(&self) -> bool {
        self.held.is_some()
    }

    /// Whether the ring has nothing to read.
    pub fn is_empty(&self) -> bool {
        self.held.is_none() && self.ring.is_empty()
    }

    /// Drop everything in the ring, freeing slots (crash recovery). Returns how
    /// many frames were drained. Corrupt frames end the drain.
    pub(crate) fn drain_all(&mut self) -> usize {
        let _ = self.release();
        let mut n = 0;
        while let Ok(Some((off, avail))) = self.ring.try_read() {
            // SAFETY: committed consumer-owned bytes, as in try_recv_raw.
            let bytes = unsafe {
                std::slice::from_raw_parts(self.ring.data_ptr().add(off as usize), avail as usize)
            };
            let Ok((frame, consumed)) = frame::decode(bytes) else {
                break;
            };
            if let Frame::SlotRef {
                class_idx,
                extent_idx,
                slot_idx,
                generation,
            } = frame
            {
                let _ = self.seg.pool().free(VarSlotHandle {
                    class_idx,
                    extent_idx,
                    slot_idx,
                    generation,
                });
            }
            if self.ring.release(consumed as u32).is_err() {
                break;
            }
            n += 1;
        }
        n
    }

    /// The ring this side consumes from.
    pub fn ring(&self) -> &BipBufRaw {
        &self.ring
    }
}

/// A received message: a zero-copy view of the payload in shared memory. Dropping
/// it frees the slot / releases the ring bytes.
///
/// The bytes live in memory the sender can still write to; a sender that follows
/// the protocol never does while the message is held.
#[derive(Debug)]
pub struct Message<'a> {
    rx: &'a mut Rx,
    raw: RawMessage,
}

impl Message<'_> {
    /// Where the payload lives.
    pub fn kind(&self) -> MessageKind {
        self.raw.kind
    }

    /// Release explicitly, reporting a failure to free (dropping ignores it).
    pub fn release(self) -> Result<(), RecvError> {
        let mut this = std::mem::ManuallyDrop::new(self);
        this.rx.release()
    }
}

impl std::ops::Deref for Message<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the view is valid until release, which needs `&mut Rx`, which this
        // message borrows exclusively; len was validated against the slot/ring/mapping.
        unsafe { std::slice::from_raw_parts(self.raw.ptr, self.raw.len) }
    }
}

impl Drop for Message<'_> {
    fn drop(&mut self) {
        let _ = self.rx.release();
    }
}
