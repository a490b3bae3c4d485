//! Which of the two keys an encrypted item is under. Every item says so by
//! itself: names, link targets and xattrs are AES-SIV (authenticated), and a
//! file header carries a MAC under a master-derived key.

use crate::fileheader::FileHeader;
use crate::keys::VolumeKeys;
use crate::layout::Layout;
use crate::names::{self, DIRID_LEN};

/// The two key sets of a rotation, and the layouts of the files under each
/// (different when `upgrade` adds sector tags).
#[derive(Clone, Copy)]
pub(crate) struct Keys<'a> {
    pub old: &'a VolumeKeys,
    pub new: &'a VolumeKeys,
    pub from: Layout,
    pub to: Layout,
}

/// An item found under the old key (with its plaintext) or the new one.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Under<T> {
    Old(T),
    New(T),
}

/// What a backing xattr of ours (`user.cv.*`) is under.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum XattrUnder {
    /// Name and value under the old key: the name without `user.` and the value.
    Old { rest: Vec<u8>, value: Vec<u8> },
    /// Name and value under the new key.
    New,
    /// The name decrypts under neither key.
    BadName,
    /// The name decrypts, its value does not (under the same key).
    BadValue,
}

impl Keys<'_> {
    /// Whether the two key sets are one (rotating would change nothing, and
    /// nothing could tell old from new).
    pub fn same(&self) -> bool {
        crate::secret::ct_eq(self.old.names.expose_secret(), self.new.names.expose_secret())
    }

    /// An encoded (full) name in the directory with ID `dir_id`.
    pub fn name(&self, dir_id: &[u8; DIRID_LEN], encoded: &str) -> Option<Under<Vec<u8>>> {
        if let Ok(n) = names::decrypt_name(&self.old.names, dir_id, encoded) {
            return Some(Under::Old(n));
        }
        names::decrypt_name(&self.new.names, dir_id, encoded).ok().map(Under::New)
    }

    /// A file's header region; Err says why it is valid under neither key
    /// (as the old key sees it).
    pub fn header(&self, region: &[u8]) -> Result<Under<FileHeader>, String> {
        match FileHeader::decode(region, self.from, &self.old.file_header_mac) {
            Ok(h) => Ok(Under::Old(h)),
            Err(old) => match FileHeader::decode(region, self.to, &self.new.file_header_mac) {
                Ok(h) => Ok(Under::New(h)),
                Err(_) => Err(old.to_string()),
            },
        }
    }

    /// A backing symlink's stored target.
    pub fn link_target(&self, stored: &[u8]) -> Option<Under<Vec<u8>>> {
        if let Ok(t) = names::decrypt_link_target(&self.old.link_targets, stored) {
            return Some(Under::Old(t));
        }
        names::decrypt_link_target(&self.new.link_targets, stored).ok().map(Under::New)
    }

    /// A backing xattr named `user.cv.*` and its value.
    pub fn xattr(&self, backing_name: &str, value: &[u8]) -> XattrUnder {
        if let Some(rest) = names::decrypt_xattr_name(&self.old.xattrs, backing_name) {
            return match names::open_random(&self.old.xattrs, backing_name.as_bytes(), value) {
                Ok(value) => XattrUnder::Old { rest, value },
                Err(_) => XattrUnder::BadValue,
            };
        }
        if names::decrypt_xattr_name(&self.new.xattrs, backing_name).is_some() {
            return match names::open_random(&self.new.xattrs, backing_name.as_bytes(), value) {
                Ok(_) => XattrUnder::New,
                Err(_) => XattrUnder::BadValue,
            };
        }
        XattrUnder::BadName
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::MasterKey;

    #[test]
    fn every_item_tells_its_key() {
        let old = VolumeKeys::derive(MasterKey::generate().unwrap());
        let new = VolumeKeys::derive(MasterKey::generate().unwrap());
        let other = VolumeKeys::derive(MasterKey::generate().unwrap());
        let k = Keys { old: &old, new: &new, from: Layout::Plain, to: Layout::Plain };
        assert!(!k.same());
        let id = [5u8; 16];
        for (keys, want_old) in [(&old, true), (&new, false)] {
            let n = names::encrypt_name(&keys.names, &id, b"call.wav").unwrap();
            let got = k.name(&id, n.entry()).unwrap();
            assert_eq!(got, if want_old { Under::Old(b"call.wav".to_vec()) } else { Under::New(b"call.wav".to_vec()) });
            let t = names::encrypt_link_target(&keys.link_targets, b"../x").unwrap();
            assert_eq!(matches!(k.link_target(t.as_bytes()), Some(Under::Old(_))), want_old);
            let xn = names::encrypt_xattr_name(&keys.xattrs, b"comment").unwrap();
            let xv = names::seal_random(&keys.xattrs, xn.as_bytes(), b"v").unwrap();
            let x = k.xattr(&xn, &xv);
            if want_old {
                assert_eq!(x, XattrUnder::Old { rest: b"comment".to_vec(), value: b"v".to_vec() });
            } else {
                assert_eq!(x, XattrUnder::New);
            }
            assert_eq!(k.xattr(&xn, &xv[1..]), XattrUnder::BadValue);
            let mut region = vec![0u8; 4096];
            region[..56].copy_from_slice(&FileHeader::new([1; 16], None).encode(Layout::Plain, &keys.file_header_mac));
            assert_eq!(matches!(k.header(&region), Ok(Under::Old(_))), want_old);
        }
        let n = names::encrypt_name(&other.names, &id, b"call.wav").unwrap();
        assert!(k.name(&id, n.entry()).is_none());
        let xn = names::encrypt_xattr_name(&other.xattrs, b"c").unwrap();
        assert_eq!(k.xattr(&xn, b"whatever-whatever-whatever-whatever"), XattrUnder::BadName);
        let mut region = vec![0u8; 4096];
        region[..56].copy_from_slice(&FileHeader::new([1; 16], None).encode(Layout::Plain, &other.file_header_mac));
        assert!(k.header(&region).unwrap_err().contains("MAC"));
        assert!(k.header(&region[..100]).unwrap_err().contains("truncated"));
        assert!(Keys { old: &old, new: &old, from: Layout::Plain, to: Layout::Plain }.same());
    }
}
