//! The foreground service: each request hops client task → server task → storage task and
//! back over oneshot channels, each hop doing a measured amount of genuine CPU work.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tailguard::histogram::WindowedHistogram;
use tailguard::observe::PollMonitor;
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tracing::Instrument as _;

use super::keyspace::{Key, KeyspaceConfig, Value};
use super::store::Store;

/// CPU work per request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkConfig {
    /// Bytes hashed (FNV-1a, one multiply per byte: genuinely CPU-bound) at each of the four
    /// hops (client encode, server parse, storage checksum, server response). The default,
    /// 4 KiB, is a few µs per hop in a release build, so a request costs tens of µs of CPU
    /// together with the channel hops and the store access.
    pub hash_bytes_per_hop: usize,
}

impl Default for WorkConfig {
    fn default() -> Self {
        Self { hash_bytes_per_hop: 4 << 10 }
    }
}

/// A request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Read a key.
    Get(Key),
    /// Rewrite a key with its canonical value (regenerated from the keyspace seed), so the
    /// store's contents never change and a concurrent backup still verifies exactly.
    Put(Key),
    /// Store a caller-given value under a key.
    Set(Key, Value),
    /// Remove a key.
    Delete(Key),
}

impl Op {
    /// The key the request is about.
    pub fn key(&self) -> Key {
        match self {
            Op::Get(k) | Op::Put(k) | Op::Set(k, _) | Op::Delete(k) => *k,
        }
    }
}

/// A response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Length of the value read, written or removed; 0 when the key was absent.
    pub value_bytes: usize,
    /// Digest computed along the path (a checksum of the value mixed with each hop's work).
    pub digest: u64,
    /// The value read (gets), written (puts and sets) or removed (deletes); `None` when the key
    /// was absent.
    pub value: Option<Value>,
    /// Time the request's hops spent running (wall time inside their work, read with the cheap
    /// monotonic clock: an estimate of the request's CPU that includes any OS preemption).
    pub busy: Duration,
}

/// Runs `work`, returning its result and how long it took.
fn timed<T>(work: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = work();
    (out, start.elapsed())
}

/// A request that did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A task of the path was dropped, which happens only when the runtime shuts down.
    #[error("a task of the request path was dropped (is the runtime shutting down?)")]
    Dropped,
}

/// The in-memory key-value service. Cheap to share: wrap in an [`Arc`] and call from any task.
#[derive(Debug)]
pub struct Service {
    handle: Handle,
    store: Arc<Store>,
    keyspace: KeyspaceConfig,
    work: WorkConfig,
    /// Spawn the hops as tracked tasks (see `tailguard::task`), visible in task profiles.
    tracked: bool,
    /// What the service measures of its own requests.
    measure: SelfMeasure,
}

/// What a service measures of its own requests, to steer a limiter by (nothing by default).
#[derive(Clone, Debug, Default)]
pub struct SelfMeasure {
    /// Each request's own task (spawned with [`Service::spawn_request`]), from its spawn or
    /// wake to its poll: the wait of a request arriving from outside the runtime, as a
    /// connection's task waits when the IO driver wakes it. The hops inside a request are not
    /// measured: a task spawned or woken by a worker runs next on that worker (tokio's LIFO
    /// slot), and their delays of a microsecond or two would make up three quarters of the
    /// samples.
    pub tasks: Option<PollMonitor>,
    /// Every request's latency inside the service, from [`Service::call`] to its response:
    /// what a latency layer around a server's handler records.
    pub requests: Option<Arc<WindowedHistogram>>,
}

/// FNV-1a over `bytes` bytes taken cyclically from `seed`, starting from `state`.
#[inline(never)]
pub fn hash_work(state: u64, seed: &[u8], bytes: usize) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = state ^ 0xcbf2_9ce4_8422_2325;
    if seed.is_empty() {
        return h;
    }
    let mut left = bytes;
    while left > 0 {
        let take = left.min(seed.len());
        for &b in &seed[..take] {
            h = (h ^ u64::from(b)).wrapping_mul(PRIME);
        }
        left -= take;
    }
    black_box(h)
}

impl Service {
    /// A service over `store` whose tasks are spawned on `handle`, measuring nothing of itself.
    #[cfg(test)]
    pub fn new(handle: Handle, store: Arc<Store>, keyspace: KeyspaceConfig, work: WorkConfig) -> Arc<Self> {
        Self::measured(handle, store, keyspace, work, SelfMeasure::default())
    }

