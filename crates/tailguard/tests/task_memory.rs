//! A million tracked tasks come and go: the registry, and the heap as a whole, return to their
//! starting level. A counting allocator measures the heap (this file is its own test binary).
#![cfg(feature = "tokio")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use tailguard::task::{self, Builder, Registry};

struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged, only counting sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const TASKS: usize = 1_000_000;
const BATCH: usize = 50_000;

#[test]
fn a_million_tasks_leave_no_memory_behind() {
    // Half a million planned panics: keep the output quiet.
    std::panic::set_hook(Box::new(|_| {}));
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let registry = Registry::new();
    // Warm up the runtime's own structures (its queues keep their capacity) and the gate.
    rt.block_on(run_batch(&registry, BATCH, true));
    let registry_start = registry.memory_bytes();
    let heap_start = LIVE_BYTES.load(Ordering::Relaxed);
    let mut peak = 0;
    for i in 0..TASKS / BATCH {
        // Every other batch panics half of its tasks: panicking tasks leave too.
        peak = peak.max(rt.block_on(run_batch(&registry, BATCH, i % 2 == 0)));
        assert!(registry.is_empty());
        assert_eq!(registry.memory_bytes(), registry_start);
    }
    let heap_growth = LIVE_BYTES.load(Ordering::Relaxed) - heap_start;
    eprintln!(
        "{TASKS} tasks: registry {} -> {} bytes (peak {peak}), heap growth {heap_growth} bytes",
        registry_start,
        registry.memory_bytes()
    );
    assert!(peak > registry_start + BATCH * 64, "the batches were live at once: peak {peak}");
    // Allow a little for lazily grown runtime and test-harness state, far below one task each.
    assert!(heap_growth < 64 * 1024, "heap grew by {heap_growth} bytes over {TASKS} tasks");
}

/// Spawns `n` tracked tasks, lets them all start, then finishes them; returns the registry's
/// memory while they were all live.
async fn run_batch(registry: &Registry, n: usize, panic_half: bool) -> usize {
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let gate = std::sync::Arc::clone(&gate);
        handles.push(Builder::new().name("short-lived").registry(registry).spawn(async move {
            let _frame = task::frame("waiting");
            gate.acquire().await.expect("never closed").forget();
            assert!(!(panic_half && i % 2 == 0), "planned panic");
        }));
    }
    let peak = registry.memory_bytes();
    gate.add_permits(n);
    for h in handles {
        let _ = h.await;
    }
    peak
}
