//! Markdown and TSV output, and the check of the targets.

use std::fmt::Write as _;
use std::time::Duration;

use crate::RowResult;
use crate::clock::Clock;
use crate::rows::{Measure, Mode, Row, Transport, human_bytes};

/// Where and how a run happened.
#[derive(Debug, Clone)]
pub struct Environment {
    /// CPU model.
    pub cpu: String,
    /// Online CPUs.
    pub ncpu: usize,
    /// Kernel release.
    pub kernel: String,
    /// Load average at the start.
    pub load: String,
    /// UTC date and time.
    pub date: String,
    /// Time source.
    pub clock: String,
    /// `--quick`?
    pub quick: bool,
    /// iceoryx2 rows included?
    pub iceoryx2: bool,
    /// The two CPUs used.
    pub cpus: Option<(usize, usize)>,
    /// Git revision, if the caller set `ROAM_BENCH_GIT`.
    pub git: Option<String>,
    /// The scheduling priority the run used.
    pub nice: String,
}

impl Environment {
    /// Look around.
    pub fn capture(
        clock: &Clock,
        quick: bool,
        iceoryx2: bool,
        cpus: Option<(usize, usize)>,
    ) -> Environment {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map_or_else(|| "unknown".into(), |s| s.trim().to_string());
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        let load = read("/proc/loadavg")
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        Environment {
            cpu,
            ncpu: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel: read("/proc/sys/kernel/osrelease"),
            load,
            date: utc_now(),
            clock: clock.describe(),
            quick,
            iceoryx2,
            cpus,
            git: std::env::var("ROAM_BENCH_GIT")
                .ok()
                .filter(|s| !s.is_empty()),
            nice: "unchanged".into(),
        }
    }
}

/// `YYYY-MM-DD HH:MM UTC` from the system clock (civil-from-days, no dependency).
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

/// `123 ns`, `12.3 µs`, `1.23 ms`.
pub fn fmt_ns(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.0} ns")
    } else if ns < 10_000.0 {
        format!("{:.2} µs", ns / 1e3)
    } else if ns < 1_000_000.0 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{:.2} ms", ns / 1e6)
    }
}

/// `215 M/s`, `38.5 K/s`.
pub fn fmt_rate(r: f64) -> String {
    if r >= 1e9 {
        format!("{:.2} G/s", r / 1e9)
    } else if r >= 1e6 {
        format!("{:.1} M/s", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1} K/s", r / 1e3)
    } else {
        format!("{r:.0} /s")
    }
}

/// GB/s (10^9 bytes).
pub fn fmt_gbps(bps: f64) -> String {
    let g = bps / 1e9;
    if g >= 10.0 {
        format!("{g:.1}")
    } else if g >= 0.1 {
        format!("{g:.2}")
    } else {
        format!("{g:.3}")
    }
}

fn floor_cell(r: &RowResult) -> String {
    match (r.floor_pre, r.floor_post) {
        (Some(a), Some(b)) => {
            let mark = if r.floor_drift() > 1.5 { " ⚠" } else { "" };
            format!("{:.0} → {:.0} ns{mark}", a.p50, b.p50)
        }
        _ => "–".into(),
    }
}

/// A one-line summary (progress output).
pub fn one_line(r: &RowResult) -> String {
    let what = r.row.to_string();
    if let Some(e) = &r.error {
        return format!("{what}: FAILED: {e}");
    }
    let floor = r.floor_ns().map_or("–".into(), fmt_ns);
    if let Some(l) = r.lat {
        format!(
            "{what}: p50 {} p99 {} ({:.2}x floor {floor})",
            fmt_ns(l.p50),
            fmt_ns(l.p99),
            r.lat_ratio().unwrap_or(f64::NAN)
        )
    } else if let Some(t) = r.tput {
        format!(
            "{what}: {} {} GB/s (floor {floor})",
            fmt_rate(t.msgs_per_s),
            fmt_gbps(t.bytes_per_s)
        )
    } else {
        what
    }
}

fn find(
    results: &[RowResult],
    m: Measure,
    t: Transport,
    mode: Mode,
    payload: usize,
) -> Option<&RowResult> {
    results
        .iter()
        .find(|r| r.row == Row::new(m, t, mode, payload) && r.error.is_none())
}

/// Status of one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Met in this run.
    Met,
    /// Missed in this run.
    Missed,
    /// Its rows did not run.
    NotMeasured,
}

impl Status {
    fn cell(self) -> &'static str {
        match self {
            Status::Met => "**met**",
            Status::Missed => "**missed**",
            Status::NotMeasured => "not measured",
        }
    }
}

/// One line of the targets table.
#[derive(Debug, Clone)]
pub struct Check {
    /// The target.
    pub target: String,
    /// What was measured.
    pub measured: String,
    /// Met or not.
    pub status: Status,
}

