//! A small axum service under tailguard: `/hello` is foreground work admitted through the work
//! queue, a checksum job runs in the background under grants of CPU, and `/metrics` serves
//! Prometheus text. `cargo run -p tailguard --example axum_service --features tower,metrics`, then
//! `curl -H 'x-tailguard-tenant: 7' -H 'x-tailguard-deadline: 50ms' localhost:3000/hello`.
//! (`tests/axum_service.rs` drives `router` and `background` over HTTP.)

use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tailguard::Tailguard;
use tailguard::admission::{AdmissionLayer, WorkQueueConfig};
use tailguard::elastic::{AcquireRequest, Limiter, Pacer};

/// The routes: `/hello` behind admission (503 with `Retry-After` when refused), `/metrics` beside it.
pub(crate) fn router(guard: &Tailguard, metrics: PrometheusHandle) -> Router {
    let queue = guard.work_queue().expect("started with a work queue").clone();
    Router::new()
        .route("/hello", get(|| async { "hello\n" }))
        .layer(AdmissionLayer::new(queue))
        .route("/metrics", get(move || std::future::ready(metrics.render())))
}

/// Background work: checksums chunk after chunk under the limiter's grants, until it stops.
pub(crate) async fn background(limiter: Limiter) -> u64 {
    let mut pacer = Pacer::new(limiter.clone(), AcquireRequest::new());
    let mut checksum = 0u64;
    // An elastic task is charged its own running time, not its worker's.
    let work = limiter.elastic(async move {
        while pacer.pace_async().await.is_ok() {
            for byte in 0..4096u64 {
                checksum = checksum.rotate_left(5) ^ byte; // ... one chunk of real work ...
            }
        }
        checksum
    });
    work.await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let metrics = PrometheusBuilder::new().install_recorder()?;
    let guard = Tailguard::builder()
        .work_queue(WorkQueueConfig::default())
        .start(&tokio::runtime::Handle::current())?;
    tokio::spawn(background(guard.limiter().clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    axum::serve(listener, router(&guard, metrics)).with_graceful_shutdown(ctrl_c).await?;
    guard.shutdown(); // stops the limiter (the job ends at its next grant) and joins every thread
    Ok(())
}
