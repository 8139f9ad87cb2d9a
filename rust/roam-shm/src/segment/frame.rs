//! Frames inside a BipBuffer (notes §4): an 8-byte header, then an inline payload,
//! a slot reference or an mmap reference. Little-endian.
//!
//! | off | size | header field |
//! |---|---|---|
//! | 0 | 4 | total_len: entry size including the header, a multiple of 4 |
//! | 4 | 1 | flags: 0x01 SLOT_REF, 0x02 MMAP_REF (both = invalid) |
//! | 5 | 1 | reserved (0) |
//! | 6 | 2 | inline_payload_len (inline only; 0 = "total_len − 8") |
//!
//! Entries: inline `align4(8 + len)` bytes with zeroed padding; slot-ref 20 bytes
//! (class u8, extent u8, reserved u16, slot u32, generation u32); mmap-ref 32 bytes
//! (map_id u32, map_generation u32, map_offset u64, payload_len u32, reserved u32).
//!
//! Encoding writes into the range a BipBuffer grant returned; decoding reads a
//! committed range. [`decode`] never panics and never reads past its input.
//!
//! ## Incomplete frames
//! [`FrameError::Incomplete`] means "the input is shorter than the entry says". A
//! producer commits whole entries, so on a range the consumer read *after the
//! producer committed* an incomplete entry can never become complete: callers must
//! treat it as corruption (roam waits for more bytes, which hangs on a corrupt peer,
//! notes §13). It is a separate variant only for callers that decode partial input.
//!
//! ## Inline length
//! We always write the exact payload length in `inline_payload_len` (roam's Rust
//! writer does too). roam's reader takes 0 as "total − 8" (a legacy writer that
//! left it 0 includes the padding), and so do we. Inline payloads longer than
//! 65535 bytes cannot be encoded ([`FrameError::InlineTooLong`]); our configurations
//! keep the threshold below that.
//!
//! Flag bits other than 0x01/0x02 are ignored, as roam does.

use crate::segment::config::{SLOT_LEN_PREFIX, SegmentConfig};
use crate::segment::header::SegmentHeader;
use crate::segment::var_pool::SizeClass;

/// Size of the frame header.
pub const FRAME_HEADER_SIZE: usize = 8;
/// Flag: the body is a slot reference.
pub const FLAG_SLOT_REF: u8 = 0x01;
/// Flag: the body is an mmap reference.
pub const FLAG_MMAP_REF: u8 = 0x02;
/// Size of a slot-ref body.
pub const SLOT_REF_BODY_SIZE: usize = 12;
/// Size of a slot-ref entry.
pub const SLOT_REF_ENTRY_SIZE: usize = FRAME_HEADER_SIZE + SLOT_REF_BODY_SIZE;
/// Size of an mmap-ref body.
pub const MMAP_REF_BODY_SIZE: usize = 24;
/// Size of an mmap-ref entry.
pub const MMAP_REF_ENTRY_SIZE: usize = FRAME_HEADER_SIZE + MMAP_REF_BODY_SIZE;
/// Largest inline payload the 16-bit length field can describe.
pub const MAX_INLINE_PAYLOAD: usize = u16::MAX as usize;