/// Evaluate the targets against a run.
pub fn targets(results: &[RowResult]) -> Vec<Check> {
    use Measure::{Latency as L, Throughput as T};
    let mut out = Vec::new();
    let nm = |target: &str| Check {
        target: target.into(),
        measured: "–".into(),
        status: Status::NotMeasured,
    };

    // 1. Spin-mode one-way p50 <= 1.5x the adjacent floor.
    for (t, what) in [
        (Transport::Ring, "SpscRing"),
        (Transport::Format, "v7 frames, no doorbell"),
        (Transport::Session, "session Tx/Rx"),
    ] {
        let target = format!("spin one-way p50 ≤ 1.5× floor, 8 B ({what})");
        match find(results, L, t, Mode::Spin, 8).and_then(|r| Some((r, r.lat_ratio()?))) {
            Some((r, ratio)) => out.push(Check {
                target,
                measured: format!(
                    "{} = {ratio:.2}× floor ({})",
                    fmt_ns(r.lat.map_or(0.0, |l| l.p50)),
                    fmt_ns(r.floor_ns().unwrap_or(0.0))
                ),
                status: if ratio <= 1.5 {
                    Status::Met
                } else {
                    Status::Missed
                },
            }),
            None => out.push(nm(&target)),
        }
    }

    // 2. Below iceoryx2 in the same run (every payload size both ran).
    for (t, what) in [
        (Transport::Format, "v7 frames, no doorbell"),
        (Transport::Session, "session Tx/Rx"),
    ] {
        let target = format!("spin one-way p50 below iceoryx2 ({what})");
        let mut wins = 0;
        let mut total = 0;
        let mut detail = Vec::new();
        for r in results.iter().filter(|r| {
            r.row.measure == L
                && r.row.transport == t
                && r.row.mode == Mode::Spin
                && r.error.is_none()
        }) {
            let Some(ice) = find(results, L, Transport::Iceoryx2, Mode::Spin, r.row.payload) else {
                continue;
            };
            let (Some(ours), Some(theirs)) = (r.lat, ice.lat) else {
                continue;
            };
            total += 1;
            if ours.p50 < theirs.p50 {
                wins += 1;
            }
            detail.push(format!(
                "{}: {:.2}×",
                human_bytes(r.row.payload),
                ours.p50 / theirs.p50
            ));
        }
        if total == 0 {
            out.push(nm(&target));
        } else {
            out.push(Check {
                target,
                measured: format!(
                    "lower at {wins} of {total} sizes (ours ÷ iceoryx2: {})",
                    detail.join(", ")
                ),
                status: if wins == total {
                    Status::Met
                } else {
                    Status::Missed
                },
            });
        }
    }

    // 3. >= 100 M msg/s for batched 64-byte messages.
    let target = "≥ 100 M msg/s, batched 64-byte messages (SpscRing)";
    match find(results, T, Transport::RingBatch, Mode::Spin, 64).and_then(|r| r.tput) {
        Some(tp) => out.push(Check {
            target: target.into(),
            measured: format!(
                "{} ({} GB/s)",
                fmt_rate(tp.msgs_per_s),
                fmt_gbps(tp.bytes_per_s)
            ),
            status: if tp.msgs_per_s >= 100e6 {
                Status::Met
            } else {
                Status::Missed
            },
        }),
        None => out.push(nm(target)),
    }

    // 4. >= 10 GB/s for 1 MiB zero-copy slots.
    for (t, what) in [
        (Transport::Format, "v7 frames, no doorbell"),
        (Transport::Session, "session Tx/Rx"),
    ] {
        let target = format!("≥ 10 GB/s, 1 MiB slots ({what})");
        match find(results, T, t, Mode::Spin, 1 << 20).and_then(|r| r.tput) {
            Some(tp) => out.push(Check {
                target,
                measured: format!(
                    "{} GB/s ({}; memcpy {} GB/s)",
                    fmt_gbps(tp.bytes_per_s),
                    fmt_rate(tp.msgs_per_s),
                    fmt_gbps(tp.memcpy_bytes_per_s)
                ),
                status: if tp.bytes_per_s >= 10e9 {
                    Status::Met
                } else {
                    Status::Missed
                },
            }),
            None => out.push(nm(&target)),
        }
    }

    // 5. Blocking wake-up p50 within 2x of a bare futex ping-pong.
    let futex = find(results, L, Transport::Futex, Mode::Block, 8).and_then(|r| r.lat);
    for (t, mode, what) in [
        (Transport::Format, Mode::Wake, "WaitCell, receiver asleep"),
        (Transport::Format, Mode::Wait, "WaitCell, 20 µs spin first"),
        (Transport::Session, Mode::Doorbell, "session doorbell"),
    ] {
        let target = format!("blocking wake-up p50 ≤ 2× bare futex, 8 B ({what})");
        match (find(results, L, t, mode, 8).and_then(|r| r.lat), futex) {
            (Some(ours), Some(f)) => {
                let ratio = ours.p50 / f.p50;
                out.push(Check {
                    target,
                    measured: format!(
                        "{} vs futex {} = {ratio:.2}×",
                        fmt_ns(ours.p50),
                        fmt_ns(f.p50)
                    ),
                    status: if ratio <= 2.0 {
                        Status::Met
                    } else {
                        Status::Missed
                    },
                });
            }
            _ => out.push(nm(&target)),
        }
    }
    out
}

