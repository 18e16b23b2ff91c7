//! Outlier capture, scripted with a manual clock: sampling rate, thresholding, window expiry,
//! bounded memory, nested spans and spans across threads, and the busy / idle / scheduling
//! breakdown.
#![cfg(feature = "tracing")]

use std::future::Future;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use proptest::prelude::*;
use tailguard::capture::{
    ArmError, CaptureHandle, CaptureLayer, CaptureSpec, CaptureState, Scheduled, SpanRecord, Trace,
};
use tailguard::clock::ManualClock;
use tracing::dispatcher::{self, Dispatch};
use tracing::{Instrument, info_span};
use tracing_subscriber::layer::SubscriberExt;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn nz(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap()
}

struct Fixture {
    clock: ManualClock,
    capture: CaptureHandle,
    dispatch: Dispatch,
}

fn fixture() -> Fixture {
    let clock = ManualClock::new();
    let layer = CaptureLayer::with_clock(clock.shared());
    let capture = layer.handle();
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    Fixture { clock, capture, dispatch }
}

impl Fixture {
    fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        dispatcher::with_default(&self.dispatch, f)
    }

    /// One request with `children` nested spans, taking `took`; its root is named "request",
    /// or "other" when `name` is not "request".
    fn request(&self, name: &str, children: usize, took: Duration) {
        self.run(|| {
            let root = if name == "request" { info_span!("request") } else { info_span!("other") };
            let _root = root.enter();
            for _ in 0..children {
                let child = info_span!("child");
                let _child = child.enter();
            }
            self.clock.advance(took);
        });
    }

    fn only_trace(&self) -> Trace {
        let list = self.capture.traces();
        assert_eq!(list.len(), 1, "{list:?}");
        self.capture.trace(list[0].id).unwrap()
    }
}

fn span<'a>(trace: &'a Trace, name: &str) -> &'a SpanRecord {
    trace.spans.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no span {name} in\n{trace}"))
}

#[test]
fn samples_at_the_given_rate() {
    // 20 000 roots at p = 0.1: mean 2000, sd ~42. The seed makes the count exact run to run;
    // the bound says it is also a plausible draw (±5 sd) for every seed tried.
    let n = 20_000;
    for seed in [1, 2, 3, CaptureSpec::DEFAULT_SEED] {
        let f = fixture();
        let spec = CaptureSpec::new("request").probability(0.1).seed(seed).threshold(Duration::MAX);
        f.capture.arm(spec.clone()).unwrap();
        for _ in 0..n {
            f.request("request", 0, Duration::ZERO);
        }
        let sampled = f.capture.status().unwrap().sampled;
        assert!((1790..=2210).contains(&sampled), "seed {seed}: sampled {sampled} of {n}");
        assert_eq!(f.capture.status().unwrap().below_threshold, sampled);

        // Same seed, fresh layer, same thread: the same draws.
        let again = fixture();
        again.capture.arm(spec).unwrap();
        for _ in 0..n {
            again.request("request", 0, Duration::ZERO);
        }
        assert_eq!(again.capture.status().unwrap().sampled, sampled, "seed {seed}");
    }
}

#[test]
fn probability_zero_and_one_and_other_names() {
    let f = fixture();
    f.capture.arm(CaptureSpec::new("request").probability(0.0)).unwrap();
    for _ in 0..1000 {
        f.request("request", 2, ms(1));
    }
    assert_eq!(f.capture.status().unwrap().sampled, 0);
    assert_eq!(f.capture.in_flight(), 0);
    f.capture.disarm().unwrap();

    f.capture.arm(CaptureSpec::new("request").probability(1.0)).unwrap();
    for _ in 0..10 {
        f.request("request", 1, ms(1));
        f.request("other", 1, ms(1)); // another root name: never sampled
    }
    let status = f.capture.status().unwrap();
    assert_eq!((status.sampled, status.kept), (10, 10));
    assert!(f.capture.traces().iter().all(|t| t.root == "request" && t.spans == 2));
}

