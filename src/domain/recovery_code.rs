//! Recovery codes: ten single-use codes, each 60 random bits written as
//! `xxxx-xxxx-xxxx` in Crockford's base32 (no I, L, O or U), so they are
//! easy to read aloud and type. Only their SHA-256 is stored.

use std::fmt;

use uuid::Uuid;

use crate::domain::token::TokenHash;

/// Codes issued at a time.
pub const COUNT: usize = 10;
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
const GROUPS: usize = 3;
const GROUP_LEN: usize = 4;
/// Characters of a code without its hyphens: 12 × 5 = 60 bits.
const LEN: usize = GROUPS * GROUP_LEN;

/// A recovery code as shown to its owner, once. It never prints.
pub struct RecoveryCode(String);

impl RecoveryCode {
    /// `COUNT` new codes from the operating system's CSPRNG.
    pub fn generate_set() -> Result<Vec<Self>, getrandom::Error> {
        (0..COUNT).map(|_| Self::generate()).collect()
    }

    fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; LEN];
        getrandom::fill(&mut bytes)?;
        // 256 is a multiple of 32: taking 5 bits of each byte is unbiased.
        let groups: Vec<String> = bytes
            .chunks(GROUP_LEN)
            .map(|g| {
                g.iter()
                    .map(|b| ALPHABET[(b & 31) as usize] as char)
                    .collect()
            })
            .collect();
        Ok(Self(groups.join("-")))
    }

    /// Reads what someone typed: case, spaces and hyphens do not matter,
    /// and Crockford's look-alikes (I and L for 1, O for 0) are forgiven.
    pub fn parse(typed: &str) -> Option<Self> {
        let mut chars = String::with_capacity(LEN);
        for c in typed.chars() {
            let c = match c.to_ascii_lowercase() {
                ' ' | '-' => continue,
                'i' | 'l' => '1',
                'o' => '0',
                c if c.is_ascii() && ALPHABET.contains(&(c as u8)) => c,
                _ => return None,
            };
            if chars.len() == LEN {
                return None;
            }
            chars.push(c);
        }
        (chars.len() == LEN).then(|| {
            let groups: Vec<&str> = (0..GROUPS)
                .map(|g| &chars[g * GROUP_LEN..(g + 1) * GROUP_LEN])
                .collect();
            Self(groups.join("-"))
        })
    }

    /// The code, to show its owner once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The digest stored and looked up by: of the code with its account's
    /// id, so that a leaked table cannot be searched for every account's
    /// codes at once.
    pub fn hash(&self, owner: Uuid) -> TokenHash {
        TokenHash::of(&format!("{owner}:{}", self.0))
    }
}

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCode(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_is_ten_distinct_well_formed_codes() {
        let set = RecoveryCode::generate_set().unwrap();
        assert_eq!(set.len(), COUNT);
        let mut seen: Vec<&str> = set.iter().map(|c| c.expose()).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), COUNT);
        for code in &set {
            assert_eq!(code.expose().len(), 14);
            let parsed = RecoveryCode::parse(code.expose()).unwrap();
            let owner = Uuid::nil();
            assert_eq!(parsed.hash(owner).as_str(), code.hash(owner).as_str());
            assert_ne!(code.hash(owner).as_str(), code.hash(Uuid::max()).as_str());
        }
    }

    #[test]
    fn typing_is_forgiven_and_nothing_else() {
        let code = RecoveryCode::parse("abcd-efgh-jk01").unwrap();
        for typed in [
            "ABCD EFGH JK01",
            "abcdefghjk01",
            " abcd-efgh-jkoi ",
            "ABCD-EFGH-JKOL",
        ] {
            let again = RecoveryCode::parse(typed).unwrap();
            let owner = Uuid::nil();
            assert_eq!(
                again.hash(owner).as_str(),
                code.hash(owner).as_str(),
                "{typed:?}"
            );
        }
        for bad in [
            "",
            "abcd-efgh-jk0",
            "abcd-efgh-jk011",
            "abcd-efgh-jk0u",
            "äbcd-efgh-jk01",
        ] {
            assert!(RecoveryCode::parse(bad).is_none(), "{bad:?}");
        }
        assert!(format!("{code:?}").contains("redacted"));
    }
}
