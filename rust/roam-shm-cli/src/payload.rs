//! Deterministic payloads and sizes, so a receiver can check every byte of an echo
//! without the sender shipping a checksum.

/// Fill `buf` with the `len`-byte payload number `seq` of stream `seed`.
pub fn fill(buf: &mut Vec<u8>, seed: u64, seq: u64, len: usize) {
    buf.clear();
    buf.reserve(len);
    let mut x = seed ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (len as u64);
    while buf.len() < len {
        x = splitmix(x);
        let bytes = x.to_le_bytes();
        let take = (len - buf.len()).min(8);
        buf.extend_from_slice(&bytes[..take]);
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Sizes drawn log-uniformly from `min..=max` (fixed when equal).
#[derive(Debug, Clone)]
pub struct Sizes {
    state: u64,
    min: usize,
    max: usize,
    next: usize,
}

impl Sizes {
    /// A deterministic size stream.
    pub fn new(seed: u64, min: usize, max: usize) -> Sizes {
        let mut s = Sizes {
            state: seed,
            min,
            max: max.max(min),
            next: 0,
        };
        s.next = s.draw();
        s
    }

    fn draw(&mut self) -> usize {
        if self.min == self.max {
            return self.min;
        }
        self.state = splitmix(self.state);
        let u = (self.state >> 11) as f64 / (1u64 << 53) as f64;
        let lo = ((self.min.max(1)) as f64).ln();
        let hi = ((self.max + 1) as f64).ln();
        let v = (lo + u * (hi - lo)).exp() as usize;
        // Let 0 appear too when the range starts at 0.
        if self.min == 0 && v <= 1 && (self.state & 1) == 0 {
            0
        } else {
            v.clamp(self.min, self.max)
        }
    }

    /// The next size without consuming it.
    pub fn peek(&self) -> usize {
        self.next
    }
}

impl Iterator for Sizes {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        let v = self.next;
        self.next = self.draw();
        Some(v)
    }
}
