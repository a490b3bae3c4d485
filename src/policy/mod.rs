//! Decides whether a user may exercise a right on a path inside the volume.
//!
//! A [`Policy`] is a list of grants read from a TOML file (see `docs/POLICY.md`).
//! Anything no grant gives is denied, to every uid including 0. Decisions are a
//! pure function of the policy, the [`Subject`], the path and the [`Right`]:
//! no I/O, no clock, so the daemon can call [`Policy::allows`] on every
//! operation and tests can sweep it without a mount.
//!
//! # Paths
//!
//! Paths are absolute paths inside the volume, `/` being its root, e.g.
//! `/team-a/c1.wav`. Before matching, repeated slashes collapse and a trailing
//! slash is dropped (`//team-a/` is `/team-a`). A path that is empty, relative,
//! or holds a `.` or `..` component is denied outright: the daemon never
//! produces one, and a policy must not be tricked by one. Matching is
//! case-sensitive and byte-exact: no Unicode normalisation, so a precomposed
//! `é` and `e` + combining acute are different names.
//!
//! # Glob dialect
//!
//! Path globs use the `globset` crate with `literal_separator(true)` and
//! backslash escapes on. Every glob starts with `/`; its slashes are
//! normalised like paths.
//!
//! - `*` matches any run of characters inside one component (never `/`); it
//!   also matches names starting with `.`.
//! - `?` matches exactly one **byte** inside a component (a non-ASCII
//!   character is 2 to 4 bytes; prefer `*`).
//! - `[abc]`, `[a-z]`, `[!abc]` match one byte from (or not from) a class.
//!   Classes may only hold ASCII characters; others are refused.
//! - `{a,b}` matches either alternative; no nesting.
//! - `**` as a whole component matches any number of components, including
//!   none: `/a/**/b` matches `/a/b` and `/a/x/y/b`. Elsewhere it acts as `*`.
//! - A glob ending in `/**` also matches the directory it hangs off:
//!   `/team-a/**` matches `/team-a` itself and everything below it, and `/**`
//!   matches `/`. It does not match `/team-ab`.
//! - `\` escapes the next character: `/a\*` matches only the name `a*`.
//! - `[...]` and `{...}` may not contain `/`, and `.` or `..` components are
//!   refused: write separate paths instead.
//!
//! # Parents are listable
//!
//! A subject may [`Right::List`] a path when a grant gives it `list` there, or
//! when any of its grants (whatever the rights) could cover a path strictly
//! below it: those directories must be looked up to reach what was granted.
//! A grant of anything on `/team-a/**` thus makes `/` and `/team-a` listable
//! (and, because the policy cannot tell files from directories, everything
//! below `/team-a`), but never `/team-b`. A grant on `/team-a/*.wav` makes `/`
//! and `/team-a` listable but not the `.wav` files themselves unless it also
//! gives `list`: give `list` alongside `read` and `write`.

mod error;
mod glob;
mod ids;
mod parse;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sha2::{Digest, Sha256};

pub use error::{PolicyError, Problem};
pub use ids::{IdResolver, MAX_ID, SystemIds};

use glob::{PathGlob, VolPath};

/// The path as the policy sees it (repeated and trailing slashes removed), or
/// `None` when it is empty, relative or holds a `.` or `..` component, which
/// every policy denies.
pub fn normalize_path(path: &str) -> Option<String> {
    VolPath::parse(path).map(|p| p.as_str().to_owned())
}

/// The largest policy file read, in bytes (4 MiB). A 16,000-grant policy is
/// about 2 MiB; anything larger is refused, so `--policy /dev/zero` cannot
/// make the daemon or the keytool grow without end.
pub const MAX_POLICY_BYTES: u64 = 4 * 1024 * 1024;

/// The one reader of policy files: at most [`MAX_POLICY_BYTES`], refusing
/// anything larger without reading past the limit.
fn read_policy_file(path: &Path) -> Result<Vec<u8>, PolicyError> {
    use std::io::Read;
    let unreadable = |e| PolicyError::new(path, None, Problem::Unreadable(e));
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut bytes = Vec::new();
    file.take(MAX_POLICY_BYTES + 1).read_to_end(&mut bytes).map_err(unreadable)?;
    if bytes.len() as u64 > MAX_POLICY_BYTES {
        return Err(PolicyError::new(path, None, Problem::TooLarge { limit: MAX_POLICY_BYTES }));
    }
    Ok(bytes)
}

