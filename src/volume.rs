//! A volume on disk: its directory layout, creation and unlocking.
//!
//! ```text
//! VOLUME/callvault.header       the volume header (keyslots, MAC)
//! VOLUME/callvault.header.copy  its second copy, written after the first
//! VOLUME/data/                  the encrypted tree; its .dirid is the root's ID
//! VOLUME/audit/                 the audit journal, outside the mounted tree
//! VOLUME/callvault.lock         held (flock) by the daemon serving the volume
//! ```
//!
//! Every header write goes to `callvault.header` and then to the copy, each
//! through a temporary file, fsync and rename, with the header's write
//! sequence one higher than before. A reader decodes both and tries the
//! newer first; it falls back to the other only when the newer is damaged
//! (does not parse, or its MAC fails once a slot has opened), never after a
//! wrong secret, so a slot removed from the newer copy cannot come back
//! through the older one. Format-1 volumes have no copy.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::Error;
use crate::header::{self, AnyHeader, Credentials, NewSlot, VolumeHeader};
use crate::kdf::KdfParams;
use crate::keys::VolumeKeys;
use crate::names::DIRID_FILE;
use crate::secret::MasterKey;

pub const HEADER_FILE: &str = "callvault.header";
pub const HEADER_COPY_FILE: &str = "callvault.header.copy";
pub const DATA_DIR: &str = "data";
pub const AUDIT_DIR: &str = "audit";
pub const LOCK_FILE: &str = "callvault.lock";

/// Paths inside one volume directory.
#[derive(Debug, Clone)]
pub struct VolumePaths {
    pub root: PathBuf,
}

impl VolumePaths {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        VolumePaths { root: root.into() }
    }
    pub fn header(&self) -> PathBuf {
        self.root.join(HEADER_FILE)
    }
    pub fn header_copy(&self) -> PathBuf {
        self.root.join(HEADER_COPY_FILE)
    }
    pub fn data(&self) -> PathBuf {
        self.root.join(DATA_DIR)
    }
    pub fn audit(&self) -> PathBuf {
        self.root.join(AUDIT_DIR)
    }
    pub fn lock(&self) -> PathBuf {
        self.root.join(LOCK_FILE)
    }
}

/// One operator's factors, with the label of their slot if they name it.
pub struct Operator {
    pub label: Option<String>,
    pub creds: Credentials,
}

impl Operator {
    /// An operator with a passphrase only, naming no slot (tests, tools).
    pub fn with_passphrase(passphrase: &[u8]) -> Result<Operator, Error> {
        let pass = crate::secret::Passphrase::new(passphrase.to_vec());
        let creds = Credentials::passphrase(pass).ok_or(Error::EmptyPassphrase)?;
        Ok(Operator { label: None, creds })
    }
}

