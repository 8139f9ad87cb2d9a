//! What a run measures: one [`Row`] per (measure, transport, mode, payload size).
//!
//! A row is also the child's role argument (`--child lat/format/spin/4096`), so it
//! round-trips through [`Row::spec`] and [`Row::parse`].

use std::fmt;

/// Latency (ping-pong) or throughput (one-way stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// One-way latency: half of each ping-pong round trip.
    Latency,
    /// Messages per second and bytes per second, one way.
    Throughput,
}

/// What carries the messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `SpscRing<u64>` (8-byte entries) over a memfd, one ring per direction.
    Ring,
    /// `SpscRing<[u8; 64]>` over a memfd, `push_batch`/`pop_batch` of 64 entries.
    RingBatch,
    /// roam v7 frames over the segment's BipBuffers and slot pool, without the
    /// doorbell: inline up to the inline threshold, slot-ref above.
    Format,
    /// [`Format`](Self::Format) with process-local cursors (a prototype of a proposed
    /// core change: the BipBuffer producer keeps its `write` and a cached `read`, the
    /// consumer its `read`, as `SpscRing` does; the bytes in shared memory are the same).
    FormatCached,
    /// The session layer: `Host`/`Guest` links (`Tx::reserve_raw`/`commit_reserved`,
    /// `Rx::try_recv_raw`/`release`), doorbell rung on every commit and release.
    Session,
    /// A futex word: every message is a `FUTEX_WAKE` and the receiver sleeps in
    /// `FUTEX_WAIT` at once (no spinning): the bare wake-up cost.
    Futex,
    /// A `SOCK_STREAM` Unix domain socket pair, blocking `write`/`read`.
    Uds,
    /// Two pipes (one per direction), blocking `write`/`read`.
    Pipe,
    /// iceoryx2 publish-subscribe, zero-copy loan (`loan_slice_uninit`).
    Iceoryx2,
    /// In-process (two threads): roam `SpscRing<u64>` over heap memory.
    InprocRoam,
    /// In-process: `rtrb::RingBuffer<u64>`.
    InprocRtrb,
    /// In-process: `crossbeam_channel::bounded::<u64>`.
    InprocCrossbeam,
}

/// How a receiver waits for the next message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Busy-polling.
    Spin,
    /// `WaitCell::wait` with the default 20 µs spin, then `FUTEX_WAIT`.
    Wait,
    /// `WaitCell::wait` without spinning: the receiver is asleep when the message
    /// comes, so every message pays a futex wake-up.
    Wake,
    /// The session's doorbell (`poll` + `recv` on its socket).
    Doorbell,
    /// Blocking system calls (sockets, pipes, bare futex).
    Block,
}

/// One measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    /// Latency or throughput.
    pub measure: Measure,
    /// The transport.
    pub transport: Transport,
    /// How receivers wait.
    pub mode: Mode,
    /// Payload bytes per message (>= 8: the first 8 bytes carry a sequence number).
    pub payload: usize,
}

const TRANSPORTS: &[(Transport, &str)] = &[
    (Transport::Ring, "ring"),
    (Transport::RingBatch, "ring-batch"),
    (Transport::Format, "format"),
    (Transport::FormatCached, "format-cached"),
    (Transport::Session, "session"),
    (Transport::Futex, "futex"),
    (Transport::Uds, "uds"),
    (Transport::Pipe, "pipe"),
    (Transport::Iceoryx2, "iceoryx2"),
    (Transport::InprocRoam, "inproc-roam"),
    (Transport::InprocRtrb, "inproc-rtrb"),
    (Transport::InprocCrossbeam, "inproc-crossbeam"),
];

const MODES: &[(Mode, &str)] = &[
    (Mode::Spin, "spin"),
    (Mode::Wait, "wait"),
    (Mode::Wake, "wake"),
    (Mode::Doorbell, "doorbell"),
    (Mode::Block, "block"),
];

