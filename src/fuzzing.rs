//! Entry points for the fuzz targets in `fuzz/` and for the test that replays their corpora.
//!
//! Not an API: hidden from the docs and free to change. Each function takes
//! arbitrary bytes, hands them to the parser the daemon or keytool uses on
//! that kind of input, and checks what must hold for any input: no panic,
//! and where a parser accepts something, that it means what it says (it
//! re-encodes to the same bytes, decrypts what was encrypted, and so on).
//! A broken property panics, which is what the fuzzer reports. Keys are
//! fixed so every run is reproducible; the policy parser gets a fixed id
//! table so it never reaches the host's user database.

use std::io::Write as _;
use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::audio::samples::deinterleave;
use crate::audio::silence::{Layout, silence};
use crate::audio::wav::{MAX_HEADER_SCAN, Probe, probe};
use crate::audio::{self, Encoding};
use crate::fileheader::{self, FileHeader};
use crate::header::v1::{self, V1Header};
use crate::header::{self, Credentials, NewSlot, VolumeHeader};
use crate::journal::{self, AuditorKey, Filter, Format, Lines, Record, Tail};
use crate::keys::{LABEL_FILE_HEADER_MAC, LABEL_LINK_TARGETS, LABEL_NAMES, derive32, derive64};
use crate::layout::Layout as SectorLayout;
use crate::names::{self, BackingName, EntryKind};
use crate::policy::{IdResolver, Policy, Right, Subject};
use crate::secret::{Key32, Key64, MasterKey};
use crate::sectors::FILE_HEADER_LEN;

/// Every target, by the name of its directory under `fuzz/corpus/` and
/// `fuzz/regressions/`.
pub const TARGETS: [&str; 8] = [
    "volume_header",
    "file_header",
    "names",
    "policy",
    "journal_record",
    "journal_segments",
    "request_file",
    "wav_probe",
];

/// Runs the named target on one input. `scratch` must be an empty directory
/// (the journal targets write their input there as files); returns false for
/// an unknown target name.
pub fn run(target: &str, scratch: &Path, data: &[u8]) -> bool {
    match target {
        "volume_header" => volume_header(data),
        "file_header" => file_header(data),
        "names" => names(data),
        "policy" => policy(data),
        "journal_record" => journal_record(data),
        "journal_segments" => journal_segments(scratch, data),
        "request_file" => request_file(scratch, data),
        "wav_probe" => wav_probe(data),
        _ => return false,
    }
    true
}

fn master() -> MasterKey {
    let mut bytes = [0u8; 64];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = i as u8;
    }
    MasterKey::from_bytes(bytes)
}

/// The volume header: `header::decode`, either version. What a format-1
/// decode accepts re-encodes to the same bytes, except where docs/FORMAT.md
/// says the reader ignores them (keyslot byte 3, keyslot bytes 212..256,
/// label bytes after the first NUL); format 2 ignores nothing, so an
/// accepted format-2 header re-encodes to exactly its bytes. Both decode
/// back to the same header.
pub fn volume_header(data: &[u8]) {
    let path = Path::new("fuzz/callvault.header");
    let m = master();
    match header::decode(data, path) {
        Err(_) => {}
        Ok(header::AnyHeader::V1(h)) => volume_header_v1(data, &h, &m, path),
        Ok(header::AnyHeader::V2(h)) => {
            let _ = h.verify_mac(&m, path);
            let _ = (h.active_slots(), h.labels(), h.rotating());
            let encoded = h.encode(&m);
            assert_eq!(
                encoded[..header::HEADER_LEN - 32],
                data[..header::HEADER_LEN - 32],
                "an accepted format-2 header re-encodes differently"
            );
            let Ok(header::AnyHeader::V2(again)) = header::decode(&encoded, path) else {
                panic!("an encoded format-2 header does not decode");
            };
            assert!(again.verify_mac(&m, path).is_ok());
            assert_eq!(again.slots, h.slots);
        }
    }
}

