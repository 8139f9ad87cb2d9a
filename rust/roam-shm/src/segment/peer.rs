//! The peer table: one 64-byte [`PeerEntry`] per guest at offset 128 (notes §2).
//!
//! | off | size | field |
//! |---|---|---|
//! | 0 | 4 | state: 0 Empty, 1 Attached, 2 Goodbye, 3 Reserved |
//! | 4 | 4 | epoch |
//! | 8 | 8 | last_heartbeat (CLOCK_MONOTONIC ns) |
//! | 16 | 8 | ring_offset (written by the host at creation) |
//! | 24 | 4 | **ours:** guest pid (0 = unknown); roam calls these bytes reserved |
//! | 28 | 36 | reserved |
//!
//! Peer ids: guest index `i` has peer id `i + 1`; the host is 0 and has no entry.
//!
//! ## The guest pid (our extension)
//! roam never reads or writes bytes 24..64 after creating the segment (where it
//! zeroes them), so a guest of ours stores its pid at byte 24 right after it attaches,
//! and a host of ours clears it in [`PeerEntry::reset`]. A roam guest leaves it 0
//! ("unknown"), so the host falls back to heartbeats / doorbell EOF for it. The pid is
//! meaningful only while the entry is Attached, only in the host's pid namespace, and
//! is subject to pid reuse: use it as a hint ([`PeerEntry::guest_process_gone`]),
//! confirmed by doorbell EOF, or cross-check it with `SO_PEERCRED` on the bootstrap
//! socket.
//!
//! ## Orderings
//! Claims are compare-exchanges with AcqRel on success (roam's orderings): the
//! Acquire half observes everything the previous owner published with the Release
//! store of [`PeerEntry::reset`] (zeroed rings, cleared heartbeat and pid). Those two
//! are written through [`sync::publish`]/[`sync::observe`] so the loom tests can seed
//! the missing-ordering bug.

use core::marker::PhantomData;

use crate::region::{Region, RegionError};
use crate::segment::config::SegmentLayout;
use crate::sync::{self, Ordering};

use crate::sync::{AtomicU32, AtomicU64};

/// Size of one peer entry.
pub const PEER_ENTRY_SIZE: usize = 64;
/// Byte offset of our guest-pid field inside a peer entry (roam: reserved).
pub const GUEST_PID_OFFSET: usize = 24;

/// Errors of peer-table operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// A peer wrote a state value outside 0..=3.
    #[error("peer entry holds unknown state value {0}")]
    UnknownState(u32),
    /// A transition found the entry in another state.
    #[error("peer entry is {actual:?}, expected {expected:?}")]
    WrongState {
        /// The state the transition needs.
        expected: PeerState,
        /// The state found (`Err` = an unknown raw value).
        actual: Result<PeerState, u32>,
    },
    /// Peer id 0 (the host) or larger than `max_guests`.
    #[error("peer id {peer_id} is not a guest id in 1..={max_guests}")]
    BadPeerId {
        /// The id asked for.
        peer_id: u32,
        /// Number of guest slots.
        max_guests: u32,
    },
    /// No Empty entry could be claimed.
    #[error("no free peer slot")]
    TableFull,
    /// The table does not fit in the region.
    #[error("peer table: {0}")]
    Region(#[from] RegionError),
}

/// State of a peer entry.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerState {
    /// Free.
    Empty = 0,
    /// A guest is attached.
    Attached = 1,
    /// The guest left (or is being recovered).
    Goodbye = 2,
    /// The host reserved it for a guest it is bootstrapping.
    Reserved = 3,
}

impl PeerState {
    /// Decode a raw state value; `Err(v)` for values outside 0..=3.
    pub fn from_u32(v: u32) -> Result<PeerState, u32> {
        match v {
            0 => Ok(PeerState::Empty),
            1 => Ok(PeerState::Attached),
            2 => Ok(PeerState::Goodbye),
            3 => Ok(PeerState::Reserved),
            other => Err(other),
        }
    }
}