/// Observations computed from the numbers (what the doorbell costs, and so on).
fn observations(results: &[RowResult]) -> Vec<String> {
    use Measure::Latency as L;
    let mut out = Vec::new();
    let lat = |t, m, p| find(results, L, t, m, p).and_then(|r| r.lat);
    if let (Some(s), Some(f)) = (
        lat(Transport::Session, Mode::Spin, 8),
        lat(Transport::Format, Mode::Spin, 8),
    ) {
        out.push(format!(
            "The session adds {} per one-way hop over the same frames without the doorbell \
             (8 B, spin: {} vs {}). Each message rings the doorbell twice (the sender's commit \
             and the receiver's release): two socket `send`s, whatever the receiver does.",
            fmt_ns(s.p50 - f.p50),
            fmt_ns(s.p50),
            fmt_ns(f.p50)
        ));
    }
    if let (Some(w), Some(f)) = (
        lat(Transport::Format, Mode::Wait, 8),
        lat(Transport::Format, Mode::Wake, 8),
    ) {
        out.push(format!(
            "Spinning 20 µs before sleeping turns the {} futex wake-up into {} (8 B one-way).",
            fmt_ns(f.p50),
            fmt_ns(w.p50)
        ));
    }
    let drifted = results.iter().filter(|r| r.floor_drift() > 1.5).count();
    if drifted > 0 {
        out.push(format!(
            "{drifted} row(s) saw the floor move by more than 1.5× between before and after \
             (marked ⚠) even after one re-run: their ratios are less certain."
        ));
    }
    out
}

