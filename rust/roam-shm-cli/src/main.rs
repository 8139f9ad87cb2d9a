//! `roam-shm`: create and inspect segments, run an echo host or a checking guest,
//! and the demo (a host and several guest processes, one of them killed and
//! recovered). The bindings' cross-language tests drive these commands.

mod demo;
mod inspect;
mod payload;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use roam_shm::segment::config::SegmentConfig;
use roam_shm::segment::guest::{Guest, GuestOptions};
use roam_shm::segment::host::{Host, HostEvent, HostOptions};
use roam_shm::segment::mapping::PathCleanup;
use roam_shm::segment::shared::{SegmentBacking, SegmentShared};
use roam_shm::segment::var_pool::SizeClass;

#[derive(Parser)]
#[command(
    name = "roam-shm",
    version,
    about = "Zero-copy shared-memory IPC (roam v7 compatible)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create or inspect a segment file.
    Segment {
        #[command(subcommand)]
        cmd: SegmentCmd,
    },
    /// Serve guests on a Unix socket.
    Host(HostArgs),
    /// Connect to a host, send messages and check the echoes.
    Guest(GuestArgs),
    /// Run a host and several guest processes, kill one and show the recovery.
    Demo(demo::DemoArgs),
    /// Latency/throughput benchmarks against the raw floor and baselines (iceoryx2 rows: scripts/bench.sh).
    Bench(roam_shm_bench::BenchArgs),
}

#[derive(Subcommand)]
enum SegmentCmd {
    /// Create a segment file (kept on exit).
    Create {
        /// Path of the file to create (e.g. /dev/shm/my-segment).
        path: PathBuf,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Print a segment's header, peer table and pool usage.
    Inspect {
        /// Segment file.
        path: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

/// Segment geometry flags.
#[derive(Args, Clone, Debug)]
pub struct ConfigArgs {
    /// Maximum number of guests (1..=255).
    #[arg(long, default_value_t = 8)]
    max_guests: u32,
    /// BipBuffer data bytes per direction per guest (multiple of 64).
    #[arg(long, default_value_t = 64 * 1024)]
    bipbuf_capacity: u32,
    /// Slot classes as SIZE:COUNT,... ascending by size.
    #[arg(long, default_value = "1024:64,16384:32,262144:8", value_parser = parse_classes)]
    classes: ClassList,
    /// Inline threshold in bytes (0 = roam's default 256).
    #[arg(long, default_value_t = 0)]
    inline_threshold: u32,
    /// Largest payload in bytes.
    #[arg(long, default_value_t = 16 << 20)]
    max_payload: u32,
    /// Guest heartbeat interval in milliseconds (0 = off).
    #[arg(long, default_value_t = 0)]
    heartbeat_ms: u64,
}

/// Slot classes parsed from `SIZE:COUNT,...` (a newtype so clap takes the list as one value).
#[derive(Clone, Debug)]
pub struct ClassList(Vec<SizeClass>);

fn parse_classes(s: &str) -> Result<ClassList, String> {
    s.split(',')
        .map(|c| {
            let (size, count) = c
                .split_once(':')
                .ok_or_else(|| format!("`{c}`: expected SIZE:COUNT"))?;
            Ok(SizeClass {
                slot_size: size.trim().parse().map_err(|e| format!("`{size}`: {e}"))?,
                count: count
                    .trim()
                    .parse()
                    .map_err(|e| format!("`{count}`: {e}"))?,
            })
        })
        .collect::<Result<Vec<_>, String>>()
        .map(ClassList)
}

impl ConfigArgs {
    /// The segment configuration these flags describe.
    pub fn to_config(&self) -> SegmentConfig {
        SegmentConfig {
            max_guests: self.max_guests,
            bipbuf_capacity: self.bipbuf_capacity,
            size_classes: self.classes.0.clone(),
            inline_threshold: self.inline_threshold,
            max_payload_size: self.max_payload,
            heartbeat_interval: Duration::from_millis(self.heartbeat_ms),
        }
    }
}

#[derive(Args, Clone, Debug)]
struct HostArgs {
    /// Unix socket path to listen on.
    #[arg(long)]
    socket: PathBuf,
    /// Echo every message back to its sender.
    #[arg(long)]
    echo: bool,
    /// Back the segment with this file (roam guests need a file); default: a memfd.
    #[arg(long)]
    segment: Option<PathBuf>,
    /// Exit after this many guests have connected and left (0 = run until SIGTERM/SIGINT).
    #[arg(long, default_value_t = 0)]
    guests: u32,
    /// Exit after this many seconds without any guest (0 = never).
    #[arg(long, default_value_t = 0)]
    idle_exit: u64,
    /// Print one line per event.
    #[arg(long)]
    verbose: bool,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Args, Clone, Debug)]
struct GuestArgs {
    /// Unix socket path of the host.
    #[arg(long)]
    socket: PathBuf,
    /// Messages to send.
    #[arg(long, default_value_t = 1000)]
    count: u64,
    /// Payload size in bytes (fixed), unless --max-size is given.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Draw sizes log-uniformly from --size..=--max-size.
    #[arg(long)]
    max_size: Option<usize>,
    /// Messages in flight at most (sent, echo not yet received).
    #[arg(long, default_value_t = 16)]
    window: u64,
    /// Seed for sizes and payloads.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Sleep this many microseconds after each send (to make a kill land mid-stream).
    #[arg(long, default_value_t = 0)]
    pace_us: u64,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn install_stop_handler() {
    // SAFETY: on_signal only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Segment {
            cmd: SegmentCmd::Create { path, config },
        } => segment_create(&path, &config),
        Cmd::Segment {
            cmd: SegmentCmd::Inspect { path, json },
        } => inspect::run(&path, json),
        Cmd::Host(a) => run_host(&a),
        Cmd::Guest(a) => run_guest(&a),
        Cmd::Demo(a) => demo::run(&a),
        Cmd::Bench(a) => {
            roam_shm_bench::run(&a, &["bench"]).map_err(|e| e as Box<dyn std::error::Error>)
        }
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roam-shm: error: {e}");
            ExitCode::FAILURE
        }
    }
}

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