/// One peer entry, byte-compatible with roam 7.x (`repr(C)`, 64 bytes).
#[repr(C)]
pub struct PeerEntry {
    /// [`PeerState`] as a `u32`.
    pub state: AtomicU32,
    /// Bumped each time the slot is taken from Empty.
    pub epoch: AtomicU32,
    /// Last heartbeat, CLOCK_MONOTONIC ns (0 = none).
    pub last_heartbeat: AtomicU64,
    /// Offset of the guest's ring pair (G2H, then H2G one stride later).
    pub ring_offset: AtomicU64,
    /// Our extension at byte 24: the attached guest's pid, 0 = unknown.
    pub guest_pid: AtomicU32,
    /// Our extension at byte 28: non-zero while the host busy-polls this guest's G2H
    /// ring, so the guest may skip ringing the doorbell after a commit.
    pub host_rx_polling: AtomicU32,
    /// Our extension at byte 32: non-zero while the guest busy-polls its H2G ring.
    pub guest_rx_polling: AtomicU32,
    /// Our extension at byte 36: non-zero while the host needs no "space freed"
    /// doorbell for its H2G ring (it is not waiting for room).
    pub host_tx_nowait: AtomicU32,
    /// Our extension at byte 40: non-zero while the guest needs no "space freed"
    /// doorbell for its G2H ring.
    pub guest_tx_nowait: AtomicU32,
    reserved: [u8; 20],
}

#[cfg(not(feature = "loom"))]
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<PeerEntry>() == PEER_ENTRY_SIZE);
    assert!(align_of::<PeerEntry>() == 8);
    assert!(offset_of!(PeerEntry, state) == 0);
    assert!(offset_of!(PeerEntry, epoch) == 4);
    assert!(offset_of!(PeerEntry, last_heartbeat) == 8);
    assert!(offset_of!(PeerEntry, ring_offset) == 16);
    assert!(offset_of!(PeerEntry, guest_pid) == GUEST_PID_OFFSET);
    assert!(offset_of!(PeerEntry, host_rx_polling) == 28);
    assert!(offset_of!(PeerEntry, guest_rx_polling) == 32);
    assert!(offset_of!(PeerEntry, host_tx_nowait) == 36);
    assert!(offset_of!(PeerEntry, guest_tx_nowait) == 40);
    assert!(offset_of!(PeerEntry, reserved) == 44);
};

/// Success ordering of a claim CAS: AcqRel normally (Acquire observes the previous
/// owner's `reset`), Relaxed when a loom test seeded the bug.
#[inline]
fn claim_ordering() -> Ordering {
    if sync::observe() == Ordering::Acquire {
        Ordering::AcqRel
    } else {
        Ordering::Relaxed
    }
}

impl PeerEntry {
    /// A fresh Empty entry (epoch 0, no heartbeat, pid unknown) for `ring_offset`.
    pub fn new(ring_offset: u64) -> PeerEntry {
        PeerEntry {
            state: AtomicU32::new(PeerState::Empty as u32),
            epoch: AtomicU32::new(0),
            last_heartbeat: AtomicU64::new(0),
            ring_offset: AtomicU64::new(ring_offset),
            guest_pid: AtomicU32::new(0),
            host_rx_polling: AtomicU32::new(0),
            guest_rx_polling: AtomicU32::new(0),
            host_tx_nowait: AtomicU32::new(0),
            guest_tx_nowait: AtomicU32::new(0),
            reserved: [0; 20],
        }
    }

    /// The current state; an unknown raw value (written by a faulty peer) is an error.
    pub fn state(&self) -> Result<PeerState, PeerError> {
        // Acquire: a reader that sees Empty/Attached also sees what the writer
        // published before the store (reset, attach).
        PeerState::from_u32(self.state.load(sync::observe())).map_err(PeerError::UnknownState)
    }

