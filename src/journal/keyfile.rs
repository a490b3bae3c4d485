//! Key files: the auditor's verification key (K_0) and the machine's current epoch key `seal.key`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use zeroize::Zeroizing;

use super::JournalError;
use super::chain::{from_hex, to_hex};
use super::seal::{EpochKey, JOURNAL_ID_LEN};
use super::segment::fsync_dir;

/// First line of the auditor key file.
pub const AUDITOR_KEY_MAGIC: &str = "callvault-audit-key v1";
/// First line of `seal.key`.
pub const SEAL_KEY_MAGIC: &str = "callvault-journal-seal-key v1";
/// File name of the current epoch key inside the audit directory.
pub const SEAL_KEY_FILE: &str = "seal.key";
/// Temporary name while `seal.key` is replaced.
pub const SEAL_KEY_TMP: &str = "seal.key.new";

/// Longest key file accepted; anything larger is not one of ours.
const MAX_KEY_FILE: u64 = 4096;

/// The auditor's verification key: the journal id and K_0, from which every
/// epoch key can be re-derived. Not Clone, not Debug; K_0 is wiped on drop.
pub struct AuditorKey {
    journal_id: [u8; JOURNAL_ID_LEN],
    k0: EpochKey,
}

impl AuditorKey {
    pub(crate) fn new(journal_id: [u8; JOURNAL_ID_LEN], k0: EpochKey) -> AuditorKey {
        AuditorKey { journal_id, k0 }
    }

    /// The journal this key verifies, as 32 hex digits.
    pub fn journal_id_hex(&self) -> String {
        to_hex(&self.journal_id)
    }

    pub(crate) fn journal_id(&self) -> &[u8; JOURNAL_ID_LEN] {
        &self.journal_id
    }

    pub(crate) fn k0(&self) -> &EpochKey {
        &self.k0
    }

    /// The file contents (three lines). Wiped on drop; the key's hex is
    /// written straight into it, never through a temporary string.
    fn contents(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::with_capacity(160));
        s.push_str(AUDITOR_KEY_MAGIC);
        s.push_str("\njournal-id ");
        s.push_str(&to_hex(&self.journal_id));
        s.push_str("\nepoch0-key ");
        push_hex(&mut s, self.k0.expose_secret());
        s.push('\n');
        s
    }

    /// Writes the key to a new file (refuses to overwrite), mode 0400, synced.
    pub fn write_to(&self, path: &Path) -> Result<(), JournalError> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o400)
            .open(path)
            .map_err(|e| JournalError::io(path, "create auditor key file", e))?;
        self.write_into(&mut f, path)
    }

    /// Writes the key into a file the caller already created (and is
    /// responsible for the mode of), then syncs it and its directory.
    pub fn write_into(&self, f: &mut File, path: &Path) -> Result<(), JournalError> {
        f.write_all(self.contents().as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| JournalError::io(path, "write auditor key file", e))?;
        if let Some(dir) = path.parent() {
            let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
            fsync_dir(dir)?;
        }
        Ok(())
    }

    /// Reads an auditor key file written by [`AuditorKey::write_to`].
    pub fn read_from(path: &Path) -> Result<AuditorKey, JournalError> {
        let raw = read_small(path)?;
        let text = key_text(&raw, path, "auditor key file")?;
        let fields = parse_fields(text, AUDITOR_KEY_MAGIC, path)?;
        let id = field_hex::<JOURNAL_ID_LEN>(&fields, "journal-id", path)?;
        let mut key = Zeroizing::new([0u8; 32]);
        secret_hex(&fields, "epoch0-key", path, &mut key[..])?;
        Ok(AuditorKey { journal_id: id, k0: EpochKey::from_bytes(0, &key) })
    }
}

/// Reads a key file into one buffer allocated once at its full size (so no
/// reallocation leaves a copy behind) and wiped on drop, with a cap: at most
/// `MAX_KEY_FILE` bytes are accepted, one more is read to tell.
fn read_small(path: &Path) -> Result<Zeroizing<Vec<u8>>, JournalError> {
    let mut f = File::open(path).map_err(|e| JournalError::io(path, "open key file", e))?;
    let mut buf = Zeroizing::new(vec![0u8; MAX_KEY_FILE as usize + 1]);
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(JournalError::io(path, "read key file", e)),
        }
    }
    // Shortening keeps the allocation; Zeroizing wipes its full capacity.
    buf.truncate(n);
    Ok(buf)
}