/// An unlocked volume: the header that opened, and the keys derived from its master key.
pub struct Unlocked {
    pub header: AnyHeader,
    /// Which copy opened (`callvault.header` or the copy).
    pub header_path: PathBuf,
    pub keys: VolumeKeys,
    /// The slots whose secrets were used, and their labels.
    pub slots: Vec<usize>,
    pub labels: Vec<String>,
    /// One line each: a damaged copy that was passed over, a stale copy.
    pub warnings: Vec<String>,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Creates a volume in `dir` (missing or empty), with one keyslot for
/// `creds` labelled `label`. `before_header` runs once the directories exist
/// and before the header is written (the keytool creates the audit journal
/// and its key there), so a failure in it leaves no mountable volume behind.
pub fn create(
    dir: &Path,
    creds: &Credentials,
    kdf: KdfParams,
    label: &str,
    before_header: impl FnOnce(&VolumePaths) -> Result<(), Error>,
) -> Result<VolumePaths, Error> {
    header::validate_label(label)?;
    let paths = VolumePaths::new(dir);
    match fs::read_dir(dir) {
        Ok(mut entries) => {
            if paths.header().exists() {
                return Err(Error::VolumeExists { path: dir.to_path_buf() });
            }
            if entries.next().is_some() {
                return Err(Error::DirectoryNotEmpty { path: dir.to_path_buf() });
            }
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            fs::DirBuilder::new().mode(0o700).create(dir).map_err(|e| Error::io(dir, e))?;
        }
        Err(e) => return Err(Error::io(dir, e)),
    }
    let master = MasterKey::generate()?;
    let mut header = VolumeHeader::new(now())?;
    header.add_slot(&master, NewSlot { label, creds, kdf, no_self_change: false }, now())?;
    let data = paths.data();
    // data/ is the mount's root directory, so its mode is what users of the
    // mount see; the volume directory itself (0700) keeps them off the ciphertext.
    fs::DirBuilder::new().mode(0o755).create(&data).map_err(|e| Error::io(&data, e))?;
    write_dirid(&data, &crate::random::array()?)?;
    fs::DirBuilder::new().mode(0o700).create(paths.audit()).map_err(|e| Error::io(paths.audit(), e))?;
    before_header(&paths)?;
    // The header goes last: a volume is only a volume once everything it
    // names exists. An interrupted init leaves a directory without a header,
    // which no daemon will mount; empty it and run init again.
    write_header(&paths, &mut header, &master)?;
    Ok(paths)
}

/// Writes a directory ID file into a backing directory (create_new, 0400, synced).
pub fn write_dirid(dir: &Path, id: &[u8; 16]) -> Result<(), Error> {
    let p = dir.join(DIRID_FILE);
    let mut f = OpenOptions::new().write(true).create_new(true).mode(0o400).open(&p).map_err(|e| Error::io(&p, e))?;
    f.write_all(id).and_then(|_| f.sync_all()).map_err(|e| Error::io(&p, e))
}

/// Replaces one file atomically: temp file, fsync, rename, fsync directory.
pub fn replace_file(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let _ = fs::remove_file(&tmp);
    let mut f =
        OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| Error::io(&tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(dir, e))
}

/// Writes `header` (its write sequence advanced) to both copies, MAC'd
/// under `master`: the first copy, then the second.
pub fn write_header(paths: &VolumePaths, header: &mut VolumeHeader, master: &MasterKey) -> Result<(), Error> {
    header.write_seq += 1;
    let bytes = header.encode(master);
    replace_file(&paths.root, HEADER_FILE, &bytes, 0o600)?;
    replace_file(&paths.root, HEADER_COPY_FILE, &bytes, 0o600)
}

/// Reads at most one byte more than any header: a header path that is a
/// huge or endless file (a symlink to /dev/zero) is refused, not read to the end.
fn read_bounded(path: &Path) -> Result<Vec<u8>, std::io::Error> {
    let f = File::open(path)?;
    let mut b = Vec::with_capacity(header::MAX_HEADER_LEN + 1);
    f.take(header::MAX_HEADER_LEN as u64 + 1).read_to_end(&mut b)?;
    Ok(b)
}

fn decode_file(path: &Path) -> Result<AnyHeader, Error> {
    match read_bounded(path) {
        Ok(b) if b.len() > header::MAX_HEADER_LEN => {
            let what = format!("longer than {} bytes", header::MAX_HEADER_LEN);
            Err(Error::HeaderDamaged { path: path.to_path_buf(), what })
        }
        Ok(b) => header::decode(&b, path),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Both copies of a volume's header, as read.
pub struct HeaderCopies {
    /// Decoded copies, newest (highest write sequence) first.
    pub decoded: Vec<(PathBuf, AnyHeader)>,
    /// Copies that exist and do not decode, with why.
    pub damaged: Vec<(PathBuf, Error)>,
}

impl HeaderCopies {
    /// One line per copy that does not decode, naming it (not every error
    /// has a path of its own).
    pub fn damage_warnings(&self) -> Vec<String> {
        self.damaged
            .iter()
            .map(|(p, e)| {
                let line = first_line(e);
                if line.contains(&*p.to_string_lossy()) { line } else { format!("{}: {line}", p.display()) }
            })
            .collect()
    }

    /// The newest copy that decodes.
    pub fn best(&self) -> Option<&AnyHeader> {
        self.decoded.first().map(|(_, h)| h)
    }
}

fn check_volume_dir(dir: &Path) -> Result<(), Error> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::NotAVolume { path: dir.to_path_buf() }),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(Error::NotAVolume { path: dir.to_path_buf() }),
        Err(e) => Err(Error::io(dir, e)),
    }
}

