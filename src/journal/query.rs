//! Filters for `audit show` and `follow` (user, path glob, event, time), with a byte prefilter, and output formats.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::str::FromStr;

use globset::{GlobBuilder, GlobMatcher};
use memchr::memmem::Finder;

use super::record::{EventKind, Outcome, Record};
use super::time::{UnixNanos, format_unix_nanos, parse_time};

/// Which records to show. Every criterion set must match (AND).
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// User name, or uid in decimal.
    user: Option<String>,
    /// The glob as typed, and compiled.
    path: Option<(String, GlobMatcher)>,
    /// The name as typed and the kinds it stands for (one kind, or a
    /// family such as `blackout`).
    event: Option<(String, Vec<EventKind>)>,
    outcome: Option<String>,
    since: Option<UnixNanos>,
    until: Option<UnixNanos>,
}

impl Filter {
    /// Matches everything.
    pub fn new() -> Filter {
        Filter::default()
    }

    /// Records of this user: a name from the record's `user`, or a uid.
    pub fn user(mut self, name_or_uid: &str) -> Filter {
        self.user = Some(name_or_uid.to_string());
        self
    }

    /// Records whose `path` or `path2` matches the glob. `*` and `?` stay
    /// within one path component, `**` crosses `/`, `[...]` and `{a,b}` work.
    pub fn path(mut self, glob: &str) -> Result<Filter, String> {
        let g = GlobBuilder::new(glob)
            .literal_separator(true)
            .build()
            .map_err(|e| format!("invalid --path glob {glob:?}: {e}"))?;
        self.path = Some((glob.to_string(), g.compile_matcher()));
        Ok(self)
    }

    /// Records of this event, or of a family of events (`blackout`: every
    /// `blackout_*` kind). For `denied` records, the refused operation
    /// (`detail.op`) also counts: `--event open` shows denied opens too.
    pub fn event(mut self, name: &str) -> Result<Filter, String> {
        let kinds = match name.parse::<EventKind>() {
            Ok(k) => vec![k],
            Err(e) => {
                let in_family = |k: &EventKind| k.as_str().strip_prefix(name).is_some_and(|r| r.starts_with('_'));
                let family: Vec<_> = EventKind::ALL.iter().copied().filter(in_family).collect();
                if family.is_empty() {
                    let names: Vec<_> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                    return Err(format!("{e}; known events: {}, blackout (every blackout_* event)", names.join(", ")));
                }
                family
            }
        };
        self.event = Some((name.to_string(), kinds));
        Ok(self)
    }

    /// Records with this outcome: `ok`, `intent` (written before an
    /// operation took effect), `interrupted` (an intent whose outcome never
    /// came), `error` (any errno), or one errno name (`EACCES`).
    pub fn outcome(mut self, name: &str) -> Result<Filter, String> {
        let known = matches!(name, "ok" | "intent" | "interrupted" | "error")
            || (name.len() > 1 && name.starts_with('E') && name[1..].bytes().all(|b| b.is_ascii_alphanumeric()));
        if !known {
            return Err(format!(
                "unknown outcome {name:?}; use ok, intent, interrupted, error, or an errno name such as EACCES"
            ));
        }
        self.outcome = Some(name.to_string());
        Ok(self)
    }

    /// Records at or after this time (RFC 3339, `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM:SSZ`).
    pub fn since(mut self, time: &str) -> Result<Filter, String> {
        self.since = Some(parse_filter_time(time, "--since")?);
        Ok(self)
    }

    /// Records at or before this time (same forms; a bare date means its midnight).
    pub fn until(mut self, time: &str) -> Result<Filter, String> {
        self.until = Some(parse_filter_time(time, "--until")?);
        Ok(self)
    }