impl Transport {
    /// Short name (used in row specs).
    pub fn name(self) -> &'static str {
        TRANSPORTS
            .iter()
            .find(|(t, _)| *t == self)
            .map_or("?", |(_, n)| n)
    }

    /// Name for tables and plots.
    pub fn label(self) -> &'static str {
        match self {
            Transport::Ring => "roam SpscRing (memfd)",
            Transport::RingBatch => "roam SpscRing, batches of 64",
            Transport::Format => "roam v7 frames, no doorbell",
            Transport::FormatCached => "v7 frames, cached cursors (prototype)",
            Transport::Session => "roam session (Tx/Rx)",
            Transport::Futex => "bare futex",
            Transport::Uds => "Unix socket",
            Transport::Pipe => "pipe",
            Transport::Iceoryx2 => "iceoryx2 pub-sub (loan)",
            Transport::InprocRoam => "in-proc roam SpscRing",
            Transport::InprocRtrb => "in-proc rtrb",
            Transport::InprocCrossbeam => "in-proc crossbeam-channel",
        }
    }

    /// Two threads of one process rather than two processes.
    pub fn in_process(self) -> bool {
        matches!(
            self,
            Transport::InprocRoam | Transport::InprocRtrb | Transport::InprocCrossbeam
        )
    }

    /// Ours (as opposed to a baseline).
    pub fn is_roam(self) -> bool {
        matches!(
            self,
            Transport::Ring
                | Transport::RingBatch
                | Transport::Format
                | Transport::FormatCached
                | Transport::Session
                | Transport::InprocRoam
        )
    }
}

impl Mode {
    /// Short name (used in row specs).
    pub fn name(self) -> &'static str {
        MODES
            .iter()
            .find(|(m, _)| *m == self)
            .map_or("?", |(_, n)| n)
    }

    /// Name for tables.
    pub fn label(self) -> &'static str {
        match self {
            Mode::Spin => "spin",
            Mode::Wait => "WaitCell (20 µs spin, then futex)",
            Mode::Wake => "WaitCell, no spin (futex wake per msg)",
            Mode::Doorbell => "doorbell (socket)",
            Mode::Block => "blocking syscalls",
        }
    }
}

impl Row {
    /// A row.
    pub fn new(measure: Measure, transport: Transport, mode: Mode, payload: usize) -> Row {
        Row {
            measure,
            transport,
            mode,
            payload,
        }
    }

    /// `lat/format/spin/4096`.
    pub fn spec(&self) -> String {
        let m = match self.measure {
            Measure::Latency => "lat",
            Measure::Throughput => "tput",
        };
        format!(
            "{m}/{}/{}/{}",
            self.transport.name(),
            self.mode.name(),
            self.payload
        )
    }

    /// Inverse of [`spec`](Self::spec).
    pub fn parse(s: &str) -> Result<Row, String> {
        let parts: Vec<&str> = s.split('/').collect();
        let [m, t, mode, p] = parts.as_slice() else {
            return Err(format!("bad row spec `{s}`"));
        };
        let measure = match *m {
            "lat" => Measure::Latency,
            "tput" => Measure::Throughput,
            _ => return Err(format!("bad measure in `{s}`")),
        };
        let transport = TRANSPORTS
            .iter()
            .find(|(_, n)| n == t)
            .map(|(t, _)| *t)
            .ok_or_else(|| format!("bad transport in `{s}`"))?;
        let mode = MODES
            .iter()
            .find(|(_, n)| n == mode)
            .map(|(m, _)| *m)
            .ok_or_else(|| format!("bad mode in `{s}`"))?;
        let payload = p
            .parse()
            .map_err(|e| format!("bad payload in `{s}`: {e}"))?;
        if payload < 8 {
            return Err(format!("payload must be >= 8 bytes in `{s}`"));
        }
        Ok(Row::new(measure, transport, mode, payload))
    }

    /// Transport and mode for tables, e.g. `roam session (Tx/Rx), spin`.
    pub fn series(&self) -> String {
        format!("{} · {}", self.transport.label(), self.mode.name())
    }
}