/// Errors of frame encoding, decoding and routing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Fewer bytes than the entry needs (see the module docs: corruption on a
    /// committed range).
    #[error("incomplete frame: needs {needed} bytes, {available} available")]
    Incomplete {
        /// Bytes the entry needs (8 when the header itself is cut).
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// `total_len` is smaller than the header.
    #[error("frame total_len {0} is smaller than the 8-byte header")]
    TotalTooSmall(u32),
    /// `total_len` is not a multiple of 4.
    #[error("frame total_len {0} is not a multiple of 4")]
    TotalMisaligned(u32),
    /// Both SLOT_REF and MMAP_REF are set.
    #[error("frame flags {0:#04x} set both SLOT_REF and MMAP_REF")]
    BothFlags(u8),
    /// The entry is too short for its body.
    #[error("{kind} frame of {total} bytes is shorter than its {needed}-byte entry")]
    BodyTooShort {
        /// "slot-ref" or "mmap-ref".
        kind: &'static str,
        /// The entry's total_len.
        total: u32,
        /// The size the body needs.
        needed: usize,
    },
    /// The inline length is larger than the entry.
    #[error("inline payload length {len} exceeds the {total}-byte entry")]
    InlineLenTooLarge {
        /// `inline_payload_len`.
        len: u16,
        /// The entry's total_len.
        total: u32,
    },
    /// The destination is smaller than the entry to encode.
    #[error("destination of {available} bytes cannot hold a {needed}-byte entry")]
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// The inline payload is longer than 65535 bytes.
    #[error("inline payload of {0} bytes exceeds 65535")]
    InlineTooLong(usize),
    /// The payload exceeds the segment's `max_payload_size`.
    #[error("payload of {len} bytes exceeds max_payload_size {max}")]
    PayloadTooLarge {
        /// Payload length.
        len: usize,
        /// The limit.
        max: u32,
    },
    /// A slot's length prefix is larger than the slot can hold.
    #[error("slot payload length {len} exceeds slot size {slot_size} − 4")]
    SlotLenTooLarge {
        /// The prefix value.
        len: u32,
        /// The slot size.
        slot_size: u32,
    },
}

impl FrameError {
    /// Whether this is [`FrameError::Incomplete`].
    pub fn is_incomplete(&self) -> bool {
        matches!(self, FrameError::Incomplete { .. })
    }
}

/// The 8-byte frame header (`repr(C)` mirror of the wire layout; encode and decode
/// go through [`FrameHeader::to_bytes`]/[`FrameHeader::from_bytes`]).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Entry size including the header.
    pub total_len: u32,
    /// Flag bits.
    pub flags: u8,
    /// Reserved (0).
    pub reserved: u8,
    /// Inline payload length (0 = total − 8).
    pub inline_payload_len: u16,
}

const _: () = {
    assert!(core::mem::size_of::<FrameHeader>() == FRAME_HEADER_SIZE);
    assert!(core::mem::offset_of!(FrameHeader, flags) == 4);
    assert!(core::mem::offset_of!(FrameHeader, reserved) == 5);
    assert!(core::mem::offset_of!(FrameHeader, inline_payload_len) == 6);
};

impl FrameHeader {
    /// Wire bytes.
    pub fn to_bytes(&self) -> [u8; FRAME_HEADER_SIZE] {
        let mut b = [0u8; FRAME_HEADER_SIZE];
        b[0..4].copy_from_slice(&self.total_len.to_le_bytes());
        b[4] = self.flags;
        b[5] = self.reserved;
        b[6..8].copy_from_slice(&self.inline_payload_len.to_le_bytes());
        b
    }

    /// Parse wire bytes (no validation).
    pub fn from_bytes(b: &[u8; FRAME_HEADER_SIZE]) -> FrameHeader {
        FrameHeader {
            total_len: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            flags: b[4],
            reserved: b[5],
            inline_payload_len: u16::from_le_bytes([b[6], b[7]]),
        }
    }
}

/// A decoded frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Payload bytes inside the ring.
    Inline {
        /// The payload.
        payload: &'a [u8],
    },
    /// A slot of the shared pool; the slot starts with a `u32` payload length and
    /// the receiver frees the slot when done.
    SlotRef {
        /// Size class.
        class_idx: u8,
        /// Extent (always 0 in v7).
        extent_idx: u8,
        /// Slot index in the class.
        slot_idx: u32,
        /// Slot generation at allocation.
        generation: u32,
    },
    /// A payload in a separately mapped region (§7).
    MmapRef {
        /// Mapping id.
        map_id: u32,
        /// Mapping generation.
        map_generation: u32,
        /// Offset of the payload in the mapping.
        map_offset: u64,
        /// Payload length.
        payload_len: u32,
    },
}

/// Entry size of an inline frame for a `len`-byte payload: `align4(8 + len)`.
pub fn inline_entry_len(len: usize) -> Result<usize, FrameError> {
    if len > MAX_INLINE_PAYLOAD {
        return Err(FrameError::InlineTooLong(len));
    }
    // Cannot overflow: len ≤ 65535.
    Ok((FRAME_HEADER_SIZE + len + 3) & !3)
}

