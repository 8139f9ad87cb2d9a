//! # roam-shm-bench
//!
//! Benchmarks of roam-shm: criterion micro-benchmarks of the primitives
//! (`benches/primitives.rs`) and a cross-process harness (this library, run by the
//! `roam-shm-bench` binary and by `roam-shm bench`).
//!
//! The harness runs one *row* at a time (see [`rows::plan`]): the parent process
//! pins itself to one CPU, re-executes its own binary as the child
//! (`--child <row>`), which pins itself to another CPU, and the two then go through
//! the same phases in lock-step (a barrier in a shared control block):
//!
//! 1. the raw floor, two processes spinning on one shared cache line;
//! 2. the row: a ping-pong (latency) or a one-way stream (throughput);
//! 3. the raw floor again.
//!
//! Each row is reported with its ratio to the floor measured right around it, since
//! this machine's floor switches between levels as the host moves the vCPUs.
//! A row whose two floors differ by more than 1.5x is run again once.
//!
//! The output is a Markdown report and a PNG plot in `target/bench/` (see
//! [`report`] and [`plot`]); `scripts/bench.sh` regenerates `docs/benchmarks.md`.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;

pub mod affinity;
pub mod clock;
pub mod ctl;
pub mod endpoint;
pub mod format;
pub mod inproc;
#[cfg(feature = "iceoryx2")]
pub mod iox;
pub mod plot;
pub mod report;
pub mod ring;
pub mod rows;
pub mod session;
pub mod sock;

use clock::Clock;
use ctl::{ChildProc, ChildSpec, Ctl};
use endpoint::{Endpoint, FloorEp, FutexEp, Line, Side, StreamCount};
use rows::{Measure, Row, Transport};

/// Errors of the harness.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Command-line arguments of `roam-shm-bench` and `roam-shm bench`.
#[derive(Args, Debug, Clone, Default)]
pub struct BenchArgs {
    /// Smoke run: 3 payload sizes, short rows (under a minute).
    #[arg(long)]
    pub quick: bool,
    /// Output directory for report.md, results.tsv and bench.png
    /// [default: target/bench next to the binary's target directory].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also write the full benchmark document (method + results) to this path,
    /// with the plot copied next to it.
    #[arg(long)]
    pub doc: Option<PathBuf>,
    /// Run only rows whose spec (e.g. `lat/format/spin/4096`) contains one of these
    /// comma-separated substrings.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Measured time per row in milliseconds (default 500, --quick 60).
    #[arg(long)]
    pub measure_ms: Option<u64>,
    /// Skip the iceoryx2 rows even when the feature is compiled in.
    #[arg(long)]
    pub no_iceoryx2: bool,
    /// Keep the normal scheduling priority. By default the run asks for nice -20
    /// (when permitted) so that other work on the machine disturbs it less.
    #[arg(long)]
    pub no_nice: bool,
    /// Run under SCHED_FIFO (priority 1; root only), so that other work on a busy
    /// machine cannot preempt the measurement. The kernel's real-time throttling
    /// (by default 5% of each second) still leaves the rest of the machine some
    /// time, and shows up as outliers in the tails.
    #[arg(long)]
    pub realtime: bool,

    /// Internal: run as the child of this row.
    #[arg(long, hide = true)]
    pub child: Option<String>,
    /// Internal: the control region's fd.
    #[arg(long, hide = true)]
    pub ctl_fd: Option<RawFd>,
    /// Internal: inherited fds.
    #[arg(long, hide = true, value_delimiter = ',')]
    pub fds: Vec<RawFd>,
    /// Internal: CPU to pin the child to.
    #[arg(long, hide = true)]
    pub child_cpu: Option<usize>,
    /// Internal: transport argument (socket path, service name).
    #[arg(long, hide = true)]
    pub peer_arg: Option<String>,
    /// Internal: the child's time budget.
    #[arg(long, hide = true)]
    pub budget_ms: Option<u64>,
}

/// Whether this build has the iceoryx2 rows.
pub const HAS_ICEORYX2: bool = cfg!(feature = "iceoryx2");