fn volume_header_v1(data: &[u8], h: &V1Header, m: &MasterKey, path: &Path) {
    let _ = h.verify_mac(m, path);
    let _ = h.active_slots();
    let encoded = h.encode(m);
    let body = v1::HEADER_LEN - 32;
    let ignored = |at: usize| {
        let Some(off) = at.checked_sub(64).filter(|&o| o < body - 64) else {
            return false;
        };
        let (slot, i) = (off / v1::KEYSLOT_LEN, off % v1::KEYSLOT_LEN);
        let label = &data[64 + slot * v1::KEYSLOT_LEN + 140..][..v1::LABEL_LEN];
        let label_end = 140 + label.iter().position(|&c| c == 0).unwrap_or(v1::LABEL_LEN);
        i == 3 || i >= 212 || (label_end..140 + v1::LABEL_LEN).contains(&i)
    };
    for at in 0..body {
        assert!(encoded[at] == data[at] || ignored(at), "byte {at} of an accepted header is lost when re-encoded");
    }
    let again = V1Header::decode(&encoded, path).expect("an encoded header decodes");
    assert!(again.verify_mac(m, path).is_ok());
    assert_eq!(again.slots, h.slots);
    assert_eq!((again.version, again.volume_id, again.created), (h.version, h.volume_id, h.created));
}

fn file_header_key() -> Key32 {
    derive32(&master(), LABEL_FILE_HEADER_MAC)
}

/// The per-file header, in both layouts: `FileHeader::decode` on the bytes
/// as given, then with both slots' MACs made valid (the fuzzer cannot forge
/// HMACs, and the checks after the MAC deserve inputs too). A slot that is
/// accepted is exactly the encoding of the header returned.
pub fn file_header(data: &[u8]) {
    let key = file_header_key();
    for layout in [SectorLayout::Plain, SectorLayout::Tagged] {
        let _ = FileHeader::decode(data, layout, &key);
        if (data.len() as u64) < FILE_HEADER_LEN {
            continue;
        }
        let mut region = data.to_vec();
        let len = fileheader::slot_len(layout);
        let fields = len - 16;
        for off in fileheader::SLOT_OFFSETS {
            // HMAC-SHA-256 truncated to 16 bytes over the field bytes (docs/FORMAT.md).
            let mut mac =
                <Hmac<Sha256> as KeyInit>::new_from_slice(key.expose_secret()).expect("HMAC takes 32-byte keys");
            mac.update(&region[off..off + fields]);
            let tag = mac.finalize().into_bytes();
            region[off + fields..off + len].copy_from_slice(&tag[..16]);
        }
        if let Ok(h) = FileHeader::decode(&region, layout, &key) {
            let enc = h.encode(layout, &key);
            let found = fileheader::SLOT_OFFSETS.iter().any(|&off| region[off..off + len] == enc[..]);
            assert!(found, "the decoded header is one of the two slots");
            let _ = h.slot_offset();
        }
    }
}

fn names_key() -> Key64 {
    derive64(&master(), LABEL_NAMES, &[])
}

/// Names: the first 16 bytes are the directory ID, the rest a backing entry
/// name, side file content or link target. Classification, decryption of
/// names, link targets and xattr names, the long-name side file check; and
/// the same bytes as a plaintext name and target must round-trip.
pub fn names(data: &[u8]) {
    let mut dir_id = [0u8; names::DIRID_LEN];
    let n = data.len().min(names::DIRID_LEN);
    dir_id[..n].copy_from_slice(&data[..n]);
    let rest = &data[n..];
    let text = String::from_utf8_lossy(rest);
    let key = names_key();
    let links = derive64(&master(), LABEL_LINK_TARGETS, &[]);

    match names::classify(&text) {
        EntryKind::Short(e) => {
            if let Ok(name) = names::decrypt_name(&key, &dir_id, e) {
                assert!(names::validate(&name).is_ok(), "a decrypted name is a valid name");
            }
        }
        EntryKind::Long(hashed) => {
            // The side file's content is checked against the entry name.
            let _ = names::long_name_matches(hashed, &text);
            let _ = names::long_name_matches(hashed, "");
        }
        EntryKind::Internal => {}
    }
    let _ = names::decrypt_name(&key, &dir_id, &text);
    let _ = names::decrypt_link_target(&links, rest);
    let _ = names::open_random(&links, b"symlink", rest);
    let _ = names::decrypt_xattr_name(&key, &text);

    if names::validate(rest).is_ok() {
        let b = names::encrypt_name(&key, &dir_id, rest).expect("a valid name encrypts");
        assert!(b.entry().len() <= names::SHORT_MAX, "a backing entry fits the backing filesystem");
        let full = match &b {
            BackingName::Short(s) => {
                assert_eq!(names::classify(s), EntryKind::Short(s));
                s.clone()
            }
            BackingName::Long { hashed, full } => {
                assert_eq!(names::classify(hashed), EntryKind::Long(hashed));
                let side = b.name_file().expect("a long name has a side file");
                assert_eq!(names::classify(&side), EntryKind::Internal);
                assert!(side.len() <= names::SHORT_MAX);
                assert!(names::long_name_matches(hashed, full));
                full.clone()
            }
        };
        assert_eq!(names::decrypt_name(&key, &dir_id, &full).expect("own ciphertext decrypts"), rest);
    }
    if let Ok(stored) = names::encrypt_link_target(&links, rest) {
        assert_eq!(names::decrypt_link_target(&links, stored.as_bytes()).expect("own target decrypts"), rest);
    }
}