/// What a subject may do to a path. Which filesystem operations need which
/// right is listed in `docs/POLICY.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Right {
    /// lookup, getattr, readdir: seeing that something exists.
    List,
    /// Open for reading: playback.
    Read,
    /// Create new files and directories.
    Create,
    /// Open an existing file for writing, truncate.
    Write,
    /// unlink, rmdir.
    Delete,
    /// rename; needed on both the source and the target.
    Rename,
    /// chmod, chown, utimens, set and remove xattrs.
    Setattr,
    /// Trigger blackouts.
    Blackout,
}

impl Right {
    /// Every right, in the order messages list them.
    pub const ALL: [Right; 8] = [
        Right::List,
        Right::Read,
        Right::Create,
        Right::Write,
        Right::Delete,
        Right::Rename,
        Right::Setattr,
        Right::Blackout,
    ];

    /// The word used in policy files.
    pub fn as_str(self) -> &'static str {
        match self {
            Right::List => "list",
            Right::Read => "read",
            Right::Create => "create",
            Right::Write => "write",
            Right::Delete => "delete",
            Right::Rename => "rename",
            Right::Setattr => "setattr",
            Right::Blackout => "blackout",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Right::List => 1,
            Right::Read => 1 << 1,
            Right::Create => 1 << 2,
            Right::Write => 1 << 3,
            Right::Delete => 1 << 4,
            Right::Rename => 1 << 5,
            Right::Setattr => 1 << 6,
            Right::Blackout => 1 << 7,
        }
    }
}

impl fmt::Display for Right {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that is not a right; `Display` is the same message a policy file
/// error gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownRight(pub String);

impl fmt::Display for UnknownRight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Problem::UnknownRight(self.0.clone()).fmt(f)
    }
}

impl std::error::Error for UnknownRight {}

impl FromStr for Right {
    type Err = UnknownRight;

    /// Exactly the lowercase words of policy files.
    fn from_str(s: &str) -> Result<Right, UnknownRight> {
        Right::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| UnknownRight(s.to_owned()))
    }
}

/// A set of rights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RightSet(u8);

impl RightSet {
    pub(crate) const EMPTY: RightSet = RightSet(0);
    const FULL: RightSet = RightSet(u8::MAX);

    pub(crate) fn insert(&mut self, r: Right) {
        self.0 |= r.bit();
    }

    pub(crate) fn contains(self, r: Right) -> bool {
        self.0 & r.bit() != 0
    }

    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }

    fn iter(self) -> impl Iterator<Item = Right> {
        Right::ALL.into_iter().filter(move |r| self.contains(*r))
    }
}

/// Who is asking: a uid and all its gids (primary and supplementary). Root is
/// uid 0 and gets nothing a grant does not give it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    /// The caller's uid.
    pub uid: u32,
    /// The caller's primary gid and supplementary gids, in any order.
    pub gids: Vec<u32>,
}

impl Subject {
    /// A subject with these ids.
    pub fn new(uid: u32, gids: Vec<u32>) -> Self {
        Subject { uid, gids }
    }
}

/// Whom a grant applies to.
#[derive(Debug)]
enum Who {
    /// Any listed uid, or any subject with one of the listed gids.
    Listed { uids: Vec<u32>, gids: Vec<u32> },
    /// Everyone: only [`Policy::allow_all`] builds this.
    Everyone,
}

/// One `[[grant]]` of a policy, checked and compiled.
#[derive(Debug)]
pub struct Grant {
    line: usize,
    who: Who,
    users: Vec<String>,
    groups: Vec<String>,
    paths: Vec<String>,
    globs: Vec<PathGlob>,
    rights: RightSet,
}

impl Grant {
    /// The line of its `[[grant]]` header in the policy file (0 for the
    /// built-in allow-all grant).
    pub fn line(&self) -> usize {
        self.line
    }

    /// Its users as written (names or numbers).
    pub fn users(&self) -> &[String] {
        &self.users
    }

    /// Its groups as written (names or numbers).
    pub fn groups(&self) -> &[String] {
        &self.groups
    }

    /// Its path globs as written.
    pub fn paths(&self) -> &[String] {
        &self.paths
    }

    /// The rights it gives, in [`Right::ALL`] order.
    pub fn rights(&self) -> Vec<Right> {
        self.rights.iter().collect()
    }

