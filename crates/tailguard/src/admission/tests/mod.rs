//! Work-queue tests on a manual clock and a scripted run-queue signal.

use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::*;
use crate::clock::ManualClock;

const MS: Duration = Duration::from_millis(1);

/// A queue whose slot count stays at `slots` unless samples move it within `min ..= max`.
fn queue_with(clock: &ManualClock, slots: u32, min: u32, max: u32, order: QueueOrder) -> WorkQueue {
    let config = WorkQueueConfig {
        initial_slots: slots,
        min_slots: min,
        max_slots: max,
        order,
        cores: 2.0,
        ..WorkQueueConfig::default()
    };
    WorkQueue::new(config, clock.shared()).unwrap()
}

/// A queue with exactly `slots` slots.
fn fixed(clock: &ManualClock, slots: u32) -> WorkQueue {
    queue_with(clock, slots, slots, slots, QueueOrder::Fifo)
}

fn poll(future: &mut AdmitFuture) -> Poll<Result<Permit, AdmitError>> {
    Pin::new(future).poll(&mut Context::from_waker(Waker::noop()))
}

fn pending(queue: &WorkQueue, request: Request) -> AdmitFuture {
    let mut future = queue.admit_async(&request);
    assert!(poll(&mut future).is_pending(), "{request:?} should queue");
    future
}

fn tenant(id: u64) -> Request {
    Request::new().tenant(TenantId(id))
}

/// Frees one slot by dropping `held`, and returns the index of the one future (of `futures`)
/// that got it, keeping its permit in `held`.
fn hand_over(held: &mut Permit, futures: &mut Vec<(usize, AdmitFuture)>) -> usize {
    let mut admitted = None;
    // Drop first so the slot is handed on, then find who got it.
    let released = std::mem::replace(held, placeholder());
    drop(released);
    futures.retain_mut(|(label, future)| match poll(future) {
        Poll::Ready(Ok(permit)) => {
            assert!(admitted.is_none(), "one slot admitted two waiters");
            admitted = Some(*label);
            *held = permit;
            false
        }
        Poll::Ready(Err(error)) => panic!("waiter {label} failed: {error}"),
        Poll::Pending => true,
    });
    admitted.expect("a freed slot goes to a waiter")
}

/// A permit of a queue of its own, standing in while a real one is swapped out.
/// A one-slot LIFO-under-overload queue (after 5 ms) whose slot is held, and four waiters
/// labelled 0..4 that arrived 1 ms apart (the clock ends 1 ms after the last).
fn lifo_with_four_waiters(clock: &ManualClock) -> (WorkQueue, Permit, Vec<(usize, AdmitFuture)>) {
    let queue = queue_with(clock, 1, 1, 1, QueueOrder::LifoUnderOverload { after: 5 * MS });
    let held = queue.try_admit(&Request::new()).unwrap();
    let mut futures = Vec::new();
    for i in 0..4 {
        futures.push((i, pending(&queue, Request::new())));
        clock.advance(MS);
    }
    (queue, held, futures)
}

fn placeholder() -> Permit {
    let queue = fixed(&ManualClock::new(), 1);
    queue.try_admit(&Request::new()).unwrap()
}

fn clock_now(clock: &ManualClock) -> u64 {
    crate::clock::Clock::now_nanos(clock)
}

mod caps;
mod fast_path;
mod lazy_removal;
mod lifo_properties;
mod order;
mod properties;
mod rejections;
mod slots;
mod submit;
mod totals;
