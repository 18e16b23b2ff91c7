//! Drives the `axum_service` example over HTTP: its `router` and `background` are compiled
//! into this test from the example's own source, served on a free port, and asked over TCP.
#![cfg(all(feature = "tokio", feature = "tower", feature = "metrics"))]

#[allow(dead_code, reason = "the example's `main` is not called here")]
#[path = "../examples/axum_service.rs"]
mod example;

use tailguard::Tailguard;
use tailguard::admission::WorkQueueConfig;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

async fn get(address: std::net::SocketAddr, path: &str, headers: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n{headers}\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_serves_admitted_requests_metrics_and_runs_its_job_under_grants() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let metrics = recorder.handle();
    let guard = Tailguard::builder()
        .cores(2.0)
        .work_queue(WorkQueueConfig::default())
        .start(&tokio::runtime::Handle::current())
        .unwrap();
    let job = tokio::spawn(example::background(guard.limiter().clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(axum::serve(listener, example::router(&guard, metrics)).into_future());

    let hello = get(address, "/hello", "x-tailguard-tenant: 7\r\nx-tailguard-deadline: 1us\r\n").await;
    assert!(hello.starts_with("HTTP/1.1 200"), "{hello}");
    assert!(hello.ends_with("hello\n"), "{hello}");
    let bad = get(address, "/hello", "x-tailguard-priority: urgent\r\n").await;
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    let metrics = get(address, "/metrics", "").await;
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    // The 400 never reached the queue; the 200 passed it (a free slot, whatever its deadline).
    assert_eq!(guard.work_queue().unwrap().snapshot().total_admitted, 1);

    // Shutdown stops the limiter: the job ends at its next grant.
    guard.shutdown();
    job.await.unwrap();
    server.abort();
}