/// Phase durations of a run.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Unrecorded warm-up of a row.
    pub warm: Duration,
    /// Recorded part of a row.
    pub measure: Duration,
    /// Unrecorded warm-up of a floor measurement.
    pub floor_warm: Duration,
    /// Recorded part of a floor measurement.
    pub floor: Duration,
    /// Time per memcpy reference measurement.
    pub memcpy: Duration,
}

impl Timing {
    fn new(args: &BenchArgs) -> Timing {
        let mut t = if args.quick {
            Timing {
                warm: Duration::from_millis(10),
                measure: Duration::from_millis(60),
                floor_warm: Duration::from_millis(2),
                floor: Duration::from_millis(10),
                memcpy: Duration::from_millis(10),
            }
        } else {
            Timing {
                warm: Duration::from_millis(50),
                measure: Duration::from_millis(500),
                floor_warm: Duration::from_millis(5),
                floor: Duration::from_millis(40),
                memcpy: Duration::from_millis(40),
            }
        };
        if let Some(ms) = args.measure_ms {
            t.measure = Duration::from_millis(ms);
        }
        t
    }

    fn budget(&self) -> Duration {
        self.warm + 10 * self.measure + 2 * (self.floor + self.floor_warm) + Duration::from_secs(60)
    }
}

/// Percentiles of one-way latency, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest sample.
    pub max: f64,
    /// Number of samples (round trips).
    pub samples: u64,
}

impl Stats {
    /// One-way statistics from a histogram of round-trip ticks (one-way = RTT / 2).
    pub fn from_rtt(h: &Histogram<u64>, clock: &Clock) -> Stats {
        let ow = |ticks: u64| clock.ns(ticks) / 2.0;
        Stats {
            p50: ow(h.value_at_quantile(0.50)),
            p90: ow(h.value_at_quantile(0.90)),
            p99: ow(h.value_at_quantile(0.99)),
            p999: ow(h.value_at_quantile(0.999)),
            max: ow(h.max()),
            samples: h.len(),
        }
    }
}

/// Throughput of a stream row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tput {
    /// Messages per second.
    pub msgs_per_s: f64,
    /// Payload bytes per second.
    pub bytes_per_s: f64,
    /// memcpy of the same payload size in the same run (bytes per second).
    pub memcpy_bytes_per_s: f64,
}

/// The outcome of one row.
#[derive(Debug, Clone)]
pub struct RowResult {
    /// The row.
    pub row: Row,
    /// Floor measured right before the row.
    pub floor_pre: Option<Stats>,
    /// Floor measured right after the row.
    pub floor_post: Option<Stats>,
    /// Latency rows.
    pub lat: Option<Stats>,
    /// Throughput rows.
    pub tput: Option<Tput>,
    /// Runs it took (2 when the floor moved during the first).
    pub attempts: u32,
    /// Why the row has no numbers.
    pub error: Option<String>,
}

impl RowResult {
    /// The adjacent floor: the mean of the one-way p50 before and after.
    pub fn floor_ns(&self) -> Option<f64> {
        match (self.floor_pre, self.floor_post) {
            (Some(a), Some(b)) => Some((a.p50 + b.p50) / 2.0),
            (Some(a), None) | (None, Some(a)) => Some(a.p50),
            _ => None,
        }
    }

    /// How much the floor moved across the row (max / min of the two p50s).
    pub fn floor_drift(&self) -> f64 {
        match (self.floor_pre, self.floor_post) {
            (Some(a), Some(b)) if a.p50 > 0.0 && b.p50 > 0.0 => a.p50.max(b.p50) / a.p50.min(b.p50),
            _ => 1.0,
        }
    }

    /// Row p50 ÷ adjacent floor.
    pub fn lat_ratio(&self) -> Option<f64> {
        Some(self.lat?.p50 / self.floor_ns()?)
    }
}

/// Where the run writes its files by default: `<target>/bench` for a binary in
/// `<target>/{release,debug}/`, else `./target/bench`.
fn default_out() -> PathBuf {
    if let Ok(exe) = std::env::current_exe() {
        if let Some(target) = exe.parent().and_then(|p| p.parent()) {
            if target.file_name().is_some_and(|n| n == "target") {
                return target.join("bench");
            }
        }
    }
    PathBuf::from("target/bench")
}