fn segment_create(path: &std::path::Path, config: &ConfigArgs) -> AnyResult<()> {
    let cfg = config.to_config();
    let backing = SegmentBacking::File {
        path: path.to_path_buf(),
        cleanup: PathCleanup::Keep,
        mode: 0o600,
    };
    let seg = SegmentShared::create(&cfg, &backing)?;
    println!(
        "created {} ({} bytes, {} guests, {} B rings, {} slot classes)",
        path.display(),
        seg.layout().total_size,
        cfg.max_guests,
        cfg.bipbuf_capacity,
        cfg.size_classes.len()
    );
    Ok(())
}

fn run_host(a: &HostArgs) -> AnyResult<()> {
    install_stop_handler();
    let backing = match &a.segment {
        Some(p) => SegmentBacking::File {
            path: p.clone(),
            cleanup: PathCleanup::Delete,
            mode: 0o600,
        },
        None => SegmentBacking::Anonymous,
    };
    let mut host = Host::create(HostOptions {
        config: a.config.to_config(),
        backing,
    })?;
    host.listen(&a.socket)?;
    println!(
        "host: listening on {} (segment {})",
        a.socket.display(),
        host.segment_path().display()
    );
    let (mut connected, mut left, mut echoed) = (0u32, 0u32, 0u64);
    let mut last_activity = Instant::now();
    while !STOP.load(Ordering::Relaxed) {
        let events = host.poll(Some(Duration::from_millis(50)))?;
        if !events.is_empty() {
            last_activity = Instant::now();
        }
        for ev in events {
            match ev {
                HostEvent::Connected(p) => {
                    connected += 1;
                    if a.verbose {
                        println!("host: guest {p} connected");
                    }
                }
                HostEvent::PeerGone {
                    peer,
                    reason,
                    recovery,
                } => {
                    left += 1;
                    println!(
                        "host: guest {peer} gone ({reason:?}); recovered: {} unread frames drained, {} held slots freed, {} guest slots reclaimed",
                        recovery.drained_frames,
                        recovery.freed_sent_slots,
                        recovery.reclaimed_slots
                    );
                }
                HostEvent::Readable(p) => {
                    if a.echo {
                        echoed += echo_peer(&mut host, p);
                    } else {
                        while let Ok(Some(m)) = host.try_recv(p) {
                            drop(m);
                        }
                    }
                }
            }
        }
        if a.guests > 0 && left >= a.guests && connected >= a.guests {
            break;
        }
        if a.idle_exit > 0
            && host.peer_ids().is_empty()
            && last_activity.elapsed() > Duration::from_secs(a.idle_exit)
        {
            break;
        }
    }
    let stats = host.segment().pool().stats();
    let in_use: u64 = stats.iter().map(|s| u64::from(s.allocated)).sum();
    println!(
        "host: done: {connected} guests served, {echoed} messages echoed, {in_use} slots in use at exit"
    );
    Ok(())
}

