#![cfg(not(feature = "loom"))]
//! One host (this process) and four guest processes exchange 20,000 messages each way
//! per guest, sizes log-uniform from 0 B to 1 MiB, so the inline, slot-ref and
//! mmap-ref paths all run. The host checks every byte and the order of what each
//! guest sends before echoing it; each guest checks every byte and the order of the
//! echoes. Afterwards every slot is free and every peer entry is Empty.

mod segment_util;

use std::time::{Duration, Instant};

use roam_shm::segment::config::SegmentConfig;
use roam_shm::segment::guest::{Guest, GuestOptions};
use roam_shm::segment::host::{GoneReason, Host, HostOptions};
use roam_shm::segment::shared::SegmentBacking;
use roam_shm::segment::var_pool::SizeClass;
use segment_util::*;

const GUESTS: usize = 4;
const MESSAGES: u64 = 20_000;
const MAX_SIZE: usize = 1 << 20;
const SEED: u64 = 0x0005_E6E0_0001;

fn config() -> SegmentConfig {
    SegmentConfig {
        max_guests: GUESTS as u32,
        bipbuf_capacity: 64 * 1024,
        size_classes: vec![
            SizeClass {
                slot_size: 1024,
                count: 64,
            },
            SizeClass {
                slot_size: 16 * 1024,
                count: 32,
            },
            SizeClass {
                slot_size: 256 * 1024,
                count: 16,
            },
        ],
        inline_threshold: 0,
        max_payload_size: 2 << 20,
        heartbeat_interval: Duration::ZERO,
    }
}

fn messages() -> u64 {
    // Override for quick experiments; the test's contract is the default.
    std::env::var("ROAM_SEGTEST_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(MESSAGES)
}

#[test]
fn child_entry() {
    child_main(|role| match role {
        "stream" => {
            let mut g = Guest::connect(env_var("SOCKET")?, GuestOptions::default())
                .map_err(|e| format!("connect: {e}"))?;
            let st = run_stream(
                &mut g,
                &StreamCfg {
                    seed: env_u64("SEED")?,
                    count: env_u64("COUNT")?,
                    max_size: env_u64("MAX_SIZE")? as usize,
                    window: 16,
                    stop_file: None,
                    timeout: Duration::from_secs(240),
                    progress: None,
                },
            )?;
            g.close();
            println!("{}", st.result_line(""));
            Ok(())
        }
        other => Err(format!("unknown role {other}")),
    });
}

#[test]
fn four_guest_processes_twenty_thousand_messages_each_way() {
    let dir = TempDir::new("multiproc");
    let sock = dir.join("host.sock");
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
    let count = messages();
    let t0 = Instant::now();
    let mut children: Vec<_> = (0..GUESTS)
        .map(|_| {
            spawn_child(
                "stream",
                &[
                    ("SOCKET", sock.display().to_string()),
                    ("SEED", SEED.to_string()),
                    ("COUNT", count.to_string()),
                    ("MAX_SIZE", MAX_SIZE.to_string()),
                ],
            )
        })
        .collect();
    host.run_until(
        "every guest finished and was recovered",
        Duration::from_secs(280),
        |h| h.gone_count() == GUESTS && children.iter_mut().all(exited),
    );
    let elapsed = t0.elapsed();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|c| finish_child(c, Duration::from_secs(5)))
        .collect();
    for (i, out) in outputs.iter().enumerate() {
        let r = out.expect_ok(&format!("guest process {i}"));
        assert_eq!(r["sent"], count, "guest {i}");
        assert_eq!(r["received"], count, "guest {i}");
        for k in ["inline", "slot", "mmap"] {
            assert!(r[k] > 0, "guest {i} received no {k} echoes: {r:?}");
        }
        assert_eq!(r["inline"] + r["slot"] + r["mmap"], count, "guest {i}");
    }
    assert!(host.mismatches().is_empty(), "{:?}", host.mismatches());
    let mut host_kinds = [0u64; 3];
    for n in &host.notes {
        match n {
            Note::Gone {
                peer,
                reason,
                echoed,
                kinds,
                ..
            } => {
                assert_eq!(
                    *reason,
                    GoneReason::Goodbye,
                    "peer {peer} left by {reason:?}"
                );
                assert_eq!(*echoed, count, "peer {peer}: messages received by the host");
                assert!(kinds.iter().all(|&k| k > 0), "peer {peer}: kinds {kinds:?}");
                for (t, k) in host_kinds.iter_mut().zip(kinds) {
                    *t += k;
                }
            }
            Note::Connected(_) => {}
            other => panic!("unexpected: {other:?}"),
        }
    }
    host.assert_clean();
    eprintln!(
        "{GUESTS} guests x {count} messages each way in {elapsed:.1?}; host received inline/slot/mmap = {host_kinds:?}"
    );
}
