#![cfg(not(feature = "loom"))]
//! A sender that runs ahead through mapped regions fills the mmap control socket
//! (Linux queues only `net.unix.max_dgram_qlen`, often 10, datagrams): that must be
//! backpressure (`SendError::Full`), never a hard error, and every message sent
//! before and after must arrive intact once the receiver catches up.
//!
//! A host whose send found a guest's ring full is woken once when the guest frees
//! room; an idle `Host::poll` afterwards sleeps for its timeout instead of
//! returning at once forever.

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

/// Poll until the guest connects; its peer id.
fn accept(host: &mut Host, deadline: Instant) -> u8 {
    loop {
        let ev = host.poll(Some(Duration::from_millis(50))).unwrap();
        if let Some(HostEvent::Connected(p)) =
            ev.iter().find(|e| matches!(e, HostEvent::Connected(_)))
        {
            return *p;
        }
        assert!(Instant::now() < deadline, "guest never connected");
    }
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
        let peer = accept(&mut host, deadline);
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

#[test]
fn host_poll_reports_freed_room_once_then_sleeps() {
    let sock = std::env::temp_dir().join(format!("roam-bp-poll-{}.sock", std::process::id()));
    let mut host = Host::create(HostOptions {
        config: SegmentConfig::default(),
        backing: SegmentBacking::Anonymous,
    })
    .unwrap();
    host.listen(&sock).unwrap();
    let (full_tx, full_rx) = mpsc::channel::<()>();
    let (freed_tx, freed_rx) = mpsc::channel::<usize>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let sock = sock.clone();
        s.spawn(move || {
            let mut g = Guest::connect(&sock, GuestOptions::default()).unwrap();
            full_rx.recv().unwrap();
            // Read and release everything: room for the host again.
            let mut read = 0;
            while let Some(m) = g.try_recv().unwrap() {
                assert_eq!(m.len(), 100);
                read += 1;
            }
            freed_tx.send(read).unwrap();
            // Stay connected (and quiet) while the host polls; the bound only keeps
            // a failed host side from hanging the test.
            let _ = done_rx.recv_timeout(Duration::from_secs(10));
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let peer = accept(&mut host, deadline);
        let mut sent = 0;
        loop {
            match host.try_send(peer, &[1u8; 100]) {
                Ok(()) => sent += 1,
                Err(SendError::Full) => break,
                Err(e) => panic!("send #{sent}: {e}"),
            }
            assert!(sent < 100_000, "the ring never filled");
        }
        full_tx.send(()).unwrap();
        assert_eq!(
            freed_rx.recv().unwrap(),
            sent,
            "the guest read what was sent"
        );
        // The freed room wakes the host (the guest's ring, or the mark): at once.
        let events = host.poll(Some(Duration::from_secs(10))).unwrap();
        assert!(events.is_empty(), "{events:?}");
        // The host did not retry its send and nothing else happens: the next poll
        // sleeps out its timeout. (Only an early return can fail this, never a slow
        // machine.)
        let timeout = Duration::from_millis(300);
        let t = Instant::now();
        let events = host.poll(Some(timeout)).unwrap();
        let slept = t.elapsed();
        assert!(events.is_empty(), "{events:?}");
        assert!(
            slept >= timeout - Duration::from_millis(20),
            "an idle poll returned after {slept:?} of its {timeout:?}"
        );
        // And the room is really there.
        host.try_send(peer, &[2u8; 100]).unwrap();
        done_tx.send(()).unwrap();
    });
}