/// Entry point for the binary and the CLI. `child_prefix` is what precedes the bench
/// arguments when this binary is re-executed as a child (`["bench"]` for the CLI).
pub fn run(args: &BenchArgs, child_prefix: &[&str]) -> Result<(), BoxError> {
    if let Some(spec) = &args.child {
        return child_main(args, spec);
    }
    let prefix: Vec<OsString> = child_prefix.iter().map(OsString::from).collect();
    coordinator(args, &prefix)
}

/// Context shared by the rows of a run.
struct Ctx<'a> {
    prefix: &'a [OsString],
    clock: Clock,
    timing: Timing,
    cpus: Option<(usize, usize)>,
}

fn coordinator(args: &BenchArgs, prefix: &[OsString]) -> Result<(), BoxError> {
    let started = Instant::now();
    let clock = Clock::get();
    let cpus = affinity::pair();
    let all_cpus = affinity::allowed_cpus();
    let timing = Timing::new(args);
    let ctx = Ctx {
        prefix,
        clock,
        timing,
        cpus,
    };
    let iceoryx2 = HAS_ICEORYX2 && !args.no_iceoryx2;
    let rows: Vec<Row> = rows::plan(args.quick, iceoryx2)
        .into_iter()
        .filter(|r| args.only.is_empty() || args.only.iter().any(|o| r.spec().contains(o)))
        .collect();
    if rows.is_empty() {
        return Err("no rows selected".into());
    }
    // SAFETY: setpriority has no memory preconditions; it affects this thread and
    // what it spawns (the children, the in-process peer threads).
    let niced = !args.no_nice && unsafe { libc::setpriority(libc::PRIO_PROCESS as _, 0, -20) } == 0;
    let mut env = report::Environment::capture(&clock, args.quick, iceoryx2, cpus);
    env.nice = if niced {
        "-20".into()
    } else {
        "unchanged".into()
    };
    if args.realtime {
        let param = libc::sched_param { sched_priority: 1 };
        // SAFETY: `param` is a valid sched_param; pid 0 is this thread, and the
        // policy is inherited by the children and the in-process peer threads.
        if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } != 0 {
            return Err(format!(
                "--realtime: sched_setscheduler(SCHED_FIFO): {}",
                std::io::Error::last_os_error()
            )
            .into());
        }
        env.nice = format!("{}, SCHED_FIFO priority 1", env.nice);
    }
    let out = args.out.clone().unwrap_or_else(default_out);
    std::fs::create_dir_all(&out)?;

    let tty = std::io::stderr().is_terminal();
    let pb = indicatif::ProgressBar::new(rows.len() as u64);
    if tty {
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30.cyan/blue}] {pos}/{len} {msg}",
            )?
            .progress_chars("=> "),
        );
        pb.enable_steady_tick(Duration::from_millis(200));
    } else {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    if let Some((a, _)) = cpus {
        affinity::pin(a)?;
    }
    let mut results = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        pb.set_message(row.to_string());
        let r = run_row_with_retry(&ctx, row, i);
        let line = report::one_line(&r);
        if tty {
            pb.println(line);
        } else {
            eprintln!("[{}/{}] {line}", i + 1, rows.len());
        }
        results.push(r);
        pb.inc(1);
    }
    pb.finish_and_clear();
    affinity::unpin(&all_cpus);

    let elapsed = started.elapsed();
    let body = report::results_markdown(&env, &results, elapsed);
    std::fs::write(out.join("report.md"), &body)?;
    std::fs::write(out.join("results.tsv"), report::tsv(&results))?;
    let png = out.join("bench.png");
    plot::draw(&results, &png)?;
    if let Some(doc) = &args.doc {
        let dir = doc.parent().unwrap_or(std::path::Path::new("."));
        std::fs::create_dir_all(dir)?;
        std::fs::copy(&png, dir.join("benchmarks.png"))?;
        std::fs::write(doc, report::document(&body, "benchmarks.png"))?;
    }
    println!("{body}");
    println!(
        "wrote {} and {} ({:.1} s)",
        out.join("report.md").display(),
        png.display(),
        elapsed.as_secs_f64()
    );
    let failed = results.iter().filter(|r| r.error.is_some()).count();
    if failed > 0 {
        return Err(format!("{failed} of {} rows failed", results.len()).into());
    }
    Ok(())
}

