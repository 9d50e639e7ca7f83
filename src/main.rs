//! The `modelcycle` command: the controller, its CRDs, and the simulator.

use std::process::ExitCode;

use clap::Parser;
use modelcycle::cli::{Cli, Command};

#[cfg(feature = "heap-profile")]
#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// jemalloc for the controller and the simulator alike. The core makes many small, short-lived
/// allocations: they cost glibc's allocator (and musl's, in the image) a quarter more of the
/// simulator's instructions, and jemalloc keeps no more memory than glibc's in the controller
/// (mimalloc kept half as much again). See docs/design.md, "The allocator is jemalloc".
#[cfg(not(feature = "heap-profile"))]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    #[cfg(feature = "heap-profile")]
    let _profiler = modelcycle::heap_profile::start();
    let cli = Cli::parse();
    match cli.command {
        Command::Crd(args) => modelcycle::cli::crd(&args),
        Command::Simulate(args) => modelcycle::cli::simulate(&args),
        Command::Backtest(args) => modelcycle::commands::backtest(&args),
        Command::Advise(args) => modelcycle::commands::advise(&args),
        Command::Version => {
            println!("modelcycle {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Run(args) => modelcycle::kube::run::main(args),
    }
}
