//! Apply throughput of the pure lock table (no Raft, no disk): an upper
//! bound for one group's state machine. Criterion prints elements/s; one
//! element is one acquire+release cycle, one hand-off, or one semaphore
//! release+acquire.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shardlock::lock::{AcquireCmd, Command, Limits, LockKey, LockTable, Mode};

const NAMES: usize = 1000;

fn acquire(name: &str, key: &LockKey, size: u32, wait_ms: u64) -> Command {
    let (mode, value) = (Mode::Exclusive, None);
    Command::Acquire(AcquireCmd {
        name: name.into(),
        key: key.clone(),
        size,
        permits: 1,
        ttl_ms: 30_000,
        wait_ms,
        mode,
        value,
    })
}

fn uncontended(c: &mut Criterion) {
    let names: Vec<String> = (0..NAMES).map(|i| format!("bench/lock/{i}")).collect();
    let keys: Vec<LockKey> = (0..NAMES as u128).map(LockKey::from_u128).collect();
    let (mut table, mut index) = (LockTable::new(Limits::default()), 0u64);
    let mut group = c.benchmark_group("apply");
    group.throughput(Throughput::Elements(NAMES as u64));
    group.bench_function("uncontended acquire+release x1000", |b| {
        b.iter(|| {
            for (name, key) in names.iter().zip(&keys) {
                index += 2;
                table.apply(index - 1, &acquire(name, key, 1, 0));
                table.apply(index, &Command::Release { name: name.clone(), key: key.clone() });
            }
        })
    });
    group.finish();
}

/// One hot mutex with 16 queued waiters: each release hands off to the head
/// and the released client queues again at the tail.
fn handoff(c: &mut Criterion) {
    rotating(c, "contended hand-off (mutex, 16 waiters)", 1, 17);
}

/// A semaphore of size 8 with 64 contenders: each release admits the head.
fn semaphore(c: &mut Criterion) {
    rotating(c, "semaphore size 8, 64 contenders", 8, 64);
}

fn rotating(c: &mut Criterion, label: &str, size: u32, clients: u128) {
    let (mut table, mut index) = (LockTable::new(Limits::default()), 0u64);
    let keys: Vec<LockKey> = (0..clients).map(LockKey::from_u128).collect();
    for key in &keys {
        index += 1;
        table.apply(index, &acquire("hot", key, size, 60_000));
    }
    let mut next = 0usize;
    let mut group = c.benchmark_group("apply");
    group.throughput(Throughput::Elements(1));
    group.bench_function(label, |b| {
        b.iter(|| {
            // The holder that has held longest is the first in queue order.
            let key = &keys[next % keys.len()];
            next += 1;
            index += 2;
            table.apply(index - 1, &Command::Release { name: "hot".into(), key: key.clone() });
            table.apply(index, &acquire("hot", key, size, 60_000));
        })
    });
    group.finish();
}

criterion_group!(benches, uncontended, handoff, semaphore);
criterion_main!(benches);
