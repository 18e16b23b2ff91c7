//! `tailguard restore`: reads a backup file written by `tailguard demo --backup-dir` and proves it
//! equals the source data, regenerated from the keyspace's seed.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use crate::CliError;
use crate::workload::backup::verify;
use crate::workload::keyspace::KeyspaceConfig;
use crate::workload::store::Store;

/// Arguments of `tailguard restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup file (never a `.partial` one: those are unfinished and always refused).
    path: PathBuf,
    /// Keys of the source keyspace (as given to `tailguard demo`).
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Mean value size of the source keyspace.
    #[arg(long, default_value_t = 256)]
    value_size: usize,
    /// Seed of the source keyspace.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// Runs `tailguard restore`.
pub fn run(args: &RestoreArgs) -> Result<(), CliError> {
    let keyspace = KeyspaceConfig { keys: args.keys, mean_value_bytes: args.value_size, seed: args.seed };
    let store = Arc::new(Store::populate(&keyspace, 16));
    let report = verify(&args.path, &store).map_err(|e| format!("{}: {e}", args.path.display()))?;
    println!(
        "{}: restored {} keys ({} value bytes, {} chunks); equal to the source keyspace (seed {})",
        args.path.display(),
        report.keys,
        report.value_bytes,
        report.chunks,
        args.seed
    );
    Ok(())
}
