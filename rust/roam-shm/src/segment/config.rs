//! Segment configuration and THE layout formula of a roam v7 segment (notes §1).
//!
//! ```text
//! 0                     segment header (128 B)
//! 128                   peer table: max_guests × 64 B
//! ring_base             = 128 + 64·max_guests
//!   guest i (peer i+1): ring_offset(i) = ring_base + 2i·stride
//!                       G2H ring at ring_offset(i), H2G ring at ring_offset(i) + stride
//!                       stride = align64(128 + bipbuf_capacity)
//! var_pool_offset       = align64(ring_base + 2·max_guests·stride)
//! total_size            = var_pool_offset + var_pool::calculate_size(classes)
//! ```
//!
//! [`SegmentLayout`] is the only place this arithmetic lives; everything else asks it.
//! All arithmetic is checked (`u64`), so a hostile header cannot make it wrap.
//!
//! [`SegmentConfig::validate`] holds our creation-time rules, which are stricter than
//! roam's (roam validates nothing at creation): see [`ConfigError`] for each rule.

use std::time::Duration;

use crate::segment::header::{
    DEFAULT_INLINE_THRESHOLD, MAX_GUESTS_LIMIT, MAX_SIZE_CLASSES, SEGMENT_HEADER_SIZE,
    SegmentHeader, SegmentHeaderInit,
};
use crate::segment::peer::PEER_ENTRY_SIZE;
use crate::segment::var_pool::{self, SizeClass, align64};

/// Size of one BipBuffer header in the segment (the ring data follows it).
pub const RING_HEADER_SIZE: u64 = 128;
/// Smallest ring capacity we create.
pub const MIN_BIPBUF_CAPACITY: u32 = 256;
/// Largest ring capacity we create (ring offsets are `u32`).
pub const MAX_BIPBUF_CAPACITY: u32 = 1 << 30;
/// Bytes of the length prefix at the start of a slot (slot-ref frames, §4).
pub const SLOT_LEN_PREFIX: u32 = 4;
/// Size of an inline frame's header (§4).
const FRAME_HEADER_LEN: u64 = 8;

/// Errors of configuration validation and layout arithmetic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `max_guests` is out of range.
    #[error("max_guests must be in 1..=255, got {0}")]
    MaxGuests(u32),
    /// The ring capacity is not a multiple of 64 (Swift places the H2G ring at
    /// `ring_offset + 128 + capacity` without rounding, so it must already be aligned).
    #[error("bipbuf_capacity must be a multiple of 64, got {0}")]
    CapacityNotAligned(u32),
    /// The ring capacity is out of range.
    #[error("bipbuf_capacity must be in {min}..={max}, got {capacity}")]
    CapacityOutOfRange {
        /// The requested capacity.
        capacity: u32,
        /// Smallest allowed.
        min: u32,
        /// Largest allowed.
        max: u32,
    },
    /// No size classes were given (roam refuses a segment without classes).
    #[error("at least one var-slot size class is required")]
    NoSizeClasses,
    /// More than 255 classes (the class index is one byte).
    #[error("at most 255 size classes are allowed, got {0}")]
    TooManySizeClasses(usize),
    /// A class's slots cannot hold the 4-byte length prefix plus one byte.
    #[error("size class {index}: slot_size {slot_size} must be greater than 4")]
    SlotTooSmall {
        /// Index of the class.
        index: usize,
        /// Its slot size.
        slot_size: u32,
    },
    /// A class has no slots, or `u32::MAX` slots (that index is the free-list end).
    #[error("size class {index}: count {count} must be in 1..=4294967294")]
    BadSlotCount {
        /// Index of the class.
        index: usize,
        /// Its slot count.
        count: u32,
    },
    /// The classes are not sorted by ascending slot size (the allocator falls
    /// through to the *next* classes when one is exhausted, so order matters).
    #[error("size class {index}: slot_size {slot_size} is smaller than the previous class's")]
    ClassesNotSorted {
        /// Index of the first out-of-order class.
        index: usize,
        /// Its slot size.
        slot_size: u32,
    },
    /// The inline threshold does not fit the inline frame's `u16` length field.
    #[error("inline_threshold {0} does not fit the 16-bit inline length field")]
    InlineThresholdTooLarge(u32),
    /// The largest inline entry is more than half a ring: the BipBuffer can stall
    /// (notes §13), so such segments are refused.
    #[error(
        "inline_threshold {threshold}: the largest inline entry ({entry} B) must be at most half the ring capacity ({capacity} B)"
    )]
    InlineEntryTooLargeForRing {
        /// The effective threshold.
        threshold: u32,
        /// `align4(8 + threshold)`.
        entry: u64,
        /// The ring capacity.
        capacity: u32,
    },
    /// `max_payload_size` is 0 or smaller than the inline threshold.
    #[error(
        "max_payload_size {max_payload_size} must be at least the inline threshold {threshold} and non-zero"
    )]
    MaxPayload {
        /// The configured maximum.
        max_payload_size: u32,
        /// The effective inline threshold.
        threshold: u32,
    },
    /// The heartbeat interval does not fit in `u64` nanoseconds.
    #[error("heartbeat_interval does not fit in u64 nanoseconds")]
    HeartbeatTooLarge,
    /// A size or offset overflows `u64`.
    #[error("layout arithmetic overflows: {0}")]
    Overflow(&'static str),
    /// A header field disagrees with the layout formula.
    #[error("header field `{field}` is {header}, the layout formula gives {computed}")]
    HeaderMismatch {
        /// The field.
        field: &'static str,
        /// Its value in the header.
        header: u64,
        /// The value the formula gives.
        computed: u64,
    },
}

