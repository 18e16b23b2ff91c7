//! `tailguard serve`: the demo's key-value service and elastic jobs behind an HTTP server, so
//! that standard load generators (wrk, oha, …) drive it from another process.
//!
//! | endpoint | what |
//! |---|---|
//! | `GET/PUT/DELETE /kv/{key}` | a key (decimal `u64`); the value is the raw body |
//! | `POST /jobs/backup`, `POST /jobs/scan` | start a backup (optional JSON body `{"from", "to", "resume_from"}`: a key range, see `jobs::BackupRange`) / catch-up scan (409 while one runs) |
//! | `GET /jobs`, `GET /jobs/{id}` | job status and progress (JSON) |
//! | `GET /jobs/{id}/watch` | progress as server-sent events until the job ends |
//! | `POST /jobs/{id}/cancel` | stop at the next resumption point |
//! | `POST /jobs/{id}/verify`, `POST /jobs/{id}/restore` | check a backup against the store / load it back |
//! | `GET /metrics` | Prometheus text |
//! | `GET /debug/elastic` | limiter state and recent controller history (JSON) |
//! | `GET /debug/admission` | the foreground work queue (`--admission`): slots, waiting, tenants (JSON) |
//! | `GET /debug/tasks` | task profile (text; `?format=json`, `?mode=stop-the-world`) |
//! | `POST/GET/DELETE /debug/captures`, `GET /debug/captures/{id}`, `GET /debug/captures/histogram` | outlier trace capture of slow requests (see [`captures`]) |
//! | `GET /api/series` | the live page's time series (JSON) |
//! | `GET /` | live charts |
//!
//! With `--admission`, key-value requests pass a work queue first (the library's
//! `AdmissionLayer`, started with the rest through `tailguard::Tailguard`); the headers
//! `x-tailguard-tenant`, `x-tailguard-priority` and `x-tailguard-deadline` place them in it. A
//! request that finds a free slot runs whatever its deadline; one refused by the queue (it would
//! wait past its deadline, or the queue is full) gets 503 with `Retry-After` and the reason.
//!
//! Every error response is JSON of one shape (see [`error`]). Connections are held to a
//! header-read, a request-body and an idle deadline (see [`server`]).
//!
//! SIGINT or SIGTERM shuts down gracefully: no new connection is accepted, requests in flight
//! get `--shutdown-timeout` to finish (what is left then is closed), running jobs stop at a
//! resumption point (a backup keeps its output as `PATH.partial`, marked incomplete), then the
//! process exits 0. A second signal exits at once, with status 1.
//!
//! Backup files never overwrite one another, across restarts too, and retention keeps the
//! newest `--keep-backups` (see [`backups`]).

mod admission;
mod backups;
mod captures;
mod error;
mod extract;
mod jobs;
mod routes;
mod sampler;
mod server;

use std::io::Write as _;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use clap::Args;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::num::NonZeroU32;

use tailguard::Tailguard;
use tailguard::admission::{AdmissionLayer, TenantId, WorkQueue, WorkQueueConfig};
use tailguard::capture::{CaptureHandle, CaptureLayer};
use tailguard::elastic::{AcquireRequest, Limiter};
use tailguard::guard::MetricsExport;
use tailguard::histogram::{WindowConfig, WindowedHistogram};
use tokio::sync::watch;
use tracing_subscriber::layer::SubscriberExt as _;

use self::admission::{ServeClassifier, TenantLimit};
use self::jobs::{JobSettings, Jobs};
use self::sampler::Series;
use self::server::Timeouts;
use crate::choices::{ControllerChoice, IdleBy, Placement};
use crate::duration::parse_duration;
use crate::error::CliError;
use crate::restore::KeyspaceArgs;
use crate::signals::Signals;
use crate::workload::service::{Service, WorkConfig};
use crate::workload::store::Store;

