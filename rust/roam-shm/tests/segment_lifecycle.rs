#![cfg(not(feature = "loom"))]
//! The host's end of life and growth, as guests see them.
//!
//! - Host killed with SIGKILL mid-stream: every guest (streaming, blocked in a
//!   receive without timeout, blocked in a send on a full ring) gets an error
//!   (peer gone) within a bound; none hangs.
//! - Host goodbye (`Host::shutdown`, host process still alive): every guest gets
//!   `HostGoodbye`.
//! - Host killed while a guest that never reads (its receive ring full) blocks in
//!   `send` on a full ring: the send fails with peer gone within the bound.
//! - `Host::grow` while guest processes stream: they map the new size at the same
//!   base address, see what the host wrote into the new tail, and keep working.

mod segment_util;

use roam_shm::sync::{AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use roam_shm::segment::SessionError;
use roam_shm::segment::config::SegmentConfig;
use roam_shm::segment::guest::{Guest, GuestOptions};
use roam_shm::segment::host::{GoneReason, Host, HostOptions};
use roam_shm::segment::link::{RecvError, SendError};
use roam_shm::segment::mapping::PathCleanup;
use roam_shm::segment::shared::SegmentBacking;
use roam_shm::segment::var_pool::SizeClass;
use segment_util::*;

const SEED: u64 = 0x11FE_C7C1_E001;
const MAX_SIZE: usize = 128 * 1024;
/// How long a guest may take to notice the host's death or goodbye.
const NOTICE_BOUND: Duration = Duration::from_secs(5);

fn config() -> SegmentConfig {
    SegmentConfig {
        max_guests: 8,
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
            SizeClass {
                slot_size: 64 * 1024,
                count: 8,
            },
        ],
        inline_threshold: 0,
        max_payload_size: 1 << 20,
        heartbeat_interval: Duration::ZERO,
    }
}

/// The host process: echo until EXIT_FILE exists; if SHUTDOWN_FILE appears first,
/// say goodbye (and keep the process, and so the doorbells, alive).
fn host_process() -> Result<(), String> {
    let mut host = EchoHost::new(
        Host::create(HostOptions {
            config: config(),
            backing: SegmentBacking::Anonymous,
        })
        .map_err(|e| format!("create: {e}"))?,
        SEED,
        MAX_SIZE,
    );
    host.verify = false; // some guests send arbitrary bytes
    host.host
        .listen(env_var("SOCKET")?)
        .map_err(|e| format!("listen: {e}"))?;
    let shutdown = std::path::PathBuf::from(env_var("SHUTDOWN_FILE")?);
    let exit = std::path::PathBuf::from(env_var("EXIT_FILE")?);
    let t0 = Instant::now();
    let mut said_goodbye = false;
    while !exit.exists() && t0.elapsed() < Duration::from_secs(120) {
        host.step(Duration::from_millis(5));
        if !said_goodbye && shutdown.exists() {
            host.host.shutdown();
            said_goodbye = true;
        }
    }
    Ok(())
}

#[test]
fn child_entry() {
    child_main(|role| match role {
        "host" => host_process(),
        "grow-guest" => grow_guest(),
        "hoard-host" => hoard_host(),
        other => Err(format!("unknown role {other}")),
    });
}

/// What each guest thread does while the host dies or says goodbye.
#[derive(Debug, Clone, Copy)]
enum Behaviour {
    /// Stream verified messages.
    Stream,
    /// Block in `recv(None)`: no timeout.
    BlockedRecv,
    /// Never read, so both rings fill; then block in `send` with a long timeout.
    BlockedSend,
}

/// How a guest thread ended.
#[derive(Debug)]
struct Ending {
    behaviour: Behaviour,
    error: String,
    at: Instant,
}

