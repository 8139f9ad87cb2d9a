#![cfg(not(feature = "loom"))]
//! A guest that attaches and says goodbye before the host next looks at its entry is
//! reported as `Goodbye`, not as a guest that never attached.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use roam_shm::segment::config::SegmentConfig;
use roam_shm::segment::guest::{Guest, GuestOptions};
use roam_shm::segment::host::{GoneReason, Host, HostEvent, HostOptions};
use roam_shm::segment::shared::SegmentBacking;

#[test]
fn quick_goodbye_is_reported_as_goodbye() {
    let sock = std::env::temp_dir().join(format!("roam-bye-{}.sock", std::process::id()));
    let opts = HostOptions {
        config: SegmentConfig::default(),
        backing: SegmentBacking::Anonymous,
    };
    let mut host = Host::create(opts).unwrap();
    host.listen(&sock).unwrap();
    let (said_bye, bye_rx) = mpsc::channel::<()>();
    let (seen, seen_rx) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let sock = &sock;
        s.spawn(move || {
            let mut g = Guest::connect(sock, GuestOptions::default()).unwrap();
            g.close(); // goodbye, but the doorbell stays open until `g` is dropped
            said_bye.send(()).unwrap();
            seen_rx.recv().unwrap();
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        // Accept (the handshake runs inside poll), then wait for the goodbye.
        let mut connected = false;
        while !connected {
            connected = host
                .poll(Some(Duration::from_millis(20)))
                .unwrap()
                .iter()
                .any(|e| matches!(e, HostEvent::Connected(_)));
            assert!(Instant::now() < deadline, "never connected");
        }
        bye_rx.recv().unwrap();
        let reason = loop {
            let gone = host
                .poll(Some(Duration::from_millis(20)))
                .unwrap()
                .into_iter()
                .find_map(|e| match e {
                    HostEvent::PeerGone { reason, .. } => Some(reason),
                    _ => None,
                });
            if let Some(r) = gone {
                break r;
            }
            assert!(Instant::now() < deadline, "goodbye never noticed");
        };
        seen.send(()).unwrap();
        assert_eq!(reason, GoneReason::Goodbye);
    });
}