/// Arguments of `tailguard serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:7878")]
    listen: SocketAddr,
    /// The keyspace preloaded into the store.
    #[command(flatten)]
    keyspace: KeyspaceArgs,
    /// Largest value a PUT may carry, bytes (larger bodies get 413).
    #[arg(long, default_value_t = 1 << 20)]
    max_value_bytes: usize,
    /// Worker threads of the server's runtime (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// Pin each runtime worker to a CPU of its own: beside elastic jobs at `SCHED_IDLE`
    /// (`--os-priority`), Linux may otherwise queue two workers on one CPU while the other CPU
    /// runs idle-priority work. For a server that has its CPUs to itself.
    #[arg(long)]
    pin_workers: bool,
    /// Run elastic jobs without the limiter.
    #[arg(long)]
    no_control: bool,
    /// Rate of the scheduling-latency probe while no elastic work asks for CPU, Hz (it fires at
    /// 1 kHz while work does); 0 keeps 1 kHz always.
    #[arg(long, default_value_t = tailguard::observe::DEFAULT_IDLE_RATE_HZ)]
    probe_idle_rate: u32,
    /// Target p99 scheduling latency of the limiter.
    #[arg(long, default_value = "1ms", value_parser = parse_duration)]
    target: Duration,
    /// The adaptive controller steers by at least this many times the scheduling p99 measured
    /// while no elastic work ran (elastic work is not blamed for the machine's own latency);
    /// 0: by the target alone [default: 1.5, or 0 under a cgroup CPU quota, where that latency
    /// is the foreground's own use reaching the quota]
    #[arg(long)]
    quiet_factor: Option<f64>,
    /// The adaptive controller steers by at most this many times the scheduling p99 measured
    /// while no elastic work ran, when that is under the target (never under 50 µs); 0: off.
    #[arg(long, default_value_t = 0.0)]
    quiet_headroom: f64,
    /// The adaptive controller holds its share instead of cutting for latency over target (up
    /// to 4×) while the hypervisor stole at least this fraction of the machine's CPU time in a
    /// tick of the last half second (/proc/stat); 0: off.
    #[arg(long, default_value_t = tailguard::elastic::DEFAULT_STEAL_HOLD)]
    steal_hold: f64,
    /// How much fill the elastic token bucket holds, as time at the share's rate: the most
    /// elastic work can run above its share after it could not use it; the longer it is, the
    /// more CPU over the share elastic work may spend just after a cut [default: 100ms, or 10ms
    /// under a cgroup CPU quota, so a job that starts on a full bucket does not spend the
    /// period's quota at once]
    #[arg(long, value_parser = parse_duration)]
    burst: Option<Duration>,
    /// CPU time granted to one elastic request [default: 100ms, or under a cgroup CPU quota
    /// 10ms per core of quota (at least 1ms), so one grant never spends a period's quota]
    #[arg(long, value_parser = parse_duration)]
    grant: Option<Duration>,
    /// Lowest elastic share of all cores.
    #[arg(long, default_value_t = 0.05)]
    floor: f64,
    /// Highest elastic share of all cores.
    #[arg(long, default_value_t = 0.75)]
    ceiling: f64,
    /// Feedback controller of the limiter.
    #[arg(long, value_enum, default_value_t = ControllerChoice::Adaptive)]
    controller: ControllerChoice,
    /// Where elastic jobs run: on threads of their own, or as tasks in the server's runtime.
    #[arg(long, value_enum, default_value_t = Placement::Threads)]
    elastic_on: Placement,
    /// Elastic threads under a grant give the CPU away (sched_yield) after every this much CPU
    /// (jobs on threads of their own; 0s: never).
    #[arg(long, default_value = "250us", value_parser = parse_duration)]
    elastic_yield: Duration,
    /// Run elastic threads at the OS's idle priority (SCHED_IDLE) as well.
    #[arg(long)]
    os_priority: bool,
    /// How elastic threads are put at the OS's idle priority where they are (the os-priority
    /// modes, --os-priority): each thread at SCHED_IDLE, or all in a cgroup of the lowest CPU
    /// weight beneath this process's own (cgroup v1 and root; refused with the reason otherwise,
    /// and the work runs at normal priority).
    #[arg(long, value_enum, default_value_t = IdleBy::SchedIdle)]
    idle_by: IdleBy,
    /// Admit key-value requests through a work queue (tailguard::admission): slots sized by the
    /// runtime's run queue, ordered by tenant, then priority (header x-tailguard-priority), then
    /// arrival, with an optional wait deadline per request (header x-tailguard-deadline).
    #[arg(long)]
    admission: bool,
    /// Runnable tasks per CPU at or above which the admission slots shrink.
    #[arg(long, default_value_t = tailguard::admission::config::DEFAULT_OVERLOAD_THRESHOLD)]
    admission_threshold: f64,
    /// Most requests waiting for admission; beyond it requests get 503 at once.
    #[arg(long)]
    queue_limit: Option<usize>,
    /// A tenant's weight in the admission order, TENANT=WEIGHT (repeatable; default weight 1).
    #[arg(long, value_parser = admission::parse_tenant_weight)]
    tenant_weight: Vec<(TenantId, NonZeroU32)>,
    /// A tenant's CPU cap as a share of the machine, TENANT=SHARE (repeatable).
    #[arg(long, value_parser = admission::parse_tenant_cap)]
    tenant_cap: Vec<(TenantId, f64)>,
    /// Most tenants tracked at once with --admission (those of the flags, and those with a
    /// request in the last minute); a request of a new tenant beyond it gets 400.
    #[arg(long, default_value_t = NonZeroUsize::new(admission::DEFAULT_MAX_TENANTS).expect("non-zero"))]
    max_tenants: NonZeroUsize,
    /// Directory for backup files (default: a `tailguard-serve-PID` directory in the system's
    /// temporary directory, kept after exit). Files are numbered on from those already there;
    /// none is ever overwritten.
    #[arg(long)]
    backup_dir: Option<PathBuf>,
    /// Complete backups kept in the backup directory: after each completed backup the oldest
    /// beyond this many are removed (and so are `.partial` files beyond this many).
    #[arg(long, default_value_t = NonZeroUsize::new(backups::DEFAULT_KEEP).expect("non-zero"))]
    keep_backups: NonZeroUsize,
    /// Longest time for a request's head to arrive (from the accept, or from the first byte of
    /// a later request on a keep-alive connection); past it the connection is closed.
    #[arg(long, default_value = "10s", value_parser = parse_timeout)]
    header_read_timeout: Duration,
    /// Longest time for a request's body to arrive, from its head; past it the request gets
    /// 408 and the connection is closed.
    #[arg(long, default_value = "30s", value_parser = parse_timeout)]
    request_body_timeout: Duration,
    /// Longest time a keep-alive connection may wait for its next request.
    #[arg(long, default_value = "30s", value_parser = parse_timeout)]
    idle_timeout: Duration,
    /// On SIGINT or SIGTERM, longest time requests in flight (and jobs stopping) may take to
    /// finish; then the connections left are closed and the process exits.
    #[arg(long, default_value = "5s", value_parser = parse_timeout)]
    shutdown_timeout: Duration,
    /// Stop as on SIGTERM when standard input reaches its end: a supervisor that starts the
    /// server with a pipe it never writes to takes the server down with it however the
    /// supervisor ends, SIGKILL included. With standard input at `/dev/null` it stops at once.
    #[arg(long)]
    stop_on_stdin_eof: bool,
    /// glibc malloc arenas (0: the allocator's default, eight per core). Fewer arenas keep the
    /// resident set flat over a long run; `MALLOC_ARENA_MAX` in the environment wins.
    #[arg(long, default_value_t = crate::arenas::DEFAULT_ARENAS)]
    malloc_arenas: u32,
}

