//! The HTTP routes of `tailguard serve` (the capture endpoints are in [`super::captures`]).
//!
//! Job endpoints take no query parameters and `POST`s no body (but `POST /jobs/backup`'s
//! optional JSON options, see [`jobs::BackupRange`]): either is refused with 400 rather than
//! silently ignored. Keys and ids are decimal integers spelled one way only (see
//! [`parse_decimal`]).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use serde_json::json;

use tailguard::admission::AdmissionLayer;
use tailguard::admission::headers::RequestClass;
use tailguard::admission::layer::Admitted;
use tailguard::capture::Scheduled;
use tracing::Instrument as _;

use super::App;
use super::admission::ServeClassifier;
use super::error::{ApiError, ApiResult, echo};
use super::extract::{ApiPath, ApiQuery, JsonOptions, NoInput, NoQuery, parse_decimal};
use super::jobs::{self, BackupRange, JobKind, JobState, StartError};
use super::sampler::Point;
use super::server::is_body_timeout;
use crate::workload::keyspace::Key;
use crate::workload::service::Op;

/// How often `watch` sends a job's progress.
const WATCH_INTERVAL: Duration = Duration::from_millis(200);
/// Controller ticks returned by `/debug/elastic` (the last 30 s at the default tick).
const HISTORY_TICKS: usize = 300;

/// The live page.
const PAGE: &str = include_str!("page.html");

/// The routes, before the state and the fallbacks are added; `max_value` bounds a PUT's body,
/// `admission` (`--admission`) admits key-value requests.
pub fn router(max_value: usize, admission: Option<AdmissionLayer<ServeClassifier>>) -> Router<Arc<App>> {
    let kv = get(get_key).put(put_key).delete(delete_key).layer(DefaultBodyLimit::max(max_value));
    let kv = match admission {
        Some(admission) => kv.layer(admission),
        None => kv,
    };
    Router::new()
        .route("/", get(page))
        .route("/kv/{key}", kv)
        .route("/jobs", get(list_jobs))
        .route("/jobs/backup", post(start_backup))
        .route("/jobs/scan", post(start_scan))
        .route("/jobs/{id}", get(job_status))
        .route("/jobs/{id}/watch", get(watch_job))
        .route("/jobs/{id}/cancel", post(cancel_job))
        .route("/jobs/{id}/verify", post(verify_backup))
        .route("/jobs/{id}/restore", post(restore_backup))
        .route("/metrics", get(metrics))
        .route("/debug/elastic", get(debug_elastic))
        .route("/debug/admission", get(debug_admission))
        .route("/debug/tasks", get(debug_tasks))
        .route("/api/series", get(series))
}

/// The fallback for paths no route matches: 404.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no endpoint at {}; GET / is the live page, `tailguard serve --help` lists the endpoints",
            echo(uri.path())
        ),
    )
}

/// The fallback for a known path asked with a method it does not take: 405 (the framework adds
/// the `Allow` header).
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{method} is not allowed on {}; the Allow header lists the methods that are",
            echo(uri.path())
        ),
    )
}

fn parse_key(text: &str) -> ApiResult<Key> {
    parse_decimal(text, "key").map(Key)
}

/// Runs one key-value request through the service, timing it. With `--admission` the
/// admission layer ([`AdmissionLayer`]) has admitted it already (`admitted`), and its wait counts
/// in the latency; without, the admission headers are still checked.
async fn call(
    app: &App,
    headers: &HeaderMap,
    admitted: Option<Admitted>,
    op: Op,
    name: &'static str,
) -> ApiResult<crate::workload::service::Response> {
    let start = Instant::now();
    let tenant = match &admitted {
        Some(admitted) => admitted.tenant(),
        None => RequestClass::from_headers(headers).map_err(|e| ApiError::bad_request(e.message()))?.tenant,
    };
    // The root span of outlier captures (fingerprint `kv.request`): the hops.
    let span = tracing::info_span!("kv.request", op = name, key = op.key().0, tenant = tenant.0);
    let request = async {
        let response = tailguard::task::Builder::new()
            .name("http-kv")
            .track(async {
                let _frame = tailguard::task::frame(name);
                app.service.call(op).await
            })
            .await
            .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
        if let Some(admitted) = &admitted {
            // The hops ran on other tasks: charge the tenant the time they spent running.
            admitted.charge_cpu(response.busy);
        }
        Ok::<_, ApiError>(response)
    };
    let response = Scheduled::new(request.instrument(span)).await?;
    let elapsed = start.elapsed() + admitted.as_ref().map_or(Duration::ZERO, Admitted::waited);
    app.requests.record(elapsed);
    metrics::histogram!("tailguard_request_latency_seconds", "op" => name).record(elapsed.as_secs_f64());
    Ok(response)
}