    /// The current epoch.
    pub fn epoch(&self) -> u32 {
        // Acquire: pairs with the AcqRel epoch bump after a claim.
        self.epoch.load(Ordering::Acquire)
    }

    /// Offset of this guest's ring pair.
    pub fn ring_offset(&self) -> u64 {
        // Relaxed: written once by the host before the segment is shared.
        self.ring_offset.load(Ordering::Relaxed)
    }

    /// The pid the attached guest published (0 = unknown, e.g. a roam guest).
    pub fn guest_pid(&self) -> u32 {
        // Relaxed: a hint read on its own; nothing else is published with it.
        self.guest_pid.load(Ordering::Relaxed)
    }

    fn wrong(&self, expected: PeerState, actual: u32) -> PeerError {
        PeerError::WrongState {
            expected,
            actual: PeerState::from_u32(actual),
        }
    }

    fn bump_epoch(&self) -> u32 {
        // AcqRel: roam's ordering for the epoch bump after a claim from Empty.
        self.epoch.fetch_add(1, Ordering::AcqRel).wrapping_add(1)
    }

    /// Zero the wake-suppression flags (bytes 28..44): every party is rung again,
    /// as roam peers (which never write these bytes) always expect.
    pub fn clear_wake_flags(&self) {
        // Relaxed: published by the state transition that follows (reserve, reset).
        for f in [
            &self.host_rx_polling,
            &self.guest_rx_polling,
            &self.host_tx_nowait,
            &self.guest_tx_nowait,
        ] {
            f.store(0, Ordering::Relaxed);
        }
    }

    /// The flag saying whether the receiver of one direction busy-polls it:
    /// `host_side = true` is the host receiving (G2H).
    pub fn rx_polling(&self, host_side: bool) -> &AtomicU32 {
        if host_side {
            &self.host_rx_polling
        } else {
            &self.guest_rx_polling
        }
    }

    /// The flag saying whether a sender needs no "space freed" ring:
    /// `host_side = true` is the host sending (H2G).
    pub fn tx_nowait(&self, host_side: bool) -> &AtomicU32 {
        if host_side {
            &self.host_tx_nowait
        } else {
            &self.guest_tx_nowait
        }
    }

    /// Host: reserve an Empty slot for a guest it is bootstrapping (CAS
    /// Empty→Reserved, then epoch += 1). Returns the new epoch.
    pub fn host_reserve(&self) -> Result<u32, PeerError> {
        // Success AcqRel (claim_ordering), failure Acquire: roam's orderings.
        self.state
            .compare_exchange(
                PeerState::Empty as u32,
                PeerState::Reserved as u32,
                claim_ordering(),
                sync::observe(),
            )
            .map_err(|v| self.wrong(PeerState::Empty, v))?;
        // A crashed guest of an earlier epoch may have left its flags set.
        self.clear_wake_flags();
        Ok(self.bump_epoch())
    }

    /// Guest with a ticket: claim the slot the host reserved (CAS
    /// Reserved→Attached, no epoch bump), then publish `pid` (0 = don't).
    pub fn guest_attach_reserved(&self, pid: u32) -> Result<(), PeerError> {
        // Success AcqRel, failure Acquire: roam's orderings.
        self.state
            .compare_exchange(
                PeerState::Reserved as u32,
                PeerState::Attached as u32,
                claim_ordering(),
                sync::observe(),
            )
            .map_err(|v| self.wrong(PeerState::Reserved, v))?;
        self.set_guest_pid(pid);
        Ok(())
    }

    /// Walk-in guest: claim an Empty slot (CAS Empty→Attached, then epoch += 1), then
    /// publish `pid`. Returns the new epoch.
    pub fn walk_in_attach(&self, pid: u32) -> Result<u32, PeerError> {
        // Success AcqRel, failure Acquire: roam's orderings.
        self.state
            .compare_exchange(
                PeerState::Empty as u32,
                PeerState::Attached as u32,
                claim_ordering(),
                sync::observe(),
            )
            .map_err(|v| self.wrong(PeerState::Empty, v))?;
        let epoch = self.bump_epoch();
        self.set_guest_pid(pid);
        Ok(epoch)
    }

