//! Read-only inspection of a segment (ours or one created by the roam crates):
//! header, peer table and slot-pool usage, as `roam-shm segment inspect` prints.

use std::path::Path;
use std::time::Duration;

use roam_shm::segment::peer::{self, now_ns};
use roam_shm::segment::shared::SegmentShared;

use crate::RoamError;

/// State of one peer entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum PeerState {
    /// Free.
    Empty,
    /// A guest is attached.
    Attached,
    /// The guest left, or the host is recovering its resources.
    Goodbye,
    /// The host reserved the entry for a guest it is bootstrapping.
    Reserved,
    /// A value outside the format (written by a faulty process).
    Invalid,
}

/// One entry of the peer table.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PeerInfo {
    /// Peer id, 1...maxGuests.
    pub peer_id: u8,
    /// Its state.
    pub state: PeerState,
    /// Incremented each time a guest claims the entry.
    pub epoch: u32,
    /// The pid the guest published (0 = unknown, e.g. a roam 7.x guest).
    pub guest_pid: u32,
    /// Time since its last heartbeat (`nil` if it never heartbeat).
    pub heartbeat_age: Option<Duration>,
}

/// Usage of one slot class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct SlotClassUsage {
    /// Bytes per slot.
    pub slot_size: u32,
    /// Slots in the class.
    pub count: u32,
    /// Slots allocated right now (a racy snapshot while peers run).
    pub allocated: u32,
}

/// A snapshot of a segment.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SegmentInfo {
    /// Format version (7).
    pub version: u32,
    /// Size the segment was created with.
    pub total_size: u64,
    /// Size now (hosts may grow segments).
    pub current_size: u64,
    /// Guest slots.
    pub max_guests: u32,
    /// Ring data bytes per direction per guest.
    pub bipbuf_capacity: u32,
    /// Inline threshold in force.
    pub inline_threshold: u32,
    /// Largest payload.
    pub max_payload_size: u32,
    /// Heartbeat interval (zero = off).
    pub heartbeat_interval: Duration,
    /// Whether the host has said goodbye.
    pub host_goodbye: bool,
    /// Every peer entry, in id order.
    pub peers: Vec<PeerInfo>,
    /// Every slot class, in pool order.
    pub slot_classes: Vec<SlotClassUsage>,
}

impl SegmentInfo {
    /// Snapshot an open segment.
    pub(crate) fn of(seg: &SegmentShared) -> SegmentInfo {
        let h = seg.header();
        let now = now_ns();
        let peers = seg
            .peer_table()
            .iter()
            .map(|(id, e)| {
                let hb = e.last_heartbeat();
                PeerInfo {
                    peer_id: id as u8,
                    state: match e.state() {
                        Ok(peer::PeerState::Empty) => PeerState::Empty,
                        Ok(peer::PeerState::Attached) => PeerState::Attached,
                        Ok(peer::PeerState::Goodbye) => PeerState::Goodbye,
                        Ok(peer::PeerState::Reserved) => PeerState::Reserved,
                        Err(_) => PeerState::Invalid,
                    },
                    epoch: e.epoch(),
                    guest_pid: e.guest_pid(),
                    heartbeat_age: (hb != 0).then(|| Duration::from_nanos(now.saturating_sub(hb))),
                }
            })
            .collect();
        let slot_classes = seg
            .pool()
            .stats()
            .iter()
            .map(|s| SlotClassUsage {
                slot_size: s.slot_size,
                count: s.slot_count,
                allocated: s.allocated,
            })
            .collect();
        SegmentInfo {
            version: h.version,
            total_size: h.total_size,
            current_size: h.current_size(),
            max_guests: h.max_guests,
            bipbuf_capacity: h.bipbuf_capacity,
            inline_threshold: h.effective_inline_threshold(),
            max_payload_size: h.max_payload_size,
            heartbeat_interval: Duration::from_nanos(h.heartbeat_interval),
            host_goodbye: h.host_goodbye(),
            peers,
            slot_classes,
        }
    }
}

/// Map the segment file at `path` read-only-in-spirit (nothing is written) and
/// snapshot it. Throws `RoamError.io` if it cannot be opened and
/// `RoamError.badSegment` if it is not a valid roam v7 segment.
#[uniffi::export]
pub fn inspect_segment(path: String) -> Result<SegmentInfo, RoamError> {
    if path.is_empty() {
        return Err(RoamError::InvalidArgument {
            message: "segment path is empty".into(),
        });
    }
    let seg = SegmentShared::open(None, Some(Path::new(&path)))?;
    Ok(SegmentInfo::of(&seg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use roam_shm::segment::mapping::PathCleanup;
    use roam_shm::segment::shared::SegmentBacking;

    #[test]
    fn inspects_a_fresh_segment_and_rejects_garbage() {
        let dir =
            std::env::temp_dir().join(crate::unique_name("roam-swift-inspect".into()).unwrap());
        let cfg = roam_shm::segment::config::SegmentConfig::default();
        let seg = SegmentShared::create(
            &cfg,
            &SegmentBacking::File {
                path: dir.clone(),
                cleanup: PathCleanup::Delete,
                mode: 0o600,
            },
        )
        .unwrap();
        let info = inspect_segment(dir.display().to_string()).unwrap();
        assert_eq!(info.version, 7);
        assert_eq!(info.peers.len(), 8);
        assert!(info.peers.iter().all(|p| p.state == PeerState::Empty));
        assert_eq!(info.slot_classes.len(), 3);
        assert_eq!(
            info.slot_classes.iter().map(|c| c.allocated).sum::<u32>(),
            0
        );
        assert!(!info.host_goodbye);
        drop(seg);

        assert!(matches!(
            inspect_segment(String::new()),
            Err(RoamError::InvalidArgument { .. })
        ));
        assert!(matches!(
            inspect_segment("/nonexistent/roam-seg".into()),
            Err(RoamError::Io { .. })
        ));
        let junk = std::env::temp_dir().join(crate::unique_name("roam-swift-junk".into()).unwrap());
        std::fs::write(&junk, vec![0u8; 4096]).unwrap();
        let r = inspect_segment(junk.display().to_string());
        let _ = std::fs::remove_file(&junk);
        assert!(matches!(r, Err(RoamError::BadSegment { .. })), "{r:?}");
    }
}
