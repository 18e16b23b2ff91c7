//! The admission layer on a manual clock: with a bare `tower::service_fn` and with an axum
//! router. Futures are polled by hand, so every step is scripted: nothing sleeps.
#![cfg(feature = "tower")]

use std::convert::Infallible;
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use tailguard::admission::headers::{ClassifyError, RequestClass};
use tailguard::admission::layer::Admitted;
use tailguard::admission::{AdmissionLayer, TenantId, WorkQueue, WorkQueueConfig};
use tailguard::clock::ManualClock;
use tower::{Layer, Service, ServiceExt};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

fn queue(clock: &ManualClock, slots: u32, queue_limit: Option<usize>) -> WorkQueue {
    let config = WorkQueueConfig {
        initial_slots: slots,
        min_slots: slots,
        max_slots: slots,
        queue_limit,
        cores: 2.0,
        ..WorkQueueConfig::default()
    };
    WorkQueue::new(config, clock.shared()).unwrap()
}

fn poll<T>(future: &mut BoxFuture<T>) -> Poll<T> {
    future.as_mut().poll(&mut Context::from_waker(Waker::noop()))
}

fn request(headers: &[(&str, &str)]) -> Request<String> {
    let mut builder = Request::builder().uri("/");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(String::new()).unwrap()
}

/// A handler that answers at once, with its tenant.
async fn answer(request: Request<String>) -> Result<Response<String>, Infallible> {
    let tenant = request.extensions().get::<Admitted>().expect("admitted requests say so").tenant();
    Ok(Response::new(tenant.0.to_string()))
}

fn status_and_retry(response: &Response<impl Sized>) -> (StatusCode, Option<&str>) {
    (response.status(), response.headers().get("retry-after").map(|v| v.to_str().unwrap()))
}

#[test]
fn a_request_that_finds_a_free_slot_runs_whatever_its_deadline() {
    let clock = ManualClock::new();
    let queue = queue(&clock, 1, None);
    let mut service = AdmissionLayer::new(queue.clone()).layer(tower::service_fn(answer));
    // `0ms` is already past on arrival: the bug was a 503 "overloaded" on an idle server.
    for deadline in ["0ms", "1us"] {
        let mut call: BoxFuture<_> = service.call(request(&[("x-tailguard-deadline", deadline)]));
        let Poll::Ready(Ok(response)) = poll(&mut call) else { panic!("a free slot must admit at once") };
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(queue.snapshot().total_rejected.deadline_exceeded, 0);
}

#[test]
fn refused_requests_get_503_with_retry_after_and_a_full_queue_at_once() {
    let clock = ManualClock::new();
    let queue = queue(&clock, 1, Some(1));
    let layer = AdmissionLayer::new(queue.clone()).retry_after(Duration::from_millis(1500));
    let mut service = layer.layer(tower::service_fn(answer));
    let busy = queue.try_admit(&Default::default()).unwrap();

    let mut waiting: BoxFuture<_> = service.call(request(&[("x-tailguard-deadline", "5ms")]));
    assert!(poll(&mut waiting).is_pending());
    // The queue holds its limit of one waiter: the next is refused without waiting.
    let mut full: BoxFuture<_> = service.call(request(&[]));
    let Poll::Ready(Ok(response)) = poll(&mut full) else { panic!("a full queue refuses at once") };
    assert_eq!(status_and_retry(&response), (StatusCode::SERVICE_UNAVAILABLE, Some("2")));
    assert!(response.body().contains("queue full"), "{}", response.body());

    // 5 ms later the slot is still busy: the waiter fails at its deadline.
    clock.advance(Duration::from_millis(5));
    queue.tick();
    let Poll::Ready(Ok(response)) = poll(&mut waiting) else { panic!("expired in the queue") };
    assert_eq!(status_and_retry(&response), (StatusCode::SERVICE_UNAVAILABLE, Some("2")));
    assert!(response.body().contains("deadline exceeded"), "{}", response.body());
    drop(busy);
    let snapshot = queue.snapshot();
    assert_eq!((snapshot.used, snapshot.waiting), (0, 0));
    assert_eq!((snapshot.total_rejected.deadline_exceeded, snapshot.total_rejected.queue_full), (1, 1));
}

#[test]
fn a_malformed_header_gets_400_naming_it_and_takes_no_slot() {
    let clock = ManualClock::new();
    let queue = queue(&clock, 1, None);
    let mut service = AdmissionLayer::new(queue.clone()).layer(tower::service_fn(answer));
    let mut call: BoxFuture<_> = service.call(request(&[("x-tailguard-priority", "urgent")]));
    let Poll::Ready(Ok(response)) = poll(&mut call) else { panic!() };
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.body().contains("x-tailguard-priority"), "{}", response.body());
    assert_eq!(queue.snapshot().total_admitted, 0);
}