async fn get_key(
    State(app): State<Arc<App>>,
    ApiPath(key): ApiPath<String>,
    headers: HeaderMap,
    admitted: Option<Extension<Admitted>>,
) -> ApiResult<Response> {
    let key = parse_key(&key)?;
    let admitted = admitted.map(|Extension(a)| a);
    match call(&app, &headers, admitted, Op::Get(key), "get").await?.value {
        Some(value) => {
            Ok(([(header::CONTENT_TYPE, "application/octet-stream")], Bytes::from(value.to_vec()))
                .into_response())
        }
        None => Err(ApiError::new(StatusCode::NOT_FOUND, format!("key {} not found", key.0))),
    }
}

async fn put_key(
    State(app): State<Arc<App>>,
    ApiPath(key): ApiPath<String>,
    headers: HeaderMap,
    admitted: Option<Extension<Admitted>>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let key = parse_key(&key)?;
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            let message = format!("value is larger than --max-value-bytes ({} bytes)", app.max_value_bytes);
            return ApiError::new(status, message).closing();
        }
        if std::error::Error::source(&rejection).is_some_and(is_body_timeout) {
            // The rest of the body may still be on its way: the connection is not reused.
            return ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!("cannot read the value: {}", rejection.body_text()),
            )
            .closing();
        }
        ApiError::new(status, format!("cannot read the value: {}", rejection.body_text()))
    })?;
    let bytes = body.len();
    call(&app, &headers, admitted.map(|Extension(a)| a), Op::Set(key, body.to_vec().into()), "put").await?;
    Ok((StatusCode::OK, Json(json!({ "key": key.0, "bytes": bytes }))).into_response())
}

async fn delete_key(
    State(app): State<Arc<App>>,
    ApiPath(key): ApiPath<String>,
    headers: HeaderMap,
    admitted: Option<Extension<Admitted>>,
) -> ApiResult<StatusCode> {
    let key = parse_key(&key)?;
    let admitted = admitted.map(|Extension(a)| a);
    match call(&app, &headers, admitted, Op::Delete(key), "delete").await?.value {
        Some(_) => Ok(StatusCode::NO_CONTENT),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, format!("key {} not found", key.0))),
    }
}

fn start_job(app: &App, kind: JobKind, range: BackupRange) -> ApiResult<(StatusCode, Json<jobs::JobStatus>)> {
    match app.jobs.start_range(kind, range) {
        Ok(job) => Ok((StatusCode::ACCEPTED, Json(job.status()))),
        Err(error @ StartError::Busy { .. }) => Err(ApiError::new(StatusCode::CONFLICT, error.to_string())),
        Err(error @ StartError::ShuttingDown) => {
            Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, error.to_string()))
        }
        Err(error @ StartError::Spawn { .. }) => {
            Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()))
        }
    }
}

/// Starts a backup of the keys its optional JSON body names (every key without one).
async fn start_backup(
    State(app): State<Arc<App>>,
    JsonOptions(range): JsonOptions<BackupRange>,
) -> ApiResult<(StatusCode, Json<jobs::JobStatus>)> {
    range.check().map_err(|e| ApiError::bad_request(format!("POST /jobs/backup: {e}")))?;
    start_job(&app, JobKind::Backup, range)
}

async fn start_scan(
    State(app): State<Arc<App>>,
    _: NoInput,
) -> ApiResult<(StatusCode, Json<jobs::JobStatus>)> {
    start_job(&app, JobKind::Scan, BackupRange::ALL)
}

async fn list_jobs(State(app): State<Arc<App>>, _: NoQuery) -> Json<Vec<jobs::JobStatus>> {
    Json(app.jobs.list().iter().map(|j| j.status()).collect())
}