/// Echo what `peer` sent, zero-copy from its ring or slot into ours. Stops (keeping
/// the message held) when our direction is full, so a slow guest only slows itself.
fn echo_peer(host: &mut Host, peer: u8) -> u64 {
    let mut n = 0;
    let Ok((tx, rx)) = host.link(peer) else {
        return 0;
    };
    loop {
        let raw = match rx.try_recv_raw() {
            Ok(Some(raw)) => raw,
            Ok(None) => break,
            Err(e) => {
                eprintln!("host: guest {peer}: {e}");
                break;
            }
        };
        match tx.reserve(raw.len) {
            Ok(mut buf) => {
                // SAFETY: raw is valid until rx.release() below.
                let src = unsafe { std::slice::from_raw_parts(raw.ptr, raw.len) };
                buf.bytes_mut().copy_from_slice(src);
                if let Err(e) = buf.commit() {
                    eprintln!("host: guest {peer}: echo: {e}");
                    break;
                }
                if let Err(e) = rx.release() {
                    eprintln!("host: guest {peer}: release: {e}");
                }
                n += 1;
            }
            Err(e) if e.is_backpressure() => break,
            Err(e) => {
                eprintln!("host: guest {peer}: echo: {e}");
                break;
            }
        }
    }
    n
}

fn run_guest(a: &GuestArgs) -> AnyResult<()> {
    let mut g = Guest::connect(&a.socket, GuestOptions::default())?;
    let id = g.peer_id();
    let max = a.max_size.unwrap_or(a.size);
    let sizes = payload::Sizes::new(
        a.seed.wrapping_mul(0x100_0000_01B3) ^ u64::from(id),
        a.size,
        max,
    );
    let start = Instant::now();
    let deadline = start + Duration::from_secs(a.timeout);
    let (mut sent, mut received, mut bytes) = (0u64, 0u64, 0u64);
    let mut scratch = Vec::new();
    let mut expect_sizes = std::collections::VecDeque::new();
    let mut sizes_iter = sizes;
    while received < a.count {
        let mut progress = false;
        while sent < a.count && sent - received < a.window {
            let len = sizes_iter.peek();
            payload::fill(&mut scratch, a.seed, sent, len);
            match g.try_send(&scratch) {
                Ok(()) => {
                    sizes_iter.next();
                    expect_sizes.push_back(len);
                    sent += 1;
                    bytes += len as u64;
                    progress = true;
                    if a.pace_us > 0 {
                        std::thread::sleep(Duration::from_micros(a.pace_us));
                    }
                }
                Err(e) if e.is_backpressure() => break,
                Err(e) => return Err(format!("guest {id}: send #{sent}: {e}").into()),
            }
        }
        loop {
            let msg = match g.try_recv() {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => return Err(format!("guest {id}: recv #{received}: {e}").into()),
            };
            let len = expect_sizes
                .pop_front()
                .ok_or("echo without a matching send")?;
            payload::fill(&mut scratch, a.seed, received, len);
            if msg[..] != scratch[..] {
                return Err(format!(
                    "guest {id}: echo #{received} differs from what was sent ({} vs {len} bytes)",
                    msg.len()
                )
                .into());
            }
            drop(msg);
            received += 1;
            progress = true;
        }
        if !progress {
            if Instant::now() > deadline {
                return Err(
                    format!("guest {id}: timed out after {sent} sent, {received} echoed").into(),
                );
            }
            g.wait(Some(Duration::from_millis(20)))?;
            g.check_host()?;
        }
    }
    let elapsed = start.elapsed();
    println!(
        "guest {id}: {sent} sent, {received} echoes verified, {bytes} bytes each way, {:.0} msg/s round trip",
        received as f64 / elapsed.as_secs_f64()
    );
    g.close();
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }

    #[test]
    fn class_lists_parse_and_reject_garbage() {
        let c = super::parse_classes("64:2, 1024:3").unwrap();
        assert_eq!(c.0.len(), 2);
        assert_eq!((c.0[1].slot_size, c.0[1].count), (1024, 3));
        assert!(super::parse_classes("64").is_err());
        assert!(super::parse_classes("x:1").is_err());
    }
}
