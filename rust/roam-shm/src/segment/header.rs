//! The 128-byte segment header at offset 0 of every roam v7 segment (notes §1).
//!
//! | off | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `ROAMHUB\x07` |
//! | 8 | 4 | version (7) |
//! | 12 | 4 | header_size (128) |
//! | 16 | 8 | total_size |
//! | 24 | 4 | max_payload_size |
//! | 28 | 4 | inline_threshold (0 → 256) |
//! | 32 | 4 | max_guests (≤ 255) |
//! | 36 | 4 | bipbuf_capacity |
//! | 40 | 8 | peer_table_offset (128) |
//! | 48 | 8 | var_pool_offset |
//! | 56 | 8 | heartbeat_interval (ns, 0 = off) |
//! | 64 | 4 | host_goodbye (atomic) |
//! | 68 | 4 | num_var_slot_classes |
//! | 72 | 8 | current_size (atomic) |
//! | 80 | 48 | reserved (0) |
//!
//! Every field except `host_goodbye` and `current_size` is written once by the host
//! before the segment is shared and is read-only afterwards.
//!
//! Two validations exist: [`SegmentHeader::validate`] is roam's (same checks, same
//! order, same messages) and [`SegmentHeader::validate_strict`] is ours, which also
//! checks that the offsets follow the layout formula and fit in the file. Every
//! header a roam 7.x host creates passes both.

use crate::region::{Region, RegionError};
use crate::segment::config::{self, ConfigError};
use crate::sync::Ordering;

use crate::sync::{AtomicU32, AtomicU64};

/// Magic bytes of a v7 roam segment.
pub const MAGIC: [u8; 8] = *b"ROAMHUB\x07";
/// Segment format version.
pub const SEGMENT_VERSION: u32 = 7;
/// Size of the segment header in bytes.
pub const SEGMENT_HEADER_SIZE: usize = 128;
/// Inline threshold used when the header's `inline_threshold` is 0.
pub const DEFAULT_INLINE_THRESHOLD: u32 = 256;
/// Largest `max_guests` the format allows (peer ids are one byte; 0 is the host).
pub const MAX_GUESTS_LIMIT: u32 = 255;
/// Largest number of size classes (class indices are one byte in slot-ref frames).
pub const MAX_SIZE_CLASSES: u32 = 255;

