//! The mmap control channel (notes §7): how a host hands a guest the regions that
//! MMAP_REF frames point into.
//!
//! The channel is a non-blocking `socketpair(AF_UNIX, SOCK_DGRAM)`. Each datagram is
//! exactly 16 bytes — map_id u32 @0, map_generation u32 @4, mapping_length u64 @8 —
//! with exactly one fd in `SCM_RIGHTS`. A body of the wrong length, `MSG_CTRUNC`, or a
//! missing fd is a terminal error for the link ([`MmapCtrlError::is_terminal`]).
//!
//! - Host: [`MmapRegistry`] bump-allocates payloads inside memfd-backed regions of
//!   1 MiB (or one region per payload larger than that), numbers regions from 0
//!   with generation 0 (as roam), and sends a region's fd once, before the first
//!   MMAP_REF that uses it (i.e. inside [`MmapRegistry::alloc`]). Leases are
//!   counted in-process; bytes are never reused, and a region the allocator has
//!   moved past is dropped by [`MmapRegistry::reclaim`] once all its leases are
//!   released (the guest keeps its own mapping, as with roam).
//! - Guest: [`MmapAttachments`] drains the channel (until `EAGAIN` or EOF), maps
//!   each fd `MAP_SHARED` read-only for `mapping_length` bytes after checking the
//!   file is that large, and resolves `(map_id, generation, offset, len)` with
//!   roam's four error codes ([`ResolveError::code`]).

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};

use crate::segment::bootstrap::scm;

/// Size of an attach datagram.
pub const ATTACH_MSG_LEN: usize = 16;
/// Default size of a host region (1 MiB).
pub const DEFAULT_REGION_SIZE: usize = 1 << 20;
/// Alignment of payloads inside a host region.
pub const PAYLOAD_ALIGN: usize = 64;

/// Errors of the mmap control channel (everything but [`ResolveError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MmapCtrlError {
    /// The datagram queue is full (send) — retry later; not terminal.
    #[error("mmap control socket would block")]
    WouldBlock,
    /// The other end closed the channel.
    #[error("mmap control peer closed")]
    PeerClosed,
    /// A datagram of the wrong length (terminal).
    #[error("mmap attach message of {0} bytes (expected 16)")]
    BadLength(usize),
    /// `MSG_CTRUNC` (terminal).
    #[error("mmap attach control data truncated (MSG_CTRUNC)")]
    ControlTruncated,
    /// No fd, or more than one, with the message (terminal).
    #[error("mmap attach message carried {0} fds (expected 1)")]
    FdCount(usize),
    /// `mapping_length` is 0 or does not fit in memory (terminal).
    #[error("mmap attach for map {map_id}: unusable mapping_length {mapping_length}")]
    BadMappingLength {
        /// The map id.
        map_id: u32,
        /// The length received.
        mapping_length: u64,
    },
    /// The file is smaller than `mapping_length` (terminal).
    #[error(
        "mmap attach for map {map_id}: file has {file_len} bytes, mapping needs {mapping_length}"
    )]
    FileTooSmall {
        /// The map id.
        map_id: u32,
        /// `fstat` size.
        file_len: u64,
        /// The length received.
        mapping_length: u64,
    },
    /// The same `(map_id, generation)` was attached twice (terminal: pointers into
    /// the first mapping may still be in use).
    #[error("mmap ({map_id}, {map_generation}) attached twice")]
    Duplicate {
        /// The map id.
        map_id: u32,
        /// The generation.
        map_generation: u32,
    },
    /// An allocation request that cannot be satisfied (0 bytes, more than
    /// `u32::MAX`, or map ids exhausted).
    #[error("mmap allocation refused: {0}")]
    BadAlloc(&'static str),
    /// A release for a region or lease the registry does not have.
    #[error("no lease to release in map {0}")]
    UnknownLease(u32),
    /// A system call failed.
    #[error("mmap control: {0}")]
    Io(#[from] Errno),
}

impl MmapCtrlError {
    /// Whether the link must be torn down (protocol violations and fatal I/O).
    pub fn is_terminal(&self) -> bool {
        !matches!(
            self,
            MmapCtrlError::WouldBlock | MmapCtrlError::BadAlloc(_) | MmapCtrlError::UnknownLease(_)
        )
    }
}

fn io_errno(e: &std::io::Error) -> MmapCtrlError {
    MmapCtrlError::Io(e.raw_os_error().map_or(Errno::EIO, Errno::from_raw))
}

/// Why an mmap reference could not be resolved (roam's −1..−4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// Invalid arguments (−1): the offset does not fit this platform's address space.
    #[error("invalid mmap reference arguments")]
    BadArgs,
    /// No mapping with this `(map_id, generation)` (−2).
    #[error("unknown mapping")]
    Unknown,
    /// `offset + len` overflows (−3).
    #[error("mmap reference offset + length overflows")]
    Overflow,
    /// `offset + len` is past the end of the mapping (−4).
    #[error("mmap reference out of bounds")]
    OutOfBounds,
}

