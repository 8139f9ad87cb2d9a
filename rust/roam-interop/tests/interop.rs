//! Interop with the published roam 7.3 crates (`roam7` = roam-shm 7.3.0 and its
//! shm-primitives), process against process:
//!
//! (a) a roam-built guest process (roam's bootstrap client, `Segment::attach`,
//!     `guest_link_from_raw`, `ShmLink`) attaches to OUR host through RSH0/RSP0 and
//!     exchanges messages both ways across the inline, slot-ref and mmap-ref routes;
//! (b) OUR guest attaches to a roam-built host process (`HostHub`,
//!     `prepare_bootstrap_success`, `send_success_unix`, `ShmLink`) and does the same;
//! (c) `roam-shm segment inspect` (the CLI binary) prints the header of a segment
//!     created by roam, matching roam's own values, in text and JSON.
//!
//! Each side checks every byte the other sent (`roam_interop::fill`/`check`).
//! The CLI binary is found through `ROAM_SHM_CLI` (set by scripts/test-interop.sh),
//! else next to this test binary's target directory.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, IntoRawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use roam_interop::{check, fill, parse_result, route_sizes};
use roam_shm::segment::config::SegmentConfig;
use roam_shm::segment::guest::{Guest, GuestOptions};
use roam_shm::segment::host::{Host, HostEvent, HostOptions};
use roam_shm::segment::link::MessageKind;
use roam_shm::segment::mapping::PathCleanup;
use roam_shm::segment::peer::PeerState;
use roam_shm::segment::shared::SegmentBacking;
use roam_shm::segment::var_pool::SizeClass;

use roam7::segment::{Segment, SegmentConfig as RoamSegmentConfig};
use roam7::varslot::SizeClassConfig;
use roam7::{HostHub, ShmLink};
use roam7_primitives::bootstrap::{BootstrapStatus, decode_request, encode_request};
use roam7_primitives::{FileCleanup, PeerId};
use roam7_types::{Link, LinkRx, LinkTx, LinkTxPermit, WriteSlot};

const ROLE_ENV: &str = "ROAM_INTEROP_ROLE";
const INLINE: usize = 256;
/// Largest slot of both sides' segments: 64 KiB, so 65532-byte payloads.
const MAX_SLOT_PAYLOAD: usize = 64 * 1024 - 4;

// ---------------------------------------------------------------------------------
// Process plumbing

fn spawn_child(role: &str, env: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(ROLE_ENV, role)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn child")
}