/// Reads and decodes both header copies of the volume in `dir`. Fails only
/// when neither decodes (with the first copy's error) or neither exists.
pub fn read_headers(dir: &Path) -> Result<HeaderCopies, Error> {
    check_volume_dir(dir)?;
    let paths = VolumePaths::new(dir);
    let mut copies = HeaderCopies { decoded: Vec::new(), damaged: Vec::new() };
    for path in [paths.header(), paths.header_copy()] {
        match decode_file(&path) {
            Ok(h) => copies.decoded.push((path, h)),
            Err(Error::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {}
            Err(e) => copies.damaged.push((path, e)),
        }
    }
    if copies.decoded.is_empty() {
        return Err(match copies.damaged.into_iter().next() {
            Some((_, e)) => e,
            None => Error::NotAVolume { path: dir.to_path_buf() },
        });
    }
    copies.decoded.sort_by_key(|(_, h)| std::cmp::Reverse(h.write_seq()));
    Ok(copies)
}

/// Reads and parses the newest header copy of the volume in `dir`.
pub fn read_header(dir: &Path) -> Result<AnyHeader, Error> {
    let copies = read_headers(dir)?;
    Ok(copies.decoded.into_iter().next().map(|(_, h)| h).expect("read_headers returns at least one"))
}

/// The newest header copy of the volume in `dir` that decodes, as the bytes
/// read (for a header backup: exactly what was decoded), its path and the
/// decoded header.
pub fn newest_header_bytes(dir: &Path) -> Result<(PathBuf, Vec<u8>, AnyHeader), Error> {
    check_volume_dir(dir)?;
    let paths = VolumePaths::new(dir);
    let mut best: Option<(PathBuf, Vec<u8>, AnyHeader)> = None;
    let mut first_err = None;
    for path in [paths.header(), paths.header_copy()] {
        let decoded = match read_bounded(&path) {
            Ok(b) if b.len() > header::MAX_HEADER_LEN => Err(Error::HeaderDamaged {
                path: path.clone(),
                what: format!("longer than {} bytes", header::MAX_HEADER_LEN),
            }),
            Ok(b) => header::decode(&b, &path).map(|h| (b, h)),
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => Err(Error::io(&path, e)),
        };
        match decoded {
            Ok((b, h)) => {
                if best.as_ref().is_none_or(|(_, _, old)| h.write_seq() > old.write_seq()) {
                    best = Some((path, b, h));
                }
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    best.ok_or_else(|| first_err.unwrap_or(Error::NotAVolume { path: dir.to_path_buf() }))
}

/// Whether `backup` may replace the volume's header, judged against the
/// current copies that decode: it must be of the same volume, and not from
/// before the newest key generation among them (its master key would
/// decrypt nothing written since). With no copy decoding there is nothing
/// to judge against, and it may.
pub fn check_restorable(backup: &AnyHeader, current: &[(PathBuf, AnyHeader)]) -> Result<(), Error> {
    if current.iter().any(|(_, h)| h.volume_id() != backup.volume_id()) {
        return Err(Error::BackupOfOtherVolume);
    }
    let newest = current.iter().map(|(_, h)| h.generation()).max().unwrap_or(0);
    if backup.generation() < newest {
        return Err(Error::BackupTooOld { backup: backup.generation(), current: newest });
    }
    Ok(())
}

/// Opens one decoded header (a volume's, or a header backup read from
/// `path`) with the operators' factors: the master key, the slots used and
/// their labels. The header's MAC is checked.
pub fn open_header(
    h: &AnyHeader,
    operators: &[Operator],
    path: &Path,
) -> Result<(MasterKey, Vec<usize>, Vec<String>), Error> {
    match h {
        AnyHeader::V1(v1) => {
            let Some(op) = operators.first() else { return Err(Error::WrongPassphrase { label: None }) };
            if op.creds.kind() != header::SlotKind::Passphrase {
                return Err(Error::WrongPassphrase { label: op.label.clone() });
            }
            let pass = op.creds.passphrase_bytes().unwrap_or(&[]);
            let (master, slot) = v1.unlock(pass, path)?;
            let label = v1.slots[slot].as_ref().map(|s| s.label.clone()).unwrap_or_default();
            Ok((master, vec![slot], vec![label]))
        }
        AnyHeader::V2(v2) => {
            let opened = match operators {
                [one] if v2.dual.is_none() => v2.unlock(&one.creds, one.label.as_deref(), path)?,
                [one] if one.label.is_none() => v2.unlock(&one.creds, None, path)?,
                _ => {
                    let mut labelled = Vec::with_capacity(operators.len());
                    for op in operators {
                        let Some(l) = &op.label else {
                            return Err(Error::DualControlOperators {
                                what: "with several operators, each secret must name its slot (LABEL=FILE)".into(),
                            });
                        };
                        labelled.push((l.clone(), &op.creds));
                    }
                    v2.unlock_labelled(&labelled, path)?
                }
            };
            let labels = opened.slots.iter().filter_map(|&i| v2.slots[i].as_ref().map(|s| s.label.clone())).collect();
            Ok((opened.master, opened.slots, labels))
        }
    }
}

/// Unlocks the volume in `dir` with one operator's factors, or under dual
/// control with several operators' (each naming their slot).
pub fn unlock(dir: &Path, operators: &[Operator]) -> Result<Unlocked, Error> {
    let copies = read_headers(dir)?;
    let mut warnings = copies.damage_warnings();
    let newest = copies.decoded[0].1.write_seq();
    let mut last_err = None;
    let mut failed: Vec<&PathBuf> = Vec::new();
    for (path, h) in &copies.decoded {
        match open_header(h, operators, path) {
            Ok((master, slots, labels)) => {
                if h.write_seq() < newest {
                    warnings.push(format!("using {} (older than the other copy, which is damaged)", path.display()));
                }
                // The other copy must hold the same header, intact.
                for (other_path, other) in copies.decoded.iter().filter(|(p, _)| p != path && !failed.contains(&p)) {
                    let AnyHeader::V2(o) = other else { continue };
                    if let Err(e) = o.verify_mac(&master, other_path) {
                        warnings.push(first_line(&e));
                    } else if o.write_seq != h.write_seq() {
                        warnings.push(format!("{} is from an earlier write of the header", other_path.display()));
                    }
                }
                if h.version() == 2 && copies.decoded.len() + copies.damaged.len() < 2 {
                    warnings.push(format!("{} is missing; the next key change rewrites it", HEADER_COPY_FILE));
                }
                let data = VolumePaths::new(dir).data();
                if !data.is_dir() {
                    return Err(Error::HeaderDamaged {
                        path: data,
                        what: "the volume's data directory is missing".into(),
                    });
                }
                return Ok(Unlocked {
                    header: h.clone(),
                    header_path: path.clone(),
                    keys: VolumeKeys::derive(master),
                    slots,
                    labels,
                    warnings,
                });
            }
            // Damage found only once a slot opened: try the other copy.
            Err(e @ (Error::HeaderTampered { .. } | Error::HeaderDamaged { .. })) => {
                warnings.push(first_line(&e));
                failed.push(path);
                last_err = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or(Error::WrongPassphrase { label: None }))
}

fn first_line(e: &Error) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn kdf() -> KdfParams {
        KdfParams::calibrate(1, Duration::ZERO).unwrap()
    }

    fn creds(p: &[u8]) -> Credentials {
        Credentials::passphrase(crate::secret::Passphrase::new(p.to_vec())).unwrap()
    }

    fn op(p: &[u8]) -> Vec<Operator> {
        vec![Operator { label: None, creds: creds(p) }]
    }

    #[test]
    fn create_then_unlock_and_refuse_to_overwrite() {
        let t = tempfile::tempdir().unwrap();
        let v = t.path().join("vol");
        create(&v, &creds(b"a passphrase 123"), kdf(), "ops", |_| Ok(())).unwrap();
        assert!(v.join("data/.dirid").exists() && v.join("audit").is_dir());
        let u = unlock(&v, &op(b"a passphrase 123")).unwrap();
        assert_eq!((u.slots, u.labels), (vec![0], vec!["ops".to_string()]));
        assert!(u.warnings.is_empty(), "{:?}", u.warnings);
        assert!(matches!(unlock(&v, &op(b"nope")), Err(Error::WrongPassphrase { .. })));
        assert!(matches!(create(&v, &creds(b"x"), kdf(), "ops", |_| Ok(())), Err(Error::VolumeExists { .. })));
        let other = t.path().join("other");
        fs::create_dir(&other).unwrap();
        fs::write(other.join("f"), b"x").unwrap();
        assert!(matches!(create(&other, &creds(b"x"), kdf(), "ops", |_| Ok(())), Err(Error::DirectoryNotEmpty { .. })));
        assert!(matches!(read_header(&other), Err(Error::NotAVolume { .. })));
        assert!(matches!(read_header(&t.path().join("missing")), Err(Error::NotAVolume { .. })));
    }

    #[test]
    fn a_damaged_copy_falls_back_with_a_warning_and_an_older_copy_never_revives_a_slot() {
        let t = tempfile::tempdir().unwrap();
        let v = t.path().join("vol");
        let paths = create(&v, &creds(b"first operator 1"), kdf(), "alice", |_| Ok(())).unwrap();
        let good = fs::read(paths.header()).unwrap();
        // Damaged first copy: the second opens, and the warning names the first.
        fs::write(paths.header(), &good[..500]).unwrap();
        let u = unlock(&v, &op(b"first operator 1")).unwrap();
        assert_eq!(u.header_path, paths.header_copy());
        assert!(u.warnings.iter().any(|w| w.contains(HEADER_FILE) && w.contains("500 bytes")), "{:?}", u.warnings);
        // A changed byte the parser accepts: the MAC fails, the other copy opens.
        let mut flipped = good.clone();
        flipped[17] ^= 1;
        fs::write(paths.header(), &good).unwrap();
        fs::write(paths.header_copy(), &flipped).unwrap();
        let u = unlock(&v, &op(b"first operator 1")).unwrap();
        assert_eq!(u.header_path, paths.header());
        assert!(u.warnings.iter().any(|w| w.contains(HEADER_COPY_FILE) && w.contains("integrity")), "{:?}", u.warnings);
        // Both damaged: the damage is the error, not a wrong passphrase.
        fs::write(paths.header(), &good[..500]).unwrap();
        let e = unlock(&v, &op(b"first operator 1")).err().expect("both copies damaged");
        assert!(matches!(e, Error::HeaderDamaged { .. } | Error::HeaderTampered { .. }), "{e}");
        assert_eq!(crate::exitcode::for_error(&e), crate::exitcode::DAMAGED_HEADER);
        // bob added then removed: the stale copy still holds bob's slot, but a
        // wrong secret against the newer copy never falls back to it.
        fs::write(paths.header(), &good).unwrap();
        fs::write(paths.header_copy(), &good).unwrap();
        let mut u = unlock(&v, &op(b"first operator 1")).unwrap();
        let AnyHeader::V2(h) = &mut u.header else { panic!("format 2") };
        h.add_slot(
            u.keys.master(),
            NewSlot { label: "bob", creds: &creds(b"bob operator 22"), kdf: kdf(), no_self_change: false },
            1,
        )
        .unwrap();
        write_header(&paths, h, u.keys.master()).unwrap();
        let with_bob = fs::read(paths.header()).unwrap();
        h.remove_slot(u.keys.master(), "bob").unwrap();
        write_header(&paths, h, u.keys.master()).unwrap();
        fs::write(paths.header_copy(), &with_bob).unwrap();
        assert!(matches!(unlock(&v, &op(b"bob operator 22")), Err(Error::WrongPassphrase { .. })));
        let u = unlock(&v, &op(b"first operator 1")).unwrap();
        assert!(u.warnings.iter().any(|w| w.contains("earlier write")), "{:?}", u.warnings);
    }

    #[test]
    fn newest_bytes_skip_a_damaged_copy_and_backups_are_judged_by_volume_and_generation() {
        let t = tempfile::tempdir().unwrap();
        let v = t.path().join("vol");
        create(&v, &creds(b"a passphrase 123"), kdf(), "ops", |_| Ok(())).unwrap();
        let (path, bytes, h) = newest_header_bytes(&v).unwrap();
        assert_eq!(path, v.join(HEADER_FILE));
        assert_eq!(bytes, fs::read(&path).unwrap());
        let mut bad = bytes.clone();
        bad[..8].copy_from_slice(b"garbage!");
        fs::write(&path, &bad).unwrap();
        let (path, again, _) = newest_header_bytes(&v).unwrap();
        assert_eq!((path, &again), (v.join(HEADER_COPY_FILE), &bytes));
        fs::write(v.join(HEADER_COPY_FILE), &bad).unwrap();
        assert!(matches!(newest_header_bytes(&v), Err(Error::HeaderDamaged { .. })));

        let current = vec![(v.join(HEADER_FILE), h.clone())];
        check_restorable(&h, &current).unwrap();
        check_restorable(&h, &[]).unwrap();
        let other = t.path().join("other");
        create(&other, &creds(b"a passphrase 123"), kdf(), "ops", |_| Ok(())).unwrap();
        let theirs = read_header(&other).unwrap();
        assert!(matches!(check_restorable(&theirs, &current), Err(Error::BackupOfOtherVolume)));
        let AnyHeader::V2(mut rotated) = h.clone() else { panic!("format 2") };
        let (old, new) = (MasterKey::generate().unwrap(), MasterKey::generate().unwrap());
        rotated.begin_rotation(&old, &new).unwrap();
        let newer = vec![(v.join(HEADER_FILE), AnyHeader::V2(rotated))];
        assert!(matches!(check_restorable(&h, &newer), Err(Error::BackupTooOld { backup: 1, current: 2 })));
    }

    #[test]
    fn endless_header_file_is_damaged_not_read_forever() {
        let t = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/dev/zero", t.path().join(HEADER_FILE)).unwrap();
        let e = read_header(t.path()).expect_err("refused");
        assert!(e.to_string().contains(&format!("longer than {} bytes", header::MAX_HEADER_LEN)), "{e}");
    }
}
