#![cfg(not(feature = "loom"))]
//! Crash loop: 200 times, a randomly chosen guest process is killed with SIGKILL at a
//! random moment (starting up, mid-handshake, streaming, holding a received slot,
//! holding an uncommitted reservation) and replaced, while two steady guests stream
//! verified messages throughout. Afterwards the steady guests finished correctly,
//! every slot is free and every peer entry is Empty.
//!
//! Reproduce a run with `ROAM_CRASH_SEED=<seed printed by the test>`.

mod segment_util;

use std::process::Child;
use std::time::{Duration, Instant};

use roam_shm::segment::config::SegmentConfig;
use roam_shm::segment::guest::{Guest, GuestOptions};
use roam_shm::segment::host::{GoneReason, Host, HostOptions};
use roam_shm::segment::link::MessageKind;
use roam_shm::segment::peer::PeerState;
use roam_shm::segment::shared::SegmentBacking;
use roam_shm::segment::var_pool::SizeClass;
use segment_util::*;

const KILLS: usize = 200;
const VICTIMS: usize = 3;
const STEADY: usize = 2;
const MAX_SIZE: usize = 300 * 1024;
const STREAM_SEED: u64 = 0xC2A5_0001;

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
                slot_size: 256 * 1024,
                count: 8,
            },
        ],
        inline_threshold: 0,
        max_payload_size: 1 << 20,
        heartbeat_interval: Duration::ZERO,
    }
}

/// What a victim does until it is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Stream messages and verify echoes.
    Stream,
    /// After a few messages, hold a received slot message (never release it) and keep
    /// sending until the rings are full.
    HoldReceived,
    /// After a few messages, reserve a slot-sized send and never commit it.
    HoldReservation,
}

const MODES: [Mode; 3] = [Mode::Stream, Mode::HoldReceived, Mode::HoldReservation];

/// A victim: like `run_stream`, but never finishes, and holds slots in some modes.
fn victim(mode: Mode, hold_after: u64) -> Result<(), String> {
    let mut g = Guest::connect(env_var("SOCKET")?, GuestOptions::default())
        .map_err(|e| format!("connect: {e}"))?;
    let id = g.peer_id();
    let stream = stream_id(STREAM_SEED, id);
    let mut send_sizes = Sizes::new(size_seed(STREAM_SEED, id), MAX_SIZE);
    let mut recv_sizes = send_sizes.clone();
    let (mut sent, mut received) = (0u64, 0u64);
    let mut holding = false;
    let mut _reservation = None;
    loop {
        let (tx, rx) = g.link();
        while !holding || mode == Mode::HoldReceived {
            if mode == Mode::HoldReservation && sent >= hold_after {
                // An allocated, never committed slot (or mapping) owned by us.
                match tx.reserve_raw(8000) {
                    Ok(r) => {
                        _reservation = Some(r);
                        holding = true;
                    }
                    Err(e) if e.is_backpressure() => {}
                    Err(e) => return Err(format!("reserve: {e}")),
                }
                break;
            }
            if sent - received >= 8 {
                break;
            }
            let len = send_sizes.peek();
            match tx.reserve(len) {
                Ok(mut buf) => {
                    fill_payload(buf.bytes_mut(), stream, sent);
                    buf.commit().map_err(|e| format!("commit: {e}"))?;
                    send_sizes.take();
                    sent += 1;
                }
                Err(e) if e.is_backpressure() => break,
                Err(e) => return Err(format!("send: {e}")),
            }
        }
        while !(holding && mode == Mode::HoldReceived) {
            let Some(raw) = rx.try_recv_raw().map_err(|e| format!("recv: {e}"))? else {
                break;
            };
            // SAFETY: valid until rx.release().
            let got = unsafe { std::slice::from_raw_parts(raw.ptr, raw.len) };
            check_payload(got, stream, received, recv_sizes.take())?;
            received += 1;
            if mode == Mode::HoldReceived && received >= hold_after && raw.kind == MessageKind::Slot
            {
                holding = true; // never released: the host must free it when we die
                break;
            }
            rx.release().map_err(|e| format!("release: {e}"))?;
        }
        g.wait(Some(Duration::from_millis(20)))
            .map_err(|e| format!("wait: {e}"))?;
    }
}

#[test]
fn child_entry() {
    child_main(|role| match role {
        "steady" => {
            let mut g = Guest::connect(env_var("SOCKET")?, GuestOptions::default())
                .map_err(|e| format!("connect: {e}"))?;
            let st = run_stream(
                &mut g,
                &StreamCfg {
                    seed: STREAM_SEED,
                    count: u64::MAX,
                    max_size: MAX_SIZE,
                    window: 8,
                    stop_file: Some(env_var("STOP_FILE")?.into()),
                    timeout: Duration::from_secs(240),
                    progress: None,
                },
            )?;
            g.close();
            println!("{}", st.result_line(""));
            Ok(())
        }
        "victim" => victim(MODES[env_u64("MODE")? as usize], env_u64("HOLD_AFTER")?),
        other => Err(format!("unknown role {other}")),
    });
}

struct Victim {
    child: Child,
    mode: Mode,
    /// Kill this long after spawn, or (if `after_attach`) after its peer entry is
    /// Attached.
    delay: Duration,
    after_attach: bool,
    spawned: Instant,
    attached_at: Option<Instant>,
}