impl ResolveError {
    /// roam's C return code.
    pub fn code(&self) -> i32 {
        match self {
            ResolveError::BadArgs => -1,
            ResolveError::Unknown => -2,
            ResolveError::Overflow => -3,
            ResolveError::OutOfBounds => -4,
        }
    }
}

/// The 16-byte attach message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmapAttachMessage {
    /// Map id.
    pub map_id: u32,
    /// Map generation.
    pub map_generation: u32,
    /// Bytes to map.
    pub mapping_length: u64,
}

impl MmapAttachMessage {
    /// Wire bytes.
    pub fn to_bytes(&self) -> [u8; ATTACH_MSG_LEN] {
        let mut b = [0u8; ATTACH_MSG_LEN];
        b[0..4].copy_from_slice(&self.map_id.to_le_bytes());
        b[4..8].copy_from_slice(&self.map_generation.to_le_bytes());
        b[8..16].copy_from_slice(&self.mapping_length.to_le_bytes());
        b
    }

    /// Parse wire bytes.
    pub fn from_bytes(b: &[u8; ATTACH_MSG_LEN]) -> MmapAttachMessage {
        MmapAttachMessage {
            map_id: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            map_generation: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            mapping_length: u64::from_le_bytes([
                b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15],
            ]),
        }
    }
}

/// A new control channel: `(host end, guest end)`, non-blocking, close-on-exec.
pub fn control_socketpair() -> Result<(OwnedFd, OwnedFd), MmapCtrlError> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::Datagram,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    set_nonblocking(a.as_fd())?;
    set_nonblocking(b.as_fd())?;
    Ok((a, b))
}

/// Set `O_NONBLOCK` on `fd`.
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> Result<(), MmapCtrlError> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

fn map_send_err(e: Errno) -> MmapCtrlError {
    match e {
        Errno::EAGAIN | Errno::ENOBUFS => MmapCtrlError::WouldBlock,
        Errno::EPIPE | Errno::ECONNRESET | Errno::ECONNREFUSED | Errno::ENOTCONN => {
            MmapCtrlError::PeerClosed
        }
        other => MmapCtrlError::Io(other),
    }
}

/// Send one attach message with `fd` (roam's `roam_mmap_control_send`).
pub fn send_attach(
    ctl: BorrowedFd<'_>,
    fd: BorrowedFd<'_>,
    map_id: u32,
    map_generation: u32,
    mapping_length: u64,
) -> Result<(), MmapCtrlError> {
    let msg = MmapAttachMessage {
        map_id,
        map_generation,
        mapping_length,
    }
    .to_bytes();
    let n = scm::send_with_fds(ctl, &msg, &[fd.as_raw_fd()]).map_err(map_send_err)?;
    if n != ATTACH_MSG_LEN {
        return Err(MmapCtrlError::BadLength(n));
    }
    Ok(())
}

/// Outcome of one receive on the control channel.
#[derive(Debug)]
pub enum AttachRecv {
    /// A well-formed message and its fd.
    Message(MmapAttachMessage, OwnedFd),
    /// Nothing queued (`EAGAIN`).
    WouldBlock,
    /// The host closed the channel.
    Eof,
}

