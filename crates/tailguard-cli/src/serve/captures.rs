//! Outlier trace capture over HTTP: arm a capture of slow `kv.request` span trees, list, fetch
//! and clear them, and count them per minute since arming or per minute of the hour.
//!
//! | endpoint | what |
//! |---|---|
//! | `POST /debug/captures` | arm: JSON `{"probability": 0.01, "threshold": "5ms", "window": "10m", "fingerprint": "kv.request", "max_captures": 100}` (every field optional) |
//! | `GET /debug/captures` | the arming's status and the kept traces (JSON; `?format=text`) |
//! | `GET /debug/captures/histogram` | kept traces per minute since arming, `minute | freq` with a bar; `?by=minute-of-hour`: per minute of the hour, `:00` to `:59` (wall clock, UTC), so work scheduled at fixed minutes (backups at :00 and :35) stands out across hours (`?by=since-arming` is the default) |
//! | `GET /debug/captures/{id}` | one trace as an indented tree (`?format=json`) |
//! | `DELETE /debug/captures` | disarm and drop every kept trace |
//!
//! What one arming may keep is capped, so that no client can grow the server's memory without
//! bound: `max_captures` at most [`MAX_CAPTURES`], `max_spans` at most [`MAX_SPANS`], the
//! `window` at most [`MAX_WINDOW`], the `fingerprint` at most [`MAX_FINGERPRINT_BYTES`]. Beyond a
//! cap the arming is refused with 400 naming it.

use std::fmt::Write as _;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tailguard::capture::{ArmError, CaptureSpec, TraceId};

use super::App;
use super::error::{ApiError, ApiResult, echo};
use super::extract::{ApiPath, ApiQuery, FormatQuery, NoQuery, parse_decimal};
use crate::duration::parse_duration;

/// Most traces one arming keeps: 1000 traces of a few spans each are a few megabytes.
pub const MAX_CAPTURES: usize = 1000;
/// Most spans one kept trace holds.
pub const MAX_SPANS: usize = 1024;
/// Longest capture window: a day.
pub const MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// Longest fingerprint (a root span's name), bytes.
pub const MAX_FINGERPRINT_BYTES: usize = 256;

/// The capture endpoints, to merge into the server's router.
pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/debug/captures", get(list).post(arm).delete(clear))
        .route("/debug/captures/histogram", get(histogram))
        .route("/debug/captures/{id}", get(trace))
}

/// The root span of every key-value request: the default fingerprint.
pub const REQUEST_SPAN: &str = "kv.request";

/// The body of `POST /debug/captures`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArmBody {
    fingerprint: Option<String>,
    probability: Option<f64>,
    threshold: Option<String>,
    window: Option<String>,
    max_captures: Option<usize>,
    max_spans: Option<usize>,
    seed: Option<u64>,
}

impl ArmBody {
    fn spec(self) -> Result<CaptureSpec, String> {
        let fingerprint = self.fingerprint.unwrap_or_else(|| REQUEST_SPAN.to_owned());
        if fingerprint.len() > MAX_FINGERPRINT_BYTES {
            return Err(format!(
                "fingerprint {} is longer than the limit of {MAX_FINGERPRINT_BYTES} bytes",
                echo(&fingerprint)
            ));
        }
        let mut spec = CaptureSpec::new(fingerprint);
        if let Some(p) = self.probability {
            spec = spec.probability(p);
        }
        if let Some(t) = self.threshold {
            spec = spec.threshold(parse_duration(&t).map_err(|e| format!("threshold: {e}"))?);
        }
        if let Some(w) = self.window {
            let window = parse_duration(&w).map_err(|e| format!("window: {e}"))?;
            if window > MAX_WINDOW {
                return Err(format!(
                    "window {} is longer than the limit of {}h",
                    echo(&w),
                    MAX_WINDOW.as_secs() / 3600
                ));
            }
            spec = spec.window(window);
        }
        let positive =
            |name: &str, n: usize| NonZeroUsize::new(n).ok_or_else(|| format!("{name} must be at least 1"));
        let capped = |name: &str, n: usize, limit: usize| {
            if n > limit {
                Err(format!("{name} {n} is over the limit of {limit}"))
            } else {
                positive(name, n)
            }
        };
        if let Some(n) = self.max_captures {
            spec = spec.max_captures(capped("max_captures", n, MAX_CAPTURES)?);
        }
        if let Some(n) = self.max_spans {
            spec = spec.max_spans(capped("max_spans", n, MAX_SPANS)?);
        }
        if let Some(seed) = self.seed {
            spec = spec.seed(seed);
        }
        spec.validate().map_err(|e| e.to_string())?;
        Ok(spec)
    }
}

