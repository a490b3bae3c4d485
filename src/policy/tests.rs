//! Decision tests: subjects, paths, globs and rights against small policies.

use std::path::Path;

use super::*;

/// A fixed user and group table so tests never depend on the host.
pub(crate) struct Table;

impl IdResolver for Table {
    fn uid(&self, name: &str) -> Option<u32> {
        match name {
            "root" => Some(0),
            "alice" => Some(1001),
            "bob" => Some(1002),
            "auditor" => Some(1003),
            "recorder" => Some(2001),
            _ => None,
        }
    }

    fn gid(&self, name: &str) -> Option<u32> {
        match name {
            "root" => Some(0),
            "qa-team-a" => Some(3001),
            "qa-team-b" => Some(3002),
            "auditors" => Some(3003),
            "équipe" => Some(3004),
            _ => None,
        }
    }
}

const ISSUE_EXAMPLE: &str = r#"[[grant]]
users  = ["recorder"]          # user names or numeric uids
groups = []                    # group names or numeric gids
paths  = ["/**"]               # globs on the path inside the volume
rights = ["list", "create", "write"]

[[grant]]
groups = ["qa-team-a"]
paths  = ["/team-a/**"]
rights = ["list", "read"]
"#;

fn policy(text: &str) -> Policy {
    match Policy::from_toml(text, Path::new("policy.toml"), &Table) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

fn recorder() -> Subject {
    Subject::new(2001, vec![2001])
}

/// alice: primary group 100, supplementary qa-team-a.
fn alice() -> Subject {
    Subject::new(1001, vec![100, 3001])
}

/// bob: primary group 100, supplementary qa-team-b.
fn bob() -> Subject {
    Subject::new(1002, vec![100, 3002])
}

fn root() -> Subject {
    Subject::new(0, vec![0])
}

#[test]
fn issue_example_parses() {
    let p = policy(ISSUE_EXAMPLE);
    assert_eq!(p.grant_count(), 2);
    assert_eq!(p.grants()[0].line(), 1);
    assert_eq!(p.grants()[1].line(), 7);
    assert_eq!(p.source(), Path::new("policy.toml"));
    assert!(!p.is_allow_all());
}

#[test]
fn recorder_writes_but_never_reads() {
    let p = policy(ISSUE_EXAMPLE);
    let r = recorder();
    for path in ["/", "/team-a", "/team-a/c1.wav", "/team-b/2024/05/c9.wav"] {
        assert!(p.allows(&r, path, Right::List), "{path}");
        assert!(p.allows(&r, path, Right::Create), "{path}");
        assert!(p.allows(&r, path, Right::Write), "{path}");
        assert!(!p.allows(&r, path, Right::Read), "{path}");
        assert!(!p.allows(&r, path, Right::Delete), "{path}");
        assert!(!p.allows(&r, path, Right::Rename), "{path}");
        assert!(!p.allows(&r, path, Right::Setattr), "{path}");
        assert!(!p.allows(&r, path, Right::Blackout), "{path}");
    }
}

#[test]
fn qa_team_a_plays_team_a_and_nothing_else() {
    let p = policy(ISSUE_EXAMPLE);
    let a = alice();
    assert!(p.allows(&a, "/team-a/c1.wav", Right::Read));
    assert!(p.allows(&a, "/team-a/2024/05/c1.wav", Right::Read));
    assert!(p.allows(&a, "/team-a", Right::Read));
    assert!(!p.allows(&a, "/team-b/c1.wav", Right::Read));
    assert!(!p.allows(&a, "/team-b", Right::List));
    assert!(!p.allows(&a, "/team-ab/c1.wav", Right::Read));
    assert!(!p.allows(&a, "/c1.wav", Right::Read));
    assert!(!p.allows(&a, "/team-a/c1.wav", Right::Write));
    assert!(!p.allows(&a, "/team-a/c1.wav", Right::Delete));
    assert!(!p.allows(&a, "/team-a/new.wav", Right::Create));
}

#[test]
fn team_b_gets_nothing_from_team_a_grant() {
    let p = policy(ISSUE_EXAMPLE);
    let b = bob();
    for path in ["/", "/team-a", "/team-a/c1.wav", "/team-b", "/team-b/c1.wav"] {
        for right in Right::ALL {
            assert!(!p.allows(&b, path, right), "{path} {right}");
        }
    }
}

#[test]
fn root_is_not_an_exception() {
    let p = policy(ISSUE_EXAMPLE);
    for path in ["/", "/team-a", "/team-a/c1.wav"] {
        for right in Right::ALL {
            assert!(!p.allows(&root(), path, right), "{path} {right}");
        }
    }
    let p = policy("[[grant]]\nusers = [\"root\"]\npaths = [\"/admin/**\"]\nrights = [\"read\"]\n");
    assert!(p.allows(&root(), "/admin/x", Right::Read));
    assert!(!p.allows(&root(), "/team-a/x", Right::Read));
}

#[test]
fn empty_policy_denies_everything() {
    let p = policy("");
    for who in [root(), alice(), recorder()] {
        for path in ["/", "/team-a", "/x/y"] {
            for right in Right::ALL {
                assert!(!p.allows(&who, path, right));
            }
        }
    }
}

#[test]
fn parents_of_a_grant_are_listable_and_nothing_beside_them() {
    let p = policy("[[grant]]\ngroups = [\"qa-team-a\"]\npaths = [\"/team-a/**\"]\nrights = [\"read\"]\n");
    let a = alice();
    assert_eq!(p.explain(&a, "/", Right::List).map(|g| g.via), Some(Via::Parent));
    assert_eq!(p.explain(&a, "/team-a", Right::List).map(|g| g.via), Some(Via::Parent));
    assert!(!p.allows(&a, "/team-b", Right::List));
    assert!(!p.allows(&a, "/team-ab", Right::List));
    assert!(!p.allows(&a, "/other.wav", Right::List));
    // The parents rule gives `list` only, never the rights of the grant.
    assert!(!p.allows(&a, "/", Right::Read));
}

#[test]
fn parents_rule_follows_wildcards_in_the_middle() {
    let p = policy("[[grant]]\nusers = [\"alice\"]\npaths = [\"/team-*/2024/*.wav\"]\nrights = [\"read\"]\n");
    let a = alice();
    assert!(p.allows(&a, "/", Right::List));
    assert!(p.allows(&a, "/team-x", Right::List));
    assert!(p.allows(&a, "/team-x/2024", Right::List));
    assert!(!p.allows(&a, "/team-x/2023", Right::List));
    assert!(!p.allows(&a, "/other", Right::List));
    // The files themselves need `list` in the grant.
    assert!(!p.allows(&a, "/team-x/2024/c1.wav", Right::List));
    assert!(p.allows(&a, "/team-x/2024/c1.wav", Right::Read));
}

#[test]
fn a_blackout_only_grant_still_opens_the_way() {
    let p = policy("[[grant]]\nusers = [\"bob\"]\npaths = [\"/team-b/blackouts\"]\nrights = [\"blackout\"]\n");
    assert!(p.allows(&bob(), "/", Right::List));
    assert!(p.allows(&bob(), "/team-b", Right::List));
    assert!(!p.allows(&bob(), "/team-b/blackouts", Right::List));
    assert!(p.allows(&bob(), "/team-b/blackouts", Right::Blackout));
    assert!(!p.allows(&bob(), "/team-b/c1.wav", Right::List));
}

#[test]
fn dot_and_dotdot_paths_are_always_denied() {
    let p = Policy::allow_all();
    let a = alice();
    for path in [
        "/team-a/../team-b/c1.wav",
        "/..",
        "/.",
        "/team-a/.",
        "/team-a/./c1.wav",
        "/team-a/..",
        "..",
        "/team-a/c1.wav/..",
    ] {
        for right in Right::ALL {
            assert!(!p.allows(&a, path, right), "{path} {right}");
        }
    }
    let p = policy(ISSUE_EXAMPLE);
    assert!(!p.allows(&a, "/team-a/../team-b/c1.wav", Right::Read));
    assert!(!p.allows(&a, "/team-a/../team-a/c1.wav", Right::Read));
}

#[test]
fn names_that_only_start_with_dots_are_ordinary() {
    let p = policy(ISSUE_EXAMPLE);
    let a = alice();
    assert!(p.allows(&a, "/team-a/...", Right::Read));
    assert!(p.allows(&a, "/team-a/..c1.wav", Right::Read));
    assert!(p.allows(&a, "/team-a/.hidden", Right::Read));
}

#[test]
fn relative_and_empty_paths_are_denied() {
    let p = Policy::allow_all();
    for path in ["", "team-a", "team-a/c1.wav", "./team-a"] {
        assert!(!p.allows(&alice(), path, Right::List), "{path:?}");
    }
}

#[test]
fn trailing_and_repeated_slashes_do_not_matter() {
    let p = policy(ISSUE_EXAMPLE);
    let a = alice();
    assert!(p.allows(&a, "/team-a/", Right::Read));
    assert!(p.allows(&a, "//team-a//c1.wav", Right::Read));
    assert!(p.allows(&a, "/team-a/c1.wav/", Right::Read));
    assert!(p.allows(&a, "//", Right::List));
    assert!(!p.allows(&a, "//team-b//", Right::List));
}

#[test]
fn names_differing_only_in_case_are_different() {
    let p = policy(ISSUE_EXAMPLE);
    let a = alice();
    assert!(!p.allows(&a, "/Team-A/c1.wav", Right::Read));
    assert!(!p.allows(&a, "/TEAM-A", Right::List));
    let p = policy("[[grant]]\nusers = [\"alice\"]\npaths = [\"/calls/C1.wav\"]\nrights = [\"read\"]\n");
    assert!(p.allows(&a, "/calls/C1.wav", Right::Read));
    assert!(!p.allows(&a, "/calls/c1.wav", Right::Read));
    assert!(!p.allows(&a, "/calls/C1.WAV", Right::Read));
}

#[test]
fn unicode_names_match_byte_for_byte() {
    let p = policy(
        "[[grant]]\ngroups = [\"équipe\"]\npaths = [\"/équipe-ß/**\", \"/日本/*.wav\"]\n\
         rights = [\"list\", \"read\"]\n",
    );
    let who = Subject::new(1010, vec![3004]);
    assert!(p.allows(&who, "/équipe-ß/appel.wav", Right::Read));
    assert!(p.allows(&who, "/日本/通話.wav", Right::Read));
    assert!(p.allows(&who, "/日本", Right::List));
    // Decomposed é (e + U+0301), and ß case-folded to ss, are other names.
    assert!(!p.allows(&who, "/e\u{301}quipe-ß/appel.wav", Right::Read));
    assert!(!p.allows(&who, "/équipe-ss/appel.wav", Right::Read));
    assert!(!p.allows(&who, "/ÉQUIPE-ß/appel.wav", Right::Read));
    assert!(!p.allows(&who, "/日本/通話.WAV", Right::Read));
}

#[test]
fn supplementary_groups_count() {
    let p = policy(ISSUE_EXAMPLE);
    // qa-team-a is alice's supplementary group, not her primary one.
    assert!(p.allows(&Subject::new(1001, vec![100, 3001]), "/team-a/x", Right::Read));
    assert!(p.allows(&Subject::new(1001, vec![3001]), "/team-a/x", Right::Read));
    assert!(!p.allows(&Subject::new(1001, vec![100]), "/team-a/x", Right::Read));
    assert!(!p.allows(&Subject::new(1001, vec![]), "/team-a/x", Right::Read));
}

#[test]
fn a_uid_equal_to_a_listed_gid_is_not_a_member() {
    // uid 3001 happens to equal qa-team-a's gid: ids of different kinds never mix.
    let p = policy(ISSUE_EXAMPLE);
    assert!(!p.allows(&Subject::new(3001, vec![100]), "/team-a/x", Right::Read));
    let p = policy("[[grant]]\nusers = [\"1001\"]\npaths = [\"/**\"]\nrights = [\"read\"]\n");
    assert!(!p.allows(&Subject::new(5, vec![1001]), "/x", Right::Read));
}

#[test]
fn numeric_uids_and_gids_need_no_lookup() {
    let p = policy(
        "[[grant]]\nusers = [\"4242\", 4343]\ngroups = [\"5151\", 5252]\npaths = [\"/n/**\"]\n\
         rights = [\"read\"]\n",
    );
    for who in [
        Subject::new(4242, vec![]),
        Subject::new(4343, vec![]),
        Subject::new(1, vec![5151]),
        Subject::new(1, vec![7, 5252]),
    ] {
        assert!(p.allows(&who, "/n/x", Right::Read), "{who:?}");
    }
    assert!(!p.allows(&Subject::new(1, vec![1]), "/n/x", Right::Read));
    assert_eq!(p.grants()[0].users(), ["4242", "4343"]);
    assert_eq!(p.grants()[0].groups(), ["5151", "5252"]);
    // uid 0 written as a number is root, and only what is granted.
    let p = policy("[[grant]]\nusers = [0]\npaths = [\"/r\"]\nrights = [\"read\"]\n");
    assert!(p.allows(&root(), "/r", Right::Read));
    assert!(!p.allows(&root(), "/r", Right::Write));
}

#[test]
fn users_and_groups_in_one_grant_are_either_or() {
    let p = policy(
        "[[grant]]\nusers = [\"bob\"]\ngroups = [\"qa-team-a\"]\npaths = [\"/shared/**\"]\n\
         rights = [\"read\"]\n",
    );
    assert!(p.allows(&alice(), "/shared/x", Right::Read));
    assert!(p.allows(&bob(), "/shared/x", Right::Read));
    assert!(!p.allows(&recorder(), "/shared/x", Right::Read));
}

#[test]
fn rights_add_up_across_grants() {
    let p = policy(
        "[[grant]]\nusers = [\"alice\"]\npaths = [\"/a/**\"]\nrights = [\"read\"]\n\n\
         [[grant]]\ngroups = [\"qa-team-a\"]\npaths = [\"/a/**\"]\nrights = [\"delete\"]\n",
    );
    assert!(p.allows(&alice(), "/a/x", Right::Read));
    assert!(p.allows(&alice(), "/a/x", Right::Delete));
    assert!(!p.allows(&alice(), "/a/x", Right::Write));
}

#[test]
fn rename_needs_the_right_on_both_ends() {
    let p = policy(
        "[[grant]]\nusers = [\"alice\"]\npaths = [\"/inbox/**\", \"/archive/**\"]\n\
         rights = [\"rename\"]\n",
    );
    assert!(p.allows(&alice(), "/inbox/c1.wav", Right::Rename));
    assert!(p.allows(&alice(), "/archive/c1.wav", Right::Rename));
    assert!(!p.allows(&alice(), "/team-a/c1.wav", Right::Rename));
}

#[test]
fn single_star_grant_is_one_level_only() {
    let p = policy("[[grant]]\nusers = [\"alice\"]\npaths = [\"/team-a/*\"]\nrights = [\"list\"]\n");
    assert!(p.allows(&alice(), "/team-a/c1.wav", Right::List));
    assert!(p.allows(&alice(), "/team-a/sub", Right::List));
    assert!(!p.allows(&alice(), "/team-a/sub/c1.wav", Right::List));
    // "/team-a" is reachable as a parent, not matched by "/team-a/*" itself.
    assert_eq!(p.explain(&alice(), "/team-a", Right::List).map(|g| g.via), Some(Via::Parent));
}

#[test]
fn root_only_grant() {
    let p = policy("[[grant]]\nusers = [\"alice\"]\npaths = [\"/\"]\nrights = [\"list\"]\n");
    assert!(p.allows(&alice(), "/", Right::List));
    assert!(!p.allows(&alice(), "/team-a", Right::List));
}

#[test]
fn explain_names_the_first_direct_grant() {
    let p = policy(
        "[[grant]]\nusers = [\"alice\"]\npaths = [\"/team-a/deep/**\"]\nrights = [\"read\"]\n\n\
         [[grant]]\ngroups = [\"qa-team-a\"]\npaths = [\"/team-a/**\"]\nrights = [\"list\"]\n\n\
         [[grant]]\nusers = [\"alice\"]\npaths = [\"/**\"]\nrights = [\"list\"]\n",
    );
    // Grant #1 only makes /team-a listable as a parent; #2 lists it directly.
    let r = p.explain(&alice(), "/team-a", Right::List);
    assert_eq!(r, Some(GrantRef { index: 2, line: 6, via: Via::Direct }));
    let r = p.explain(&alice(), "/team-b", Right::List);
    assert_eq!(r.map(|g| (g.index, g.line)), Some((3, 11)));
    let r = p.explain(&alice(), "/team-a/deep/x", Right::Read);
    assert_eq!(r.map(|g| g.index), Some(1));
    assert_eq!(p.explain(&alice(), "/team-a/x", Right::Read), None);
}

#[test]
fn grant_display_matches_the_explain_format() {
    let p = policy(ISSUE_EXAMPLE);
    let r = p.explain(&alice(), "/team-a/c1.wav", Right::Read).expect("allowed");
    let g = p.grant(r).expect("grant exists");
    assert_eq!(g.to_string(), "groups [qa-team-a], paths [/team-a/**], rights [list, read]");
    assert_eq!(p.grants()[0].to_string(), "users [recorder], paths [/**], rights [list, create, write]");
    assert!(p.grant(GrantRef { index: 0, line: 0, via: Via::Direct }).is_none());
    assert!(p.grant(GrantRef { index: 3, line: 0, via: Via::Direct }).is_none());
}

#[test]
fn allow_all_allows_everything_to_everyone() {
    let p = Policy::allow_all();
    assert!(p.is_allow_all());
    for who in [root(), alice(), Subject::new(65534, vec![])] {
        for path in ["/", "/team-a", "/team-b/x/y.wav"] {
            for right in Right::ALL {
                assert!(p.allows(&who, path, right));
            }
        }
    }
    assert_eq!(p.text_sha256(), <[u8; 32]>::from(Sha256::digest(ALLOW_ALL_TEXT)));
    assert_ne!(p.text_sha256(), policy("").text_sha256());
    // No policy file can pose as --allow-all in the audit log.
    assert!(Policy::from_toml(ALLOW_ALL_TEXT, Path::new("p.toml"), &Table).is_err());
}

#[test]
fn text_sha256_is_of_the_exact_bytes() {
    let a = policy(ISSUE_EXAMPLE);
    let b = policy(&format!("{ISSUE_EXAMPLE}\n"));
    assert_eq!(a.text_sha256(), <[u8; 32]>::from(Sha256::digest(ISSUE_EXAMPLE)));
    assert_ne!(a.text_sha256(), b.text_sha256());
    // SHA-256 of the empty string.
    assert_eq!(policy("").text_sha256()[..4], [0xe3, 0xb0, 0xc4, 0x42]);
}

#[test]
fn right_words_round_trip() {
    for r in Right::ALL {
        assert_eq!(r.to_string().parse::<Right>(), Ok(r));
    }
    assert_eq!("LIST".parse::<Right>(), Err(UnknownRight("LIST".to_owned())));
    assert_eq!(" read".parse::<Right>(), Err(UnknownRight(" read".to_owned())));
    assert!(
        UnknownRight("raed".to_owned()).to_string().starts_with("unknown right \"raed\" (expected one of list, read,")
    );
}

#[test]
fn policy_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Policy>();
}

