use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::thread;

use serde_json::Value;

use crate::harness::{Volume, pattern};
use crate::users::{Users, as_user};

/// 100 threads: 40 write and verify files of their own, 30 write disjoint
/// byte ranges of one shared file (ranges share sectors, so each write is a
/// read-modify-write that must not lose a neighbour's bytes), and 30 read the
/// shared file throughout, checking every byte is either its old or its new
/// value, never garbage.
#[test]
fn hundred_concurrent_writers_and_readers_stay_correct() {
    let vol = Volume::new();
    let m = vol.mount();
    const REGION: usize = 1000; // not a sector multiple: regions straddle sectors
    const WRITERS: usize = 30;
    let shared = m.p("shared.wav");
    let old: Vec<u8> = vec![b'.'; REGION * WRITERS];
    fs::write(&shared, &old).unwrap();
    let new_region = |i: usize| pattern(1000 + i as u64, REGION);
    let barrier = Arc::new(Barrier::new(100));
    let mut threads = Vec::new();
    for i in 0..40 {
        let (b, p) = (barrier.clone(), m.p(&format!("own-{i}.wav")));
        threads.push(thread::spawn(move || {
            b.wait();
            let data = pattern(i as u64, 50_000 + i * 777);
            for chunk in 0..5 {
                let f = OpenOptions::new().create(true).append(true).open(&p).unwrap();
                let part = &data[chunk * data.len() / 5..(chunk + 1) * data.len() / 5];
                f.write_all_at(part, 0).unwrap(); // O_APPEND: the kernel appends
            }
            assert_eq!(fs::read(&p).unwrap(), data, "private file {i}");
        }));
    }
    for i in 0..WRITERS {
        let (b, p) = (barrier.clone(), shared.clone());
        let data = new_region(i);
        threads.push(thread::spawn(move || {
            b.wait();
            let f = OpenOptions::new().write(true).open(&p).unwrap();
            for _ in 0..20 {
                f.write_all_at(&data, (i * REGION) as u64).unwrap();
            }
        }));
    }
    for r in 0..30 {
        let (b, p) = (barrier.clone(), shared.clone());
        threads.push(thread::spawn(move || {
            b.wait();
            let f = fs::File::open(&p).unwrap();
            let mut buf = vec![0u8; REGION * WRITERS];
            for _ in 0..20 {
                f.read_exact_at(&mut buf, 0).unwrap();
                // Reads are not atomic against writes (on any Linux
                // filesystem a read may see part of a concurrent write), but
                // every byte must be the old or the new one: never garbage,
                // never a neighbour's lost update.
                for (i, chunk) in buf.chunks(REGION).enumerate() {
                    let new = new_region(i);
                    let ok = chunk.iter().zip(&new).all(|(&c, &n)| c == b'.' || c == n);
                    assert!(ok, "reader {r}: region {i} holds bytes that were never written");
                }
            }
        }));
    }
    for t in threads {
        t.join().expect("a worker failed");
    }
    let got = fs::read(&shared).unwrap();
    for (i, chunk) in got.chunks(REGION).enumerate() {
        assert_eq!(chunk, new_region(i).as_slice(), "final region {i}");
    }
    assert!(m.unmount().success());
}

/// A file written by one process and read by another sees the same bytes.
#[test]
fn data_written_by_one_process_is_read_by_another() {
    let vol = Volume::new();
    let m = vol.mount();
    let p = m.p("handoff");
    let w = Command::new("dd")
        .args(["if=/dev/urandom", "bs=65536", "count=40", "status=none"])
        .arg(format!("of={}", p.display()))
        .status()
        .unwrap();
    assert!(w.success());
    let ours = fs::read(&p).unwrap();
    let theirs = Command::new("cat").arg(&p).output().unwrap().stdout;
    assert_eq!(ours.len(), 65536 * 40);
    assert_eq!(ours, theirs);
    let sum1 = Command::new("sha256sum").arg(&p).output().unwrap().stdout;
    let sum2 = Command::new("sha256sum").arg(&p).output().unwrap().stdout;
    assert_eq!(sum1, sum2);
    assert!(m.unmount().success());
}