/// The results part of the report: environment, tables, targets.
pub fn results_markdown(env: &Environment, results: &[RowResult], elapsed: Duration) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Run\n");
    let _ = writeln!(
        s,
        "- {} run, {} rows in {:.0} s, {}",
        if env.quick {
            "quick (`--quick`)"
        } else {
            "full"
        },
        results.len(),
        elapsed.as_secs_f64(),
        env.date
    );
    let _ = writeln!(
        s,
        "- CPU: {} ({} online CPUs); kernel {}",
        env.cpu, env.ncpu, env.kernel
    );
    let _ = writeln!(
        s,
        "- processes pinned to CPUs {}; nice {}; load average at start {}",
        env.cpus
            .map_or("(not pinned: one CPU)".into(), |(a, b)| format!(
                "{a} and {b}"
            )),
        env.nice,
        env.load
    );
    let _ = writeln!(s, "- clock: {}", env.clock);
    if !env.iceoryx2 {
        let _ = writeln!(
            s,
            "- iceoryx2 rows: not in this build (run `scripts/bench.sh`, which enables the `iceoryx2` feature)"
        );
    }
    if let Some(g) = &env.git {
        let _ = writeln!(s, "- revision: {g}");
    }

    let _ = writeln!(s, "\n## One-way latency\n");
    let _ = writeln!(
        s,
        "Half of each ping-pong round trip; warm-up excluded. **÷ floor** is p50 over the \
         floor p50 measured right before and right after the row (mean of the two).\n"
    );
    let _ = writeln!(
        s,
        "| transport | mode | payload | p50 | p90 | p99 | p99.9 | max | floor p50 (before → after) | p50 ÷ floor |"
    );
    let _ = writeln!(s, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|");
    for r in results.iter().filter(|r| r.row.measure == Measure::Latency) {
        let (t, m, p) = (
            r.row.transport.label(),
            r.row.mode.label(),
            human_bytes(r.row.payload),
        );
        match (&r.error, r.lat) {
            (Some(e), _) => {
                let _ = writeln!(
                    s,
                    "| {t} | {m} | {p} | failed: {} | | | | | | |",
                    e.replace('|', "/")
                );
            }
            (None, Some(l)) => {
                let _ = writeln!(
                    s,
                    "| {t} | {m} | {p} | {} | {} | {} | {} | {} | {} | {:.2}× |",
                    fmt_ns(l.p50),
                    fmt_ns(l.p90),
                    fmt_ns(l.p99),
                    fmt_ns(l.p999),
                    fmt_ns(l.max),
                    floor_cell(r),
                    r.lat_ratio().unwrap_or(f64::NAN)
                );
            }
            _ => {}
        }
    }

    let _ = writeln!(s, "\n## Throughput\n");
    let _ = writeln!(
        s,
        "One-way stream, sender writes every payload byte, receiver checks each sequence \
         number. **msgs per floor hop** = messages/s × the adjacent floor's one-way p50 (how \
         many messages pass in the time one cache line crosses once); **÷ memcpy** = payload \
         GB/s over a single-thread memcpy of the same size in the same run.\n"
    );
    let _ = writeln!(
        s,
        "| transport | mode | payload | msg/s | GB/s | msgs per floor hop | ÷ memcpy | floor p50 (before → after) |"
    );
    let _ = writeln!(s, "|---|---|--:|--:|--:|--:|--:|--:|");
    for r in results
        .iter()
        .filter(|r| r.row.measure == Measure::Throughput)
    {
        let (t, m, p) = (
            r.row.transport.label(),
            r.row.mode.label(),
            human_bytes(r.row.payload),
        );
        match (&r.error, r.tput) {
            (Some(e), _) => {
                let _ = writeln!(
                    s,
                    "| {t} | {m} | {p} | failed: {} | | | | |",
                    e.replace('|', "/")
                );
            }
            (None, Some(tp)) => {
                let hop = r.floor_ns().map_or(f64::NAN, |f| tp.msgs_per_s * f / 1e9);
                let _ = writeln!(
                    s,
                    "| {t} | {m} | {p} | {} | {} | {hop:.2} | {:.2}× | {} |",
                    fmt_rate(tp.msgs_per_s),
                    fmt_gbps(tp.bytes_per_s),
                    tp.bytes_per_s / tp.memcpy_bytes_per_s,
                    floor_cell(r)
                );
            }
            _ => {}
        }
    }

    let _ = writeln!(s, "\n## Targets (issue 6)\n");
    let _ = writeln!(s, "| target | this run | status |");
    let _ = writeln!(s, "|---|---|---|");
    for c in targets(results) {
        let _ = writeln!(s, "| {} | {} | {} |", c.target, c.measured, c.status.cell());
    }
    let obs = observations(results);
    if !obs.is_empty() {
        let _ = writeln!(s, "\nComputed from this run:\n");
        for o in obs {
            let _ = writeln!(s, "- {o}");
        }
    }
    s
}

/// The whole `docs/benchmarks.md`: method, then the results of the run, with the
/// plot.
pub fn document(results_md: &str, png: &str) -> String {
    let method = include_str!("method.md");
    format!(
        "<!-- Generated by scripts/bench.sh (roam-shm-bench --doc); edit rust/roam-shm-bench/src/method.md, not this file. -->\n\
         {method}\n# Results of the last full run\n\n![One-way latency percentiles and throughput against payload size]({png})\n\n{results_md}"
    )
}

/// Tab-separated results (one line per row) for other tools.
pub fn tsv(results: &[RowResult]) -> String {
    let mut s = String::from(
        "row\ttransport\tmode\tpayload\tp50_ns\tp90_ns\tp99_ns\tp999_ns\tmax_ns\tsamples\tfloor_pre_ns\tfloor_post_ns\tmsgs_per_s\tbytes_per_s\tmemcpy_bytes_per_s\tattempts\terror\n",
    );
    let o = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x:.1}"));
    for r in results {
        let l = r.lat;
        let t = r.tput;
        let _ = writeln!(
            s,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            r.row.spec(),
            r.row.transport.name(),
            r.row.mode.name(),
            r.row.payload,
            o(l.map(|l| l.p50)),
            o(l.map(|l| l.p90)),
            o(l.map(|l| l.p99)),
            o(l.map(|l| l.p999)),
            o(l.map(|l| l.max)),
            l.map_or(String::new(), |l| l.samples.to_string()),
            o(r.floor_pre.map(|f| f.p50)),
            o(r.floor_post.map(|f| f.p50)),
            o(t.map(|t| t.msgs_per_s)),
            o(t.map(|t| t.bytes_per_s)),
            o(t.map(|t| t.memcpy_bytes_per_s)),
            r.attempts,
            r.error.as_deref().unwrap_or("").replace(['\t', '\n'], " ")
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(fmt_ns(123.4), "123 ns");
        assert_eq!(fmt_ns(1234.0), "1.23 µs");
        assert_eq!(fmt_ns(2_500_000.0), "2.50 ms");
        assert_eq!(fmt_rate(215e6), "215.0 M/s");
        assert!(utc_now().ends_with("UTC"));
    }
}