#[test]
fn load_reads_files_and_reports_unreadable_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, ISSUE_EXAMPLE).expect("write");
    let p = Policy::load_with(&path, &Table).expect("valid");
    assert_eq!(p.grant_count(), 2);
    assert_eq!(p.source(), path);
    let missing = dir.path().join("missing.toml");
    let e = Policy::load_with(&missing, &Table).expect_err("missing file");
    assert_eq!(e.line(), None);
    assert!(matches!(e.problem(), Problem::Unreadable(_)));
    assert!(e.to_string().starts_with(&format!("{}: cannot read policy file: ", missing.display())));
}

#[test]
fn load_refuses_non_utf8_with_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, b"# ok\n# caf\xe9\n").expect("write");
    let e = Policy::load_with(&path, &Table).expect_err("not UTF-8");
    assert_eq!(e.line(), Some(2));
    assert_eq!(e.to_string(), format!("{}:2: policy file is not valid UTF-8", path.display()));
}

/// Arbitrary text must never panic the parser, whatever it returns.
#[test]
fn garbage_never_panics() {
    let samples = [
        "[[grant]]\nusers=[\"\"]\n",
        "[[grant]]\nusers=[\"recorder\"]\npaths=[\"\"]\nrights=[\"list\"]\n",
        "[[grant]]\nusers=[\"recorder\"]\npaths=[\"/\\u0000\"]\nrights=[\"list\"]\n",
        "[[grant]]\nusers=[1.5]\n",
        "[[grant]]\nusers=[true]\n",
        "[[grant]]\nusers=[[\"a\"]]\n",
        "[grant]\nusers=[\"recorder\"]\n",
        "grant = 1\n",
        "[[grant]]\n[grant.users]\n",
        "\u{feff}[[grant]]\n",
        "[[grant]]\nusers=[\"recorder\"]\npaths=[\"/[[[[\"]\nrights=[\"list\"]\n",
        "[[grant]]\nusers=[\"recorder\"]\npaths=[\"/{{}}\"]\nrights=[\"list\"]\n",
        "[[grant]]\nusers=[\"recorder\"]\npaths=[\"/[!]\"]\nrights=[\"list\"]\n",
        "[[grant]]\nusers=[\"recorder\"]\npaths=[\"/***/****\"]\nrights=[\"list\"]\n",
        "=",
        "\"",
        "[[",
    ];
    for text in samples {
        if let Err(e) = Policy::from_toml(text, Path::new("p.toml"), &Table) {
            let msg = e.to_string();
            assert!(msg.starts_with("p.toml:"), "{msg}");
            assert!(!msg.contains('\n'), "{msg:?}");
        }
    }
}

