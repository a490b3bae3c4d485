//! The per-file header: file ID, exact plaintext size, and a MAC; on
//! format-3 volumes also the name the file is bound to.
//!
//! The header occupies the first 4096 bytes of a non-empty backing file and
//! holds two copies (slots) of one record, at offsets 0 and 2048, so a write
//! torn by a crash damages at most one of them. Each update goes to the slot
//! the current generation does not occupy; the valid slot with the highest
//! generation wins. Formats 1 and 2 use a 56-byte record (file format 1);
//! format 3 an 88-byte one (file format 2) that adds the name binding and
//! the sector-tags flag. On formats 1 and 2 a zero-length backing file is an
//! empty file that has no header yet; format 3 writes the header at create.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::Error;
use crate::layout::Layout;
use crate::names::DIRID_LEN;
use crate::secret::Key32;
use crate::sectors::FILE_HEADER_LEN;

pub const MAGIC: &[u8; 4] = b"CVFH";
/// Offsets of the two header slots inside the header region.
pub const SLOT_OFFSETS: [usize; 2] = [0, 2048];
/// The longest slot of any layout.
pub const MAX_SLOT_LEN: usize = TAGGED_SLOT_LEN;
const MAC_LEN: usize = 16;
/// File format 1 (plain layout): 40 bytes of fields and a 16-byte MAC.
const PLAIN_SLOT_LEN: usize = 56;
/// File format 2 (tagged layout): 72 bytes of fields and a 16-byte MAC.
const TAGGED_SLOT_LEN: usize = 88;
/// File feature flag of file format 2: data sectors carry tags.
pub const FLAG_SECTOR_TAGS: u16 = 1;
/// Bytes of a name binding.
pub const BINDING_LEN: usize = 16;

/// Names the directory entry a file belongs to: the first 16 bytes of
/// HMAC-SHA-256(name-binding key, directory ID ‖ name length u32 LE ‖ name).
/// A backing file moved or copied under another name, in the same directory
/// or another, no longer matches the name it is opened through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameBinding(pub [u8; BINDING_LEN]);

impl NameBinding {
    pub fn of(key: &Key32, dir_id: &[u8; DIRID_LEN], name: &[u8]) -> NameBinding {
        let mut m = new_mac(key);
        m.update(dir_id);
        m.update(&(name.len() as u32).to_le_bytes());
        m.update(name);
        let full: [u8; 32] = m.finalize().into_bytes().into();
        let mut out = [0u8; BINDING_LEN];
        out.copy_from_slice(&full[..BINDING_LEN]);
        NameBinding(out)
    }
}

/// The decoded header of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    pub file_id: [u8; 16],
    /// Exact plaintext size in bytes.
    pub size: u64,
    /// Incremented on every header write; picks the newer slot.
    pub generation: u64,
    /// Format 3: the name the file is bound to (`None` on formats 1 and 2).
    pub binding: Option<NameBinding>,
    /// Format 3: a name also accepted, set while a rename is under way so a
    /// crash between the backing rename and the header update loses nothing.
    pub previous_binding: Option<NameBinding>,
}

impl FileHeader {
    /// A header for a brand-new file; `binding` is required on format 3.
    pub fn new(file_id: [u8; 16], binding: Option<NameBinding>) -> Self {
        FileHeader { file_id, size: 0, generation: 0, binding, previous_binding: None }
    }

    /// Offset inside the backing file where this generation is written.
    pub fn slot_offset(&self) -> u64 {
        SLOT_OFFSETS[(self.generation % 2) as usize] as u64
    }

    /// Whether a file reached through the name `seen` is where it belongs.
    pub fn is_bound_to(&self, seen: &NameBinding) -> bool {
        let same = |b: &Option<NameBinding>| b.is_some_and(|b| crate::secret::ct_eq(&b.0, &seen.0));
        same(&self.binding) || same(&self.previous_binding)
    }

    /// The slot bytes for this header in `layout`, MAC included.
    pub fn encode(&self, layout: Layout, mac_key: &Key32) -> Vec<u8> {
        let len = slot_len(layout);
        let mut out = vec![0u8; len];
        out[0..4].copy_from_slice(MAGIC);
        let (version, flags) = match layout {
            Layout::Plain => (1u16, 0u16),
            Layout::Tagged => (2, FLAG_SECTOR_TAGS),
        };
        out[4..6].copy_from_slice(&version.to_le_bytes());
        out[6..8].copy_from_slice(&flags.to_le_bytes());
        out[8..24].copy_from_slice(&self.file_id);
        out[24..32].copy_from_slice(&self.size.to_le_bytes());
        out[32..40].copy_from_slice(&self.generation.to_le_bytes());
        if layout == Layout::Tagged {
            out[40..56].copy_from_slice(&self.binding.map_or([0; BINDING_LEN], |b| b.0));
            out[56..72].copy_from_slice(&self.previous_binding.map_or([0; BINDING_LEN], |b| b.0));
        }
        let fields = len - MAC_LEN;
        let tag = mac(mac_key, &out[..fields]);
        out[fields..].copy_from_slice(&tag[..MAC_LEN]);
        out
    }

