//! The control block the two processes of a row share (a memfd inherited by the
//! child): phase barrier, floor words, stop flag, futex word and wait cells, and
//! after the first page an area for the rings of the `ring` rows.

use std::ffi::OsString;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use roam_shm::mmap::ShmRegion;
use roam_shm::waiter::WaitCell;

use crate::BoxError;
use crate::endpoint::Line;

/// Offset of the area after the control block.
pub const AREA_OFFSET: usize = 4096;

/// The shared control block (zeroed memory is its initial state).
#[repr(C)]
#[derive(Debug)]
pub struct CtlBlock {
    /// Phase barrier: each side adds one per phase.
    pub barrier: Line<AtomicU32>,
    /// Floor word for the floor measured before the row.
    pub floor_pre: Line<AtomicU64>,
    /// Floor word for the floor measured after the row.
    pub floor_post: Line<AtomicU64>,
    /// Set by the consumer to end a stream.
    pub stop: Line<AtomicU32>,
    /// The bare futex row's word.
    pub futex: Line<AtomicU32>,
    /// Wait cells: [0] data A→B, [1] space A→B, [2] data B→A, [3] space B→A.
    pub cells: [Line<WaitCell>; 4],
}

const _: () = assert!(size_of::<CtlBlock>() <= AREA_OFFSET);

/// A mapped control region.
#[derive(Debug)]
pub struct Ctl {
    region: ShmRegion,
}

impl Ctl {
    /// Create a zeroed control region with `area` bytes after the control block.
    pub fn create(area: usize) -> Result<Ctl, BoxError> {
        let region = ShmRegion::create("roam-bench-ctl", AREA_OFFSET + area.max(4096))?;
        Ok(Ctl { region })
    }

    /// Map the control region inherited as `fd`.
    pub fn from_fd(fd: RawFd) -> Result<Ctl, BoxError> {
        // SAFETY: the parent passed this fd number for us to own (inherited across exec,
        // used once).
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Ctl {
            region: ShmRegion::from_fd(owned)?,
        })
    }

    /// The fd to hand to the child.
    pub fn raw_fd(&self) -> RawFd {
        self.region.as_raw_fd()
    }

    /// The control block.
    pub fn block(&self) -> &CtlBlock {
        let r = self.region.region();
        // SAFETY: the region is at least AREA_OFFSET bytes, page-aligned, mapped while
        // `self` lives; every field is an atomic (or a WaitCell of atomics) for which
        // zeroed bytes are a valid value, and the peer only ever accesses them
        // atomically.
        unsafe { &*r.as_ptr().cast::<CtlBlock>() }
    }

    /// The area after the control block: pointer and length.
    pub fn area(&self) -> (*mut u8, usize) {
        let r = self.region.region();
        // SAFETY: AREA_OFFSET < region length (create sized it so).
        (
            unsafe { r.as_ptr().add(AREA_OFFSET) },
            r.len() - AREA_OFFSET,
        )
    }

    /// Wait cell `i` (see [`CtlBlock::cells`]).
    pub fn cell(&self, i: usize) -> &WaitCell {
        &self.block().cells[i].0
    }

    /// Two-party barrier: both sides call `barrier(1)`, then `barrier(2)`, … `alive`
    /// is polled now and then (the parent checks that the child still runs).
    pub fn barrier(
        &self,
        phase: u32,
        deadline: Instant,
        alive: &mut dyn FnMut() -> Result<(), BoxError>,
    ) -> Result<(), BoxError> {
        let b = &self.block().barrier.0;
        // AcqRel: everything each side did before the barrier is visible to the
        // other after it.
        b.fetch_add(1, Ordering::AcqRel);
        let mut n = 0u32;
        // Acquire: pairs with the peer's fetch_add.
        while b.load(Ordering::Acquire) < 2 * phase {
            n = n.wrapping_add(1);
            if n % 4096 == 0 {
                alive()?;
                if Instant::now() > deadline {
                    return Err(format!("peer never reached phase {phase}").into());
                }
                std::thread::yield_now();
            }
            std::hint::spin_loop();
        }
        Ok(())
    }
}

/// A running child process and the thread collecting its stderr.
#[derive(Debug)]
pub struct ChildProc {
    child: Child,
    stderr: Option<JoinHandle<String>>,
    watch_stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    watcher: Option<JoinHandle<()>>,
}

