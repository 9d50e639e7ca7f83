//! The `modelcycle` command: the controller, its CRDs, and the simulator.

use std::process::ExitCode;

use clap::Parser;
use modelcycle::cli::{Cli, Command};

#[cfg(feature = "heap-profile")]
#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

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