    /// Parses the header region (the first bytes of a backing file; pass what
    /// was read, up to 4096 bytes) of a file in `layout`. Picks the newest
    /// valid slot.
    pub fn decode(region: &[u8], layout: Layout, mac_key: &Key32) -> Result<FileHeader, Error> {
        if (region.len() as u64) < FILE_HEADER_LEN {
            return Err(Error::FileHeaderDamaged {
                what: format!("truncated: {} of {FILE_HEADER_LEN} header bytes", region.len()),
            });
        }
        let len = slot_len(layout);
        let mut best: Option<FileHeader> = None;
        let mut first_problem = None;
        for off in SLOT_OFFSETS {
            match decode_slot(&region[off..off + len], layout, mac_key) {
                Ok(h) if best.is_none_or(|b| h.generation > b.generation) => best = Some(h),
                Ok(_) => {}
                Err(e) => {
                    first_problem.get_or_insert(e);
                }
            }
        }
        best.ok_or_else(|| Error::FileHeaderDamaged {
            what: first_problem.unwrap_or_else(|| "no valid header slot".into()),
        })
    }
}

/// Bytes of one slot in `layout`.
pub fn slot_len(layout: Layout) -> usize {
    match layout {
        Layout::Plain => PLAIN_SLOT_LEN,
        Layout::Tagged => TAGGED_SLOT_LEN,
    }
}

fn new_mac(key: &Key32) -> Hmac<Sha256> {
    // new_from_slice only fails for key lengths HMAC cannot take; 32 is fine.
    <Hmac<Sha256> as KeyInit>::new_from_slice(key.expose_secret()).expect("HMAC accepts 32-byte keys")
}

fn mac(key: &Key32, data: &[u8]) -> [u8; 32] {
    let mut m = new_mac(key);
    m.update(data);
    m.finalize().into_bytes().into()
}