impl Frame<'_> {
    /// Bytes this frame occupies in the ring.
    pub fn encoded_len(&self) -> Result<usize, FrameError> {
        match self {
            Frame::Inline { payload } => inline_entry_len(payload.len()),
            Frame::SlotRef { .. } => Ok(SLOT_REF_ENTRY_SIZE),
            Frame::MmapRef { .. } => Ok(MMAP_REF_ENTRY_SIZE),
        }
    }
}

/// Encode `frame` at the start of `dst`; returns the bytes written (the entry size).
pub fn encode(dst: &mut [u8], frame: &Frame<'_>) -> Result<usize, FrameError> {
    match *frame {
        Frame::Inline { payload } => encode_inline(dst, payload),
        Frame::SlotRef {
            class_idx,
            extent_idx,
            slot_idx,
            generation,
        } => encode_slot_ref(dst, class_idx, extent_idx, slot_idx, generation),
        Frame::MmapRef {
            map_id,
            map_generation,
            map_offset,
            payload_len,
        } => encode_mmap_ref(dst, map_id, map_generation, map_offset, payload_len),
    }
}

fn entry(dst: &mut [u8], needed: usize) -> Result<&mut [u8], FrameError> {
    let available = dst.len();
    dst.get_mut(..needed)
        .ok_or(FrameError::BufferTooSmall { needed, available })
}

/// Encode an inline frame: `align4(8 + len)` bytes, exact `inline_payload_len`,
/// zeroed padding. Returns the entry size.
pub fn encode_inline(dst: &mut [u8], payload: &[u8]) -> Result<usize, FrameError> {
    let total = inline_entry_len(payload.len())?;
    let e = entry(dst, total)?;
    let hdr = FrameHeader {
        total_len: total as u32,
        flags: 0,
        reserved: 0,
        // ≤ 65535, checked by inline_entry_len.
        inline_payload_len: payload.len() as u16,
    };
    let (h, body) = e.split_at_mut(FRAME_HEADER_SIZE);
    h.copy_from_slice(&hdr.to_bytes());
    let (p, pad) = body.split_at_mut(payload.len());
    p.copy_from_slice(payload);
    pad.fill(0);
    Ok(total)
}

/// Encode an inline frame whose `len` payload bytes are already in place at
/// `dst[8..8 + len]` (zero-copy sends): writes the header and zeroes the padding,
/// leaving the payload untouched. Returns the entry size.
pub fn encode_inline_header(dst: &mut [u8], len: usize) -> Result<usize, FrameError> {
    let total = inline_entry_len(len)?;
    let e = entry(dst, total)?;
    let hdr = FrameHeader {
        total_len: total as u32,
        flags: 0,
        reserved: 0,
        // ≤ 65535, checked by inline_entry_len.
        inline_payload_len: len as u16,
    };
    e[..FRAME_HEADER_SIZE].copy_from_slice(&hdr.to_bytes());
    e[FRAME_HEADER_SIZE + len..].fill(0);
    Ok(total)
}

/// Encode a 20-byte slot-ref frame. Returns 20.
pub fn encode_slot_ref(
    dst: &mut [u8],
    class_idx: u8,
    extent_idx: u8,
    slot_idx: u32,
    generation: u32,
) -> Result<usize, FrameError> {
    let e = entry(dst, SLOT_REF_ENTRY_SIZE)?;
    let hdr = FrameHeader {
        total_len: SLOT_REF_ENTRY_SIZE as u32,
        flags: FLAG_SLOT_REF,
        reserved: 0,
        inline_payload_len: 0,
    };
    e[..8].copy_from_slice(&hdr.to_bytes());
    e[8] = class_idx;
    e[9] = extent_idx;
    e[10..12].fill(0);
    e[12..16].copy_from_slice(&slot_idx.to_le_bytes());
    e[16..20].copy_from_slice(&generation.to_le_bytes());
    Ok(SLOT_REF_ENTRY_SIZE)
}