/// Parameters of a segment a host creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentConfig {
    /// Number of guest slots, 1..=255.
    pub max_guests: u32,
    /// Ring data bytes per direction; a multiple of 64.
    pub bipbuf_capacity: u32,
    /// Slot classes of the shared pool, ascending by slot size.
    pub size_classes: Vec<SizeClass>,
    /// Inline threshold written into the header (0 = roam's default, 256).
    pub inline_threshold: u32,
    /// Largest payload a sender may send.
    pub max_payload_size: u32,
    /// Heartbeat interval; zero turns heartbeats off. roam 7.x guests never
    /// heartbeat, so a non-zero interval makes every roam guest look stale.
    pub heartbeat_interval: Duration,
}

impl Default for SegmentConfig {
    /// 8 guests, 64 KiB rings, classes 1 KiB×64, 16 KiB×16, 256 KiB×4 (about 2.4 MiB in
    /// all), the default inline threshold (256), 16 MiB payloads, heartbeats off.
    fn default() -> Self {
        SegmentConfig {
            max_guests: 8,
            bipbuf_capacity: 64 * 1024,
            size_classes: vec![
                SizeClass {
                    slot_size: 1024,
                    count: 64,
                },
                SizeClass {
                    slot_size: 16 * 1024,
                    count: 16,
                },
                SizeClass {
                    slot_size: 256 * 1024,
                    count: 4,
                },
            ],
            inline_threshold: 0,
            max_payload_size: 16 * 1024 * 1024,
            heartbeat_interval: Duration::ZERO,
        }
    }
}

/// `align4(8 + threshold)`: the size of the largest inline entry.
pub fn largest_inline_entry(threshold: u32) -> u64 {
    (FRAME_HEADER_LEN + u64::from(threshold) + 3) & !3
}

impl SegmentConfig {
    /// The inline threshold in force (0 → 256).
    pub fn effective_inline_threshold(&self) -> u32 {
        if self.inline_threshold == 0 {
            DEFAULT_INLINE_THRESHOLD
        } else {
            self.inline_threshold
        }
    }

