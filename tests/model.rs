//! Random operation sequences on one file, checked against a `Vec<u8>`.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use proptest::prelude::*;

use crate::harness::{Volume, pattern};

#[derive(Debug, Clone)]
enum Op {
    Write { off: u64, len: usize, seed: u64 },
    Truncate(u64),
    Read { off: u64, len: usize },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    // Offsets cluster near sector edges, where the bugs live.
    let off = prop_oneof![0u64..70_000, (0u64..20).prop_map(|s| s * 4096), (1u64..20).prop_map(|s| s * 4096 - 1)];
    prop_oneof![
        5 => (off.clone(), 0usize..20_000, any::<u64>()).prop_map(|(off, len, seed)| Op::Write { off, len, seed }),
        2 => (0u64..80_000).prop_map(Op::Truncate),
        3 => (off, 0usize..20_000).prop_map(|(off, len)| Op::Read { off, len }),
        1 => Just(Op::Reopen),
    ]
}

#[test]
fn random_writes_and_truncates_match_an_in_memory_model() {
    let vol = Volume::new();
    let m = vol.mount();
    let case = std::cell::Cell::new(0u32);
    let ops_run = std::cell::Cell::new(0usize);
    let config = ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() };
    proptest!(config, |(ops in proptest::collection::vec(op(), 50..250))| {
        case.set(case.get() + 1);
        let path = m.p(&format!("model-{}", case.get()));
        let open = || OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&path).unwrap();
        let mut f = open();
        let mut model: Vec<u8> = Vec::new();
        for op in &ops {
            ops_run.set(ops_run.get() + 1);
            match *op {
                Op::Write { off, len, seed } => {
                    let data = pattern(seed, len);
                    f.write_all_at(&data, off).unwrap();
                    // A zero-length write changes nothing, not even past the end.
                    if len > 0 {
                        let end = off as usize + len;
                        if model.len() < end {
                            model.resize(end, 0);
                        }
                        model[off as usize..end].copy_from_slice(&data);
                    }
                }
                Op::Truncate(n) => {
                    f.set_len(n).unwrap();
                    model.resize(n as usize, 0);
                }
                Op::Read { off, len } => {
                    let mut buf = vec![0u8; len];
                    let mut got = 0;
                    while got < len {
                        let k = f.read_at(&mut buf[got..], off + got as u64).unwrap();
                        if k == 0 { break; }
                        got += k;
                    }
                    let start = (off as usize).min(model.len());
                    let end = (off as usize + len).min(model.len());
                    prop_assert_eq!(&buf[..got], &model[start..end], "read {}+{}", off, len);
                }
                Op::Reopen => {
                    drop(f);
                    f = open();
                }
            }
            prop_assert_eq!(f.metadata().unwrap().len(), model.len() as u64);
        }
        drop(f);
        prop_assert_eq!(std::fs::read(&path).unwrap(), model);
    });
    assert!(ops_run.get() >= 2000, "only {} operations were checked", ops_run.get());
    assert!(m.unmount().success());
}
