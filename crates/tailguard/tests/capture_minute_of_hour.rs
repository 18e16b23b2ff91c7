//! Outlier capture grouped by minute of the hour, scripted with a manual clock: slow requests
//! at :00 and :35 over several hours pile up in those two minutes, while the histogram since
//! arming spreads them over the hours; the wall clock is read at each root's creation.
#![cfg(feature = "tracing")]

use std::time::{Duration, UNIX_EPOCH};

use tailguard::capture::{CaptureHandle, CaptureLayer, CaptureSpec};
use tailguard::clock::{Clock, ManualClock};
use tracing::dispatcher::{self, Dispatch};
use tracing::info_span;
use tracing_subscriber::layer::SubscriberExt;

/// 2024-01-01T10:00:00Z.
const TEN_O_CLOCK: u64 = 1_704_103_200;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
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
    /// One request taking `took`.
    fn request(&self, took: Duration) {
        dispatcher::with_default(&self.dispatch, || {
            let root = info_span!("request");
            let _root = root.enter();
            self.clock.advance(took);
        });
    }

    /// Moves both clocks on until the wall clock reads 10:00:00Z + `since_ten`.
    fn advance_to(&self, since_ten: Duration) {
        let now = Duration::from_nanos(self.clock.unix_nanos());
        self.clock.advance(secs(TEN_O_CLOCK) + since_ten - now);
    }
}

#[test]
fn slow_requests_at_fixed_minutes_pile_up_by_minute_of_the_hour() {
    let f = fixture();
    f.clock.set_unix_time(secs(TEN_O_CLOCK - 60)); // 09:59:00Z
    let spec = CaptureSpec::new("request").probability(1.0).threshold(secs(1)).window(secs(5 * 3600));
    f.capture.arm(spec).unwrap();

    // Every hour from 10:00 to 13:00: a backup at :00 and another at :35 each slow one request
    // (2 s); fast requests (1 ms) in between are sampled but not kept.
    for hour in 0..4 {
        for minute in [0, 35] {
            f.advance_to(secs(hour * 3600 + minute * 60 + 20));
            f.request(secs(2));
            f.request(Duration::from_millis(1));
        }
    }
    // One more slow request, at 13:59:59.5: still minute 59, its root read before it ends.
    f.advance_to(secs(3 * 3600 + 59 * 60 + 59) + Duration::from_millis(500));
    f.request(secs(2));

    let status = f.capture.status().unwrap();
    assert_eq!((status.kept, status.below_threshold), (9, 8));
    let by_minute = f.capture.minute_of_hour_histogram();
    assert_eq!(by_minute.counts.len(), 60);
    assert_eq!((by_minute.counts[0], by_minute.counts[35], by_minute.counts[59]), (4, 4, 1));
    assert_eq!(by_minute.total(), 9);
    let text = by_minute.to_string();
    assert!(text.contains("\n:00    | **** 4\n:01    |  0\n"), "{text}");
    assert!(text.contains("\n:35    | **** 4\n"), "{text}");

    // Since arming (09:59:00) the same requests spread over four hours: minutes 1, 36, 61, ….
    let since_arming = f.capture.histogram();
    assert_eq!(since_arming.total(), 9);
    assert_eq!(since_arming.counts.len(), 4 * 60 + 1);
    for minute in [1, 36, 61, 96, 121, 156, 181, 216, 240] {
        assert_eq!(since_arming.counts[minute], 1, "minute {minute} since arming");
    }

    // Each trace carries its wall-clock start.
    let first = f.capture.traces()[0].clone();
    assert_eq!(first.started_at_wall, UNIX_EPOCH + secs(TEN_O_CLOCK + 20));
    assert_eq!(first.started_at, secs(80));
    let trace = f.capture.trace(first.id).unwrap();
    assert_eq!(trace.started_at_wall, first.started_at_wall);
}

#[test]
fn the_wall_clock_is_read_when_each_root_is_created_so_a_clock_step_moves_later_traces_only() {
    let f = fixture();
    f.clock.set_unix_time(secs(TEN_O_CLOCK + 5 * 60)); // 10:05:00Z
    let spec = CaptureSpec::new("request").probability(1.0).threshold(secs(1));
    f.capture.arm(spec).unwrap();
    f.request(secs(2)); // starts 10:05:00
    // The system time is set back 3 minutes (monotonic time does not move).
    f.clock.set_unix_time(secs(TEN_O_CLOCK + 4 * 60)); // 10:04:00, 2 s after 10:05:00
    f.request(secs(2));
    let by_minute = f.capture.minute_of_hour_histogram();
    assert_eq!((by_minute.counts[4], by_minute.counts[5]), (1, 1));
    // Since arming, both are in minute 0.
    assert_eq!(f.capture.histogram().counts, [2]);
}

#[cfg(feature = "serde")]
#[test]
fn the_minute_of_hour_histogram_is_serde() {
    fn serde_both<T: serde::Serialize + serde::de::DeserializeOwned>() {}
    serde_both::<tailguard::capture::MinuteOfHourHistogram>();
}