/// Rights under the namespace lock, attacked: writers granted `create` only
/// under /team-a, four processes creating files in a directory they stand in
/// (their cwd, so the kernel sends the directory's inode, not a path), while
/// a fifth process with `rename` keeps moving that directory between
/// /team-a/x and /team-b/x. No create may land in /team-b: in the journal,
/// every create that succeeded names a path under /team-a/x, and the renames
/// recorded before it (intents are recorded under the lock, so their order
/// is the lock's) put x at /team-a at that moment; the denials are recorded,
/// all under /team-b/x; the final tree holds exactly the files reported made.
#[test]
fn a_rename_racing_creates_never_lets_a_team_a_writer_create_under_team_b() {
    const WRITERS: usize = 4;
    let mut u = Users::new();
    let writer = u.user("writer", "writer", &[]);
    let mover = u.user("mover", "mover", &[]);
    let vol = Volume::new();
    let m = vol.mount();
    for d in ["team-a", "team-b", "team-a/x"] {
        fs::create_dir(m.p(d)).unwrap();
        fs::set_permissions(m.p(d), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    }
    assert!(m.unmount().success());
    let policy = vol.dir.path().join("policy.toml");
    fs::write(
        &policy,
        format!(
            "[[grant]]\nusers = [\"{writer}\"]\npaths = [\"/team-a/**\"]\nrights = [\"list\", \"create\", \"write\"]\n\n\
             [[grant]]\nusers = [\"{mover}\"]\npaths = [\"/**\"]\nrights = [\"list\", \"rename\"]\n"
        ),
    )
    .unwrap();
    let m = vol.mount_with(&["--policy", policy.to_str().unwrap()]).unwrap();
    let mnt = m.path.to_str().unwrap().to_string();
    let stop = vol.dir.path().join("stop-moving");
    let stop_s = stop.to_str().unwrap().to_string();

    // The mover says "moving" after its first round trip, and ends each
    // round with x back at /team-a/x.
    let mut moving = Command::new("runuser")
        .args(["-u", &mover, "--", "sh", "-c"])
        .arg(
            r#"first=1
while [ ! -e "$2" ]; do
  mv -T "$1/team-a/x" "$1/team-b/x" || exit 1
  mv -T "$1/team-b/x" "$1/team-a/x" || exit 1
  if [ $first = 1 ]; then echo moving; first=0; fi
done"#,
        )
        .args(["sh", &mnt, &stop_s])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(moving.stdout.as_mut().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), "moving", "the mover could not rename x");

    // Each writer enters x (retrying while x is away at /team-b), tries at
    // least 300 creates, and goes on (up to 20,000) until it has seen both
    // a success and a refusal.
    let writers: Vec<thread::JoinHandle<(usize, usize)>> = (0..WRITERS)
        .map(|w| {
            let (writer, x) = (writer.clone(), format!("{mnt}/team-a/x"));
            thread::spawn(move || {
                let out = as_user(
                    &writer,
                    r#"until cd "$1" 2>/dev/null; do :; done
n=0; ok=0; bad=0
while [ $n -lt 300 ] || [ $ok -eq 0 ] || [ $bad -eq 0 ]; do
  [ $n -ge 20000 ] && break
  n=$((n+1))
  if true > "w$2-$n" 2>/dev/null; then ok=$((ok+1)); else bad=$((bad+1)); fi
done
echo "$ok $bad""#,
                    &[&x, &w.to_string()],
                );
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                assert!(out.status.success(), "writer {w}: {}", String::from_utf8_lossy(&out.stderr));
                let mut it = text.split_whitespace().map(|n| n.parse::<usize>().unwrap());
                (it.next().unwrap(), it.next().unwrap())
            })
        })
        .collect();
    let counts: Vec<(usize, usize)> = writers.into_iter().map(|t| t.join().expect("a writer failed")).collect();
    fs::write(&stop, b"").unwrap();
    let moved = moving.wait_with_output().unwrap();
    assert!(moved.status.success(), "mover: {}", String::from_utf8_lossy(&moved.stderr));
    assert!(m.unmount().success());
    let made: usize = counts.iter().map(|c| c.0).sum();
    let refused: usize = counts.iter().map(|c| c.1).sum();
    assert!(made > 0 && refused > 0, "the race never happened: {counts:?}");

    let all = vol.records(&[]);
    let outcome_of = |seq: u64| {
        all.iter().find(|r| r["detail"]["intent"] == seq).map(|r| r["outcome"].as_str().unwrap_or("").to_string())
    };
    // Sequence numbers of the renames that took effect, in order.
    let renames: Vec<u64> = all
        .iter()
        .filter(|r| r["event"] == "rename" && r["outcome"] == "intent" && r["user"] == mover.as_str())
        .filter_map(|r| r["seq"].as_u64())
        .filter(|&s| outcome_of(s).as_deref() == Some("ok"))
        .collect();
    assert!(renames.len() >= 2, "{} renames recorded", renames.len());
    let mut created = 0;
    for r in all.iter().filter(|r| r["event"] == "create" && r["outcome"] == "intent" && r["user"] == writer.as_str()) {
        let seq = r["seq"].as_u64().unwrap();
        let path = r["path"].as_str().unwrap();
        if outcome_of(seq).as_deref() != Some("ok") {
            continue;
        }
        created += 1;
        assert!(path.starts_with("/team-a/x/w"), "a team-a writer created {path}");
        // An odd number of renames before it: x was at /team-b/x.
        let before = renames.iter().filter(|&&s| s < seq).count();
        assert!(before % 2 == 0, "create #{seq} of {path} happened while x was at /team-b/x");
    }
    assert_eq!(created, made, "every create the writers saw succeed is recorded as done, and no other");
    let denials: Vec<&Value> = all.iter().filter(|r| r["event"] == "denied" && r["user"] == writer.as_str()).collect();
    assert!(denials.len() >= refused, "{refused} refused creates, {} denials recorded", denials.len());
    for d in &denials {
        let path = d["path"].as_str().unwrap_or("");
        assert!(path.starts_with("/team-b/x"), "the writer was denied on its own ground: {d}");
    }

    eprintln!("{made} creates, {refused} refused, {} denials, {} renames", denials.len(), renames.len());
    // The tree: every file made is in /team-a/x (x is back there), none in /team-b.
    let m = vol.mount();
    let in_x = fs::read_dir(m.p("team-a/x")).unwrap().count();
    assert_eq!(in_x, made, "files in /team-a/x");
    assert_eq!(fs::read_dir(m.p("team-b")).unwrap().count(), 0, "nothing in /team-b");
    assert!(m.unmount().success());
}