fn seed() -> u64 {
    std::env::var("ROAM_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

#[test]
fn two_hundred_sigkilled_guests_leave_the_segment_clean() {
    let seed = seed();
    eprintln!("crash loop seed = {seed} (reproduce with ROAM_CRASH_SEED={seed})");
    let mut rng = Rng::new(seed);
    let dir = TempDir::new("crash");
    let sock = dir.join("host.sock");
    let stop = dir.join("stop");
    let mut host = EchoHost::new(
        Host::create(HostOptions {
            config: config(),
            backing: SegmentBacking::Anonymous,
        })
        .expect("create host"),
        STREAM_SEED,
        MAX_SIZE,
    );
    host.host.listen(&sock).expect("listen");
    let env = |extra: &[(&'static str, String)]| {
        let mut v = vec![
            ("SOCKET", sock.display().to_string()),
            ("STOP_FILE", stop.display().to_string()),
        ];
        v.extend_from_slice(extra);
        v
    };
    let t0 = Instant::now();
    let steady: Vec<Child> = (0..STEADY)
        .map(|_| spawn_child("steady", &env(&[])))
        .collect();
    let spawn_victim = |rng: &mut Rng| {
        let mode_idx = rng.below(MODES.len() as u64);
        let after_attach = rng.below(4) != 0;
        let delay = Duration::from_micros(rng.below(if after_attach { 60_000 } else { 150_000 }));
        Victim {
            child: spawn_child(
                "victim",
                &env(&[
                    ("MODE", mode_idx.to_string()),
                    ("HOLD_AFTER", (1 + rng.below(6)).to_string()),
                ]),
            ),
            mode: MODES[mode_idx as usize],
            delay,
            after_attach,
            spawned: Instant::now(),
            attached_at: None,
        }
    };
    let mut victims: Vec<Victim> = (0..VICTIMS).map(|_| spawn_victim(&mut rng)).collect();
    let mut kills = 0;
    let mut killed_modes = [0usize; 3];
    let mut killed_after_attach = 0;
    let mut victim_errors = 0;
    while kills < KILLS {
        assert!(
            t0.elapsed() < Duration::from_secs(200),
            "crash loop too slow: {kills} kills in {:?} (seed {seed})",
            t0.elapsed()
        );
        host.step(Duration::from_millis(1));
        for v in victims.iter_mut() {
            if v.attached_at.is_none() {
                let pid = v.child.id();
                let attached = host
                    .host
                    .segment()
                    .peer_table()
                    .iter()
                    .any(|(_, e)| e.guest_pid() == pid && e.state() == Ok(PeerState::Attached));
                if attached {
                    v.attached_at = Some(Instant::now());
                }
            }
            let due = if v.after_attach {
                v.attached_at.is_some_and(|t| t.elapsed() >= v.delay)
                    // A victim that cannot attach (e.g. rejected) is killed anyway.
                    || v.spawned.elapsed() > Duration::from_secs(5)
            } else {
                v.spawned.elapsed() >= v.delay
            };
            // Pick among the due victims at random: only kill when the dice say so.
            if due && rng.below(2) == 0 {
                let mut old = std::mem::replace(v, spawn_victim(&mut rng));
                let status = kill9(&mut old.child);
                if status.code() == Some(1) {
                    victim_errors += 1; // it had already failed (e.g. rejected): shown below
                    let out = finish_child(old.child, Duration::from_secs(1));
                    eprintln!(
                        "victim exited with an error before the kill: {}",
                        out.stderr
                    );
                }
                kills += 1;
                killed_modes[old.mode as usize] += 1;
                if old.attached_at.is_some() {
                    killed_after_attach += 1;
                }
            }
        }
    }
    for v in &mut victims {
        kill9(&mut v.child);
    }
    let loop_time = t0.elapsed();
    std::fs::write(&stop, b"stop").unwrap();
    let mut steady = steady;
    host.run_until(
        "the steady guests finished and everyone was recovered",
        Duration::from_secs(60),
        |h| steady.iter_mut().all(exited) && h.host.peer_ids().is_empty(),
    );
    for (i, c) in steady.into_iter().enumerate() {
        let r = finish_child(c, Duration::from_secs(5)).expect_ok(&format!("steady guest {i}"));
        assert!(
            r["received"] > 0 && r["received"] == r["sent"],
            "steady guest {i}: {r:?}"
        );
    }
    assert!(
        host.mismatches().is_empty(),
        "seed {seed}: {:?}",
        host.mismatches()
    );
    let (mut connected, mut gone, mut holding) = (0, 0, 0);
    for n in &host.notes {
        match n {
            Note::Connected(_) => connected += 1,
            Note::Gone {
                reason, recovery, ..
            } => {
                gone += 1;
                assert!(
                    matches!(
                        reason,
                        GoneReason::DoorbellClosed
                            | GoneReason::ProcessGone(_)
                            | GoneReason::Goodbye
                            | GoneReason::NeverAttached
                    ),
                    "seed {seed}: unexpected reason {reason:?}"
                );
                if recovery.freed_sent_slots + recovery.reclaimed_slots > 0 {
                    holding += 1;
                }
            }
            other => panic!("seed {seed}: unexpected: {other:?}"),
        }
    }
    assert_eq!(
        connected, gone,
        "seed {seed}: every connected guest was recovered"
    );
    host.assert_clean();
    eprintln!(
        "{kills} kills in {loop_time:.1?} (modes stream/hold-received/hold-reservation = {killed_modes:?}, \
         {killed_after_attach} after attaching, {victim_errors} had failed before); \
         {connected} guests connected, {holding} recoveries freed slots"
    );
    assert!(
        killed_after_attach >= KILLS / 2,
        "seed {seed}: only {killed_after_attach} victims were attached when killed"
    );
    assert!(holding > 0, "seed {seed}: no victim died holding slots");
    assert_eq!(victim_errors, 0, "seed {seed}: victims failed on their own");
}