    /// Like [`Service::new`], recording what `measure` asks for: a latency signal of the
    /// service's own tasks or requests.
    pub fn measured(
        handle: Handle,
        store: Arc<Store>,
        keyspace: KeyspaceConfig,
        work: WorkConfig,
        measure: SelfMeasure,
    ) -> Arc<Self> {
        Arc::new(Self { handle, store, keyspace, work, tracked: false, measure })
    }

    /// Like [`Service::new`], with every hop spawned as a named tracked task, so that a task
    /// profile (`tailguard::task::profile`) shows requests in flight.
    pub fn tracked(
        handle: Handle,
        store: Arc<Store>,
        keyspace: KeyspaceConfig,
        work: WorkConfig,
    ) -> Arc<Self> {
        Arc::new(Self { handle, store, keyspace, work, tracked: true, measure: SelfMeasure::default() })
    }

    /// Spawns one hop. Tracked services run it as a named tracked task inside `span` (a child
    /// of the caller's current span), with its wake→poll delays measured for outlier captures;
    fn spawn<F>(&self, name: &str, span: impl FnOnce() -> tracing::Span, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        if self.tracked {
            let future = tailguard::capture::Scheduled::new(future.instrument(span()));
            tailguard::task::Builder::new().name(name).spawn_on(future, &self.handle);
        } else {
            self.handle.spawn(future);
        }
    }

