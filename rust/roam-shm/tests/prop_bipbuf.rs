#![cfg(not(feature = "loom"))]
//! Property tests of the BipBuffer against two models:
//! - `Spec`, the index algorithm of the layout notes §3 written out independently, which
//!   must agree on every offset, length and cursor (roam byte compatibility);
//! - a `VecDeque` of committed, length-prefixed records, which must come back byte for
//!   byte, in order, across many wrap-arounds.

use std::collections::VecDeque;

use proptest::prelude::*;
use roam_shm::bipbuf::{BipBuf, BipBufError, BipBufRaw};
use roam_shm::region::HeapRegion;

/// Layout notes §3, verbatim: (write, watermark, read) over `cap` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Spec {
    cap: u32,
    w: u32,
    wm: u32,
    r: u32,
    /// The last read found nothing but reset the cursors.
    reset: bool,
}

impl Spec {
    /// Some(offset) or None; also reports whether the wrap was taken.
    fn grant(&mut self, n: u32) -> (Option<u32>, bool) {
        if n == 0 {
            return (Some(0), false);
        }
        if self.w >= self.r {
            if self.cap - self.w >= n {
                (Some(self.w), false)
            } else if self.r == 0 {
                (None, false)
            } else {
                self.wm = self.w;
                self.w = 0;
                // Full, but keep the wrap.
                (if n < self.r { Some(0) } else { None }, true)
            }
        } else if self.w + n < self.r {
            (Some(self.w), false)
        } else {
            (None, false)
        }
    }

    fn commit(&mut self, n: u32) {
        self.w += n;
        assert!(self.w <= self.cap);
    }

    fn read(&mut self) -> Option<(u32, u32)> {
        self.reset = false;
        if self.wm != 0 && self.r < self.wm {
            Some((self.r, self.wm - self.r))
        } else if self.wm != 0 {
            self.r = 0;
            self.wm = 0;
            self.reset = self.w == 0;
            (self.w > 0).then_some((0, self.w))
        } else {
            (self.r < self.w).then(|| (self.r, self.w - self.r))
        }
    }