fn run_row_with_retry(ctx: &Ctx<'_>, row: &Row, tag: usize) -> RowResult {
    let first = run_row(ctx, row, tag * 2);
    if first.error.is_none() && first.floor_drift() > 1.5 {
        let mut second = run_row(ctx, row, tag * 2 + 1);
        if second.error.is_none() && second.floor_drift() < first.floor_drift() {
            second.attempts = 2;
            return second;
        }
        let mut first = first;
        first.attempts = 2;
        return first;
    }
    first
}

fn run_row(ctx: &Ctx<'_>, row: &Row, tag: usize) -> RowResult {
    let r = if row.transport.in_process() {
        run_inproc(ctx, row)
    } else {
        run_xproc(ctx, row, tag)
    };
    match r {
        Ok(mut res) => {
            if let Some(t) = &mut res.tput {
                t.memcpy_bytes_per_s = memcpy_rate(row.payload, ctx.timing.memcpy);
            }
            res
        }
        Err(e) => RowResult {
            row: *row,
            floor_pre: None,
            floor_post: None,
            lat: None,
            tput: None,
            attempts: 1,
            error: Some(e.to_string()),
        },
    }
}

/// What the body of a row measured.
enum Measured {
    Lat(Histogram<u64>),
    Tput(StreamCount),
}

fn finish(
    ctx: &Ctx<'_>,
    row: &Row,
    pre: &Histogram<u64>,
    m: Measured,
    post: &Histogram<u64>,
) -> RowResult {
    let (lat, tput) = match m {
        Measured::Lat(h) => (Some(Stats::from_rtt(&h, &ctx.clock)), None),
        Measured::Tput(c) => {
            let mps = c.msgs as f64 / c.secs;
            (
                None,
                Some(Tput {
                    msgs_per_s: mps,
                    bytes_per_s: mps * row.payload as f64,
                    memcpy_bytes_per_s: 0.0,
                }),
            )
        }
    };
    RowResult {
        row: *row,
        floor_pre: Some(Stats::from_rtt(pre, &ctx.clock)),
        floor_post: Some(Stats::from_rtt(post, &ctx.clock)),
        lat,
        tput,
        attempts: 1,
        error: None,
    }
}

/// The generic row body of side A (parent).
fn body_a<E: Endpoint>(
    ctx: &Ctx<'_>,
    row: &Row,
    ep: &mut E,
    stop: &AtomicU32,
) -> Result<Measured, BoxError> {
    let t = &ctx.timing;
    Ok(match row.measure {
        Measure::Latency => Measured::Lat(endpoint::ping(
            ep,
            row.payload,
            &ctx.clock,
            t.warm,
            t.measure,
        )?),
        Measure::Throughput => Measured::Tput(endpoint::stream_recv(
            ep,
            row.payload,
            stop,
            &ctx.clock,
            t.warm,
            t.measure,
        )?),
    })
}

/// The generic row body of side B (child).
fn body_b<E: Endpoint>(row: &Row, ep: &mut E, stop: &AtomicU32) -> Result<(), BoxError> {
    match row.measure {
        Measure::Latency => endpoint::pong(ep, row.payload),
        Measure::Throughput => endpoint::stream_send(ep, row.payload, stop),
    }
}

fn floor_ping(
    ctx: &Ctx<'_>,
    word: &AtomicU64,
    deadline: Instant,
) -> Result<Histogram<u64>, BoxError> {
    let mut ep = FloorEp::new(word, Side::A, deadline);
    endpoint::ping(
        &mut ep,
        8,
        &ctx.clock,
        ctx.timing.floor_warm,
        ctx.timing.floor,
    )
}

fn floor_pong(word: &AtomicU64, deadline: Instant) -> Result<(), BoxError> {
    let mut ep = FloorEp::new(word, Side::B, deadline);
    endpoint::pong(&mut ep, 8)
}

/// What the parent prepared for a cross-process row before spawning the child.
enum Prepared {
    None,
    Format(Arc<roam_shm::segment::shared::SegmentShared>),
    Session(roam_shm::segment::host::Host, PathBuf),
    Stream(endpoint_stream::Pending),
    #[cfg(feature = "iceoryx2")]
    Iox(Box<iox::IoxEp>),
}