#[test]
fn the_slot_is_released_when_the_future_is_dropped_mid_handler() {
    let clock = ManualClock::new();
    let queue = queue(&clock, 1, None);
    let handler = tower::service_fn(|_: Request<String>| {
        std::future::pending::<Result<Response<String>, Infallible>>()
    });
    let mut service = AdmissionLayer::new(queue.clone()).layer(handler);
    let mut call: BoxFuture<_> = service.call(request(&[]));
    assert!(poll(&mut call).is_pending());
    assert_eq!(queue.snapshot().used, 1, "admitted, inside the handler");
    drop(call); // the client went away
    assert_eq!(queue.snapshot().used, 0);
}

#[tokio::test(flavor = "current_thread")]
async fn the_slot_is_released_when_the_handler_panics() {
    let clock = ManualClock::new();
    let queue = queue(&clock, 1, None);
    let handler = tower::service_fn(|_: Request<String>| async {
        panic!("the handler failed");
        #[allow(unreachable_code, reason = "gives the closure its return type")]
        Ok::<Response<String>, Infallible>(Response::new(String::new()))
    });
    let service = AdmissionLayer::new(queue.clone()).layer(handler);
    let joined = tokio::spawn(service.oneshot(request(&[]))).await;
    assert!(joined.unwrap_err().is_panic());
    let snapshot = queue.snapshot();
    assert_eq!((snapshot.used, snapshot.total_admitted), (0, 1));
}

#[test]
fn under_overload_tenants_are_admitted_by_weight() {
    let clock = ManualClock::new();
    let queue = queue(&clock, 1, None);
    queue.set_tenant_weight(TenantId(1), NonZeroU32::new(3).unwrap());
    let order = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&order);
    let handler = tower::service_fn(move |request: Request<String>| {
        let tenant = request.extensions().get::<Admitted>().unwrap().tenant();
        record.lock().unwrap().push(tenant.0);
        async { Ok::<_, Infallible>(Response::new(String::new())) }
    });
    let mut service = AdmissionLayer::new(queue.clone()).layer(handler);
    let busy = queue.try_admit(&Default::default()).unwrap();
    let mut calls: Vec<BoxFuture<_>> = (0..8)
        .map(|i| service.call(request(&[("x-tailguard-tenant", if i % 2 == 0 { "1" } else { "2" })])))
        .collect();
    for call in &mut calls {
        assert!(poll(call).is_pending());
    }
    assert_eq!(queue.snapshot().waiting, 8);
    drop(busy);
    // One slot: each admitted request runs its handler when polled and hands the slot on.
    while !calls.is_empty() {
        calls.retain_mut(|call| poll(call).is_pending());
    }
    let order = order.lock().unwrap().clone();
    assert_eq!(order.len(), 8);
    // Weight 3 against 1: three of the first four admissions are tenant 1's.
    assert_eq!(order[..4].iter().filter(|&&t| t == 1).count(), 3, "{order:?}");
}

