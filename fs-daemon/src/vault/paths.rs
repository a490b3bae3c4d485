//! Volume paths as policy globs and journal records see them: built from the
//! inode table under the namespace lock, whole or not at all, and written
//! unambiguously when a name is not UTF-8.

use nix::errno::Errno;

/// The longest volume path named, in bytes (PATH_MAX). A deeper object cannot
/// be judged by the policy or named in the journal, so operations on it are
/// refused with ENAMETOOLONG rather than judged by a shortened path.
pub const MAX_PATH: usize = 4096;

/// A path inside the volume ("/team-a/call.wav").
///
/// When every name on it is UTF-8 the text is the path exactly. Otherwise
/// `escaped` is set and the text writes a backslash as `\\` and each byte
/// that is not UTF-8 as `\xNN`, so two different paths never share a text
/// (the journal records the flag beside the path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolPath {
    pub text: String,
    pub escaped: bool,
}

impl VolPath {
    pub fn root() -> VolPath {
        VolPath { text: "/".into(), escaped: false }
    }

    /// The path of raw bytes `raw` (starting with `/`); ENAMETOOLONG past [`MAX_PATH`].
    pub fn from_bytes(raw: &[u8]) -> Result<VolPath, Errno> {
        if raw.len() > MAX_PATH {
            return Err(Errno::ENAMETOOLONG);
        }
        Ok(match std::str::from_utf8(raw) {
            Ok(s) => VolPath { text: s.to_string(), escaped: false },
            Err(_) => VolPath { text: escape(raw), escaped: true },
        })
    }

    /// The path of `name` inside this directory.
    pub fn child(&self, name: &[u8]) -> Result<VolPath, Errno> {
        let mut raw = self.raw();
        if raw.len() > 1 {
            raw.push(b'/');
        }
        raw.extend_from_slice(name);
        VolPath::from_bytes(&raw)
    }

    /// The raw bytes this path stands for.
    pub fn raw(&self) -> Vec<u8> {
        if self.escaped { unescape(&self.text) } else { self.text.as_bytes().to_vec() }
    }
}

/// Builds the path of an object from its names, leaf first (as a walk up the
/// parent chain finds them). ENAMETOOLONG as soon as the path would pass
/// [`MAX_PATH`], so a cycle or a hostile depth costs bounded work.
pub fn join_leaf_first<'a>(names: impl IntoIterator<Item = &'a [u8]>) -> Result<VolPath, Errno> {
    let mut parts: Vec<&[u8]> = Vec::new();
    let mut len = 0usize;
    for n in names {
        len += 1 + n.len();
        if len > MAX_PATH {
            return Err(Errno::ENAMETOOLONG);
        }
        parts.push(n);
    }
    if parts.is_empty() {
        return Ok(VolPath::root());
    }
    let mut raw = Vec::with_capacity(len);
    for n in parts.iter().rev() {
        raw.push(b'/');
        raw.extend_from_slice(n);
    }
    VolPath::from_bytes(&raw)
}

fn escape(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len() + 8);
    for chunk in raw.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

fn unescape(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else if b[i] == b'\\'
            && b.get(i + 1) == Some(&b'x')
            && let Some(v) = text.get(i + 2..i + 4).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_paths_are_exact_and_others_escaped_both_ways() {
        let p = VolPath::from_bytes(b"/team-a/call \\ 1.wav").unwrap();
        assert_eq!((p.text.as_str(), p.escaped), ("/team-a/call \\ 1.wav", false));
        let q = VolPath::from_bytes(b"/team-a/\xff\\x.wav").unwrap();
        assert_eq!((q.text.as_str(), q.escaped), ("/team-a/\\xff\\\\x.wav", true));
        assert_eq!(q.raw(), b"/team-a/\xff\\x.wav");
    }

    #[test]
    fn different_byte_paths_never_share_a_text() {
        let samples: [&[u8]; 8] =
            [b"/a\xff", b"/a\xfe", b"/a\\xff", b"/a\\\\xff", b"/a\xc3", b"/a\xc3\xa9", b"/a\xef\xbf\xbd", b"/a?"];
        let mut seen = std::collections::HashSet::new();
        for s in samples {
            let p = VolPath::from_bytes(s).unwrap();
            assert_eq!(p.raw(), s, "round trip of {s:?}");
            assert!(seen.insert((p.text.clone(), p.escaped)), "{s:?} shares {p:?}");
        }
    }

    #[test]
    fn paths_past_the_limit_are_refused_not_cut() {
        let deep: Vec<&[u8]> = std::iter::repeat_n(&b"d"[..], MAX_PATH / 2).collect();
        assert_eq!(join_leaf_first(deep.iter().copied()).unwrap().text.len(), MAX_PATH);
        let deeper: Vec<&[u8]> = std::iter::repeat_n(&b"d"[..], MAX_PATH / 2 + 1).collect();
        assert_eq!(join_leaf_first(deeper.iter().copied()), Err(Errno::ENAMETOOLONG));
        let p = join_leaf_first([&b"c.wav"[..], b"team-a"]).unwrap();
        assert_eq!(p.text, "/team-a/c.wav");
        assert_eq!(join_leaf_first(std::iter::empty()).unwrap(), VolPath::root());
        assert_eq!(VolPath::root().child(b"x").unwrap().text, "/x");
    }
}