/// Errors of segment-header validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    /// roam's own validation failed (the message is roam's).
    #[error("not a roam v7 segment: {0}")]
    Roam(&'static str),
    /// A header field has a value the format does not allow.
    #[error("segment header field `{field}` = {value} is invalid: {reason}")]
    Field {
        /// Name of the field.
        field: &'static str,
        /// Its value.
        value: u64,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// The file (or region) is smaller than the header says the segment is.
    #[error("segment needs {needed} bytes but only {available} are mapped")]
    TooSmall {
        /// Bytes the header requires.
        needed: u64,
        /// Bytes available.
        available: u64,
    },
    /// The header's offsets do not follow the layout formula.
    #[error("segment layout: {0}")]
    Layout(#[from] ConfigError),
    /// The region cannot hold a header at offset 0.
    #[error("segment region: {0}")]
    Region(#[from] RegionError),
}

/// Values a host writes into a fresh header (roam's `SegmentHeaderInit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeaderInit {
    /// Total segment size in bytes (also the initial `current_size`).
    pub total_size: u64,
    /// Maximum payload size in bytes.
    pub max_payload_size: u32,
    /// Inline threshold (0 = the default, 256).
    pub inline_threshold: u32,
    /// Maximum number of guests (≤ 255).
    pub max_guests: u32,
    /// BipBuffer data bytes per direction.
    pub bipbuf_capacity: u32,
    /// Offset of the peer table (always 128).
    pub peer_table_offset: u64,
    /// Offset of the shared VarSlotPool.
    pub var_pool_offset: u64,
    /// Heartbeat interval in ns (0 = off).
    pub heartbeat_interval: u64,
    /// Number of size classes at `var_pool_offset`.
    pub num_var_slot_classes: u32,
}

/// The segment header, byte-compatible with roam 7.x (`repr(C)`, 128 bytes).
#[repr(C)]
pub struct SegmentHeader {
    /// `ROAMHUB\x07`.
    pub magic: [u8; 8],
    /// Format version (7).
    pub version: u32,
    /// Header size (128).
    pub header_size: u32,
    /// Segment size at creation.
    pub total_size: u64,
    /// Maximum payload size in bytes.
    pub max_payload_size: u32,
    /// Inline threshold; 0 means [`DEFAULT_INLINE_THRESHOLD`].
    pub inline_threshold: u32,
    /// Maximum number of guests.
    pub max_guests: u32,
    /// BipBuffer data bytes per direction.
    pub bipbuf_capacity: u32,
    /// Offset of the peer table (128).
    pub peer_table_offset: u64,
    /// Offset of the shared VarSlotPool.
    pub var_pool_offset: u64,
    /// Heartbeat interval in ns; 0 = heartbeats off.
    pub heartbeat_interval: u64,
    /// Non-zero once the host has started an orderly shutdown.
    pub host_goodbye: AtomicU32,
    /// Number of size classes (roam's spec table calls these bytes `_pad`).
    pub num_var_slot_classes: u32,
    /// Current segment size; starts equal to `total_size`, grows with the segment.
    pub current_size: AtomicU64,
    reserved: [u8; 48],
}

#[cfg(not(feature = "loom"))]
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<SegmentHeader>() == SEGMENT_HEADER_SIZE);
    assert!(align_of::<SegmentHeader>() == 8);
    assert!(offset_of!(SegmentHeader, magic) == 0);
    assert!(offset_of!(SegmentHeader, version) == 8);
    assert!(offset_of!(SegmentHeader, header_size) == 12);
    assert!(offset_of!(SegmentHeader, total_size) == 16);
    assert!(offset_of!(SegmentHeader, max_payload_size) == 24);
    assert!(offset_of!(SegmentHeader, inline_threshold) == 28);
    assert!(offset_of!(SegmentHeader, max_guests) == 32);
    assert!(offset_of!(SegmentHeader, bipbuf_capacity) == 36);
    assert!(offset_of!(SegmentHeader, peer_table_offset) == 40);
    assert!(offset_of!(SegmentHeader, var_pool_offset) == 48);
    assert!(offset_of!(SegmentHeader, heartbeat_interval) == 56);
    assert!(offset_of!(SegmentHeader, host_goodbye) == 64);
    assert!(offset_of!(SegmentHeader, num_var_slot_classes) == 68);
    assert!(offset_of!(SegmentHeader, current_size) == 72);
    assert!(offset_of!(SegmentHeader, reserved) == 80);
};

fn field(field: &'static str, value: u64, reason: &'static str) -> SegmentError {
    SegmentError::Field {
        field,
        value,
        reason,
    }
}

impl SegmentHeader {
    /// A header value with these fields (`host_goodbye` 0, `current_size` =
    /// `total_size`, reserved bytes zero).
    pub fn new(init: SegmentHeaderInit) -> SegmentHeader {
        SegmentHeader {
            magic: MAGIC,
            version: SEGMENT_VERSION,
            header_size: SEGMENT_HEADER_SIZE as u32,
            total_size: init.total_size,
            max_payload_size: init.max_payload_size,
            inline_threshold: init.inline_threshold,
            max_guests: init.max_guests,
            bipbuf_capacity: init.bipbuf_capacity,
            peer_table_offset: init.peer_table_offset,
            var_pool_offset: init.var_pool_offset,
            heartbeat_interval: init.heartbeat_interval,
            host_goodbye: AtomicU32::new(0),
            num_var_slot_classes: init.num_var_slot_classes,
            current_size: AtomicU64::new(init.total_size),
            reserved: [0; 48],
        }
    }