    /// Whether a parsed record matches.
    pub fn matches(&self, rec: &Record) -> bool {
        if let Some((name, kinds)) = &self.event {
            let op = rec.detail.op.as_deref();
            let denied_op = rec.event == EventKind::Denied
                && (op == Some(name.as_str()) || kinds.iter().any(|k| op == Some(k.as_str())));
            if !kinds.contains(&rec.event) && !denied_op {
                return false;
            }
        }
        if let Some(o) = &self.outcome {
            let hit = match o.as_str() {
                "error" => matches!(rec.outcome, Outcome::Err(_)),
                name => rec.outcome.as_str() == name,
            };
            if !hit {
                return false;
            }
        }
        if let Some(u) = &self.user {
            if rec.user.as_deref() != Some(u.as_str()) && rec.uid.to_string() != *u {
                return false;
            }
        }
        if let Some((_, g)) = &self.path {
            let hit = |p: &Option<String>| p.as_deref().is_some_and(|p| g.is_match(p));
            if !hit(&rec.path) && !hit(&rec.path2) {
                return false;
            }
        }
        if self.since.is_some() || self.until.is_some() {
            let Some(t) = parse_time(&rec.ts) else {
                return false;
            };
            if self.since.is_some_and(|s| t < s) || self.until.is_some_and(|u| t > u) {
                return false;
            }
        }
        true
    }

    /// A fast byte-level test that never rejects a line `matches` would accept.
    pub fn prefilter(&self) -> Prefilter {
        let mut groups: Vec<Vec<Finder<'static>>> = Vec::new();
        let needle = |s: String| Finder::new(s.as_bytes()).into_owned();
        if let Some((name, kinds)) = &self.event {
            let mut any = vec![needle(format!("\"op\":\"{name}\""))];
            for k in kinds {
                any.push(needle(format!("\"event\":\"{}\"", k.as_str())));
                any.push(needle(format!("\"op\":\"{}\"", k.as_str())));
            }
            groups.push(any);
        }
        if let Some(o) = &self.outcome {
            if o != "error" {
                groups.push(vec![needle(format!("\"outcome\":{}", json_str(o)))]);
            }
        }
        if let Some(u) = &self.user {
            let mut g = vec![needle(format!("\"user\":{}", json_str(u)))];
            if !u.is_empty() && u.bytes().all(|b| b.is_ascii_digit()) {
                g.push(needle(format!("\"uid\":{u},")));
            }
            groups.push(g);
        }
        if let Some((glob, _)) = &self.path {
            if let Some(lit) = longest_literal(glob) {
                let escaped = json_str(&lit);
                let inner = escaped.get(1..escaped.len().saturating_sub(1)).unwrap_or("");
                if !inner.is_empty() {
                    groups.push(vec![needle(inner.to_string())]);
                }
            }
        }
        Prefilter {
            groups,
            since: self.since.map(format_unix_nanos),
            until: self.until.map(format_unix_nanos),
            ts_key: Finder::new(b"\"ts\":\"").into_owned(),
        }
    }
}

