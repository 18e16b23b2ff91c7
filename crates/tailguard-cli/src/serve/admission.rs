//! Foreground admission for `tailguard serve`: the flags that weight and cap tenants, the bound
//! on tenants tracked, the classifier the admission layer uses, and the queue's JSON view. The
//! request headers (`x-tailguard-tenant`, `x-tailguard-priority`, `x-tailguard-deadline`) are
//! the library's ([`tailguard::admission::headers`]).

use std::collections::HashMap;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tailguard::admission::headers::{ClassifyError, RequestClass};
use tailguard::admission::layer::Classify;
use tailguard::admission::{TenantId, WorkQueueSnapshot};

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

/// How `--admission` classifies a request: by its headers, refusing a new tenant beyond
/// `--max-tenants` (400).
#[derive(Clone, Debug)]
pub struct ServeClassifier {
    tenants: Arc<TenantLimit>,
}

impl ServeClassifier {
    /// Headers, then the bound on tenants.
    pub fn new(tenants: TenantLimit) -> Self {
        Self { tenants: Arc::new(tenants) }
    }
}

impl<B> Classify<B> for ServeClassifier {
    fn classify(&self, request: &axum::http::Request<B>) -> Result<RequestClass, ClassifyError> {
        let class = RequestClass::from_headers(request.headers())?;
        self.tenants.admit(class.tenant).map_err(|e| ClassifyError::new(e.to_string()))?;
        Ok(class)
    }
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
    fn tenant_flags_parse_and_refuse_nonsense() {
        assert_eq!(parse_tenant_weight("2=3").unwrap(), (TenantId(2), NonZeroU32::new(3).unwrap()));
        assert!(parse_tenant_weight("2=0").is_err());
        assert!(parse_tenant_weight("2").is_err());
        assert_eq!(parse_tenant_cap("1=0.25").unwrap(), (TenantId(1), 0.25));
        assert!(parse_tenant_cap("1=1.5").unwrap_err().contains("out of range"));
        assert!(parse_tenant_cap("x=0.5").is_err());
    }
}