#[test]
fn keeps_only_requests_over_the_threshold() {
    let f = fixture();
    f.capture.arm(CaptureSpec::new("request").probability(1.0).threshold(ms(5))).unwrap();
    for took in [1, 4, 5, 9, 2] {
        f.request("request", 1, ms(took));
    }
    let status = f.capture.status().unwrap();
    assert_eq!((status.sampled, status.kept, status.below_threshold), (5, 2, 3));
    let durations: Vec<_> = f.capture.traces().iter().map(|t| t.duration).collect();
    assert_eq!(durations, [ms(5), ms(9)]);
}

#[test]
fn stops_sampling_after_the_window() {
    let f = fixture();
    let id =
        f.capture.arm(CaptureSpec::new("request").probability(1.0).window(Duration::from_secs(10))).unwrap();
    f.request("request", 0, ms(1));
    f.clock.advance(Duration::from_secs(5));
    let status = f.capture.status().unwrap();
    assert_eq!((status.state, status.remaining), (CaptureState::Armed, Duration::from_millis(4_999)));
    let refused = f.capture.arm(CaptureSpec::new("other")).unwrap_err();
    assert!(
        matches!(&refused, ArmError::AlreadyArmed { armed, spec } if *armed == id && spec.fingerprint == "other")
    );

    f.clock.advance(Duration::from_secs(5));
    f.request("request", 0, ms(1)); // the window has passed: not sampled
    let status = f.capture.status().unwrap();
    assert_eq!(
        (status.state, status.sampled, status.kept, status.remaining),
        (CaptureState::Expired, 1, 1, Duration::ZERO)
    );
    assert_eq!(f.capture.disarm(), None, "nothing samples any more");

    // An expired arming may be replaced; its traces go with it.
    let next = f.capture.arm(CaptureSpec::new("request").probability(1.0)).unwrap();
    assert_ne!(next, id);
    assert!(f.capture.traces().is_empty());
    assert_eq!(f.capture.status().unwrap().state, CaptureState::Armed);
}

#[test]
fn a_request_sampled_inside_the_window_is_recorded_to_its_end() {
    let f = fixture();
    f.capture.arm(CaptureSpec::new("request").probability(1.0).window(Duration::from_secs(1))).unwrap();
    f.request("request", 3, Duration::from_secs(5));
    let trace = f.only_trace();
    assert_eq!((trace.duration, trace.spans.len()), (Duration::from_secs(5), 4));
    assert_eq!(f.capture.status().unwrap().state, CaptureState::Expired);
}

#[test]
fn holds_at_most_max_captures() {
    let f = fixture();
    f.capture.arm(CaptureSpec::new("request").probability(1.0).max_captures(nz(3))).unwrap();
    for _ in 0..10 {
        f.request("request", 1, ms(2));
    }
    let status = f.capture.status().unwrap();
    assert_eq!((status.state, status.sampled, status.kept), (CaptureState::Full, 3, 3));
    assert_eq!(f.capture.traces().len(), 3);
    // Clearing frees memory; the arming stays full.
    assert_eq!(f.capture.clear(), 3);
    f.request("request", 1, ms(2));
    assert!(f.capture.traces().is_empty());
    assert_eq!(f.capture.status().unwrap().kept, 3);
}

#[test]
fn holds_at_most_max_spans_per_trace() {
    let f = fixture();
    f.capture.arm(CaptureSpec::new("request").probability(1.0).max_spans(nz(4))).unwrap();
    f.run(|| {
        let root = info_span!("request");
        let _root = root.enter();
        for _ in 0..5 {
            let child = info_span!("child");
            let _child = child.enter();
            let grandchild = info_span!("grandchild");
            let _grandchild = grandchild.enter();
        }
    });
    let trace = f.only_trace();
    // Root, child, grandchild, child: then the rest (1 + 3 × 2 spans) is dropped.
    let names: Vec<_> = trace.spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["request", "child", "grandchild", "child"]);
    assert_eq!(trace.dropped_spans, 7);
    assert!(trace.to_string().contains("4 spans (7 more dropped)"));
}

