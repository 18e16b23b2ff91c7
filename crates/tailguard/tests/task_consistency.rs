//! Consistency under churn: every profile, of either kind, is a consistent cut.
//!
//! Tasks pass tokens among themselves, keeping what they hold in their value. Each task also
//! holds one "existence unit" (in the value's high bits), taken from a bank task when it is
//! spawned and given back when it exits. Every change happens inside a tracked poll, and each
//! move takes from one value and adds to another within the same poll, so the sum over the
//! tasks that existed at any one instant is exactly `POOL << 32 | TOKENS`. A profile that misses
//! a task, shows one twice, shows a task born after its cut, or mixes states from before and
//! after its cut, gets a different sum.
#![cfg(feature = "tokio")]

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tailguard::task::{self, Builder, ProfileMode, Registry, TaskProfile, TaskRef};

const UNIT: u64 = 1 << 32;
const POOL: u64 = 1_000_000;
const INITIAL_TASKS: u64 = 64;
const TOKENS_EACH: u64 = 100;
const TOKENS: u64 = INITIAL_TASKS * TOKENS_EACH;
const TOTAL: u64 = POOL * UNIT + TOKENS;

struct World {
    registry: Registry,
    bank: TaskRef,
    peers: Mutex<Vec<TaskRef>>,
    stop: AtomicBool,
    spawned: AtomicU64,
    exited: AtomicU64,
    moves: AtomicU64,
}

fn tokens(value: u64) -> u64 {
    value % UNIT
}

/// xorshift64*: deterministic per task, no shared state.
fn next(rng: &mut u64) -> u64 {
    *rng ^= *rng >> 12;
    *rng ^= *rng << 25;
    *rng ^= *rng >> 27;
    rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// Boxed: a worker spawns workers, and a recursive `async fn` needs a named, `Send` type.
fn worker(world: Arc<World>, rng: u64) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(trade(world, rng))
}

async fn trade(world: Arc<World>, mut rng: u64) {
    let me = task::current().expect("inside a tracked task");
    let _frame = task::frame("trading");
    while !world.stop.load(Ordering::Relaxed) {
        let roll = next(&mut rng) % 100;
        {
            let mut peers = world.peers.lock().unwrap();
            let population = peers.len() as u64;
            if roll < 3 && population > INITIAL_TASKS / 2 {
                // Exit: leave the peer list (nobody can send to us any more), give every token
                // to a peer and the existence unit back to the bank, all in this poll.
                peers.retain(|p| p.id() != me.id());
                let heir = &peers[(next(&mut rng) % peers.len() as u64) as usize];
                let held = tokens(me.value());
                me.add_value(-(held as i64));
                heir.add_value(held as i64);
                me.add_value(-(UNIT as i64));
                world.bank.add_value(UNIT as i64);
                world.exited.fetch_add(1, Ordering::Relaxed);
                return;
            } else if roll < 6 && population < INITIAL_TASKS * 2 {
                // Spawn a child, fund its existence from the bank and give it half our tokens.
                let child = Builder::new()
                    .name("child")
                    .registry(&world.registry)
                    .track(worker(Arc::clone(&world), next(&mut rng) | 1));
                let child_ref = child.task();
                world.bank.add_value(-(UNIT as i64));
                child_ref.add_value(UNIT as i64);
                let half = tokens(me.value()) / 2;
                me.add_value(-(half as i64));
                child_ref.add_value(half as i64);
                peers.push(child_ref);
                world.spawned.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(child);
            } else {
                let peer = &peers[(next(&mut rng) % population) as usize];
                let k = tokens(me.value()).min(next(&mut rng) % 8);
                me.add_value(-(k as i64));
                peer.add_value(k as i64);
                world.moves.fetch_add(1, Ordering::Relaxed);
            }
        }
        tokio::task::yield_now().await;
    }
}

fn check(profile: &TaskProfile) -> HashSet<u64> {
    let ids: Vec<u64> = profile.tasks.iter().map(|t| t.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "a task listed twice: {ids:?}");
    assert!(ids.iter().all(|&id| id < profile.cut_id), "a task born after the cut was listed");
    let sum: u64 = profile.tasks.iter().map(|t| t.value).fold(0, u64::wrapping_add);
    assert_eq!(
        sum,
        TOTAL,
        "{:?} profile inconsistent: {} units (want {POOL}), {} tokens (want {TOKENS}) over {} tasks",
        profile.mode,
        sum / UNIT,
        sum % UNIT,
        ids.len()
    );
    ids.into_iter().collect()
}

fn run(profiles: usize, workers: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(workers).build().expect("runtime");
    let registry = Registry::new();
    let bank = Builder::new().name("bank").registry(&registry).track(std::future::pending::<()>());
    let bank_ref = bank.task();
    bank_ref.set_value((POOL - INITIAL_TASKS) * UNIT);
    let world = Arc::new(World {
        registry: registry.clone(),
        bank: bank_ref,
        peers: Mutex::new(Vec::new()),
        stop: AtomicBool::new(false),
        spawned: AtomicU64::new(0),
        exited: AtomicU64::new(0),
        moves: AtomicU64::new(0),
    });
    // Build the initial population (values set before any of them runs), then start them.
    let mut initial = Vec::new();
    for i in 0..INITIAL_TASKS {
        let t = Builder::new()
            .name("initial")
            .registry(&registry)
            .track(worker(Arc::clone(&world), i * 7919 + 1));
        t.task().set_value(UNIT + TOKENS_EACH);
        world.peers.lock().unwrap().push(t.task());
        initial.push(t);
    }
    rt.spawn(bank);
    for t in initial {
        rt.spawn(t);
    }

    let mut changed = 0;
    let mut previous = HashSet::new();
    let mut moves_during_profiles = 0;
    for i in 0..profiles {
        let moves_before = world.moves.load(Ordering::Relaxed);
        let profile = if i % 2 == 0 { registry.profile() } else { registry.profile_stop_the_world() };
        assert_eq!(profile.mode, if i % 2 == 0 { ProfileMode::LowPause } else { ProfileMode::StopTheWorld });
        if world.moves.load(Ordering::Relaxed) > moves_before {
            moves_during_profiles += 1;
        }
        let ids = check(&profile);
        if ids != previous {
            changed += 1;
        }
        previous = ids;
        // Let the workers churn between profiles: wait until at least one task was born or
        // exited since this profile, so that the next one has a changed set to see, however the
        // OS schedules this thread against the runtime's workers.
        let churn = world.spawned.load(Ordering::Relaxed) + world.exited.load(Ordering::Relaxed);
        while world.spawned.load(Ordering::Relaxed) + world.exited.load(Ordering::Relaxed) == churn {
            std::thread::yield_now();
        }
    }
    world.stop.store(true, Ordering::Relaxed);
    drop(rt);
    let spawned = world.spawned.load(Ordering::Relaxed);
    let exited = world.exited.load(Ordering::Relaxed);
    eprintln!(
        "{profiles} profiles: {changed} saw a changed task set, {moves_during_profiles} overlapped moves; \
         {spawned} spawned, {exited} exited, {} moves",
        world.moves.load(Ordering::Relaxed)
    );
    // The test is only meaningful under churn.
    assert!(spawned > 100 && exited > 100, "too little churn: {spawned} spawned, {exited} exited");
    assert!(changed > profiles / 4, "the task set changed between only {changed} of {profiles} profiles");
    assert!(registry.is_empty());
}

#[test]
fn every_profile_is_a_consistent_cut_under_churn() {
    run(1_000, 4);
}

#[test]
fn consistent_with_one_worker_too() {
    run(300, 1);
}
