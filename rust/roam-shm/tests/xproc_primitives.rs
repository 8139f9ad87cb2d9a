#![cfg(not(feature = "loom"))]
//! The primitives across real processes: a child (this test binary re-run with a role
//! in the environment) and the parent map the same memfd and pass 1,000,000 messages
//! through the SPSC ring (each checked) and 100,000 variable-size records through the
//! BipBuffer (each checksummed). Then a child producing without end is `kill -9`ed
//! mid-stream and the parent, blocked on the doorbell, sees it gone within a bounded
//! time instead of hanging.

mod common;

use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use roam_shm::bipbuf::BipBuf;
use roam_shm::doorbell::{Doorbell, WaitOutcome};
use roam_shm::mmap::ShmRegion;
use roam_shm::spsc::SpscRing;

const ROLE_ENV: &str = "ROAM_XPROC_CHILD_ROLE";
const FD_SHM: RawFd = common::FIRST_CHILD_FD + 10;
const FD_BELL: RawFd = common::FIRST_CHILD_FD + 11;
const RING_MESSAGES: u64 = 1_000_000;
const BIPBUF_RECORDS: u64 = 100_000;
const RING_CAP: u32 = 4096;
const BIPBUF_CAP: u32 = 64 * 1024;
const BOUND: Duration = Duration::from_secs(60);