#[test]
fn records_at_most_max_in_flight_requests() {
    let f = fixture();
    f.capture.arm(CaptureSpec::new("request").probability(1.0).max_in_flight(nz(2))).unwrap();
    f.run(|| {
        let a = info_span!("request", n = 1);
        let b = info_span!("request", n = 2);
        let c = info_span!("request", n = 3); // skipped: two already in flight
        assert_eq!(f.capture.in_flight(), 2);
        for request in [&a, &b, &c] {
            let _enter = request.enter();
            let _child = info_span!("child").entered();
        }
        f.clock.advance(ms(1));
    });
    assert_eq!(f.capture.in_flight(), 0);
    let status = f.capture.status().unwrap();
    assert_eq!((status.sampled, status.kept, status.skipped_in_flight), (2, 2, 1));
    for summary in f.capture.traces() {
        let trace = f.capture.trace(summary.id).unwrap();
        assert_eq!(trace.spans.len(), 2, "each trace holds its own child only:\n{trace}");
    }
}

#[test]
fn cuts_long_field_values() {
    let f = fixture();
    f.capture.arm(CaptureSpec::new("request").probability(1.0)).unwrap();
    f.run(|| {
        let long = "é".repeat(300);
        let root = info_span!("request", key = long.as_str(), status = tracing::field::Empty);
        root.record("status", 200);
    });
    let trace = f.only_trace();
    let fields = &trace.spans[0].fields;
    assert_eq!(fields[0].name, "key");
    assert!(fields[0].value.len() <= tailguard::capture::MAX_FIELD_LEN + '…'.len_utf8());
    assert!(fields[0].value.ends_with('…'));
    assert_eq!((fields[1].name.as_str(), fields[1].value.as_str()), ("status", "200"));
}

/// A field whose formatting opens a span of its own.
struct OpensSpan;

impl std::fmt::Debug for OpensSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let _inside = info_span!("inside_debug").entered();
        f.write_str("formatted")
    }
}

#[test]
fn a_field_that_opens_spans_while_formatted_does_not_deadlock() {
    let f = fixture();
    f.capture.arm(CaptureSpec::new("request").probability(1.0)).unwrap();
    f.run(|| {
        let root = info_span!("request");
        let _root = root.enter();
        let child = info_span!("child", value = ?OpensSpan, later = tracing::field::Empty);
        child.record("later", tracing::field::debug(OpensSpan));
    });
    let trace = f.only_trace();
    assert_eq!(span(&trace, "child").fields[0].value, "formatted");
    assert_eq!(span(&trace, "child").fields[1].value, "formatted");
    // Whether the spans opened while formatting are recorded is up to `tracing`, which hands
    // spans opened inside a subscriber's callback to no subscriber at all.
}

#[test]
fn nested_spans_and_spans_on_other_threads() {
    let f = fixture();
    f.capture.arm(CaptureSpec::new("request").probability(1.0)).unwrap();
    f.run(|| {
        let root = info_span!("request", id = 7);
        let _root = root.enter();
        f.clock.advance(ms(1));
        let parse = info_span!("parse");
        parse.in_scope(|| f.clock.advance(ms(2)));
        drop(parse);
        std::thread::scope(|s| {
            s.spawn(|| {
                // Another thread: the dispatcher is per thread, the parent explicit.
                dispatcher::with_default(&f.dispatch, || {
                    let worker = info_span!(parent: &root, "worker", shard = 3);
                    let _worker = worker.enter();
                    f.clock.advance(ms(4));
                    let io = info_span!("io");
                    io.in_scope(|| f.clock.advance(ms(5)));
                });
            });
        });
        f.clock.advance(ms(1));
    });
    let trace = f.only_trace();
    let names: Vec<_> = trace.spans.iter().map(|s| (s.name.as_str(), s.parent)).collect();
    assert_eq!(names, [("request", None), ("parse", Some(0)), ("worker", Some(0)), ("io", Some(2))]);
    let (root, parse, worker, io) =
        (&trace.spans[0], span(&trace, "parse"), span(&trace, "worker"), span(&trace, "io"));
    assert_eq!((root.start, root.duration, root.busy, root.idle), (ms(0), ms(13), ms(13), ms(0)));
    assert_eq!((parse.start, parse.duration, parse.busy), (ms(1), ms(2), ms(2)));
    assert_eq!((worker.start, worker.duration, worker.busy), (ms(3), ms(9), ms(9)));
    assert_eq!((io.start, io.duration, io.busy, io.enters), (ms(7), ms(5), ms(5), 1));
    assert_eq!(worker.fields[0].value, "3");

    let text = trace.to_string();
    let lines: Vec<_> = text.lines().collect();
    assert!(lines[0].starts_with("trace 1 (capture 1): request took 13.00ms"), "{text}");
    assert!(lines[2].ends_with("  request {id=7}"), "{text}");
    assert!(lines[3].ends_with("    parse"), "{text}");
    assert!(lines[4].ends_with("    worker {shard=3}"), "{text}");
    assert!(lines[5].ends_with("      io"), "{text}");
}