#[test]
fn normalize_path_is_what_allows_matches() {
    assert_eq!(normalize_path("//team-a//c1.wav/").as_deref(), Some("/team-a/c1.wav"));
    assert_eq!(normalize_path("/").as_deref(), Some("/"));
    assert_eq!(normalize_path("/a/../b"), None);
    assert_eq!(normalize_path("a"), None);
}

#[test]
fn policy_file_over_the_size_limit_is_refused_with_the_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("policy.toml");
    // One byte over the limit, all of it a valid TOML comment: before the cap
    // this parsed as an empty policy.
    let mut text = vec![b' '; MAX_POLICY_BYTES as usize + 1];
    text[0] = b'#';
    std::fs::write(&path, &text).expect("write");
    let e = Policy::load_with(&path, &Table).expect_err("too large");
    assert!(matches!(e.problem(), Problem::TooLarge { limit: MAX_POLICY_BYTES }), "{e}");
    assert_eq!(
        e.to_string(),
        format!(
            "{}: policy file is larger than the 4 MiB limit; split rules with groups and globs instead",
            path.display()
        )
    );
    // Exactly at the limit is still read.
    text.pop();
    std::fs::write(&path, &text).expect("write");
    assert_eq!(Policy::load_with(&path, &Table).expect("at the limit").grant_count(), 0);
}