fn parse_filter_time(s: &str, flag: &str) -> Result<UnixNanos, String> {
    parse_time(s).ok_or_else(|| {
        format!(
            "{flag} {s:?} is not a time; use YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or RFC 3339 (2026-05-01T10:00:00.5+02:00)"
        )
    })
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// The longest run of literal characters in a glob outside classes and
/// alternations: every matching path contains it.
fn longest_literal(glob: &str) -> Option<String> {
    let mut best = String::new();
    let mut cur = String::new();
    let mut chars = glob.chars().peekable();
    let mut depth = 0usize;
    let flush = |cur: &mut String, best: &mut String| {
        if cur.len() > best.len() {
            *best = cur.clone();
        }
        cur.clear();
    };
    while let Some(c) = chars.next() {
        match c {
            '[' => {
                flush(&mut cur, &mut best);
                // A class: optional negation, a `]` first is a member, then up to `]`.
                if matches!(chars.peek(), Some('!' | '^')) {
                    chars.next();
                }
                if chars.peek() == Some(&']') {
                    chars.next();
                }
                for n in chars.by_ref() {
                    if n == ']' {
                        break;
                    }
                }
            }
            '{' => {
                flush(&mut cur, &mut best);
                depth += 1;
            }
            '}' if depth > 0 => depth -= 1,
            '*' | '?' => flush(&mut cur, &mut best),
            '\\' => match chars.next() {
                Some(n) if depth == 0 => cur.push(n),
                _ => {}
            },
            _ if depth > 0 => {}
            _ => cur.push(c),
        }
    }
    flush(&mut cur, &mut best);
    (!best.is_empty()).then_some(best)
}

/// Byte-level precheck derived from a [`Filter`].
#[derive(Clone, Debug)]
pub struct Prefilter {
    /// Each group must have at least one needle present.
    groups: Vec<Vec<Finder<'static>>>,
    since: Option<String>,
    until: Option<String>,
    ts_key: Finder<'static>,
}

impl Prefilter {
    /// False only when the line cannot match the filter.
    pub fn may_match(&self, line: &[u8]) -> bool {
        for g in &self.groups {
            if !g.iter().any(|f| f.find(line).is_some()) {
                return false;
            }
        }
        if self.since.is_some() || self.until.is_some() {
            // Timestamps are fixed-width, so byte order is time order.
            if let Some(i) = self.ts_key.find(line) {
                let start = i + 6;
                if let Some(ts) = line.get(start..start + 30) {
                    if ts.last() == Some(&b'Z') {
                        if self.since.as_ref().is_some_and(|s| ts < s.as_bytes()) {
                            return false;
                        }
                        if self.until.as_ref().is_some_and(|u| ts > u.as_bytes()) {
                            return false;
                        }
                    }
                }
            }
        }
        true
    }
}

/// Output format of `audit show` and `audit follow`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// Each record exactly as stored, one per line.
    Json,
    /// RFC 4180 with a header row.
    Csv,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "table" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            _ => Err(format!("unknown format {s:?}; use table, json or csv")),
        }
    }
}

const TABLE_HEADER: [&str; 9] = ["SEQ", "TIME", "EVENT", "OUTCOME", "USER(UID)", "PID", "EXE", "PATH", "DETAIL"];
const TABLE_WIDTHS: [usize; 8] = [8, 30, 14, 11, 16, 7, 24, 32];
const CSV_HEADER: &str =
    "seq,ts,event,outcome,uid,user,gid,pid,exe,cmdline,path,path2,detail,login_uid,login_user,session";

/// The header line for a format, if it has one (with its newline).
pub fn render_header(format: Format) -> Option<String> {
    match format {
        Format::Json => None,
        Format::Csv => Some(format!("{CSV_HEADER}\n")),
        Format::Table => Some(table_row(&TABLE_HEADER.map(String::from))),
    }
}

/// Writes one record. `line` is the record's line as stored (used by json).
pub fn render_record(format: Format, rec: &Record, line: &[u8], out: &mut dyn Write) -> io::Result<()> {
    match format {
        Format::Json => {
            out.write_all(line)?;
            out.write_all(b"\n")
        }
        Format::Csv => out.write_all(csv_row(rec).as_bytes()),
        Format::Table => out.write_all(table_row(&table_cells(rec)).as_bytes()),
    }
}

fn table_cells(rec: &Record) -> [String; 9] {
    let mut user = match &rec.user {
        Some(u) => format!("{u}({})", rec.uid),
        None => format!("({})", rec.uid),
    };
    // Root acting as someone else (su, sudo, runuser, setpriv) shows who logged in.
    if let Some(l) = rec.login_uid.filter(|&l| l != rec.uid) {
        let _ = write!(user, " login:{}({l})", rec.login_user.as_deref().unwrap_or(""));
    }
    let path = match (&rec.path, &rec.path2) {
        (Some(a), Some(b)) => format!("{a} -> {b}"),
        (Some(a), None) => a.clone(),
        (None, Some(b)) => format!("-> {b}"),
        (None, None) => "-".into(),
    };
    [
        rec.seq.to_string(),
        rec.ts.clone(),
        rec.event.as_str().to_string(),
        rec.outcome.as_str().to_string(),
        user,
        rec.pid.to_string(),
        rec.exe.clone().unwrap_or_else(|| "-".into()),
        path,
        match rec.session {
            Some(n) => format!("session={n} {}", detail_summary(rec)).trim_end().to_string(),
            None => detail_summary(rec),
        },
    ]
}