mod endpoint_stream {
    use std::os::fd::OwnedFd;

    /// Sockets or pipes: the parent's ends and the child's ends (closed after the
    /// spawn).
    pub struct Pending {
        pub mine: (OwnedFd, OwnedFd),
        pub theirs: Vec<OwnedFd>,
    }
}

fn run_xproc(ctx: &Ctx<'_>, row: &Row, tag: usize) -> Result<RowResult, BoxError> {
    let area = match row.transport {
        Transport::Ring | Transport::RingBatch => ring::area_size(),
        _ => 0,
    };
    let ctl = Ctl::create(area)?;
    let budget = ctx.timing.budget();
    let deadline = Instant::now() + budget;
    let mut fds: Vec<RawFd> = Vec::new();
    let mut peer_arg = None;
    let prepared = match row.transport {
        Transport::Ring | Transport::RingBatch => {
            let (p, len) = ctl.area();
            // SAFETY: the area belongs to `ctl` (mapped, page-aligned) and the child
            // does not exist yet.
            unsafe { ring::init(p, len, row.transport == Transport::RingBatch)? };
            Prepared::None
        }
        Transport::Futex => Prepared::None,
        Transport::Format | Transport::FormatCached => {
            let seg = roam_shm::segment::shared::SegmentShared::create(
                &format::bench_config(),
                &roam_shm::segment::shared::SegmentBacking::Anonymous,
            )?;
            fds.push(seg.mapping().fd().as_raw_fd());
            Prepared::Format(Arc::new(seg))
        }
        Transport::Session => {
            let path = session::socket_path(tag);
            let host = session::host_listen(&path)?;
            peer_arg = Some(path.to_string_lossy().into_owned());
            Prepared::Session(host, path)
        }
        Transport::Uds => {
            let (a, b) = sock::socketpair()?;
            fds.push(b.as_raw_fd());
            let a2 = a.try_clone()?;
            Prepared::Stream(endpoint_stream::Pending {
                mine: (a, a2),
                theirs: vec![b],
            })
        }
        Transport::Pipe => {
            let (r1, w1) = sock::pipe()?; // parent -> child
            let (r2, w2) = sock::pipe()?; // child -> parent
            fds.push(r1.as_raw_fd());
            fds.push(w2.as_raw_fd());
            Prepared::Stream(endpoint_stream::Pending {
                mine: (r2, w1),
                theirs: vec![r1, w2],
            })
        }
        #[cfg(feature = "iceoryx2")]
        Transport::Iceoryx2 => {
            let base = iox::service_base(tag);
            let ep = iox::IoxEp::new(&base, Side::A, row.measure, row.payload, deadline)?;
            peer_arg = Some(base);
            Prepared::Iox(Box::new(ep))
        }
        other => return Err(format!("{} cannot run across processes", other.name()).into()),
    };
    let mut child = ChildProc::spawn(&ChildSpec {
        prefix: ctx.prefix,
        row: row.spec(),
        ctl_fd: ctl.raw_fd(),
        fds,
        cpu: ctx.cpus.map(|(_, b)| b),
        peer_arg,
        budget,
    })?;
    let stop = &ctl.block().stop.0;
    let mut body: Box<dyn FnMut() -> Result<Measured, BoxError> + '_> = match prepared {
        Prepared::None => match row.transport {
            Transport::Ring => {
                let (p, len) = ctl.area();
                // SAFETY: the area stays mapped while `ctl` lives (it outlives the
                // endpoint: both are dropped at the end of this function, the body
                // first); the parent takes side A only.
                let mut ep = unsafe { ring::RingEp::attach(p, len, Side::A, deadline)? };
                Box::new(move || body_a(ctx, row, &mut ep, stop))
            }
            Transport::RingBatch => {
                let (p, len) = ctl.area();
                let t = ctx.timing;
                let clock = ctx.clock;
                Box::new(move || {
                    // SAFETY: as above; the parent is the only consumer.
                    let c = unsafe {
                        ring::batch_consume(p, len, stop, &clock, t.warm, t.measure, deadline)?
                    };
                    Ok(Measured::Tput(c))
                })
            }
            _ => {
                let mut ep = FutexEp::new(&ctl.block().futex.0, Side::A, deadline);
                Box::new(move || body_a(ctx, row, &mut ep, stop))
            }
        },
        Prepared::Format(seg) => {
            let cached = row.transport == Transport::FormatCached;
            let mut ep =
                format::FormatEp::new(seg, &ctl, Side::A, row.mode, row.payload, deadline, cached)?;
            Box::new(move || body_a(ctx, row, &mut ep, stop))
        }
        Prepared::Session(mut host, path) => {
            let peer = session::host_accept(&mut host, deadline);
            let _ = std::fs::remove_file(&path);
            let peer = peer?;
            let mut ep = session::SessionEp::new(
                session::Side::Host(host, peer),
                row.mode,
                row.payload,
                deadline,
            )?;
            Box::new(move || body_a(ctx, row, &mut ep, stop))
        }
        Prepared::Stream(p) => {
            drop(p.theirs);
            let mut ep = sock::StreamEp::new(p.mine.0, p.mine.1, row.payload);
            Box::new(move || body_a(ctx, row, &mut ep, stop))
        }
        #[cfg(feature = "iceoryx2")]
        Prepared::Iox(mut ep) => Box::new(move || body_a(ctx, row, &mut *ep, stop)),
    };
    let b = ctl.block();
    let mut alive = || child.check_alive();
    ctl.barrier(1, deadline, &mut alive)?;
    let pre = floor_ping(ctx, &b.floor_pre.0, deadline)?;
    ctl.barrier(2, deadline, &mut alive)?;
    let m = match body() {
        Ok(m) => m,
        Err(e) => {
            drop(body);
            let why = child
                .finish(Duration::from_secs(2))
                .err()
                .map_or(String::new(), |c| format!(" ({c})"));
            return Err(format!("{e}{why}").into());
        }
    };
    ctl.barrier(3, deadline, &mut alive)?;
    let post = floor_ping(ctx, &b.floor_post.0, deadline)?;
    drop(body);
    child.finish(Duration::from_secs(10))?;
    Ok(finish(ctx, row, &pre, m, &post))
}