/// The text of a key file read by [`read_small`], borrowed (no copy).
fn key_text<'a>(raw: &'a [u8], path: &Path, what: &'static str) -> Result<&'a str, JournalError> {
    if raw.len() as u64 > MAX_KEY_FILE {
        return Err(JournalError::key_file(path, format!("too large to be a {what}")));
    }
    std::str::from_utf8(raw).map_err(|_| JournalError::key_file(path, format!("not a {what} (not text)")))
}

/// Lower-case hex of `bytes` appended to a wiped-on-drop string.
fn push_hex(s: &mut Zeroizing<String>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
}

/// Decodes the hex of field `name` straight into `out` (key material: no
/// intermediate array or string).
fn secret_hex(fields: &[(&str, &str)], name: &str, path: &Path, out: &mut [u8]) -> Result<(), JournalError> {
    let hex = field(fields, name, path)?.as_bytes();
    let digits = 2 * out.len();
    let bad = || JournalError::key_file(path, format!("`{name}` is not {digits} hex digits"));
    if hex.len() != digits {
        return Err(bad());
    }
    let nib = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    for (i, o) in out.iter_mut().enumerate() {
        match (nib(hex[2 * i]), nib(hex[2 * i + 1])) {
            (Some(h), Some(l)) => *o = (h << 4) | l,
            _ => {
                out.iter_mut().for_each(|b| *b = 0);
                return Err(bad());
            }
        }
    }
    Ok(())
}

/// Splits `name value` lines after checking the magic first line. Blank
/// lines and lines starting with `#` are ignored.
fn parse_fields<'a>(text: &'a str, magic: &str, path: &Path) -> Result<Vec<(&'a str, &'a str)>, JournalError> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
    match lines.next() {
        Some(first) if first == magic => {}
        Some(first) if first.starts_with(magic.split(' ').next().unwrap_or(magic)) => {
            return Err(JournalError::key_file(
                path,
                format!("unsupported version {first:?}; this build reads {magic:?}"),
            ));
        }
        _ => {
            return Err(JournalError::key_file(path, format!("does not start with {magic:?}")));
        }
    }
    lines
        .map(|l| {
            l.split_once(' ')
                .map(|(k, v)| (k, v.trim()))
                .ok_or_else(|| JournalError::key_file(path, "a line is not `name value`"))
        })
        .collect()
}

fn field<'a>(fields: &[(&str, &'a str)], name: &str, path: &Path) -> Result<&'a str, JournalError> {
    let mut it = fields.iter().filter(|(k, _)| *k == name);
    match (it.next(), it.next()) {
        (Some((_, v)), None) => Ok(v),
        (None, _) => Err(JournalError::key_file(path, format!("no `{name}` line"))),
        (Some(_), Some(_)) => Err(JournalError::key_file(path, format!("more than one `{name}` line"))),
    }
}

fn field_hex<const N: usize>(fields: &[(&str, &str)], name: &str, path: &Path) -> Result<[u8; N], JournalError> {
    from_hex::<N>(field(fields, name, path)?)
        .ok_or_else(|| JournalError::key_file(path, format!("`{name}` is not {} hex digits", 2 * N)))
}

/// The contents of `seal.key`: which journal, and the current epoch's key.
pub(crate) struct SealKeyState {
    pub journal_id: [u8; JOURNAL_ID_LEN],
    pub key: EpochKey,
}