/// Receive one attach message (non-blocking socket). Any fd received with a bad
/// message is closed.
pub fn recv_attach(ctl: BorrowedFd<'_>) -> Result<AttachRecv, MmapCtrlError> {
    // One byte more than a message, so a longer datagram shows as too long.
    let mut buf = [0u8; ATTACH_MSG_LEN + 1];
    let r = match scm::recv_with_fds(ctl, &mut buf, 1) {
        Ok(r) => r,
        Err(Errno::EAGAIN) => return Ok(AttachRecv::WouldBlock),
        Err(Errno::ECONNRESET) => return Ok(AttachRecv::Eof),
        Err(e) => return Err(MmapCtrlError::Io(e)),
    };
    let mut fds = r.fds;
    if r.ctrunc {
        return Err(MmapCtrlError::ControlTruncated);
    }
    if r.bytes == 0 && fds.is_empty() {
        return Ok(AttachRecv::Eof);
    }
    if r.truncated || r.bytes != ATTACH_MSG_LEN {
        return Err(MmapCtrlError::BadLength(r.bytes));
    }
    if fds.len() != 1 {
        return Err(MmapCtrlError::FdCount(fds.len()));
    }
    let msg = MmapAttachMessage::from_bytes(
        buf.first_chunk::<ATTACH_MSG_LEN>()
            .ok_or(MmapCtrlError::BadLength(r.bytes))?,
    );
    let fd = fds.pop().ok_or(MmapCtrlError::FdCount(0))?;
    Ok(AttachRecv::Message(msg, fd))
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as usize } else { 4096 }
}

/// An anonymous shareable file of `len` bytes (a memfd on Linux/Android/FreeBSD, an
/// unlinked temp file elsewhere).
fn anon_file(len: usize) -> Result<File, MmapCtrlError> {
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    let file = {
        use nix::sys::memfd::{MFdFlags, memfd_create};
        File::from(memfd_create(c"roam-shm-mmap", MFdFlags::MFD_CLOEXEC)?)
    };
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    let file = {
        use std::sync::atomic::{AtomicU64, Ordering};
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "roam-shm-mmap-{}-{}",
            std::process::id(),
            // Relaxed: a unique counter, nothing is published with it.
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| io_errno(&e))?;
        std::fs::remove_file(&path).map_err(|e| io_errno(&e))?;
        f
    };
    file.set_len(len as u64).map_err(|e| io_errno(&e))?;
    Ok(file)
}

struct HostRegion {
    map_id: u32,
    file: File,
    map: memmap2::MmapMut,
    used: usize,
    delivered: bool,
    leases: u32,
    retired: bool,
}

/// One payload allocation in a host region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmapAlloc {
    /// Map id (goes in the MMAP_REF frame).
    pub map_id: u32,
    /// Map generation (always 0).
    pub map_generation: u32,
    /// Offset of the payload in the region.
    pub map_offset: u64,
    /// Payload length.
    pub len: usize,
    /// Where the host writes the payload; valid for `len` bytes until the lease is
    /// released and [`MmapRegistry::reclaim`] runs.
    pub ptr: *mut u8,
}

/// Host side: payload regions for one guest link.
pub struct MmapRegistry {
    ctl: OwnedFd,
    region_size: usize,
    /// A region with no more than this many bytes left is retired (never allocated
    /// from again); see [`MmapRegistry::set_retire_threshold`].
    retire_below: usize,
    next_map_id: u32,
    regions: Vec<HostRegion>,
}

impl core::fmt::Debug for MmapRegistry {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MmapRegistry")
            .field("ctl", &self.ctl)
            .field("region_size", &self.region_size)
            .field("next_map_id", &self.next_map_id)
            .field("regions", &self.regions.len())
            .finish()
    }
}

impl MmapRegistry {
    /// A registry sending attachments on `ctl` (the host end of
    /// [`control_socketpair`]), with 1 MiB regions.
    pub fn new(ctl: OwnedFd) -> MmapRegistry {
        Self::with_region_size(ctl, DEFAULT_REGION_SIZE)
    }