/// A fixed id table: the policy target must not depend on the host.
struct FixedIds;

impl IdResolver for FixedIds {
    fn uid(&self, name: &str) -> Option<u32> {
        match name {
            "root" => Some(0),
            "alice" => Some(1000),
            "recorder" => Some(1001),
            _ => None,
        }
    }
    fn gid(&self, name: &str) -> Option<u32> {
        match name {
            "root" => Some(0),
            "qa" => Some(2000),
            "team-a" => Some(2001),
            _ => None,
        }
    }
}

/// Policy text: `Policy::from_toml` with a fixed id table. Errors are one
/// line; an accepted policy answers questions about its own globs (taken as
/// paths) and a few fixed paths for a few subjects.
pub fn policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let source = Path::new("/etc/callvault/policy.toml");
    let p = match Policy::from_toml(text, source, &FixedIds) {
        Ok(p) => p,
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "policy errors are one line: {msg:?}");
            return;
        }
    };
    let subjects = [Subject::new(0, vec![0]), Subject::new(1000, vec![2000]), Subject::new(1001, vec![2001, 7])];
    let mut paths: Vec<String> = ["/", "/team-a", "/team-a/c1.wav", "/x/y/z.wav"].map(String::from).to_vec();
    for g in p.grants() {
        let _ = g.to_string();
        let _ = g.rights();
        paths.extend(g.paths().iter().take(8).cloned());
    }
    for path in paths.iter().take(64) {
        let _ = crate::policy::normalize_path(path);
        for who in &subjects {
            for right in Right::ALL {
                if let Some(r) = p.explain(who, path, right) {
                    assert!(p.grant(r).is_some(), "an explanation points at a grant");
                }
            }
        }
    }
}

/// Filters `audit show` offers, to check the byte prefilter against.
fn filters() -> Vec<Filter> {
    let mut out = vec![Filter::new().user("alice"), Filter::new().user("1000")];
    if let Ok(f) = Filter::new().event("open") {
        out.push(f);
    }
    if let Ok(f) = Filter::new().event("denied") {
        out.push(f);
    }
    for glob in ["/team-a/**", "/**/*.wav", "/a\\*b/{x,y}"] {
        if let Ok(f) = Filter::new().path(glob) {
            out.push(f);
        }
    }
    if let Ok(f) = Filter::new().since("2026-05-01T10:00:00Z").and_then(|f| f.until("2026-05-02")) {
        out.push(f);
    }
    out
}

/// One journal line: `Record::parse`; an accepted record survives its own
/// line format, renders in every output format, and no filter's byte
/// prefilter rejects the line as written that the filter itself accepts.
pub fn journal_record(data: &[u8]) {
    let Ok(rec) = Record::parse(data) else {
        return;
    };
    let line = rec.to_line();
    assert_eq!(Record::parse(&line).expect("a record's own line parses"), rec);
    let mut out = Vec::new();
    for format in [Format::Table, Format::Json, Format::Csv] {
        let _ = journal::render_header(format);
        journal::render_record(format, &rec, data, &mut out).expect("rendering into memory cannot fail");
    }
    let _ = rec.actor();
    for f in filters() {
        if f.matches(&rec) {
            assert!(
                f.prefilter().may_match(&line),
                "prefilter rejects a matching line: {}",
                String::from_utf8_lossy(&line)
            );
        }
    }
}

