//! The `tailguard` command.
//!
//! `tailguard demo` runs the experiment, `serve` puts the workload behind HTTP, `cluster` runs
//! several serve nodes and one distributed backup, `observe` watches
//! this machine's scheduling latency live, `sim` explains tails, `restore` checks a backup.
// One call into the allocator (`arenas`), in a module of its own.
#![deny(unsafe_code)]
// A binary: `pub` marks each module's interface to the rest of the crate.
#![allow(unreachable_pub)]

mod arenas;
mod capacity;
mod choices;
mod cluster;
mod demo;
mod error;
mod logging;
mod report;
mod restore;
mod serve;
mod signals;
mod workload;

mod duration;
mod observe;
mod sim;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Keeps a service's tail latency safe from its own background work.
#[derive(Debug, Parser)]
#[command(name = "tailguard", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the foreground-vs-backup experiment in every mode and report it side by side.
    Demo(demo::DemoArgs),
    /// Watch scheduling latency, run-queue depth and CPU pressure live, once per interval.
    Observe(observe::ObserveArgs),
    /// Simulate how per-hop scheduling tails show up in requests that cross many tasks.
    Sim(sim::SimArgs),
    /// Serve the key-value workload and its elastic jobs over HTTP, with metrics and live charts.
    Serve(serve::ServeArgs),
    /// Run several serve nodes of different CPU capacity under load and one distributed backup
    /// across them (optionally killing a node mid-backup and resuming its range).
    Cluster(cluster::ClusterArgs),
    /// Verify a backup file written by `demo --backup-dir` against its source keyspace.
    Restore(restore::RestoreArgs),
}

use error::CliError;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tailguard: {error}");
            if error.is::<demo::Interrupted>() {
                return ExitCode::from(demo::Interrupted::EXIT_STATUS);
            }
            if error.is::<cluster::Interrupted>() {
                return ExitCode::from(cluster::Interrupted::EXIT_STATUS);
            }
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), CliError> {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_)) {
        logging::init();
    }
    match cli.command {
        Command::Observe(args) => observe::run(&args),
        Command::Sim(args) => sim::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Restore(args) => restore::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Cluster(args) => cluster::run(&args),
    }
}