/// Encode a 32-byte mmap-ref frame. Returns 32.
pub fn encode_mmap_ref(
    dst: &mut [u8],
    map_id: u32,
    map_generation: u32,
    map_offset: u64,
    payload_len: u32,
) -> Result<usize, FrameError> {
    let e = entry(dst, MMAP_REF_ENTRY_SIZE)?;
    let hdr = FrameHeader {
        total_len: MMAP_REF_ENTRY_SIZE as u32,
        flags: FLAG_MMAP_REF,
        reserved: 0,
        inline_payload_len: 0,
    };
    e[..8].copy_from_slice(&hdr.to_bytes());
    e[8..12].copy_from_slice(&map_id.to_le_bytes());
    e[12..16].copy_from_slice(&map_generation.to_le_bytes());
    e[16..24].copy_from_slice(&map_offset.to_le_bytes());
    e[24..28].copy_from_slice(&payload_len.to_le_bytes());
    e[28..32].fill(0);
    Ok(MMAP_REF_ENTRY_SIZE)
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

/// Decode the frame at the start of `bytes`; returns it and the bytes it occupies
/// (`total_len`, what the consumer releases).
///
/// Rejects: a cut header or entry ([`FrameError::Incomplete`]), `total_len < 8`,
/// `total_len % 4 != 0`, both flags set, a body shorter than its entry, an inline
/// length larger than the entry.
pub fn decode(bytes: &[u8]) -> Result<(Frame<'_>, usize), FrameError> {
    let Some(h) = bytes.first_chunk::<FRAME_HEADER_SIZE>() else {
        return Err(FrameError::Incomplete {
            needed: FRAME_HEADER_SIZE,
            available: bytes.len(),
        });
    };
    let hdr = FrameHeader::from_bytes(h);
    let total32 = hdr.total_len;
    if (total32 as usize) < FRAME_HEADER_SIZE {
        return Err(FrameError::TotalTooSmall(total32));
    }
    if total32 % 4 != 0 {
        return Err(FrameError::TotalMisaligned(total32));
    }
    let total = total32 as usize;
    let Some(entry) = bytes.get(..total) else {
        return Err(FrameError::Incomplete {
            needed: total,
            available: bytes.len(),
        });
    };
    let both = FLAG_SLOT_REF | FLAG_MMAP_REF;
    let frame = if hdr.flags & both == both {
        return Err(FrameError::BothFlags(hdr.flags));
    } else if hdr.flags & FLAG_SLOT_REF != 0 {
        if total < SLOT_REF_ENTRY_SIZE {
            return Err(FrameError::BodyTooShort {
                kind: "slot-ref",
                total: total32,
                needed: SLOT_REF_ENTRY_SIZE,
            });
        }
        Frame::SlotRef {
            class_idx: entry[8],
            extent_idx: entry[9],
            slot_idx: le_u32(entry, 12),
            generation: le_u32(entry, 16),
        }
    } else if hdr.flags & FLAG_MMAP_REF != 0 {
        if total < MMAP_REF_ENTRY_SIZE {
            return Err(FrameError::BodyTooShort {
                kind: "mmap-ref",
                total: total32,
                needed: MMAP_REF_ENTRY_SIZE,
            });
        }
        Frame::MmapRef {
            map_id: le_u32(entry, 8),
            map_generation: le_u32(entry, 12),
            map_offset: le_u64(entry, 16),
            payload_len: le_u32(entry, 24),
        }
    } else {
        let len = hdr.inline_payload_len;
        let end = if len == 0 {
            total
        } else {
            let end = FRAME_HEADER_SIZE + usize::from(len);
            if end > total {
                return Err(FrameError::InlineLenTooLarge {
                    len,
                    total: total32,
                });
            }
            end
        };
        Frame::Inline {
            payload: &entry[FRAME_HEADER_SIZE..end],
        }
    };
    Ok((frame, total))
}

/// Check a slot's length prefix: the payload (`len` bytes at +4) must fit in the
/// slot, `len ≤ slot_size − 4`. Returns `len` as `usize`.
pub fn check_slot_payload_len(len: u32, slot_size: u32) -> Result<usize, FrameError> {
    if slot_size < SLOT_LEN_PREFIX || len > slot_size - SLOT_LEN_PREFIX {
        return Err(FrameError::SlotLenTooLarge { len, slot_size });
    }
    Ok(len as usize)
}

/// Write a slot's contents: the `u32` length prefix, then the payload. Returns the
/// bytes written (`4 + payload.len()`).
pub fn encode_slot_payload(slot: &mut [u8], payload: &[u8]) -> Result<usize, FrameError> {
    let needed =
        payload
            .len()
            .checked_add(SLOT_LEN_PREFIX as usize)
            .ok_or(FrameError::BufferTooSmall {
                needed: usize::MAX,
                available: slot.len(),
            })?;
    let len = u32::try_from(payload.len()).map_err(|_| FrameError::BufferTooSmall {
        needed,
        available: slot.len(),
    })?;
    let e = entry(slot, needed)?;
    e[..4].copy_from_slice(&len.to_le_bytes());
    e[4..].copy_from_slice(payload);
    Ok(needed)
}

/// Which inline rule a sender uses (receivers accept both: they only parse).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InlineRule {
    /// roam's Rust sender: inline when `len ≤ threshold` (our default).
    #[default]
    Rust,
    /// The spec and roam's Swift sender: inline when `8 + len ≤ threshold`.
    Spec,
}