fn child_main(args: &BenchArgs, spec: &str) -> Result<(), BoxError> {
    let row = Row::parse(spec)?;
    let ctl = Ctl::from_fd(args.ctl_fd.ok_or("--ctl-fd missing")?)?;
    if let Some(c) = args.child_cpu {
        affinity::pin(c)?;
    }
    let deadline = Instant::now() + Duration::from_millis(args.budget_ms.unwrap_or(60_000));
    let fd = |i: usize| -> Result<OwnedFd, BoxError> {
        let raw = *args.fds.get(i).ok_or("missing inherited fd")?;
        // SAFETY: the parent passed this fd for the child to own; each index is
        // adopted once.
        Ok(unsafe { sock::adopt(raw) })
    };
    let stop = &ctl.block().stop.0;
    match row.transport {
        Transport::Ring => {
            let (p, len) = ctl.area();
            // SAFETY: the area stays mapped while `ctl` lives, which outlives `ep`;
            // the child takes side B only.
            let mut ep = unsafe { ring::RingEp::attach(p, len, Side::B, deadline)? };
            child_phases(&ctl, deadline, &mut || body_b(&row, &mut ep, stop))
        }
        Transport::RingBatch => {
            let (p, len) = ctl.area();
            child_phases(&ctl, deadline, &mut || {
                // SAFETY: as above; the child is the only producer.
                unsafe { ring::batch_produce(p, len, stop, deadline) }
            })
        }
        Transport::Futex => {
            let mut ep = FutexEp::new(&ctl.block().futex.0, Side::B, deadline);
            child_phases(&ctl, deadline, &mut || body_b(&row, &mut ep, stop))
        }
        Transport::Format | Transport::FormatCached => {
            let seg = roam_shm::segment::shared::SegmentShared::open(Some(fd(0)?), None)?;
            let mut ep = format::FormatEp::new(
                Arc::new(seg),
                &ctl,
                Side::B,
                row.mode,
                row.payload,
                deadline,
                row.transport == Transport::FormatCached,
            )?;
            child_phases(&ctl, deadline, &mut || body_b(&row, &mut ep, stop))
        }
        Transport::Session => {
            let path = args.peer_arg.as_deref().ok_or("--peer-arg missing")?;
            let guest = session::guest_connect(std::path::Path::new(path))?;
            let mut ep = session::SessionEp::new(
                session::Side::Guest(Box::new(guest)),
                row.mode,
                row.payload,
                deadline,
            )?;
            child_phases(&ctl, deadline, &mut || body_b(&row, &mut ep, stop))
        }
        Transport::Uds => {
            let mut ep = sock::StreamEp::socket(fd(0)?, row.payload)?;
            child_phases(&ctl, deadline, &mut || body_b(&row, &mut ep, stop))
        }
        Transport::Pipe => {
            let mut ep = sock::StreamEp::new(fd(0)?, fd(1)?, row.payload);
            child_phases(&ctl, deadline, &mut || body_b(&row, &mut ep, stop))
        }
        #[cfg(feature = "iceoryx2")]
        Transport::Iceoryx2 => {
            let base = args.peer_arg.as_deref().ok_or("--peer-arg missing")?;
            let mut ep = iox::IoxEp::new(base, Side::B, row.measure, row.payload, deadline)?;
            child_phases(&ctl, deadline, &mut || body_b(&row, &mut ep, stop))
        }
        other => Err(format!("{} has no child role", other.name()).into()),
    }
}

