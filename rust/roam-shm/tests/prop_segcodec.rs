//! Property tests of the segment codecs: frame and bootstrap round trips, and
//! "decoding arbitrary bytes never panics" (the normal-suite run of the fuzz targets
//! `frame_decode` and `bootstrap_decode`).
#![cfg(not(feature = "loom"))]

use proptest::prelude::*;
use roam_shm::region::HeapRegion;
use roam_shm::segment::bootstrap::{self, BootstrapStatus};
use roam_shm::segment::frame::{self, Frame};
use roam_shm::segment::header::SegmentHeader;

fn any_frame(payload: Vec<u8>) -> impl Strategy<Value = FrameSpec> {
    prop_oneof![
        Just(FrameSpec::Inline(payload)),
        (any::<u8>(), any::<u8>(), any::<u32>(), any::<u32>())
            .prop_map(|(c, e, s, g)| FrameSpec::Slot(c, e, s, g)),
        (any::<u32>(), any::<u32>(), any::<u64>(), any::<u32>())
            .prop_map(|(i, g, o, l)| FrameSpec::Mmap(i, g, o, l)),
    ]
}

#[derive(Debug, Clone)]
enum FrameSpec {
    Inline(Vec<u8>),
    Slot(u8, u8, u32, u32),
    Mmap(u32, u32, u64, u32),
}

impl FrameSpec {
    fn frame(&self) -> Frame<'_> {
        match *self {
            FrameSpec::Inline(ref p) => Frame::Inline { payload: p },
            FrameSpec::Slot(class_idx, extent_idx, slot_idx, generation) => Frame::SlotRef {
                class_idx,
                extent_idx,
                slot_idx,
                generation,
            },
            FrameSpec::Mmap(map_id, map_generation, map_offset, payload_len) => Frame::MmapRef {
                map_id,
                map_generation,
                map_offset,
                payload_len,
            },
        }
    }
}

fn frames() -> impl Strategy<Value = Vec<FrameSpec>> {
    prop::collection::vec(
        prop::collection::vec(any::<u8>(), 0..600).prop_flat_map(any_frame),
        1..8,
    )
}

proptest! {
    #[test]
    fn frame_sequences_round_trip(specs in frames()) {
        // Encode back to back, as in a ring, then decode in order.
        let mut buf = Vec::new();
        for s in &specs {
            let f = s.frame();
            let len = f.encoded_len().unwrap();
            let start = buf.len();
            buf.resize(start + len, 0xAA);
            prop_assert_eq!(frame::encode(&mut buf[start..], &f).unwrap(), len);
            prop_assert_eq!(len % 4, 0);
        }
        let mut at = 0;
        for s in &specs {
            let (f, used) = frame::decode(&buf[at..]).unwrap();
            prop_assert_eq!(f, s.frame());
            at += used;
        }
        prop_assert_eq!(at, buf.len());
        // Any strict prefix of the last entry is Incomplete, never a wrong frame.
        let last = specs.last().unwrap().frame().encoded_len().unwrap();
        let start = buf.len() - last;
        for cut in [start + 1, buf.len() - 1] {
            if cut > start && cut < buf.len() {
                prop_assert!(frame::decode(&buf[start..cut]).unwrap_err().is_incomplete());
            }
        }
    }

    #[test]
    fn frame_decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        if let Ok((f, used)) = frame::decode(&bytes) {
            prop_assert!(used >= 8 && used % 4 == 0 && used <= bytes.len());
            if let Frame::Inline { payload } = f {
                prop_assert!(payload.len() + 8 <= used);
            }
        }
    }

    #[test]
    fn frame_decode_of_small_totals_never_panics(
        total in 0u32..64, flags in any::<u8>(), len in any::<u16>(),
        tail in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = total.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[flags, 0]);
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.extend_from_slice(&tail);
        let _ = frame::decode(&bytes);
    }

    #[test]
    fn bootstrap_round_trips(
        sid in prop::collection::vec(any::<u8>(), 0..200),
        payload in prop::collection::vec(any::<u8>(), 0..200),
        peer in any::<u32>(), ok in any::<bool>(),
    ) {
        let mut out = vec![0u8; 512];
        let n = bootstrap::encode_request(&sid, &mut out).unwrap();
        prop_assert_eq!(bootstrap::decode_request(&out[..n]).unwrap(), &sid[..]);
        let (status, peer) = if ok { (BootstrapStatus::Success, peer) } else { (BootstrapStatus::Error, 0) };
        let n = bootstrap::encode_response(status, peer, &payload, &mut out).unwrap();
        let (info, p) = bootstrap::decode_response(&out[..n]).unwrap();
        prop_assert_eq!(info.status, status);
        prop_assert_eq!(info.peer_id, peer);
        prop_assert_eq!(usize::from(info.payload_len), payload.len());
        prop_assert_eq!(p, &payload[..]);
        // Exact length: one byte more or less is refused.
        prop_assert!(bootstrap::decode_response(&out[..n - 1]).is_err());
        prop_assert!(bootstrap::decode_response(&out[..n + 1]).is_err());
    }

    #[test]
    fn bootstrap_decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = bootstrap::decode_request(&bytes);
        let _ = bootstrap::decode_response(&bytes);
        let mut b = bytes.clone();
        if b.len() >= 4 { b[..4].copy_from_slice(b"RSP0"); }
        let _ = bootstrap::decode_response(&b);
        if b.len() >= 4 { b[..4].copy_from_slice(b"RSH0"); }
        let _ = bootstrap::decode_request(&b);
    }

    #[test]
    fn header_validation_never_panics(bytes in prop::collection::vec(any::<u8>(), 128), file_len in any::<u64>()) {
        let mem = HeapRegion::new_zeroed(128);
        let r = mem.region();
        // SAFETY: the region holds 128 bytes and is not shared.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), r.as_ptr(), 128) };
        let h = SegmentHeader::from_region(&r).unwrap();
        let _ = h.validate();
        let _ = h.validate_strict(file_len);
    }
}