/// What the child is told on its command line.
#[derive(Debug)]
pub struct ChildSpec<'a> {
    /// Arguments before the bench's own (`["bench"]` under the CLI).
    pub prefix: &'a [OsString],
    /// The row spec.
    pub row: String,
    /// The control region's fd.
    pub ctl_fd: RawFd,
    /// Other fds to inherit (sockets, pipes, the segment).
    pub fds: Vec<RawFd>,
    /// CPU to pin to.
    pub cpu: Option<usize>,
    /// Transport-specific argument (socket path, service name).
    pub peer_arg: Option<String>,
    /// Give up after this long.
    pub budget: Duration,
}

impl ChildProc {
    /// Re-execute this binary in the child role.
    pub fn spawn(spec: &ChildSpec<'_>) -> Result<ChildProc, BoxError> {
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        cmd.args(spec.prefix)
            .arg("--child")
            .arg(&spec.row)
            .arg("--ctl-fd")
            .arg(spec.ctl_fd.to_string())
            .arg("--budget-ms")
            .arg(spec.budget.as_millis().to_string());
        if !spec.fds.is_empty() {
            let fds: Vec<String> = spec.fds.iter().map(|f| f.to_string()).collect();
            cmd.arg("--fds").arg(fds.join(","));
        }
        if let Some(c) = spec.cpu {
            cmd.arg("--child-cpu").arg(c.to_string());
        }
        if let Some(p) = &spec.peer_arg {
            cmd.arg("--peer-arg").arg(p);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // The inherited fds must survive exec: clear close-on-exec for the spawn and
        // restore it after (rows run one at a time, and nothing else in this process
        // spawns, so no other child can inherit them meanwhile).
        let all: Vec<RawFd> = std::iter::once(spec.ctl_fd)
            .chain(spec.fds.iter().copied())
            .collect();
        for &fd in &all {
            set_cloexec(fd, false)?;
        }
        let spawned = cmd.spawn();
        for &fd in &all {
            set_cloexec(fd, true)?;
        }
        let mut child = spawned?;
        // Watch the child: once it has exited (a zombie, or gone), spinners waiting
        // for it give up at their next check.
        crate::endpoint::PEER_GONE.store(false, Ordering::Relaxed);
        let pid = child.id();
        let watch_stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = watch_stop.clone();
        let watcher = std::thread::spawn(move || {
            // This thread inherited the parent's pinning (and SCHED_FIFO under
            // --realtime): on the parent's CPU it would never run while the parent
            // spins, so let it run anywhere.
            crate::affinity::unpin_all();
            let path = format!("/proc/{pid}/stat");
            // Relaxed: flags only.
            while !stop2.load(Ordering::Relaxed) {
                let state = std::fs::read_to_string(&path).ok().and_then(|s| {
                    s.rsplit_once(')')
                        .and_then(|(_, rest)| rest.trim_start().chars().next())
                });
                if matches!(state, None | Some('Z') | Some('X')) {
                    crate::endpoint::PEER_GONE.store(true, Ordering::Relaxed);
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let mut err = child.stderr.take().ok_or("child stderr not piped")?;
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Ok(ChildProc {
            child,
            stderr: Some(stderr),
            watch_stop,
            watcher: Some(watcher),
        })
    }

    /// Fail if the child has exited (with its stderr in the message).
    pub fn check_alive(&mut self) -> Result<(), BoxError> {
        if let Some(status) = self.child.try_wait()? {
            let err = self.take_stderr();
            return Err(format!("child exited early ({status}): {}", err.trim()).into());
        }
        Ok(())
    }

    fn take_stderr(&mut self) -> String {
        self.stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }

    /// Wait for the child to exit (killing it after `timeout`); fail unless it exited 0.
    pub fn finish(mut self, timeout: Duration) -> Result<(), BoxError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                let err = self.take_stderr();
                if status.success() {
                    return Ok(());
                }
                return Err(format!("child failed ({status}): {}", err.trim()).into());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let err = self.take_stderr();
                return Err(format!("child did not exit; killed: {}", err.trim()).into());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        // Relaxed: a flag only.
        self.watch_stop.store(true, Ordering::Relaxed);
        // Only reached on an error path (finish consumes self): do not leave a spinning
        // child behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // The watcher may notice this child's exit after the row is over; wait for it
        // and clear its flag, or a later row (e.g. an in-process one, which spawns no
        // child to reset it) would think its peer died.
        if let Some(w) = self.watcher.take() {
            let _ = w.join();
        }
        crate::endpoint::PEER_GONE.store(false, Ordering::Relaxed);
    }
}

fn set_cloexec(fd: RawFd, on: bool) -> Result<(), BoxError> {
    // SAFETY: F_GETFD/F_SETFD on an fd this process owns; no memory is passed.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    let new = if on {
        flags | libc::FD_CLOEXEC
    } else {
        flags & !libc::FD_CLOEXEC
    };
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, new) } < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(())
}
