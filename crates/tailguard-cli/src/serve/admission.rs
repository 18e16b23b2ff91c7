//! Foreground admission for `tailguard serve`: the request headers that pick a tenant, a
//! priority and a deadline, the flags that weight and cap tenants, and the queue's JSON view.

use std::collections::HashMap;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use serde_json::{Value, json};
use tailguard::admission::{Priority, Request, TenantId, WorkQueue, WorkQueueSnapshot};

use super::error::{ECHO_CHARS, echo};
use crate::duration::parse_duration;

/// Header naming the request's tenant (a decimal `u64`; default 0).
pub const TENANT_HEADER: &str = "x-tailguard-tenant";
/// Header giving the request's priority: `lowest`, `low`, `normal` (default), `high`,
/// `highest`, or a level in -128..=127.
pub const PRIORITY_HEADER: &str = "x-tailguard-priority";
/// Header giving how long the request may wait for admission (e.g. `50ms`); past it the
/// request fails fast with 503 instead of running late.
pub const DEADLINE_HEADER: &str = "x-tailguard-deadline";

/// The default of `--max-tenants`.
pub const DEFAULT_MAX_TENANTS: usize = 1024;
/// How long a tenant counts as tracked after its last request.
pub const TENANT_MEMORY: Duration = Duration::from_secs(60);

/// The tenants the work queue may be asked to track at once: those given by flags, and those
/// that sent a request within [`TENANT_MEMORY`], at most `limit` in all; a request of a new
/// tenant beyond it is refused, so no client can grow the queue's tenant state without bound.
#[derive(Debug)]
pub struct TenantLimit {
    limit: NonZeroUsize,
    /// Last request of each tenant; `None` for the tenants given by flags (kept for ever).
    seen: Mutex<HashMap<TenantId, Option<Instant>>>,
}

/// A request of a new tenant while the limit's worth are tracked.
#[derive(Debug, thiserror::Error)]
#[error(
    "tenant {tenant} would be tenant number {} tracked at once, over the limit of {limit} (--max-tenants); \
     a tenant is tracked for {}s after its last request",
    limit + 1,
    TENANT_MEMORY.as_secs()
)]
pub struct TooManyTenants {
    /// The refused tenant.
    pub tenant: u64,
    /// The limit.
    pub limit: usize,
}

impl TenantLimit {
    /// At most `limit` tenants, `configured` ones (from flags) always among them.
    pub fn new(limit: NonZeroUsize, configured: impl IntoIterator<Item = TenantId>) -> Self {
        Self { limit, seen: Mutex::new(configured.into_iter().map(|t| (t, None)).collect()) }
    }

    /// Records a request of `tenant` at `now`.
    ///
    /// # Errors
    /// [`TooManyTenants`] when `tenant` is new and the limit is reached.
    pub fn admit_at(&self, tenant: TenantId, now: Instant) -> Result<(), TooManyTenants> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(last) = seen.get_mut(&tenant) {
            if last.is_some() {
                *last = Some(now);
            }
            return Ok(());
        }
        if seen.len() >= self.limit.get() {
            // Full: forget the tenants that have been quiet long enough, then look again.
            seen.retain(|_, last| last.is_none_or(|at| now.saturating_duration_since(at) < TENANT_MEMORY));
            if seen.len() >= self.limit.get() {
                return Err(TooManyTenants { tenant: tenant.0, limit: self.limit.get() });
            }
        }
        seen.insert(tenant, Some(now));
        Ok(())
    }

    /// [`admit_at`](Self::admit_at) now.
    ///
    /// # Errors
    /// [`TooManyTenants`] when `tenant` is new and the limit is reached.
    pub fn admit(&self, tenant: TenantId) -> Result<(), TooManyTenants> {
        self.admit_at(tenant, Instant::now())
    }
}

/// What a request's headers ask for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Admission {
    /// The tenant.
    pub tenant: TenantId,
    /// The priority.
    pub priority: Priority,
    /// Longest wait for admission.
    pub max_wait: Option<Duration>,
}