    /// As [`new`](Self::new) with another default region size (rounded up to a page).
    pub fn with_region_size(ctl: OwnedFd, region_size: usize) -> MmapRegistry {
        let page = page_size();
        let region_size = region_size.max(1).div_ceil(page).saturating_mul(page);
        MmapRegistry {
            ctl,
            region_size,
            retire_below: 0,
            next_map_id: 0,
            regions: Vec::new(),
        }
    }

    fn new_region(&mut self, len: usize) -> Result<usize, MmapCtrlError> {
        let map_id = self.next_map_id;
        let next = map_id
            .checked_add(1)
            .ok_or(MmapCtrlError::BadAlloc("map ids exhausted"))?;
        let len = len
            .checked_next_multiple_of(page_size())
            .ok_or(MmapCtrlError::BadAlloc("payload too large"))?;
        let file = anon_file(len)?;
        // SAFETY: the file is ours, sized `len` above and never truncated; the
        // mapping's bytes are shared with the guest, which only reads them.
        let map = unsafe { memmap2::MmapMut::map_mut(&file) }.map_err(|e| io_errno(&e))?;
        self.next_map_id = next;
        self.regions.push(HostRegion {
            map_id,
            file,
            map,
            used: 0,
            delivered: false,
            leases: 0,
            retired: false,
        });
        Ok(self.regions.len() - 1)
    }

    /// Allocate `n` bytes for one payload (sending the region's fd first if the
    /// guest does not have it yet). On [`MmapCtrlError::WouldBlock`] nothing was
    /// allocated; retry after the guest drained its channel.
    pub fn alloc(&mut self, n: usize) -> Result<MmapAlloc, MmapCtrlError> {
        if n == 0 {
            return Err(MmapCtrlError::BadAlloc("empty payload"));
        }
        if u32::try_from(n).is_err() {
            return Err(MmapCtrlError::BadAlloc("payload longer than u32::MAX"));
        }
        let idx = if n > self.region_size {
            // A dedicated region; an undelivered one left by a failed send is reused.
            match self
                .regions
                .iter()
                .position(|r| !r.delivered && r.used == 0 && r.map.len() >= n && r.retired)
            {
                Some(i) => i,
                None => {
                    let i = self.new_region(n)?;
                    self.regions[i].retired = true;
                    i
                }
            }
        } else {
            let active = self.regions.iter().rposition(|r| !r.retired);
            let fits = |r: &HostRegion| {
                r.used
                    .checked_next_multiple_of(PAYLOAD_ALIGN)
                    .and_then(|o| o.checked_add(n))
                    .is_some_and(|end| end <= r.map.len())
            };
            match active {
                Some(i) if fits(&self.regions[i]) => i,
                _ => {
                    if let Some(i) = active {
                        self.regions[i].retired = true;
                    }
                    self.new_region(self.region_size)?
                }
            }
        };
        let ctl = self.ctl.as_fd();
        let r = &mut self.regions[idx];
        if !r.delivered {
            send_attach(ctl, r.file.as_fd(), r.map_id, 0, r.map.len() as u64)?;
            r.delivered = true;
        }
        let offset = if n > self.region_size {
            0
        } else {
            r.used.next_multiple_of(PAYLOAD_ALIGN)
        };
        r.used = offset + n;
        r.leases += 1;
        if r.map.len().saturating_sub(r.used) <= self.retire_below {
            r.retired = true;
        }
        // SAFETY: offset + n ≤ map.len() (checked by `fits`, or the region was made
        // for this payload), so the pointer stays inside the mapping.
        let ptr = unsafe { r.map.as_mut_ptr().add(offset) };
        Ok(MmapAlloc {
            map_id: r.map_id,
            map_generation: 0,
            map_offset: offset as u64,
            len: n,
            ptr,
        })
    }

