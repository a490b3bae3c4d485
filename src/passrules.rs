//! The rules a new operator passphrase must meet (PCI DSS 8.3.6), as one pure function.
//!
//! [`check_new_passphrase`] applies them in a fixed order and names the first
//! rule that fails, so the operator is told one thing to fix at a time:
//!
//! 1. `encoding`: valid UTF-8, so that "characters" has a meaning and the
//!    same passphrase typed on another terminal gives the same bytes;
//! 2. `length`: at least [`MIN_CHARS`] characters, counted as Unicode scalar
//!    values, not bytes (ten `ä` are ten characters, not twenty);
//! 3. `letters-and-digits`: at least one letter and one digit (PCI DSS 8.3.6
//!    asks for both numeric and alphabetic characters);
//! 4. `operator-id`: does not contain the operator's own ID, in any case,
//!    when the ID has at least [`MIN_OPERATOR_ID_CHARS`] characters (a
//!    shorter one, such as `jo`, would refuse half the dictionary);
//! 5. `strength`: zxcvbn scores it at least [`MIN_ZXCVBN_SCORE`] of 4, with
//!    the operator ID and "callvault" as words an attacker would try first.
//!
//! Length and character classes are what PCI DSS requires; the zxcvbn score
//! is what makes them mean something ("Password1234" meets both and is among
//! the first guesses of any cracking list). zxcvbn looks at the first 100
//! characters only; longer passphrases are not refused for it.
//!
//! Not here: "not one of the last 4 passphrases" needs the stored history
//! and is checked by the header code.
//!
//! Wiping: the passphrase is borrowed and this module makes one copy of it, a
//! lower-case form for the operator-ID rule, allocated once at its final size
//! and wiped on drop. zxcvbn makes copies of its own (the first 100
//! characters, and the fragments it matched against its dictionaries) and
//! frees them unwiped; nothing outside the crate can reach them. The error
//! never contains the passphrase or any part of it.

use std::fmt;

use zeroize::Zeroizing;

/// Fewest characters (Unicode scalar values) a new passphrase may have.
pub const MIN_CHARS: usize = 12;
/// Lowest zxcvbn score (0 to 4) accepted. 3 is zxcvbn's "safely
/// unguessable: moderate protection from offline slow-hash scenario" (an
/// estimated 10^8 guesses or more), and a keyslot is a slow hash: Argon2id
/// at about a second a guess.
pub const MIN_ZXCVBN_SCORE: u8 = 3;
/// Shortest operator ID the `operator-id` rule looks for.
pub const MIN_OPERATOR_ID_CHARS: usize = 3;

/// A word every callvault passphrase is likely to be built around.
const PRODUCT_WORD: &str = "callvault";

/// Why a new passphrase was refused: the first rule it fails. Holds no part
/// of the passphrase (the operator ID is not a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PassphraseRule {
    /// Not valid UTF-8.
    Encoding,
    /// Fewer than `min` characters.
    Length { chars: usize, min: usize },
    /// No letter, or no digit (at least one of the two flags is false).
    LettersAndDigits { has_letter: bool, has_digit: bool },
    /// Contains the operator ID, compared in lower case.
    OperatorId { operator_id: String },
    /// zxcvbn's score is below `min`. `warning` and `suggestions` are
    /// zxcvbn's fixed advice texts, never quotes of the passphrase.
    Strength { score: u8, min: u8, warning: Option<String>, suggestions: Vec<String> },
}

impl PassphraseRule {
    /// The rule's name as it appears in the message, for audit records.
    pub fn name(&self) -> &'static str {
        match self {
            PassphraseRule::Encoding => "encoding",
            PassphraseRule::Length { .. } => "length",
            PassphraseRule::LettersAndDigits { .. } => "letters-and-digits",
            PassphraseRule::OperatorId { .. } => "operator-id",
            PassphraseRule::Strength { .. } => "strength",
        }
    }
}

