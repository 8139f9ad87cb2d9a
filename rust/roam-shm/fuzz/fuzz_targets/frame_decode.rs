//! Decode arbitrary ring bytes as a sequence of frames; must never panic, and every
//! accepted frame must re-encode to an entry of the same size.
//! `tests/prop_segcodec.rs` runs the same property in the normal test suite.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roam_shm::segment::frame::{self, Frame};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok((f, used)) = frame::decode(rest) {
        assert!(used >= 8 && used % 4 == 0 && used <= rest.len());
        if !matches!(f, Frame::Inline { .. }) {
            let mut buf = [0u8; 32];
            let n = frame::encode(&mut buf, &f).unwrap();
            assert!(n <= used);
            assert_eq!(frame::decode(&buf[..n]).unwrap().0, f);
        }
        rest = &rest[used..];
    }
});