fn child_phases(
    ctl: &Ctl,
    deadline: Instant,
    body: &mut dyn FnMut() -> Result<(), BoxError>,
) -> Result<(), BoxError> {
    let b = ctl.block();
    let mut ok = || Ok(());
    ctl.barrier(1, deadline, &mut ok)?;
    floor_pong(&b.floor_pre.0, deadline)?;
    ctl.barrier(2, deadline, &mut ok)?;
    body()?;
    ctl.barrier(3, deadline, &mut ok)?;
    floor_pong(&b.floor_post.0, deadline)
}

/// In-process rows: the calling thread is side A (pinned to the first CPU), a
/// scoped thread side B (pinned to the second).
fn run_inproc(ctx: &Ctx<'_>, row: &Row) -> Result<RowResult, BoxError> {
    let deadline = Instant::now() + ctx.timing.budget();
    let mem = inproc::RoamMem::new();
    let (mut a, mut b) = inproc::pair(row.transport, &mem, deadline)?;
    let words = (Line(AtomicU64::new(0)), Line(AtomicU64::new(0)));
    let stop = AtomicU32::new(0);
    let barrier = std::sync::Barrier::new(2);
    let cpu_b = ctx.cpus.map(|(_, c)| c);
    std::thread::scope(|s| {
        let h = s.spawn(|| -> Result<(), BoxError> {
            if let Some(c) = cpu_b {
                affinity::pin(c)?;
            }
            barrier.wait();
            floor_pong(&words.0.0, deadline)?;
            barrier.wait();
            body_b(row, &mut b, &stop)?;
            barrier.wait();
            floor_pong(&words.1.0, deadline)
        });
        let mut run = || -> Result<_, BoxError> {
            barrier.wait();
            let pre = floor_ping(ctx, &words.0.0, deadline)?;
            barrier.wait();
            let m = body_a(ctx, row, &mut a, &stop)?;
            barrier.wait();
            let post = floor_ping(ctx, &words.1.0, deadline)?;
            Ok((pre, m, post))
        };
        let r = run();
        let joined = h.join().map_err(|_| "in-process peer thread panicked")?;
        let (pre, m, post) = r?;
        joined?;
        Ok(finish(ctx, row, &pre, m, &post))
    })
}

/// memcpy rate for `len`-byte copies between two buffers (bytes per second).
pub fn memcpy_rate(len: usize, dur: Duration) -> f64 {
    let src = vec![7u8; len];
    let mut dst = vec![0u8; len];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < dur {
        for _ in 0..16 {
            dst.copy_from_slice(std::hint::black_box(&src));
            std::hint::black_box(&mut dst);
        }
        n += 16;
    }
    n as f64 * len as f64 / start.elapsed().as_secs_f64()
}
