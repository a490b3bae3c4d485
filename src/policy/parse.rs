//! Reads the TOML policy text into checked grants, or says file, line and problem.

use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::Spanned;

use super::error::{PolicyError, Problem};
use super::glob::{GlobProblem, PathGlob};
use super::ids::{IdResolver, MAX_ID};
use super::{Grant, Right, RightSet, Who};

/// The file as written. Unknown keys are errors at every level, so a typo
/// such as `right = [...]` cannot silently grant or deny nothing.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    grant: Vec<Spanned<RawGrant>>,
    #[serde(default)]
    auto_blackout: Vec<Spanned<RawAutoBlackout>>,
}

/// Where the daemon silences what it detects without a trigger.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAutoBlackout {
    #[serde(default)]
    paths: SpannedList<String>,
    #[serde(default)]
    detect: SpannedList<String>,
}

/// A whole policy file, checked.
pub(crate) struct Parsed {
    pub grants: Vec<Grant>,
    /// Paths where DTMF tones are masked automatically.
    pub auto_dtmf: Vec<PathGlob>,
}

type SpannedList<T> = Option<Spanned<Vec<Spanned<T>>>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrant {
    #[serde(default)]
    users: SpannedList<RawId>,
    #[serde(default)]
    groups: SpannedList<RawId>,
    #[serde(default)]
    paths: SpannedList<String>,
    #[serde(default)]
    rights: SpannedList<String>,
}

/// A user or group as written: a name, a numeric string, or a TOML integer.
enum RawId {
    Name(String),
    Number(i64),
}

impl RawId {
    fn text(&self) -> String {
        match self {
            RawId::Name(s) => s.clone(),
            RawId::Number(n) => n.to_string(),
        }
    }
}

impl<'de> Deserialize<'de> for RawId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl Visitor<'_> for IdVisitor {
            type Value = RawId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a name or a numeric id")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawId, E> {
                Ok(RawId::Name(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawId, E> {
                Ok(RawId::Number(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawId, E> {
                // Anything past i64 is out of range for an id anyway.
                Ok(RawId::Number(i64::try_from(v).unwrap_or(i64::MAX)))
            }
        }
        d.deserialize_any(IdVisitor)
    }
}

/// Line numbers of byte offsets, from one scan of the text: a lookup is a
/// binary search, so numbering every grant of a large policy stays linear
/// (counting newlines from the start for each grant made 16,000 grants take
/// seconds).
pub(crate) struct LineIndex {
    /// Byte offset of every `\n`, in order.
    newlines: Vec<usize>,
    len: usize,
}

#[cfg(test)]
thread_local! {
    /// Bytes examined to build line indexes on this thread (tests only): the
    /// load of a policy must examine each byte a bounded number of times.
    pub(crate) static BYTES_SCANNED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> Self {
        #[cfg(test)]
        BYTES_SCANNED.with(|c| c.set(c.get() + text.len()));
        LineIndex { newlines: memchr::memchr_iter(b'\n', text.as_bytes()).collect(), len: text.len() }
    }

    /// The 1-based line holding byte `offset` (the last line past the end).
    pub(crate) fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.len);
        // Newlines strictly before `end`, plus one.
        self.newlines.partition_point(|&nl| nl < end) + 1
    }
}

/// Parses and checks a whole policy text. `source` only names the file in
/// errors.
pub(crate) fn parse(text: &str, source: &Path, ids: &dyn IdResolver) -> Result<Parsed, PolicyError> {
    let lines = LineIndex::new(text);
    let raw: RawPolicy = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| lines.line_of(s.start));
        PolicyError::new(source, line, Problem::Toml(e.message().trim().to_owned()))
    })?;
    let mut grants = Vec::with_capacity(raw.grant.len());
    for (i, spanned) in raw.grant.into_iter().enumerate() {
        let header_line = lines.line_of(spanned.span().start);
        let ctx = Ctx { lines: &lines, source, number: i + 1, header_line };
        grants.push(ctx.grant(spanned.into_inner(), ids)?);
    }
    let mut auto_dtmf = Vec::new();
    for (i, spanned) in raw.auto_blackout.into_iter().enumerate() {
        let line = lines.line_of(spanned.span().start);
        let ctx = Ctx { lines: &lines, source, number: i + 1, header_line: line };
        auto_dtmf.extend(ctx.auto_blackout(spanned.into_inner())?);
    }
    Ok(Parsed { grants, auto_dtmf })
}

