//! The live page of `tailguard serve` in a real browser: headless Chromium driven over WebDriver
//! (chromedriver + fantoccini) loads `/`, and the four charts must render and keep updating.
//!
//! Skipped, with a message saying how to install them, where Chromium or chromedriver is absent
//! (`.ci/run` installs Debian's `chromium` and `chromium-driver`). `TAILGUARD_CHROMIUM` and
//! `TAILGUARD_CHROMEDRIVER` override the binaries' paths.

mod support;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};
use serde_json::json;
use support::Server;

const CHARTS: [&str; 4] = ["chart-share", "chart-scheduling", "chart-request", "chart-elastic-cpu"];

fn find(env: &str, candidates: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    candidates
        .iter()
        .find_map(|name| std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file()))
}

/// chromedriver on a free loopback port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start(binary: &PathBuf) -> Driver {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "chromedriver never listened on {addr}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver { child, url: format!("http://{addr}") }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A chart's axis labels are distinct numbers in its unit, and the axis read at the line's last
/// point gives the value in the chart's header: axis and header apply the same scale (a share of
/// 0.0625 reads 6.25 % on both).
fn axis_agrees_with_header(id: &str, state: &serde_json::Value) {
    let axis = &state["axes"][id];
    let unit = axis["unit"].as_str().unwrap();
    let labels: Vec<&str> = axis["labels"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    let grid: Vec<f64> = axis["grid"].as_array().unwrap().iter().map(|y| y.as_f64().unwrap()).collect();
    assert!(labels.len() >= 3 && labels.len() == grid.len(), "{id}: labels {labels:?} at {grid:?}");
    for (i, label) in labels.iter().enumerate() {
        assert!(!labels[..i].contains(label), "{id}: the axis labels repeat: {labels:?}");
    }
    let ticks: Vec<f64> = labels
        .iter()
        .map(|l| l.strip_suffix(unit).and_then(|n| n.parse().ok()))
        .collect::<Option<_>>()
        .unwrap_or_else(|| panic!("{id}: axis labels {labels:?} are not numbers in {unit}"));
    // Evenly spaced labels: none rounded to a neighbour's value or away from its grid line.
    let step = ticks[1] - ticks[0];
    assert!(
        step > 0.0 && ticks.windows(2).all(|w| ((w[1] - w[0]) - step).abs() <= 1e-9 * ticks[ticks.len() - 1]),
        "{id}: uneven axis labels {labels:?}"
    );
    let header = axis["value"].as_str().unwrap();
    let Some(shown) = header.strip_suffix(unit).and_then(|n| n.trim().parse::<f64>().ok()) else {
        panic!("{id}: the header {header:?} is not a number in {unit}");
    };
    let points = state["charts"][id].as_str().unwrap();
    let last_y: f64 = points.split_whitespace().last().unwrap().split(',').nth(1).unwrap().parse().unwrap();
    let (top, bottom) = (ticks[ticks.len() - 1], ticks[0]);
    let (top_y, bottom_y) = (grid[grid.len() - 1], grid[0]);
    let read = bottom + (last_y - bottom_y) / (top_y - bottom_y) * (top - bottom);
    // Within two percent of the axis: the line's coordinates are rounded to a tenth of a pixel
    // and the header to three digits.
    assert!(
        (read - shown).abs() <= 0.02 * top,
        "{id}: the axis reads {read:.4} {unit} at the line's end, the header says {header:?} \
         (labels {labels:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_page_draws_four_charts_that_keep_updating() {
    let (Some(chromium), Some(chromedriver)) = (
        find("TAILGUARD_CHROMIUM", &["chromium", "chromium-browser", "google-chrome"]),
        find("TAILGUARD_CHROMEDRIVER", &["chromedriver"]),
    ) else {
        eprintln!(
            "SKIPPED the_live_page_draws_four_charts_that_keep_updating: no Chromium and chromedriver \
             found (install Debian's `chromium` and `chromium-driver`, or set TAILGUARD_CHROMIUM and \
             TAILGUARD_CHROMEDRIVER)"
        );
        return;
    };
    let server = Server::start(&["--keys", "20000", "--value-size", "64"]);
    let driver = Driver::start(&chromedriver);
    // Foreground traffic for the request-latency chart, until the test ends.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (stop, addr) = (Arc::clone(&stop), server.addr);
        std::thread::spawn(move || {
            let mut key = 0u64;
            while !stop.load(Ordering::Relaxed) {
                support::request(addr, "GET", &format!("/kv/{}", key % 20_000), b"");
                key += 7;
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };

    let profile = tempfile::tempdir().unwrap();
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1200,900",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session with headless Chromium");

    client.goto(&server.url("/")).await.unwrap();
    // Start a backup from the page itself, so the elastic charts have something to show.
    client.find(Locator::Css("#start-backup")).await.unwrap().click().await.unwrap();

    // Poll (not sleep-and-hope): the page refreshes every 500 ms.
    let state = r#"
        const charts = {}, axes = {};
        for (const chart of document.querySelectorAll('.chart')) {
            const line = chart.querySelector('polyline');
            charts[chart.id] = line ? line.getAttribute('points') : null;
            axes[chart.id] = {
                unit: chart.dataset.unit,
                labels: [...chart.querySelectorAll('text.tick')].map(t => t.textContent),
                grid: [...chart.querySelectorAll('line.grid-line')].map(l => Number(l.getAttribute('y1'))),
                value: chart.querySelector('.value').textContent,
            };
        }
        return { updates: Number(document.body.dataset.updates || 0), charts, axes,
                 jobs: document.getElementById('jobs').textContent,
                 status: document.getElementById('status').textContent };
    "#;
    let read = || async { client.execute(state, vec![]).await.unwrap() };
    let points = |state: &serde_json::Value, id: &str| {
        state["charts"][id].as_str().map_or(0, |points| points.split(' ').filter(|p| !p.is_empty()).count())
    };
    let brief = |state: &serde_json::Value| {
        let counts: Vec<String> =
            CHARTS.iter().map(|id| format!("{id}: {} points", points(state, id))).collect();
        format!(
            "updates {}, {}, jobs {:?}, status {:?}",
            state["updates"],
            counts.join(", "),
            state["jobs"],
            state["status"]
        )
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    let first = loop {
        let now = read().await;
        let drawn = CHARTS.iter().all(|id| points(&now, id) >= 2);
        if drawn && now["jobs"].as_str().unwrap_or("").contains("backup #1") {
            break now;
        }
        assert!(Instant::now() < deadline, "the charts never drew two points each: {}", brief(&now));
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // And they keep updating: more refreshes, and the scheduling chart's line changes.
    let later = loop {
        let now = read().await;
        let moved = now["charts"]["chart-scheduling"] != first["charts"]["chart-scheduling"];
        if now["updates"].as_u64() >= first["updates"].as_u64().map(|u| u + 3) && moved {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "the charts stopped updating: {} then {}",
            brief(&first),
            brief(&now)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(later["status"].as_str().unwrap().contains("control on"), "{}", brief(&later));
    // The value headers show numbers.
    for id in CHARTS {
        let value = client.find(Locator::Css(&format!("#{id} .value"))).await.unwrap().text().await.unwrap();
        assert!(!value.is_empty(), "{id} shows no value");
        axis_agrees_with_header(id, &later);
    }
    if let Ok(png) = client.screenshot().await {
        let _ = std::fs::write(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("serve-live-page.png"), png);
    }
    client.close().await.unwrap();
    stop.store(true, Ordering::Relaxed);
    traffic.join().unwrap();
}