#[test]
fn endless_policy_source_stops_at_the_limit() {
    // /dev/zero never ends: the reader must stop after the limit, not grow.
    let e = Policy::load_with(Path::new("/dev/zero"), &Table).expect_err("endless");
    assert!(matches!(e.problem(), Problem::TooLarge { .. }), "{e}");
}

/// A policy of `n` grants, one user each, on its own team's directory.
fn many_grants(n: usize) -> String {
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&format!(
            "[[grant]]\nusers = [{uid}]\ngroups = [\"{gid}\"]\npaths = [\"/team-{i}/**\", \"/shared/{i}-*.wav\"]\n\
             rights = [\"list\", \"read\"]\n\n",
            uid = 100_000 + i,
            gid = 200_000 + i
        ));
    }
    text
}

#[test]
fn loading_16000_grants_scans_the_text_a_bounded_number_of_times() {
    let n = 16_000;
    let text = many_grants(n);
    parse::BYTES_SCANNED.with(|c| c.set(0));
    let p = policy(&text);
    assert_eq!(p.grant_count(), n);
    // Line numbers used to be found by counting newlines from the start for
    // every grant: n * text / 2 bytes (about 13 GB here). Now one scan.
    let scanned = parse::BYTES_SCANNED.with(|c| c.get());
    assert!(scanned <= 2 * text.len(), "scanned {scanned} bytes of a {}-byte policy", text.len());
    // Grant numbers and lines are still right at both ends.
    assert_eq!(p.grants()[0].line(), 1);
    assert_eq!(p.grants()[n - 1].line(), 1 + 6 * (n - 1));
    let last = Subject::new(100_000 + n as u32 - 1, vec![1]);
    let r = p.explain(&last, &format!("/team-{}/c.wav", n - 1), Right::Read).expect("allowed");
    assert_eq!((r.index, r.line), (n, 1 + 6 * (n - 1)));
    // `/team-N/**` is compared as text; only `/shared/N-*.wav` needs globset
    // (its whole path and its last component): 2 matchers a grant, not 6.
    let matchers: usize = p.grants.iter().flat_map(|g| &g.globs).map(|g| g.globset_matchers()).sum();
    assert_eq!(matchers, 2 * n);
    // A check looks only at the grants naming the caller, not at all 16,000.
    assert_eq!(p.index.candidates(&last), vec![n - 1]);
    assert_eq!(p.index.candidates(&Subject::new(100_003, vec![200_003, 200_009, 5])), vec![3, 9]);
    let by_group = Subject::new(1, vec![200_000 + 7]);
    assert_eq!(p.explain(&by_group, "/shared/7-x.wav", Right::Read).map(|r| r.index), Some(8));
    assert!(!p.allows(&by_group, "/shared/8-x.wav", Right::Read));
    assert!(!p.allows(&last, "/team-0/c.wav", Right::Read));
}

