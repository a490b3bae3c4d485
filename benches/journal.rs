//! The audit journal: appending records (durable, group-committed) and
//! filtering a 1,000,000-record journal by path, as `audit show --path` does.
//! A benchmark, not a timed test (issue: "in a few seconds").

use std::time::Duration;

use callvault::journal::{
    Actor, Detail, Event, EventKind, Filter, Journal, JournalOptions, Lines, Record, init_journal,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn person(name: &str, uid: u32, pid: u32) -> Actor {
    Actor {
        uid,
        user: Some(name.into()),
        gid: uid,
        pid,
        exe: Some("/usr/bin/play".into()),
        cmdline: Some(vec!["play".into(), "call.wav".into()]),
        ..Actor::default()
    }
}

fn open_event(n: u32) -> Event {
    Event::new(EventKind::Open, person(["alice", "bob", "carol"][(n % 3) as usize], 1000 + n % 3, n))
        .path(format!("/team-{}/c{}.wav", n % 7, n % 5000))
        .detail(Detail { flags: Some("O_RDONLY".into()), access: Some("read".into()), ..Detail::default() })
}

/// Counts records matching `filter`, the way `audit show` reads: a byte
/// prefilter first, full JSON parsing only for candidate lines.
fn count_matching(dir: &std::path::Path, filter: &Filter) -> usize {
    let mut lines = Lines::open(dir).expect("journal");
    let pre = filter.prefilter();
    let mut buf = Vec::new();
    let mut n = 0;
    while let Some(info) = lines.read_line(&mut buf).expect("read") {
        if info.complete && pre.may_match(&buf) && Record::parse(&buf).is_ok_and(|r| filter.matches(&r)) {
            n += 1;
        }
    }
    n
}

fn journal(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("audit");
    init_journal(&dir).expect("init");

    let mut g = c.benchmark_group("journal");
    g.sample_size(20);
    {
        let j = Journal::open(&dir, JournalOptions::default()).expect("open");
        let mut n = 0u32;
        g.throughput(Throughput::Elements(1));
        g.bench_function("append one record, durable", |b| {
            b.iter(|| {
                n += 1;
                j.append(open_event(n)).expect("append")
            })
        });
        j.close().expect("close");
    }
    // Grow the journal to 1,000,000 records for the query.
    let j = Journal::open(&dir, JournalOptions::default()).expect("open");
    let have = j.last_seq() as u32;
    for batch in (have..1_000_000).step_by(10_000) {
        let evs = (batch..(batch + 10_000).min(1_000_000)).map(open_event).collect();
        j.append_all(evs).expect("append batch");
    }
    j.close().expect("close");
    let filter = Filter::new().path("/team-3/c1234.wav").expect("glob");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(1_000_000));
    g.bench_function("show --path over 1,000,000 records", |b| b.iter(|| count_matching(&dir, &filter)));
    let by_user = Filter::new().user("bob");
    g.bench_function("show --user over 1,000,000 records", |b| b.iter(|| count_matching(&dir, &by_user)));
    g.finish();
}

criterion_group!(benches, journal);
criterion_main!(benches);