#[test]
fn a_child_span_keeps_its_request_open() {
    let f = fixture();
    f.capture.arm(CaptureSpec::new("request").probability(1.0).threshold(ms(10))).unwrap();
    let background = f.run(|| {
        let root = info_span!("request");
        let background = info_span!(parent: &root, "background");
        f.clock.advance(ms(3));
        background // the root's handle is dropped here, at 3 ms
    });
    f.clock.advance(ms(10));
    assert_eq!(f.capture.in_flight(), 1, "the open child still holds the request");
    assert!(f.capture.traces().is_empty());
    f.run(|| drop(background));
    assert_eq!(f.capture.in_flight(), 0);
    let trace = f.only_trace();
    assert_eq!((trace.duration, span(&trace, "background").duration), (ms(13), ms(13)));
}

/// A hop of a request: each poll runs for the next scripted time and keeps its waker.
fn hop(
    clock: ManualClock,
    runs: Vec<Duration>,
    waker: Arc<Mutex<Option<Waker>>>,
) -> impl Future<Output = ()> {
    let mut runs = runs.into_iter();
    std::future::poll_fn(move |cx| {
        let run = runs.next().expect("polled after completion");
        clock.advance(run);
        *waker.lock().unwrap() = Some(cx.waker().clone());
        if runs.len() == 0 { Poll::Ready(()) } else { Poll::Pending }
    })
}

#[test]
fn splits_idle_time_into_waiting_and_waiting_to_be_scheduled() {
    let f = fixture();
    f.capture.arm(CaptureSpec::new("request").probability(1.0)).unwrap();
    let slot: Arc<Mutex<Option<Waker>>> = Arc::new(Mutex::new(None));
    let wake = || slot.lock().unwrap().take().expect("the hop kept its waker").wake();
    let mut cx = Context::from_waker(Waker::noop());
    f.run(|| {
        let root = info_span!("request");
        // The hop runs 1 ms, waits 10 ms for I/O, is woken, waits 4 ms for a worker, runs 2 ms.
        let work = hop(f.clock.clone(), vec![ms(1), ms(2)], Arc::clone(&slot));
        let mut task =
            Scheduled::with_clock(work.instrument(info_span!(parent: &root, "hop")), f.clock.shared());
        assert!(Pin::new(&mut task).poll(&mut cx).is_pending());
        f.clock.advance(ms(10));
        wake();
        f.clock.advance(ms(4));
        assert!(Pin::new(&mut task).poll(&mut cx).is_ready());
        drop(task);
        // A second hop, never woken by anything: its wait is not scheduling delay.
        let work = hop(f.clock.clone(), vec![ms(1), ms(1)], Arc::clone(&slot));
        let mut task = Scheduled::with_clock(
            work.instrument(info_span!(parent: &root, "unscheduled")),
            f.clock.shared(),
        );
        assert!(Pin::new(&mut task).poll(&mut cx).is_pending());
        f.clock.advance(ms(3));
        assert!(Pin::new(&mut task).poll(&mut cx).is_ready()); // polled without a wake
    });
    let trace = f.only_trace();
    let first = span(&trace, "hop");
    assert_eq!((first.duration, first.busy, first.idle), (ms(17), ms(3), ms(14)));
    let scheduling = (first.polls, first.scheduled_polls, first.scheduling_delay, first.max_scheduling_delay);
    assert_eq!(scheduling, (2, 1, ms(4), ms(4)));
    let other = span(&trace, "unscheduled");
    assert_eq!(
        (other.duration, other.busy, other.idle, other.polls, other.scheduling_delay),
        (ms(5), ms(2), ms(3), 2, ms(0))
    );
    let root = &trace.spans[0];
    assert_eq!((root.duration, root.busy, root.idle), (ms(22), ms(0), ms(22)));
    assert_eq!((trace.scheduling_delay, trace.scheduled_polls, trace.polls), (ms(4), 1, 4));
    assert!(trace.to_string().contains("    17.00ms     3.00ms    14.00ms   4.00ms/1    hop"), "{trace}");
    let summary = &f.capture.traces()[0];
    assert_eq!((summary.scheduling_delay, summary.scheduled_polls), (ms(4), 1));
}