    /// Host: give back a reservation the guest never claimed (CAS Reserved→Empty).
    pub fn release_reserved(&self) -> Result<(), PeerError> {
        // AcqRel / Acquire: roam's orderings.
        self.state
            .compare_exchange(
                PeerState::Reserved as u32,
                PeerState::Empty as u32,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .map(|_| ())
            .map_err(|v| self.wrong(PeerState::Reserved, v))
    }

    /// Mark the peer as gone (store 2).
    pub fn goodbye(&self) {
        // Release: the peer's last writes are visible to whoever observes Goodbye.
        self.state
            .store(PeerState::Goodbye as u32, Ordering::Release);
    }

    /// Guest: say goodbye on its own entry only (CAS Attached→Goodbye). A guest the
    /// host has already evicted finds its entry Empty (or Reserved/Attached by the
    /// next guest) and must not touch it; callers also compare the epoch first.
    pub fn guest_goodbye(&self) -> Result<(), PeerError> {
        // Success AcqRel (Release as `goodbye`: the guest's last writes are visible to
        // whoever observes Goodbye), failure Acquire.
        self.state
            .compare_exchange(
                PeerState::Attached as u32,
                PeerState::Goodbye as u32,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .map(|_| ())
            .map_err(|v| self.wrong(PeerState::Attached, v))
    }

    /// Host, after recovering the peer (rings zeroed, slots reclaimed): heartbeat =
    /// 0, pid = 0, then state = Empty. The epoch is kept.
    pub fn reset(&self) {
        // Relaxed: all are published by the state store below.
        self.guest_pid.store(0, Ordering::Relaxed);
        self.clear_wake_flags();
        // Release (roam's ordering); also published by the state store below.
        self.last_heartbeat.store(0, Ordering::Release);
        // Release (publish): the next claimer's Acquire CAS sees the zeroed rings,
        // heartbeat and pid.
        self.state.store(PeerState::Empty as u32, sync::publish());
    }

    /// Record a heartbeat at `now_ns` (see [`now_ns`]).
    pub fn heartbeat(&self, now_ns: u64) {
        // Release: roam's ordering; pairs with `last_heartbeat`'s Acquire.
        self.last_heartbeat.store(now_ns, Ordering::Release);
    }

    /// The last heartbeat (0 = none).
    pub fn last_heartbeat(&self) -> u64 {
        // Acquire: pairs with `heartbeat`.
        self.last_heartbeat.load(Ordering::Acquire)
    }

    /// Whether the peer missed its heartbeats: `now − last > 2·interval`. Never stale
    /// when `interval_ns` is 0 (heartbeats off).
    pub fn is_stale(&self, now_ns: u64, interval_ns: u64) -> bool {
        if interval_ns == 0 {
            return false;
        }
        now_ns.saturating_sub(self.last_heartbeat()) > interval_ns.saturating_mul(2)
    }

    /// Publish the attached guest's pid (0 = unknown).
    pub fn set_guest_pid(&self, pid: u32) {
        // Relaxed: a hint; see `guest_pid`.
        self.guest_pid.store(pid, Ordering::Relaxed);
    }

    /// Whether the process whose pid the guest published no longer exists
    /// (`kill(pid, 0)` fails with ESRCH). `false` when the pid is unknown (0) or
    /// alive. Subject to pid reuse and pid namespaces: a hint, see the module docs.
    pub fn guest_process_gone(&self) -> bool {
        let pid = self.guest_pid();
        let Ok(pid) = i32::try_from(pid) else {
            return false;
        };
        if pid <= 0 {
            return false;
        }
        matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
            Err(nix::errno::Errno::ESRCH)
        )
    }
}

impl core::fmt::Debug for PeerEntry {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PeerEntry")
            .field("state", &self.state())
            .field("epoch", &self.epoch())
            .field("last_heartbeat", &self.last_heartbeat())
            .field("ring_offset", &self.ring_offset())
            .field("guest_pid", &self.guest_pid())
            .finish()
    }
}

