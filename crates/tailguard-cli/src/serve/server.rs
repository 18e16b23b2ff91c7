//! The HTTP/1.1 server under the routes: accepts connections, holds each to three deadlines,
//! and shuts down within a deadline of its own.
//!
//! - **Header read** (`--header-read-timeout`): a request's head must arrive whole within this
//!   time — from the connection's accept for its first request, from its first byte for a later
//!   one (Go's `ReadHeaderTimeout` works the same way). A client that sends a byte a second is cut
//!   off like a silent one.
//! - **Request body** (`--request-body-timeout`): the whole body within this time of the head; a
//!   handler that reads a late body answers 408 and the connection closes.
//! - **Idle** (`--idle-timeout`): a keep-alive connection may wait this long for its next request.
//!
//! A connection cut off by a deadline is closed without a response: there is no request to
//! answer. Each connection has one watchdog future, racing hyper's connection future in the
//! connection's task; the cost per request is a few relaxed atomics and one wake-up.
//!
//! **Shutdown.** On the first SIGINT or SIGTERM the listener closes, idle connections close, and
//! requests in flight (and running jobs) get `--shutdown-timeout` to finish; then whatever is
//! left is closed and the process exits. A second signal exits at once.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, Response};
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::signals::Signals;
use tokio::time::{Instant, Sleep};

/// The three per-connection deadlines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Longest time for a request's head.
    pub header_read: Duration,
    /// Longest time for a request's body, from its head.
    pub request_body: Duration,
    /// Longest wait of a keep-alive connection for its next request.
    pub idle: Duration,
}

/// How shutdown went.
#[derive(Debug, Default)]
pub struct Drained {
    /// Connections still open at the deadline, closed then.
    pub cut_off: usize,
}

/// Which deadline closed a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expired {
    HeaderRead,
    Idle,
}

impl Expired {
    fn name(self) -> &'static str {
        match self {
            Expired::HeaderRead => "header-read",
            Expired::Idle => "idle",
        }
    }
}

/// What a connection's watchdog sees of it: bytes arriving, requests in the service.
#[derive(Debug, Default)]
struct Activity {
    /// Requests handed to the routes whose responses have not been sent whole.
    busy: AtomicUsize,
    /// Responses sent whole (monotonically increasing).
    finished: AtomicU64,
    /// Whether a byte arrived since the watchdog last cleared it.
    read: AtomicBool,
    /// Wakes the watchdog on the first byte after a clear, and when a request ends.
    changed: Notify,
}

impl Activity {
    fn on_read(&self) {
        if !self.read.swap(true, Relaxed) {
            self.changed.notify_one();
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.busy.fetch_add(1, Relaxed);
        InFlight(Arc::clone(self))
    }

    /// Resolves when a deadline passes with no request in the service (counted in
    /// `tailguard_connections_timed_out_total{deadline}`, monotonically increasing).
    async fn expired(&self, timeouts: Timeouts) -> Expired {
        // The first request's head is due `header_read` after the accept.
        let mut waiting = Expired::HeaderRead;
        let mut deadline = Instant::now() + timeouts.header_read;
        let mut seen_finished = 0;
        loop {
            let finished = self.finished.load(Relaxed);
            if finished != seen_finished {
                // A response went out: the connection is idle until its next byte.
                seen_finished = finished;
                self.read.store(false, Relaxed);
                waiting = Expired::Idle;
                deadline = Instant::now() + timeouts.idle;
            }
            let busy = self.busy.load(Relaxed) > 0;
            if !busy && waiting == Expired::Idle && self.read.load(Relaxed) {
                // A byte of the next request: its head is due `header_read` from now.
                waiting = Expired::HeaderRead;
                deadline = Instant::now() + timeouts.header_read;
            }
            let changed = self.changed.notified();
            if busy {
                // The routes have the request; the body deadline is theirs.
                changed.await;
                continue;
            }
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep_until(deadline) => {
                    let quiet = self.busy.load(Relaxed) == 0
                        && self.finished.load(Relaxed) == seen_finished
                        && !(waiting == Expired::Idle && self.read.load(Relaxed));
                    if quiet {
                        metrics::counter!("tailguard_connections_timed_out_total", "deadline" => waiting.name())
                            .increment(1);
                        return waiting;
                    }
                }
            }
        }
    }
}

/// A request in the routes; dropped with its response body, once that is sent (or abandoned).
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.finished.fetch_add(1, Relaxed);
        self.0.busy.fetch_sub(1, Relaxed);
        self.0.changed.notify_one();
    }
}

