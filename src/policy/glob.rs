//! Normalises volume paths and compiles the path globs of a policy.
//!
//! Two matchers are built from each glob: globset's whole-path matcher, which
//! decides whether a grant covers a path, and a component-by-component matcher,
//! which decides whether a grant covers something *below* a path (the
//! parents-listable rule). Globs whose `[...]` or `{...}` span a `/` are refused
//! so that the two always agree; a test checks that they do.

use globset::{GlobBuilder, GlobMatcher};

/// A path inside the volume after normalisation: absolute, with no empty, `.`
/// or `..` components. `/` is the root and has no components.
#[derive(Debug)]
pub(crate) struct VolPath<'a> {
    comps: Vec<&'a str>,
    joined: String,
}

impl<'a> VolPath<'a> {
    /// Collapses repeated slashes and drops a trailing one. `None` (deny) when
    /// the path is empty, relative, or has a `.` or `..` component.
    pub(crate) fn parse(path: &'a str) -> Option<Self> {
        let rest = path.strip_prefix('/')?;
        let mut comps = Vec::new();
        for comp in rest.split('/') {
            match comp {
                "" => {}
                "." | ".." => return None,
                name => comps.push(name),
            }
        }
        let mut joined = String::with_capacity(path.len());
        if comps.is_empty() {
            joined.push('/');
        }
        for comp in &comps {
            joined.push('/');
            joined.push_str(comp);
        }
        Some(VolPath { comps, joined })
    }

    /// The normalised path, e.g. `/team-a/c1.wav`.
    pub(crate) fn as_str(&self) -> &str {
        &self.joined
    }
}

/// Why a glob was refused. The caller adds the file, line and glob.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum GlobProblem {
    /// The glob does not start with `/`.
    Relative,
    /// The glob is not valid in the dialect; the string says why.
    Bad(String),
}

/// One glob component: `**` (any number of components, including none) or a
/// pattern for exactly one name.
#[derive(Debug)]
enum Comp {
    AnyDepth,
    Name(Matcher),
}

/// A compiled pattern. Globs without special characters, the bulk of a large
/// policy (`/team-a/**`), are compared as strings: a globset matcher costs
/// tens of microseconds and kilobytes to build, and a 16,000-grant policy
/// needs about 100,000 of them.
#[derive(Debug)]
enum Matcher {
    /// Exactly this text.
    Literal(String),
    /// This text (a literal directory and `/`) and anything after it: the
    /// globset meaning of `DIR/**` on a normalised path.
    Below(String),
    Glob(GlobMatcher),
}

impl Matcher {
    fn new(glob: &str) -> Result<Matcher, globset::Error> {
        if is_literal(glob) { Ok(Matcher::Literal(glob.to_owned())) } else { matcher(glob).map(Matcher::Glob) }
    }

    fn is_match(&self, s: &str) -> bool {
        match self {
            Matcher::Literal(l) => l == s,
            Matcher::Below(prefix) => s.len() > prefix.len() && s.starts_with(prefix.as_str()),
            Matcher::Glob(m) => m.is_match(s),
        }
    }

    #[cfg(test)]
    fn is_glob(&self) -> bool {
        matches!(self, Matcher::Glob(_))
    }
}

/// Whether globset would read `glob` as plain text: no wildcard, class,
/// alternation or escape (a stray `]` or `}` also goes to globset).
fn is_literal(glob: &str) -> bool {
    !glob.bytes().any(|b| matches!(b, b'*' | b'?' | b'[' | b']' | b'{' | b'}' | b'\\'))
}

/// A compiled path glob of one grant.
#[derive(Debug)]
pub(crate) struct PathGlob {
    /// globset matchers on the whole path: the glob itself and, when it ends
    /// in `/**`, the directory the `/**` hangs off (so "/team-a/**" covers
    /// "/team-a" too).
    whole: Vec<Matcher>,
    /// The same glob, one matcher per component, for the parents rule.
    comps: Vec<Comp>,
}

/// The one place globs are configured: `*`, `?` and `[...]` never match `/`,
/// `\` escapes, matching is case-sensitive and byte-exact.
fn matcher(glob: &str) -> Result<GlobMatcher, globset::Error> {
    GlobBuilder::new(glob)
        .literal_separator(true)
        .backslash_escape(true)
        .case_insensitive(false)
        .empty_alternates(false)
        .build()
        .map(|g| g.compile_matcher())
}