#[test]
fn a_request_across_tokio_tasks_on_worker_threads() {
    // Real threads and the system clock: only the structure is asserted, never a time.
    let layer = CaptureLayer::new();
    let capture = layer.handle();
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    capture.arm(CaptureSpec::new("request").probability(1.0)).unwrap();
    // The subscriber must be every worker's default, as a global default would be: the registry
    // releases an entered span through the thread's default dispatcher.
    let worker_dispatch = dispatch.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .on_thread_start(move || std::mem::forget(dispatcher::set_default(&worker_dispatch)))
        .build()
        .unwrap();
    dispatcher::with_default(&dispatch, || {
        runtime.block_on(async {
            let root = info_span!("request");
            for n in 0..3 {
                let hop =
                    async { tokio::task::yield_now().await }.instrument(info_span!(parent: &root, "hop", n));
                tokio::spawn(Scheduled::new(hop)).await.unwrap(); // the hop's span has closed by now
            }
        })
    });
    let list = capture.traces();
    assert_eq!(list.len(), 1, "{:?} in flight {}", capture.status(), capture.in_flight());
    let trace = capture.trace(list[0].id).unwrap();
    assert_eq!(trace.spans.len(), 4, "{trace}");
    for hop in &trace.spans[1..] {
        assert_eq!((hop.name.as_str(), hop.parent), ("hop", Some(0)));
        // yield_now wakes the task at once: two polls, the second after a wake.
        assert_eq!((hop.polls, hop.scheduled_polls), (2, 1), "{trace}");
    }
    assert_eq!((trace.polls, trace.scheduled_polls), (6, 3));
}

#[test]
fn handles_and_layers_cross_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CaptureHandle>();
    assert_send_sync::<CaptureLayer>();
}

#[test]
fn nested_spans_in_one_poll_count_its_delay_once_for_the_trace() {
    let f = fixture();
    f.capture.arm(CaptureSpec::new("request").probability(1.0)).unwrap();
    f.run(|| {
        let root = info_span!("request");
        let _scope = tailguard::capture::PollScope::enter(Some(ms(6)));
        let _root = root.enter();
        let inner = info_span!("inner");
        inner.in_scope(|| inner.in_scope(|| f.clock.advance(ms(1)))); // entered twice, one poll
    });
    let trace = f.only_trace();
    let inner = span(&trace, "inner");
    assert_eq!((inner.enters, inner.polls, inner.scheduling_delay), (2, 1, ms(6)));
    assert_eq!(trace.spans[0].scheduling_delay, ms(6), "the root waited too");
    assert_eq!((trace.scheduling_delay, trace.polls), (ms(6), 1), "counted once for the request");
}

#[test]
fn lists_clears_disarms_and_counts_per_minute() {
    let f = fixture();
    assert!(f.capture.status().is_none());
    assert_eq!(f.capture.disarm(), None);
    f.capture.arm(CaptureSpec::new("request").probability(1.0)).unwrap();
    for (minute, second) in [(0, 1), (0, 2), (2, 1), (3, 1), (3, 2), (3, 3)] {
        f.clock.set_nanos(Duration::from_secs(minute * 60 + second).as_nanos() as u64);
        f.request("request", 0, ms(1));
    }
    let list = f.capture.traces();
    assert_eq!(list.iter().map(|t| t.id.0).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6]);
    assert_eq!(list[2].started_at, Duration::from_secs(121));
    assert_eq!(
        f.capture.histogram().to_string(),
        "minute | freq\n00:00  | ** 2\n00:01  |  0\n00:02  | * 1\n00:03  | *** 3\n"
    );
    assert!(f.capture.status().unwrap().to_string().starts_with("capture 1 (armed): request, p=1"));
    assert!(list[0].to_string().contains("+0:00:01.000"));

    assert_eq!(f.capture.disarm().map(|id| id.0), Some(1));
    f.request("request", 0, ms(1));
    let status = f.capture.status().unwrap();
    assert_eq!((status.state, status.sampled), (CaptureState::Disarmed, 6));
    assert!(f.capture.trace(list[5].id).is_some());
    assert_eq!(f.capture.clear(), 6);
    assert!(f.capture.trace(list[5].id).is_none());
    assert_eq!(f.capture.histogram().total(), 0);
}