/// A timeout flag: a duration from 1 ms to 1 h.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    let timeout = parse_duration(text)?;
    if !(Duration::from_millis(1)..=Duration::from_secs(3600)).contains(&timeout) {
        return Err(format!("{text} is out of range: use 1ms ..= 1h"));
    }
    Ok(timeout)
}

/// Buckets of the request-latency histogram, seconds: 10 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Everything the handlers share.
pub struct App {
    service: Arc<Service>,
    store: Arc<Store>,
    limiter: Option<Limiter>,
    /// Outlier trace capture of `kv.request` span trees.
    captures: CaptureHandle,
    /// The foreground work queue (`--admission`).
    queue: Option<WorkQueue>,
    /// Admission of key-value requests through `queue`, tenants bounded (`--admission`).
    admission: Option<AdmissionLayer<ServeClassifier>>,
    /// Wake→poll delay of the server's runtime (the runtime probe).
    scheduling: Arc<WindowedHistogram>,
    /// Server-side latency of key-value requests.
    requests: Arc<WindowedHistogram>,
    jobs: Jobs,
    series: Series,
    prometheus: PrometheusHandle,
    cores: f64,
    /// Where `cores` came from (affinity, a cgroup quota, a cpuset), for `/debug/elastic`.
    cores_source: String,
    max_value_bytes: usize,
    /// Set once shutdown begins; watch streams end when it flips.
    shutdown: watch::Sender<bool>,
}

