//! Shared helpers of the `segment_*` integration tests: child processes (this test
//! binary re-run in a role), deterministic payload streams that the receiver checks
//! byte for byte, a streaming guest loop and an echoing, verifying host driver.
//!
//! Payloads: message `seq` of stream `s` with length `len` is a 16-byte header
//! (`seq` u64, `s` u32, `len` u32, little-endian; cut to `len` if shorter) followed by
//! bytes of a fixed 2 MiB pseudo-random pattern starting at an offset derived from
//! `(s, seq)`. Lengths come from a deterministic log-uniform size stream, so the
//! receiver knows both the length and every byte of the next expected message: a
//! lost, duplicated, reordered or corrupted message fails the comparison (a full
//! comparison, done with `memcmp`, which is stronger than a checksum and fast even in
//! debug builds).
#![allow(dead_code)] // Each test binary uses a different subset.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use roam_shm::doorbell::WaitOutcome;
use roam_shm::segment::config::SegmentConfig;
use roam_shm::segment::guest::Guest;
use roam_shm::segment::host::{GoneReason, Host, HostEvent, HostOptions, Recovery};
use roam_shm::segment::link::{MessageKind, RecvError, SendError};
use roam_shm::segment::shared::SegmentBacking;

// ---------------------------------------------------------------------------------
// Child processes

/// Environment variable selecting the child's role.
pub const ROLE_ENV: &str = "ROAM_SEGTEST_ROLE";

/// Body of each test binary's `child_entry` test: a no-op in a normal run; in a child
/// run the role function runs and the process exits (0 on success, 1 on error).
pub fn child_main(run: fn(&str) -> Result<(), String>) {
    let Ok(role) = std::env::var(ROLE_ENV) else {
        return;
    };
    // A child never needs SIGPIPE: a dead host shows up as an error instead.
    // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let code = match run(&role) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("child {role} (pid {}): error: {e}", std::process::id());
            1
        }
    };
    std::process::exit(code);
}