impl SealKeyState {
    /// Fixed-length text, so replacing the file and wiping the old one cover
    /// the same number of bytes.
    fn contents(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::with_capacity(160));
        s.push_str(&format!(
            "{SEAL_KEY_MAGIC}\njournal-id {}\nepoch {:020}\nkey ",
            to_hex(&self.journal_id),
            self.key.epoch()
        ));
        push_hex(&mut s, self.key.expose_secret());
        s.push('\n');
        s
    }

    pub fn read(dir: &Path) -> Result<SealKeyState, JournalError> {
        let path = dir.join(SEAL_KEY_FILE);
        let raw = read_small(&path)?;
        let text = key_text(&raw, &path, "seal key file")?;
        let fields = parse_fields(text, SEAL_KEY_MAGIC, &path)?;
        let journal_id = field_hex::<JOURNAL_ID_LEN>(&fields, "journal-id", &path)?;
        let epoch: u64 = field(&fields, "epoch", &path)?
            .parse()
            .map_err(|_| JournalError::key_file(&path, "`epoch` is not a number"))?;
        let mut key = Zeroizing::new([0u8; 32]);
        secret_hex(&fields, "key", &path, &mut key[..])?;
        Ok(SealKeyState { journal_id, key: EpochKey::from_bytes(epoch, &key) })
    }

    /// Creates `seal.key` for a new journal (refuses to overwrite).
    pub fn create(&self, dir: &Path) -> Result<(), JournalError> {
        let path = dir.join(SEAL_KEY_FILE);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| JournalError::io(&path, "create", e))?;
        f.write_all(self.contents().as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| JournalError::io(&path, "write", e))?;
        fsync_dir(dir)
    }

    /// Replaces `seal.key` atomically (temp file, fsync, rename, fsync of the
    /// directory), then overwrites the old file's blocks with zeros through a
    /// descriptor kept open across the rename. On copy-on-write file systems
    /// and flash translation layers the old bytes may survive physically;
    /// this is as far as a file API reaches.
    pub fn replace(&self, dir: &Path) -> Result<(), JournalError> {
        let path = dir.join(SEAL_KEY_FILE);
        let tmp = dir.join(SEAL_KEY_TMP);
        let contents = self.contents();
        let old = OpenOptions::new().write(true).open(&path).ok();
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| JournalError::io(&tmp, "create", e))?;
        f.write_all(contents.as_bytes()).and_then(|()| f.sync_all()).map_err(|e| JournalError::io(&tmp, "write", e))?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(|e| JournalError::io(&path, "rename new key into place", e))?;
        fsync_dir(dir)?;
        if let Some(mut old) = old {
            // Best effort: the new key is already durable; failing to wipe
            // the unlinked old inode must not stop the journal.
            let len = old.metadata().map(|m| m.len()).unwrap_or(contents.len() as u64);
            let zeros = vec![0u8; len.min(MAX_KEY_FILE) as usize];
            let _ = old.write_all(&zeros).and_then(|()| old.sync_data());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn auditor_key_round_trips_with_mode_0400_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.key");
        let k = AuditorKey::new([3u8; 16], EpochKey::from_bytes(0, &[5u8; 32]));
        k.write_to(&p).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o400);
        let back = AuditorKey::read_from(&p).unwrap();
        assert_eq!(back.journal_id, [3u8; 16]);
        assert!(back.k0.same_as(&k.k0));
        assert!(k.write_to(&p).is_err());
    }

    #[test]
    fn malformed_key_files_are_typed_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        for bad in [
            "",
            "\u{0}\u{1}",
            "callvault-audit-key v9\n",
            "callvault-audit-key v1\njournal-id 00\n",
            "callvault-audit-key v1\njournal-id 00000000000000000000000000000000\nepoch0-key xyz\n",
            "callvault-audit-key v1\njournal-id 00000000000000000000000000000000\njournal-id 00000000000000000000000000000000\n",
            "callvault-audit-key v1\nnospace\n",
        ] {
            std::fs::write(&p, bad).unwrap();
            assert!(matches!(AuditorKey::read_from(&p), Err(JournalError::KeyFile { .. })), "{bad:?}");
        }
        std::fs::write(&p, vec![b'a'; 10_000]).unwrap();
        assert!(AuditorKey::read_from(&p).is_err());
        // An endless file is read only up to the cap.
        let z = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &z).unwrap();
        match AuditorKey::read_from(&z) {
            Err(JournalError::KeyFile { what, .. }) => assert!(what.contains("too large"), "{what}"),
            other => panic!("{:?}", other.err()),
        }
    }

    #[test]
    fn key_hex_decodes_in_place_and_file_text_is_exact() {
        let k = AuditorKey::new([0xa5; 16], EpochKey::from_bytes(0, &[0x3c; 32]));
        let text = k.contents();
        assert_eq!(
            text.as_str(),
            format!("{AUDITOR_KEY_MAGIC}\njournal-id {}\nepoch0-key {}\n", "a5".repeat(16), "3c".repeat(32))
        );
        let path = Path::new("/k");
        let mut out = [9u8; 4];
        secret_hex(&[("x", "00ffA0b1")], "x", path, &mut out).unwrap();
        assert_eq!(out, [0x00, 0xff, 0xa0, 0xb1]);
        assert!(secret_hex(&[("x", "00ffA0bz")], "x", path, &mut out).is_err());
        assert_eq!(out, [0; 4], "a half-decoded key is wiped");
        assert!(secret_hex(&[("x", "00")], "x", path, &mut out).is_err());
    }

    #[test]
    fn seal_key_replace_keeps_one_file_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let s0 = SealKeyState { journal_id: [1u8; 16], key: EpochKey::from_bytes(0, &[2u8; 32]) };
        s0.create(dir.path()).unwrap();
        let s1 = SealKeyState { journal_id: [1u8; 16], key: s0.key.next() };
        s1.replace(dir.path()).unwrap();
        let back = SealKeyState::read(dir.path()).unwrap();
        assert!(back.key.same_as(&s1.key));
        assert!(!dir.path().join(SEAL_KEY_TMP).exists());
        let mode = std::fs::metadata(dir.path().join(SEAL_KEY_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