/// Validates the arguments that clap cannot.
fn validate(args: &ServeArgs) -> Result<(), CliError> {
    if args.keyspace.keys > 100_000_000 {
        return Err(format!(
            "--keys {} is too many: at most 100000000 fit a test machine",
            args.keyspace.keys
        )
        .into());
    }
    if !(1..=1 << 20).contains(&args.keyspace.value_size) {
        return Err(
            format!("--value-size {} is out of range: use 1 ..= 1048576", args.keyspace.value_size).into()
        );
    }
    if !(1..=256 << 20).contains(&args.max_value_bytes) {
        return Err(format!(
            "--max-value-bytes {} is out of range: use 1 ..= 268435456",
            args.max_value_bytes
        )
        .into());
    }
    if args.workers.is_some_and(|w| !(1..=1024).contains(&w)) {
        return Err("--workers is out of range: use 1 ..= 1024".into());
    }
    if !args.admission
        && (!args.tenant_weight.is_empty() || !args.tenant_cap.is_empty() || args.queue_limit.is_some())
    {
        return Err("--tenant-weight, --tenant-cap and --queue-limit need --admission".into());
    }
    Ok(())
}

/// The work queue's settings with `--admission`.
fn work_queue_config(args: &ServeArgs, cores: f64) -> Option<WorkQueueConfig> {
    args.admission.then(|| WorkQueueConfig {
        overload_threshold: args.admission_threshold,
        queue_limit: args.queue_limit,
        cores,
        ..WorkQueueConfig::default()
    })
}

/// Weights and caps the tenants of the flags.
fn configure_tenants(args: &ServeArgs, queue: &WorkQueue) -> Result<(), CliError> {
    for &(tenant, weight) in &args.tenant_weight {
        queue.set_tenant_weight(tenant, weight);
    }
    for &(tenant, share) in &args.tenant_cap {
        queue.set_tenant_cap(tenant, share).map_err(|e| format!("--tenant-cap {}={share}: {e}", tenant.0))?;
    }
    Ok(())
}