    fn applies_to(&self, who: &Subject) -> bool {
        match &self.who {
            Who::Everyone => true,
            Who::Listed { uids, gids } => uids.contains(&who.uid) || who.gids.iter().any(|g| gids.contains(g)),
        }
    }

    fn covers(&self, path: &VolPath<'_>) -> bool {
        self.globs.iter().any(|g| g.matches(path))
    }

    fn leads_below(&self, path: &VolPath<'_>) -> bool {
        self.globs.iter().any(|g| g.leads_below(path))
    }
}

/// `users [a, b], groups [c], paths [/x/**], rights [list, read]`, leaving out
/// an empty `users` or `groups`.
impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn list(f: &mut fmt::Formatter<'_>, items: impl Iterator<Item = String>) -> fmt::Result {
            f.write_str("[")?;
            for (i, item) in items.enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                f.write_str(&item)?;
            }
            f.write_str("]")
        }
        if matches!(self.who, Who::Everyone) {
            f.write_str("everyone (--allow-all), ")?;
        }
        if !self.users.is_empty() {
            f.write_str("users ")?;
            list(f, self.users.iter().cloned())?;
            f.write_str(", ")?;
        }
        if !self.groups.is_empty() {
            f.write_str("groups ")?;
            list(f, self.groups.iter().cloned())?;
            f.write_str(", ")?;
        }
        f.write_str("paths ")?;
        list(f, self.paths.iter().cloned())?;
        f.write_str(", rights ")?;
        list(f, self.rights.iter().map(|r| r.to_string()))
    }
}

/// How a grant allows a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The grant gives the right on a glob that matches the path.
    Direct,
    /// The right is `list` and the grant covers something below the path
    /// (the parents-listable rule).
    Parent,
}

/// The grant behind an allowed decision: for explanations and the audit log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrantRef {
    /// The grant's number in file order, from 1.
    pub index: usize,
    /// The line of its `[[grant]]` header (0 for the allow-all grant).
    pub line: usize,
    /// Whether it matched the path itself or a path below it.
    pub via: Via,
}

/// The text [`Policy::allow_all`] hashes, so the audit log can tell an
/// allow-all daemon from one running a policy file. It is not valid TOML, so
/// no loaded policy file can have the same hash.
pub const ALLOW_ALL_TEXT: &str = "callvaultd --allow-all: every right on every path for everyone\n";

/// A checked, compiled policy. Immutable once built; share it with `Arc` and
/// replace the whole `Arc` to reload.
#[derive(Debug)]
pub struct Policy {
    source: PathBuf,
    sha256: [u8; 32],
    grants: Vec<Grant>,
    index: SubjectIndex,
    /// `[[auto_blackout]]` paths: DTMF tones are masked in files written there.
    auto_dtmf: Vec<PathGlob>,
}

/// Which grants name which uid and gid, so a check looks only at the grants
/// that apply to the caller instead of scanning all of them: a check costs
/// O(k log k) for the k grants that apply (plus one hash lookup per gid),
/// whatever the size of the policy.
#[derive(Debug, Default)]
struct SubjectIndex {
    by_uid: HashMap<u32, Vec<usize>>,
    by_gid: HashMap<u32, Vec<usize>>,
    everyone: Vec<usize>,
}

impl SubjectIndex {
    fn build(grants: &[Grant]) -> Self {
        let mut index = SubjectIndex::default();
        for (i, g) in grants.iter().enumerate() {
            match &g.who {
                Who::Everyone => index.everyone.push(i),
                Who::Listed { uids, gids } => {
                    for uid in uids {
                        index.by_uid.entry(*uid).or_default().push(i);
                    }
                    for gid in gids {
                        index.by_gid.entry(*gid).or_default().push(i);
                    }
                }
            }
        }
        index
    }