impl PathGlob {
    /// Compiles a glob as written in a policy file.
    pub(crate) fn compile(raw: &str) -> Result<PathGlob, GlobProblem> {
        let rest = raw.strip_prefix('/').ok_or(GlobProblem::Relative)?;
        let parts: Vec<&str> = rest.split('/').filter(|c| !c.is_empty()).collect();
        if parts.iter().any(|c| *c == "." || *c == "..") {
            return Err(GlobProblem::Bad(
                "`.` and `..` components never match (paths holding them are always denied)".to_owned(),
            ));
        }
        if non_ascii_in_class(raw) {
            return Err(GlobProblem::Bad(
                "[...] may only hold ASCII characters (classes match single bytes)".to_owned(),
            ));
        }
        let normalised = join(&parts);
        let bad = |e: globset::Error| GlobProblem::Bad(e.kind().to_string());
        let whole = match parts.split_last() {
            // DIR/** with a literal DIR: everything strictly below DIR.
            Some((&"**", dir)) if !dir.is_empty() && dir.iter().all(|c| is_literal(c)) => {
                Matcher::Below(format!("{}/", join(dir)))
            }
            _ => Matcher::new(&normalised).map_err(bad)?,
        };
        let mut comps = Vec::with_capacity(parts.len());
        for part in &parts {
            if *part == "**" {
                comps.push(Comp::AnyDepth);
                continue;
            }
            match Matcher::new(part) {
                Ok(m) => comps.push(Comp::Name(m)),
                Err(_) => {
                    return Err(GlobProblem::Bad(
                        "a `/` inside [...] or {...}, or after `\\`, is not supported; \
                         write separate paths instead"
                            .to_owned(),
                    ));
                }
            }
        }
        let mut wholes = vec![whole];
        if let Some((&"**", dir)) = parts.split_last() {
            wholes.push(Matcher::new(&join(dir)).map_err(bad)?);
        }
        Ok(PathGlob { whole: wholes, comps })
    }

    /// How many globset matchers this glob needed (tests only).
    #[cfg(test)]
    pub(crate) fn globset_matchers(&self) -> usize {
        let comps = self.comps.iter().filter(|c| matches!(c, Comp::Name(m) if m.is_glob())).count();
        comps + self.whole.iter().filter(|m| m.is_glob()).count()
    }

    /// Whether the glob covers `path` itself.
    pub(crate) fn matches(&self, path: &VolPath<'_>) -> bool {
        // The root is the one path whose text ends in `/`, and globset lets
        // `*` match the empty name after it: "/*" would cover "/". The root
        // has no components, so only a glob made of `**` alone covers it.
        if path.comps.is_empty() {
            return self.states(&[]).last().copied().unwrap_or(false);
        }
        self.whole.iter().any(|m| m.is_match(path.as_str()))
    }

    /// Whether the glob could cover some path strictly below `path`: `path` is
    /// then a directory the subject must be able to list to reach it.
    pub(crate) fn leads_below(&self, path: &VolPath<'_>) -> bool {
        let n = self.comps.len();
        self.states(&path.comps).iter().take(n).any(|s| *s)
    }

    /// The component matcher's own verdict on `path` itself; tests check that
    /// it agrees with [`PathGlob::matches`].
    #[cfg(test)]
    pub(crate) fn matches_by_components(&self, path: &VolPath<'_>) -> bool {
        self.states(&path.comps).last().copied().unwrap_or(false)
    }

    /// Runs the component matcher over `names`. Entry `i` of the result is
    /// true when the first `i` glob components can have consumed all of
    /// `names`; the result has one entry more than there are components.
    fn states(&self, names: &[&str]) -> Vec<bool> {
        let n = self.comps.len();
        let mut cur = vec![false; n + 1];
        cur[0] = true;
        self.close(&mut cur);
        for name in names {
            let mut next = vec![false; n + 1];
            for (i, comp) in self.comps.iter().enumerate() {
                if !cur[i] {
                    continue;
                }
                match comp {
                    Comp::AnyDepth => next[i] = true,
                    Comp::Name(m) => {
                        if m.is_match(name) {
                            next[i + 1] = true;
                        }
                    }
                }
            }
            self.close(&mut next);
            if !next.iter().any(|s| *s) {
                return next;
            }
            cur = next;
        }
        cur
    }

