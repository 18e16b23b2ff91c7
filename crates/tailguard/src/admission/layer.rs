//! Admission as a [`tower::Layer`] (feature `tower`): every HTTP request passes the
//! [`WorkQueue`] before it reaches the service.
//!
//! [`AdmissionLayer::new(queue)`](AdmissionLayer::new) wraps any `tower::Service` of
//! `http::Request<B>` to `http::Response<R>` whose response body `R` can be made `From<String>`
//! (axum's `Body`, `String`, `http_body_util::Full<Bytes>`):
//!
//! - **Who, how urgent, how long**: a [`Classify`] reads the request's
//!   [`RequestClass`]; the default, [`HeaderClassifier`], reads the
//!   `x-tailguard-tenant`, `x-tailguard-priority` and `x-tailguard-deadline` headers
//!   ([`headers`](super::headers)). A closure `Fn(&http::Request<B>) -> Result<RequestClass,
//!   ClassifyError>` is a classifier too. A refused classification answers `400` with its message.
//! - **Admitted**: the request goes on with an [`Admitted`] in its extensions (its tenant, and
//!   [`charge_cpu`](Admitted::charge_cpu) to report the CPU it used to a capped tenant). The
//!   slot is released as soon as the service has produced the response (its head: a streamed
//!   body runs on without a slot), and also when the future is dropped (the client went away,
//!   a timeout layer gave up) or the service panics while handling it.
//! - **Refused**: a request that would wait past its deadline, or that finds the queue full
//!   ([`WorkQueueConfig::queue_limit`](super::WorkQueueConfig::queue_limit)), gets
//!   `503 Service Unavailable` with `Retry-After` (default 1 s) and the reason as text, at once
//!   for a full queue, at its deadline otherwise. A request that finds a free slot runs
//!   whatever its deadline.
//!
//! # Costs
//!
//! Per request, on top of the admission itself (one compare-and-swap with a slot free): the
//! header look-ups, two monotonic clock reads (~30 ns each: [`Admitted::waited`]), one boxed
//! future and one `Arc` (the [`Admitted`] extension). Waiting holds no thread and no runtime
//! worker.
//!
//! # Examples
//!
//! ```
//! use std::convert::Infallible;
//! use tailguard::admission::layer::AdmissionLayer;
//! use tailguard::admission::{WorkQueue, WorkQueueConfig};
//! use tailguard::clock::ManualClock;
//! use tower::{Layer, Service};
//!
//! let clock = ManualClock::new();
//! let config = WorkQueueConfig { initial_slots: 1, min_slots: 1, max_slots: 1, ..Default::default() };
//! let queue = WorkQueue::new(config, clock.shared())?;
//! let handler = tower::service_fn(|_request: http::Request<String>| async {
//!     Ok::<_, Infallible>(http::Response::new("hello".to_owned()))
//! });
//! let mut service = AdmissionLayer::new(queue.clone()).layer(handler);
//!
//! let busy = queue.try_admit(&Default::default())?; // the only slot
//! let request = http::Request::builder().header("x-tailguard-deadline", "0ms").body(String::new())?;
//! let future = service.call(request);
//! let response = futures_executor_block_on(future)?;
//! assert_eq!(response.status(), http::StatusCode::SERVICE_UNAVAILABLE);
//! assert_eq!(response.headers()["retry-after"], "1");
//! drop(busy);
//! # fn futures_executor_block_on<F: std::future::Future>(future: F) -> F::Output {
//! #     let mut future = std::pin::pin!(future);
//! #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
//! #     loop {
//! #         if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut cx) { return output; }
//! #     }
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderValue, StatusCode, header};
use tower::{Layer, Service};

use super::headers::{ClassifyError, RequestClass};
use super::request::{Priority, TenantId};
use super::work_queue::WorkQueue;
use crate::clock::duration_nanos;

/// The default `Retry-After` of a `503`.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Reads what a request asks of the work queue. Implemented by [`HeaderClassifier`] and by any
/// `Fn(&http::Request<B>) -> Result<RequestClass, ClassifyError>`.
pub trait Classify<B> {
    /// The request's tenant, priority and longest wait.
    ///
    /// # Errors
    ///
    /// A [`ClassifyError`], answered `400 Bad Request` with its message.
    fn classify(&self, request: &http::Request<B>) -> Result<RequestClass, ClassifyError>;
}

impl<B, F> Classify<B> for F
where
    F: Fn(&http::Request<B>) -> Result<RequestClass, ClassifyError>,
{
    fn classify(&self, request: &http::Request<B>) -> Result<RequestClass, ClassifyError> {
        self(request)
    }
}

/// The default [`Classify`]: the `x-tailguard-*` headers ([`RequestClass::from_headers`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct HeaderClassifier;

impl<B> Classify<B> for HeaderClassifier {
    fn classify(&self, request: &http::Request<B>) -> Result<RequestClass, ClassifyError> {
        RequestClass::from_headers(request.headers())
    }
}