/// The TCP stream, telling the watchdog when bytes arrive.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.stream).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            self.activity.on_read();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A request body that fails with [`BodyTimedOut`] once its deadline passes unfinished.
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    limit: Duration,
}

/// The error of a request body that did not arrive whole within `--request-body-timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within --request-body-timeout ({limit:?})")]
pub struct BodyTimedOut {
    /// The timeout.
    pub limit: Duration,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        ready!(self.deadline.as_mut().poll(cx));
        Poll::Ready(Some(Err(Box::new(BodyTimedOut { limit: self.limit }))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that holds its request's [`InFlight`] until it is sent or dropped.
pub struct InFlightBody {
    inner: Body,
    _in_flight: InFlight,
}

impl http_body::Body for InFlightBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether `error` (or an error it wraps) is a [`BodyTimedOut`].
pub fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if error.is::<BodyTimedOut>() {
            return true;
        }
        next = error.source();
    }
    false
}

/// Serves `router` on `listener` until the first signal, then calls `on_signal` with its name,
/// closes the listener, and drains within `shutdown_timeout`: idle connections close at once,
/// requests in flight may finish, and `drain_also` (the jobs winding down) runs alongside
/// under the same deadline; at the deadline what is left is closed. A second signal ends the
/// wait at once with [`Interrupted`].
///
/// # Errors
/// [`Interrupted`] on a second signal.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    timeouts: Timeouts,
    shutdown_timeout: Duration,
    signals: &mut Signals,
    on_signal: impl FnOnce(&'static str),
    drain_also: impl Future<Output = ()>,
) -> Result<Drained, Interrupted> {
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The watchdog keeps the header deadline (hyper's own would run over idle time too).
    builder.timer(TokioTimer::new()).header_read_timeout(None::<Duration>).keep_alive(true);
    let mut accept_errors = 0u64;
    let signal = loop {
        tokio::select! {
            name = signals.next() => break name,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let _ = stream.set_nodelay(true);
                    let activity = Arc::new(Activity::default());
                    let io = TokioIo::new(Watched { stream, activity: Arc::clone(&activity) });
                    let service = {
                        let (router, activity) = (router.clone(), Arc::clone(&activity));
                        hyper::service::service_fn(move |request| {
                            respond(router.clone(), activity.begin(), request, timeouts.request_body)
                        })
                    };
                    let connection = graceful.watch(builder.serve_connection(io, service));
                    connections.spawn(async move {
                        tokio::select! {
                            _ = connection => {}
                            _ = activity.expired(timeouts) => {}
                        }
                    });
                }
                Err(error) => {
                    // Out of file descriptors, most likely: say so now and then, and back off
                    // instead of spinning.
                    accept_errors += 1;
                    if accept_errors.is_power_of_two() {
                        tracing::warn!("cannot accept a connection ({accept_errors} so far): {error}");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    };
    drop(listener);
    on_signal(signal);
    let drain = async {
        tokio::join!(graceful.shutdown(), drain_also);
    };
    tokio::select! {
        () = drain => Ok(Drained::default()),
        () = tokio::time::sleep(shutdown_timeout) => {
            let cut_off = connections.len();
            connections.abort_all();
            while connections.join_next().await.is_some() {}
            Ok(Drained { cut_off })
        }
        name = signals.next() => Err(Interrupted { signal: name, open: connections.len() }),
    }
}

/// A second signal arrived while shutting down.
#[derive(Debug, thiserror::Error)]
#[error("a second signal ({signal}): exiting at once, {open} connections still open")]
pub struct Interrupted {
    /// The second signal's name.
    pub signal: &'static str,
    /// Connections open then.
    pub open: usize,
}

/// One request: its body gets its deadline, its response body holds `in_flight` until sent.
async fn respond(
    mut router: Router,
    in_flight: InFlight,
    request: Request<Incoming>,
    body_timeout: Duration,
) -> Result<Response<InFlightBody>, Infallible> {
    let request = request.map(|inner| {
        if inner.is_end_stream() {
            // No body (most GETs): nothing to time.
            return Body::new(inner);
        }
        Body::new(DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(body_timeout)),
            limit: body_timeout,
        })
    });
    let response = tower_service::Service::call(&mut router, request).await?;
    Ok(response.map(|inner| InFlightBody { inner, _in_flight: in_flight }))
}