    /// `**` may match no component at all: a state before one also reaches
    /// the state after it. One forward pass suffices as edges only go forward.
    fn close(&self, states: &mut [bool]) {
        for (i, comp) in self.comps.iter().enumerate() {
            if states[i] && matches!(comp, Comp::AnyDepth) {
                states[i + 1] = true;
            }
        }
    }
}

/// `/` followed by the components joined with `/`; `/` for none.
fn join(parts: &[&str]) -> String {
    if parts.is_empty() {
        return "/".to_owned();
    }
    let mut s = String::new();
    for part in parts {
        s.push('/');
        s.push_str(part);
    }
    s
}

/// Whether a `[...]` class of the glob holds a non-ASCII character. globset
/// matches classes against single bytes, so such a class never does what it
/// says. A leading `!` or `^` negates and a `]` right after it is literal.
fn non_ascii_in_class(glob: &str) -> bool {
    let mut chars = glob.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '[' => {
                let mut members = 0usize;
                let mut may_negate = true;
                loop {
                    let Some(c) = chars.next() else {
                        return false;
                    };
                    if may_negate && (c == '!' || c == '^') {
                        may_negate = false;
                        continue;
                    }
                    may_negate = false;
                    if c == ']' && members > 0 {
                        break;
                    }
                    if !c.is_ascii() {
                        return true;
                    }
                    members += 1;
                }
            }
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> Option<String> {
        VolPath::parse(p).map(|v| v.as_str().to_owned())
    }

    fn glob(g: &str) -> PathGlob {
        match PathGlob::compile(g) {
            Ok(p) => p,
            Err(e) => panic!("glob {g:?} refused: {e:?}"),
        }
    }

    fn m(g: &str, p: &str) -> bool {
        let path = VolPath::parse(p).expect("test path is valid");
        glob(g).matches(&path)
    }

    fn below(g: &str, p: &str) -> bool {
        let path = VolPath::parse(p).expect("test path is valid");
        glob(g).leads_below(&path)
    }

    /// Every path of one to three of `names` ("/a", "/a/b", "/a/b/c", ...).
    fn paths_up_to_three_deep(names: &[&str]) -> Vec<String> {
        let mut paths = Vec::new();
        let mut level = vec![String::new()];
        for _ in 0..3 {
            let next: Vec<String> =
                level.iter().flat_map(|prefix| names.iter().map(move |name| format!("{prefix}/{name}"))).collect();
            paths.extend(next.iter().cloned());
            level = next;
        }
        paths
    }

    #[test]
    fn normalise_collapses_slashes_and_drops_trailing_one() {
        assert_eq!(norm("/").as_deref(), Some("/"));
        assert_eq!(norm("//").as_deref(), Some("/"));
        assert_eq!(norm("/a/").as_deref(), Some("/a"));
        assert_eq!(norm("//a///b//").as_deref(), Some("/a/b"));
        assert_eq!(norm("/a/.../b").as_deref(), Some("/a/.../b"));
        assert_eq!(norm("/a/..b/.c").as_deref(), Some("/a/..b/.c"));
    }

    #[test]
    fn normalise_refuses_relative_empty_dot_and_dotdot() {
        for p in ["", "a", "a/b", ".", "..", "/.", "/..", "/a/.", "/a/..", "/a/../b", "/./a", "/a/./b", "/a/b/..//"] {
            assert_eq!(norm(p), None, "{p:?}");
        }
    }

    #[test]
    fn star_stays_inside_one_component() {
        assert!(m("/*", "/a"));
        assert!(!m("/*", "/a/b"));
        assert!(!m("/*", "/"));
        assert!(!m("/**/*", "/"));
        assert!(m("/team-a/*.wav", "/team-a/c1.wav"));
        assert!(!m("/team-a/*.wav", "/team-a/sub/c1.wav"));
        assert!(!m("/team-a/*.wav", "/team-a/c1.wav.bak"));
        assert!(m("/*", "/.hidden"));
    }

    #[test]
    fn double_star_crosses_components_and_covers_its_directory() {
        assert!(m("/team-a/**", "/team-a"));
        assert!(m("/team-a/**", "/team-a/c1.wav"));
        assert!(m("/team-a/**", "/team-a/2024/05/c1.wav"));
        assert!(!m("/team-a/**", "/team-ab"));
        assert!(!m("/team-a/**", "/team-b/c1.wav"));
        assert!(!m("/team-a/**", "/"));
        assert!(m("/**", "/"));
        assert!(m("/**", "/x/y/z"));
        assert!(m("/a/**/b", "/a/b"));
        assert!(m("/a/**/b", "/a/x/y/b"));
        assert!(!m("/a/**/b", "/a/x/y/c"));
        assert!(m("/**/c1.wav", "/c1.wav"));
        assert!(m("/**/c1.wav", "/t/c1.wav"));
    }

    #[test]
    fn question_mark_classes_and_alternates() {
        assert!(m("/team-?/x", "/team-a/x"));
        assert!(!m("/team-?/x", "/team-/x"));
        assert!(m("/team-[ab]/x", "/team-b/x"));
        assert!(!m("/team-[ab]/x", "/team-c/x"));
        assert!(m("/team-[!ab]/x", "/team-c/x"));
        assert!(m("/{team-a,team-b}/x", "/team-b/x"));
        assert!(!m("/{team-a,team-b}/x", "/team-c/x"));
        assert!(m("/a\\*", "/a*"));
        assert!(!m("/a\\*", "/ab"));
    }

    #[test]
    fn matching_is_case_sensitive() {
        assert!(!m("/team-a/**", "/Team-A/c1.wav"));
        assert!(!m("/team-a/**", "/TEAM-A"));
        assert!(m("/Team-A/**", "/Team-A/c1.wav"));
        assert!(!m("/x/*.wav", "/x/c1.WAV"));
    }

    #[test]
    fn matching_is_byte_exact_on_unicode() {
        // "é" precomposed (U+00E9) versus "e" + combining acute (U+0301).
        assert!(m("/équipe/**", "/équipe/appel.wav"));
        assert!(!m("/équipe/**", "/e\u{301}quipe/appel.wav"));
        assert!(!m("/e\u{301}quipe/**", "/équipe/appel.wav"));
        assert!(m("/日本/*", "/日本/通話.wav"));
        assert!(m("/*", "/通話.wav"));
        // `?` matches one byte, not one character.
        assert!(!m("/?", "/é"));
        assert!(m("/??", "/é"));
    }

    #[test]
    fn glob_slashes_are_normalised_like_paths() {
        assert!(m("//team-a//**", "/team-a/x"));
        assert!(m("/team-a/", "/team-a"));
        assert!(m("/", "/"));
        assert!(!m("/", "/a"));
    }

    #[test]
    fn bad_globs_are_refused() {
        assert_eq!(PathGlob::compile("team-a/**").err(), Some(GlobProblem::Relative));
        assert_eq!(PathGlob::compile("").err(), Some(GlobProblem::Relative));
        assert_eq!(PathGlob::compile("**").err(), Some(GlobProblem::Relative));
        for g in ["/[", "/{a", "/[z-a]", "/a\\", "/{a,b/c}", "/[a/b]", "/a/../b", "/a/./b", "/..", "/[é]", "/[!ü]x"] {
            assert!(matches!(PathGlob::compile(g), Err(GlobProblem::Bad(_))), "{g:?} should be refused");
        }
    }

    #[test]
    fn leads_below_finds_the_directories_on_the_way() {
        assert!(below("/team-a/**", "/"));
        assert!(below("/team-a/**", "/team-a"));
        assert!(!below("/team-a/**", "/team-b"));
        assert!(!below("/team-a/**", "/team-ab"));
        assert!(below("/team-a/2024/*.wav", "/team-a"));
        assert!(below("/team-a/2024/*.wav", "/team-a/2024"));
        assert!(!below("/team-a/2024/*.wav", "/team-a/2024/c1.wav"));
        assert!(!below("/team-a/2024/*.wav", "/team-a/2023"));
        assert!(below("/team-*/calls/**", "/team-z"));
        assert!(!below("/team-*/calls/**", "/other"));
        assert!(below("/a/**/b", "/a/x/y"));
        assert!(!below("/a/**/b", "/c"));
        assert!(!below("/", "/"));
        assert!(below("/**", "/"));
    }

    /// The component matcher and globset must agree on every path, or the
    /// parents rule would reason about a different glob than the one granted.
    #[test]
    fn component_matcher_agrees_with_globset() {
        let globs = [
            "/",
            "/**",
            "/*",
            "/team-a/**",
            "/team-a/*",
            "/team-a/*.wav",
            "/team-?/**",
            "/team-[ab]/**",
            "/{team-a,team-b}/**",
            "/**/c1.wav",
            "/a/**/b",
            "/a/**/b/**",
            "/**/x/**",
            "/a**",
            "/*/*",
            "/a\\*",
            "/équipe/**",
            "/日本/*",
            "/**/*",
            "/*/**",
            "/{a,b}*",
            "/a/{b,c}/**",
            "/[!a]*",
            "/**/**",
        ];
        let mut paths: Vec<String> = [
            "/a*",
            "/ab",
            "/a/x/y/b/c",
            "/team-c",
            "/team-a/sub/c1.wav",
            "/q/x/r",
            "/équipe",
            "/équipe/appel.wav",
            "/e\u{301}quipe/x",
            "/日本/通話.wav",
            "/Team-A/x",
        ]
        .map(str::to_owned)
        .to_vec();
        // Every path up to three deep over a few names.
        let names = ["a", "b", "x", "team-a", "c1.wav", "日本"];
        paths.extend(paths_up_to_three_deep(&names));
        paths.push("/".to_owned());
        for g in globs {
            let pg = glob(g);
            for p in &paths {
                let vp = VolPath::parse(p).expect("test path is valid");
                assert_eq!(pg.matches(&vp), pg.matches_by_components(&vp), "glob {g:?} path {p:?}");
            }
        }
    }

    /// What globset alone says `g` covers (the matcher before the literal
    /// fast paths): the glob, or for `DIR/**` also DIR; the root only for
    /// globs of `**` alone.
    fn globset_only(g: &str, p: &VolPath<'_>) -> bool {
        let parts: Vec<&str> = g.strip_prefix('/').unwrap().split('/').filter(|c| !c.is_empty()).collect();
        if p.comps.is_empty() {
            return parts.iter().all(|c| *c == "**");
        }
        let mut hit = matcher(&join(&parts)).unwrap().is_match(p.as_str());
        if let Some((&"**", dir)) = parts.split_last() {
            hit |= matcher(&join(dir)).unwrap().is_match(p.as_str());
        }
        hit
    }

    #[test]
    fn literal_fast_paths_agree_with_globset() {
        let globs = ["/a", "/a/b", "/a/**", "/a/b/**", "/team-a/**", "/a/**/b", "/a b/**", "/é/**", "/**", "/", "/a/*"];
        let names = ["a", "b", "ab", "a b", "é", ".a", "team-a", "team-ab"];
        let mut paths = vec!["/".to_owned()];
        paths.extend(paths_up_to_three_deep(&names));
        for g in globs {
            let pg = glob(g);
            for p in &paths {
                let vp = VolPath::parse(p).expect("test path is valid");
                assert_eq!(pg.matches(&vp), globset_only(g, &vp), "glob {g:?} path {p:?}");
                assert_eq!(pg.matches(&vp), pg.matches_by_components(&vp), "glob {g:?} path {p:?}");
            }
        }
        // Literal globs and DIR/** need no globset matcher at all.
        for g in ["/a", "/a/b", "/team-a/**", "/a b/é/**"] {
            assert_eq!(glob(g).globset_matchers(), 0, "{g}");
        }
        assert_eq!(glob("/shared/1-*.wav").globset_matchers(), 2);
    }

    proptest::proptest! {
        /// Any glob text either compiles or is refused; it never panics, and
        /// a compiled glob's two matchers agree on any path.
        #[test]
        fn arbitrary_globs_never_panic_and_matchers_agree(
            g in "/[a-c*?{},\\[\\]!/.é]{0,10}",
            p in "(/[a-c.é*]{1,3}){0,4}",
        ) {
            if let Ok(pg) = PathGlob::compile(&g) {
                if let Some(vp) = VolPath::parse(&p) {
                    proptest::prop_assert_eq!(pg.matches(&vp), pg.matches_by_components(&vp));
                    proptest::prop_assert_eq!(pg.matches(&vp), globset_only(&g, &vp));
                    let _ = pg.leads_below(&vp);
                }
            }
        }

        /// Arbitrary path text never panics the normaliser.
        #[test]
        fn arbitrary_paths_never_panic(p in "\\PC{0,40}") {
            let _ = VolPath::parse(&p);
        }
    }
}