fn job(app: &App, id: &str) -> ApiResult<Arc<jobs::Job>> {
    let id = parse_decimal(id, "job id")?;
    app.jobs.get(id).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no job {id}")))
}

async fn job_status(
    State(app): State<Arc<App>>,
    ApiPath(id): ApiPath<String>,
    _: NoQuery,
) -> ApiResult<Json<jobs::JobStatus>> {
    Ok(Json(job(&app, &id)?.status()))
}

async fn cancel_job(
    State(app): State<Arc<App>>,
    ApiPath(id): ApiPath<String>,
    _: NoInput,
) -> ApiResult<(StatusCode, Json<jobs::JobStatus>)> {
    let job = job(&app, &id)?;
    if job.is_finished() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("job {} has already ended ({:?})", job.id(), job.status().state),
        ));
    }
    job.cancel();
    Ok((StatusCode::ACCEPTED, Json(job.status())))
}

/// Server-sent events: the job's status every [`WATCH_INTERVAL`] until it ends (the last event
/// is the final status), or until the server shuts down.
async fn watch_job(
    State(app): State<Arc<App>>,
    ApiPath(id): ApiPath<String>,
    _: NoQuery,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let job = job(&app, &id)?;
    let shutdown = app.shutdown.subscribe();
    let stream =
        futures_util::stream::unfold((job, shutdown, false), |(job, mut shutdown, done)| async move {
            if done {
                return None;
            }
            let finished = job.is_finished() || *shutdown.borrow();
            if !finished {
                tokio::select! {
                    () = tokio::time::sleep(WATCH_INTERVAL) => {}
                    () = job.wait() => {}
                    _ = shutdown.wait_for(|s| *s) => {}
                }
            }
            let status = job.status();
            let last = status.state != JobState::Running || *shutdown.borrow();
            let event = Event::default().event(if last { "end" } else { "progress" }).json_data(&status);
            Some((Ok(event.unwrap_or_else(|_| Event::default().data("{}"))), (job, shutdown, last)))
        });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// The file of a completed backup, and the range it holds.
fn completed_backup(app: &App, id: &str) -> ApiResult<(std::path::PathBuf, BackupRange)> {
    let job = job(app, id)?;
    let range = job.status().range.unwrap_or_default();
    job.completed_backup().map(|path| (path, range)).ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "job {} is not a completed backup (it is a {:?}, {:?})",
                job.id(),
                job.kind(),
                job.status().state
            ),
        )
    })
}

async fn verify_backup(
    State(app): State<Arc<App>>,
    ApiPath(id): ApiPath<String>,
    _: NoInput,
) -> ApiResult<Json<serde_json::Value>> {
    let (path, range) = completed_backup(&app, &id)?;
    let store = Arc::clone(&app.store);
    let checked = path.clone();
    let report = tokio::task::spawn_blocking(move || {
        crate::workload::backup::verify_range(&checked, &store, range.start(), range.until())
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("verify panicked: {e}")))?
    .map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("backup {} does not match the store: {e}", path.display()),
        )
    })?;
    Ok(Json(json!({
        "path": path,
        "verified": true,
        "range": range,
        "keys": report.keys,
        "value_bytes": report.value_bytes,
        "chunks": report.chunks,
    })))
}

async fn restore_backup(
    State(app): State<Arc<App>>,
    ApiPath(id): ApiPath<String>,
    _: NoInput,
) -> ApiResult<Json<serde_json::Value>> {
    let (path, range) = completed_backup(&app, &id)?;
    if !range.is_all() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("job {} is a backup of a key range, not of the store: restore whole backups only", id),
        ));
    }
    if let Some(running) = app.jobs.any_running() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("job {running} is running; restore when no job runs"),
        ));
    }
    let store = Arc::clone(&app.store);
    let from = path.clone();
    let (keys, removed) = tokio::task::spawn_blocking(move || jobs::restore_into(&from, &store))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("restore panicked: {e}")))?
        .map_err(|e| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("cannot restore {}: {e}", path.display()))
        })?;
    Ok(Json(json!({ "path": path, "restored_keys": keys, "removed_keys": removed })))
}