    /// Write initial values into a header (roam's `init`).
    ///
    /// # Safety
    /// `self` must be exclusively owned (no other thread or process reads it yet). The
    /// old contents are overwritten without being dropped, so zeroed memory is fine.
    pub unsafe fn init(&mut self, init: SegmentHeaderInit) {
        // SAFETY: `self` is a valid, exclusively borrowed, aligned place; `ptr::write`
        // does not drop the old (possibly not-yet-initialised) contents.
        unsafe { core::ptr::write(self as *mut SegmentHeader, SegmentHeader::new(init)) }
    }

    /// Initialise the header at offset 0 of `region` and return a view of it.
    ///
    /// # Safety
    /// The region must not be shared with any other thread or process yet.
    pub unsafe fn init_in<'a>(
        region: &Region<'a>,
        init: SegmentHeaderInit,
    ) -> Result<&'a SegmentHeader, SegmentError> {
        let p = region.typed_ptr::<SegmentHeader>(0)?;
        // SAFETY: `p` is in bounds and aligned (checked by typed_ptr); the caller
        // guarantees exclusive access, and `ptr::write` does not read the old bytes.
        unsafe { core::ptr::write(p, SegmentHeader::new(init)) };
        // SAFETY: just initialised; valid for 'a (the region's lifetime).
        Ok(unsafe { &*p })
    }

    /// A view of the header at offset 0 of `region` (bounds and alignment checked;
    /// the contents are not validated: call [`validate`](Self::validate) or
    /// [`validate_strict`](Self::validate_strict)).
    pub fn from_region<'a>(region: &Region<'a>) -> Result<&'a SegmentHeader, SegmentError> {
        let p = region.typed_ptr::<SegmentHeader>(0)?;
        // SAFETY: in bounds and aligned (checked above); every bit pattern is a valid
        // SegmentHeader (integers, byte arrays and atomics of integers), and the
        // region is valid for 'a.
        Ok(unsafe { &*p })
    }

    /// roam's validation: magic, then version, then header size, then a non-zero
    /// class count. Nothing else is checked (see [`validate_strict`](Self::validate_strict)).
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.magic != MAGIC {
            return Err("bad magic: not a roam v7 segment");
        }
        if self.version != SEGMENT_VERSION {
            return Err("unsupported segment version");
        }
        if self.header_size != SEGMENT_HEADER_SIZE as u32 {
            return Err("unexpected header_size");
        }
        if self.num_var_slot_classes == 0 {
            return Err("segment missing var-slot classes");
        }
        Ok(())
    }

    /// Our stricter validation for a segment mapped with `file_len` bytes: roam's
    /// checks, then every field the layout depends on (peer table at 128,
    /// 1 ≤ max_guests ≤ 255, a non-zero ring capacity, ≤ 255 classes, the pool offset
    /// given by the layout formula of §1, the class headers inside `total_size`,
    /// `current_size ≥ total_size`, and `total_size ≤ file_len`).
    ///
    /// The pool's exact size needs the size classes (stored in the pool itself): see
    /// [`config::SegmentLayout::from_header`] for the full check.
    pub fn validate_strict(&self, file_len: u64) -> Result<(), SegmentError> {
        self.validate().map_err(SegmentError::Roam)?;
        if self.peer_table_offset != SEGMENT_HEADER_SIZE as u64 {
            return Err(field(
                "peer_table_offset",
                self.peer_table_offset,
                "must be 128",
            ));
        }
        if self.max_guests == 0 || self.max_guests > MAX_GUESTS_LIMIT {
            return Err(field(
                "max_guests",
                self.max_guests.into(),
                "must be in 1..=255",
            ));
        }
        if self.bipbuf_capacity == 0 {
            return Err(field("bipbuf_capacity", 0, "must be non-zero"));
        }
        if self.num_var_slot_classes > MAX_SIZE_CLASSES {
            return Err(field(
                "num_var_slot_classes",
                self.num_var_slot_classes.into(),
                "must be at most 255",
            ));
        }
        let rings = config::ring_layout(self.max_guests, self.bipbuf_capacity)?;
        if self.var_pool_offset != rings.var_pool_offset {
            return Err(ConfigError::HeaderMismatch {
                field: "var_pool_offset",
                header: self.var_pool_offset,
                computed: rings.var_pool_offset,
            }
            .into());
        }
        let class_headers_end = self
            .var_pool_offset
            .checked_add(u64::from(self.num_var_slot_classes) * 64)
            .ok_or(ConfigError::Overflow("class headers end"))?;
        if self.total_size < class_headers_end {
            return Err(field(
                "total_size",
                self.total_size,
                "ends before the size-class headers",
            ));
        }
        let current = self.current_size();
        if current < self.total_size {
            return Err(field("current_size", current, "is smaller than total_size"));
        }
        if file_len < self.total_size {
            return Err(SegmentError::TooSmall {
                needed: self.total_size,
                available: file_len,
            });
        }
        Ok(())
    }

    /// The inline threshold in force (`inline_threshold`, or 256 when it is 0).
    #[inline]
    pub fn effective_inline_threshold(&self) -> u32 {
        if self.inline_threshold == 0 {
            DEFAULT_INLINE_THRESHOLD
        } else {
            self.inline_threshold
        }
    }

    /// The current segment size.
    #[inline]
    pub fn current_size(&self) -> u64 {
        // Acquire: pairs with the Release in `set_current_size`, so a guest that sees
        // the new size also sees the grown file's initialised contents.
        self.current_size.load(Ordering::Acquire)
    }

    /// Publish a new segment size after the host grew and remapped the file (the
    /// caller must then signal every doorbell).
    #[inline]
    pub fn set_current_size(&self, size: u64) {
        // Release: publishes everything the host wrote into the grown part first.
        self.current_size.store(size, Ordering::Release);
    }

    /// Whether the host has raised the goodbye flag.
    #[inline]
    pub fn host_goodbye(&self) -> bool {
        // Acquire: pairs with the Release in `set_host_goodbye`.
        self.host_goodbye.load(Ordering::Acquire) != 0
    }

    /// Raise the host goodbye flag (stores 1, as roam does).
    #[inline]
    pub fn set_host_goodbye(&self) {
        // Release: everything the host wrote before shutting down is visible to a
        // guest that observes the flag.
        self.host_goodbye.store(1, Ordering::Release);
    }

    /// The header's 48 reserved bytes (zero in every v7 segment).
    pub fn reserved(&self) -> &[u8; 48] {
        &self.reserved
    }
}