/// Re-run this test binary as a child in `role` with extra environment variables.
/// stdout and stderr are piped (read them with [`finish_child`]); children print a
/// `RESULT k=v ...` line on success.
pub fn spawn_child(role: &str, env: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
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

/// A child's exit status and output.
#[derive(Debug)]
pub struct ChildOutput {
    /// How it ended.
    pub status: ExitStatus,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

impl ChildOutput {
    /// The `RESULT` line's `key=value` pairs (values parsed as u64).
    pub fn result(&self) -> Option<HashMap<String, u64>> {
        // The harness prints "test child_entry ... " on the same line first.
        let line = self.stdout.lines().find_map(|l| l.split_once("RESULT "))?.1;
        Some(
            line.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
                .collect(),
        )
    }

    /// Panic (with the child's output) unless it exited 0 with a RESULT line.
    pub fn expect_ok(&self, what: &str) -> HashMap<String, u64> {
        assert!(
            self.status.success(),
            "{what} failed: {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self.result().unwrap_or_else(|| {
            panic!(
                "{what}: no RESULT line\n--- stdout\n{}\n--- stderr\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Whether the child has exited (reaped), without blocking.
pub fn exited(child: &mut Child) -> bool {
    matches!(child.try_wait(), Ok(Some(_)))
}

/// Wait for the child at most `bound` (kill it with SIGKILL after that) and collect
/// its output. The children write little, so the pipes never fill.
pub fn finish_child(mut child: Child, bound: Duration) -> ChildOutput {
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if t0.elapsed() > bound {
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut stdout);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    ChildOutput {
        status,
        stdout,
        stderr,
    }
}

/// SIGKILL a child and reap it.
pub fn kill9(child: &mut Child) -> ExitStatus {
    let _ = child.kill(); // SIGKILL
    child.wait().expect("wait")
}

/// An environment variable of the child (panics with a clear message if missing).
/// Wait (up to 20 s) until a child host's socket exists.
pub fn wait_listening(sock: &Path) {
    let t0 = Instant::now();
    while !sock.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "host never listened on {}",
            sock.display()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A host on an anonymous segment, listening at `sock`.
pub fn listening_host(config: SegmentConfig, sock: &Path) -> Host {
    let mut host = Host::create(HostOptions {
        config,
        backing: SegmentBacking::Anonymous,
    })
    .expect("create host");
    host.listen(sock).expect("listen");
    host
}

/// Poll `host` until a guest connects (up to 30 s); its peer id. Other events are
/// dropped.
pub fn poll_until_connected(host: &mut Host) -> u8 {
    let t0 = Instant::now();
    loop {
        for ev in host.poll(Some(Duration::from_millis(20))).expect("poll") {
            if let HostEvent::Connected(p) = ev {
                return p;
            }
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "no guest connected");
    }
}

pub fn env_var(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("environment variable {name} not set"))
}

/// An environment variable parsed as u64.
pub fn env_u64(name: &str) -> Result<u64, String> {
    env_var(name)?.parse().map_err(|e| format!("{name}: {e}"))
}

// ---------------------------------------------------------------------------------
// Scratch directory

/// A fresh directory (for control sockets and stop files), removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Create `/tmp/roam-segtest-<tag>-<pid>-<nanos>`.
    pub fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let p =
            std::env::temp_dir().join(format!("roam-segtest-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    /// A path inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A unique path under `/dev/shm` (for file-backed segments).
pub fn dev_shm_path(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    dir.join(format!("roam-segtest-{tag}-{}-{nanos}", std::process::id()))
}

// ---------------------------------------------------------------------------------
// Deterministic randomness, sizes and payloads

/// splitmix64 step.
pub fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A small deterministic PRNG.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        splitmix(self.0)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Payload lengths drawn log-uniformly from `0..=max` (`floor(e^(u·ln(max+2))) − 1`),
/// deterministic per seed, so sender and receiver generate the same sequence.
#[derive(Debug, Clone)]
pub struct Sizes {
    rng: Rng,
    max: usize,
    next: usize,
}

impl Sizes {
    /// The size stream of `seed`.
    pub fn new(seed: u64, max: usize) -> Sizes {
        let mut s = Sizes {
            rng: Rng::new(seed ^ 0x005E_ED0F_512E),
            max,
            next: 0,
        };
        s.next = s.draw();
        s
    }

    fn draw(&mut self) -> usize {
        let u = self.rng.unit();
        let v = (u * ((self.max + 2) as f64).ln()).exp().floor() as usize;
        v.saturating_sub(1).min(self.max)
    }

    /// The next size without consuming it.
    pub fn peek(&self) -> usize {
        self.next
    }

    /// Consume and return the next size.
    pub fn take(&mut self) -> usize {
        let v = self.next;
        self.next = self.draw();
        v
    }
}

const PATTERN_WINDOW: usize = 1 << 20;
/// Largest payload the pattern supports.
pub const MAX_PATTERN_PAYLOAD: usize = 1 << 20;
const HEADER: usize = 16;

fn pattern() -> &'static [u8] {
    static P: OnceLock<Vec<u8>> = OnceLock::new();
    P.get_or_init(|| {
        let mut rng = Rng::new(0xC0FF_EE00_D15E_A5E5);
        let n = PATTERN_WINDOW + MAX_PATTERN_PAYLOAD;
        let mut v = Vec::with_capacity(n);
        while v.len() < n {
            v.extend_from_slice(&rng.next_u64().to_le_bytes());
        }
        v.truncate(n);
        v
    })
}

fn header(stream: u32, seq: u64, len: usize) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..8].copy_from_slice(&seq.to_le_bytes());
    h[8..12].copy_from_slice(&stream.to_le_bytes());
    h[12..16].copy_from_slice(&(len as u32).to_le_bytes());
    h
}

fn body_offset(stream: u32, seq: u64) -> usize {
    (splitmix(u64::from(stream) << 40 ^ seq) as usize) % PATTERN_WINDOW
}

/// Write message `seq` of `stream` into `dst` (its length is the message length).
pub fn fill_payload(dst: &mut [u8], stream: u32, seq: u64) {
    let len = dst.len();
    assert!(
        len <= MAX_PATTERN_PAYLOAD,
        "payload too large for the pattern"
    );
    let h = header(stream, seq, len);
    let n = len.min(HEADER);
    dst[..n].copy_from_slice(&h[..n]);
    if len > HEADER {
        let off = body_offset(stream, seq);
        dst[HEADER..].copy_from_slice(&pattern()[off + HEADER..off + len]);
    }
}

/// Check that `got` is exactly message `seq` of `stream` with length `len`.
pub fn check_payload(got: &[u8], stream: u32, seq: u64, len: usize) -> Result<(), String> {
    if got.len() != len {
        return Err(format!(
            "stream {stream} message {seq}: length {} instead of {len} (lost, duplicated or reordered)",
            got.len()
        ));
    }
    let h = header(stream, seq, len);
    let n = len.min(HEADER);
    if got[..n] != h[..n] {
        let seen = if len >= 8 {
            format!(
                " (carries seq {})",
                u64::from_le_bytes(got[..8].try_into().unwrap())
            )
        } else {
            String::new()
        };
        return Err(format!(
            "stream {stream} message {seq}: wrong header{seen} (lost, duplicated or reordered)"
        ));
    }
    if len > HEADER {
        let off = body_offset(stream, seq);
        if got[HEADER..] != pattern()[off + HEADER..off + len] {
            return Err(format!(
                "stream {stream} message {seq}: {len}-byte payload corrupted"
            ));
        }
    }
    Ok(())
}

/// Index of a message kind in a `[u64; 3]` counter (inline, slot, mmap).
pub fn kind_index(k: MessageKind) -> usize {
    match k {
        MessageKind::Inline => 0,
        MessageKind::Slot => 1,
        MessageKind::Mmap => 2,
    }
}

/// The stream id a guest with `peer_id` uses under `seed`.
pub fn stream_id(seed: u64, peer_id: u8) -> u32 {
    (splitmix(seed ^ u64::from(peer_id)) as u32) | 1
}

/// The size-stream seed of a guest with `peer_id` under `seed`.
pub fn size_seed(seed: u64, peer_id: u8) -> u64 {
    splitmix(seed.wrapping_add(u64::from(peer_id)))
}

// ---------------------------------------------------------------------------------
// Guest: stream messages to an echoing host and verify the echoes

/// What a streaming guest does.
#[derive(Debug, Clone)]
pub struct StreamCfg {
    /// Stream seed (shared with the host).
    pub seed: u64,
    /// Messages to send (and echoes to verify); `u64::MAX` = until `stop_file` exists.
    pub count: u64,
    /// Largest payload.
    pub max_size: usize,
    /// Messages in flight at most.
    pub window: u64,
    /// When this file appears, finish the outstanding echoes and stop.
    pub stop_file: Option<PathBuf>,
    /// Give up after this long.
    pub timeout: Duration,
    /// Echoes verified so far, for a watching thread (optional).
    pub progress: Option<std::sync::Arc<roam_shm::sync::AtomicU64>>,
}

/// What a streaming guest did.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamStats {
    /// Messages sent.
    pub sent: u64,
    /// Echoes verified.
    pub received: u64,
    /// Received echoes per kind (inline, slot, mmap).
    pub kinds: [u64; 3],
}

impl StreamStats {
    /// As a RESULT line.
    pub fn result_line(&self, extra: &str) -> String {
        format!(
            "RESULT sent={} received={} inline={} slot={} mmap={}{extra}",
            self.sent, self.received, self.kinds[0], self.kinds[1], self.kinds[2]
        )
    }
}

/// Send `cfg.count` messages and verify each echo (in order, every byte), never
/// blocking on one direction while the other has work.
pub fn run_stream(g: &mut Guest, cfg: &StreamCfg) -> Result<StreamStats, String> {
    let id = g.peer_id();
    let stream = stream_id(cfg.seed, id);
    let mut send_sizes = Sizes::new(size_seed(cfg.seed, id), cfg.max_size);
    let mut recv_sizes = send_sizes.clone();
    let mut st = StreamStats::default();
    let mut target = cfg.count;
    let t0 = Instant::now();
    let mut last_stop_check = Instant::now();
    let mut host_gone = false;
    while st.received < target {
        let mut progress = false;
        while st.sent < target && st.sent - st.received < cfg.window {
            let len = send_sizes.peek();
            match g.reserve(len) {
                Ok(mut buf) => {
                    fill_payload(buf.bytes_mut(), stream, st.sent);
                    buf.commit()
                        .map_err(|e| format!("guest {id}: commit #{}: {e}", st.sent))?;
                    send_sizes.take();
                    st.sent += 1;
                    progress = true;
                }
                Err(e) if e.is_backpressure() => break,
                Err(e) => return Err(format!("guest {id}: send #{}: {e}", st.sent)),
            }
        }
        loop {
            let m = match g.try_recv() {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => return Err(format!("guest {id}: recv #{}: {e}", st.received)),
            };
            if st.received >= st.sent {
                return Err(format!("guest {id}: echo without a matching send"));
            }
            let len = recv_sizes.take();
            check_payload(&m, stream, st.received, len).map_err(|e| format!("guest {id}: {e}"))?;
            st.kinds[kind_index(m.kind())] += 1;
            drop(m);
            st.received += 1;
            progress = true;
            if let Some(p) = &cfg.progress {
                p.store(st.received, roam_shm::sync::Ordering::Relaxed);
            }
        }
        if target == u64::MAX && last_stop_check.elapsed() > Duration::from_millis(5) {
            last_stop_check = Instant::now();
            if cfg.stop_file.as_ref().is_some_and(|p| p.exists()) {
                target = st.sent;
            }
        }
        if !progress {
            if t0.elapsed() > cfg.timeout {
                return Err(format!(
                    "guest {id}: timed out after {} sent, {} echoes verified",
                    st.sent, st.received
                ));
            }
            g.check_host()
                .map_err(|e| format!("guest {id}: host: {e}"))?;
            if host_gone {
                // Its last messages (if any) were read above.
                return Err(format!(
                    "guest {id}: host: peer gone after {} sent, {} echoes verified",
                    st.sent, st.received
                ));
            }
            host_gone = g
                .wait(Some(Duration::from_millis(20)))
                .map_err(|e| format!("guest {id}: wait: {e}"))?
                == WaitOutcome::PeerGone;
        }
    }
    Ok(st)
}

// ---------------------------------------------------------------------------------
// Host: accept guests, verify what each sends, echo it back

/// Per-peer stream state of the echo host.
#[derive(Debug)]
pub struct PeerStream {
    stream: u32,
    sizes: Sizes,
    /// Messages received, verified and echoed.
    pub echoed: u64,
    /// Received messages per kind (inline, slot, mmap).
    pub kinds: [u64; 3],
}

/// Something notable the echo host saw.
#[derive(Debug, Clone)]
pub enum Note {
    /// A guest connected.
    Connected(u8),
    /// A guest went away (and was recovered).
    Gone {
        /// Peer id.
        peer: u8,
        /// Why.
        reason: GoneReason,
        /// What recovery freed.
        recovery: Recovery,
        /// Messages it had echoed.
        echoed: u64,
        /// Its received kinds.
        kinds: [u64; 3],
    },
    /// Receiving from a guest failed (corrupt data); the host disconnected it.
    RecvFailed {
        /// Peer id.
        peer: u8,
        /// The error.
        error: String,
    },
    /// Echoing to a guest failed; the host disconnected it.
    SendFailed {
        /// Peer id.
        peer: u8,
        /// The error.
        error: String,
    },
    /// A message failed verification (not disconnected: the test decides).
    Mismatch {
        /// Peer id.
        peer: u8,
        /// What was wrong.
        error: String,
    },
}

/// A host that verifies every message against each guest's stream and echoes it.
pub struct EchoHost {
    /// The host.
    pub host: Host,
    seed: u64,
    max_size: usize,
    /// Streams of the connected peers.
    pub peers: HashMap<u8, PeerStream>,
    /// Everything notable, in order.
    pub notes: Vec<Note>,
    /// Verify payloads (off for hosts that just echo whatever arrives).
    pub verify: bool,
}

impl EchoHost {
    /// Wrap a listening host.
    pub fn new(host: Host, seed: u64, max_size: usize) -> EchoHost {
        EchoHost {
            host,
            seed,
            max_size,
            peers: HashMap::new(),
            notes: Vec::new(),
            verify: true,
        }
    }

    /// Poll once (up to `timeout`) and handle what happened.
    pub fn step(&mut self, timeout: Duration) {
        let events = self.host.poll(Some(timeout)).expect("host poll");
        for ev in events {
            match ev {
                HostEvent::Connected(id) => {
                    self.peers.insert(
                        id,
                        PeerStream {
                            stream: stream_id(self.seed, id),
                            sizes: Sizes::new(size_seed(self.seed, id), self.max_size),
                            echoed: 0,
                            kinds: [0; 3],
                        },
                    );
                    self.notes.push(Note::Connected(id));
                }
                HostEvent::Readable(id) => self.echo(id),
                HostEvent::PeerGone {
                    peer,
                    reason,
                    recovery,
                } => self.gone(peer, reason, recovery),
            }
        }
    }

    fn gone(&mut self, peer: u8, reason: GoneReason, recovery: Recovery) {
        let (echoed, kinds) = self
            .peers
            .remove(&peer)
            .map(|p| (p.echoed, p.kinds))
            .unwrap_or_default();
        self.notes.push(Note::Gone {
            peer,
            reason,
            recovery,
            echoed,
            kinds,
        });
    }

    /// Disconnect `peer` (recovering its resources) and note it.
    pub fn disconnect(&mut self, peer: u8, reason: GoneReason) {
        let recovery = self.host.disconnect(peer);
        self.gone(peer, reason, recovery);
    }

    fn echo(&mut self, id: u8) {
        let verify = self.verify;
        let Some(ps) = self.peers.get_mut(&id) else {
            return;
        };
        let Ok((tx, rx)) = self.host.link(id) else {
            return;
        };
        let mut failure = None;
        loop {
            let raw = match rx.try_recv_raw() {
                Ok(Some(raw)) => raw,
                Ok(None) => break,
                Err(e) => {
                    failure = Some(Note::RecvFailed {
                        peer: id,
                        error: recv_error_text(&e),
                    });
                    break;
                }
            };
            // SAFETY: the view is valid until rx.release() below.
            let got = unsafe { std::slice::from_raw_parts(raw.ptr, raw.len) };
            let mut buf = match tx.reserve(raw.len) {
                Ok(buf) => buf,
                // Our direction is full: keep the message held, retry on the next wake.
                Err(e) if e.is_backpressure() => break,
                // The guest died: the next poll sees its doorbell closed and recovers it.
                Err(SendError::PeerGone) => break,
                Err(e) => {
                    failure = Some(Note::SendFailed {
                        peer: id,
                        error: send_error_text(&e),
                    });
                    break;
                }
            };
            if verify {
                let len = ps.sizes.peek();
                if let Err(e) = check_payload(got, ps.stream, ps.echoed, len) {
                    self.notes.push(Note::Mismatch { peer: id, error: e });
                }
            }
            buf.bytes_mut().copy_from_slice(got);
            let peer_gone = match buf.commit() {
                Ok(()) => false,
                // Committed, but the doorbell found the guest dead: as above.
                Err(SendError::PeerGone) => true,
                Err(e) => {
                    failure = Some(Note::SendFailed {
                        peer: id,
                        error: send_error_text(&e),
                    });
                    break;
                }
            };
            ps.sizes.take();
            ps.kinds[kind_index(raw.kind)] += 1;
            ps.echoed += 1;
            if let Err(e) = rx.release() {
                failure = Some(Note::RecvFailed {
                    peer: id,
                    error: recv_error_text(&e),
                });
                break;
            }
            if peer_gone {
                break;
            }
        }
        if let Some(n) = failure {
            self.notes.push(n);
            self.disconnect(id, GoneReason::Corrupt);
        }
    }

    /// Number of `Gone` notes.
    pub fn gone_count(&self) -> usize {
        self.notes
            .iter()
            .filter(|n| matches!(n, Note::Gone { .. }))
            .count()
    }

    /// The `Mismatch` notes.
    pub fn mismatches(&self) -> Vec<&Note> {
        self.notes
            .iter()
            .filter(|n| matches!(n, Note::Mismatch { .. }))
            .collect()
    }

    /// Poll until `done()` or `bound` elapses (panics then, with `what`).
    pub fn run_until(
        &mut self,
        what: &str,
        bound: Duration,
        mut done: impl FnMut(&mut Self) -> bool,
    ) {
        let t0 = Instant::now();
        while !done(self) {
            assert!(
                t0.elapsed() < bound,
                "timed out after {bound:?} waiting until {what}; notes: {:?}",
                self.notes
            );
            self.step(Duration::from_millis(10));
        }
    }

    /// Assert the segment is clean: every slot free, every peer entry Empty, rings
    /// empty.
    pub fn assert_clean(&self) {
        assert_segment_clean(&self.host);
    }
}

/// Assert that no slot is allocated and every peer entry is Empty with empty rings.
pub fn assert_segment_clean(host: &Host) {
    let seg = host.segment();
    for s in seg.pool().stats() {
        assert_eq!(
            s.allocated, 0,
            "slot class of {} B still has {} of {} slots allocated",
            s.slot_size, s.allocated, s.slot_count
        );
    }
    for (id, e) in seg.peer_table().iter() {
        assert_eq!(
            e.state().ok(),
            Some(roam_shm::segment::peer::PeerState::Empty),
            "peer entry {id} not Empty: {e:?}"
        );
        let id = u8::try_from(id).unwrap();
        for g2h in [true, false] {
            let r = seg.ring(id, g2h).unwrap();
            assert!(r.is_empty(), "peer {id} ring (g2h={g2h}) not empty");
        }
    }
}

/// A RecvError as text, tagged with its variant.
pub fn recv_error_text(e: &RecvError) -> String {
    match e {
        RecvError::Corrupt(m) => format!("Corrupt: {m}"),
        other => format!("{other:?}"),
    }
}

/// A SendError as text, tagged with its variant.
pub fn send_error_text(e: &SendError) -> String {
    format!("{e:?}")
}
