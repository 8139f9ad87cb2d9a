//! Segment configuration records and the layout arithmetic, for Swift.

use std::time::Duration;

use roam_shm::segment::config as core;
use roam_shm::segment::var_pool;

use crate::RoamError;

/// One class of the shared slot pool: `count` slots of `slot_size` bytes each
/// (the first 4 bytes of a slot hold the payload length).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct SizeClass {
    /// Bytes per slot, including the 4-byte length prefix.
    pub slot_size: u32,
    /// Number of slots.
    pub count: u32,
}

/// Geometry of a segment a host creates. `defaultSegmentConfig()` gives a
/// working one; `segmentLayout(config:)` validates it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SegmentConfig {
    /// Number of guest slots, 1...255.
    pub max_guests: u32,
    /// Ring data bytes per direction per guest; a multiple of 64, 256...2^30.
    pub bipbuf_capacity: u32,
    /// Slot classes of the shared pool, ascending by slot size.
    pub size_classes: Vec<SizeClass>,
    /// Payloads up to this many bytes travel inline in the ring (0 = roam's 256).
    #[uniffi(default = 0)]
    pub inline_threshold: u32,
    /// Largest payload a sender may send.
    pub max_payload_size: u32,
    /// Guest heartbeat interval; zero turns heartbeats off (roam 7.x guests never
    /// heartbeat, so a non-zero interval makes them look stale).
    pub heartbeat_interval: Duration,
}

impl From<SegmentConfig> for core::SegmentConfig {
    fn from(c: SegmentConfig) -> Self {
        core::SegmentConfig {
            max_guests: c.max_guests,
            bipbuf_capacity: c.bipbuf_capacity,
            size_classes: c
                .size_classes
                .iter()
                .map(|s| var_pool::SizeClass {
                    slot_size: s.slot_size,
                    count: s.count,
                })
                .collect(),
            inline_threshold: c.inline_threshold,
            max_payload_size: c.max_payload_size,
            heartbeat_interval: c.heartbeat_interval,
        }
    }
}

impl From<core::SegmentConfig> for SegmentConfig {
    fn from(c: core::SegmentConfig) -> Self {
        SegmentConfig {
            max_guests: c.max_guests,
            bipbuf_capacity: c.bipbuf_capacity,
            size_classes: c
                .size_classes
                .iter()
                .map(|s| SizeClass {
                    slot_size: s.slot_size,
                    count: s.count,
                })
                .collect(),
            inline_threshold: c.inline_threshold,
            max_payload_size: c.max_payload_size,
            heartbeat_interval: c.heartbeat_interval,
        }
    }
}

/// Where everything lives in a segment of a given configuration (bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct SegmentLayout {
    /// Size of the whole segment.
    pub total_size: u64,
    /// Offset of the peer table.
    pub peer_table_offset: u64,
    /// Offset of guest 1's ring pair.
    pub ring_base: u64,
    /// Distance from one ring header to the next.
    pub ring_stride: u64,
    /// Offset of the shared slot pool.
    pub var_pool_offset: u64,
    /// Size of the slot pool.
    pub var_pool_size: u64,
    /// Payloads up to this size travel inline (the threshold in force).
    pub effective_inline_threshold: u32,
}

/// 8 guests, 64 KiB rings, slot classes 1 KiB×64, 16 KiB×16 and 256 KiB×4, the
/// default inline threshold, 16 MiB payloads, heartbeats off.
#[uniffi::export]
pub fn default_segment_config() -> SegmentConfig {
    core::SegmentConfig::default().into()
}

/// Validate `config` against the creation rules and compute its layout. Throws
/// `RoamError.invalidConfig` naming the first rule broken.
#[uniffi::export]
pub fn segment_layout(config: SegmentConfig) -> Result<SegmentLayout, RoamError> {
    let core: core::SegmentConfig = config.into();
    let l = core::SegmentLayout::compute(&core)?;
    Ok(SegmentLayout {
        total_size: l.total_size,
        peer_table_offset: l.peer_table_offset,
        ring_base: l.ring_base,
        ring_stride: l.ring_stride,
        var_pool_offset: l.var_pool_offset,
        var_pool_size: l.var_pool_size,
        effective_inline_threshold: core.effective_inline_threshold(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_round_trips_and_lays_out() {
        let c = default_segment_config();
        assert_eq!(
            core::SegmentConfig::from(c.clone()),
            core::SegmentConfig::default()
        );
        let l = segment_layout(c).unwrap();
        assert_eq!(l.peer_table_offset, 128);
        assert_eq!(l.ring_base, 128 + 64 * 8);
        assert_eq!(l.effective_inline_threshold, 256);
        assert_eq!(l.total_size, l.var_pool_offset + l.var_pool_size);
    }

    #[test]
    fn bad_configs_name_the_rule() {
        let mut c = default_segment_config();
        c.bipbuf_capacity = 1000;
        match segment_layout(c) {
            Err(RoamError::InvalidConfig { message }) => {
                assert!(message.contains("multiple of 64"))
            }
            other => panic!("unexpected {other:?}"),
        }
        let mut c = default_segment_config();
        c.size_classes.clear();
        assert!(matches!(
            segment_layout(c),
            Err(RoamError::InvalidConfig { .. })
        ));
    }
}
