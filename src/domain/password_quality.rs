//! Password quality, as NIST SP 800-63B-4 asks of a verifier: a new password
//! must not be a common or breached-list password, nor one derived from the
//! account's own address. zxcvbn judges it, with its own compiled-in
//! dictionaries and the address's words as the user's.

use zxcvbn::Match;
use zxcvbn::feedback::Suggestion;
use zxcvbn::matching::patterns::MatchPattern;

use crate::domain::password::Password;

/// zxcvbn examines only a password's first this many characters. Its cost
/// grows with the square of the length times the l33t substitutions the
/// text allows: 32 hostile characters take about 65 ms of one core, 64 take
/// 310 ms, and the 100 zxcvbn itself stops at a second
/// (`cargo bench --bench password_quality`, bench/README.md). It is safe:
/// guessing a whole password is at least as hard as guessing its start, so
/// a password whose first 32 characters are strong is strong.
pub const SCORED_CHARS: usize = 32;

/// The lowest zxcvbn score (0 to 4) a new password may have; 0 turns the
/// check off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MinScore(u8);

impl MinScore {
    /// The highest score zxcvbn gives.
    pub const MAX: u8 = 4;
    /// No check at all.
    pub const OFF: Self = Self(0);

    /// A minimum score from 0 to 4.
    pub fn new(score: u8) -> Result<Self, String> {
        if score > Self::MAX {
            return Err(format!(
                "the minimum password score is 0 to {}, got {score}",
                Self::MAX
            ));
        }
        Ok(Self(score))
    }

    /// The score as a number.
    pub fn get(self) -> u8 {
        self.0
    }

    /// Whether every password passes, so nothing need be scored.
    pub fn is_off(self) -> bool {
        self.0 == 0
    }
}

/// Why a password was refused, in zxcvbn's words, for its user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Weakness {
    /// zxcvbn's score of the password's first [`SCORED_CHARS`] characters.
    pub score: u8,
    pub min_score: u8,
    /// What makes it easy to guess, when zxcvbn can name it.
    pub warning: Option<String>,
    /// How to choose a better one; never empty.
    pub suggestions: Vec<String>,
}

/// Judges a new `password` for the account at `email` (the address as
/// stored). Only its first [`SCORED_CHARS`] characters are examined. The
/// answer depends on nothing but these two, so it says nothing about other
/// accounts.
pub fn judge(password: &Password, email: &str, min: MinScore) -> Result<(), Weakness> {
    if min.is_off() {
        return Ok(());
    }
    let scored: String = password.text().chars().take(SCORED_CHARS).collect();
    let words = address_words(email);
    let inputs: Vec<&str> = words.iter().map(String::as_str).collect();
    let entropy = zxcvbn::zxcvbn(&scored, &inputs);
    let score = u8::from(entropy.score());
    if score >= min.get() {
        return Ok(());
    }
    let feedback = entropy.feedback();
    // zxcvbn names no warning for its user inputs; say what it found.
    let warning = feedback
        .and_then(|f| f.warning())
        .map(|w| w.to_string())
        .or_else(|| uses_the_address(entropy.sequence(), &words).then(|| FROM_THE_ADDRESS.into()));
    let mut suggestions: Vec<String> = feedback
        .map(|f| f.suggestions().iter().map(ToString::to_string).collect())
        .unwrap_or_default();
    // zxcvbn gives feedback only under its score 3; a stricter minimum
    // still owes the user a way forward.
    if suggestions.is_empty() {
        suggestions.push(Suggestion::AddAnotherWordOrTwo.to_string());
    }
    Err(Weakness {
        score,
        min_score: min.get(),
        warning,
        suggestions,
    })
}

/// The warning for a weak password built from the account's address.
const FROM_THE_ADDRESS: &str = "Passwords built from your e-mail address are easy to guess.";

/// What a password derived from the address would be made of: the whole
/// address, its local part (also without its punctuation) and domain, and
/// each of their words of three letters or more (`ada.lovelace@example.com`
/// gives `adalovelace`, `ada`, `lovelace`, `example`). Shorter words would
/// only make strong passwords look weak.
fn address_words(email: &str) -> Vec<String> {
    let address = email.to_lowercase();
    let mut words = vec![address.clone()];
    if let Some((local, domain)) = address.rsplit_once('@') {
        let joined: String = local.chars().filter(char::is_ascii_alphanumeric).collect();
        words.extend([local.to_owned(), joined, domain.to_owned()]);
        words.extend(
            address
                .split(|c: char| !c.is_ascii_alphanumeric())
                .map(str::to_owned),
        );
    }
    words.retain(|word| word.len() >= 3);
    words.sort();
    words.dedup();
    words
}

