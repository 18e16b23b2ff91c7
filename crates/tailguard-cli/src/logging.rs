//! What the command logs, and how: warnings and events (a job pruned, a connection refused, a
//! server stopping) go through `tracing` to stderr, filtered by `RUST_LOG` (default `info`:
//! e.g. `RUST_LOG=warn` keeps only warnings). Tables and reports go to stdout; the demo's
//! progress lines stay on stderr as they are, outside the log.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The log layer: events at or above `RUST_LOG`'s level (default `info`) to stderr, without
/// timestamps or targets, one line each.
pub fn layer<S>() -> impl Layer<S> + Send + Sync
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .with_filter(filter)
}

/// Installs the log layer as the process's only subscriber (every command but `serve`, which
/// adds its outlier-capture layer beside it).
pub fn init() {
    // A subscriber already set (a test harness) keeps its own.
    let _ = tracing_subscriber::registry().with(layer()).try_init();
}