#[test]
fn a_custom_classifier_and_a_cpu_report_reach_the_tenant() {
    let clock = ManualClock::new();
    let queue = queue(&clock, 1, None);
    // The tenant from the path, `/tenants/{id}`; anything else is refused.
    let classify = |request: &Request<String>| -> Result<RequestClass, ClassifyError> {
        let id = request.uri().path().strip_prefix("/tenants/").and_then(|id| id.parse().ok());
        let tenant = id.ok_or_else(|| ClassifyError::new("use /tenants/{id}"))?;
        Ok(RequestClass { tenant: TenantId(tenant), ..RequestClass::default() })
    };
    let handler = tower::service_fn(|request: Request<String>| async move {
        request.extensions().get::<Admitted>().unwrap().charge_cpu(Duration::from_millis(3));
        Ok::<_, Infallible>(Response::new(String::new()))
    });
    let mut service = AdmissionLayer::new(queue.clone()).classify(classify).layer(handler);
    let to = |uri: &str| Request::builder().uri(uri).body(String::new()).unwrap();
    let mut call: BoxFuture<_> = service.call(to("/tenants/4"));
    assert!(matches!(poll(&mut call), Poll::Ready(Ok(r)) if r.status() == StatusCode::OK));
    let mut call: BoxFuture<_> = service.call(to("/elsewhere"));
    assert!(matches!(poll(&mut call), Poll::Ready(Ok(r)) if r.status() == StatusCode::BAD_REQUEST));
    let snapshot = queue.snapshot();
    let tenant = snapshot.tenants.iter().find(|t| t.tenant == TenantId(4)).expect("tenant 4 tracked");
    assert_eq!(tenant.total_cpu, Duration::from_millis(3));
}

mod axum_router {
    use axum::body::Body;
    use axum::routing::get;
    use axum::{Extension, Router};

    use super::*;

    fn get_request(headers: &[(&str, &str)]) -> Request<Body> {
        let mut builder = Request::builder().uri("/");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Body::empty()).unwrap()
    }

    async fn hello(Extension(admitted): Extension<Admitted>) -> String {
        format!("hello, tenant {}", admitted.tenant().0)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn admits_and_refuses_through_a_router() {
        let clock = ManualClock::new();
        let queue = queue(&clock, 1, Some(1));
        let router = Router::new().route("/", get(hello)).layer(AdmissionLayer::new(queue.clone()));
        let response = router.clone().oneshot(get_request(&[("x-tailguard-tenant", "9")])).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], b"hello, tenant 9");

        let busy = queue.try_admit(&Default::default()).unwrap();
        let mut waiting: BoxFuture<_> = Box::pin(router.clone().oneshot(get_request(&[])));
        assert!(poll(&mut waiting).is_pending());
        let response = router.clone().oneshot(get_request(&[])).await.unwrap();
        assert_eq!(status_and_retry(&response), (StatusCode::SERVICE_UNAVAILABLE, Some("1")));
        drop(waiting); // gives up its place
        drop(busy);
        let response = router.oneshot(get_request(&[("x-tailguard-tenant", "x")])).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let snapshot = queue.snapshot();
        assert_eq!((snapshot.used, snapshot.waiting, snapshot.total_cancelled), (0, 0, 1));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_slot_is_released_on_drop_and_on_panic() {
        let clock = ManualClock::new();
        let queue = queue(&clock, 1, None);
        let router = Router::new()
            .route("/stuck", get(std::future::pending::<&'static str>))
            .route("/panics", get(|| async { panic!("the handler failed") as &'static str }))
            .layer(AdmissionLayer::new(queue.clone()));
        let to = |uri: &str| Request::builder().uri(uri).body(Body::empty()).unwrap();
        let mut stuck: BoxFuture<_> = Box::pin(router.clone().oneshot(to("/stuck")));
        assert!(poll(&mut stuck).is_pending());
        assert_eq!(queue.snapshot().used, 1);
        drop(stuck);
        assert_eq!(queue.snapshot().used, 0);
        let joined = tokio::spawn(router.oneshot(to("/panics"))).await;
        assert!(joined.unwrap_err().is_panic());
        let snapshot = queue.snapshot();
        assert_eq!((snapshot.used, snapshot.total_admitted), (0, 2));
    }
}