/// What a sender needs to route a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoutePolicy<'a> {
    /// The effective inline threshold (0 already replaced by 256).
    pub inline_threshold: u32,
    /// The segment's `max_payload_size`.
    pub max_payload_size: u32,
    /// The pool's size classes, in pool order.
    pub size_classes: &'a [SizeClass],
    /// The inline rule.
    pub rule: InlineRule,
}

impl<'a> RoutePolicy<'a> {
    /// The policy of a segment with this header and these classes (Rust rule).
    pub fn from_header(header: &SegmentHeader, size_classes: &'a [SizeClass]) -> Self {
        RoutePolicy {
            inline_threshold: header.effective_inline_threshold(),
            max_payload_size: header.max_payload_size,
            size_classes,
            rule: InlineRule::Rust,
        }
    }

    /// The policy of a segment created from `config` (Rust rule).
    pub fn from_config(config: &'a SegmentConfig) -> Self {
        RoutePolicy {
            inline_threshold: config.effective_inline_threshold(),
            max_payload_size: config.max_payload_size,
            size_classes: &config.size_classes,
            rule: InlineRule::Rust,
        }
    }
}

/// Where a payload goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Inline in the ring.
    Inline,
    /// In a pool slot; allocation starts at `class_idx` (the first class whose slots
    /// hold `len + 4` bytes) and falls through to the following classes.
    SlotRef {
        /// First class to try.
        class_idx: u8,
    },
    /// In an mmap region.
    MmapRef,
}