impl Admission {
    /// Reads the admission headers; a malformed one is an error naming it.
    pub fn from_headers(headers: &HeaderMap) -> Result<Admission, String> {
        let text = |name: &str| -> Result<Option<&str>, String> {
            headers
                .get(name)
                .map(|v| v.to_str().map(str::trim).map_err(|_| format!("header {name} is not ASCII text")))
                .transpose()
        };
        let mut admission = Admission::default();
        if let Some(tenant) = text(TENANT_HEADER)? {
            admission.tenant = TenantId(tenant.parse().map_err(|_| {
                format!("header {TENANT_HEADER}: {} is not a tenant id (a decimal integer ≥ 0)", echo(tenant))
            })?);
        }
        if let Some(priority) = text(PRIORITY_HEADER)? {
            admission.priority = parse_priority(priority)?;
        }
        if let Some(deadline) = text(DEADLINE_HEADER)? {
            let wait = parse_duration(deadline).map_err(|e| {
                if deadline.len() > ECHO_CHARS {
                    format!("header {DEADLINE_HEADER}: {} is not a duration", echo(deadline))
                } else {
                    format!("header {DEADLINE_HEADER}: {e}")
                }
            })?;
            admission.max_wait = Some(wait);
        }
        Ok(admission)
    }

    /// The queue request, deadlines measured on `queue`'s clock.
    pub fn request(&self, queue: &WorkQueue) -> Request {
        let request = Request::new().tenant(self.tenant).priority(self.priority);
        match self.max_wait {
            Some(wait) => request.deadline(queue.deadline_in(wait)),
            None => request,
        }
    }
}

/// `lowest`, `low`, `normal`, `high`, `highest`, or a level in -128..=127.
pub fn parse_priority(text: &str) -> Result<Priority, String> {
    Ok(match text.to_ascii_lowercase().as_str() {
        "lowest" => Priority::LOWEST,
        "low" => Priority::LOW,
        "normal" => Priority::NORMAL,
        "high" => Priority::HIGH,
        "highest" => Priority::HIGHEST,
        level => Priority::new(level.parse().map_err(|_| {
            format!(
                "header {PRIORITY_HEADER}: {} is not a priority \
                 (lowest, low, normal, high, highest, or -128..=127)",
                echo(text)
            )
        })?),
    })
}

/// `TENANT=WEIGHT` with a weight of at least 1.
pub fn parse_tenant_weight(text: &str) -> Result<(TenantId, NonZeroU32), String> {
    let (tenant, weight) = text.split_once('=').ok_or_else(|| format!("{text:?} is not TENANT=WEIGHT"))?;
    let tenant = tenant.trim().parse().map_err(|_| format!("tenant {tenant:?} is not a decimal integer"))?;
    let weight = weight.trim().parse().map_err(|_| format!("weight {weight:?} is not an integer ≥ 1"))?;
    Ok((TenantId(tenant), weight))
}

/// `TENANT=SHARE` with a share of the machine's CPU in (0, 1].
pub fn parse_tenant_cap(text: &str) -> Result<(TenantId, f64), String> {
    let (tenant, share) = text.split_once('=').ok_or_else(|| format!("{text:?} is not TENANT=SHARE"))?;
    let tenant = tenant.trim().parse().map_err(|_| format!("tenant {tenant:?} is not a decimal integer"))?;
    let share: f64 = share.trim().parse().map_err(|_| format!("share {share:?} is not a number"))?;
    if !(share > 0.0 && share <= 1.0) {
        return Err(format!("share {share} is out of range: use a fraction of the machine in (0, 1]"));
    }
    Ok((TenantId(tenant), share))
}