    /// Spawns the task of one request from outside the runtime (a client, or a connection's
    /// task); with [`SelfMeasure::tasks`] its spawn→poll and wake→poll delays are measured.
    pub fn spawn_request<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        match &self.measure.tasks {
            Some(monitor) => drop(self.handle.spawn(monitor.instrument_runnable(future))),
            None => drop(self.handle.spawn(future)),
        }
    }

    /// The runtime the request tasks run on.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// The CPU work each request does.
    pub fn work(&self) -> WorkConfig {
        self.work
    }

    /// Runs one request along the whole path; the calling task is the client.
    ///
    /// # Errors
    /// [`ServiceError::Dropped`] if the runtime shuts down mid-request.
    pub async fn call(self: &Arc<Self>, op: Op) -> Result<Response, ServiceError> {
        let started = self.measure.requests.as_ref().map(|_| Instant::now());
        let key = op.key();
        // Client: encode the request.
        let (request_digest, encode) =
            timed(|| hash_work(key.0, &key.to_bytes(), self.work.hash_bytes_per_hop));
        let (reply_tx, reply_rx) = oneshot::channel();
        let service = Arc::clone(self);
        self.spawn("kv-server", || tracing::info_span!("kv.server"), async move {
            let response = service.serve(op, request_digest).await;
            let _ = reply_tx.send(response);
        });
        let mut response = reply_rx.await.map_err(|_| ServiceError::Dropped)??;
        response.busy += encode;
        if let Some((requests, started)) = self.measure.requests.as_ref().zip(started) {
            requests.record(started.elapsed());
        }
        Ok(response)
    }

    /// Server task: parses, forwards to a storage task, encodes the response.
    async fn serve(self: Arc<Self>, op: Op, request_digest: u64) -> Result<Response, ServiceError> {
        let (parsed, parse) =
            timed(|| hash_work(request_digest, &request_digest.to_le_bytes(), self.work.hash_bytes_per_hop));
        let (tx, rx) = oneshot::channel();
        let service = Arc::clone(&self);
        self.spawn("kv-storage", || tracing::info_span!("kv.storage"), async move {
            let _ = tx.send(timed(|| service.storage(op, parsed)));
        });
        let ((value, stored_digest), storage) = rx.await.map_err(|_| ServiceError::Dropped)?;
        let (digest, encode) =
            timed(|| hash_work(stored_digest, &stored_digest.to_le_bytes(), self.work.hash_bytes_per_hop));
        Ok(Response {
            value_bytes: value.as_ref().map_or(0, |v| v.len()),
            digest,
            value,
            busy: parse + storage + encode,
        })
    }

    /// Storage task: the store access plus a checksum over the value.
    fn storage(&self, op: Op, parsed: u64) -> (Option<Value>, u64) {
        let value = match op {
            Op::Get(key) => self.store.get(key),
            Op::Put(key) => {
                let value = self.keyspace.value_of(key);
                self.store.put(key, Arc::clone(&value));
                Some(value)
            }
            Op::Set(key, value) => {
                self.store.put(key, Arc::clone(&value));
                Some(value)
            }
            Op::Delete(key) => self.store.remove(key),
        };
        let digest = match &value {
            Some(value) => {
                let crc = u64::from(crc32fast::hash(value));
                hash_work(parsed ^ crc, value, self.work.hash_bytes_per_hop)
            }
            None => parsed,
        };
        (value, digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_travel_the_path_and_puts_keep_the_data() {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
        let keyspace = KeyspaceConfig { keys: 50, mean_value_bytes: 32, seed: 5 };
        let store = Arc::new(Store::populate(&keyspace, 2));
        let service =
            Service::new(runtime.handle().clone(), Arc::clone(&store), keyspace, WorkConfig::default());
        let (get, put, missing) = runtime.block_on(async {
            (
                service.call(Op::Get(Key(7))).await.unwrap(),
                service.call(Op::Put(Key(7))).await.unwrap(),
                service.call(Op::Get(Key(500))).await.unwrap(),
            )
        });
        assert_eq!(
            (get.digest, &get.value),
            (put.digest, &put.value),
            "a put rewrites the canonical value, so the digest is unchanged"
        );
        assert!(get.busy > Duration::ZERO && get.busy < Duration::from_secs(10), "{:?}", get.busy);
        assert_eq!(get.value_bytes, keyspace.value_of(Key(7)).len());
        assert_eq!(get.value, Some(keyspace.value_of(Key(7))));
        assert_eq!(missing.value_bytes, 0);
        assert_eq!(missing.value, None);
        assert_eq!(store.get(Key(7)), Some(keyspace.value_of(Key(7))));

        // Sets and deletes, on tracked tasks this time.
        let tracked =
            Service::tracked(runtime.handle().clone(), Arc::clone(&store), keyspace, WorkConfig::default());
        let value: Value = b"hello".as_slice().into();
        let (set, removed, gone) = runtime.block_on(async {
            (
                tracked.call(Op::Set(Key(9), value.clone())).await.unwrap(),
                tracked.call(Op::Delete(Key(9))).await.unwrap(),
                tracked.call(Op::Delete(Key(9))).await.unwrap(),
            )
        });
        assert_eq!(set.value.as_ref(), Some(&value));
        assert_eq!(removed.value, Some(value));
        assert_eq!((gone.value, gone.value_bytes), (None, 0));
        assert_eq!(store.get(Key(9)), None);
    }

    #[test]
    fn a_measured_service_records_its_requests_and_their_tasks() {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
        let keyspace = KeyspaceConfig { keys: 50, mean_value_bytes: 32, seed: 5 };
        let store = Arc::new(Store::populate(&keyspace, 2));
        let measure = SelfMeasure {
            tasks: Some(PollMonitor::new(tailguard::observe::PollMonitorConfig::default()).unwrap()),
            requests: Some(Arc::new(
                WindowedHistogram::new(tailguard::histogram::WindowConfig::DEFAULT).unwrap(),
            )),
        };
        let service = Service::measured(
            runtime.handle().clone(),
            store,
            keyspace,
            WorkConfig::default(),
            measure.clone(),
        );
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        for key in 0..3 {
            let (service2, done_tx) = (Arc::clone(&service), done_tx.clone());
            service.spawn_request(async move {
                let _ = done_tx.send(service2.call(Op::Get(Key(key))).await.is_ok());
            });
        }
        for _ in 0..3 {
            assert!(done_rx.recv_timeout(Duration::from_secs(30)).unwrap());
        }
        // Each request's latency once; each request task's spawn→poll, and its wake by the
        // reply unless the reply came before the task first waited for it.
        let requests = measure.requests.unwrap().cumulative().snapshot().count();
        assert_eq!(requests, 3);
        let tasks = measure.tasks.unwrap().scheduling_window().cumulative().snapshot().count();
        assert!((3..=6).contains(&tasks), "spawn→poll and reply→poll of three request tasks: {tasks}");
    }

    #[test]
    fn hash_work_depends_on_size_and_input() {
        assert_ne!(hash_work(0, b"ab", 10), hash_work(0, b"ab", 11));
        assert_ne!(hash_work(0, b"ab", 10), hash_work(1, b"ab", 10));
        assert_eq!(hash_work(3, b"abc", 7), hash_work(3, b"abc", 7));
    }
}
