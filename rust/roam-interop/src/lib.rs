//! Helpers for the interop tests between roam-shm and the published roam 7.3 crates
//! (the tests live in `tests/`; run them with `scripts/test-interop.sh` or
//! `cargo test -p roam-interop`).
//!
//! Both sides of a test generate the same deterministic payloads, so each side checks
//! every byte the other sent, whichever implementation sent it.

/// Payload lengths that cover every route of a segment whose inline threshold is
/// `inline` and whose largest slot holds `max_slot_payload` bytes: inline (including
/// empty and the exact threshold), slot-ref (just above the threshold up to a full
/// largest slot) and mmap-ref (just above, and well above, the largest slot).
pub fn route_sizes(inline: usize, max_slot_payload: usize) -> Vec<usize> {
    let mut v = vec![
        0,
        1,
        7,
        inline / 2,
        inline,
        inline + 1,
        1000,
        4096,
        max_slot_payload / 2,
        max_slot_payload,
        max_slot_payload + 1,
        200_000,
        1 << 20,
    ];
    // Then a deterministic mix of everything, log-uniform up to 1 MiB.
    let mut x = 0x1D7E_2025_u64;
    for _ in 0..240 {
        x = splitmix(x);
        let u = (x >> 11) as f64 / (1u64 << 53) as f64;
        v.push(((u * ((1u64 << 20) as f64).ln()).exp() as usize).min(1 << 20));
    }
    v
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fill `dst` with message `seq` of the stream (a sequence number, then bytes that
/// depend on `seq` and the position).
pub fn fill(dst: &mut [u8], seq: u64) {
    let mut x = splitmix(seq ^ dst.len() as u64);
    for chunk in dst.chunks_mut(8) {
        x = splitmix(x);
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let h = seq.to_le_bytes();
    let n = dst.len().min(8);
    dst[..n].copy_from_slice(&h[..n]);
}

/// Whether `got` is exactly message `seq` of length `len`.
pub fn check(got: &[u8], seq: u64, len: usize) -> Result<(), String> {
    if got.len() != len {
        return Err(format!(
            "message {seq}: {} bytes instead of {len}",
            got.len()
        ));
    }
    let mut want = vec![0u8; len];
    fill(&mut want, seq);
    if got != want.as_slice() {
        let at = got.iter().zip(&want).position(|(a, b)| a != b).unwrap_or(0);
        return Err(format!("message {seq} ({len} bytes): differs at byte {at}"));
    }
    Ok(())
}

/// The `key=value` pairs of the `RESULT` line in a child's stdout.
pub fn parse_result(stdout: &str) -> Option<std::collections::HashMap<String, u64>> {
    let line = stdout.lines().find_map(|l| l.split_once("RESULT "))?.1;
    Some(
        line.split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_differ() {
        for len in [0, 1, 8, 9, 100, 4097] {
            let mut a = vec![0u8; len];
            fill(&mut a, 5);
            check(&a, 5, len).unwrap();
            if len > 0 {
                assert!(check(&a, 6, len).is_err());
            }
        }
        let sizes = route_sizes(256, 65532);
        assert!(sizes.iter().any(|&s| s <= 256));
        assert!(sizes.iter().any(|&s| s > 256 && s <= 65532));
        assert!(sizes.iter().any(|&s| s > 65532));
    }
}