fn decode_slot(slot: &[u8], layout: Layout, mac_key: &Key32) -> Result<FileHeader, String> {
    if slot.iter().all(|&b| b == 0) {
        return Err("header slot is all zeros".into());
    }
    if &slot[0..4] != MAGIC {
        return Err(format!("bad magic {:02x?}", &slot[0..4]));
    }
    let version = u16::from_le_bytes([slot[4], slot[5]]);
    let flags = u16::from_le_bytes([slot[6], slot[7]]);
    match (layout, version) {
        (Layout::Plain, 1) if flags != 0 => return Err(format!("unknown file feature flags {flags:#06x}")),
        (Layout::Tagged, 2) if flags != FLAG_SECTOR_TAGS => {
            return Err(format!("file feature flags {flags:#06x}, expected sector tags ({FLAG_SECTOR_TAGS:#06x})"));
        }
        (Layout::Plain, 1) | (Layout::Tagged, 2) => {}
        // A format-1 record in a format-3 volume would turn the tags off.
        (Layout::Tagged, 1) => return Err("file format 1 (no sector tags) in a volume that requires them".into()),
        (_, v) => return Err(format!("unsupported file format version {v}")),
    }
    let fields = slot.len() - MAC_LEN;
    let tag = mac(mac_key, &slot[..fields]);
    if !crate::secret::ct_eq(&tag[..MAC_LEN], &slot[fields..]) {
        return Err("header MAC mismatch".into());
    }
    let mut file_id = [0u8; 16];
    file_id.copy_from_slice(&slot[8..24]);
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&slot[at..at + 8]);
        u64::from_le_bytes(b)
    };
    let binding_at = |at: usize| {
        let mut b = [0u8; BINDING_LEN];
        b.copy_from_slice(&slot[at..at + BINDING_LEN]);
        (b != [0; BINDING_LEN]).then_some(NameBinding(b))
    };
    let (binding, previous_binding) = match layout {
        Layout::Plain => (None, None),
        Layout::Tagged => (binding_at(40), binding_at(56)),
    };
    if layout == Layout::Tagged && binding.is_none() {
        return Err("no name binding".into());
    }
    Ok(FileHeader { file_id, size: u64_at(24), generation: u64_at(32), binding, previous_binding })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{LABEL_FILE_HEADER_MAC, derive32};
    use crate::secret::MasterKey;

    fn region_with(h: &FileHeader, layout: Layout, k: &Key32) -> Vec<u8> {
        let mut r = vec![0u8; FILE_HEADER_LEN as usize];
        let off = h.slot_offset() as usize;
        let slot = h.encode(layout, k);
        r[off..off + slot.len()].copy_from_slice(&slot);
        r
    }

    fn key() -> Key32 {
        derive32(&MasterKey::generate().unwrap(), LABEL_FILE_HEADER_MAC)
    }

    fn header(layout: Layout, k: &Key32) -> FileHeader {
        let binding = (layout == Layout::Tagged).then(|| NameBinding::of(k, &[4; 16], b"call.wav"));
        FileHeader::new([3; 16], binding)
    }

    #[test]
    fn round_trip_and_newest_slot_wins() {
        for layout in [Layout::Plain, Layout::Tagged] {
            let k = key();
            let mut h = header(layout, &k);
            h.size = 4097;
            let mut r = region_with(&h, layout, &k);
            assert_eq!(FileHeader::decode(&r, layout, &k).unwrap(), h);
            let mut h2 = h;
            h2.generation += 1;
            h2.size = 9000;
            let off = h2.slot_offset() as usize;
            let slot = h2.encode(layout, &k);
            r[off..off + slot.len()].copy_from_slice(&slot);
            assert_eq!(FileHeader::decode(&r, layout, &k).unwrap(), h2);
            // A torn newest slot falls back to the previous generation.
            r[off + 25] ^= 1;
            assert_eq!(FileHeader::decode(&r, layout, &k).unwrap(), h);
        }
    }

    #[test]
    fn a_file_is_bound_to_its_name_and_its_previous_one_during_a_rename() {
        let k = key();
        let here = NameBinding::of(&k, &[4; 16], b"call.wav");
        let other_name = NameBinding::of(&k, &[4; 16], b"call2.wav");
        let other_dir = NameBinding::of(&k, &[5; 16], b"call.wav");
        let mut h = FileHeader::new([3; 16], Some(here));
        assert!(h.is_bound_to(&here));
        assert!(!h.is_bound_to(&other_name));
        assert!(!h.is_bound_to(&other_dir));
        h.previous_binding = Some(here);
        h.binding = Some(other_name);
        assert!(h.is_bound_to(&here) && h.is_bound_to(&other_name));
        let r = region_with(&h, Layout::Tagged, &k);
        assert_eq!(FileHeader::decode(&r, Layout::Tagged, &k).unwrap(), h);
    }

    #[test]
    fn the_layout_of_the_volume_decides_which_records_are_valid() {
        let k = key();
        let plain = region_with(&header(Layout::Plain, &k), Layout::Plain, &k);
        let e = FileHeader::decode(&plain, Layout::Tagged, &k).unwrap_err().to_string();
        assert!(e.contains("requires them"), "{e}");
        let tagged = region_with(&header(Layout::Tagged, &k), Layout::Tagged, &k);
        let e = FileHeader::decode(&tagged, Layout::Plain, &k).unwrap_err().to_string();
        assert!(e.contains("version 2"), "{e}");
        // A format-3 record without a binding is refused.
        let unbound = region_with(&FileHeader::new([3; 16], None), Layout::Tagged, &k);
        let e = FileHeader::decode(&unbound, Layout::Tagged, &k).unwrap_err().to_string();
        assert!(e.contains("binding"), "{e}");
    }

    #[test]
    fn damage_is_a_typed_error_never_a_panic() {
        for layout in [Layout::Plain, Layout::Tagged] {
            let k = key();
            let r = region_with(&header(layout, &k), layout, &k);
            for len in [0, 1, 55, 56, 88, 4095] {
                assert!(matches!(FileHeader::decode(&r[..len], layout, &k), Err(Error::FileHeaderDamaged { .. })));
            }
            let zero = vec![0u8; 4096];
            assert!(FileHeader::decode(&zero, layout, &k).is_err());
            let mut bad = r.clone();
            bad[0] = b'X';
            let e = FileHeader::decode(&bad, layout, &k).unwrap_err().to_string();
            assert!(e.contains("bad magic"), "{e}");
            let mut v = r.clone();
            v[4] = 9;
            assert!(FileHeader::decode(&v, layout, &k).unwrap_err().to_string().contains("version 9"));
            let mut f = r.clone();
            f[6] ^= 2;
            assert!(FileHeader::decode(&f, layout, &k).unwrap_err().to_string().contains("flags"));
            let other = key();
            assert!(FileHeader::decode(&r, layout, &other).unwrap_err().to_string().contains("MAC"));
        }
    }
}