impl fmt::Display for PassphraseRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "passphrase refused (rule: {}): ", self.name())?;
        match self {
            PassphraseRule::Encoding => {
                write!(f, "it is not valid UTF-8; type it in a UTF-8 terminal or save the passphrase file as UTF-8")
            }
            PassphraseRule::Length { chars, min } => {
                write!(f, "it has {chars} characters; at least {min} are required")
            }
            PassphraseRule::LettersAndDigits { has_letter, has_digit } => {
                let missing = match (has_letter, has_digit) {
                    (false, false) => "neither a letter nor a digit",
                    (false, true) => "no letter",
                    _ => "no digit",
                };
                write!(f, "it has {missing}; at least one letter and one digit are required")
            }
            PassphraseRule::OperatorId { operator_id } => {
                write!(f, "it contains the operator ID \"{operator_id}\" (in any case); choose one without it")
            }
            PassphraseRule::Strength { score, min, warning, suggestions } => {
                write!(f, "zxcvbn scores it {score} of 4; at least {min} is required.")?;
                // zxcvbn's texts are sentences ending in a period.
                for text in warning.iter().chain(suggestions) {
                    write!(f, " {text}")?;
                }
                if warning.is_none() && suggestions.is_empty() {
                    write!(f, " Add another uncommon word or two.")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for PassphraseRule {}

/// Checks a new passphrase for `operator_id` against the rules above, in
/// order; the error names the first rule it fails. Pure: no I/O, no state.
pub fn check_new_passphrase(pass: &[u8], operator_id: &str) -> Result<(), PassphraseRule> {
    let pass = std::str::from_utf8(pass).map_err(|_| PassphraseRule::Encoding)?;

    let chars = pass.chars().count();
    if chars < MIN_CHARS {
        return Err(PassphraseRule::Length { chars, min: MIN_CHARS });
    }

    // Unicode-aware: a letter is any alphabetic character (é, ß, Ж), a digit
    // any numeric one (0-9, and the digits of other scripts).
    let has_letter = pass.chars().any(char::is_alphabetic);
    let has_digit = pass.chars().any(char::is_numeric);
    if !has_letter || !has_digit {
        return Err(PassphraseRule::LettersAndDigits { has_letter, has_digit });
    }

    if operator_id.chars().count() >= MIN_OPERATOR_ID_CHARS {
        let pass_lower = lowercase_wiped(pass);
        let id_lower = lowercase_wiped(operator_id);
        if pass_lower.contains(id_lower.as_str()) {
            return Err(PassphraseRule::OperatorId { operator_id: operator_id.to_owned() });
        }
    }

    let mut user_inputs = vec![PRODUCT_WORD];
    if !operator_id.is_empty() {
        user_inputs.push(operator_id);
    }
    let entropy = zxcvbn::zxcvbn(pass, &user_inputs);
    let score = u8::from(entropy.score());
    if score < MIN_ZXCVBN_SCORE {
        let (warning, suggestions) = match entropy.feedback() {
            Some(fb) => (fb.warning().map(|w| w.to_string()), fb.suggestions().iter().map(|s| s.to_string()).collect()),
            None => (None, Vec::new()),
        };
        return Err(PassphraseRule::Strength { score, min: MIN_ZXCVBN_SCORE, warning, suggestions });
    }
    Ok(())
}

/// `s` in lower case, character by character, in a buffer allocated once at
/// its final size (measured first) so that no growth leaves an unwiped copy
/// behind; wiped on drop. `str::to_lowercase` may grow its buffer (some
/// characters lower-case to longer sequences: `İ` to `i̇`).
fn lowercase_wiped(s: &str) -> Zeroizing<String> {
    let len = s.chars().flat_map(char::to_lowercase).map(char::len_utf8).sum();
    let mut out = Zeroizing::new(String::with_capacity(len));
    out.extend(s.chars().flat_map(char::to_lowercase));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(pass: &[u8], id: &str) -> PassphraseRule {
        check_new_passphrase(pass, id).expect_err("should be refused")
    }

    #[test]
    fn a_long_passphrase_of_words_and_a_number_is_accepted() {
        assert_eq!(check_new_passphrase(b"correct horse battery staple 42", "alice"), Ok(()));
        assert_eq!(check_new_passphrase("Vögel zwitschern 7 Lieder am Fluß".as_bytes(), "bob"), Ok(()));
    }

    #[test]
    fn password1234_meets_length_and_classes_but_fails_strength() {
        let e = refused(b"Password1234", "alice");
        let PassphraseRule::Strength { score, min, .. } = &e else { panic!("{e}") };
        assert!(*score < MIN_ZXCVBN_SCORE, "{e}");
        assert_eq!(*min, MIN_ZXCVBN_SCORE);
        let msg = e.to_string();
        assert!(msg.starts_with("passphrase refused (rule: strength): zxcvbn scores it "), "{msg}");
        assert!(msg.contains(&format!("at least {MIN_ZXCVBN_SCORE} is required. ")), "{msg}");
        // zxcvbn's advice is in the message, and the passphrase is not.
        assert!(msg.contains("commonly used password"), "{msg}");
        assert!(!msg.to_lowercase().contains("password1234"), "{msg}");
        assert!(!msg.contains('\n'), "one line: {msg}");
    }

    #[test]
    fn ten_characters_are_refused_by_length_with_the_count() {
        let e = refused(b"Tr0ub4dor!", "alice");
        assert_eq!(e, PassphraseRule::Length { chars: 10, min: 12 });
        assert_eq!(e.to_string(), "passphrase refused (rule: length): it has 10 characters; at least 12 are required");
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        // 11 characters in 21 bytes: too short, though over 12 bytes.
        let e = refused("äöüäöüäöüä1".as_bytes(), "alice");
        assert_eq!(e, PassphraseRule::Length { chars: 11, min: 12 });
        // 12 characters pass the length rule (and fail a later one).
        assert_eq!(refused("äöüäöüäöüäöü".as_bytes(), "alice").name(), "letters-and-digits");
    }

    #[test]
    fn operator_id_inside_the_passphrase_is_refused_in_any_case() {
        let e = refused(b"myAliceIsGreat2024!x", "alice");
        assert_eq!(e, PassphraseRule::OperatorId { operator_id: "alice".into() });
        assert!(e.to_string().starts_with("passphrase refused (rule: operator-id): "), "{e}");
        assert_eq!(refused(b"myaliceisgreat2024!x", "ALICE").name(), "operator-id");
        // A two-character ID is not looked for; the passphrase goes on to
        // the strength rule, which a long random-looking one passes.
        assert_eq!(check_new_passphrase(b"al gorithm zebra 93 quilt", "al"), Ok(()));
    }

    #[test]
    fn the_operator_id_and_callvault_are_words_zxcvbn_tries_first() {
        // The ID reversed or in l33t is not a substring, so the operator-id
        // rule lets it through; zxcvbn, told the ID, still sees it.
        for pass in ["yenwalert2024!", "7r3l4wn3y#1987"] {
            assert_eq!(refused(pass.as_bytes(), "trelawney").name(), "strength", "{pass}");
            assert_eq!(check_new_passphrase(pass.as_bytes(), "bob"), Ok(()), "{pass}");
        }
        // "callvault" is in no dictionary: only as a user input does zxcvbn
        // find this passphrase weak.
        assert!(u8::from(zxcvbn::zxcvbn("Callvault-2024", &[]).score()) >= MIN_ZXCVBN_SCORE);
        assert_eq!(refused(b"Callvault-2024", "bob").name(), "strength");
    }

    #[test]
    fn no_digit_or_no_letter_is_refused_naming_what_is_missing() {
        let e = refused(b"correct horse battery staple", "alice");
        assert_eq!(e, PassphraseRule::LettersAndDigits { has_letter: true, has_digit: false });
        assert!(e.to_string().contains("it has no digit;"), "{e}");
        let e = refused(b"1234 5678 9012 3456", "alice");
        assert_eq!(e, PassphraseRule::LettersAndDigits { has_letter: false, has_digit: true });
        assert!(e.to_string().contains("it has no letter;"), "{e}");
        let e = refused(b"!!!!  ????  ....", "alice");
        assert!(e.to_string().contains("neither a letter nor a digit"), "{e}");
    }

    #[test]
    fn non_utf8_is_refused_first() {
        // Also too short and without a digit: encoding is checked first.
        let e = refused(b"\xff\xfe abc", "alice");
        assert_eq!(e, PassphraseRule::Encoding);
        assert!(e.to_string().starts_with("passphrase refused (rule: encoding): "), "{e}");
        assert_eq!(refused(b"correct horse battery staple 42 \xc3", "alice"), PassphraseRule::Encoding);
    }

    #[test]
    fn rules_are_checked_in_order() {
        // Short, and containing the ID: length is reported.
        assert_eq!(refused(b"alice1", "alice").name(), "length");
        // Long, containing the ID, no digit: letters-and-digits is reported.
        assert_eq!(refused(b"alice in wonderland", "alice").name(), "letters-and-digits");
    }

    #[test]
    fn lowercase_copy_is_allocated_at_its_final_size() {
        for s in ["ABC", "İstanbul", "ΣΑΣ", "straße", ""] {
            let l = lowercase_wiped(s);
            assert_eq!(*l, s.chars().flat_map(char::to_lowercase).collect::<String>());
            assert_eq!(l.capacity(), l.len(), "{s}");
        }
    }
}