    fn release(&mut self, n: u32) {
        let nr = self.r + n;
        if self.wm != 0 && nr >= self.wm {
            self.r = 0;
            self.wm = 0;
        } else {
            self.r = nr;
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// Grant, fill and commit one record of `4 + pick % (cap - 3)` bytes.
    Write { pick: u32 },
    /// Grant without committing (the grant is abandoned).
    Abandon { pick: u32 },
    /// Read, check every record in the readable bytes, release the first `take` (>= 1).
    Read { take: u8 },
    /// A grant larger than the ring must fail with no side effects.
    TooLarge { extra: u8 },
    /// A release beyond what was read must fail with no side effects.
    BadRelease { extra: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        // Mostly entries up to a quarter of the ring, some up to the whole ring.
        6 => (0u32..1 << 16).prop_map(|p| Op::Write { pick: p }),
        3 => (0u32..1 << 16).prop_map(|p| Op::Write { pick: p | 1 << 30 }),
        1 => (0u32..1 << 16).prop_map(|pick| Op::Abandon { pick }),
        7 => (1u8..5).prop_map(|take| Op::Read { take }),
        1 => any::<u8>().prop_map(|extra| Op::TooLarge { extra }),
        1 => (1u8..4).prop_map(|extra| Op::BadRelease { extra }),
    ]
}

/// Total record length (header included) for a pick.
fn record_len(cap: u32, pick: u32) -> u32 {
    if pick & 1 << 30 != 0 {
        4 + (pick & 0xffff) % (cap - 3) // up to the whole ring
    } else {
        4 + (pick & 0xffff) % (cap / 4).max(1)
    }
}

fn record(seq: u32, len: u32) -> Vec<u8> {
    let mut rec = len.to_le_bytes().to_vec();
    rec.extend((4..len).map(|i| (seq.wrapping_mul(31).wrapping_add(i)) as u8));
    rec
}

fn cursors(raw: &BipBufRaw) -> (u32, u32, u32) {
    (raw.load_write(), raw.load_watermark(), raw.load_read())
}

fn run(cap: u32, ops: &[Op]) -> Result<u32, TestCaseError> {
    let mem = HeapRegion::new_zeroed(BipBuf::required_size(cap));
    // SAFETY: the only handle to this ring; `mem` outlives it.
    let buf = unsafe { BipBuf::init(mem.region(), cap) }.unwrap();
    let data = buf.raw().data_ptr() as usize;
    let (mut p, mut c) = buf.split();
    let mut spec = Spec {
        cap,
        w: 0,
        wm: 0,
        r: 0,
        reset: false,
    };
    let mut model: VecDeque<Vec<u8>> = VecDeque::new();
    let mut seq = 0u32;
    let mut wraps = 0u32;

    for op in ops {
        match *op {
            Op::Write { pick } | Op::Abandon { pick } => {
                let len = record_len(cap, pick);
                let (want, wrapped) = spec.grant(len);
                wraps += u32::from(wrapped);
                let commit = matches!(op, Op::Write { .. });
                match p.grant(len).unwrap() {
                    Some(mut g) => {
                        prop_assert_eq!(Some(g.offset()), want);
                        prop_assert_eq!(g.len(), len as usize);
                        if commit {
                            let rec = record(seq, len);
                            g.copy_from_slice(&rec);
                            g.commit(len).unwrap();
                            spec.commit(len);
                            model.push_back(rec);
                            seq += 1;
                        }
                    }
                    None => {
                        prop_assert_eq!(None, want);
                        // §13: only an idle consumer can leave the producer stuck, and
                        // then would_stall says so and the consumer's read resets.
                        prop_assert_eq!(p.would_stall(len).unwrap(), model.is_empty());
                        if model.is_empty() {
                            prop_assert_eq!(c.read().unwrap(), None);
                            prop_assert!(c.last_read_reset(), "the read must report its reset");
                            prop_assert_eq!(spec.read(), None);
                            prop_assert!(p.can_grant(len).unwrap());
                        }
                    }
                }
            }
            Op::Read { take } => {
                let want = spec.read();
                let got = c.read().unwrap();
                let Some(bytes) = got else {
                    prop_assert_eq!(want, None);
                    prop_assert_eq!(c.last_read_reset(), spec.reset);
                    prop_assert!(model.is_empty(), "data lost: {} records", model.len());
                    continue;
                };
                let off = (bytes.as_ptr() as usize - data) as u32;
                prop_assert_eq!(want, Some((off, bytes.len() as u32)));
                // The readable bytes are whole records, in commit order.
                let mut at = 0usize;
                let mut i = 0usize;
                let mut release = 0u32;
                while at < bytes.len() {
                    let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
                    let rec = &bytes[at..at + len as usize];
                    prop_assert_eq!(Some(rec), model.get(i).map(Vec::as_slice));
                    at += len as usize;
                    i += 1;
                    if i <= usize::from(take) {
                        release += len;
                    }
                }
                prop_assert_eq!(at, bytes.len());
                let done = i.min(usize::from(take));
                c.release(release).unwrap();
                spec.release(release);
                model.drain(..done);
            }
            Op::TooLarge { extra } => {
                let before = cursors(p.raw());
                let len = cap + 1 + u32::from(extra);
                let too_large = matches!(p.grant(len), Err(BipBufError::TooLarge { .. }));
                prop_assert!(too_large, "grant of {} did not fail", len);
                prop_assert!(!p.can_grant(len).unwrap());
                prop_assert_eq!(cursors(p.raw()), before);
            }
            Op::BadRelease { extra } => {
                let before = cursors(c.raw());
                let readable = match c.read().unwrap() {
                    Some(b) => b.len() as u32,
                    None => 0,
                };
                prop_assert_eq!(spec.read().map_or(0, |(_, n)| n), readable);
                let err = c.release(readable + u32::from(extra));
                prop_assert!(
                    matches!(err, Err(BipBufError::ReleaseOverflow { .. })),
                    "{:?}",
                    err
                );
                // The stateless raw check agrees.
                let err = c.raw().release(readable + u32::from(extra));
                prop_assert!(
                    matches!(err, Err(BipBufError::ReleaseOverflow { .. })),
                    "{:?}",
                    err
                );
                // A read may have reset the cursors; the failed releases did nothing.
                let (w, _, _) = before;
                prop_assert_eq!(cursors(c.raw()).0, w);
            }
        }
        let (w, wm, r) = cursors(p.raw());
        prop_assert_eq!((w, wm, r), (spec.w, spec.wm, spec.r));
    }
    // Drain: everything committed comes back.
    while let Some(bytes) = c.read().unwrap() {
        let n = bytes.len() as u32;
        let mut at = 0usize;
        while at < bytes.len() {
            let rec = model.pop_front().expect("extra bytes");
            prop_assert_eq!(&bytes[at..at + rec.len()], &rec[..]);
            at += rec.len();
        }
        c.release(n).unwrap();
    }
    prop_assert!(model.is_empty());
    Ok(wraps)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn matches_spec_and_records(cap in 8u32..200, ops in prop::collection::vec(op(), 1..400)) {
        run(cap, &ops)?;
    }
}

/// A long deterministic run on a small ring: many wraps, all records intact.
#[test]
fn many_wraparounds() {
    let ops: Vec<Op> = (0u32..20_000)
        .map(|i| match i % 3 {
            0 | 1 => Op::Write {
                pick: i.wrapping_mul(2_654_435_761) >> 8 & 0xffff,
            },
            _ => Op::Read {
                take: (i % 4 + 1) as u8,
            },
        })
        .collect();
    for cap in [8, 13, 32, 64, 100] {
        let wraps = run(cap, &ops).unwrap();
        assert!(wraps > 500, "cap {cap}: only {wraps} wraps");
    }
}