fn spawn_child(role: &str, fds: &[(BorrowedFd<'_>, RawFd)]) -> Child {
    let mut cmd = common::child_command(ROLE_ENV, role);
    cmd.stdout(Stdio::null());
    common::pass_fds(&mut cmd, fds);
    cmd.spawn().unwrap()
}

/// The value of ring message `i`: not a plain counter, so a torn or stale read shows.
fn ring_value(i: u64) -> u64 {
    i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i << 7)
}

/// Record `i` of the BipBuffer stream: [len u32][seq u64][bytes...][fnv u32].
fn record(i: u64, out: &mut Vec<u8>) {
    let body = 1 + (ring_value(i) % 997) as usize;
    out.clear();
    out.extend_from_slice(&((body + 16) as u32).to_le_bytes());
    out.extend_from_slice(&i.to_le_bytes());
    out.extend((0..body).map(|k| (i as usize + k * 31) as u8));
    let h = fnv(&out[4..]);
    out.extend_from_slice(&h.to_le_bytes());
}

fn fnv(b: &[u8]) -> u32 {
    b.iter().fold(0x811c_9dc5u32, |h, &x| {
        (h ^ u32::from(x)).wrapping_mul(0x0100_0193)
    })
}

fn ring_producer(shm: &ShmRegion, count: Option<u64>) {
    let ring = SpscRing::<u64>::attach(shm.region()).unwrap();
    let mut p = ring.into_producer();
    let mut batch = [0u64; 64];
    let mut i = 0u64;
    while count.is_none_or(|c| i < c) {
        let n = count.map_or(64, |c| (c - i).min(64)) as usize;
        for (k, v) in batch[..n].iter_mut().enumerate() {
            *v = ring_value(i + k as u64);
        }
        let mut done = 0;
        while done < n {
            let pushed = p.push_batch(&batch[done..n]);
            if pushed == 0 {
                std::hint::spin_loop();
            }
            done += pushed;
        }
        i += n as u64;
    }
}

fn bipbuf_producer(shm: &ShmRegion) {
    // SAFETY: this process is the only producer of the buffer the parent initialised.
    let buf = unsafe { BipBuf::attach(shm.region()) }.unwrap();
    let (mut p, _c) = buf.split();
    let mut rec = Vec::new();
    for i in 0..BIPBUF_RECORDS {
        record(i, &mut rec);
        while !p.try_write(&rec).unwrap() {
            std::hint::spin_loop();
        }
    }
}

/// Child side: dispatched by role.
#[test]
fn child_entry() {
    let Ok(role) = std::env::var(ROLE_ENV) else {
        return;
    };
    let shm = ShmRegion::from_fd(common::inherited(FD_SHM)).unwrap();
    match role.as_str() {
        "ring" => ring_producer(&shm, Some(RING_MESSAGES)),
        "bipbuf" => bipbuf_producer(&shm),
        "ring_forever" => {
            let _bell = Doorbell::from_fd(common::inherited(FD_BELL)).unwrap();
            ring_producer(&shm, None);
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn ring_passes_a_million_messages_between_processes() {
    let shm = ShmRegion::create("xproc-ring", SpscRing::<u64>::required_size(RING_CAP)).unwrap();
    let ring = SpscRing::<u64>::init(shm.region(), RING_CAP).unwrap();
    let mut c = ring.into_consumer();
    let mut child = spawn_child("ring", &[(shm.fd(), FD_SHM)]);
    let start = Instant::now();
    let mut buf = [0u64; 256];
    let mut next = 0u64;
    while next < RING_MESSAGES {
        let n = c.try_pop_batch(&mut buf).expect("ring corrupt");
        for v in &buf[..n] {
            assert_eq!(*v, ring_value(next), "message {next} wrong");
            next += 1;
        }
        if n == 0 {
            assert!(start.elapsed() < BOUND, "stalled at {next}");
            std::thread::yield_now();
        }
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(c.try_pop_batch(&mut buf).unwrap(), 0, "extra messages");
    eprintln!("ring: {RING_MESSAGES} messages in {:?}", start.elapsed());
}

#[test]
fn bipbuf_passes_variable_records_between_processes() {
    let shm = ShmRegion::create("xproc-bipbuf", BipBuf::required_size(BIPBUF_CAP)).unwrap();
    // SAFETY: fresh memory not yet shared; this process becomes the only consumer.
    let buf = unsafe { BipBuf::init(shm.region(), BIPBUF_CAP) }.unwrap();
    let (_p, mut c) = buf.split();
    let mut child = spawn_child("bipbuf", &[(shm.fd(), FD_SHM)]);
    let start = Instant::now();
    let mut next = 0u64;
    let mut expect = Vec::new();
    while next < BIPBUF_RECORDS {
        let Some(bytes) = c.read().expect("bipbuf corrupt") else {
            assert!(start.elapsed() < BOUND, "stalled at {next}");
            std::thread::yield_now();
            continue;
        };
        // Records are written whole and never straddle the wrap: walk them.
        let mut off = 0;
        while off < bytes.len() {
            let len = u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap()) as usize;
            let rec = &bytes[off..off + len];
            record(next, &mut expect);
            assert_eq!(rec, &expect[..], "record {next} differs");
            assert_eq!(
                fnv(&rec[4..len - 4]),
                u32::from_le_bytes(rec[len - 4..].try_into().unwrap())
            );
            off += len;
            next += 1;
        }
        c.release(off as u32).unwrap();
    }
    assert!(child.wait().unwrap().success());
    eprintln!("bipbuf: {BIPBUF_RECORDS} records in {:?}", start.elapsed());
}

#[test]
fn producer_killed_mid_stream_is_detected_without_hanging() {
    let shm = ShmRegion::create("xproc-kill", SpscRing::<u64>::required_size(RING_CAP)).unwrap();
    let ring = SpscRing::<u64>::init(shm.region(), RING_CAP).unwrap();
    let mut c = ring.into_consumer();
    let (bell, handle) = Doorbell::create_pair().unwrap();
    let mut child = spawn_child(
        "ring_forever",
        &[(shm.fd(), FD_SHM), (handle.as_fd(), FD_BELL)],
    );
    drop(handle);
    // Consume until well into the stream, then kill the producer mid-stream.
    let mut buf = [0u64; 256];
    let mut next = 0u64;
    let start = Instant::now();
    while next < 200_000 {
        let n = c.try_pop_batch(&mut buf).unwrap();
        for v in &buf[..n] {
            assert_eq!(*v, ring_value(next));
            next += 1;
        }
        assert!(start.elapsed() < BOUND, "producer never got going");
    }
    // SAFETY: kill(2) on our own child.
    let r = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
    assert_eq!(r, 0);
    let killed_at = Instant::now();
    // Everything it managed to publish is intact; then the doorbell reports it gone.
    loop {
        let n = c.try_pop_batch(&mut buf).unwrap();
        for v in &buf[..n] {
            assert_eq!(*v, ring_value(next), "message {next} after the kill");
            next += 1;
        }
        if n == 0 {
            match bell.wait(Some(Duration::from_millis(100))).unwrap() {
                WaitOutcome::PeerGone => break,
                _ => assert!(killed_at.elapsed() < BOUND, "peer death not detected"),
            }
        }
    }
    child.wait().unwrap();
    assert!(killed_at.elapsed() < BOUND);
    eprintln!(
        "producer killed after {next} messages; detected in {:?}",
        killed_at.elapsed()
    );
}