impl core::fmt::Debug for SegmentHeader {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SegmentHeader")
            .field("magic", &self.magic)
            .field("version", &self.version)
            .field("header_size", &self.header_size)
            .field("total_size", &self.total_size)
            .field("max_payload_size", &self.max_payload_size)
            .field("inline_threshold", &self.inline_threshold)
            .field("max_guests", &self.max_guests)
            .field("bipbuf_capacity", &self.bipbuf_capacity)
            .field("peer_table_offset", &self.peer_table_offset)
            .field("var_pool_offset", &self.var_pool_offset)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("host_goodbye", &self.host_goodbye())
            .field("num_var_slot_classes", &self.num_var_slot_classes)
            .field("current_size", &self.current_size())
            .finish()
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;
    use crate::region::HeapRegion;
    use crate::segment::config::{SegmentConfig, SegmentLayout};
    use crate::segment::var_pool::SizeClass;

    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }
    fn u64_at(b: &[u8], off: usize) -> u64 {
        u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
    }

    fn sample_init() -> SegmentHeaderInit {
        SegmentHeaderInit {
            total_size: 0x1122_3344_5566_7788,
            max_payload_size: 0xA1A2_A3A4,
            inline_threshold: 0xB1B2_B3B4,
            max_guests: 0xC1C2_C3C4,
            bipbuf_capacity: 0xD1D2_D3D4,
            peer_table_offset: 0x0102_0304_0506_0708,
            var_pool_offset: 0x1112_1314_1516_1718,
            heartbeat_interval: 0x2122_2324_2526_2728,
            num_var_slot_classes: 0xE1E2_E3E4,
        }
    }

    fn raw_bytes(region: &HeapRegion) -> Vec<u8> {
        let r = region.region();
        // SAFETY: the region holds at least 128 initialised bytes and nobody writes.
        unsafe { std::slice::from_raw_parts(r.as_ptr(), SEGMENT_HEADER_SIZE) }.to_vec()
    }

    #[test]
    fn fields_land_at_the_documented_offsets() {
        let region = HeapRegion::new_zeroed(SEGMENT_HEADER_SIZE);
        // SAFETY: fresh region, not shared.
        let h = unsafe { SegmentHeader::init_in(&region.region(), sample_init()) }.unwrap();
        h.set_host_goodbye();
        h.set_current_size(0x3132_3334_3536_3738);
        let b = raw_bytes(&region);
        assert_eq!(&b[0..8], b"ROAMHUB\x07");
        assert_eq!(u32_at(&b, 8), 7);
        assert_eq!(u32_at(&b, 12), 128);
        assert_eq!(u64_at(&b, 16), 0x1122_3344_5566_7788);
        assert_eq!(u32_at(&b, 24), 0xA1A2_A3A4);
        assert_eq!(u32_at(&b, 28), 0xB1B2_B3B4);
        assert_eq!(u32_at(&b, 32), 0xC1C2_C3C4);
        assert_eq!(u32_at(&b, 36), 0xD1D2_D3D4);
        assert_eq!(u64_at(&b, 40), 0x0102_0304_0506_0708);
        assert_eq!(u64_at(&b, 48), 0x1112_1314_1516_1718);
        assert_eq!(u64_at(&b, 56), 0x2122_2324_2526_2728);
        assert_eq!(u32_at(&b, 64), 1);
        assert_eq!(u32_at(&b, 68), 0xE1E2_E3E4);
        assert_eq!(u64_at(&b, 72), 0x3132_3334_3536_3738);
        assert!(b[80..128].iter().all(|&x| x == 0));
    }

    #[test]
    fn init_sets_current_size_and_clears_goodbye() {
        let h = SegmentHeader::new(sample_init());
        assert_eq!(h.current_size(), 0x1122_3344_5566_7788);
        assert!(!h.host_goodbye());
        assert_eq!(h.reserved(), &[0u8; 48]);
    }

    #[test]
    fn validate_checks_in_roams_order() {
        let mut h = SegmentHeader::new(sample_init());
        assert_eq!(h.validate(), Ok(()));
        // Break all four; the first in roam's order wins each time.
        h.magic[7] = 1;
        h.version = 6;
        h.header_size = 64;
        h.num_var_slot_classes = 0;
        assert_eq!(h.validate(), Err("bad magic: not a roam v7 segment"));
        h.magic = MAGIC;
        assert_eq!(h.validate(), Err("unsupported segment version"));
        h.version = 7;
        assert_eq!(h.validate(), Err("unexpected header_size"));
        h.header_size = 128;
        assert_eq!(h.validate(), Err("segment missing var-slot classes"));
        h.num_var_slot_classes = 1;
        assert_eq!(h.validate(), Ok(()));
    }

    #[test]
    fn effective_threshold_defaults_to_256() {
        let mut init = sample_init();
        init.inline_threshold = 0;
        assert_eq!(SegmentHeader::new(init).effective_inline_threshold(), 256);
        init.inline_threshold = 100;
        assert_eq!(SegmentHeader::new(init).effective_inline_threshold(), 100);
    }

    /// A header exactly as roam's `Segment::create` writes it for roam's own test
    /// configuration (4 guests, 16 KiB rings, classes 1 KiB×8 and 16 KiB×4).
    fn roam_like_header() -> (SegmentHeader, Vec<SizeClass>) {
        let classes = vec![
            SizeClass {
                slot_size: 1024,
                count: 8,
            },
            SizeClass {
                slot_size: 16384,
                count: 4,
            },
        ];
        // roam's formula, written out independently of ours.
        let ring_base = 128 + 4 * 64;
        let stride = (128u64 + 16384).div_ceil(64) * 64;
        let var_pool_offset = (ring_base + 4 * 2 * stride).div_ceil(64) * 64;
        let pool = crate::segment::var_pool::calculate_size(&classes).unwrap();
        let h = SegmentHeader::new(SegmentHeaderInit {
            total_size: var_pool_offset + pool,
            max_payload_size: 65536,
            inline_threshold: 0,
            max_guests: 4,
            bipbuf_capacity: 16384,
            peer_table_offset: 128,
            var_pool_offset,
            heartbeat_interval: 0,
            num_var_slot_classes: 2,
        });
        (h, classes)
    }

    #[test]
    fn strict_accepts_a_roam_created_header() {
        let (h, classes) = roam_like_header();
        h.validate_strict(h.total_size).unwrap();
        let l = SegmentLayout::from_header(&h, &classes).unwrap();
        assert_eq!(l.total_size, h.total_size);
    }

    #[test]
    fn strict_rejects_inconsistent_fields() {
        let (h, _) = roam_like_header();
        let total = h.total_size;
        assert!(matches!(
            h.validate_strict(total - 1),
            Err(SegmentError::TooSmall { .. })
        ));
        let (mut h, _) = roam_like_header();
        h.version = 8;
        assert_eq!(
            h.validate_strict(total),
            Err(SegmentError::Roam("unsupported segment version"))
        );
        let (mut h, _) = roam_like_header();
        h.peer_table_offset = 192;
        assert!(matches!(
            h.validate_strict(total),
            Err(SegmentError::Field {
                field: "peer_table_offset",
                ..
            })
        ));
        for bad in [0, 256] {
            let (mut h, _) = roam_like_header();
            h.max_guests = bad;
            assert!(matches!(
                h.validate_strict(total),
                Err(SegmentError::Field {
                    field: "max_guests",
                    ..
                })
            ));
        }
        let (mut h, _) = roam_like_header();
        h.var_pool_offset += 64;
        assert!(matches!(
            h.validate_strict(total),
            Err(SegmentError::Layout(ConfigError::HeaderMismatch { .. }))
        ));
        let (h, _) = roam_like_header();
        h.current_size.store(total - 1, Ordering::Relaxed);
        assert!(matches!(
            h.validate_strict(total),
            Err(SegmentError::Field {
                field: "current_size",
                ..
            })
        ));
        let (mut h, _) = roam_like_header();
        h.num_var_slot_classes = 300;
        assert!(h.validate_strict(total).is_err());
        let (mut h, _) = roam_like_header();
        h.total_size = h.var_pool_offset + 64;
        assert!(h.validate_strict(u64::MAX).is_err());
    }

    #[test]
    fn strict_accepts_our_own_default_layout() {
        let cfg = SegmentConfig::default();
        let l = SegmentLayout::compute(&cfg).unwrap();
        let h = SegmentHeader::new(l.header_init(&cfg));
        h.validate_strict(l.total_size).unwrap();
        assert_eq!(
            SegmentLayout::from_header(&h, &cfg.size_classes).unwrap(),
            l
        );
    }

    #[test]
    fn from_region_checks_bounds() {
        let small = HeapRegion::new_zeroed(64);
        assert!(SegmentHeader::from_region(&small.region()).is_err());
        let ok = HeapRegion::new_zeroed(128);
        let h = SegmentHeader::from_region(&ok.region()).unwrap();
        assert!(h.validate().is_err());
    }
}