/// `key=value` pairs of the detail object, alphabetically; control
/// characters are escaped so one record stays one line.
fn detail_summary(rec: &Record) -> String {
    let Ok(serde_json::Value::Object(map)) = serde_json::to_value(&rec.detail) else {
        return String::new();
    };
    let mut s = String::new();
    for (k, v) in map {
        if k == "mac" || k == "chain" {
            continue;
        }
        if !s.is_empty() {
            s.push(' ');
        }
        match v {
            serde_json::Value::String(t) => {
                let _ = write!(s, "{k}={}", t.escape_debug());
            }
            other => {
                let _ = write!(s, "{k}={other}");
            }
        }
    }
    s
}

fn table_row(cells: &[String; 9]) -> String {
    let mut s = String::new();
    for (i, c) in cells.iter().enumerate() {
        // Paths and names come from users: no control characters reach the terminal.
        let c: String =
            c.chars().flat_map(|ch| if ch.is_control() { ch.escape_default().collect() } else { vec![ch] }).collect();
        match TABLE_WIDTHS.get(i) {
            Some(&w) => {
                let _ = write!(s, "{c:<w$} ");
            }
            None => s.push_str(&c),
        }
    }
    let trimmed = s.trim_end().len();
    s.truncate(trimmed);
    s.push('\n');
    s
}

fn csv_row(rec: &Record) -> String {
    let detail =
        if rec.detail.is_empty() { String::new() } else { serde_json::to_string(&rec.detail).unwrap_or_default() };
    let cmdline = rec.cmdline.as_ref().map(|c| c.join(" ")).unwrap_or_default();
    let opt = |v: Option<u32>| v.map(|n| n.to_string()).unwrap_or_default();
    let fields: [(String, bool); 16] = [
        (rec.seq.to_string(), false),
        (rec.ts.clone(), false),
        (rec.event.as_str().to_string(), false),
        (rec.outcome.as_str().to_string(), false),
        (rec.uid.to_string(), false),
        (rec.user.clone().unwrap_or_default(), true),
        (rec.gid.to_string(), false),
        (rec.pid.to_string(), false),
        (rec.exe.clone().unwrap_or_default(), true),
        (cmdline, true),
        (rec.path.clone().unwrap_or_default(), true),
        (rec.path2.clone().unwrap_or_default(), true),
        (detail, false),
        (opt(rec.login_uid), false),
        (rec.login_user.clone().unwrap_or_default(), true),
        (opt(rec.session), false),
    ];
    let mut s = String::new();
    for (i, (f, untrusted)) in fields.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&csv_field(f, *untrusted));
    }
    s.push('\n');
    s
}