/// Whether zxcvbn's reading of the password has one of the address's words
/// in it (as typed, reversed or in l33t).
fn uses_the_address(sequence: &[Match], words: &[String]) -> bool {
    sequence.iter().any(|m| match &m.pattern {
        MatchPattern::Dictionary(word) => words.contains(&word.matched_word),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn password(raw: &str) -> Password {
        Password::parse_new(raw.into()).unwrap()
    }

    fn judged(raw: &str, address: &str) -> Result<(), Weakness> {
        judge(&password(raw), address, MinScore::new(3).unwrap())
    }

    #[test]
    fn common_passwords_are_refused_with_zxcvbns_words() {
        let weak = judged("password1", "ada@example.com").unwrap_err();
        assert!(weak.score < 3);
        assert_eq!(weak.min_score, 3);
        assert!(weak.warning.unwrap().contains("common password"));
        assert!(!weak.suggestions.is_empty());
    }

    #[test]
    fn keyboard_walks_are_refused() {
        let weak = judged("zxcvbnm,./", "ada@example.com").unwrap_err();
        assert!(
            weak.warning.as_deref().unwrap().contains("keys"),
            "{weak:?}"
        );
    }

    #[test]
    fn passwords_made_from_the_address_are_refused() {
        // Strong for anyone else; derived from this address.
        for derived in [
            "zanzibar.quokka2024",
            "zanzibarquokka2024",
            "Zanzibar.Quokka!",
        ] {
            assert_eq!(judged(derived, "ada@example.com"), Ok(()), "{derived}");
            let weak = judged(derived, "zanzibar.quokka@example.com").unwrap_err();
            assert_eq!(weak.warning.as_deref(), Some(FROM_THE_ADDRESS), "{derived}");
        }
        assert!(judged("quokkazanzibar.net", "ada@quokkazanzibar.net").is_err());
        // In l33t too.
        let weak = judged("z4nz1b4r.quokk4", "zanzibar.quokka@example.com").unwrap_err();
        assert_eq!(weak.warning.as_deref(), Some(FROM_THE_ADDRESS));
    }

    #[test]
    fn address_words_skip_short_ones() {
        let words = address_words("ada.lo+x@mail.example.co");
        for word in [
            "ada.lo+x@mail.example.co",
            "ada.lo+x",
            "adalox",
            "mail.example.co",
        ] {
            assert!(words.contains(&word.to_owned()), "{words:?}");
        }
        for word in ["ada", "mail", "example"] {
            assert!(words.contains(&word.to_owned()), "{words:?}");
        }
        for word in ["lo", "x", "co"] {
            assert!(!words.contains(&word.to_owned()), "{words:?}");
        }
    }

    #[test]
    fn strong_passwords_pass() {
        for strong in [
            "correct horse battery staple",
            "Tr0ub4dor&3 is not my password",
            "kestrel-velvet-ombudsman-quinoa",
        ] {
            assert_eq!(judged(strong, "ada@example.com"), Ok(()), "{strong}");
        }
    }

    #[test]
    fn only_the_first_scored_chars_count() {
        let strong = "kestrel-velvet-ombudsman-quinoa";
        let long_strong = format!("{strong}{}", "a".repeat(1024 - strong.len()));
        assert_eq!(judged(&long_strong, "ada@example.com"), Ok(()));
        // Weak where it is examined: refused, whatever follows.
        let long_weak = format!("{}{strong}", "a".repeat(SCORED_CHARS));
        assert!(judged(&long_weak, "ada@example.com").is_err());
    }

    #[test]
    fn every_score_up_to_the_minimum_is_judged() {
        let strict = MinScore::new(4).unwrap();
        // Score 3: zxcvbn gives no feedback, yet the user hears something.
        let weak = judge(&password("correct horse"), "a@example.com", strict).unwrap_err();
        assert_eq!((weak.score, weak.min_score, weak.warning), (3, 4, None));
        assert!(!weak.suggestions.is_empty());
        let off = judge(&password("password"), "a@example.com", MinScore::OFF);
        assert_eq!(off, Ok(()));
    }

    #[test]
    fn the_minimum_is_zero_to_four() {
        assert!(MinScore::new(4).is_ok());
        assert!(MinScore::new(5).is_err());
        assert!(MinScore::new(0).unwrap().is_off());
    }
}