/// Runs `tailguard serve` until SIGINT or SIGTERM.
pub fn run(args: &ServeArgs) -> Result<(), CliError> {
    validate(args)?;
    // Before any other thread starts.
    let arenas = crate::arenas::cap(args.malloc_arenas);
    let cpu_limit = crate::capacity::detect();
    let cores = cpu_limit.cores;
    let grant = args.grant.unwrap_or_else(|| crate::capacity::default_grant(&cpu_limit));
    let burst = args.burst.unwrap_or_else(|| crate::capacity::default_burst(&cpu_limit));
    let quiet_factor = args.quiet_factor.unwrap_or_else(|| crate::capacity::default_quiet_factor(&cpu_limit));
    // Outlier capture: a layer on the global subscriber (every worker thread enters spans). It
    // is installed first, so that the startup's own lines are logged.
    let capture_layer = CaptureLayer::new();
    let captures = capture_layer.handle();
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(capture_layer).with(crate::logging::layer()),
    )
    .map_err(|e| format!("cannot install the tracing subscriber: {e}"))?;
    match arenas {
        crate::arenas::Arenas::Capped(n) => tracing::info!("malloc arenas: at most {n}"),
        crate::arenas::Arenas::FromEnvironment => tracing::info!("malloc arenas: as MALLOC_ARENA_MAX says"),
        crate::arenas::Arenas::Default => {}
        crate::arenas::Arenas::Refused => tracing::warn!("malloc arenas: the allocator refused the cap"),
    }
    crate::capacity::log(&cpu_limit);
    tracing::info!("elastic grant: {}, bucket fill: {}", humantime(grant), humantime(burst));
    tracing::info!("quiet factor: {quiet_factor}");
    let workers = args.workers.unwrap_or(crate::capacity::whole_cpus(cores));
    let runtime = crate::choices::foreground_runtime(workers, "tailguard-serve", args.pin_workers)?;
    // The probe, the limiter and (`--admission`) the work queue; the sampler thread exports.
    let mut builder = Tailguard::builder()
        .cores(cores)
        // Without control nothing asks the limiter for CPU: sample at the full rate always.
        .probe(crate::choices::probe_config(if args.no_control { 0 } else { args.probe_idle_rate }))
        .limiter(
            Limiter::builder()
                .target(args.target)
                .quiet_factor(quiet_factor)
                .quiet_headroom(args.quiet_headroom)
                .steal_hold(args.steal_hold)
                .burst(burst)
                .grant(grant)
                .share_bounds(args.floor, args.ceiling)
                .controller(args.controller.kind()),
        )
        .metrics_export(MetricsExport::Off);
    if let Some(config) = work_queue_config(args, cores) {
        builder = builder.work_queue(config);
    }
    let guard = Arc::new(builder.start(runtime.handle()).map_err(|e| e.to_string())?);
    if let Some(stat) = guard.probe().throttle_stat() {
        tracing::info!(stat = %stat.display(), "the probe counts the CPU quota's throttling as delay");
    }
    // With --no-control the limiter runs (its state is still reported) but jobs do not use it.
    let limiter = (!args.no_control).then(|| guard.limiter().clone());
    let prometheus = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full("tailguard_request_latency_seconds".into()), LATENCY_BUCKETS)?
        .install_recorder()
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;

    let keyspace = args.keyspace.config();
    tracing::info!("loading {} keys…", args.keyspace.keys);
    let store = Arc::new(Store::populate(&keyspace, 64));
    let service =
        Service::tracked(runtime.handle().clone(), Arc::clone(&store), keyspace, WorkConfig::default());
    let backup_dir = match &args.backup_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("tailguard-serve-{}", std::process::id())),
    };
    std::fs::create_dir_all(&backup_dir)
        .map_err(|e| format!("cannot create the backup directory {}: {e}", backup_dir.display()))?;
    let earlier = backups::list(&backup_dir)
        .map_err(|e| format!("cannot read the backup directory {}: {e}", backup_dir.display()))?;
    let settings = JobSettings {
        limiter: limiter.clone(),
        placement: args.elastic_on,
        os_priority: args.os_priority.then(|| args.idle_by.priority()),
        slice: grant,
        request: if args.elastic_yield.is_zero() {
            AcquireRequest::new()
        } else {
            AcquireRequest::new().yield_every(args.elastic_yield)
        },
        backup_dir: backup_dir.clone(),
        keep_backups: args.keep_backups,
    };
    let queue = guard.work_queue().cloned();
    if let Some(queue) = &queue {
        configure_tenants(args, queue)?;
    }
    let admission = queue.as_ref().map(|queue| {
        let configured =
            args.tenant_weight.iter().map(|&(t, _)| t).chain(args.tenant_cap.iter().map(|&(t, _)| t));
        let tenants = TenantLimit::new(args.max_tenants, configured);
        AdmissionLayer::new(queue.clone()).classify(ServeClassifier::new(tenants))
    });
    let app = Arc::new(App {
        queue,
        admission,
        captures,
        jobs: Jobs::new(Arc::clone(&store), settings, runtime.handle().clone(), &earlier),
        service,
        store,
        limiter: limiter.clone(),
        scheduling: Arc::clone(guard.scheduling_latency()),
        requests: Arc::new(WindowedHistogram::new(WindowConfig::default())?),
        series: Series::default(),
        prometheus,
        cores,
        cores_source: cpu_limit.source.to_string(),
        max_value_bytes: args.max_value_bytes,
        shutdown: watch::Sender::new(false),
    });
    report_earlier(&earlier, &app.jobs);
    let sampler_stop = Arc::new(AtomicBool::new(false));
    let sampler = sampler::start(Arc::clone(&app), Arc::clone(&guard), Arc::clone(&sampler_stop))?;

    let timeouts = Timeouts {
        header_read: args.header_read_timeout,
        request_body: args.request_body_timeout,
        idle: args.idle_timeout,
    };
    let served = runtime.block_on(serve(
        Arc::clone(&app),
        args.listen,
        &backup_dir,
        timeouts,
        args.shutdown_timeout,
        args.stop_on_stdin_eof,
    ));
    sampler_stop.store(true, Ordering::Relaxed);
    sampler.thread().unpark();
    let _ = sampler.join();
    // The last handle: stops the probe, the limiter and the work queue, and joins their threads.
    drop(guard);
    runtime.shutdown_timeout(Duration::from_secs(1));
    served
}