/// RFC 4180 quoting. Text from users that a spreadsheet would run as a
/// formula (leading `=`, `+`, `-`, `@`, tab, CR) gets a leading `'`.
fn csv_field(f: &str, untrusted: bool) -> String {
    let mut v = f.to_string();
    if untrusted && v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        v.insert(0, '\'');
    }
    if v.contains([',', '"', '\n', '\r']) { format!("\"{}\"", v.replace('"', "\"\"")) } else { v }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Actor, Detail, Event, Outcome};

    fn rec(kind: EventKind, user: &str, uid: u32, path: &str, ts: &str) -> (Record, Vec<u8>) {
        let a = Actor {
            uid,
            user: Some(user.into()),
            gid: uid,
            pid: 7,
            exe: Some("/bin/cat".into()),
            cmdline: None,
            ..Actor::default()
        };
        let r = Record::from_event(Event::new(kind, a).path(path), 3, ts.into(), "0".repeat(64));
        let l = r.to_line();
        (r, l)
    }

    fn both(f: &Filter, r: &(Record, Vec<u8>)) -> bool {
        let full = f.matches(&r.0);
        // The prefilter may let through what the full match rejects, never the reverse.
        assert!(!full || f.prefilter().may_match(&r.1), "prefilter rejected a match");
        full
    }

    #[test]
    fn filters_combine_and_the_prefilter_is_sound() {
        let t = "2026-05-01T10:00:00.000000000Z";
        let a = rec(EventKind::Open, "alice", 1000, "/team-a/c1.wav", t);
        let b = rec(EventKind::Close, "bob", 1001, "/team-b/x.wav", t);
        let f = Filter::new().path("/team-a/*.wav").unwrap();
        assert!(both(&f, &a));
        assert!(!both(&f, &b));
        assert!(!f.prefilter().may_match(&b.1));
        assert!(!both(&Filter::new().path("/team-a").unwrap(), &a));
        assert!(both(&Filter::new().path("/**/c1.wav").unwrap(), &a));
        assert!(both(&Filter::new().path("/team-{a,c}/c[0-9].wav").unwrap(), &a));
        assert!(both(&Filter::new().user("alice"), &a));
        assert!(both(&Filter::new().user("1000"), &a));
        assert!(!both(&Filter::new().user("bob"), &a));
        assert!(both(&Filter::new().event("open").unwrap(), &a));
        assert!(!both(&Filter::new().event("close").unwrap(), &a));
        assert!(Filter::new().event("nope").is_err());
        assert!(both(&Filter::new().since("2026-05-01").unwrap(), &a));
        assert!(!both(&Filter::new().since("2026-05-02").unwrap(), &a));
        assert!(both(&Filter::new().until("2026-05-01T10:00:00Z").unwrap(), &a));
        assert!(!both(&Filter::new().until("2026-05-01T09:59:59.999999999Z").unwrap(), &a));
        assert!(Filter::new().since("soon").is_err());
    }

    #[test]
    fn denied_operations_match_their_event_name() {
        let a = Actor { uid: 1001, user: Some("bob".into()), ..Actor::default() };
        let ev = Event::new(EventKind::Denied, a).outcome(Outcome::errno(13)).path("/p").detail(Detail {
            op: Some("open".into()),
            missing_right: Some("read".into()),
            ..Detail::default()
        });
        let r = Record::from_event(ev, 9, "2026-05-01T10:00:00.000000000Z".into(), "0".repeat(64));
        let pair = (r.clone(), r.to_line());
        assert!(both(&Filter::new().event("open").unwrap(), &pair));
        assert!(both(&Filter::new().event("denied").unwrap(), &pair));
        assert!(!both(&Filter::new().event("unlink").unwrap(), &pair));
    }

    #[test]
    fn a_family_name_matches_every_kind_of_the_family_and_its_denials() {
        let a = Actor { uid: 1001, user: Some("cti".into()), ..Actor::default() };
        let record = |kind, op: Option<&str>| {
            let ev = Event::new(kind, a.clone())
                .path("/calls/1.wav")
                .detail(Detail { op: op.map(Into::into), ..Detail::default() });
            let r = Record::from_event(ev, 4, "2026-05-01T10:00:00.000000000Z".into(), "0".repeat(64));
            let line = r.to_line();
            (r, line)
        };
        let f = Filter::new().event("blackout").unwrap();
        for k in [EventKind::BlackoutStart, EventKind::BlackoutStop, EventKind::BlackoutAlert, EventKind::BlackoutDtmf]
        {
            assert!(both(&f, &record(k, None)), "{k}");
        }
        assert!(both(&f, &record(EventKind::Denied, Some("blackout"))));
        assert!(!both(&f, &record(EventKind::Denied, Some("open"))));
        assert!(!both(&f, &record(EventKind::Open, None)));
        assert!(!both(&Filter::new().event("blackout_stop").unwrap(), &record(EventKind::BlackoutStart, None)));
        assert!(Filter::new().event("black").is_err());
    }

    #[test]
    fn intent_and_interrupted_records_filter_and_show_plainly() {
        let t = "2026-05-01T10:00:00.000000000Z";
        let a = Actor { uid: 1000, user: Some("alice".into()), ..Actor::default() };
        let mk = |o: Outcome, intent: Option<u64>| {
            let ev = Event::new(EventKind::Unlink, a.clone())
                .outcome(o)
                .path("/team-a/c1.wav")
                .detail(Detail { intent, ..Detail::default() });
            let r = Record::from_event(ev, 5, t.into(), "0".repeat(64));
            let l = r.to_line();
            (r, l)
        };
        let intent = mk(Outcome::Intent, None);
        let done = mk(Outcome::Ok, Some(5));
        let cut = mk(Outcome::Interrupted, Some(5));
        let failed = mk(Outcome::errno(13), Some(5));
        let ev = Filter::new().event("unlink").unwrap();
        for r in [&intent, &done, &cut, &failed] {
            assert!(both(&ev, r));
        }
        let only = |o: &str| Filter::new().outcome(o).unwrap();
        assert!(both(&only("intent"), &intent) && !both(&only("intent"), &done));
        assert!(both(&only("interrupted"), &cut) && !both(&only("interrupted"), &intent));
        assert!(both(&only("ok"), &done) && !both(&only("ok"), &intent));
        assert!(both(&only("error"), &failed) && !both(&only("error"), &cut) && !both(&only("error"), &intent));
        assert!(both(&only("EACCES"), &failed));
        assert!(Filter::new().outcome("fine").is_err());
        let mut out = Vec::new();
        render_record(Format::Table, &cut.0, &cut.1, &mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains(" unlink         interrupted alice(1000) "), "{s}");
        assert!(s.contains("intent=5"), "{s}");
    }

    #[test]
    fn login_uid_and_session_are_shown() {
        let a = Actor {
            uid: 0,
            user: Some("root".into()),
            login_uid: Some(1000),
            login_user: Some("alice".into()),
            session: Some(7),
            ..Actor::default()
        };
        let r = Record::from_event(Event::new(EventKind::Open, a), 3, "t".into(), "0".repeat(64));
        let l = r.to_line();
        let mut out = Vec::new();
        render_record(Format::Table, &r, &l, &mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains("root(0) login:alice(1000)"), "{s}");
        assert!(s.contains("session=7"), "{s}");
        let mut out = Vec::new();
        render_record(Format::Csv, &r, &l, &mut out).unwrap();
        assert!(String::from_utf8(out).unwrap().ends_with(",1000,alice,7\n"));
        let line = String::from_utf8(l).unwrap();
        assert!(line.contains("\"pid\":0,\"login_uid\":1000,\"login_user\":\"alice\",\"session\":7,"), "{line}");
        assert_eq!(Record::parse(line.as_bytes()).unwrap().actor().login_user.as_deref(), Some("alice"));
    }

    #[test]
    fn literal_extraction() {
        assert_eq!(longest_literal("/team-a/*.wav").as_deref(), Some("/team-a/"));
        assert_eq!(longest_literal("*").as_deref(), None);
        assert_eq!(longest_literal("/a/{bb,cc}/long-name?").as_deref(), Some("/long-name"));
        assert_eq!(longest_literal("/x/[abc]defg").as_deref(), Some("defg"));
        assert_eq!(longest_literal("/x/[]a]bcdef").as_deref(), Some("bcdef"));
        assert_eq!(longest_literal("/q\\*z").as_deref(), Some("/q*z"));
    }

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        assert_eq!(csv_field("a,b", true), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\"", true), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=1+1", true), "'=1+1");
        assert_eq!(csv_field("-5", false), "-5");
        assert_eq!(render_header(Format::Csv).unwrap(), format!("{CSV_HEADER}\n"));
    }

    #[test]
    fn table_rows_are_one_line_even_with_control_characters() {
        let (r, l) = rec(EventKind::Open, "alice", 1000, "/a\nb\x1b[31m", "2026-05-01T10:00:00.000000000Z");
        let mut out = Vec::new();
        render_record(Format::Table, &r, &l, &mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert_eq!(s.matches('\n').count(), 1, "{s:?}");
        assert!(!s.contains('\x1b'));
        assert!(s.starts_with("3        2026-05-01T10:00:00.000000000Z open"), "{s}");
        assert_eq!("json".parse::<Format>().unwrap(), Format::Json);
        assert!("xml".parse::<Format>().is_err());
    }
}