fn run_guest_thread(
    sock: std::path::PathBuf,
    behaviour: Behaviour,
    progress: Arc<AtomicU64>,
    done: mpsc::Sender<Ending>,
) {
    std::thread::spawn(move || {
        let error = (|| -> String {
            let mut g = match Guest::connect(&sock, GuestOptions::default()) {
                Ok(g) => g,
                Err(e) => return format!("connect: {e}"),
            };
            match behaviour {
                Behaviour::Stream => {
                    let cfg = StreamCfg {
                        seed: SEED,
                        count: u64::MAX,
                        max_size: MAX_SIZE,
                        window: 8,
                        stop_file: None,
                        timeout: Duration::from_secs(100),
                        progress: Some(progress),
                    };
                    match run_stream(&mut g, &cfg) {
                        Ok(_) => "finished without error".into(),
                        Err(e) => e,
                    }
                }
                Behaviour::BlockedRecv => {
                    progress.store(1, Ordering::Relaxed);
                    match g.recv(None) {
                        Ok(_) => "received a message".into(),
                        Err(e) => format!("recv: {e:?}"),
                    }
                }
                Behaviour::BlockedSend => {
                    let payload = vec![7u8; 3000];
                    let mut sent = 0u64;
                    let mut last_sent = Instant::now();
                    loop {
                        match g.try_send(&payload) {
                            Ok(()) => {
                                sent += 1;
                                last_sent = Instant::now();
                            }
                            // Full for good once the host, its own direction full,
                            // stopped consuming ours.
                            Err(e) if e.is_backpressure() => {
                                if last_sent.elapsed() > Duration::from_millis(200) {
                                    break;
                                }
                                let _ = g.wait(Some(Duration::from_millis(10)));
                            }
                            Err(e) => return format!("try_send #{sent}: {e:?}"),
                        }
                        if sent > 100_000 {
                            return "the rings never filled".into();
                        }
                    }
                    progress.store(sent, Ordering::Relaxed);
                    match g.send(&payload, Duration::from_secs(100)) {
                        Ok(()) => "a blocked send went through".into(),
                        Err(e) => format!("send: {e:?}"),
                    }
                }
            }
        })();
        let _ = done.send(Ending {
            behaviour,
            error,
            at: Instant::now(),
        });
    });
}

const BEHAVIOURS: [Behaviour; 4] = [
    Behaviour::Stream,
    Behaviour::Stream,
    Behaviour::BlockedRecv,
    Behaviour::BlockedSend,
];

