//! `tailguard restore`: reads a backup file written by `tailguard demo --backup-dir` and proves it
//! equals the source data, regenerated from the keyspace's seed.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use crate::error::CliError;
use crate::workload::backup::verify;
use crate::workload::keyspace::KeyspaceConfig;
use crate::workload::store::Store;

/// The seeded keyspace a store is loaded with (`serve`) or a backup is checked against
/// (`restore`); the same three values give the same keys and values.
#[derive(Clone, Copy, Debug, Args)]
pub struct KeyspaceArgs {
    /// Keys of the keyspace.
    #[arg(long, default_value_t = 100_000)]
    pub keys: u64,
    /// Mean value size of the keyspace, bytes.
    #[arg(long, default_value_t = 256)]
    pub value_size: usize,
    /// Seed of the keyspace's values.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

impl KeyspaceArgs {
    /// The keyspace these flags describe.
    pub fn config(&self) -> KeyspaceConfig {
        KeyspaceConfig { keys: self.keys, mean_value_bytes: self.value_size, seed: self.seed }
    }
}

/// Arguments of `tailguard restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup file (never a `.partial` one: those are unfinished and always refused).
    path: PathBuf,
    /// The source keyspace (as given to `tailguard demo` or `tailguard serve`).
    #[command(flatten)]
    keyspace: KeyspaceArgs,
}

/// Runs `tailguard restore`.
pub fn run(args: &RestoreArgs) -> Result<(), CliError> {
    let keyspace = args.keyspace.config();
    let store = Arc::new(Store::populate(&keyspace, 16));
    let report = verify(&args.path, &store).map_err(|e| format!("{}: {e}", args.path.display()))?;
    println!(
        "{}: restored {} keys ({} value bytes, {} chunks); equal to the source keyspace (seed {})",
        args.path.display(),
        report.keys,
        report.value_bytes,
        report.chunks,
        args.keyspace.seed
    );
    Ok(())
}