    /// The heartbeat interval in nanoseconds.
    pub fn heartbeat_interval_ns(&self) -> Result<u64, ConfigError> {
        u64::try_from(self.heartbeat_interval.as_nanos())
            .map_err(|_| ConfigError::HeartbeatTooLarge)
    }

    /// Check our creation rules (the first failing rule is reported).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_guests == 0 || self.max_guests > MAX_GUESTS_LIMIT {
            return Err(ConfigError::MaxGuests(self.max_guests));
        }
        let cap = self.bipbuf_capacity;
        if !(MIN_BIPBUF_CAPACITY..=MAX_BIPBUF_CAPACITY).contains(&cap) {
            return Err(ConfigError::CapacityOutOfRange {
                capacity: cap,
                min: MIN_BIPBUF_CAPACITY,
                max: MAX_BIPBUF_CAPACITY,
            });
        }
        if cap % 64 != 0 {
            return Err(ConfigError::CapacityNotAligned(cap));
        }
        if self.size_classes.is_empty() {
            return Err(ConfigError::NoSizeClasses);
        }
        if self.size_classes.len() > MAX_SIZE_CLASSES as usize {
            return Err(ConfigError::TooManySizeClasses(self.size_classes.len()));
        }
        let mut prev = 0u32;
        for (index, c) in self.size_classes.iter().enumerate() {
            if c.slot_size <= SLOT_LEN_PREFIX {
                return Err(ConfigError::SlotTooSmall {
                    index,
                    slot_size: c.slot_size,
                });
            }
            if c.count == 0 || c.count == u32::MAX {
                return Err(ConfigError::BadSlotCount {
                    index,
                    count: c.count,
                });
            }
            if c.slot_size < prev {
                return Err(ConfigError::ClassesNotSorted {
                    index,
                    slot_size: c.slot_size,
                });
            }
            prev = c.slot_size;
        }
        let threshold = self.effective_inline_threshold();
        if threshold > u32::from(u16::MAX) {
            return Err(ConfigError::InlineThresholdTooLarge(threshold));
        }
        let entry = largest_inline_entry(threshold);
        if entry > u64::from(cap / 2) {
            return Err(ConfigError::InlineEntryTooLargeForRing {
                threshold,
                entry,
                capacity: cap,
            });
        }
        if self.max_payload_size == 0 || self.max_payload_size < threshold {
            return Err(ConfigError::MaxPayload {
                max_payload_size: self.max_payload_size,
                threshold,
            });
        }
        self.heartbeat_interval_ns()?;
        Ok(())
    }
}

/// Where the rings end and the pool starts, from `max_guests` and the capacity alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingLayout {
    /// Offset of guest 0's G2H ring (`128 + 64·max_guests`).
    pub ring_base: u64,
    /// Distance between one ring and the next (`align64(128 + capacity)`).
    pub stride: u64,
    /// `align64(ring_base + 2·max_guests·stride)`.
    pub var_pool_offset: u64,
}

/// The ring part of the formula (no validation beyond overflow).
pub fn ring_layout(max_guests: u32, bipbuf_capacity: u32) -> Result<RingLayout, ConfigError> {
    let guests = u64::from(max_guests);
    let ring_base = (SEGMENT_HEADER_SIZE as u64)
        .checked_add(guests * PEER_ENTRY_SIZE as u64)
        .ok_or(ConfigError::Overflow("ring_base"))?;
    let stride = align64(RING_HEADER_SIZE + u64::from(bipbuf_capacity))
        .ok_or(ConfigError::Overflow("ring stride"))?;
    let rings = guests
        .checked_mul(2)
        .and_then(|n| n.checked_mul(stride))
        .and_then(|n| n.checked_add(ring_base))
        .ok_or(ConfigError::Overflow("ring area"))?;
    let var_pool_offset = align64(rings).ok_or(ConfigError::Overflow("var_pool_offset"))?;
    Ok(RingLayout {
        ring_base,
        stride,
        var_pool_offset,
    })
}