struct Output {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

fn finish(mut child: Child, bound: Duration) -> Output {
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > bound {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let (mut stdout, mut stderr) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    Output {
        status,
        stdout,
        stderr,
    }
}

fn expect_result(out: &Output, what: &str) -> HashMap<String, u64> {
    assert!(
        out.status.success(),
        "{what} failed: {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
    parse_result(&out.stdout)
        .unwrap_or_else(|| panic!("{what}: no RESULT\n{}\n{}", out.stdout, out.stderr))
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} not set"))
}

fn unique(dir: &str, tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    PathBuf::from(dir).join(format!("roam-interop-{tag}-{}-{nanos}", std::process::id()))
}

fn shm_dir() -> &'static str {
    if Path::new("/dev/shm").is_dir() {
        "/dev/shm"
    } else {
        "/tmp"
    }
}

#[test]
fn child_entry() {
    let Ok(role) = std::env::var(ROLE_ENV) else {
        return;
    };
    // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let r = match role.as_str() {
        "roam-guest" => roam_guest(),
        "roam-host" => roam_host(),
        other => Err(format!("unknown role {other}")),
    };
    match r {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("child {role}: error: {e}");
            std::process::exit(1);
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

/// roam's `alloc` returns WouldBlock when the slot pool is exhausted: take a new
/// permit and retry (what roam's own callers do).
async fn roam_send(tx: &<ShmLink as Link>::Tx, payload_len: usize, seq: u64) -> Result<(), String> {
    let t0 = Instant::now();
    loop {
        let permit = tx.reserve().await.map_err(|e| format!("reserve: {e}"))?;
        match permit.alloc(payload_len) {
            Ok(mut slot) => {
                fill(slot.as_mut_slice(), seq);
                slot.commit();
                return Ok(());
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if t0.elapsed() > Duration::from_secs(20) {
                    return Err("slot pool exhausted for 20 s".into());
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(e) => return Err(format!("alloc({payload_len}): {e}")),
        }
    }
}

async fn roam_echo(tx: &<ShmLink as Link>::Tx, payload: &[u8]) -> Result<(), String> {
    let t0 = Instant::now();
    loop {
        let permit = tx.reserve().await.map_err(|e| format!("reserve: {e}"))?;
        match permit.alloc(payload.len()) {
            Ok(mut slot) => {
                slot.as_mut_slice().copy_from_slice(payload);
                slot.commit();
                return Ok(());
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if t0.elapsed() > Duration::from_secs(20) {
                    return Err("slot pool exhausted for 20 s".into());
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(e) => return Err(format!("alloc({}): {e}", payload.len())),
        }
    }
}

// ---------------------------------------------------------------------------------
// (a) roam guest process <-> our host

/// A guest built only from roam 7.3's public API, as a roam application would.
fn roam_guest() -> Result<(), String> {
    runtime()?.block_on(async {
        let mut stream =
            UnixStream::connect(env("SOCKET")?).map_err(|e| format!("connect: {e}"))?;
        // Swift and roam clients send a 32-hex-character session id.
        let req = encode_request(b"0123456789abcdef0123456789abcdef")
            .map_err(|e| format!("encode_request: {e:?}"))?;
        stream.write_all(&req).map_err(|e| e.to_string())?;
        let resp = roam7_primitives::bootstrap::recv_response_unix(stream.as_raw_fd())
            .map_err(|e| format!("recv_response_unix: {e:?}"))?;
        if resp.response.status != BootstrapStatus::Success {
            return Err(format!("rejected: {:?}", resp.response));
        }
        let fds = resp.fds.ok_or("success without fds")?;
        let path = String::from_utf8(resp.response.payload).map_err(|e| e.to_string())?;
        // roam's guest opens the segment by the path in the payload.
        let segment = Arc::new(
            Segment::attach(Path::new(&path)).map_err(|e| format!("Segment::attach({path}): {e}"))?,
        );
        let peer_id = u8::try_from(resp.response.peer_id)
            .ok()
            .and_then(PeerId::new)
            .ok_or("bad peer id")?;
        // One mmap-control socket serves both directions: roam wants two fds.
        let mmap_rx = fds.mmap_control_fd.into_raw_fd();
        // SAFETY: dup of a descriptor we own; the copy is owned by the link below.
        let mmap_tx = unsafe { libc::dup(mmap_rx) };
        if mmap_tx < 0 {
            return Err("dup".into());
        }
        // SAFETY: the three descriptors are ours (received, or our dup) and belong to
        // this peer of this segment; the link takes ownership of them.
        let link = unsafe {
            roam7::guest_link_from_raw(
                segment.clone(),
                peer_id,
                fds.doorbell_fd.into_raw_fd(),
                mmap_rx,
                mmap_tx,
                true,
            )
        }
        .map_err(|e| format!("guest_link_from_raw: {e}"))?;
        drop(fds.segment_fd); // roam maps by path, not by the passed fd
        let (tx, mut rx) = link.split();
        let sizes = route_sizes(INLINE, MAX_SLOT_PAYLOAD);
        // Phase 1: ping-pong; phase 2: bursts of 8 in flight.
        let mut seq = 0u64;
        let mut received = 0u64;
        while (seq as usize) < sizes.len() {
            let burst = if (seq as usize) < sizes.len() / 2 { 1 } else { 8 };
            let first = seq;
            while seq < first + burst && (seq as usize) < sizes.len() {
                roam_send(&tx, sizes[seq as usize], seq).await?;
                seq += 1;
            }
            while received < seq {
                let b = tokio::time::timeout(Duration::from_secs(20), rx.recv())
                    .await
                    .map_err(|_| format!("no echo of message {received} within 20 s"))?
                    .map_err(|e| format!("recv: {e}"))?
                    .ok_or("host closed the link")?;
                check(b.as_bytes(), received, sizes[received as usize])?;
                received += 1;
            }
        }
        let (ts, rs) = (tx.stats(), rx.stats());
        println!(
            "RESULT peer={} sent={seq} received={received} inline_sends={} slot_ref_sends={} mmap_ref_sends={} inline_recvs={} slot_ref_recvs={} mmap_ref_recvs={}",
            peer_id.get(),
            ts.inline_sends,
            ts.slot_ref_sends,
            ts.mmap_ref_sends,
            rs.inline_recvs,
            rs.slot_ref_recvs,
            rs.mmap_ref_recvs
        );
        // roam guests just close their fds (no Goodbye): the host sees doorbell EOF.
        Ok(())
    })
}

fn our_config() -> SegmentConfig {
    SegmentConfig {
        max_guests: 2,
        bipbuf_capacity: 64 * 1024,
        size_classes: vec![
            SizeClass {
                slot_size: 1024,
                count: 32,
            },
            SizeClass {
                slot_size: 16 * 1024,
                count: 32,
            },
            SizeClass {
                slot_size: 64 * 1024,
                count: 32,
            },
        ],
        inline_threshold: 0,
        max_payload_size: 2 << 20,
        heartbeat_interval: Duration::ZERO,
    }
}

#[test]
fn roam_guest_process_talks_to_our_host() {
    let sock = unique("/tmp", "a.sock");
    let seg_path = unique(shm_dir(), "a-seg");
    let mut host = Host::create(HostOptions {
        config: our_config(),
        // roam guests open the segment by path: a real file.
        backing: SegmentBacking::File {
            path: seg_path.clone(),
            cleanup: PathCleanup::Delete,
            mode: 0o600,
        },
    })
    .expect("create host");
    assert_eq!(host.segment().max_slot_payload() as usize, MAX_SLOT_PAYLOAD);
    host.listen(&sock).expect("listen");
    let mut child = spawn_child("roam-guest", &[("SOCKET", sock.display().to_string())]);
    let sizes = route_sizes(INLINE, MAX_SLOT_PAYLOAD);
    let mut kinds = [0u64; 3];
    let (mut echoed, mut gone, mut connected) = (0u64, false, None);
    let t0 = Instant::now();
    while !gone {
        if connected.is_none() && matches!(child.try_wait(), Ok(Some(_))) {
            break; // it failed before connecting: its output says why
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "roam guest: no end after {echoed} echoes"
        );
        for ev in host.poll(Some(Duration::from_millis(10))).expect("poll") {
            match ev {
                HostEvent::Connected(p) => connected = Some(p),
                HostEvent::PeerGone { .. } => gone = true,
                HostEvent::Readable(p) => {
                    let (tx, rx) = host.link(p).unwrap();
                    while let Some(raw) = rx.try_recv_raw().expect("recv from the roam guest") {
                        // SAFETY: valid until rx.release().
                        let got = unsafe { std::slice::from_raw_parts(raw.ptr, raw.len) };
                        let mut buf = match tx.reserve(raw.len) {
                            Ok(b) => b,
                            Err(e) if e.is_backpressure() => break,
                            Err(e) => panic!("echo: {e}"),
                        };
                        check(got, echoed, sizes[echoed as usize]).expect("roam guest's bytes");
                        buf.bytes_mut().copy_from_slice(got);
                        buf.commit().expect("commit echo");
                        kinds[match raw.kind {
                            MessageKind::Inline => 0,
                            MessageKind::Slot => 1,
                            MessageKind::Mmap => 2,
                        }] += 1;
                        echoed += 1;
                        rx.release().expect("release");
                    }
                }
            }
        }
    }
    let out = finish(child, Duration::from_secs(10));
    let r = expect_result(&out, "roam guest");
    assert_eq!(connected, Some(r["peer"] as u8));
    let n = sizes.len() as u64;
    assert_eq!((r["sent"], r["received"], echoed), (n, n, n));
    for k in [
        "inline_sends",
        "slot_ref_sends",
        "mmap_ref_sends",
        "inline_recvs",
        "slot_ref_recvs",
        "mmap_ref_recvs",
    ] {
        assert!(r[k] > 0, "roam guest: no {k}: {r:?}");
    }
    assert!(
        kinds.iter().all(|&k| k > 0),
        "our host received kinds {kinds:?}"
    );
    // Everything was released: roam freed our slots, we freed roam's, the entry is Empty.
    let seg = host.segment();
    assert!(
        seg.pool().stats().iter().all(|s| s.allocated == 0),
        "{:?}",
        seg.pool().stats()
    );
    assert!(
        seg.peer_table()
            .iter()
            .all(|(_, e)| e.state() == Ok(PeerState::Empty))
    );
    eprintln!(
        "roam guest <-> our host: {n} messages each way; roam sent inline/slot/mmap = {}/{}/{}, received {}/{}/{}; our host received {kinds:?}",
        r["inline_sends"],
        r["slot_ref_sends"],
        r["mmap_ref_sends"],
        r["inline_recvs"],
        r["slot_ref_recvs"],
        r["mmap_ref_recvs"]
    );
    drop(host);
    let _ = std::fs::remove_file(&sock);
}

// ---------------------------------------------------------------------------------
// (b) our guest <-> roam host process

fn roam_classes() -> [SizeClassConfig; 3] {
    [
        SizeClassConfig {
            slot_size: 1024,
            slot_count: 32,
        },
        SizeClassConfig {
            slot_size: 16 * 1024,
            slot_count: 32,
        },
        SizeClassConfig {
            slot_size: 64 * 1024,
            slot_count: 32,
        },
    ]
}

/// A host built only from roam 7.3's public API: segment, hub, bootstrap, echo.
fn roam_host() -> Result<(), String> {
    runtime()?.block_on(async {
        let path = env("SEGMENT")?;
        let classes = roam_classes();
        let segment = Arc::new(
            Segment::create(
                Path::new(&path),
                RoamSegmentConfig {
                    max_guests: 2,
                    bipbuf_capacity: 64 * 1024,
                    max_payload_size: 2 << 20,
                    inline_threshold: 0,
                    heartbeat_interval: 0,
                    size_classes: &classes,
                },
                FileCleanup::Manual,
            )
            .map_err(|e| format!("Segment::create: {e}"))?,
        );
        let hub = HostHub::new(segment.clone());
        let listener = UnixListener::bind(env("SOCKET")?).map_err(|e| e.to_string())?;
        std::fs::write(env("READY_FILE")?, b"ready").map_err(|e| e.to_string())?;
        let (mut stream, _) = listener.accept().map_err(|e| e.to_string())?;
        let mut hdr = [0u8; 6];
        stream.read_exact(&mut hdr).map_err(|e| e.to_string())?;
        let sid_len = u16::from_le_bytes([hdr[4], hdr[5]]) as usize;
        let mut frame = hdr.to_vec();
        frame.resize(6 + sid_len, 0);
        stream.read_exact(&mut frame[6..]).map_err(|e| e.to_string())?;
        let sid = decode_request(&frame).map_err(|e| format!("decode_request: {e:?}"))?.sid.len();
        let prepared = hub
            .prepare_bootstrap_success(path.as_bytes())
            .map_err(|e| format!("prepare_bootstrap_success: {e}"))?;
        prepared
            .send_success_unix(stream.as_raw_fd(), &segment)
            .map_err(|e| format!("send_success_unix: {e:?}"))?;
        let peer = prepared.peer_id();
        let roam7::bootstrap::PreparedBootstrapPeer {
            host_peer,
            guest_ticket,
            ..
        } = prepared;
        // Close the host's copies of the guest's descriptors (the guest has them now),
        // or the guest's exit would never look like EOF here.
        let mmap_tx_fd = guest_ticket.mmap_tx_fd;
        drop(guest_ticket);
        // SAFETY: a raw descriptor the ticket does not close itself; nothing else uses it.
        unsafe { libc::close(mmap_tx_fd) };
        let link = host_peer.into_link().map_err(|e| format!("into_link: {e}"))?;
        let (tx, mut rx) = link.split();
        let sizes = route_sizes(INLINE, MAX_SLOT_PAYLOAD);
        let mut echoed = 0u64;
        let mut bad = 0u64;
        let end = loop {
            match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
                Err(_) => break "timeout".to_string(),
                Ok(Ok(Some(b))) => {
                    let bytes = b.as_bytes();
                    if let Err(e) = check(bytes, echoed, sizes.get(echoed as usize).copied().unwrap_or(0)) {
                        eprintln!("roam host: {e}");
                        bad += 1;
                    }
                    roam_echo(&tx, bytes).await?;
                    echoed += 1;
                }
                Ok(Ok(None)) => break "eof".to_string(),
                Ok(Err(e)) => break format!("{e}"),
            }
        };
        let (ts, rs) = (tx.stats(), rx.stats());
        println!(
            "RESULT peer={} sid_len={sid} echoed={echoed} bad={bad} inline_recvs={} slot_ref_recvs={} mmap_ref_recvs={} inline_sends={} slot_ref_sends={} mmap_ref_sends={}",
            peer.get(),
            rs.inline_recvs,
            rs.slot_ref_recvs,
            rs.mmap_ref_recvs,
            ts.inline_sends,
            ts.slot_ref_sends,
            ts.mmap_ref_sends
        );
        eprintln!("roam host: link ended: {end}");
        let _ = std::fs::remove_file(&path);
        Ok(())
    })
}

#[test]
fn our_guest_talks_to_roam_host_process() {
    let sock = unique("/tmp", "b.sock");
    let ready = unique("/tmp", "b.ready");
    let seg_path = unique(shm_dir(), "b-seg");
    let child = spawn_child(
        "roam-host",
        &[
            ("SOCKET", sock.display().to_string()),
            ("SEGMENT", seg_path.display().to_string()),
            ("READY_FILE", ready.display().to_string()),
        ],
    );
    let t0 = Instant::now();
    while !ready.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "roam host never got ready"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut g = Guest::connect(&sock, GuestOptions::default()).expect("connect to the roam host");
    assert_eq!(g.segment().max_slot_payload() as usize, MAX_SLOT_PAYLOAD);
    let sizes = route_sizes(INLINE, MAX_SLOT_PAYLOAD);
    let n = sizes.len() as u64;
    let (mut sent, mut received) = (0u64, 0u64);
    let mut kinds = [0u64; 3];
    let mut scratch = Vec::new();
    let t0 = Instant::now();
    while received < n {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "stuck at {sent} sent, {received} received"
        );
        let mut progress = false;
        // Ping-pong for the first half, then up to 8 in flight.
        let window = if (sent as usize) < sizes.len() / 2 {
            1
        } else {
            8
        };
        while sent < n && sent - received < window {
            scratch.resize(sizes[sent as usize], 0);
            fill(&mut scratch, sent);
            match g.try_send(&scratch) {
                Ok(()) => {
                    sent += 1;
                    progress = true;
                }
                Err(e) if e.is_backpressure() => break,
                Err(e) => panic!("send #{sent}: {e}"),
            }
        }
        while let Some(m) = g.try_recv().expect("recv from the roam host") {
            check(&m, received, sizes[received as usize]).expect("roam host's echo");
            kinds[match m.kind() {
                MessageKind::Inline => 0,
                MessageKind::Slot => 1,
                MessageKind::Mmap => 2,
            }] += 1;
            received += 1;
            progress = true;
        }
        if !progress {
            g.wait(Some(Duration::from_millis(20))).expect("wait");
        }
    }
    g.close();
    drop(g);
    let out = finish(child, Duration::from_secs(30));
    let r = expect_result(&out, "roam host");
    assert_eq!((r["echoed"], r["bad"]), (n, 0), "{}", out.stderr);
    assert_eq!(
        r["sid_len"], 32,
        "our guest sends a 32-hex-character session id"
    );
    for k in [
        "inline_sends",
        "slot_ref_sends",
        "mmap_ref_sends",
        "inline_recvs",
        "slot_ref_recvs",
        "mmap_ref_recvs",
    ] {
        assert!(r[k] > 0, "roam host: no {k}: {r:?}");
    }
    assert!(
        kinds.iter().all(|&k| k > 0),
        "our guest received kinds {kinds:?}"
    );
    eprintln!(
        "our guest <-> roam host: {n} messages each way; roam received inline/slot/mmap = {}/{}/{}, sent {}/{}/{}; our guest received {kinds:?}",
        r["inline_recvs"],
        r["slot_ref_recvs"],
        r["mmap_ref_recvs"],
        r["inline_sends"],
        r["slot_ref_sends"],
        r["mmap_ref_sends"]
    );
    let _ = std::fs::remove_file(&sock);
    let _ = std::fs::remove_file(&ready);
}

// ---------------------------------------------------------------------------------
// (c) `roam-shm segment inspect` of a roam-created segment

fn cli_path() -> PathBuf {
    if let Ok(p) = std::env::var("ROAM_SHM_CLI") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/interop-xxxx -> target/<profile>/roam-shm
    let exe = std::env::current_exe().unwrap();
    let p = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("roam-shm");
    assert!(
        p.exists(),
        "the roam-shm CLI is not built: run `cargo build -p roam-shm-cli` or scripts/test-interop.sh (or set ROAM_SHM_CLI)"
    );
    p
}

fn inspect(path: &Path, json: bool) -> String {
    let mut cmd = Command::new(cli_path());
    cmd.args(["segment", "inspect"]).arg(path);
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().expect("run roam-shm");
    assert!(
        out.status.success(),
        "roam-shm segment inspect failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn cli_inspect_prints_the_header_of_a_roam_created_segment() {
    let path = unique(shm_dir(), "c-seg");
    let classes = [
        SizeClassConfig {
            slot_size: 1024,
            slot_count: 8,
        },
        SizeClassConfig {
            slot_size: 16 * 1024,
            slot_count: 4,
        },
    ];
    let segment = Segment::create(
        &path,
        RoamSegmentConfig {
            max_guests: 3,
            bipbuf_capacity: 8192,
            max_payload_size: 123_456,
            inline_threshold: 128,
            heartbeat_interval: 5_000_000,
            size_classes: &classes,
        },
        FileCleanup::Manual,
    )
    .expect("roam Segment::create");
    // Some state to see: a reserved entry, an attached one, two allocated slots.
    let reserved = segment.reserve_peer().expect("reserve");
    let attached = segment.attach_peer().expect("attach");
    let pool = segment.var_pool();
    let s1 = pool.allocate(100, attached.get()).expect("alloc");
    let s2 = pool.allocate(5000, attached.get()).expect("alloc");

    let h = segment.header();
    let doc: serde_json::Value =
        serde_json::from_str(&inspect(&path, true)).expect("inspect --json is JSON");
    let j = &doc["header"];
    let u = |k: &str| {
        j[k].as_u64()
            .unwrap_or_else(|| panic!("header.{k} missing: {j}"))
    };
    assert_eq!(j["magic"], "ROAMHUB");
    assert_eq!(&h.magic, b"ROAMHUB\x07");
    assert_eq!(u("version"), u64::from(h.version));
    assert_eq!(u("header_size"), u64::from(h.header_size));
    assert_eq!(u("total_size"), h.total_size);
    assert_eq!(u("current_size"), h.current_size());
    assert_eq!(u("max_payload_size"), u64::from(h.max_payload_size));
    assert_eq!(u("inline_threshold"), u64::from(h.inline_threshold));
    assert_eq!(
        u("effective_inline_threshold"),
        u64::from(h.effective_inline_threshold())
    );
    assert_eq!(u("max_guests"), u64::from(h.max_guests));
    assert_eq!(u("bipbuf_capacity"), u64::from(h.bipbuf_capacity));
    assert_eq!(u("peer_table_offset"), h.peer_table_offset);
    assert_eq!(u("var_pool_offset"), h.var_pool_offset);
    assert_eq!(u("heartbeat_interval_ns"), h.heartbeat_interval);
    assert_eq!(u("num_var_slot_classes"), u64::from(h.num_var_slot_classes));
    assert_eq!(j["host_goodbye"], false);
    // And the values are the ones given to roam (not just self-consistent).
    assert_eq!(
        (
            u("max_guests"),
            u("bipbuf_capacity"),
            u("max_payload_size"),
            u("inline_threshold")
        ),
        (3, 8192, 123_456, 128)
    );
    assert_eq!(u("total_size"), std::fs::metadata(&path).unwrap().len());
    // Peer table: roam's view, entry by entry.
    let peers = doc["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 3);
    for (pid, entry) in segment.peer_table().iter() {
        let p = &peers[pid.index() as usize];
        assert_eq!(p["peer_id"], u64::from(pid.get()));
        assert_eq!(
            p["state"],
            format!("{:?}", entry.state()),
            "peer {}",
            pid.get()
        );
        assert_eq!(p["epoch"], u64::from(entry.epoch()), "peer {}", pid.get());
    }
    assert_eq!(peers[reserved.index() as usize]["state"], "Reserved");
    assert_eq!(peers[attached.index() as usize]["state"], "Attached");
    // Pool: sizes, counts and the two allocations.
    let pool_j = doc["pool"].as_array().unwrap();
    assert_eq!(pool_j.len(), classes.len());
    for (c, pj) in classes.iter().zip(pool_j) {
        assert_eq!(pj["slot_size"], u64::from(c.slot_size));
        assert_eq!(pj["count"], u64::from(c.slot_count));
    }
    assert_eq!(
        (
            pool_j[0]["allocated"].as_u64(),
            pool_j[1]["allocated"].as_u64()
        ),
        (Some(1), Some(1))
    );

    // The text form says the same.
    let text = inspect(&path, false);
    for needle in [
        format!("roam v7 (ROAMHUB), {} bytes", h.total_size),
        "3 guests, 8192 B rings, inline threshold 128 (effective 128), max payload 123456, heartbeat 5000000 ns, host goodbye: false".to_string(),
        "\"state\":\"Reserved\"".to_string(),
        "\"state\":\"Attached\"".to_string(),
        format!("slot pool @{}:", h.var_pool_offset),
    ] {
        assert!(text.contains(&needle), "inspect output lacks {needle:?}:\n{text}");
    }

    // Goodbye and freed slots show up too.
    segment.set_host_goodbye();
    pool.free(s1).unwrap();
    pool.free(s2).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&inspect(&path, true)).unwrap();
    assert_eq!(doc["header"]["host_goodbye"], true);
    assert!(
        doc["pool"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["allocated"] == 0)
    );
    eprintln!("inspect of a roam-created segment:\n{text}");
    drop(segment); // roam's Manual cleanup: the creating Segment unlinks the file
    let _ = std::fs::remove_file(&path);
}