/// Route a `len`-byte payload (§4): over `max_payload_size` is an error; inline by
/// the policy's rule (and only if the 16-bit length field can hold it); else a slot
/// when some class holds `len + 4` bytes; else mmap.
pub fn route(len: usize, policy: &RoutePolicy<'_>) -> Result<Route, FrameError> {
    if len > policy.max_payload_size as usize {
        return Err(FrameError::PayloadTooLarge {
            len,
            max: policy.max_payload_size,
        });
    }
    let threshold = policy.inline_threshold as usize;
    let inline = match policy.rule {
        InlineRule::Rust => len <= threshold,
        InlineRule::Spec => len.saturating_add(FRAME_HEADER_SIZE) <= threshold,
    };
    if inline && len <= MAX_INLINE_PAYLOAD {
        return Ok(Route::Inline);
    }
    let needed = len.saturating_add(SLOT_LEN_PREFIX as usize);
    let class = policy
        .size_classes
        .iter()
        .position(|c| c.slot_size as usize >= needed)
        .and_then(|i| u8::try_from(i).ok());
    Ok(match class {
        Some(class_idx) => Route::SlotRef { class_idx },
        None => Route::MmapRef,
    })
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;

    #[test]
    fn inline_round_trip_and_padding() {
        let mut buf = [0xEEu8; 64];
        let n = encode_inline(&mut buf, b"hello").unwrap();
        assert_eq!(n, 16);
        assert_eq!(&buf[..8], &[16, 0, 0, 0, 0, 0, 5, 0]);
        assert_eq!(&buf[8..13], b"hello");
        assert_eq!(&buf[13..16], &[0, 0, 0]);
        assert_eq!(buf[16], 0xEE, "nothing written past the entry");
        let (f, used) = decode(&buf).unwrap();
        assert_eq!(used, 16);
        assert_eq!(f, Frame::Inline { payload: b"hello" });
        // Empty payload: an 8-byte entry.
        let n = encode_inline(&mut buf, b"").unwrap();
        assert_eq!(n, 8);
        assert_eq!(
            decode(&buf[..8]).unwrap(),
            (Frame::Inline { payload: b"" }, 8)
        );
    }

    #[test]
    fn legacy_zero_length_means_total_minus_8() {
        let mut buf = [0u8; 16];
        buf[0] = 16;
        buf[8..16].copy_from_slice(b"abcdefgh");
        assert_eq!(
            decode(&buf).unwrap(),
            (
                Frame::Inline {
                    payload: b"abcdefgh"
                },
                16
            )
        );
    }

    #[test]
    fn ref_round_trips_and_bytes() {
        let mut buf = [0u8; 32];
        assert_eq!(encode_slot_ref(&mut buf, 2, 0, 7, 0xDEAD_BEEF).unwrap(), 20);
        assert_eq!(
            &buf[..20],
            &[
                20, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 7, 0, 0, 0, 0xEF, 0xBE, 0xAD, 0xDE
            ]
        );
        let (f, n) = decode(&buf).unwrap();
        assert_eq!(n, 20);
        assert_eq!(
            f,
            Frame::SlotRef {
                class_idx: 2,
                extent_idx: 0,
                slot_idx: 7,
                generation: 0xDEAD_BEEF
            }
        );
        let f = Frame::MmapRef {
            map_id: 3,
            map_generation: 0,
            map_offset: 0x0102_0304_0506_0708,
            payload_len: 999,
        };
        assert_eq!(encode(&mut buf, &f).unwrap(), 32);
        assert_eq!(buf[4], FLAG_MMAP_REF);
        assert_eq!(&buf[16..24], &0x0102_0304_0506_0708u64.to_le_bytes());
        assert_eq!(&buf[28..32], &[0; 4]);
        assert_eq!(decode(&buf).unwrap(), (f, 32));
        assert_eq!(f.encoded_len(), Ok(32));
    }

    #[test]
    fn encode_rejects_small_buffers_and_long_inline() {
        let mut small = [0u8; 19];
        assert_eq!(
            encode_slot_ref(&mut small, 0, 0, 0, 0),
            Err(FrameError::BufferTooSmall {
                needed: 20,
                available: 19
            })
        );
        assert!(encode_mmap_ref(&mut small, 0, 0, 0, 0).is_err());
        assert!(encode_inline(&mut small, &[1; 12]).is_err());
        let big = vec![0u8; 70_000];
        let mut dst = vec![0u8; 80_000];
        assert_eq!(
            encode_inline(&mut dst, &big),
            Err(FrameError::InlineTooLong(70_000))
        );
        assert_eq!(encode_inline(&mut dst, &big[..65535]), Ok(65544));
        assert_eq!(
            decode(&dst).unwrap().0,
            Frame::Inline {
                payload: &big[..65535]
            }
        );
    }

    fn hdr(total: u32, flags: u8, len: u16) -> Vec<u8> {
        let mut v = FrameHeader {
            total_len: total,
            flags,
            reserved: 0,
            inline_payload_len: len,
        }
        .to_bytes()
        .to_vec();
        v.resize(64, 0);
        v
    }

    #[test]
    fn each_rejection() {
        assert_eq!(
            decode(&[0u8; 7]),
            Err(FrameError::Incomplete {
                needed: 8,
                available: 7
            })
        );
        assert_eq!(decode(&hdr(4, 0, 0)), Err(FrameError::TotalTooSmall(4)));
        assert_eq!(decode(&hdr(0, 0, 0)), Err(FrameError::TotalTooSmall(0)));
        assert_eq!(decode(&hdr(10, 0, 0)), Err(FrameError::TotalMisaligned(10)));
        assert_eq!(
            decode(&hdr(68, 0, 0)),
            Err(FrameError::Incomplete {
                needed: 68,
                available: 64
            })
        );
        assert_eq!(
            decode(&hdr(u32::MAX - 3, 0, 0)).unwrap_err(),
            FrameError::Incomplete {
                needed: (u32::MAX - 3) as usize,
                available: 64
            }
        );
        assert_eq!(decode(&hdr(32, 3, 0)), Err(FrameError::BothFlags(3)));
        assert_eq!(decode(&hdr(32, 0xFF, 0)), Err(FrameError::BothFlags(0xFF)));
        assert!(matches!(
            decode(&hdr(16, FLAG_SLOT_REF, 0)),
            Err(FrameError::BodyTooShort {
                kind: "slot-ref",
                ..
            })
        ));
        assert!(matches!(
            decode(&hdr(28, FLAG_MMAP_REF, 0)),
            Err(FrameError::BodyTooShort {
                kind: "mmap-ref",
                ..
            })
        ));
        assert_eq!(
            decode(&hdr(16, 0, 9)),
            Err(FrameError::InlineLenTooLarge { len: 9, total: 16 })
        );
        assert!(decode(&hdr(16, 0, 8)).is_ok());
        // Unknown flag bits are ignored (roam does the same).
        assert!(decode(&hdr(16, 0x80, 3)).is_ok());
        // Longer ref entries than needed are accepted and consumed whole.
        assert_eq!(decode(&hdr(24, FLAG_SLOT_REF, 0)).unwrap().1, 24);
        assert!(
            FrameError::Incomplete {
                needed: 1,
                available: 0
            }
            .is_incomplete()
        );
    }

    #[test]
    fn slot_payload_helpers() {
        let mut slot = [0u8; 16];
        assert_eq!(encode_slot_payload(&mut slot, b"abc"), Ok(7));
        assert_eq!(&slot[..7], &[3, 0, 0, 0, b'a', b'b', b'c']);
        assert!(encode_slot_payload(&mut slot, &[0; 13]).is_err());
        assert_eq!(check_slot_payload_len(12, 16), Ok(12));
        assert!(check_slot_payload_len(13, 16).is_err());
        assert!(check_slot_payload_len(0, 3).is_err());
    }

    #[test]
    fn routing_rules() {
        let classes = [
            SizeClass {
                slot_size: 1024,
                count: 1,
            },
            SizeClass {
                slot_size: 4096,
                count: 1,
            },
        ];
        let mut p = RoutePolicy {
            inline_threshold: 256,
            max_payload_size: 1 << 20,
            size_classes: &classes,
            rule: InlineRule::Rust,
        };
        assert_eq!(route(0, &p), Ok(Route::Inline));
        assert_eq!(route(256, &p), Ok(Route::Inline));
        assert_eq!(route(257, &p), Ok(Route::SlotRef { class_idx: 0 }));
        assert_eq!(route(1020, &p), Ok(Route::SlotRef { class_idx: 0 }));
        assert_eq!(route(1021, &p), Ok(Route::SlotRef { class_idx: 1 }));
        assert_eq!(route(4092, &p), Ok(Route::SlotRef { class_idx: 1 }));
        assert_eq!(route(4093, &p), Ok(Route::MmapRef));
        assert!(matches!(
            route((1 << 20) + 1, &p),
            Err(FrameError::PayloadTooLarge { .. })
        ));
        p.rule = InlineRule::Spec;
        assert_eq!(route(248, &p), Ok(Route::Inline));
        assert_eq!(route(249, &p), Ok(Route::SlotRef { class_idx: 0 }));
        // A huge threshold from a foreign header never routes past the u16 field.
        p.rule = InlineRule::Rust;
        p.inline_threshold = u32::MAX;
        p.max_payload_size = u32::MAX;
        assert_eq!(route(65535, &p), Ok(Route::Inline));
        assert_eq!(route(65536, &p), Ok(Route::MmapRef));
    }
}