/// Says which files of earlier runs the backup directory holds, and how far each interrupted
/// backup got.
fn report_earlier(earlier: &[backups::BackupFile], jobs: &Jobs) {
    let complete = earlier.iter().filter(|f| f.completeness == backups::Completeness::Complete).count();
    if complete > 0 {
        tracing::info!("the backup directory holds {complete} complete backups of earlier runs");
    }
    for job in jobs.list() {
        let status = job.status();
        if status.state != jobs::JobState::Interrupted {
            continue;
        }
        let path = status.output.as_deref().unwrap_or(std::path::Path::new("?")).display();
        let progress = match (status.resume_key, &status.error) {
            (Some(key), _) => format!("{} keys in complete chunks, resumable from key {key}", status.keys),
            (None, Some(error)) => error.clone(),
            (None, None) => format!("all {} keys written, only the footer is missing", status.keys),
        };
        tracing::info!(
            "{path} ({} bytes) is the unfinished backup of an earlier run (job {}, listed as \
             interrupted; {progress}): left as it is; restore refuses it as a whole",
            status.compressed_bytes,
            status.id
        );
    }
}

/// The whole router: the routes, the capture endpoints, JSON errors for everything.
fn router(app: Arc<App>) -> Router {
    routes::router(app.max_value_bytes, app.admission.clone())
        .merge(captures::router())
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(axum::middleware::map_response(error::json_errors))
        .with_state(app)
}

/// Binds, serves until a signal, then lets requests and jobs wind down within
/// `shutdown_timeout`; a second signal exits the process at once.
async fn serve(
    app: Arc<App>,
    listen: SocketAddr,
    backup_dir: &std::path::Path,
    timeouts: Timeouts,
    shutdown_timeout: Duration,
    stop_on_stdin_eof: bool,
) -> Result<(), CliError> {
    let mut signals = Signals::install(stop_on_stdin_eof)
        .map_err(|e| format!("cannot install the signal handlers: {e}"))?;
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let local = listener.local_addr()?;
    println!("tailguard serve: listening on http://{local} (backups in {})", backup_dir.display());
    let _ = std::io::stdout().flush();
    let on_signal = |name: &'static str| {
        tracing::info!(
            "{name}: finishing requests in flight and stopping jobs (at most {}; \
             a second signal exits at once)…",
            humantime(shutdown_timeout)
        );
        app.shutdown.send_replace(true);
    };
    // Every job is asked to stop; each reaches its resumption point.
    let jobs_stopped = async {
        for job in app.jobs.shut_down() {
            job.wait().await;
        }
    };
    let router = router(Arc::clone(&app));
    match server::serve(listener, router, timeouts, shutdown_timeout, &mut signals, on_signal, jobs_stopped)
        .await
    {
        Ok(drained) if drained.cut_off > 0 => tracing::warn!(
            "closed {} connections still open after --shutdown-timeout {}",
            drained.cut_off,
            humantime(shutdown_timeout)
        ),
        Ok(_) => {}
        Err(interrupted) => {
            tracing::warn!("{interrupted}");
            std::process::exit(1);
        }
    }
    for job in app.jobs.list() {
        let status = job.status();
        if status.state == jobs::JobState::Running {
            tracing::warn!(
                "job {} ({}) had not stopped by the deadline; its output stays incomplete",
                status.id,
                status.kind.name()
            );
        }
        if let Some(output) = status.output.as_ref().filter(|_| status.state == jobs::JobState::Cancelled) {
            let resume = status.resume_key.map_or_else(|| "the start".to_owned(), |k| format!("key {k}"));
            tracing::info!(
                "job {} ({}) stopped before {resume}; its incomplete output is {}",
                status.id,
                status.kind.name(),
                output.display()
            );
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// `5s`, `250ms`: a flag's duration as it would be written.
fn humantime(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}