    /// Allocate and copy `payload` in.
    pub fn alloc_copy(&mut self, payload: &[u8]) -> Result<MmapAlloc, MmapCtrlError> {
        let a = self.alloc(payload.len())?;
        let r = self
            .regions
            .iter_mut()
            .find(|r| r.map_id == a.map_id)
            .ok_or(MmapCtrlError::UnknownLease(a.map_id))?;
        let off = a.map_offset as usize;
        r.map[off..off + payload.len()].copy_from_slice(payload);
        Ok(a)
    }

    /// Release the lease of `alloc` (the receiver is done with it).
    pub fn release(&mut self, alloc: &MmapAlloc) -> Result<(), MmapCtrlError> {
        let r = self
            .regions
            .iter_mut()
            .find(|r| r.map_id == alloc.map_id && alloc.map_generation == 0)
            .ok_or(MmapCtrlError::UnknownLease(alloc.map_id))?;
        r.leases = r
            .leases
            .checked_sub(1)
            .ok_or(MmapCtrlError::UnknownLease(alloc.map_id))?;
        Ok(())
    }

    /// Drop every region the allocator has moved past whose leases are all
    /// released; returns how many were dropped.
    pub fn reclaim(&mut self) -> usize {
        let before = self.regions.len();
        self.regions.retain(|r| !(r.retired && r.leases == 0));
        before - self.regions.len()
    }

    /// Retire a region as soon as no more than `bytes` are left in it. Receivers may
    /// unmap a region whose space left is no larger than the largest slot payload
    /// (only larger payloads are sent through mappings, so nothing can land there
    /// again; see [`MmapAttachments::unlease`]); a sender that also sends smaller
    /// payloads through mappings (pool-exhaustion fallback) must therefore stop
    /// using such a region: set this to the largest slot payload.
    pub fn set_retire_threshold(&mut self, bytes: usize) {
        self.retire_below = bytes;
    }

    /// Regions currently held.
    pub fn region_count(&self) -> usize {
        self.regions.len()
    }

    /// Outstanding leases of `map_id`, if the region is held.
    pub fn leases(&self, map_id: u32) -> Option<u32> {
        self.regions
            .iter()
            .find(|r| r.map_id == map_id)
            .map(|r| r.leases)
    }
}

/// Guest side: the regions the host attached.
pub struct MmapAttachments {
    ctl: OwnedFd,
    maps: HashMap<(u32, u32), memmap2::Mmap>,
    usage: HashMap<(u32, u32), Usage>,
    failed: Option<MmapCtrlError>,
    peer_closed: bool,
}

/// What the receiver knows of how the sender uses one region.
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    /// Highest payload end seen: senders bump-allocate, so this is where the next
    /// allocation in this region would start.
    max_end: u64,
    /// Payloads of this region currently held by the receiver.
    live: u32,
}

impl core::fmt::Debug for MmapAttachments {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MmapAttachments")
            .field("ctl", &self.ctl)
            .field("maps", &self.maps.len())
            .field("failed", &self.failed)
            .field("peer_closed", &self.peer_closed)
            .finish()
    }
}

impl MmapAttachments {
    /// Attachments received on `ctl` (the guest end; set non-blocking here).
    pub fn new(ctl: OwnedFd) -> Result<MmapAttachments, MmapCtrlError> {
        set_nonblocking(ctl.as_fd())?;
        Ok(MmapAttachments {
            ctl,
            maps: HashMap::new(),
            usage: HashMap::new(),
            failed: None,
            peer_closed: false,
        })
    }