/// A well-formed auditor key, used when the input's own does not parse.
const FIXED_AUDITOR_KEY: &str = "callvault-audit-key v1\njournal-id 000102030405060708090a0b0c0d0e0f\n\
     epoch0-key 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";

/// Most segments one input becomes.
const MAX_SEGMENTS: usize = 4;

/// Lays out a `journal_segments` input as files under `scratch`: returns the
/// audit directory and the auditor key (the input's, or a fixed one when
/// the input's does not parse); `None` when the files cannot be written.
fn unpack_audit_dir(scratch: &Path, data: &[u8]) -> Option<(std::path::PathBuf, AuditorKey)> {
    let mut parts = data.splitn(MAX_SEGMENTS + 2, |&b| b == 0);
    let key_text = parts.next().unwrap_or_default();
    let seal_key = parts.next().unwrap_or_default();
    let audit = scratch.join("audit");
    let key_path = scratch.join("auditor.key");
    std::fs::create_dir(&audit).ok()?;
    std::fs::write(&key_path, key_text).ok()?;
    if !seal_key.is_empty() {
        std::fs::write(audit.join(journal::SEAL_KEY_FILE), seal_key).ok()?;
    }
    for (i, seg) in parts.enumerate() {
        std::fs::write(audit.join(journal::segment_name(i as u64 + 1)), seg).ok()?;
    }
    let key = match AuditorKey::read_from(&key_path) {
        Ok(k) => k,
        Err(_) => {
            std::fs::write(&key_path, FIXED_AUDITOR_KEY).ok()?;
            match AuditorKey::read_from(&key_path) {
                Ok(k) => k,
                Err(e) => panic!("the fixed auditor key must parse: {e}"),
            }
        }
    };
    Some((audit, key))
}

/// A whole audit directory from one input, split at NUL bytes (which no
/// journal line holds): the auditor key file, `seal.key` (absent when
/// empty), then `journal-000001.log` onwards. Everything that reads
/// segments runs over it: the line reader, `records`, the last-line
/// finder, crash recovery, tailing, and `verify`.
pub fn journal_segments(scratch: &Path, data: &[u8]) {
    let Some((audit, key)) = unpack_audit_dir(scratch, data) else {
        return;
    };
    if let Ok(lines) = Lines::open(&audit) {
        for (info, line) in lines.flatten() {
            if info.complete {
                let _ = Record::parse(&line);
            }
        }
    }
    if let Ok(recs) = journal::records(&audit) {
        for rec in recs.flatten() {
            let _ = rec.to_line();
        }
    }
    if let Ok(segs) = journal::list_segments(&audit) {
        for s in &segs {
            let _ = journal::last_line(&s.path);
        }
    }
    for epoch in [0, 1] {
        let _ = journal::recover(&audit, epoch);
    }
    if let Ok(mut t) = Tail::at_start(&audit) {
        let _ = t.poll(&mut |_| {});
    }
    match journal::verify(&audit, &key) {
        Ok(report) => {
            let _ = report.to_string();
        }
        Err(e) => {
            let _ = (e.to_string(), e.exit_code(), e.problem().is_some());
        }
    }
}

/// A request file (`audit/requests/*.json`) as keytool leaves it for the
/// daemon: what the journal writer reads before appending it. Whatever it
/// cannot take is set aside as `*.rejected`, never lost, never a panic.
pub fn request_file(scratch: &Path, data: &[u8]) {
    let dir = scratch.join(journal::REQUESTS_DIR);
    if std::fs::create_dir(&dir).is_err() {
        return;
    }
    let path = dir.join("00000000000000000001-1.json");
    let Ok(mut f) = std::fs::File::create(&path) else {
        return;
    };
    if f.write_all(data).is_err() {
        return;
    }
    drop(f);
    let got = journal::pending(scratch);
    assert!(got.len() <= 1);
    match got.first() {
        Some(r) => assert!(r.path.exists(), "an accepted request stays until it is recorded: {:?}", r.event),
        None => assert!(dir.join("00000000000000000001-1.json.rejected").exists(), "a refused request is set aside"),
    }
}

