//! `roam-shm-bench`: the full benchmark run (the `roam-shm bench` subcommand runs
//! the same harness; this binary is the one built with the `iceoryx2` feature by
//! `scripts/bench.sh`).

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "roam-shm-bench",
    version,
    about = "roam-shm latency/throughput benchmarks against the raw floor and baselines"
)]
struct Cli {
    #[command(flatten)]
    args: roam_shm_bench::BenchArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match roam_shm_bench::run(&cli.args, &[]) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roam-shm-bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}