impl fmt::Display for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            match self.measure {
                Measure::Latency => "latency",
                Measure::Throughput => "throughput",
            },
            self.series(),
            human_bytes(self.payload)
        )
    }
}

/// `8 B`, `4 KiB`, `1 MiB`.
pub fn human_bytes(n: usize) -> String {
    if n >= 1 << 20 && n % (1 << 20) == 0 {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n % (1 << 10) == 0 {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} B")
    }
}

/// The payload sweep: 8 B to 4 MiB in steps of 8x.
pub const FULL_SIZES: &[usize] = &[8, 64, 512, 4 << 10, 32 << 10, 256 << 10, 1 << 20, 4 << 20];

/// The `--quick` sweep.
pub const QUICK_SIZES: &[usize] = &[8, 4 << 10, 1 << 20];

/// Every row of a run, in the order they run.
pub fn plan(quick: bool, iceoryx2: bool) -> Vec<Row> {
    use Measure::{Latency as L, Throughput as T};
    use Mode::*;
    use Transport::*;
    let sizes = if quick { QUICK_SIZES } else { FULL_SIZES };
    // Blocking modes at a few sizes (their cost is the wake-up, not the bytes).
    let few: &[usize] = if quick { &[8] } else { &[8, 4 << 10, 1 << 20] };
    let mut rows = Vec::new();
    let sweep = |rows: &mut Vec<Row>, m: Measure, t: Transport, mode: Mode, s: &[usize]| {
        rows.extend(s.iter().map(|&p| Row::new(m, t, mode, p)));
    };

    // Latency.
    sweep(&mut rows, L, Ring, Spin, &[8]);
    sweep(&mut rows, L, Format, Spin, sizes);
    sweep(&mut rows, L, FormatCached, Spin, &[8, 64]);
    sweep(&mut rows, L, Session, Spin, sizes);
    if iceoryx2 {
        sweep(&mut rows, L, Iceoryx2, Spin, sizes);
    }
    sweep(&mut rows, L, Futex, Block, &[8]);
    sweep(&mut rows, L, Format, Wake, few);
    sweep(&mut rows, L, Format, Wait, few);
    sweep(&mut rows, L, Session, Doorbell, few);
    sweep(&mut rows, L, Uds, Block, sizes);
    sweep(&mut rows, L, Pipe, Block, sizes);
    sweep(&mut rows, L, InprocRoam, Spin, &[8]);
    sweep(&mut rows, L, InprocRtrb, Spin, &[8]);
    sweep(&mut rows, L, InprocCrossbeam, Spin, &[8]);

    // Throughput.
    sweep(&mut rows, T, RingBatch, Spin, &[64]);
    sweep(&mut rows, T, Ring, Spin, &[8]);
    sweep(&mut rows, T, Format, Spin, sizes);
    sweep(&mut rows, T, FormatCached, Spin, &[8, 64]);
    sweep(&mut rows, T, Format, Wait, few);
    sweep(&mut rows, T, Session, Spin, sizes);
    sweep(&mut rows, T, Session, Doorbell, few);
    if iceoryx2 {
        sweep(&mut rows, T, Iceoryx2, Spin, sizes);
    }
    sweep(&mut rows, T, Uds, Block, sizes);
    sweep(&mut rows, T, Pipe, Block, sizes);
    sweep(&mut rows, T, InprocRoam, Spin, &[8]);
    sweep(&mut rows, T, InprocRtrb, Spin, &[8]);
    sweep(&mut rows, T, InprocCrossbeam, Spin, &[8]);
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_round_trip() {
        for r in plan(false, true) {
            assert_eq!(Row::parse(&r.spec()).unwrap(), r);
        }
        assert!(Row::parse("lat/format/spin/4").is_err());
        assert!(Row::parse("lat/nope/spin/8").is_err());
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(8), "8 B");
        assert_eq!(human_bytes(4096), "4 KiB");
        assert_eq!(human_bytes(4 << 20), "4 MiB");
    }
}