/// What error messages about one grant need.
struct Ctx<'a> {
    lines: &'a LineIndex,
    source: &'a Path,
    /// The grant's number, from 1.
    number: usize,
    /// The line of its `[[grant]]` header.
    header_line: usize,
}

impl Ctx<'_> {
    fn err<T>(&self, span_start: usize, problem: Problem) -> Result<T, PolicyError> {
        Err(PolicyError::new(self.source, Some(self.lines.line_of(span_start)), problem))
    }

    /// The line of a list's value, or of the grant header when it is absent.
    fn list_line<T>(&self, list: &SpannedList<T>) -> usize {
        match list {
            Some(l) => self.lines.line_of(l.span().start),
            None => self.header_line,
        }
    }

    /// One `[[auto_blackout]]` table: its path globs (`dtmf` is the only detector).
    fn auto_blackout(&self, raw: RawAutoBlackout) -> Result<Vec<PathGlob>, PolicyError> {
        for d in raw.detect.iter().flat_map(|l| l.get_ref()) {
            if d.get_ref() != "dtmf" {
                return self.err(d.span().start, Problem::UnknownDetector(d.get_ref().clone()));
            }
        }
        let mut globs = Vec::new();
        for p in raw.paths.iter().flat_map(|l| l.get_ref()) {
            globs.push(self.glob(p)?);
        }
        if globs.is_empty() || raw.detect.as_ref().is_none_or(|l| l.get_ref().is_empty()) {
            return Err(PolicyError::new(
                self.source,
                Some(self.header_line),
                Problem::EmptyAutoBlackout { number: self.number },
            ));
        }
        Ok(globs)
    }

    /// A path glob as written, compiled, or its line and problem.
    fn glob(&self, p: &Spanned<String>) -> Result<PathGlob, PolicyError> {
        let glob = p.get_ref();
        match PathGlob::compile(glob) {
            Ok(g) => Ok(g),
            Err(GlobProblem::Relative) => self.err(p.span().start, Problem::RelativeGlob(glob.clone())),
            Err(GlobProblem::Bad(reason)) => self.err(p.span().start, Problem::BadGlob { glob: glob.clone(), reason }),
        }
    }

    fn grant(&self, raw: RawGrant, ids: &dyn IdResolver) -> Result<Grant, PolicyError> {
        let (uids, users) = self.ids(&raw.users, IdKind::User, ids)?;
        let (gids, groups) = self.ids(&raw.groups, IdKind::Group, ids)?;
        if uids.is_empty() && gids.is_empty() {
            let line = self.header_line;
            return Err(PolicyError::new(self.source, Some(line), Problem::NoSubjects { grant: self.number }));
        }

        let mut globs = Vec::new();
        let mut paths = Vec::new();
        for p in raw.paths.iter().flat_map(|l| l.get_ref()) {
            globs.push(self.glob(p)?);
            paths.push(p.get_ref().clone());
        }
        if globs.is_empty() {
            let line = self.list_line(&raw.paths);
            let problem = Problem::NoPaths { grant: self.number };
            return Err(PolicyError::new(self.source, Some(line), problem));
        }

        let mut rights = RightSet::EMPTY;
        for r in raw.rights.iter().flat_map(|l| l.get_ref()) {
            match r.get_ref().parse::<Right>() {
                Ok(right) => rights.insert(right),
                Err(_) => {
                    return self.err(r.span().start, Problem::UnknownRight(r.get_ref().clone()));
                }
            }
        }
        if rights.is_empty() {
            let line = self.list_line(&raw.rights);
            let problem = Problem::NoRights { grant: self.number };
            return Err(PolicyError::new(self.source, Some(line), problem));
        }

        Ok(Grant { line: self.header_line, who: Who::Listed { uids, gids }, users, groups, paths, globs, rights })
    }

    /// Resolves a `users` or `groups` list to ids, keeping the text as written.
    fn ids(
        &self,
        list: &SpannedList<RawId>,
        kind: IdKind,
        ids: &dyn IdResolver,
    ) -> Result<(Vec<u32>, Vec<String>), PolicyError> {
        let mut nums = Vec::new();
        let mut texts = Vec::new();
        for item in list.iter().flat_map(|l| l.get_ref()) {
            let raw = item.get_ref();
            match resolve(raw, kind, ids) {
                Ok(id) => nums.push(id),
                Err(problem) => return self.err(item.span().start, problem),
            }
            texts.push(raw.text());
        }
        Ok((nums, texts))
    }
}