/// Byte layout of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentLayout {
    /// Number of guest slots.
    pub max_guests: u32,
    /// Ring data bytes per direction.
    pub bipbuf_capacity: u32,
    /// Offset of the peer table (128).
    pub peer_table_offset: u64,
    /// Offset of guest 0's ring pair.
    pub ring_base: u64,
    /// Distance from one ring header to the next (`align64(128 + capacity)`).
    pub ring_stride: u64,
    /// Offset of the shared VarSlotPool.
    pub var_pool_offset: u64,
    /// Size of the pool.
    pub var_pool_size: u64,
    /// Size of the whole segment.
    pub total_size: u64,
    /// The pool's size classes.
    pub size_classes: Vec<SizeClass>,
}

impl SegmentLayout {
    /// Validate `config` and compute its layout.
    pub fn compute(config: &SegmentConfig) -> Result<SegmentLayout, ConfigError> {
        config.validate()?;
        Self::formula(
            config.max_guests,
            config.bipbuf_capacity,
            &config.size_classes,
        )
    }

    /// The layout of an existing segment (a guest's view): recompute the formula from
    /// the header's `max_guests` and capacity and the classes read back from the pool,
    /// and check that the header's offsets and size agree with it. Our creation rules
    /// (sorted classes, the §13 ring rule, ...) are *not* applied: a roam-created
    /// segment is accepted as long as it is self-consistent.
    pub fn from_header(
        header: &SegmentHeader,
        classes: &[SizeClass],
    ) -> Result<SegmentLayout, ConfigError> {
        if header.max_guests == 0 || header.max_guests > MAX_GUESTS_LIMIT {
            return Err(ConfigError::MaxGuests(header.max_guests));
        }
        if classes.len() as u64 != u64::from(header.num_var_slot_classes) {
            return Err(ConfigError::HeaderMismatch {
                field: "num_var_slot_classes",
                header: header.num_var_slot_classes.into(),
                computed: classes.len() as u64,
            });
        }
        let l = Self::formula(header.max_guests, header.bipbuf_capacity, classes)?;
        let checks = [
            (
                "peer_table_offset",
                header.peer_table_offset,
                l.peer_table_offset,
            ),
            ("var_pool_offset", header.var_pool_offset, l.var_pool_offset),
            ("total_size", header.total_size, l.total_size),
        ];
        for (field, h, c) in checks {
            if h != c {
                return Err(ConfigError::HeaderMismatch {
                    field,
                    header: h,
                    computed: c,
                });
            }
        }
        Ok(l)
    }

    /// The formula itself, with overflow checks only.
    fn formula(
        max_guests: u32,
        bipbuf_capacity: u32,
        classes: &[SizeClass],
    ) -> Result<SegmentLayout, ConfigError> {
        let rings = ring_layout(max_guests, bipbuf_capacity)?;
        let var_pool_size =
            var_pool::calculate_size(classes).ok_or(ConfigError::Overflow("var pool size"))?;
        let total_size = rings
            .var_pool_offset
            .checked_add(var_pool_size)
            .ok_or(ConfigError::Overflow("total_size"))?;
        Ok(SegmentLayout {
            max_guests,
            bipbuf_capacity,
            peer_table_offset: SEGMENT_HEADER_SIZE as u64,
            ring_base: rings.ring_base,
            ring_stride: rings.stride,
            var_pool_offset: rings.var_pool_offset,
            var_pool_size,
            total_size,
            size_classes: classes.to_vec(),
        })
    }

    /// Offset of guest `index`'s peer entry (peer id `index + 1`); `None` when
    /// `index ≥ max_guests`.
    pub fn peer_entry_offset(&self, index: u32) -> Option<u64> {
        (index < self.max_guests)
            .then(|| self.peer_table_offset + u64::from(index) * PEER_ENTRY_SIZE as u64)
    }