/// CLOCK_MONOTONIC now, in nanoseconds (the heartbeat clock).
pub fn now_ns() -> u64 {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
        Ok(ts) => {
            let secs = u64::try_from(ts.tv_sec()).unwrap_or(0);
            let nanos = u64::try_from(ts.tv_nsec()).unwrap_or(0);
            secs.saturating_mul(1_000_000_000).saturating_add(nanos)
        }
        // CLOCK_MONOTONIC cannot fail on a supported system; 0 reads as "no heartbeat".
        Err(_) => 0,
    }
}

/// The process's own pid as stored in [`PeerEntry::guest_pid`].
pub fn own_pid() -> u32 {
    std::process::id()
}

/// A view of the peer table (`max_guests` entries).
#[derive(Clone, Copy)]
pub struct PeerTable<'a> {
    entries: &'a [PeerEntry],
    _region: PhantomData<Region<'a>>,
}

impl core::fmt::Debug for PeerTable<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.entries.iter()).finish()
    }
}

impl<'a> PeerTable<'a> {
    /// A table over entries that are already initialised (in-process use, tests).
    pub fn from_slice(entries: &'a [PeerEntry]) -> PeerTable<'a> {
        PeerTable {
            entries,
            _region: PhantomData,
        }
    }

    /// Attach to an initialised table of `max_guests` entries at `offset` of
    /// `region` (bounds and alignment checked).
    pub fn attach(
        region: &Region<'a>,
        offset: u64,
        max_guests: u32,
    ) -> Result<PeerTable<'a>, PeerError> {
        let (ptr, n) = Self::locate(region, offset, max_guests)?;
        // SAFETY: `locate` checked that n entries fit in the region at an aligned
        // address; any bit pattern is a valid PeerEntry (atomics of integers and a
        // byte array); the region is valid for 'a.
        let entries = unsafe { core::slice::from_raw_parts(ptr, n) };
        Ok(PeerTable::from_slice(entries))
    }

