#![cfg(not(feature = "loom"))]
//! Bad input from a peer is an error on that link only.
//!
//! A malicious guest process attaches normally, then uses the raw primitives on the
//! mapped segment to write garbage frames, out-of-range and stale slot refs, replayed
//! frames, frames longer than the ring, bogus mmap refs, a corrupted ring header (in
//! either direction) or a corrupted peer entry. For each, the host reports an error for
//! that peer and disconnects it (the guest then sees itself evicted), while an honest
//! guest process streams verified messages throughout.
//!
//! Also: a segment file truncated under a guest is an error (`SegmentTruncated`) in
//! that guest, not a SIGBUS.

mod segment_util;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use roam_shm::bipbuf::BipBufRaw;
use roam_shm::doorbell::WaitOutcome;
use roam_shm::segment::SessionError;
use roam_shm::segment::config::SegmentConfig;
use roam_shm::segment::frame;
use roam_shm::segment::guest::{Guest, GuestOptions};
use roam_shm::segment::host::{GoneReason, Host, HostOptions};
use roam_shm::segment::link::{RecvError, SendError};
use roam_shm::segment::mapping::PathCleanup;
use roam_shm::segment::shared::SegmentBacking;
use roam_shm::segment::var_pool::{SizeClass, VarSlotHandle};
use segment_util::*;

const SEED: u64 = 0x00BA_D1A9_0001;
const MAX_SIZE: usize = 64 * 1024;

fn config() -> SegmentConfig {
    SegmentConfig {
        max_guests: 4,
        bipbuf_capacity: 16 * 1024,
        size_classes: vec![
            SizeClass {
                slot_size: 1024,
                count: 32,
            },
            SizeClass {
                slot_size: 16 * 1024,
                count: 16,
            },
        ],
        inline_threshold: 0,
        max_payload_size: 1 << 20,
        heartbeat_interval: Duration::ZERO,
    }
}

/// The attacks. Each runs in its own malicious guest process.
const ATTACKS: &[&str] = &[
    "short-frame",
    "unaligned-frame",
    "both-flags",
    "inline-len-past-entry",
    "frame-past-ring",
    "slot-class-out-of-range",
    "slot-index-out-of-range",
    "slot-wrong-generation",
    "slot-not-allocated",
    "slot-foreign-owner",
    "slot-len-past-slot",
    "slot-replayed",
    "mmap-out-of-bounds",
    "mmap-unknown-map",
    "g2h-write-past-capacity",
    "g2h-watermark-past-capacity",
    "h2g-read-past-capacity",
    "peer-state-garbage",
    "peer-state-garbage-after-traffic",
];

fn write_frame(ring: &BipBufRaw, bytes: &[u8]) -> Result<(), String> {
    let len = bytes.len() as u32;
    let off = ring
        .try_grant(len)
        .map_err(|e| format!("grant: {e}"))?
        .ok_or("ring full")?;
    // SAFETY: the grant gives us [off, off + len) of the ring's data area.
    unsafe {
        std::ptr::copy_nonoverlapping(
            bytes.as_ptr(),
            ring.data_ptr().add(off as usize),
            bytes.len(),
        )
    };
    ring.commit(len).map_err(|e| format!("commit: {e}"))
}

fn handle(class_idx: u8, slot_idx: u32, generation: u32) -> VarSlotHandle {
    VarSlotHandle {
        class_idx,
        extent_idx: 0,
        slot_idx,
        generation,
    }
}

fn slot_ref_frame(h: VarSlotHandle) -> Vec<u8> {
    let mut f = vec![0u8; frame::SLOT_REF_ENTRY_SIZE];
    frame::encode_slot_ref(&mut f, h.class_idx, h.extent_idx, h.slot_idx, h.generation).unwrap();
    f
}

fn inline_frame(payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; frame::inline_entry_len(payload.len()).unwrap()];
    frame::encode_inline(&mut f, payload).unwrap();
    f
}