    /// Offset of guest `index`'s ring pair (the value stored in its peer entry).
    /// No overflow is possible: the whole segment fits in `u64` (checked at compute).
    pub fn ring_offset(&self, index: u32) -> Option<u64> {
        (index < self.max_guests).then(|| self.ring_base + 2 * u64::from(index) * self.ring_stride)
    }

    /// Offset of guest `index`'s guest→host ring header.
    pub fn g2h_offset(&self, index: u32) -> Option<u64> {
        self.ring_offset(index)
    }

    /// Offset of guest `index`'s host→guest ring header.
    pub fn h2g_offset(&self, index: u32) -> Option<u64> {
        self.ring_offset(index).map(|o| o + self.ring_stride)
    }

    /// The header values for this layout and `config` (which must be the config the
    /// layout was computed from).
    pub fn header_init(&self, config: &SegmentConfig) -> SegmentHeaderInit {
        SegmentHeaderInit {
            total_size: self.total_size,
            max_payload_size: config.max_payload_size,
            inline_threshold: config.inline_threshold,
            max_guests: self.max_guests,
            bipbuf_capacity: self.bipbuf_capacity,
            peer_table_offset: self.peer_table_offset,
            var_pool_offset: self.var_pool_offset,
            // Validated by `compute`; saturate rather than panic if misused.
            heartbeat_interval: config.heartbeat_interval_ns().unwrap_or(u64::MAX),
            num_var_slot_classes: self.size_classes.len() as u32,
        }
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;

    fn cfg() -> SegmentConfig {
        SegmentConfig {
            max_guests: 2,
            bipbuf_capacity: 1024,
            size_classes: vec![
                SizeClass {
                    slot_size: 1024,
                    count: 3,
                },
                SizeClass {
                    slot_size: 4096,
                    count: 5,
                },
            ],
            inline_threshold: 256,
            max_payload_size: 1 << 20,
            heartbeat_interval: Duration::ZERO,
        }
    }

    #[test]
    fn worked_example() {
        let l = SegmentLayout::compute(&cfg()).unwrap();
        // header 128, peer table 2×64 → ring_base 256; stride align64(128+1024) = 1152
        assert_eq!(l.peer_table_offset, 128);
        assert_eq!(l.ring_base, 256);
        assert_eq!(l.ring_stride, 1152);
        assert_eq!(l.ring_offset(0), Some(256));
        assert_eq!(l.g2h_offset(0), Some(256));
        assert_eq!(l.h2g_offset(0), Some(256 + 1152));
        assert_eq!(l.ring_offset(1), Some(256 + 2 * 1152));
        assert_eq!(l.h2g_offset(1), Some(256 + 3 * 1152));
        assert_eq!(l.ring_offset(2), None);
        assert_eq!(l.peer_entry_offset(1), Some(192));
        assert_eq!(l.peer_entry_offset(2), None);
        // rings end at 256 + 4×1152 = 4864 (already 64-aligned)
        assert_eq!(l.var_pool_offset, 4864);
        // pool: 2 headers 128; class0 meta 48→64, data 3072; class1 meta 80→128, data 20480
        assert_eq!(l.var_pool_size, 128 + 64 + 3072 + 128 + 20480);
        assert_eq!(l.total_size, 4864 + l.var_pool_size);
    }

    #[test]
    fn unaligned_ring_end_is_rounded() {
        // A roam (Rust) host may use a capacity that is not a multiple of 64; the
        // formula still rounds the stride.
        let r = ring_layout(1, 100).unwrap();
        assert_eq!(r.ring_base, 192);
        assert_eq!(r.stride, 256);
        assert_eq!(r.var_pool_offset, 192 + 512);
    }

    #[test]
    fn default_is_valid() {
        let d = SegmentConfig::default();
        d.validate().unwrap();
        let l = SegmentLayout::compute(&d).unwrap();
        assert!(l.total_size < 4 << 20);
    }

    #[test]
    fn rejections() {
        let check = |f: &dyn Fn(&mut SegmentConfig), want: &dyn Fn(&ConfigError) -> bool| {
            let mut c = cfg();
            f(&mut c);
            let e = c.validate().unwrap_err();
            assert!(want(&e), "unexpected {e:?}");
            assert!(!e.to_string().is_empty());
            assert_eq!(SegmentLayout::compute(&c), Err(e));
        };
        check(&|c| c.max_guests = 0, &|e| {
            matches!(e, ConfigError::MaxGuests(0))
        });
        check(&|c| c.max_guests = 256, &|e| {
            matches!(e, ConfigError::MaxGuests(256))
        });
        check(&|c| c.bipbuf_capacity = 1000, &|e| {
            matches!(e, ConfigError::CapacityNotAligned(1000))
        });
        check(&|c| c.bipbuf_capacity = 128, &|e| {
            matches!(e, ConfigError::CapacityOutOfRange { .. })
        });
        check(&|c| c.size_classes.clear(), &|e| {
            matches!(e, ConfigError::NoSizeClasses)
        });
        check(
            &|c| {
                c.size_classes = vec![
                    SizeClass {
                        slot_size: 64,
                        count: 1
                    };
                    256
                ]
            },
            &|e| matches!(e, ConfigError::TooManySizeClasses(256)),
        );
        check(&|c| c.size_classes[0].slot_size = 4, &|e| {
            matches!(e, ConfigError::SlotTooSmall { index: 0, .. })
        });
        check(&|c| c.size_classes[1].count = 0, &|e| {
            matches!(e, ConfigError::BadSlotCount { index: 1, .. })
        });
        check(&|c| c.size_classes[1].slot_size = 512, &|e| {
            matches!(e, ConfigError::ClassesNotSorted { index: 1, .. })
        });
        // 1024-byte ring: the largest inline entry must be ≤ 512, so threshold ≤ 504.
        check(&|c| c.inline_threshold = 505, &|e| {
            matches!(
                e,
                ConfigError::InlineEntryTooLargeForRing { entry: 516, .. }
            )
        });
        check(
            &|c| {
                c.bipbuf_capacity = 1 << 20;
                c.inline_threshold = 70_000;
            },
            &|e| matches!(e, ConfigError::InlineThresholdTooLarge(70_000)),
        );
        check(&|c| c.max_payload_size = 100, &|e| {
            matches!(e, ConfigError::MaxPayload { .. })
        });
        check(&|c| c.heartbeat_interval = Duration::MAX, &|e| {
            matches!(e, ConfigError::HeartbeatTooLarge)
        });
        // The boundary itself is accepted.
        let mut c = cfg();
        c.inline_threshold = 504;
        c.validate().unwrap();
    }

    #[test]
    fn overflow_is_reported_not_wrapped() {
        let huge = SizeClass {
            slot_size: u32::MAX,
            count: u32::MAX - 1,
        };
        let mut c = cfg();
        c.size_classes = vec![huge; 2];
        assert!(matches!(
            SegmentLayout::compute(&c),
            Err(ConfigError::Overflow(_))
        ));
    }

    #[test]
    fn from_header_detects_mismatches() {
        let c = cfg();
        let l = SegmentLayout::compute(&c).unwrap();
        let h = SegmentHeader::new(l.header_init(&c));
        assert_eq!(SegmentLayout::from_header(&h, &c.size_classes).unwrap(), l);
        // Wrong class count.
        assert!(SegmentLayout::from_header(&h, &c.size_classes[..1]).is_err());
        // Different classes → different pool size → total mismatch.
        let mut other = c.size_classes.clone();
        other[1].count += 1;
        assert!(matches!(
            SegmentLayout::from_header(&h, &other),
            Err(ConfigError::HeaderMismatch {
                field: "total_size",
                ..
            })
        ));
    }
}