    /// Initialise the table of `layout` in `region` (every entry Empty, epoch 0, with
    /// its ring offset) and return the view. The rings themselves are not touched.
    ///
    /// # Safety
    /// The region must not be shared with any other thread or process yet.
    pub unsafe fn init(
        region: &Region<'a>,
        layout: &SegmentLayout,
    ) -> Result<PeerTable<'a>, PeerError> {
        let (ptr, n) = Self::locate(region, layout.peer_table_offset, layout.max_guests)?;
        for i in 0..n {
            let ring = layout.ring_offset(i as u32).ok_or(PeerError::BadPeerId {
                peer_id: i as u32 + 1,
                max_guests: layout.max_guests,
            })?;
            // SAFETY: i < n entries fit (checked by `locate`); the caller guarantees
            // exclusive access; `ptr::write` does not read the old bytes.
            unsafe { core::ptr::write(ptr.add(i), PeerEntry::new(ring)) };
        }
        // SAFETY: as in `attach`; all n entries were just written.
        let entries = unsafe { core::slice::from_raw_parts(ptr, n) };
        Ok(PeerTable::from_slice(entries))
    }

    fn locate(
        region: &Region<'a>,
        offset: u64,
        max_guests: u32,
    ) -> Result<(*mut PeerEntry, usize), PeerError> {
        let n = max_guests as usize;
        let off = usize::try_from(offset).map_err(|_| RegionError::OutOfBounds {
            offset: usize::MAX,
            len: 0,
            region_len: region.len(),
        })?;
        let len =
            n.checked_mul(core::mem::size_of::<PeerEntry>())
                .ok_or(RegionError::OutOfBounds {
                    offset: off,
                    len: usize::MAX,
                    region_len: region.len(),
                })?;
        let p = region.ptr_at(off, len)?;
        if (p as usize) % core::mem::align_of::<PeerEntry>() != 0 {
            return Err(RegionError::Misaligned {
                offset: off,
                align: core::mem::align_of::<PeerEntry>(),
            }
            .into());
        }
        Ok((p.cast(), n))
    }

    /// Number of guest slots.
    pub fn max_guests(&self) -> u32 {
        self.entries.len() as u32
    }

    /// The entry of guest `peer_id` (1..=max_guests).
    pub fn entry(&self, peer_id: u32) -> Result<&'a PeerEntry, PeerError> {
        let bad = PeerError::BadPeerId {
            peer_id,
            max_guests: self.max_guests(),
        };
        let index = peer_id.checked_sub(1).ok_or(bad.clone())?;
        self.entries.get(index as usize).ok_or(bad)
    }

    /// `(peer_id, entry)` for every guest slot.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &'a PeerEntry)> + 'a {
        let entries: &'a [PeerEntry] = self.entries;
        entries.iter().enumerate().map(|(i, e)| (i as u32 + 1, e))
    }

    /// Walk-in attach, Swift-style: try every slot that looks Empty, in order, until a
    /// claim succeeds (roam's Rust guest gives up after losing the first race).
    /// Returns `(peer_id, epoch)`.
    pub fn find_walk_in(&self, pid: u32) -> Result<(u32, u32), PeerError> {
        for (peer_id, e) in self.iter() {
            if matches!(e.state(), Ok(PeerState::Empty)) {
                if let Ok(epoch) = e.walk_in_attach(pid) {
                    return Ok((peer_id, epoch));
                }
            }
        }
        Err(PeerError::TableFull)
    }

    /// Host: reserve the first slot that can be claimed from Empty. Returns
    /// `(peer_id, epoch)`.
    pub fn reserve_any(&self) -> Result<(u32, u32), PeerError> {
        for (peer_id, e) in self.iter() {
            if matches!(e.state(), Ok(PeerState::Empty)) {
                if let Ok(epoch) = e.host_reserve() {
                    return Ok((peer_id, epoch));
                }
            }
        }
        Err(PeerError::TableFull)
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;
    use crate::region::HeapRegion;
    use crate::segment::config::SegmentConfig;

    #[test]
    fn entry_bytes_at_documented_offsets() {
        let e = PeerEntry::new(0x1122_3344_5566_7788);
        e.walk_in_attach(0xAABB_CCDD).unwrap();
        e.heartbeat(0x0102_0304_0506_0708);
        // SAFETY: PeerEntry is repr(C), 64 bytes, fully initialised.
        let b: [u8; 64] = unsafe { core::mem::transmute_copy(&e) };
        assert_eq!(u32::from_le_bytes(b[0..4].try_into().unwrap()), 1);
        assert_eq!(u32::from_le_bytes(b[4..8].try_into().unwrap()), 1);
        assert_eq!(
            u64::from_le_bytes(b[8..16].try_into().unwrap()),
            0x0102_0304_0506_0708
        );
        assert_eq!(
            u64::from_le_bytes(b[16..24].try_into().unwrap()),
            0x1122_3344_5566_7788
        );
        assert_eq!(
            u32::from_le_bytes(b[24..28].try_into().unwrap()),
            0xAABB_CCDD
        );
        assert!(b[28..].iter().all(|&x| x == 0));
    }

    #[test]
    fn state_machine() {
        let e = PeerEntry::new(0);
        assert_eq!(e.state(), Ok(PeerState::Empty));
        assert_eq!(e.host_reserve(), Ok(1));
        assert_eq!(e.state(), Ok(PeerState::Reserved));
        assert!(e.host_reserve().is_err());
        assert!(e.walk_in_attach(1).is_err());
        e.guest_attach_reserved(42).unwrap();
        assert_eq!(e.epoch(), 1, "claiming a reservation does not bump");
        assert_eq!(e.guest_pid(), 42);
        assert_eq!(
            e.guest_attach_reserved(1),
            Err(PeerError::WrongState {
                expected: PeerState::Reserved,
                actual: Ok(PeerState::Attached)
            })
        );
        assert!(e.release_reserved().is_err());
        e.heartbeat(5);
        e.goodbye();
        assert_eq!(e.state(), Ok(PeerState::Goodbye));
        e.reset();
        assert_eq!(e.state(), Ok(PeerState::Empty));
        assert_eq!(e.last_heartbeat(), 0);
        assert_eq!(e.guest_pid(), 0);
        assert_eq!(e.epoch(), 1, "reset keeps the epoch");
        assert_eq!(e.walk_in_attach(0), Ok(2));
        e.reset();
        e.host_reserve().unwrap();
        e.release_reserved().unwrap();
        assert_eq!(e.state(), Ok(PeerState::Empty));
    }

    #[test]
    fn unknown_state_is_an_error() {
        let e = PeerEntry::new(0);
        e.state.store(7, Ordering::Relaxed);
        assert_eq!(e.state(), Err(PeerError::UnknownState(7)));
        assert_eq!(
            e.walk_in_attach(0),
            Err(PeerError::WrongState {
                expected: PeerState::Empty,
                actual: Err(7)
            })
        );
        let t = [e];
        let table = PeerTable::from_slice(&t);
        assert_eq!(table.find_walk_in(0), Err(PeerError::TableFull));
    }

    #[test]
    fn staleness() {
        let e = PeerEntry::new(0);
        e.heartbeat(1_000);
        assert!(!e.is_stale(u64::MAX, 0), "interval 0 = never stale");
        assert!(
            !e.is_stale(1_000 + 200, 100),
            "exactly 2·interval is not stale"
        );
        assert!(e.is_stale(1_000 + 201, 100));
        assert!(!e.is_stale(0, 100), "clock before heartbeat saturates");
        assert!(!e.is_stale(u64::MAX, u64::MAX));
    }

    #[test]
    fn table_over_a_region() {
        let cfg = SegmentConfig {
            max_guests: 3,
            bipbuf_capacity: 1024,
            ..SegmentConfig::default()
        };
        let layout = SegmentLayout::compute(&cfg).unwrap();
        let mem = HeapRegion::new_zeroed(layout.total_size as usize);
        let region = mem.region();
        // SAFETY: fresh region, not shared.
        let t = unsafe { PeerTable::init(&region, &layout) }.unwrap();
        assert_eq!(t.max_guests(), 3);
        for (id, e) in t.iter() {
            assert_eq!(e.ring_offset(), layout.ring_offset(id - 1).unwrap());
        }
        assert!(t.entry(0).is_err());
        assert!(t.entry(4).is_err());
        let a = PeerTable::attach(&region, 128, 3).unwrap();
        assert_eq!(a.find_walk_in(7), Ok((1, 1)));
        assert_eq!(t.reserve_any(), Ok((2, 1)));
        assert_eq!(a.find_walk_in(8), Ok((3, 1)));
        assert_eq!(a.find_walk_in(9), Err(PeerError::TableFull));
        assert_eq!(t.entry(3).unwrap().guest_pid(), 8);
        // Out of bounds / misaligned attaches are refused.
        assert!(PeerTable::attach(&region, layout.total_size, 1).is_err());
        assert!(PeerTable::attach(&region, 129, 1).is_err());
        assert!(PeerTable::attach(&region, u64::MAX, 1).is_err());
    }

    #[test]
    fn pid_liveness_hint() {
        let e = PeerEntry::new(0);
        assert!(!e.guest_process_gone(), "unknown pid");
        e.set_guest_pid(own_pid());
        assert!(!e.guest_process_gone());
        // A child that has exited and been reaped no longer exists.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        e.set_guest_pid(pid);
        assert!(e.guest_process_gone());
    }

    #[test]
    fn clock_is_monotonic() {
        let a = now_ns();
        let b = now_ns();
        assert!(a > 0 && b >= a);
    }
}