async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], super::sampler::render_metrics(&app))
}

/// The limiter's configuration, state and recent controller ticks.
async fn debug_elastic(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    let Some(limiter) = &app.limiter else {
        return Json(json!({ "control": false }));
    };
    let config = limiter.config();
    let snapshot = limiter.snapshot();
    let history = limiter.history();
    let recent = &history[history.len().saturating_sub(HISTORY_TICKS)..];
    Json(json!({
        "control": true,
        "config": {
            "target_seconds": config.target.as_secs_f64(),
            "quantile": config.quantile,
            "floor": config.floor,
            "ceiling": config.ceiling,
            "tick_seconds": config.tick.as_secs_f64(),
            "grant_seconds": config.grant.as_secs_f64(),
            "cores": config.cores,
            "cores_source": app.cores_source,
            "controller": config.controller.name(),
            "quiet_factor": config.quiet_factor,
            "quiet_headroom": config.quiet_headroom,
            "steal_hold": config.steal_hold,
            "burst_seconds": config.burst.as_secs_f64(),
        },
        "state": {
            "share": snapshot.share,
            "balance_seconds": snapshot.balance_nanos as f64 / 1e9,
            "debt_seconds": snapshot.debt.as_secs_f64(),
            "waiters": snapshot.waiters,
            "granted_cpu_seconds": snapshot.total_granted.as_secs_f64(),
            "used_cpu_seconds": snapshot.total_used.as_secs_f64(),
            "warm": snapshot.warm,
            "ticks": snapshot.ticks,
            "working_target_seconds": snapshot.working_target.as_secs_f64(),
            "quiet_p99_seconds": snapshot.quiet_p99.map(|p| p.as_secs_f64()),
            "steal": snapshot.steal,
            "knee": snapshot.knee,
            "process_cpu_seconds": tailguard::clock::process_cpu_time().as_secs_f64(),
        },
        "history": recent.iter().map(|t| json!({
            "at_seconds": t.at.as_secs_f64(),
            "share": t.share,
            "p99_seconds": t.p99.map(|p| p.as_secs_f64()),
            "recent_p99_seconds": t.recent_p99.map(|p| p.as_secs_f64()),
            "waiting_fraction": t.waiting_fraction,
            "used_fraction": t.used_fraction,
            "knee": t.knee,
        })).collect::<Vec<_>>(),
    }))
}

/// The foreground work queue's state.
async fn debug_admission(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    Json(match &app.queue {
        Some(queue) => super::admission::snapshot_json(&queue.snapshot()),
        None => json!({ "admission": false }),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TasksQuery {
    format: Option<String>,
    mode: Option<String>,
}

/// A task profile of every tracked task: grouped text, or JSON with `?format=json`.
async fn debug_tasks(ApiQuery(query): ApiQuery<TasksQuery>) -> ApiResult<Response> {
    let profile = match query.mode.as_deref() {
        None | Some("low-pause") => tailguard::task::profile(),
        Some("stop-the-world") => tailguard::task::profile_stop_the_world(),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "mode {} is unknown: use low-pause (default) or stop-the-world",
                echo(other)
            )));
        }
    };
    match query.format.as_deref() {
        None | Some("text") => {
            Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], profile.to_string()).into_response())
        }
        Some("json") => Ok(([(header::CONTENT_TYPE, "application/json")], profile.to_json()).into_response()),
        Some(other) => {
            Err(ApiError::bad_request(format!("format {} is unknown: use text or json", echo(other))))
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeriesQuery {
    since: Option<f64>,
}

#[derive(Debug, Serialize)]
struct SeriesResponse {
    interval_seconds: f64,
    control: bool,
    target_ms: Option<f64>,
    points: Vec<Point>,
}

async fn series(
    State(app): State<Arc<App>>,
    ApiQuery(query): ApiQuery<SeriesQuery>,
) -> ApiResult<Json<SeriesResponse>> {
    Ok(Json(SeriesResponse {
        interval_seconds: super::sampler::INTERVAL.as_secs_f64(),
        control: app.limiter.is_some(),
        target_ms: app.limiter.as_ref().map(|l| l.config().target.as_secs_f64() * 1e3),
        points: app.series.points(query.since),
    }))
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}