#[derive(Clone, Copy)]
enum IdKind {
    User,
    Group,
}

fn resolve(raw: &RawId, kind: IdKind, ids: &dyn IdResolver) -> Result<u32, Problem> {
    let kind_word = match kind {
        IdKind::User => "uid",
        IdKind::Group => "gid",
    };
    let bad_id = || Problem::BadId { kind: kind_word, value: raw.text() };
    match raw {
        RawId::Number(n) => u32::try_from(*n).ok().filter(|id| *id <= MAX_ID).ok_or_else(bad_id),
        RawId::Name(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse::<u32>().ok().filter(|id| *id <= MAX_ID).ok_or_else(bad_id)
        }
        RawId::Name(s) => match kind {
            IdKind::User => ids.uid(s).ok_or_else(|| Problem::UnknownUser(s.clone())),
            IdKind::Group => ids.gid(s).ok_or_else(|| Problem::UnknownGroup(s.clone())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::super::Policy;
    use super::super::tests::Table;
    use super::*;

    const FILE: &str = "/etc/callvault/policy.toml";

    fn error(text: &str) -> String {
        match Policy::from_toml(text, Path::new(FILE), &Table) {
            Ok(p) => panic!("accepted, {} grants:\n{text}", p.grant_count()),
            Err(e) => e.to_string(),
        }
    }

    fn error_line(text: &str) -> Option<usize> {
        Policy::from_toml(text, Path::new(FILE), &Table).err().and_then(|e| e.line())
    }

    #[test]
    fn line_of_counts_from_one() {
        assert_eq!(LineIndex::new("").line_of(0), 1);
        let abc = LineIndex::new("a\nb\nc");
        assert_eq!(abc.line_of(0), 1);
        assert_eq!(abc.line_of(1), 1);
        assert_eq!(abc.line_of(2), 2);
        assert_eq!(abc.line_of(4), 3);
        assert_eq!(abc.line_of(999), 3);
        assert_eq!(LineIndex::new("\n\n").line_of(2), 3);
    }

    #[test]
    fn unknown_right_names_line_and_choices() {
        let text = "# policy\n\n[[grant]]\nusers = [\"recorder\"]\npaths = [\"/**\"]\n\
                    rights = [\"list\",\n  \"raed\"]\n";
        assert_eq!(
            error(text),
            "/etc/callvault/policy.toml:7: unknown right \"raed\" (expected one of list, \
             read, create, write, delete, rename, setattr, blackout)"
        );
    }

    #[test]
    fn rights_are_lowercase_words_only() {
        let text = "[[grant]]\nusers = [\"recorder\"]\npaths = [\"/**\"]\nrights = [\"Read\"]\n";
        assert!(error(text).starts_with(&format!("{FILE}:4: unknown right \"Read\"")));
    }

    #[test]
    fn unknown_user_and_group_name_their_line() {
        let text = "[[grant]]\nusers = [\"recorder\",\n\"mallory\"]\npaths = [\"/**\"]\n\
                    rights = [\"list\"]\n";
        assert_eq!(error(text), format!("{FILE}:3: unknown user \"mallory\""));
        let text = "[[grant]]\n\ngroups = [\"qa-team-z\"]\npaths = [\"/**\"]\nrights = [\"list\"]\n";
        assert_eq!(error(text), format!("{FILE}:3: unknown group \"qa-team-z\""));
    }

    #[test]
    fn a_group_name_is_not_a_user_name() {
        let text = "[[grant]]\nusers = [\"qa-team-a\"]\npaths = [\"/**\"]\nrights = [\"list\"]\n";
        assert_eq!(error(text), format!("{FILE}:2: unknown user \"qa-team-a\""));
    }

    #[test]
    fn out_of_range_ids_are_refused() {
        for (users, shown) in [
            ("[4294967295]", "uid 4294967295"),
            ("[\"4294967296\"]", "uid 4294967296"),
            ("[-1]", "uid -1"),
            ("[99999999999999999999999]", ""),
        ] {
            let text = format!("[[grant]]\nusers = {users}\npaths = [\"/**\"]\nrights = [\"list\"]\n");
            let e = error(&text);
            assert!(e.starts_with(&format!("{FILE}:2: ")), "{e}");
            assert!(e.contains(shown), "{e}");
        }
        let text = "[[grant]]\ngroups = [\"4294967295\"]\npaths = [\"/**\"]\nrights = [\"list\"]\n";
        assert_eq!(error(text), format!("{FILE}:2: gid 4294967295 is out of range (0 to 4294967294)"));
    }

    #[test]
    fn bad_globs_name_their_line() {
        let text = "[[grant]]\nusers = [\"recorder\"]\npaths = [\"/ok/**\",\n\"/team-[a\"]\n\
                    rights = [\"list\"]\n";
        assert_eq!(error(text), format!("{FILE}:4: bad path glob \"/team-[a\": unclosed character class; missing ']'"));
        let text = "[[grant]]\nusers = [\"recorder\"]\npaths = [\"/{a,b/c}\"]\nrights = [\"list\"]\n";
        assert!(error(text).starts_with(&format!("{FILE}:3: bad path glob \"/{{a,b/c}}\"")));
        let text = "[[grant]]\nusers = [\"recorder\"]\npaths = [\"/a/../b\"]\nrights = [\"list\"]\n";
        assert!(error(text).starts_with(&format!("{FILE}:3: bad path glob \"/a/../b\"")));
    }

    #[test]
    fn relative_glob_names_its_line() {
        let text = "[[grant]]\nusers = [\"recorder\"]\n\npaths = [\"team-a/**\"]\n\
                    rights = [\"list\"]\n";
        assert_eq!(error(text), format!("{FILE}:4: path \"team-a/**\" must start with \"/\" (the root of the volume)"));
    }

    #[test]
    fn unknown_keys_are_refused_with_their_line() {
        let text = "[[grant]]\nusers = [\"recorder\"]\npaths = [\"/**\"]\nrights = [\"list\"]\n\n\
                    [[grant]]\nuser = [\"recorder\"]\n";
        assert_eq!(
            error(text),
            format!(
                "{FILE}:7: unknown field `user`, expected one of `users`, `groups`, `paths`, \
                 `rights`"
            )
        );
        let text = "[[grants]]\nusers = [\"recorder\"]\n";
        let e = error(text);
        assert!(e.starts_with(&format!("{FILE}:1: unknown field `grants`")), "{e}");
        let text = "version = 2\n";
        assert!(error(text).starts_with(&format!("{FILE}:1: unknown field `version`")));
    }

    #[test]
    fn toml_syntax_errors_name_their_line() {
        let e = error("[[grant]]\nusers = [\"recorder\"\npaths = [\"/**\"]\n");
        assert!(e.starts_with(&format!("{FILE}:3: ")), "{e}");
        let e = error("\n\n[[grant]\n");
        assert!(e.starts_with(&format!("{FILE}:3: ")), "{e}");
        let e = error("[[grant]]\nusers = \"recorder\"\n");
        assert!(e.starts_with(&format!("{FILE}:2: invalid type")), "{e}");
        let e = error("[[grant]]\nusers = [\"a\"]\nusers = [\"b\"]\n");
        assert!(e.starts_with(&format!("{FILE}:3: duplicate key")), "{e}");
        let e = error("[[grant]]\nusers = [\"recorder\"]\npaths = [\"/**\"]\nrights = [\"list\", 3]\n");
        assert!(e.starts_with(&format!("{FILE}:4: invalid type")), "{e}");
        assert!(!e.contains('\n'), "one line: {e:?}");
    }

    #[test]
    fn grant_without_subjects_points_at_its_header() {
        let text = "[[grant]]\nusers = [\"recorder\"]\npaths = [\"/**\"]\nrights = [\"list\"]\n\n\
                    [[grant]]\nusers = []\ngroups = []\npaths = [\"/**\"]\nrights = [\"list\"]\n";
        assert_eq!(error(text), format!("{FILE}:6: grant #2 has no users and no groups (it would apply to nobody)"));
        let text = "[[grant]]\npaths = [\"/**\"]\nrights = [\"list\"]\n";
        assert_eq!(error_line(text), Some(1));
    }

    #[test]
    fn grant_without_paths_or_rights_is_refused() {
        let text = "[[grant]]\nusers = [\"recorder\"]\npaths = []\nrights = [\"list\"]\n";
        assert_eq!(error(text), format!("{FILE}:3: grant #1 has no paths"));
        let text = "[[grant]]\nusers = [\"recorder\"]\nrights = [\"list\"]\n";
        assert_eq!(error(text), format!("{FILE}:1: grant #1 has no paths"));
        let text = "[[grant]]\nusers = [\"recorder\"]\npaths = [\"/**\"]\n\nrights = []\n";
        assert_eq!(error(text), format!("{FILE}:5: grant #1 has no rights"));
        let text = "\n[[grant]]\nusers = [\"recorder\"]\npaths = [\"/**\"]\n";
        assert_eq!(error(text), format!("{FILE}:2: grant #1 has no rights"));
    }

    #[test]
    fn inline_table_grants_work_too() {
        let text = "grant = [\n  { users = [\"recorder\"], paths = [\"/**\"], rights = [\"list\"] },\n\
                    \x20 { users = [\"recorder\"], paths = [\"/x\"], rights = [\"bogus\"] },\n]\n";
        assert_eq!(error_line(text), Some(3));
    }

    #[test]
    fn empty_and_comment_only_policies_are_valid() {
        for text in ["", "\n", "# nothing granted\n", "grant = []\n"] {
            let p = Policy::from_toml(text, Path::new(FILE), &Table).expect("valid");
            assert_eq!(p.grant_count(), 0);
        }
    }

    #[test]
    fn auto_blackout_tables_name_paths_and_the_dtmf_detector() {
        let text = "[[grant]]\nusers = [1000]\npaths = [\"/**\"]\nrights = [\"list\"]\n\n[[auto_blackout]]\npaths = [\"/calls/**\", \"/ivr/*.wav\"]\ndetect = [\"dtmf\"]\n";
        let p = Policy::from_toml(text, Path::new(FILE), &Table).unwrap();
        assert!(p.auto_dtmf("/calls/2026/c1.wav"));
        assert!(p.auto_dtmf("/ivr/menu.wav"));
        assert!(!p.auto_dtmf("/ivr/x/menu.wav"));
        assert!(!p.auto_dtmf("/other.wav"));
        assert!(!Policy::allow_all().auto_dtmf("/calls/c1.wav"));
        assert_eq!(
            error("[[auto_blackout]]\npaths = [\"/calls/**\"]\ndetect = [\"dtmf\", \"voice\"]\n"),
            "/etc/callvault/policy.toml:3: unknown auto_blackout detector \"voice\" (expected \"dtmf\")"
        );
        assert_eq!(
            error("\n[[auto_blackout]]\npaths = [\"/calls/**\"]\n"),
            "/etc/callvault/policy.toml:2: auto_blackout #1 needs both `paths` and `detect = [\"dtmf\"]`"
        );
        assert!(
            error("[[auto_blackout]]\npaths = [\"calls\"]\ndetect = [\"dtmf\"]\n")
                .contains(":2: path \"calls\" must start")
        );
        assert!(error("[[auto_blackout]]\npath = [\"/calls\"]\ndetect = [\"dtmf\"]\n").contains("unknown field"));
    }
}
