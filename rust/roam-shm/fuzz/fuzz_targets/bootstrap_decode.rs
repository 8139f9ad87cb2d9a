//! Decode arbitrary bytes as bootstrap request and response frames; must never
//! panic, and an accepted frame must re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roam_shm::segment::bootstrap;

fuzz_target!(|data: &[u8]| {
    let mut out = vec![0u8; data.len() + 16];
    if let Ok(sid) = bootstrap::decode_request(data) {
        let n = bootstrap::encode_request(sid, &mut out).unwrap();
        assert_eq!(&out[..n], data);
    }
    if let Ok((info, payload)) = bootstrap::decode_response(data) {
        let n = bootstrap::encode_response(info.status, info.peer_id, payload, &mut out).unwrap();
        assert_eq!(&out[..n], data);
    }
});