/// Start the host process and the guest threads; return once every guest is
/// under way (streams have verified some echoes, the blocked ones are blocked).
fn start(
    dir: &TempDir,
) -> (
    std::process::Child,
    mpsc::Receiver<Ending>,
    Vec<Arc<AtomicU64>>,
) {
    let sock = dir.join("host.sock");
    let host = spawn_child(
        "host",
        &[
            ("SOCKET", sock.display().to_string()),
            ("SHUTDOWN_FILE", dir.join("shutdown").display().to_string()),
            ("EXIT_FILE", dir.join("exit").display().to_string()),
        ],
    );
    wait_listening(&sock);
    let (tx, rx) = mpsc::channel();
    let progress: Vec<_> = BEHAVIOURS
        .iter()
        .map(|_| Arc::new(AtomicU64::new(0)))
        .collect();
    for (b, p) in BEHAVIOURS.iter().zip(&progress) {
        run_guest_thread(sock.clone(), *b, p.clone(), tx.clone());
    }
    let t0 = Instant::now();
    // Streams: 20 echoes verified; blocked ones: about to block.
    let under_way =
        |i: usize, p: &Arc<AtomicU64>| p.load(Ordering::Relaxed) >= if i < 2 { 20 } else { 1 };
    while !progress.iter().enumerate().all(|(i, p)| under_way(i, p)) {
        if let Ok(e) = rx.try_recv() {
            panic!("a guest ended early: {e:?}");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "guests never got going"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    // Give the blocked ones time to block.
    std::thread::sleep(Duration::from_millis(50));
    (host, rx, progress)
}

fn collect(rx: &mpsc::Receiver<Ending>, since: Instant) -> Vec<Ending> {
    let mut out = Vec::new();
    while out.len() < BEHAVIOURS.len() {
        match rx
            .recv_timeout(NOTICE_BOUND.saturating_sub(since.elapsed()) + Duration::from_millis(1))
        {
            Ok(e) => out.push(e),
            Err(_) => panic!(
                "only {} of {} guests noticed within {NOTICE_BOUND:?}: {out:?}",
                out.len(),
                BEHAVIOURS.len()
            ),
        }
    }
    out
}

#[test]
fn host_killed_mid_stream_every_guest_errors_within_a_bound() {
    let dir = TempDir::new("hostkill");
    let (mut host, rx, progress) = start(&dir);
    let before: Vec<u64> = progress.iter().map(|p| p.load(Ordering::Relaxed)).collect();
    let killed_at = Instant::now();
    kill9(&mut host);
    let endings = collect(&rx, killed_at);
    for e in &endings {
        let latency = e.at.saturating_duration_since(killed_at);
        assert!(
            e.error.contains("PeerGone") || e.error.contains("peer gone"),
            "{:?} ended with {:?}, not peer gone",
            e.behaviour,
            e.error
        );
        eprintln!("{:?}: {} after {latency:.1?}", e.behaviour, e.error);
    }
    eprintln!("progress before the kill: {before:?}");
}

#[test]
fn host_goodbye_every_guest_gets_host_goodbye() {
    let dir = TempDir::new("goodbye");
    let (host, rx, _progress) = start(&dir);
    std::fs::write(dir.join("shutdown"), b"bye").unwrap();
    let said_at = Instant::now();
    let endings = collect(&rx, said_at);
    std::fs::write(dir.join("exit"), b"exit").unwrap();
    let out = finish_child(host, Duration::from_secs(20));
    assert!(out.status.success(), "host process: {out:?}");
    for e in &endings {
        let ok = match e.behaviour {
            Behaviour::Stream => e.error.contains("host said goodbye"),
            Behaviour::BlockedRecv | Behaviour::BlockedSend => e.error.contains("HostGoodbye"),
        };
        assert!(
            ok,
            "{:?} ended with {:?}, not HostGoodbye",
            e.behaviour, e.error
        );
        eprintln!(
            "{:?}: {} after {:.1?}",
            e.behaviour,
            e.error,
            e.at.saturating_duration_since(said_at)
        );
    }
    // The error types, not just their text (compile-time check of the variants).
    let _: fn(SessionError) -> bool = |e| matches!(e, SessionError::HostGoodbye);
    let _: fn(&RecvError) -> bool = |e| matches!(e, RecvError::Session(SessionError::HostGoodbye));
    let _: fn(&SendError) -> bool = |e| matches!(e, SendError::Session(SessionError::HostGoodbye));
}

// ---------------------------------------------------------------------------------
// A guest that never reads, blocked in a send

/// Small enough to travel inline: the ring, not the pool, is what fills up.
const HOARD_PAYLOAD: [u8; 100] = [0x5A; 100];

/// The host process: fill the first guest's receive ring, write FULL_FILE, then
/// neither read nor write until killed.
fn hoard_host() -> Result<(), String> {
    let mut host = listening_host(config(), std::path::Path::new(&env_var("SOCKET")?));
    let t0 = Instant::now();
    let peer = poll_until_connected(&mut host);
    let mut sent = 0u32;
    loop {
        match host.try_send(peer, &HOARD_PAYLOAD) {
            Ok(()) => sent += 1,
            Err(e) if e.is_backpressure() => break,
            Err(e) => return Err(format!("send #{sent}: {e}")),
        }
    }
    std::fs::write(env_var("FULL_FILE")?, sent.to_string()).map_err(|e| e.to_string())?;
    // Keep the process (and so the doorbell) alive, touching nothing.
    while t0.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// Data waiting in the receive ring used to make the blocked send's wait return at
/// once, every time: the send spun without ever sleeping on the doorbell, so it never
/// saw the hang-up and only failed at its own timeout.
#[test]
fn host_killed_while_a_guest_that_never_reads_blocks_in_send() {
    let dir = TempDir::new("hoard");
    let sock = dir.join("host.sock");
    let full = dir.join("full");
    let mut host = spawn_child(
        "hoard-host",
        &[
            ("SOCKET", sock.display().to_string()),
            ("FULL_FILE", full.display().to_string()),
        ],
    );
    wait_listening(&sock);
    let t0 = Instant::now();
    // The guest lives on its own thread (a Guest is not Send): it reports when it
    // is about to block, then how the blocked send ended.
    let (step_tx, step_rx) = mpsc::channel::<Result<String, String>>();
    std::thread::spawn(move || {
        let r = (|| -> Result<String, String> {
            let mut g = Guest::connect(&sock, GuestOptions::default())
                .map_err(|e| format!("connect: {e}"))?;
            while !full.exists() {
                if t0.elapsed() > Duration::from_secs(30) {
                    return Err("host never filled our ring".into());
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            if g.link().1.is_empty() {
                return Err("the host's messages are not waiting".into());
            }
            // The host reads nothing: our send ring fills.
            let mut sent = 0u32;
            loop {
                match g.try_send(&HOARD_PAYLOAD) {
                    Ok(()) => sent += 1,
                    Err(SendError::Full) => break,
                    Err(e) => return Err(format!("try_send #{sent}: {e}")),
                }
                if sent > 100_000 {
                    return Err("the ring never filled".into());
                }
            }
            let _ = step_tx.send(Ok(format!("blocking after {sent} sends")));
            match g.send(&HOARD_PAYLOAD, Duration::from_secs(100)) {
                Ok(()) => Err("a blocked send went through".into()),
                Err(e) => Ok(format!("{e:?}")),
            }
        })();
        let _ = step_tx.send(r);
    });
    let blocking = step_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the guest never got to its blocking send")
        .expect("guest set-up");
    // Let it block (if it returned already, the assertion below says how).
    std::thread::sleep(Duration::from_millis(100));
    let killed_at = Instant::now();
    kill9(&mut host);
    let r = step_rx
        .recv_timeout(NOTICE_BOUND)
        .expect("the blocked send did not notice the host's death");
    assert_eq!(r, Ok("PeerGone".to_string()), "{blocking}");
    eprintln!("{blocking}: PeerGone after {:.1?}", killed_at.elapsed());
}

// ---------------------------------------------------------------------------------
// Growth

const GROW_MARK: &[u8; 8] = b"GROWN!!\0";

fn grow_guest() -> Result<(), String> {
    let mut g = Guest::connect(env_var("SOCKET")?, GuestOptions::default())
        .map_err(|e| format!("connect: {e}"))?;
    let base = g.segment().mapping().base() as usize;
    let len0 = g.segment().mapping().len();
    let st = run_stream(
        &mut g,
        &StreamCfg {
            seed: SEED,
            count: u64::MAX,
            max_size: MAX_SIZE,
            window: 8,
            stop_file: Some(env_var("STOP_FILE")?.into()),
            timeout: Duration::from_secs(100),
            progress: None,
        },
    )?;
    let seg = g.segment();
    let cur = seg.header().current_size();
    let len = seg.mapping().len();
    if seg.mapping().base() as usize != base {
        return Err("the mapping moved".into());
    }
    if len as u64 != cur {
        return Err(format!("mapped {len} bytes but current_size is {cur}"));
    }
    // The host wrote a mark at the end of the grown segment: we see it.
    let region = seg.mapping().region();
    let p = region.ptr_at(len - 8, 8).map_err(|e| e.to_string())?;
    let mut mark = [0u8; 8];
    // SAFETY: in bounds (checked); the host wrote it before growing further/stopping.
    unsafe { std::ptr::copy_nonoverlapping(p, mark.as_mut_ptr(), 8) };
    if &mark != GROW_MARK {
        return Err(format!("no mark at the end of the grown segment: {mark:?}"));
    }
    g.close();
    println!("{}", st.result_line(&format!(" len0={len0} len={len}")));
    Ok(())
}

#[test]
fn host_grows_the_segment_while_guests_stream() {
    const GUESTS: usize = 3;
    let dir = TempDir::new("grow");
    let sock = dir.join("host.sock");
    let stop = dir.join("stop");
    let path = dev_shm_path("grow");
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
    host.host.listen(&sock).expect("listen");
    let size0 = host.host.segment().header().current_size();
    let mut children: Vec<_> = (0..GUESTS)
        .map(|_| {
            spawn_child(
                "grow-guest",
                &[
                    ("SOCKET", sock.display().to_string()),
                    ("STOP_FILE", stop.display().to_string()),
                ],
            )
        })
        .collect();
    let echoed = |h: &EchoHost| h.peers.values().map(|p| p.echoed).min().unwrap_or(0);
    host.run_until("the guests stream", Duration::from_secs(30), |h| {
        h.peers.len() == GUESTS && echoed(h) >= 50
    });
    let mut size = size0;
    for grow_by in [1u64 << 20, 16 << 20] {
        size += grow_by;
        host.host.grow(size).expect("grow");
        let seg = host.host.segment();
        let region = seg.mapping().region();
        let p = region.ptr_at(size as usize - 8, 8).unwrap();
        // SAFETY: in bounds of the grown mapping; nobody else writes the tail.
        unsafe { std::ptr::copy_nonoverlapping(GROW_MARK.as_ptr(), p, 8) };
        let before = echoed(&host);
        host.run_until(
            "more messages after growing",
            Duration::from_secs(30),
            |h| echoed(h) >= before + 50,
        );
    }
    std::fs::write(&stop, b"stop").unwrap();
    host.run_until("the guests finished", Duration::from_secs(60), |h| {
        h.gone_count() == GUESTS && children.iter_mut().all(exited)
    });
    for (i, c) in children.into_iter().enumerate() {
        let r = finish_child(c, Duration::from_secs(5)).expect_ok(&format!("guest {i}"));
        assert_eq!(r["len0"], size0, "guest {i}");
        assert_eq!(r["len"], size, "guest {i}");
        assert!(
            r["received"] > 0 && r["received"] == r["sent"],
            "guest {i}: {r:?}"
        );
    }
    for n in &host.notes {
        if let Note::Gone { reason, .. } = n {
            assert_eq!(*reason, GoneReason::Goodbye, "{n:?}");
        }
    }
    assert!(host.mismatches().is_empty(), "{:?}", host.mismatches());
    host.assert_clean();
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        size,
        "the file has the grown size"
    );
}
