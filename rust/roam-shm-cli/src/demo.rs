//! `roam-shm demo`: a host and several guest processes exchanging messages of mixed
//! sizes (inline, slot and mmap paths), one guest killed with SIGKILL mid-stream and
//! recovered by the host, then the segment inspected to show every slot is free.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Args;

use crate::AnyResult;

#[derive(Args, Clone, Debug)]
pub struct DemoArgs {
    /// Guest processes that run to completion.
    #[arg(long, default_value_t = 3)]
    guests: u32,
    /// Messages per guest.
    #[arg(long, default_value_t = 20_000)]
    count: u64,
    /// Largest message in bytes (sizes are log-uniform from 0).
    #[arg(long, default_value_t = 1 << 20)]
    max_size: usize,
}

fn me() -> AnyResult<PathBuf> {
    Ok(std::env::current_exe()?)
}

fn wait_for(path: &std::path::Path, timeout: Duration) -> AnyResult<()> {
    let t = Instant::now();
    while !path.exists() {
        if t.elapsed() > timeout {
            return Err(format!("{} did not appear", path.display()).into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

fn guest(
    socket: &std::path::Path,
    count: u64,
    max_size: usize,
    seed: u64,
    pace_us: u64,
) -> AnyResult<Child> {
    Ok(Command::new(me()?)
        .args(["guest", "--socket"])
        .arg(socket)
        .args([
            "--count",
            &count.to_string(),
            "--size",
            "0",
            "--max-size",
            &max_size.to_string(),
        ])
        .args([
            "--seed",
            &seed.to_string(),
            "--pace-us",
            &pace_us.to_string(),
        ])
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()?)
}

pub fn run(a: &DemoArgs) -> AnyResult<()> {
    let dir = std::env::temp_dir().join(format!("roam-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let socket = dir.join("host.sock");
    let seg = PathBuf::from(format!("/dev/shm/roam-demo-{}", std::process::id()));
    println!(
        "demo: starting an echo host (segment {}) and {} guest processes",
        seg.display(),
        a.guests + 1
    );
    let mut host = Command::new(me()?)
        .args(["host", "--echo", "--socket"])
        .arg(&socket)
        .arg("--segment")
        .arg(&seg)
        .args(["--heartbeat-ms", "500"])
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()?;
    let result = (|| -> AnyResult<()> {
        wait_for(&socket, Duration::from_secs(10))?;
        let start = Instant::now();
        let mut kids = Vec::new();
        for i in 0..a.guests {
            kids.push(guest(&socket, a.count, a.max_size, 100 + u64::from(i), 0)?);
        }
        // The victim sends slowly so the kill lands mid-stream with slots in flight.
        let mut victim = guest(&socket, a.count, a.max_size, 99, 200)?;
        std::thread::sleep(Duration::from_millis(400));
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(victim.id() as libc::pid_t, libc::SIGKILL) };
        victim.wait()?;
        println!(
            "demo: killed guest process {} with SIGKILL mid-stream",
            victim.id()
        );
        let mut ok = true;
        for mut k in kids {
            ok &= k.wait()?.success();
        }
        let elapsed = start.elapsed();
        if !ok {
            return Err("a guest failed".into());
        }
        println!(
            "demo: {} guests x {} messages (0 B..{} B, inline/slot/mmap) echoed and verified in {:.2} s: {:.0} msg/s",
            a.guests,
            a.count,
            a.max_size,
            elapsed.as_secs_f64(),
            (u64::from(a.guests) * a.count * 2) as f64 / elapsed.as_secs_f64()
        );
        println!("demo: segment after the run:");
        let st = Command::new(me()?)
            .args(["segment", "inspect"])
            .arg(&seg)
            .status()?;
        if !st.success() {
            return Err("inspect failed".into());
        }
        Ok(())
    })();
    let t = Instant::now();
    while host.try_wait()?.is_none() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    if host.try_wait()?.is_none() {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(host.id() as libc::pid_t, libc::SIGTERM) };
        host.wait()?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    result
}