/// A recording's first bytes, as the blackout write path sees them:
/// `audio::wav::probe`, then `silence` over windows around the layout's
/// boundaries (checked against the per-byte rule: exactly the bytes in the
/// buffer, the selection and the sample region change, to the layout's
/// silence byte), then `deinterleave` of the sample bytes in the probed
/// format and in a hostile one made from the input.
pub fn wav_probe(data: &[u8]) {
    let p = probe(data);
    let scanned = data.len().min(MAX_HEADER_SCAN) as u64;
    match &p {
        Probe::NotWav => {}
        Probe::Incomplete { parsed_to } => {
            assert!(*parsed_to <= scanned && data.len() < MAX_HEADER_SCAN, "{p:?} for {} bytes", data.len());
        }
        Probe::Wav(w) => {
            // RIFF header, a 16-byte fmt chunk and the data chunk's header at least.
            assert!((44..=scanned).contains(&w.data_start), "{p:?} for {} bytes", data.len());
            assert!(w.data_end.is_none_or(|e| e >= w.data_start), "{p:?}");
            let f = w.format;
            assert!(f.channels > 0 && f.sample_rate > 0);
            assert_eq!(f.frame_len, u32::from(f.channels) * u32::from(f.encoding.bytes_per_sample()));
            let header = w.data_start as usize;
            assert_eq!(probe(&data[..header]), p, "the header alone says the same");
            assert!(matches!(probe(&data[..header - 1]), Probe::Incomplete { .. }), "one byte less is incomplete");
        }
        Probe::Unsupported { data_start, reason } => {
            assert!(!reason.is_empty());
            match data_start {
                Some(d) => {
                    assert!(*d <= scanned);
                    assert_eq!(probe(&data[..*d as usize]), p, "the header alone says the same");
                }
                None => assert!(data.len() >= MAX_HEADER_SCAN, "{p:?} for {} bytes", data.len()),
            }
        }
    }

    let layout = Layout::from_probe(&p);
    let (region, _) = layout.sample_region();
    let edges =
        [0, region.start.saturating_sub(1), region.start, region.start.saturating_add(1), region.end.saturating_sub(1)];
    let lens = [0, 1, 7, data.len().min(4096)];
    for (i, &buf_off) in edges.iter().enumerate() {
        for &len in &lens {
            let select = edges[(i + len) % edges.len()]..edges[(i + len + 2) % edges.len()].saturating_add(3);
            check_silence(&layout, &data[..len.min(data.len())], buf_off, select);
        }
    }

    if let Probe::Wav(w) = &p {
        let frames = &data[(w.data_start as usize).min(data.len())..];
        check_deinterleave(&w.format, frames);
    }
    // A format no probe returns: the decoder must still never panic.
    if let [e, c0, c1, l0, l1, rest @ ..] = data {
        let encoding = Encoding::ALL[usize::from(*e) % Encoding::ALL.len()];
        let hostile = audio::Format {
            encoding,
            channels: u16::from_le_bytes([*c0, *c1]) % 64,
            sample_rate: 8000,
            frame_len: u32::from(u16::from_le_bytes([*l0, *l1])) % 512,
        };
        let mut out = vec![Vec::new(); usize::from(*e % 9)];
        deinterleave(&hostile, rest, &mut out);
        assert!(out.iter().all(|o| o.iter().all(|s| s.is_finite())));
    }
}

/// One `silence` call against the per-byte rule.
fn check_silence(layout: &Layout, bytes: &[u8], buf_off: u64, select: std::ops::Range<u64>) {
    let (region, byte) = layout.sample_region();
    let mut buf = bytes.to_vec();
    let got = silence(layout, &mut buf, buf_off, select.clone());
    if let Some(r) = &got {
        assert!(r.start < r.end, "an empty range is None: {r:?}");
        assert!(select.start <= r.start && r.end <= select.end, "{r:?} outside select {select:?}");
        assert!(region.start <= r.start && r.end <= region.end, "{r:?} outside samples {region:?}");
        assert!(buf_off <= r.start && r.end - buf_off <= buf.len() as u64, "{r:?} outside buf {buf_off}+{}", buf.len());
    }
    for (i, (&now, &was)) in buf.iter().zip(bytes).enumerate() {
        let at = buf_off.checked_add(i as u64).filter(|&a| a != u64::MAX);
        let hit = at.is_some_and(|a| select.contains(&a) && region.contains(&a));
        assert_eq!(hit, got.as_ref().zip(at).is_some_and(|(r, a)| r.contains(&a)), "byte {i} of buf at {buf_off}");
        assert_eq!(now, if hit { byte } else { was }, "byte {i} of buf at {buf_off}");
    }
}