/// `POST /debug/captures`: arms a capture (409 while another is armed).
pub async fn arm(
    State(app): State<Arc<App>>,
    _: NoQuery,
    body: Result<Json<ArmBody>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    // An empty body arms with every default.
    let body = match body {
        Ok(Json(body)) => body,
        Err(JsonRejection::MissingJsonContentType(_)) => ArmBody::default(),
        Err(rejection) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("capture spec: {}", rejection.body_text()),
            ));
        }
    };
    let spec =
        body.spec().map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("capture spec: {e}")))?;
    match app.captures.arm(spec) {
        Ok(id) => Ok((StatusCode::CREATED, Json(json!({ "id": id, "status": app.captures.status() })))),
        Err(error @ ArmError::AlreadyArmed { .. }) => {
            Err(ApiError::new(StatusCode::CONFLICT, error.to_string()))
        }
        Err(error) => Err(ApiError::new(StatusCode::BAD_REQUEST, error.to_string())),
    }
}

/// `GET /debug/captures`: status and kept traces.
pub async fn list(
    State(app): State<Arc<App>>,
    ApiQuery(query): ApiQuery<FormatQuery>,
) -> ApiResult<Response> {
    let status = app.captures.status();
    let traces = app.captures.traces();
    if query.text()? {
        let mut text = match &status {
            Some(status) => format!("{status}\n"),
            None => "no capture armed yet: POST /debug/captures to arm one\n".to_owned(),
        };
        for trace in &traces {
            let _ = writeln!(text, "{trace}");
        }
        return Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response());
    }
    Ok(Json(json!({ "status": status, "traces": traces })).into_response())
}

/// `?by=since-arming|minute-of-hour` of `GET /debug/captures/histogram`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistogramQuery {
    by: Option<String>,
}

/// How the histogram groups kept traces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HistogramBy {
    /// Minutes since arming (the default).
    SinceArming,
    /// Minute of the hour, wall clock, UTC.
    MinuteOfHour,
}

impl HistogramQuery {
    fn by(&self) -> ApiResult<HistogramBy> {
        match self.by.as_deref() {
            None | Some("since-arming") => Ok(HistogramBy::SinceArming),
            Some("minute-of-hour") => Ok(HistogramBy::MinuteOfHour),
            Some(other) => Err(ApiError::bad_request(format!(
                "histogram by {} is unknown: use since-arming or minute-of-hour",
                echo(other)
            ))),
        }
    }
}

/// `GET /debug/captures/histogram`: kept traces per minute since arming, or per minute of the
/// hour with `?by=minute-of-hour`.
pub async fn histogram(
    State(app): State<Arc<App>>,
    ApiQuery(query): ApiQuery<HistogramQuery>,
) -> ApiResult<Response> {
    let text = match query.by()? {
        HistogramBy::SinceArming => app.captures.histogram().to_string(),
        HistogramBy::MinuteOfHour => app.captures.minute_of_hour_histogram().to_string(),
    };
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

/// `GET /debug/captures/{id}`: one trace.
pub async fn trace(
    State(app): State<Arc<App>>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<FormatQuery>,
) -> ApiResult<Response> {
    let id = parse_decimal(&id, "trace id")?;
    let trace = app
        .captures
        .trace(TraceId(id))
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no kept trace {id}")))?;
    if query.text_unless_json()? {
        return Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], trace.to_string()).into_response());
    }
    Ok(Json(trace).into_response())
}

/// `DELETE /debug/captures`: disarms and drops every kept trace.
pub async fn clear(State(app): State<Arc<App>>, _: NoQuery) -> Json<serde_json::Value> {
    let disarmed = app.captures.disarm();
    let cleared = app.captures.clear();
    Json(json!({ "disarmed": disarmed, "cleared": cleared }))
}