/// The decision as it was made before the subject index: every grant in file
/// order. The indexed [`Policy::explain`] must agree with it.
fn explain_by_scanning(p: &Policy, who: &Subject, path: &str, right: Right) -> Option<GrantRef> {
    let vp = glob::VolPath::parse(path)?;
    let found = |via: Via, test: &dyn Fn(&Grant) -> bool| {
        p.grants.iter().enumerate().find(|(_, g)| g.applies_to(who) && test(g)).map(|(i, g)| GrantRef {
            index: i + 1,
            line: g.line,
            via,
        })
    };
    found(Via::Direct, &|g| g.rights.contains(right) && g.covers(&vp))
        .or_else(|| if right == Right::List { found(Via::Parent, &|g| g.leads_below(&vp)) } else { None })
}

#[test]
fn indexed_checks_agree_with_scanning_every_grant() {
    let text = format!(
        "{ISSUE_EXAMPLE}\n[[grant]]\nusers = [\"alice\", \"alice\"]\ngroups = [\"qa-team-b\", 100]\n\
         paths = [\"/team-b/*.wav\", \"/x/**\"]\nrights = [\"read\", \"delete\"]\n\n\
         [[grant]]\ngroups = [\"auditors\", \"qa-team-a\"]\npaths = [\"/team-a/**\"]\nrights = [\"blackout\"]\n"
    );
    let policies = [policy(&text), policy(ISSUE_EXAMPLE), Policy::allow_all(), policy("")];
    let subjects = [
        recorder(),
        alice(),
        bob(),
        root(),
        Subject::new(9, vec![3002, 3003]),
        Subject::new(1001, vec![]),
        Subject::new(7, vec![100, 100]),
    ];
    let paths = ["/", "/team-a", "/team-a/c.wav", "/team-b/c.wav", "/team-b", "/x/y/z", "/y", "/team-a/../b"];
    for p in &policies {
        for who in &subjects {
            for path in paths {
                for right in Right::ALL {
                    assert_eq!(
                        p.explain(who, path, right),
                        explain_by_scanning(p, who, path, right),
                        "{who:?} {path} {right}"
                    );
                }
            }
        }
    }
}