#[test]
fn refuses_bad_specs() {
    let f = fixture();
    assert_eq!(f.capture.arm(CaptureSpec::new("")), Err(ArmError::EmptyFingerprint));
    assert_eq!(f.capture.arm(CaptureSpec::new("r").probability(1.5)), Err(ArmError::Probability(1.5)));
    assert!(matches!(
        f.capture.arm(CaptureSpec::new("r").probability(f64::NAN)),
        Err(ArmError::Probability(_))
    ));
    assert_eq!(f.capture.arm(CaptureSpec::new("r").window(Duration::ZERO)), Err(ArmError::ZeroWindow));
    assert_eq!(
        ArmError::Probability(-1.0).to_string(),
        "probability -1 is out of range: use 0.0 ..= 1.0 (default 0.01)"
    );
    assert!(f.capture.status().is_none());
}

#[cfg(feature = "serde")]
#[test]
fn plain_data_is_serde() {
    fn serde_both<T: serde::Serialize + serde::de::DeserializeOwned>() {}
    serde_both::<CaptureSpec>();
    serde_both::<tailguard::capture::CaptureStatus>();
    serde_both::<tailguard::capture::TraceSummary>();
    serde_both::<Trace>();
    serde_both::<tailguard::capture::MinuteHistogram>();
}

/// One request of the property test: children per level and how long the root takes.
#[derive(Clone, Debug)]
struct Script {
    children: Vec<(usize, bool)>,
    took_ms: u64,
}

fn script() -> impl Strategy<Value = Script> {
    (proptest::collection::vec((0usize..4, any::<bool>()), 0..8), 0u64..20)
        .prop_map(|(children, took_ms)| Script { children, took_ms })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the requests, memory stays within the spec, every sampled request is accounted
    /// for exactly once, and every kept trace is a well-formed tree.
    #[test]
    fn bounds_and_accounting_hold(
        requests in proptest::collection::vec(script(), 1..40),
        probability in 0.0f64..=1.0,
        threshold_ms in 0u64..20,
        max_captures in 1usize..6,
        max_spans in 1usize..10,
    ) {
        let f = fixture();
        let spec = CaptureSpec::new("request")
            .probability(probability)
            .threshold(ms(threshold_ms))
            .max_captures(nz(max_captures))
            .max_spans(nz(max_spans));
        f.capture.arm(spec).unwrap();
        let mut created = Vec::new();
        for request in &requests {
            let mut outliving = Vec::new();
            f.run(|| {
                let root = info_span!("request");
                let _root = root.enter();
                let mut spans = 1;
                for &(grandchildren, leave_open) in &request.children {
                    let child = info_span!("child");
                    let _child = child.enter();
                    f.clock.advance(ms(1));
                    spans += 1 + grandchildren;
                    let grandchildren: Vec<_> = (0..grandchildren).map(|_| info_span!("grandchild")).collect();
                    if leave_open {
                        outliving.extend(grandchildren); // closed after the root's handle
                    }
                }
                f.clock.advance(ms(request.took_ms));
                created.push(spans);
            });
            f.clock.advance(ms(1));
            f.run(|| drop(outliving));
        }
        let status = f.capture.status().unwrap();
        prop_assert!(status.kept <= max_captures as u64);
        prop_assert_eq!(status.sampled, status.kept + status.below_threshold + status.dropped);
        let traces = f.capture.traces();
        prop_assert_eq!(traces.len() as u64, status.kept);
        for summary in traces {
            let trace = f.capture.trace(summary.id).unwrap();
            prop_assert!(trace.duration >= ms(threshold_ms));
            prop_assert!(trace.spans.len() <= max_spans);
            prop_assert!(created.contains(&(trace.spans.len() + trace.dropped_spans as usize)));
            prop_assert_eq!(trace.tree_order().len(), trace.spans.len());
            for (i, s) in trace.spans.iter().enumerate() {
                prop_assert_eq!(s.busy + s.idle, s.duration);
                prop_assert!(s.parent.is_none_or(|p| p < i));
                prop_assert!(s.start + s.duration <= trace.duration);
            }
        }
    }
}