    /// Receive every queued attachment (until `EAGAIN` or EOF) and map it. Returns
    /// how many were mapped. A terminal error is sticky: later calls return it again.
    pub fn drain_control(&mut self) -> Result<usize, MmapCtrlError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let mut count = 0;
        loop {
            let step = match recv_attach(self.ctl.as_fd()) {
                Ok(AttachRecv::Message(msg, fd)) => self.attach(msg, fd),
                Ok(AttachRecv::WouldBlock) => return Ok(count),
                Ok(AttachRecv::Eof) => {
                    self.peer_closed = true;
                    return Ok(count);
                }
                Err(e) => Err(e),
            };
            match step {
                Ok(()) => count += 1,
                Err(e) => {
                    if e.is_terminal() {
                        self.failed = Some(e.clone());
                    }
                    return Err(e);
                }
            }
        }
    }

    fn attach(&mut self, msg: MmapAttachMessage, fd: OwnedFd) -> Result<(), MmapCtrlError> {
        let key = (msg.map_id, msg.map_generation);
        if self.maps.contains_key(&key) {
            return Err(MmapCtrlError::Duplicate {
                map_id: msg.map_id,
                map_generation: msg.map_generation,
            });
        }
        let bad_len = MmapCtrlError::BadMappingLength {
            map_id: msg.map_id,
            mapping_length: msg.mapping_length,
        };
        let len = usize::try_from(msg.mapping_length).map_err(|_| bad_len.clone())?;
        if len == 0 || isize::try_from(len).is_err() {
            return Err(bad_len);
        }
        let file = File::from(fd);
        let file_len = file.metadata().map_err(|e| io_errno(&e))?.len();
        if file_len < msg.mapping_length {
            return Err(MmapCtrlError::FileTooSmall {
                map_id: msg.map_id,
                file_len,
                mapping_length: msg.mapping_length,
            });
        }
        // SAFETY: a read-only MAP_SHARED mapping of `len` ≤ file size bytes. The host
        // may still write the bytes (it is shared memory); we never hand out
        // references to them, only raw pointers and copies.
        let map =
            unsafe { memmap2::MmapOptions::new().len(len).map(&file) }.map_err(|e| io_errno(&e))?;
        self.maps.insert(key, map);
        Ok(())
    }

    /// Record that a payload `[offset, offset + len)` of `(map_id, gen)` is held.
    pub fn lease(&mut self, map_id: u32, map_generation: u32, offset: u64, len: u32) {
        let u = self.usage.entry((map_id, map_generation)).or_default();
        u.max_end = u.max_end.max(offset.saturating_add(u64::from(len)));
        u.live = u.live.saturating_add(1);
    }

    /// Record that a held payload of `(map_id, gen)` was released, and unmap the
    /// region when no payload of it is held and it can never be referenced again.
    ///
    /// Senders (roam's and ours) bump-allocate and send a payload through a mapping
    /// only when it is larger than the largest slot payload (`min_payload`); so once
    /// a region has no more than `min_payload` bytes left after its highest
    /// allocation, no future payload fits and the mapping is dead. Without this rule
    /// a receiver would keep every region mapped forever (roam does). Returns
    /// whether the region was unmapped.
    pub fn unlease(&mut self, map_id: u32, map_generation: u32, min_payload: u32) -> bool {
        let key = (map_id, map_generation);
        let Some(u) = self.usage.get_mut(&key) else {
            return false;
        };
        u.live = u.live.saturating_sub(1);
        let Some(map) = self.maps.get(&key) else {
            return false;
        };
        let remaining = (map.len() as u64).saturating_sub(u.max_end);
        if u.live == 0 && remaining <= u64::from(min_payload) {
            self.maps.remove(&key);
            self.usage.remove(&key);
            return true;
        }
        false
    }

    /// Whether the channel reported EOF. Linux never does on a datagram socketpair
    /// (the guest only sees `EAGAIN` after the host is gone): detect a dead host by
    /// its doorbell.
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// Number of mappings held.
    pub fn len(&self) -> usize {
        self.maps.len()
    }

    /// Whether no mapping is held.
    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }

    /// Resolve an MMAP_REF to a pointer to its `len` bytes (valid while `self`
    /// lives). Codes as roam: unknown (−2), overflow (−3), out of bounds (−4).
    pub fn resolve(
        &self,
        map_id: u32,
        map_generation: u32,
        map_offset: u64,
        len: u32,
    ) -> Result<*const u8, ResolveError> {
        let map = self
            .maps
            .get(&(map_id, map_generation))
            .ok_or(ResolveError::Unknown)?;
        let start = usize::try_from(map_offset).map_err(|_| ResolveError::BadArgs)?;
        let end = start
            .checked_add(len as usize)
            .ok_or(ResolveError::Overflow)?;
        if end > map.len() {
            return Err(ResolveError::OutOfBounds);
        }
        // SAFETY: start ≤ end ≤ map.len(), so the pointer is inside the mapping.
        Ok(unsafe { map.as_ptr().add(start) })
    }

    /// Resolve and copy the payload out.
    pub fn copy_out(
        &self,
        map_id: u32,
        map_generation: u32,
        map_offset: u64,
        len: u32,
    ) -> Result<Vec<u8>, ResolveError> {
        let p = self.resolve(map_id, map_generation, map_offset, len)?;
        let mut v = vec![0u8; len as usize];
        // SAFETY: `resolve` checked that `len` bytes at `p` lie inside a live
        // mapping; `v` is a distinct allocation of `len` bytes.
        unsafe { core::ptr::copy_nonoverlapping(p, v.as_mut_ptr(), len as usize) };
        Ok(v)
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;

    #[test]
    fn message_bytes() {
        let m = MmapAttachMessage {
            map_id: 1,
            map_generation: 2,
            mapping_length: 0x0102_0304_0506_0708,
        };
        let b = m.to_bytes();
        assert_eq!(&b[..8], &[1, 0, 0, 0, 2, 0, 0, 0]);
        assert_eq!(&b[8..], &0x0102_0304_0506_0708u64.to_le_bytes());
        assert_eq!(MmapAttachMessage::from_bytes(&b), m);
    }

    #[test]
    fn round_trip_with_real_memfd() {
        let (host, guest) = control_socketpair().unwrap();
        let mut reg = MmapRegistry::with_region_size(host, 8192);
        let mut att = MmapAttachments::new(guest).unwrap();
        assert_eq!(att.drain_control(), Ok(0));

        let a = reg.alloc_copy(b"hello mmap").unwrap();
        assert_eq!((a.map_id, a.map_generation, a.map_offset), (0, 0, 0));
        assert_eq!(att.drain_control(), Ok(1));
        assert_eq!(att.copy_out(0, 0, 0, 10).unwrap(), b"hello mmap");

        // Same region: no new attachment, 64-aligned offset.
        let b = reg.alloc_copy(b"second").unwrap();
        assert_eq!((b.map_id, b.map_offset), (0, 64));
        assert_eq!(att.drain_control(), Ok(0));
        assert_eq!(att.copy_out(0, 0, 64, 6).unwrap(), b"second");

        // Writes through the host pointer are visible to the guest mapping.
        // SAFETY: `b.ptr` is valid for b.len bytes (lease held).
        unsafe { *b.ptr = b'S' };
        assert_eq!(att.copy_out(0, 0, 64, 6).unwrap(), b"Second");

        // Doesn't fit: a new region (id 1); the first one is retired.
        let c = reg.alloc(8100).unwrap();
        assert_eq!((c.map_id, c.map_offset), (1, 0));
        // Larger than a region: a dedicated one (id 2).
        let d = reg.alloc_copy(&vec![7u8; 20_000]).unwrap();
        assert_eq!(d.map_id, 2);
        assert_eq!(att.drain_control(), Ok(2));
        assert_eq!(att.copy_out(2, 0, 0, 20_000).unwrap(), vec![7u8; 20_000]);

        // Resolve errors mirror roam's codes.
        assert_eq!(att.resolve(9, 0, 0, 1), Err(ResolveError::Unknown));
        assert_eq!(att.resolve(0, 1, 0, 1), Err(ResolveError::Unknown));
        assert_eq!(att.resolve(0, 0, u64::MAX, 2), Err(ResolveError::Overflow));
        assert_eq!(att.resolve(0, 0, 8190, 3), Err(ResolveError::OutOfBounds));
        assert_eq!(ResolveError::OutOfBounds.code(), -4);
        assert!(att.resolve(0, 0, 8190, 2).is_ok());

        // Leases: region 0 (retired) and 2 (dedicated) go once released.
        assert_eq!(reg.reclaim(), 0);
        reg.release(&a).unwrap();
        reg.release(&b).unwrap();
        assert_eq!(reg.release(&b), Err(MmapCtrlError::UnknownLease(0)));
        reg.release(&d).unwrap();
        assert_eq!(reg.reclaim(), 2);
        assert_eq!(reg.region_count(), 1);
        assert_eq!(reg.leases(1), Some(1));
        // The guest's mappings survive the host dropping its own.
        assert_eq!(att.copy_out(0, 0, 0, 5).unwrap(), b"hello");

        assert!(reg.alloc(0).is_err());
        drop(reg);
        // Linux reports no EOF on a datagram socketpair: the guest just sees EAGAIN
        // (peer death is the doorbell's job).
        assert_eq!(att.drain_control(), Ok(0));
    }

    fn raw_send(ctl: &OwnedFd, body: &[u8], fds: &[i32]) {
        scm::send_with_fds(ctl.as_fd(), body, fds).unwrap();
    }

    #[test]
    fn protocol_violations_are_terminal() {
        let file = anon_file(4096).unwrap();
        let good = MmapAttachMessage {
            map_id: 0,
            map_generation: 0,
            mapping_length: 4096,
        }
        .to_bytes();

        type Case = (Vec<u8>, usize, fn(&MmapCtrlError) -> bool);
        let cases: Vec<Case> = vec![
            (good[..15].to_vec(), 1, |e| {
                matches!(e, MmapCtrlError::BadLength(15))
            }),
            ([&good[..], &[0]].concat(), 1, |e| {
                matches!(e, MmapCtrlError::BadLength(_))
            }),
            (good.to_vec(), 0, |e| matches!(e, MmapCtrlError::FdCount(0))),
            (
                MmapAttachMessage {
                    map_id: 0,
                    map_generation: 0,
                    mapping_length: 8192,
                }
                .to_bytes()
                .to_vec(),
                1,
                |e| matches!(e, MmapCtrlError::FileTooSmall { .. }),
            ),
            (
                MmapAttachMessage {
                    map_id: 0,
                    map_generation: 0,
                    mapping_length: 0,
                }
                .to_bytes()
                .to_vec(),
                1,
                |e| matches!(e, MmapCtrlError::BadMappingLength { .. }),
            ),
        ];
        for (body, nfds, want) in cases {
            let (host, guest) = control_socketpair().unwrap();
            let mut att = MmapAttachments::new(guest).unwrap();
            raw_send(&host, &body, &vec![file.as_raw_fd(); nfds]);
            let e = att.drain_control().unwrap_err();
            assert!(want(&e), "unexpected {e:?}");
            assert!(e.is_terminal());
            assert_eq!(att.drain_control(), Err(e), "sticky");
        }
        // Duplicate attach of the same (id, gen).
        let (host, guest) = control_socketpair().unwrap();
        let mut att = MmapAttachments::new(guest).unwrap();
        send_attach(host.as_fd(), file.as_fd(), 0, 0, 4096).unwrap();
        send_attach(host.as_fd(), file.as_fd(), 0, 0, 4096).unwrap();
        assert!(matches!(
            att.drain_control(),
            Err(MmapCtrlError::Duplicate { .. })
        ));
        assert_eq!(att.len(), 1);
    }

    #[test]
    fn full_channel_would_block_and_allocates_nothing() {
        let (host, guest) = control_socketpair().unwrap();
        let mut reg = MmapRegistry::with_region_size(host, 4096);
        // Fill the guest's queue until the host's send would block.
        let mut ok = 0;
        let err = loop {
            match reg.alloc(4096) {
                Ok(a) => {
                    ok += 1;
                    // Keep the host's own fd count low: only the queue holds them.
                    reg.release(&a).unwrap();
                    reg.reclaim();
                }
                Err(e) => break e,
            }
            assert!(ok < 100_000);
        };
        assert_eq!(err, MmapCtrlError::WouldBlock);
        assert!(!err.is_terminal());
        let mut att = MmapAttachments::new(guest).unwrap();
        assert_eq!(att.drain_control(), Ok(ok));
        // After draining, the pending region is delivered and used.
        let a = reg.alloc(4096).unwrap();
        assert_eq!(a.map_id as usize, ok);
        assert_eq!(att.drain_control(), Ok(1));
    }
}