/// Allocate a slot as `owner` and write a valid length prefix + payload into it.
fn own_slot(g: &Guest, owner: u32, len: u32) -> Result<VarSlotHandle, String> {
    let pool = g.segment().pool();
    let h = pool
        .try_alloc(len + 4, owner)
        .map_err(|e| e.to_string())?
        .ok_or("pool exhausted")?;
    let p = pool.payload_ptr(h).map_err(|e| e.to_string())?;
    // SAFETY: the slot is ours (just allocated) and at least len + 4 bytes.
    unsafe {
        std::ptr::write_unaligned(p.cast::<u32>(), len.to_le());
        std::ptr::write_bytes(p.add(4), 0xAB, len as usize);
    }
    Ok(h)
}

/// Carry out one attack on our own link.
fn attack(g: &mut Guest, what: &str) -> Result<(), String> {
    let id = g.peer_id();
    let seg = g.segment().clone();
    let g2h = seg.ring(id, true).map_err(|e| e.to_string())?;
    let h2g = seg.ring(id, false).map_err(|e| e.to_string())?;
    let cap = g2h.capacity();
    match what {
        "short-frame" => write_frame(&g2h, &[4, 0, 0, 0, 0, 0, 0, 0])?,
        "unaligned-frame" => write_frame(&g2h, &[10, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0])?,
        "both-flags" => {
            let mut f = slot_ref_frame(handle(0, 0, 1));
            f[4] = frame::FLAG_SLOT_REF | frame::FLAG_MMAP_REF;
            write_frame(&g2h, &f)?
        }
        "inline-len-past-entry" => {
            let mut f = inline_frame(&[7; 12]);
            f[6..8].copy_from_slice(&100u16.to_le_bytes());
            write_frame(&g2h, &f)?
        }
        "frame-past-ring" => {
            // Claims to be longer than the whole ring; only the header is committed.
            let mut f = inline_frame(&[]);
            f[..4].copy_from_slice(&(cap + 64).to_le_bytes());
            write_frame(&g2h, &f)?
        }
        "slot-class-out-of-range" => write_frame(&g2h, &slot_ref_frame(handle(200, 0, 1)))?,
        "slot-index-out-of-range" => write_frame(&g2h, &slot_ref_frame(handle(1, 1_000_000, 1)))?,
        "slot-wrong-generation" => {
            let mut h = own_slot(g, u32::from(id), 100)?;
            h.generation = h.generation.wrapping_add(7);
            write_frame(&g2h, &slot_ref_frame(h))?
        }
        "slot-not-allocated" => {
            let h = own_slot(g, u32::from(id), 100)?;
            seg.pool().free(h).map_err(|e| e.to_string())?;
            write_frame(&g2h, &slot_ref_frame(h))?
        }
        "slot-foreign-owner" => {
            // A slot that looks host-allocated (owner 0): not ours to send. (It also
            // leaks: recovery reclaims slots by owner, and the pool cannot tell a
            // forged owner from a real one. The test frees it by hand.)
            let h = own_slot(g, 0, 100)?;
            println!(
                "FORGED class={} slot={} gen={}",
                h.class_idx, h.slot_idx, h.generation
            );
            write_frame(&g2h, &slot_ref_frame(h))?
        }
        "slot-len-past-slot" => {
            let h = own_slot(g, u32::from(id), 100)?;
            let p = seg.pool().payload_ptr(h).map_err(|e| e.to_string())?;
            // SAFETY: our slot; overwrite its length prefix.
            unsafe { std::ptr::write_unaligned(p.cast::<u32>(), 5000u32.to_le()) };
            write_frame(&g2h, &slot_ref_frame(h))?
        }
        "slot-replayed" => {
            // A valid slot-ref frame, then the same frame again after the host freed it.
            let h = own_slot(g, u32::from(id), 100)?;
            let f = slot_ref_frame(h);
            write_frame(&g2h, &f)?;
            g.link().0.notify().map_err(|e| e.to_string())?;
            let t0 = Instant::now();
            while seg.pool().validate_ref(h, None).is_ok() {
                if t0.elapsed() > Duration::from_secs(10) {
                    return Err("host never consumed the first frame".into());
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            write_frame(&g2h, &f)?
        }
        "mmap-out-of-bounds" | "mmap-unknown-map" => {
            // A valid mmap-ref message first (announces mapping 0 to the host), then a
            // forged ref into it (out of bounds) or to a mapping never announced.
            let big = vec![0x5Au8; 100 * 1024];
            g.send(&big, Duration::from_secs(10))
                .map_err(|e| format!("send: {e}"))?;
            let (map_id, off) = if what == "mmap-out-of-bounds" {
                (0, 1u64 << 40)
            } else {
                (999, 0)
            };
            let mut f = vec![0u8; frame::MMAP_REF_ENTRY_SIZE];
            frame::encode_mmap_ref(&mut f, map_id, 0, off, 100).unwrap();
            write_frame(&g2h, &f)?
        }
        "g2h-write-past-capacity" => {
            // SAFETY: the header lies in the mapped segment; an atomic store.
            unsafe { &*g2h.header_ptr() }
                .write
                .store(cap + 100, Ordering::Release)
        }
        "g2h-watermark-past-capacity" => {
            write_frame(&g2h, &inline_frame(&[1; 8]))?;
            // SAFETY: as above.
            unsafe { &*g2h.header_ptr() }
                .watermark
                .store(cap + 8, Ordering::Release)
        }
        "h2g-read-past-capacity" => {
            // Corrupt the ring the host writes to, then give it something to echo.
            // SAFETY: as above.
            unsafe { &*h2g.header_ptr() }
                .read
                .store(cap + 4, Ordering::Release);
            write_frame(&g2h, &inline_frame(&[3; 16]))?
        }
        "peer-state-garbage" | "peer-state-garbage-after-traffic" => {
            if what.ends_with("traffic") {
                // A round trip first, so the host has seen the entry Attached.
                g.send(b"hello", Duration::from_secs(10))
                    .map_err(|e| format!("send: {e}"))?;
                drop(
                    g.recv(Some(Duration::from_secs(10)))
                        .map_err(|e| format!("recv: {e}"))?,
                );
            }
            seg.peer(id)
                .map_err(|e| e.to_string())?
                .state
                .store(77, Ordering::Release)
        }
        other => return Err(format!("unknown attack {other}")),
    }
    // A busy-polling host may read the attack and evict us before we ring it; the
    // doorbell is then already closed, which is the attack's expected outcome.
    match g.link().0.notify() {
        Ok(()) | Err(SendError::PeerGone) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// Wait until the host has evicted us: our doorbell closes.
fn wait_evicted(g: &Guest) -> Result<(), String> {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(15) {
        if g.wait(Some(Duration::from_millis(50)))
            .map_err(|e| format!("wait: {e}"))?
            == WaitOutcome::PeerGone
        {
            return Ok(());
        }
    }
    Err("the host never disconnected us".into())
}

fn truncation_victim() -> Result<(), String> {
    let mut g = Guest::connect(env_var("SOCKET")?, GuestOptions::default())
        .map_err(|e| format!("connect: {e}"))?;
    // One good round trip first.
    g.send(b"before", Duration::from_secs(10))
        .map_err(|e| format!("send: {e}"))?;
    let m = g
        .recv(Some(Duration::from_secs(10)))
        .map_err(|e| format!("recv: {e}"))?;
    if &m[..] != b"before" {
        return Err("bad echo".into());
    }
    drop(m);
    std::fs::write(env_var("READY_FILE")?, b"ready").map_err(|e| e.to_string())?;
    let go = std::path::PathBuf::from(env_var("GO_FILE")?);
    let t0 = Instant::now();
    while !go.exists() {
        if t0.elapsed() > Duration::from_secs(20) {
            return Err("no go".into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    // The file is now truncated. Keep using the link: the first error must say so.
    for i in 0..1000 {
        let r: Result<(), String> = match i % 3 {
            0 => match g.try_send(&[9u8; 2000]) {
                Ok(()) => Ok(()),
                Err(SendError::Session(SessionError::SegmentTruncated)) => {
                    Err("SegmentTruncated".into())
                }
                Err(e) if e.is_backpressure() => Ok(()),
                Err(e) => Err(format!("send: {e:?}")),
            },
            1 => match g.try_recv() {
                Ok(_) => Ok(()),
                Err(RecvError::Session(SessionError::SegmentTruncated)) => {
                    Err("SegmentTruncated".into())
                }
                Err(e) => Err(format!("recv: {e:?}")),
            },
            _ => g.check_host().map_err(|e| match e {
                SessionError::SegmentTruncated => "SegmentTruncated".into(),
                e => format!("check_host: {e:?}"),
            }),
        };
        if let Err(e) = r {
            if e == "SegmentTruncated" {
                println!("RESULT truncated=1 ops={i}");
                return Ok(());
            }
            return Err(format!(
                "first error after truncation (op {i}) was not SegmentTruncated: {e}"
            ));
        }
    }
    Err("1000 operations on a truncated segment and no error".into())
}

#[test]
fn child_entry() {
    child_main(|role| match role {
        "honest" => {
            let mut g = Guest::connect(env_var("SOCKET")?, GuestOptions::default())
                .map_err(|e| format!("connect: {e}"))?;
            let st = run_stream(
                &mut g,
                &StreamCfg {
                    seed: SEED,
                    count: u64::MAX,
                    max_size: MAX_SIZE,
                    window: 8,
                    stop_file: Some(env_var("STOP_FILE")?.into()),
                    timeout: Duration::from_secs(200),
                    progress: None,
                },
            )?;
            g.close();
            println!("{}", st.result_line(&format!(" peer={}", g.peer_id())));
            Ok(())
        }
        "malicious" => {
            let mut g = Guest::connect(env_var("SOCKET")?, GuestOptions::default())
                .map_err(|e| format!("connect: {e}"))?;
            attack(&mut g, &env_var("ATTACK")?)?;
            wait_evicted(&g)?;
            println!("RESULT peer={} evicted=1", g.peer_id());
            Ok(())
        }
        "truncation" => truncation_victim(),
        other => Err(format!("unknown role {other}")),
    });
}

#[test]
fn malicious_guest_is_disconnected_and_honest_guest_keeps_working() {
    let dir = TempDir::new("badinput");
    let sock = dir.join("host.sock");
    let stop = dir.join("stop");
    let mut host = EchoHost::new(
        Host::create(HostOptions {
            config: config(),
            backing: SegmentBacking::Anonymous,
        })
        .expect("create host"),
        SEED,
        MAX_SIZE,
    );
    host.host.listen(&sock).expect("listen");
    let mut honest = spawn_child(
        "honest",
        &[
            ("SOCKET", sock.display().to_string()),
            ("STOP_FILE", stop.display().to_string()),
        ],
    );
    host.run_until("the honest guest connected", Duration::from_secs(20), |h| {
        !h.peers.is_empty()
    });
    let honest_id = *host.peers.keys().next().unwrap();
    let mut forged = Vec::new();
    for attack in ATTACKS {
        let t0 = Instant::now();
        let first_note = host.notes.len();
        let mut child = spawn_child(
            "malicious",
            &[
                ("SOCKET", sock.display().to_string()),
                ("ATTACK", attack.to_string()),
            ],
        );
        host.run_until(
            &format!("the {attack} guest exited"),
            Duration::from_secs(30),
            |_| exited(&mut child),
        );
        let out = finish_child(child, Duration::from_secs(1));
        let r = out.expect_ok(&format!("attack {attack}"));
        if let Some(line) = out.stdout.lines().find_map(|l| l.split_once("FORGED ")) {
            let v: Vec<u32> = line
                .1
                .split_whitespace()
                .filter_map(|kv| kv.split_once('=')?.1.parse().ok())
                .collect();
            forged.push(VarSlotHandle {
                class_idx: v[0] as u8,
                extent_idx: 0,
                slot_idx: v[1],
                generation: v[2],
            });
        }
        let peer = r["peer"] as u8;
        assert_ne!(peer, honest_id);
        let notes = &host.notes[first_note..];
        // The host reported an error for exactly that peer, then disconnected it.
        let report = notes.iter().find_map(|n| match n {
            Note::RecvFailed { peer: p, error } | Note::SendFailed { peer: p, error }
                if *p == peer =>
            {
                Some(error.clone())
            }
            Note::Gone {
                peer: p,
                reason: GoneReason::Corrupt,
                ..
            } if *p == peer => Some("peer entry corrupt".into()),
            _ => None,
        });
        let report = report.unwrap_or_else(|| panic!("{attack}: no error reported: {notes:?}"));
        assert!(
            notes.iter().any(|n| matches!(n, Note::Gone { peer: p, reason: GoneReason::Corrupt, .. } if *p == peer)),
            "{attack}: not disconnected as corrupt: {notes:?}"
        );
        for n in notes {
            match n {
                Note::RecvFailed { peer: p, .. }
                | Note::SendFailed { peer: p, .. }
                | Note::Mismatch { peer: p, .. }
                | Note::Gone { peer: p, .. } => {
                    assert_ne!(
                        *p, honest_id,
                        "{attack}: the honest guest was affected: {n:?}"
                    )
                }
                Note::Connected(_) => {}
            }
        }
        eprintln!("{attack:>28}: peer {peer}: {report} ({:.0?})", t0.elapsed());
    }
    assert!(!exited(&mut honest), "the honest guest stopped early");
    std::fs::write(&stop, b"stop").unwrap();
    host.run_until("the honest guest finished", Duration::from_secs(30), |h| {
        exited(&mut honest) && h.host.peer_ids().is_empty()
    });
    let r = finish_child(honest, Duration::from_secs(1)).expect_ok("honest guest");
    assert!(r["received"] > 0 && r["received"] == r["sent"], "{r:?}");
    // (Messages the malicious guests sent are not valid streams; only the honest
    // guest's must all verify.)
    let honest_mismatches: Vec<_> = host
        .mismatches()
        .into_iter()
        .filter(|n| matches!(n, Note::Mismatch { peer, .. } if *peer == honest_id))
        .collect();
    assert!(honest_mismatches.is_empty(), "{honest_mismatches:?}");
    // Known limitation (roam's shared pool): a slot allocated under a forged owner id
    // is not reclaimed with its real owner. Exactly those are still allocated.
    assert_eq!(forged.len(), 1);
    let pool = host.host.segment().pool();
    let allocated: u32 = pool.stats().iter().map(|s| s.allocated).sum();
    assert_eq!(
        allocated as usize,
        forged.len(),
        "only the forged slot leaked"
    );
    for h in forged {
        pool.free(h).expect("the forged slot is still allocated");
    }
    host.assert_clean();
    eprintln!("honest guest: {r:?}");
}

#[test]
fn truncated_segment_file_is_an_error_in_the_guest_not_sigbus() {
    // To nothing (even the header is gone), and to one page (header and peer table
    // survive, the rings and the pool are gone).
    for len in [0, 4096] {
        truncate_under_guest(len);
    }
}

fn truncate_under_guest(truncate_to: u64) {
    let dir = TempDir::new("truncate");
    let sock = dir.join("host.sock");
    let go = dir.join("go");
    let path = dev_shm_path("truncate");
    let mut host = EchoHost::new(
        Host::create(HostOptions {
            config: config(),
            backing: SegmentBacking::File {
                path: path.clone(),
                cleanup: PathCleanup::Delete,
                mode: 0o600,
            },
        })
        .expect("create host"),
        SEED,
        MAX_SIZE,
    );
    host.verify = false;
    host.host.listen(&sock).expect("listen");
    let mut child = spawn_child(
        "truncation",
        &[
            ("SOCKET", sock.display().to_string()),
            ("GO_FILE", go.display().to_string()),
            ("READY_FILE", dir.join("ready").display().to_string()),
        ],
    );
    let ready = dir.join("ready");
    host.run_until("the guest's round trip", Duration::from_secs(20), |_| {
        ready.exists() || exited(&mut child)
    });
    // Truncate the whole file under everyone, then tell the guest to carry on. The
    // host (this process) stops touching the segment: only the guest is under test.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(truncate_to)
        .unwrap();
    std::fs::write(&go, b"go").unwrap();
    let out = finish_child(child, Duration::from_secs(30));
    use std::os::unix::process::ExitStatusExt;
    assert_ne!(
        out.status.signal(),
        Some(libc::SIGBUS),
        "the guest died of SIGBUS: {}",
        out.stderr
    );
    let r = out.expect_ok("truncation guest");
    assert_eq!(r["truncated"], 1);
    // The very first operation after the truncation (a send) fails: it must not
    // report success for a message written into a page that no longer exists.
    assert_eq!(r["ops"], 0, "truncated to {truncate_to}: {r:?}");
    eprintln!(
        "truncated to {truncate_to} bytes: SegmentTruncated after {} operations",
        r["ops"]
    );
    // The host's own mapping is truncated too; dropping it must not fault either.
    drop(host);
}

/// A guest in a thread of this process, driven by string commands (a `Guest` is not
/// `Send`, so it lives and dies on its thread).
fn guest_thread(
    sock: std::path::PathBuf,
) -> (
    std::sync::mpsc::Sender<&'static str>,
    std::sync::mpsc::Receiver<String>,
) {
    let (cmd_tx, cmd_rx) = std::sync::mpsc::channel::<&'static str>();
    let (rep_tx, rep_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut g = match Guest::connect(&sock, GuestOptions::default()) {
            Ok(g) => g,
            Err(e) => {
                let _ = rep_tx.send(format!("connect failed: {e}"));
                return;
            }
        };
        let _ = rep_tx.send(g.peer_id().to_string());
        while let Ok(cmd) = cmd_rx.recv() {
            let reply = match cmd {
                "check" => match g.check_host() {
                    Ok(()) => "ok".to_string(),
                    Err(e) => format!("{e:?}"),
                },
                "echo" => match g
                    .send(b"ping", Duration::from_secs(5))
                    .map_err(|e| format!("{e:?}"))
                    .and_then(|()| {
                        g.recv(Some(Duration::from_secs(5)))
                            .map(|m| String::from_utf8_lossy(&m).into_owned())
                            .map_err(|e| format!("{e:?}"))
                    }) {
                    Ok(s) | Err(s) => s,
                },
                "drop" => break,
                _ => "unknown command".into(),
            };
            let _ = rep_tx.send(reply);
        }
        drop(g);
        let _ = rep_tx.send("dropped".into());
    });
    (cmd_tx, rep_rx)
}

/// Regression: a guest the host evicted used to (a) keep reporting `check_host` Ok once
/// another guest had claimed the same entry, and (b) store Goodbye into that entry
/// when dropped, so the host then disconnected the innocent new guest (or, if the
/// entry was still Empty, leaked it in Goodbye forever: the malicious-guest test ran
/// out of peer slots).
#[test]
fn evicted_guest_cannot_touch_the_entry_of_the_next_guest() {
    let dir = TempDir::new("evicted");
    let sock = dir.join("host.sock");
    let mut cfg = config();
    cfg.max_guests = 1; // the next guest necessarily gets the evicted guest's entry
    let mut host = EchoHost::new(
        Host::create(HostOptions {
            config: cfg,
            backing: SegmentBacking::Anonymous,
        })
        .expect("create host"),
        SEED,
        MAX_SIZE,
    );
    host.verify = false;
    host.host.listen(&sock).expect("listen");
    let ask = |h: &mut EchoHost,
               chan: &(
        std::sync::mpsc::Sender<&'static str>,
        std::sync::mpsc::Receiver<String>,
    ),
               cmd: &'static str| {
        chan.0.send(cmd).unwrap();
        let t0 = Instant::now();
        loop {
            match chan.1.try_recv() {
                Ok(r) => return r,
                Err(_) => {
                    assert!(t0.elapsed() < Duration::from_secs(10), "no reply to {cmd}");
                    h.step(Duration::from_millis(2));
                }
            }
        }
    };
    let reply = |h: &mut EchoHost, chan: &std::sync::mpsc::Receiver<String>| {
        let t0 = Instant::now();
        loop {
            if let Ok(r) = chan.try_recv() {
                return r;
            }
            assert!(t0.elapsed() < Duration::from_secs(10), "no reply");
            h.step(Duration::from_millis(2));
        }
    };
    let a = guest_thread(sock.clone());
    let a_id: u8 = reply(&mut host, &a.1).parse().expect("guest a connected");
    host.run_until("a connected", Duration::from_secs(5), |h| {
        h.peers.contains_key(&a_id)
    });
    host.disconnect(a_id, GoneReason::Requested);
    let b = guest_thread(sock.clone());
    let b_id: u8 = reply(&mut host, &b.1).parse().expect("guest b connected");
    assert_eq!(a_id, b_id, "one entry: b reuses a's");
    host.run_until("b connected", Duration::from_secs(5), |h| {
        h.peers.contains_key(&b_id)
    });
    assert_eq!(
        ask(&mut host, &a, "check"),
        "Evicted",
        "a must know it was evicted"
    );
    assert_eq!(ask(&mut host, &b, "check"), "ok");
    assert_eq!(ask(&mut host, &a, "drop"), "dropped");
    for _ in 0..20 {
        host.step(Duration::from_millis(1));
    }
    assert!(
        host.host.peer_ids().contains(&b_id),
        "b was disconnected after a's drop: {:?}",
        host.notes
    );
    assert_eq!(ask(&mut host, &b, "check"), "ok");
    assert_eq!(ask(&mut host, &b, "echo"), "ping");
    assert_eq!(ask(&mut host, &b, "drop"), "dropped");
    host.run_until("b recovered", Duration::from_secs(5), |h| {
        h.host.peer_ids().is_empty()
    });
    host.assert_clean();
}

// ---------------------------------------------------------------------------------
// Connections that never complete their bootstrap request

/// Whether the host closed its end of `s` (EOF) rather than just not answering.
fn closed_by_host(s: &std::os::unix::net::UnixStream) -> bool {
    use std::io::Read;
    s.set_nonblocking(true).unwrap();
    let mut b = [0u8; 64];
    let closed = matches!((&*s).read(&mut b), Ok(0));
    s.set_nonblocking(false).unwrap();
    closed
}

/// A client that connects and then sends nothing (or half a header) must not hold
/// up the host: another guest's handshake completes while the silent connection
/// is still open (the host used to read each request with a blocking 5 s timeout,
/// so the guest waited behind it), and bad magic is refused at once.
#[test]
fn silent_and_partial_connections_do_not_block_other_guests() {
    use roam_shm::segment::host::HostEvent;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    let dir = TempDir::new("silent");
    let sock = dir.join("host.sock");
    let mut host = listening_host(config(), &sock);
    let silent = UnixStream::connect(&sock).unwrap();
    let mut partial = UnixStream::connect(&sock).unwrap();
    partial.write_all(b"RSH").unwrap(); // 3 of the 6 header bytes
    let mut bad = UnixStream::connect(&sock).unwrap();
    bad.write_all(b"XXXX\0\0").unwrap();
    // Let the host take all three before the guest comes.
    for _ in 0..3 {
        let ev = host.poll(Some(Duration::from_millis(20))).unwrap();
        assert!(ev.is_empty(), "{ev:?}");
    }
    let sock2 = sock.clone();
    let guest = std::thread::spawn(move || {
        let g = Guest::connect(&sock2, GuestOptions::default()).map_err(|e| e.to_string())?;
        Ok::<u8, String>(g.peer_id())
    });
    let peer = poll_until_connected(&mut host);
    assert_eq!(guest.join().unwrap(), Ok(peer));
    assert!(
        !closed_by_host(&silent),
        "the silent connection was given up on first"
    );
    assert!(
        !closed_by_host(&partial),
        "the partial connection was given up on first"
    );
    assert!(closed_by_host(&bad), "bad magic is refused at once");
    // The slow ones are dropped once their time is up (5 s), the host polling on.
    let t0 = Instant::now();
    while !(closed_by_host(&silent) && closed_by_host(&partial)) {
        let ev = host.poll(Some(Duration::from_millis(100))).unwrap();
        assert!(
            ev.iter().all(|e| !matches!(e, HostEvent::Connected(_))),
            "{ev:?}"
        );
        assert!(t0.elapsed() < Duration::from_secs(30), "never dropped");
    }
}

/// A flood of silent connections keeps at most 64 of them open: the oldest go.
#[test]
fn a_flood_of_silent_connections_is_bounded() {
    use std::os::unix::net::UnixStream;

    let dir = TempDir::new("flood");
    let sock = dir.join("host.sock");
    let mut host = listening_host(config(), &sock);
    let mut conns = Vec::new();
    for _ in 0..80 {
        conns.push(UnixStream::connect(&sock).unwrap());
        // Accept as they come (the listen backlog is finite).
        assert_eq!(host.try_accept().unwrap(), None);
    }
    let closed: Vec<bool> = conns.iter().map(closed_by_host).collect();
    assert!(closed[..16].iter().all(|c| *c), "{closed:?}");
    assert!(closed[16..].iter().all(|c| !*c), "{closed:?}");
}