    /// The positions of the grants that apply to `who`, in file order, each once.
    fn candidates(&self, who: &Subject) -> Vec<usize> {
        let mut out = self.everyone.clone();
        if let Some(v) = self.by_uid.get(&who.uid) {
            out.extend_from_slice(v);
        }
        for gid in &who.gids {
            if let Some(v) = self.by_gid.get(gid) {
                out.extend_from_slice(v);
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

impl Policy {
    /// Parses and checks policy text. `source` names the file in errors and
    /// in [`Policy::source`]; `ids` resolves user and group names.
    pub fn from_toml(text: &str, source: &Path, ids: &dyn IdResolver) -> Result<Policy, PolicyError> {
        let parse::Parsed { grants, auto_dtmf } = parse::parse(text, source, ids)?;
        let index = SubjectIndex::build(&grants);
        Ok(Policy {
            source: source.to_path_buf(),
            sha256: Sha256::digest(text.as_bytes()).into(),
            grants,
            index,
            auto_dtmf,
        })
    }

    /// Reads and checks a policy file, resolving names with the system's
    /// user and group databases.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        Policy::load_with(path, &SystemIds)
    }

    /// [`Policy::load`] with a chosen resolver.
    pub fn load_with(path: &Path, ids: &dyn IdResolver) -> Result<Policy, PolicyError> {
        let bytes = read_policy_file(path)?;
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            let valid = &bytes[..e.valid_up_to()];
            let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
            PolicyError::new(path, Some(line), Problem::NotUtf8)
        })?;
        Policy::from_toml(text, path, ids)
    }

    /// Every right on every path to everyone, for the daemon's explicit
    /// `--allow-all`. Paths with `.` or `..` components are still denied.
    /// [`Policy::text_sha256`] is the hash of [`ALLOW_ALL_TEXT`].
    pub fn allow_all() -> Policy {
        let glob = "/**";
        // "/**" is a constant, valid glob: compiling it cannot fail.
        let compiled = PathGlob::compile(glob).expect("\"/**\" is a valid glob");
        let grants = vec![Grant {
            line: 0,
            who: Who::Everyone,
            users: Vec::new(),
            groups: Vec::new(),
            paths: vec![glob.to_owned()],
            globs: vec![compiled],
            rights: RightSet::FULL,
        }];
        let index = SubjectIndex::build(&grants);
        Policy {
            source: PathBuf::from("--allow-all"),
            sha256: Sha256::digest(ALLOW_ALL_TEXT.as_bytes()).into(),
            grants,
            index,
            auto_dtmf: Vec::new(),
        }
    }

    /// Whether DTMF tones are masked automatically in files written at
    /// `path` (an `[[auto_blackout]]` table with `detect = ["dtmf"]` covers it).
    pub fn auto_dtmf(&self, path: &str) -> bool {
        VolPath::parse(path).is_some_and(|p| self.auto_dtmf.iter().any(|g| g.matches(&p)))
    }

    /// Whether `who` may exercise `right` on `path` (see the module docs for
    /// path normalisation, globs and the parents-listable rule).
    pub fn allows(&self, who: &Subject, path: &str, right: Right) -> bool {
        self.explain(who, path, right).is_some()
    }

    /// The grant that allows `right` on `path` to `who`, or `None` when the
    /// answer is "denied". A grant that gives the right on the path itself is
    /// preferred over one that only makes it listable as a parent; among
    /// those, the first in file order wins.
    pub fn explain(&self, who: &Subject, path: &str, right: Right) -> Option<GrantRef> {
        let path = VolPath::parse(path)?;
        // Only the grants naming the caller, still in file order.
        let candidates = self.index.candidates(who);
        let found = |via: Via, test: &dyn Fn(&Grant) -> bool| {
            candidates
                .iter()
                .map(|&i| (i, &self.grants[i]))
                .find(|(_, g)| g.applies_to(who) && test(g))
                .map(|(i, g)| GrantRef { index: i + 1, line: g.line, via })
        };
        found(Via::Direct, &|g| g.rights.contains(right) && g.covers(&path))
            .or_else(|| if right == Right::List { found(Via::Parent, &|g| g.leads_below(&path)) } else { None })
    }

    /// The grant a [`GrantRef`] points to.
    pub fn grant(&self, r: GrantRef) -> Option<&Grant> {
        r.index.checked_sub(1).and_then(|i| self.grants.get(i))
    }

    /// All grants, in file order.
    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }

    /// How many grants the policy has; 0 denies everything.
    pub fn grant_count(&self) -> usize {
        self.grants.len()
    }

    /// SHA-256 of the exact policy file bytes, for the audit log.
    pub fn text_sha256(&self) -> [u8; 32] {
        self.sha256
    }

    /// The file the policy was read from (`--allow-all` for
    /// [`Policy::allow_all`]).
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Whether this is [`Policy::allow_all`].
    pub fn is_allow_all(&self) -> bool {
        self.grants.iter().any(|g| matches!(g.who, Who::Everyone))
    }
}