/// The queue's state as JSON.
pub fn snapshot_json(snapshot: &WorkQueueSnapshot) -> Value {
    let wait = &snapshot.wait_time;
    let seconds = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
    json!({
        "admission": true,
        "slots": snapshot.slots,
        "used": snapshot.used,
        "waiting": snapshot.waiting,
        "waiting_by_priority": snapshot.waiting_by_priority.iter()
            .map(|(p, n)| json!({ "priority": p.level(), "waiting": n })).collect::<Vec<_>>(),
        "runnable_per_cpu": snapshot.runnable_per_cpu,
        "admitted": snapshot.total_admitted,
        "admitted_after_queueing": snapshot.total_admitted_after_queueing,
        "rejected": {
            "deadline_exceeded": snapshot.total_rejected.deadline_exceeded,
            "queue_full": snapshot.total_rejected.queue_full,
        },
        "cancelled": snapshot.total_cancelled,
        "wait_seconds": { "count": wait.count(), "p50": seconds(wait.p50()), "p99": seconds(wait.p99()), "max": seconds(wait.max()) },
        "tenants": snapshot.tenants.iter().map(|t| json!({
            "tenant": t.tenant.0,
            "weight": t.weight,
            "cap": t.cap,
            "waiting": t.waiting,
            "usage": t.usage,
            "cpu_seconds": t.total_cpu.as_secs_f64(),
            "requests": t.total_requests,
        })).collect::<Vec<_>>(),
        // Tenants forgotten while idle: their totals are kept and carry on when they return.
        "retired_tenants": snapshot.retired_tenants.iter().map(|t| json!({
            "tenant": t.tenant.0,
            "cpu_seconds": t.total_cpu.as_secs_f64(),
            "requests": t.total_requests,
        })).collect::<Vec<_>>(),
        "evicted_tenants": {
            "tenants": snapshot.evicted_tenants.tenants,
            "cpu_seconds": snapshot.evicted_tenants.total_cpu.as_secs_f64(),
            "requests": snapshot.evicted_tenants.total_requests,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_and_malformed_ones_are_named() {
        let mut headers = HeaderMap::new();
        assert_eq!(Admission::from_headers(&headers).unwrap(), Admission::default());
        headers.insert(TENANT_HEADER, "7".parse().unwrap());
        headers.insert(PRIORITY_HEADER, "High".parse().unwrap());
        headers.insert(DEADLINE_HEADER, "50ms".parse().unwrap());
        let admission = Admission::from_headers(&headers).unwrap();
        assert_eq!(admission.tenant, TenantId(7));
        assert_eq!(admission.priority, Priority::HIGH);
        assert_eq!(admission.max_wait, Some(Duration::from_millis(50)));
        headers.insert(PRIORITY_HEADER, "-3".parse().unwrap());
        assert_eq!(Admission::from_headers(&headers).unwrap().priority, Priority::new(-3));

        for (name, bad) in [(TENANT_HEADER, "x"), (PRIORITY_HEADER, "urgent"), (DEADLINE_HEADER, "soon")] {
            let mut headers = HeaderMap::new();
            headers.insert(name, bad.parse().unwrap());
            let error = Admission::from_headers(&headers).unwrap_err();
            assert!(error.contains(name), "{error}");
        }
    }

    #[test]
    fn the_tenant_limit_refuses_a_new_tenant_until_a_quiet_one_is_forgotten() {
        let limit = TenantLimit::new(NonZeroUsize::new(3).unwrap(), [TenantId(9)]);
        let start = Instant::now();
        limit.admit_at(TenantId(1), start).unwrap();
        limit.admit_at(TenantId(2), start).unwrap();
        let refused = limit.admit_at(TenantId(3), start).unwrap_err();
        assert_eq!((refused.tenant, refused.limit), (3, 3));
        assert!(refused.to_string().contains("--max-tenants"), "{refused}");
        // Known tenants go on being served.
        limit.admit_at(TenantId(9), start).unwrap();
        limit.admit_at(TenantId(2), start + TENANT_MEMORY).unwrap();
        // Tenant 1 has been quiet for the memory: its place goes to tenant 3; tenant 9, from
        // the flags, is never forgotten.
        limit.admit_at(TenantId(3), start + TENANT_MEMORY).unwrap();
        assert!(limit.admit_at(TenantId(4), start + TENANT_MEMORY).is_err());
    }

    #[test]
    fn a_long_header_is_echoed_cut() {
        let mut headers = HeaderMap::new();
        headers.insert(TENANT_HEADER, "x".repeat(50_000).parse().unwrap());
        let error = Admission::from_headers(&headers).unwrap_err();
        assert!(error.len() < 300 && error.contains("(50000 bytes)"), "{error}");
    }

    #[test]
    fn tenant_flags_parse_and_refuse_nonsense() {
        assert_eq!(parse_tenant_weight("2=3").unwrap(), (TenantId(2), NonZeroU32::new(3).unwrap()));
        assert!(parse_tenant_weight("2=0").is_err());
        assert!(parse_tenant_weight("2").is_err());
        assert_eq!(parse_tenant_cap("1=0.25").unwrap(), (TenantId(1), 0.25));
        assert!(parse_tenant_cap("1=1.5").unwrap_err().contains("out of range"));
        assert!(parse_tenant_cap("x=0.5").is_err());
    }
}