/// Decoding a probed format: one sample per whole frame on every channel
/// given an output, all finite, integer formats within full scale.
fn check_deinterleave(format: &audio::Format, frames: &[u8]) {
    // Up to 65535 channels may be probed; the first 16 are enough to check.
    let mut out = vec![Vec::new(); usize::from(format.channels).min(16)];
    deinterleave(format, frames, &mut out);
    let count = frames.len() / format.frame_len as usize;
    let bounded = !matches!(format.encoding, Encoding::Float32 | Encoding::Float64);
    for o in &out {
        assert_eq!(o.len(), count);
        assert!(o.iter().all(|s| s.is_finite() && (!bounded || (-1.0..=1.0).contains(s))));
    }
}

/// One input for the named target.
pub type Input = (&'static str, Vec<u8>);

/// Well-formed inputs for every target, made by the real writers: the seed
/// corpora under `fuzz/corpus/` started from these, and the replay test
/// runs a fresh set each time. `scratch` must be an empty directory.
pub fn seeds(scratch: &Path) -> Result<Vec<Input>, Box<dyn std::error::Error>> {
    use crate::journal::{Actor, Detail, Event, EventKind, Journal, JournalOptions, Outcome};
    use crate::kdf::KdfParams;
    use std::time::Duration;

    let mut out: Vec<Input> = Vec::new();
    let m = master();

    // Volume headers: one slot, then two with labels (the cheapest KDF).
    let mut h = V1Header::new(1_700_000_000)?;
    h.add_passphrase_slot(&m, b"correct horse battery 9", KdfParams::calibrate(1, Duration::ZERO)?, "operator-1", 1)?;
    out.push(("volume_header", h.encode(&m)));
    h.add_passphrase_slot(&m, b"second", KdfParams::calibrate(2, Duration::ZERO)?, "caf\u{e9} \u{1F4DE}", 2)?;
    out.push(("volume_header", h.encode(&m)));
    // Format 2: one slot; three with history, a flag and dual control.
    let kdf = KdfParams::calibrate(1, Duration::ZERO)?;
    let creds = |p: &str| {
        Credentials::passphrase(crate::secret::Passphrase::new(p.as_bytes().to_vec())).ok_or("empty passphrase")
    };
    let mut h = VolumeHeader::new(1_700_000_000)?;
    let (a, b, c) = (creds("correct horse battery 9")?, creds("second operator 22")?, creds("third operator 333")?);
    h.add_slot(&m, NewSlot { label: "operator-1", creds: &a, kdf, no_self_change: false }, 1)?;
    out.push(("volume_header", h.encode(&m)));
    h.add_slot(&m, NewSlot { label: "operator-2", creds: &b, kdf, no_self_change: true }, 2)?;
    h.add_slot(&m, NewSlot { label: "operator-3", creds: &c, kdf, no_self_change: false }, 3)?;
    h.enable_dual_control(&m, 2, &["operator-1".into(), "operator-2".into(), "operator-3".into()])?;
    out.push(("volume_header", h.encode(&m)));

    // File headers: one slot, and both slots with the newer one second.
    let key = file_header_key();
    let mut region = vec![0u8; FILE_HEADER_LEN as usize];
    let mut fh = FileHeader::new([3; 16], None);
    fh.size = 4097;
    let slot = fh.encode(SectorLayout::Plain, &key);
    region[..slot.len()].copy_from_slice(&slot);
    out.push(("file_header", region.clone()));
    fh.generation = 1;
    fh.size = 9000;
    let off = fh.slot_offset() as usize;
    let slot = fh.encode(SectorLayout::Plain, &key);
    region[off..off + slot.len()].copy_from_slice(&slot);
    out.push(("file_header", region));
    // Format 3: bound to a name, during a rename.
    let mut region = vec![0u8; FILE_HEADER_LEN as usize];
    let bind = |n: &[u8]| fileheader::NameBinding::of(&key, &[9; 16], n);
    let mut fh = FileHeader::new([4; 16], Some(bind(b"call.wav")));
    fh.previous_binding = Some(bind(b"old.wav"));
    fh.size = 5000;
    let slot = fh.encode(SectorLayout::Tagged, &key);
    region[..slot.len()].copy_from_slice(&slot);
    region[2048..2048 + slot.len()].copy_from_slice(&slot);
    out.push(("file_header", region));

    // Names: an encrypted short name, a long one (entry and side file), a
    // link target, an xattr name, and a plain name, each after a directory ID.
    let nk = names_key();
    let links = derive64(&master(), LABEL_LINK_TARGETS, &[]);
    let dir_id = [9u8; names::DIRID_LEN];
    let with_dir = |s: &[u8]| [&dir_id[..], s].concat();
    let short = names::encrypt_name(&nk, &dir_id, b"c1.wav")?;
    out.push(("names", with_dir(short.entry().as_bytes())));
    if let BackingName::Long { hashed, full } = names::encrypt_name(&nk, &dir_id, &[b'n'; 255])? {
        out.push(("names", with_dir(hashed.as_bytes())));
        out.push(("names", with_dir(full.as_bytes())));
    }
    out.push(("names", with_dir(names::encrypt_link_target(&links, b"../team-a/c1.wav")?.as_bytes())));
    out.push(("names", with_dir(names::encrypt_xattr_name(&nk, b"comment")?.as_bytes())));
    out.push(("names", with_dir(b"caf\xc3\xa9-call.wav")));

    // Policies.
    out.push((
        "policy",
        b"# recorders write, QA reads its team\n[[grant]]\nusers  = [\"recorder\", 1002]\ngroups = []\n\
          paths  = [\"/**\"]\nrights = [\"list\", \"create\", \"write\"]\n\n[[grant]]\ngroups = [\"qa\", \"2001\"]\n\
          paths  = [\"/team-a/**\", \"/shared/*.wav\", \"/x/{a,b}/[0-9]?\\\\*\"]\nrights = [\"list\", \"read\"]\n"
            .to_vec(),
    ));
    out.push((
        "policy",
        b"grant = [\n  { users = [\"alice\"], paths = [\"/a/**/b\"], rights = [\"setattr\", \"blackout\"] },\n]\n"
            .to_vec(),
    ));

    // A real journal: records of several kinds, seals, two segments.
    let audit = scratch.join("audit");
    let auditor = journal::init_journal(&audit)?;
    let key_path = scratch.join("auditor.key");
    auditor.write_to(&key_path)?;
    let actor = Actor {
        uid: 1000,
        user: Some("alice".into()),
        gid: 1000,
        pid: 4242,
        exe: Some("/usr/bin/cat".into()),
        cmdline: Some(vec!["cat".into(), "/mnt/team-a/c1.wav".into()]),
        ..Actor::default()
    };
    let opts = JournalOptions {
        segment_size: 2048,
        epoch_records: 4,
        ingest_requests: false,
        lock_wait: Duration::ZERO,
        actor: Some(actor.clone()),
        ..JournalOptions::default()
    };
    let j = Journal::open(&audit, opts)?;
    j.append(Event::new(EventKind::Open, actor.clone()).path("/team-a/c1.wav").detail(Detail {
        flags: Some("O_RDONLY".into()),
        access: Some("read".into()),
        fh: Some(3),
        ..Detail::default()
    }))?;
    j.append(
        Event::new(EventKind::Denied, actor.clone()).outcome(Outcome::errno(13)).path("/team-b/x").detail(Detail {
            op: Some("open".into()),
            missing_right: Some("read".into()),
            ..Detail::default()
        }),
    )?;
    j.append(Event::new(EventKind::Rename, actor.clone()).path("/a").path2("/b \"q\" \u{e9}"))?;
    j.append(Event::new(EventKind::Unlink, actor.clone()).outcome(Outcome::Intent).path("/c"))?;
    j.append(
        Event::new(EventKind::Unlink, actor.clone()).path("/c").detail(Detail { intent: Some(5), ..Detail::default() }),
    )?;
    j.append(Event::new(EventKind::Close, actor).detail(Detail {
        fh: Some(3),
        bytes_read: Some(4096),
        bytes_written: Some(0),
        ..Detail::default()
    }))?;
    j.seal()?;
    j.close()?;
    let mut packed = std::fs::read(&key_path)?;
    packed.push(0);
    packed.extend(std::fs::read(audit.join(journal::SEAL_KEY_FILE))?);
    for s in journal::list_segments(&audit)? {
        let seg = std::fs::read(&s.path)?;
        for line in seg.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            out.push(("journal_record", line.to_vec()));
        }
        packed.push(0);
        packed.extend(seg);
    }
    out.push(("journal_segments", packed));

    // Request files: two kinds the daemon takes, one it refuses.
    let who = Actor { uid: 0, user: Some("root".into()), gid: 0, pid: 7, ..Actor::default() };
    let read = Event::new(EventKind::AuditRead, who.clone())
        .detail(Detail { reason: Some("callvault-keytool audit show".into()), ..Detail::default() });
    let admin = Event::new(EventKind::KeyAdmin, who.clone()).detail(Detail {
        action: Some("add-keyslot".into()),
        slot: Some(2),
        ..Detail::default()
    });
    for ev in [read, admin, Event::new(EventKind::Open, who).path("/x")] {
        out.push(("request_file", serde_json::to_vec(&ev)?));
    }

    // Recordings: sox-made WAVs of several formats, an unsupported one,
    // a streaming header, and the first bytes of a screen recording.
    for wav in [
        &include_bytes!("audio/testdata/ulaw.wav")[..],
        include_bytes!("audio/testdata/alaw.wav"),
        include_bytes!("audio/testdata/s16_c2.wav"),
        include_bytes!("audio/testdata/s24.wav"),
        include_bytes!("audio/testdata/f32.wav"),
        include_bytes!("audio/testdata/ulaw_pipe.wav"),
        include_bytes!("audio/testdata/ima_adpcm.wav"),
        b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom",
    ] {
        out.push(("wav_probe", wav.to_vec()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// Every file of `fuzz/corpus/TARGET/` and `fuzz/regressions/TARGET/`.
    fn saved_inputs() -> Vec<(&'static str, PathBuf)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        let mut out = Vec::new();
        for target in TARGETS {
            for kind in ["corpus", "regressions"] {
                let Ok(rd) = std::fs::read_dir(root.join(kind).join(target)) else { continue };
                let mut files: Vec<PathBuf> = rd.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
                files.sort();
                out.extend(files.into_iter().map(|p| (target, p)));
            }
        }
        out
    }

    // The fuzzers' findings and minimised corpora, replayed without a fuzzer
    // on the stable toolchain: a panic here is a parser bug coming back.
    #[test]
    fn fuzz_corpora_and_crash_inputs_replay_cleanly() {
        let inputs = saved_inputs();
        for target in TARGETS {
            assert!(inputs.iter().any(|(t, _)| *t == target), "fuzz/corpus/{target}/ holds no inputs");
        }
        for (target, path) in inputs {
            let data = std::fs::read(&path).unwrap();
            let scratch = tempfile::tempdir().unwrap();
            eprintln!("{target}: {}", path.display());
            assert!(run(target, scratch.path(), &data));
        }
    }

    #[test]
    fn fresh_seeds_pass_every_target() {
        let dir = tempfile::tempdir().unwrap();
        let seeds = seeds(dir.path()).unwrap();
        for target in TARGETS {
            assert!(seeds.iter().any(|(t, _)| *t == target), "no seed for {target}");
        }
        for (target, data) in seeds {
            let scratch = tempfile::tempdir().unwrap();
            assert!(run(target, scratch.path(), &data));
        }
        assert!(!run("no_such_target", dir.path(), b""));
    }

    // The journal seed must reach verify's success path, or the fuzzer
    // starts from nothing better than random bytes.
    #[test]
    fn journal_seed_unpacks_into_a_journal_that_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let seeds = seeds(dir.path()).unwrap();
        let (_, packed) = seeds.iter().find(|(t, _)| *t == "journal_segments").unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let (audit, key) = unpack_audit_dir(scratch.path(), packed).unwrap();
        assert!(journal::list_segments(&audit).unwrap().len() >= 2, "the seed spans segments");
        let report = journal::verify(&audit, &key).unwrap();
        assert!(report.to_string().contains(" verified: "), "{report}");
    }
}