/// In the extensions of every admitted request: what it was admitted as, and where to report
/// the CPU it used.
#[derive(Clone, Debug)]
pub struct Admitted {
    class: RequestClass,
    waited: Duration,
    cpu_nanos: Arc<AtomicU64>,
}

impl Admitted {
    /// The tenant the slot is charged to.
    pub fn tenant(&self) -> TenantId {
        self.class.tenant
    }

    /// The priority it was admitted at.
    pub fn priority(&self) -> Priority {
        self.class.priority
    }

    /// How long it waited for its slot, on the queue's clock (add it to a latency measured in
    /// the handler to get the latency the client saw).
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// Reports CPU the request used (adding to earlier reports); the permit charges it to the
    /// tenant when the response is produced ([`Permit::charge_cpu`](super::Permit::charge_cpu)):
    /// what a tenant CPU cap ([`WorkQueue::set_tenant_cap`]) is settled against.
    pub fn charge_cpu(&self, cpu: Duration) {
        self.cpu_nanos.fetch_add(duration_nanos(cpu), Ordering::Relaxed);
    }
}

/// A [`tower::Layer`] that admits requests through a [`WorkQueue`]; see [the module docs](self).
#[derive(Clone, Debug)]
pub struct AdmissionLayer<C = HeaderClassifier> {
    queue: WorkQueue,
    classify: C,
    retry_after: Duration,
}

impl AdmissionLayer {
    /// Admits through `queue`, classifying requests by their headers, with `Retry-After: 1`.
    pub fn new(queue: WorkQueue) -> Self {
        AdmissionLayer { queue, classify: HeaderClassifier, retry_after: DEFAULT_RETRY_AFTER }
    }
}

impl<C> AdmissionLayer<C> {
    /// Classifies requests with `classify` instead of the headers.
    pub fn classify<D>(self, classify: D) -> AdmissionLayer<D> {
        AdmissionLayer { queue: self.queue, classify, retry_after: self.retry_after }
    }

    /// The `Retry-After` of a `503`, whole seconds rounded up (at least 1).
    #[must_use]
    pub fn retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// The queue requests pass.
    pub fn queue(&self) -> &WorkQueue {
        &self.queue
    }
}

impl<S, C: Clone> Layer<S> for AdmissionLayer<C> {
    type Service = AdmissionService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        AdmissionService {
            inner,
            queue: self.queue.clone(),
            classify: self.classify.clone(),
            retry_after: self.retry_after,
        }
    }
}

/// The service of an [`AdmissionLayer`].
#[derive(Clone, Debug)]
pub struct AdmissionService<S, C = HeaderClassifier> {
    inner: S,
    queue: WorkQueue,
    classify: C,
    retry_after: Duration,
}

/// The future of [`AdmissionService`]: waits for admission, then runs the service's future.
pub type AdmissionFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, C, B, R> Service<http::Request<B>> for AdmissionService<S, C>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    C: Classify<B>,
    B: Send + 'static,
    R: From<String> + Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = AdmissionFuture<http::Response<R>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The service that was driven to readiness handles this request; a clone stays.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let class = match self.classify.classify(&request) {
            Ok(class) => class,
            Err(error) => {
                let response = refusal(StatusCode::BAD_REQUEST, error.message().to_owned(), None);
                return Box::pin(std::future::ready(Ok(response)));
            }
        };
        // The deadline runs from the request's arrival here.
        let shared = Arc::clone(self.queue.shared());
        let arrived = shared.clock.now_nanos();
        let admission = self.queue.admit_async(&class.request(&self.queue));
        let retry_after = self.retry_after;
        Box::pin(async move {
            let mut permit = match admission.await {
                Ok(permit) => permit,
                // Past its deadline in the queue, or the queue full (`WouldBlock` is `try_admit`'s).
                Err(error) => {
                    return Ok(refusal(
                        StatusCode::SERVICE_UNAVAILABLE,
                        error.to_string(),
                        Some(retry_after),
                    ));
                }
            };
            let waited = Duration::from_nanos(shared.clock.now_nanos().saturating_sub(arrived));
            let admitted = Admitted { class, waited, cpu_nanos: Arc::new(AtomicU64::new(0)) };
            request.extensions_mut().insert(admitted.clone());
            // A panic or a drop while the service runs drops `permit`: its slot goes back.
            let response = inner.call(request).await;
            let cpu_nanos = admitted.cpu_nanos.load(Ordering::Relaxed);
            if cpu_nanos > 0 {
                permit.charge_cpu(Duration::from_nanos(cpu_nanos));
            }
            drop(permit);
            response
        })
    }
}

/// A refusal: `status`, the reason as text, and `Retry-After` when given.
fn refusal<R: From<String>>(
    status: StatusCode,
    message: String,
    retry_after: Option<Duration>,
) -> http::Response<R> {
    let mut response = http::Response::new(R::from(message));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    if let Some(retry_after) = retry_after {
        let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    }
    response
}
