#![cfg(not(feature = "loom"))]
//! A sender that runs ahead through mapped regions fills the mmap control socket
//! (Linux queues only `net.unix.max_dgram_qlen`, often 10, datagrams): that must be
//! backpressure (`SendError::Full`), never a hard error, and every message sent
//! before and after must arrive intact once the receiver catches up.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use roam_shm::segment::config::SegmentConfig;
use roam_shm::segment::guest::{Guest, GuestOptions};
use roam_shm::segment::host::{Host, HostEvent, HostOptions};
use roam_shm::segment::link::{MessageKind, SendError};
use roam_shm::segment::shared::SegmentBacking;
use roam_shm::segment::var_pool::SizeClass;

const PAYLOAD: usize = 300 * 1024;

fn payload(i: usize) -> Vec<u8> {
    (0..PAYLOAD).map(|k| (i * 131 + k * 7) as u8).collect()
}

#[test]
fn full_mmap_control_socket_is_backpressure() {
    let sock = std::env::temp_dir().join(format!("roam-bp-{}.sock", std::process::id()));
    let config = SegmentConfig {
        // Two tiny slots: every 300 KiB payload goes through a mapped region.
        size_classes: vec![SizeClass {
            slot_size: 64,
            count: 2,
        }],
        ..SegmentConfig::default()
    };
    let mut host = Host::create(HostOptions {
        config,
        backing: SegmentBacking::Anonymous,
    })
    .unwrap();
    host.listen(&sock).unwrap();
    let (sent_tx, sent_rx) = mpsc::channel::<usize>();
    let (drained_tx, drained_rx) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let sock = sock.clone();
        s.spawn(move || {
            let mut g = Guest::connect(&sock, GuestOptions::default()).unwrap();
            // Run ahead until backpressure: the host reads nothing meanwhile.
            let mut n = 0;
            loop {
                match g.try_send(&payload(n)) {
                    Ok(()) => n += 1,
                    Err(SendError::Full) => break,
                    Err(e) => panic!("send #{n} failed with a hard error: {e}"),
                }
                assert!(n < 10_000, "never saw backpressure");
            }
            sent_tx.send(n).unwrap();
            drained_rx.recv().unwrap();
            // After the host caught up, sending works again.
            g.send(&payload(n), Duration::from_secs(10)).unwrap();
            sent_tx.send(n + 1).unwrap();
            drained_rx.recv().unwrap();
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let peer = loop {
            let ev = host.poll(Some(Duration::from_millis(50))).unwrap();
            if let Some(HostEvent::Connected(p)) =
                ev.iter().find(|e| matches!(e, HostEvent::Connected(_)))
            {
                break *p;
            }
            assert!(Instant::now() < deadline, "guest never connected");
        };
        let mut next = 0;
        for round in 0..2 {
            let upto = sent_rx.recv().unwrap();
            if round == 0 {
                assert!(upto >= 3, "backpressure after only {upto} messages");
            }
            while next < upto {
                let _ = host.poll(Some(Duration::from_millis(20))).unwrap();
                while let Some(m) = host.try_recv(peer).unwrap() {
                    assert_eq!(m.kind(), MessageKind::Mmap);
                    assert!(m[..] == payload(next)[..], "message {next} corrupt");
                    next += 1;
                }
                assert!(Instant::now() < deadline, "stalled at {next} of {upto}");
            }
            drained_tx.send(()).unwrap();
        }
    });
}
