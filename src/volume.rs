//! A volume on disk: its directory layout, creation and unlocking.
//!
//! ```text
//! VOLUME/callvault.header   the volume header (keyslots, MAC)
//! VOLUME/data/              the encrypted tree; its .dirid is the root's ID
//! VOLUME/audit/             the audit journal, outside the mounted tree
//! VOLUME/callvault.lock     held (flock) by the daemon serving the volume
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::Error;
use crate::header::VolumeHeader;
use crate::kdf::KdfParams;
use crate::keys::VolumeKeys;
use crate::names::DIRID_FILE;
use crate::secret::MasterKey;

pub const HEADER_FILE: &str = "callvault.header";
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

/// An unlocked volume: its header and the keys derived from its master key.
pub struct Unlocked {
    pub header: VolumeHeader,
    pub keys: VolumeKeys,
    /// Which keyslot opened.
    pub slot: usize,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Creates a volume in `dir` (missing or empty), with one passphrase keyslot.
/// `before_header` runs once the directories exist and before the header is
/// written (the keytool creates the audit journal and its key there), so a
/// failure in it leaves no mountable volume behind.
pub fn create(
    dir: &Path,
    secret: &[u8],
    kdf: KdfParams,
    label: &str,
    before_header: impl FnOnce(&VolumePaths) -> Result<(), Error>,
) -> Result<VolumePaths, Error> {
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
    header.add_passphrase_slot(&master, secret, kdf, label, now())?;
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
    write_header(&paths, &header.encode(&master))?;
    Ok(paths)
}

/// Writes a directory ID file into a backing directory (create_new, 0400, synced).
pub fn write_dirid(dir: &Path, id: &[u8; 16]) -> Result<(), Error> {
    let p = dir.join(DIRID_FILE);
    let mut f = OpenOptions::new().write(true).create_new(true).mode(0o400).open(&p).map_err(|e| Error::io(&p, e))?;
    f.write_all(id).and_then(|_| f.sync_all()).map_err(|e| Error::io(&p, e))
}

/// Replaces the header atomically: temp file, fsync, rename, fsync directory.
pub fn write_header(paths: &VolumePaths, bytes: &[u8]) -> Result<(), Error> {
    let tmp = paths.root.join(format!("{HEADER_FILE}.tmp"));
    let _ = fs::remove_file(&tmp);
    let mut f =
        OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| Error::io(&tmp, e))?;
    fs::rename(&tmp, paths.header()).map_err(|e| Error::io(paths.header(), e))?;
    File::open(&paths.root).and_then(|d| d.sync_all()).map_err(|e| Error::io(&paths.root, e))
}

/// Reads and parses the header of the volume in `dir`.
pub fn read_header(dir: &Path) -> Result<VolumeHeader, Error> {
    let paths = VolumePaths::new(dir);
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::NotAVolume { path: dir.to_path_buf() });
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(Error::NotAVolume { path: dir.to_path_buf() });
        }
        Err(e) => return Err(Error::io(dir, e)),
    }
    // At most one byte more than a header: a header path that is a huge or
    // endless file (a symlink to /dev/zero) is refused, not read to the end.
    let read = File::open(paths.header()).and_then(|f| {
        let mut b = Vec::with_capacity(crate::header::HEADER_LEN + 1);
        f.take(crate::header::HEADER_LEN as u64 + 1).read_to_end(&mut b).map(|_| b)
    });
    let bytes = match read {
        Ok(b) if b.len() > crate::header::HEADER_LEN => {
            let what = format!("longer than {} bytes", crate::header::HEADER_LEN);
            return Err(Error::HeaderDamaged { path: paths.header(), what });
        }
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(Error::NotAVolume { path: dir.to_path_buf() });
        }
        Err(e) => return Err(Error::io(paths.header(), e)),
    };
    VolumeHeader::decode(&bytes, &paths.header())
}

/// Unlocks the volume in `dir` with a passphrase.
pub fn unlock(dir: &Path, secret: &[u8]) -> Result<Unlocked, Error> {
    let header = read_header(dir)?;
    let (master, slot) = header.unlock(secret, &VolumePaths::new(dir).header())?;
    let data = VolumePaths::new(dir).data();
    if !data.is_dir() {
        return Err(Error::HeaderDamaged { path: data, what: "the volume's data directory is missing".into() });
    }
    Ok(Unlocked { header, keys: VolumeKeys::derive(master), slot })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn kdf() -> KdfParams {
        KdfParams::calibrate(1, Duration::ZERO).unwrap()
    }

    #[test]
    fn create_then_unlock_and_refuse_to_overwrite() {
        let t = tempfile::tempdir().unwrap();
        let v = t.path().join("vol");
        create(&v, b"a passphrase 123", kdf(), "ops", |_| Ok(())).unwrap();
        assert!(v.join("data/.dirid").exists() && v.join("audit").is_dir());
        let u = unlock(&v, b"a passphrase 123").unwrap();
        assert_eq!(u.slot, 0);
        assert!(matches!(unlock(&v, b"nope"), Err(Error::WrongPassphrase)));
        assert!(matches!(create(&v, b"x", kdf(), "", |_| Ok(())), Err(Error::VolumeExists { .. })));
        let other = t.path().join("other");
        fs::create_dir(&other).unwrap();
        fs::write(other.join("f"), b"x").unwrap();
        assert!(matches!(create(&other, b"x", kdf(), "", |_| Ok(())), Err(Error::DirectoryNotEmpty { .. })));
        assert!(matches!(read_header(&other), Err(Error::NotAVolume { .. })));
        assert!(matches!(read_header(&t.path().join("missing")), Err(Error::NotAVolume { .. })));
    }

    #[test]
    fn endless_header_file_is_damaged_not_read_forever() {
        let t = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/dev/zero", t.path().join(HEADER_FILE)).unwrap();
        let e = read_header(t.path()).expect_err("refused");
        assert!(e.to_string().contains("longer than 4192 bytes"), "{e}");
    }
}
