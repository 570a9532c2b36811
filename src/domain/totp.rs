//! TOTP as authenticator apps speak it (RFC 6238): SHA-1, 6 digits, 30 s
//! steps, one step of skew either way. totp-rs computes the codes.

use totp_rs::{Algorithm, TOTP};

/// Seconds per time step.
pub const STEP: u64 = 30;
/// Digits per code.
pub const DIGITS: usize = 6;
/// Bytes of secret: 160 bits, the HMAC-SHA-1 block RFC 4226 recommends.
pub const SECRET_BYTES: usize = 20;

/// The time step a unix time falls in.
pub fn step_at(unix: i64) -> i64 {
    unix.div_euclid(STEP as i64)
}

/// The step among `now`'s and its two neighbours whose code `code` is,
/// newest first; `None` if none. Compared in constant time.
pub fn matching_step(secret: &[u8], code: &str, unix: i64) -> Option<i64> {
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let totp = generator(secret, None, String::new());
    let now = step_at(unix);
    [now + 1, now, now - 1]
        .into_iter()
        .filter(|&step| step >= 0)
        .find(|&step| totp.check(code, step as u64 * STEP))
}

/// The `otpauth://` URI an authenticator app scans.
pub fn uri(secret: &[u8], issuer: &str, account: &str) -> String {
    // ':' separates issuer and account in the label; neither may hold one.
    let clean = |s: &str| s.replace(':', "");
    generator(secret, Some(clean(issuer)), clean(account)).get_url()
}

/// The secret as the app's manual entry wants it: base32, unpadded.
pub fn base32(secret: &[u8]) -> String {
    generator(secret, None, String::new()).get_secret_base32()
}

/// The code for `unix`, as an app shows it; for tests and examples.
pub fn code_at(secret: &[u8], unix: i64) -> String {
    generator(secret, None, String::new()).generate(unix.max(0) as u64)
}

fn generator(secret: &[u8], issuer: Option<String>, account: String) -> TOTP {
    // Unchecked: the secret is ours, and long enough; labels are cleaned.
    TOTP::new_unchecked(
        Algorithm::SHA1,
        DIGITS,
        0,
        STEP,
        secret.to_vec(),
        issuer,
        account,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B: the SHA-1 seed and its 8-digit codes.
    #[test]
    fn rfc_6238_test_vectors() {
        let seed = b"12345678901234567890";
        let vectors = [
            (59, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
            (20000000000, "65353130"),
        ];
        for (time, expected) in vectors {
            let totp = TOTP::new_unchecked(
                Algorithm::SHA1,
                8,
                0,
                STEP,
                seed.to_vec(),
                None,
                String::new(),
            );
            assert_eq!(totp.generate(time), expected, "at {time}");
            // Our 6 digits are the last 6 of the same truncation.
            assert_eq!(code_at(seed, time as i64), expected[2..], "at {time}");
        }
    }

    #[test]
    fn one_step_of_skew_either_way_and_no_more() {
        let secret = [7u8; SECRET_BYTES];
        let now = 1_800_000_015;
        let step = step_at(now);
        for (offset, accepted) in [(-2, false), (-1, true), (0, true), (1, true), (2, false)] {
            let code = code_at(&secret, (step + offset) * STEP as i64);
            let found = matching_step(&secret, &code, now);
            assert_eq!(found.is_some(), accepted, "offset {offset}");
            if accepted {
                assert_eq!(found, Some(step + offset));
            }
        }
    }

    #[test]
    fn step_edges_are_exact() {
        let secret = [9u8; SECRET_BYTES];
        // 29.999… s into step n is still step n; its next step's code is
        // accepted as the +1 skew, and the one after is not.
        let last_second = 30 * 1000 + 29;
        let code = code_at(&secret, 30 * 1002);
        assert_eq!(matching_step(&secret, &code, last_second), None);
        let code = code_at(&secret, 30 * 1001);
        assert_eq!(matching_step(&secret, &code, last_second), Some(1001));
        assert_eq!(matching_step(&secret, &code, last_second + 1), Some(1001));
    }

    #[test]
    fn malformed_codes_never_match() {
        let secret = [1u8; SECRET_BYTES];
        let good = code_at(&secret, 1_000_000);
        for bad in [
            "",
            "12345",
            "1234567",
            "12 456",
            "abcdef",
            &format!(" {good}"),
        ] {
            assert_eq!(matching_step(&secret, bad, 1_000_000), None, "{bad:?}");
        }
    }

    #[test]
    fn the_uri_names_issuer_and_account() {
        let uri = uri(&[1u8; SECRET_BYTES], "Gate:house", "ada@example.com");
        assert!(
            uri.starts_with("otpauth://totp/Gatehouse:ada%40example.com?"),
            "{uri}"
        );
        assert!(uri.contains("issuer=Gatehouse"), "{uri}");
        assert!(uri.contains(&format!("secret={}", base32(&[1u8; SECRET_BYTES]))));
    }
}
