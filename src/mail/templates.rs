//! The messages Gatehouse sends, each as plain text and HTML. Links come
//! from the operator's URL templates, with `{token}` replaced.

use std::time::Duration;

use crate::domain::token::EmailToken;

/// A rendered message, ready for the outbox.
#[derive(Clone, Debug)]
pub struct Letter {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// What happened to an account's second factor or its other ways in.
#[derive(Clone, Copy, Debug)]
pub enum SecondFactorNotice {
    Enabled,
    CodesReplaced,
    RecoveryCodeUsed { remaining: u64 },
    Removed,
    ResetBySupport,
    PasskeyAdded,
    PasskeyRemoved,
    ProviderLinked,
    ProviderUnlinked,
}

/// The product's name and where its links point.
#[derive(Clone, Debug)]
pub struct Letters {
    pub product: String,
    /// `GATEHOUSE_RESET_URL`, with `{token}` in it.
    pub reset_url: String,
    /// `GATEHOUSE_VERIFY_URL`, with `{token}` in it.
    pub verify_url: String,
}

/// What every link template must hold.
pub const TOKEN_PLACEHOLDER: &str = "{token}";

impl Letters {
    /// The password-reset link, valid for `ttl`.
    pub fn reset(&self, to: &str, token: &EmailToken, ttl: Duration) -> Letter {
        let link = self.reset_url.replace(TOKEN_PLACEHOLDER, token.expose());
        let product = &self.product;
        let lifetime = spoken(ttl);
        self.letter(
            to,
            format!("Reset your {product} password"),
            &[
                format!("Someone asked to reset the password of your {product} account."),
                format!("To choose a new password, open this link within {lifetime}:"),
            ],
            &link,
            "Choose a new password",
            "If it was not you, ignore this message: your password stays as it is. \
             Using the link signs out every session of the account.",
        )
    }

    /// The link that proves `to` reaches the account's owner.
    pub fn verify(&self, to: &str, token: &EmailToken, ttl: Duration) -> Letter {
        let link = self.verify_url.replace(TOKEN_PLACEHOLDER, token.expose());
        let product = &self.product;
        let lifetime = spoken(ttl);
        self.letter(
            to,
            format!("Verify your {product} e-mail address"),
            &[
                format!("Please confirm that {to} is the address of your {product} account."),
                format!("Open this link within {lifetime}:"),
            ],
            &link,
            "Verify this address",
            "If you did not ask for this, ignore this message.",
        )
    }

    /// Tells the current address that a move to `new` was asked for, and
    /// how to stop it.
    pub fn email_change_requested(&self, current: &str, new: &str) -> Letter {
        let product = &self.product;
        let text = format!(
            "Someone signed in to your {product} account asked to change its e-mail address \
             from {current} to {new}. It changes only when the link sent to {new} is used.\n\n\
             If it was not you, reset your password now: that cancels the change and signs \
             out every session.\n"
        );
        let html = format!(
            "<p>Someone signed in to your {} account asked to change its e-mail address from \
             {} to {}. It changes only when the link sent to the new address is used.</p>\
             <p>If it was not you, reset your password now: that cancels the change and signs \
             out every session.</p>",
            escape(product),
            escape(current),
            escape(new)
        );
        Letter {
            to: current.to_owned(),
            subject: format!("A change of your {product} e-mail address was requested"),
            text,
            html,
        }
    }

    /// Tells the old address that the account moved to `new`.
    pub fn email_changed(&self, old: &str, new: &str) -> Letter {
        let product = &self.product;
        let text = format!(
            "The e-mail address of your {product} account was changed from {old} to {new}.\n\n\
             If it was not you, someone who knew your password has taken the account: a \
             password reset now goes to the new address, so contact {product} support at \
             once to have the account disabled and given back.\n"
        );
        let html = format!(
            "<p>The e-mail address of your {} account was changed from {} to {}.</p>\
             <p>If it was not you, someone who knew your password has taken the account: a \
             password reset now goes to the new address, so contact {} support at once to \
             have the account disabled and given back.</p>",
            escape(product),
            escape(old),
            escape(new),
            escape(product)
        );
        Letter {
            to: old.to_owned(),
            subject: format!("Your {product} e-mail address was changed"),
            text,
            html,
        }
    }

    /// A notice about the account's second factor, to its own address.
    pub fn second_factor_notice(&self, to: &str, notice: SecondFactorNotice) -> Letter {
        let product = &self.product;
        let (subject, what) = match notice {
            SecondFactorNotice::Enabled => (
                format!("Two-step sign-in was turned on for {product}"),
                format!(
                    "Two-step sign-in was turned on for your {product} account: signing in \
                     now needs a code from an authenticator app as well as the password."
                ),
            ),
            SecondFactorNotice::CodesReplaced => (
                format!("New recovery codes for {product}"),
                format!(
                    "New recovery codes were made for your {product} account; the old ones \
                     no longer work."
                ),
            ),
            SecondFactorNotice::RecoveryCodeUsed { remaining } => (
                format!("A recovery code was used to sign in to {product}"),
                format!(
                    "Someone signed in to your {product} account with one of its recovery \
                     codes. {remaining} unused codes remain."
                ),
            ),
            SecondFactorNotice::Removed => (
                format!("Two-step sign-in was turned off for {product}"),
                format!("Two-step sign-in was turned off for your {product} account."),
            ),
            SecondFactorNotice::PasskeyAdded => (
                format!("A passkey was added to your {product} account"),
                format!(
                    "A passkey was added to your {product} account: it can now sign in \
                     without a password. Your account page lists its passkeys."
                ),
            ),
            SecondFactorNotice::PasskeyRemoved => (
                format!("A passkey was removed from your {product} account"),
                format!("A passkey was removed from your {product} account."),
            ),
            SecondFactorNotice::ProviderLinked => (
                format!("A sign-in provider was linked to your {product} account"),
                format!(
                    "An account at another provider was linked to your {product} account: \
                     it can now sign in to it. Your account page lists its providers."
                ),
            ),
            SecondFactorNotice::ProviderUnlinked => (
                format!("A sign-in provider was unlinked from your {product} account"),
                format!("An account at another provider was unlinked from your {product} account."),
            ),
            SecondFactorNotice::ResetBySupport => (
                format!("{product} support turned off your two-step sign-in"),
                format!(
                    "{product} support turned off two-step sign-in for your account, and \
                     signed out every session of it."
                ),
            ),
        };
        let advice = match notice {
            SecondFactorNotice::Enabled
            | SecondFactorNotice::CodesReplaced
            | SecondFactorNotice::PasskeyAdded => format!(
                "If it was not you, someone has your password and a signed-in session: \
                 reset your password at once, and contact {product} support to have the \
                 second factor reset."
            ),
            SecondFactorNotice::ProviderLinked => format!(
                "If it was not you, reset your password at once: a reset unlinks every \
                 provider and signs out every session. Then contact {product} support."
            ),
            _ => format!(
                "If it was not you, reset your password at once, then turn two-step \
                 sign-in on again, and contact {product} support."
            ),
        };
        Letter {
            to: to.to_owned(),
            subject,
            text: format!("{what}\n\n{advice}\n"),
            html: format!("<p>{}</p><p>{}</p>", escape(&what), escape(&advice)),
        }
    }

    /// A sign-in code, valid for `ttl`. It carries no link: the code
    /// counts only in the browser that asked for it.
    pub fn sign_in_code(&self, to: &str, code: &str, ttl: Duration) -> Letter {
        let product = &self.product;
        let lifetime = spoken(ttl);
        let what = format!("Your {product} sign-in code is {code}.");
        let when = format!(
            "Type it where you asked for it, within {lifetime}. It works once, and only there."
        );
        let advice = "If you did not ask for it, ignore this message: no one can use the \
                      code without the page that asked for it.";
        Letter {
            to: to.to_owned(),
            subject: format!("Your {product} sign-in code"),
            text: format!("{what}\n\n{when}\n\n{advice}\n"),
            html: format!(
                "<p>{}</p><p>{}</p><p>{}</p>",
                escape(&what),
                escape(&when),
                escape(advice)
            ),
        }
    }

    fn letter(
        &self,
        to: &str,
        subject: String,
        lines: &[String],
        link: &str,
        action: &str,
        footer: &str,
    ) -> Letter {
        let mut text = lines.join("\n");
        text.push_str(&format!("\n\n{link}\n\n{footer}\n"));
        let paragraphs: String = lines
            .iter()
            .map(|line| format!("<p>{}</p>", escape(line)))
            .collect();
        let html = format!(
            "<!doctype html><html><body>{paragraphs}<p><a href=\"{href}\">{action}</a></p>\
             <p>{href}</p><p>{footer}</p></body></html>",
            href = escape(link),
            action = escape(action),
            footer = escape(footer),
        );
        Letter {
            to: to.to_owned(),
            subject,
            text,
            html,
        }
    }
}

/// Escapes text for HTML content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A lifetime as a person writes it: "30 minutes", "1 day", "1 hour and
/// 30 minutes". Past a minute, seconds are left out (rounded down, so the
/// link never works for less than it says).
fn spoken(ttl: Duration) -> String {
    let total = ttl.as_secs();
    let units: [(u64, &str); 4] = [
        (86_400, "day"),
        (3_600, "hour"),
        (60, "minute"),
        (1, "second"),
    ];
    let mut left = if total >= 60 {
        total - total % 60
    } else {
        total
    };
    let parts: Vec<String> = units
        .iter()
        .filter_map(|&(size, name)| {
            let count = left / size;
            left %= size;
            (count > 0).then(|| format!("{count} {name}{}", if count == 1 { "" } else { "s" }))
        })
        .collect();
    match parts.as_slice() {
        [] => "a moment".into(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::token::Purpose;

    fn letters() -> Letters {
        Letters {
            product: "Acme <ID>".into(),
            reset_url: "https://app.example.com/reset?token={token}&x=1".into(),
            verify_url: "https://app.example.com/verify/{token}".into(),
        }
    }

    #[test]
    fn the_link_carries_the_token_in_both_bodies() {
        let token = EmailToken::generate(Purpose::Reset).unwrap();
        let letter = letters().reset("ada@example.com", &token, Duration::from_secs(1800));
        let link = format!("https://app.example.com/reset?token={}&x=1", token.expose());
        assert!(letter.text.contains(&link));
        assert!(letter.html.contains(&link.replace('&', "&amp;")));
        assert!(
            letter.text.contains("within 30 minutes:"),
            "{}",
            letter.text
        );
        assert_eq!(letter.subject, "Reset your Acme <ID> password");
    }

    #[test]
    fn lifetimes_read_as_a_person_writes_them() {
        let cases = [
            (1800, "30 minutes"),
            (86_400, "1 day"),
            (3_600, "1 hour"),
            (5_400, "1 hour and 30 minutes"),
            (90_061, "1 day, 1 hour and 1 minute"),
            (3_599, "59 minutes"),
            (45, "45 seconds"),
            (1, "1 second"),
        ];
        for (secs, spoken_as) in cases {
            assert_eq!(spoken(Duration::from_secs(secs)), spoken_as);
        }
    }

    #[test]
    fn the_notice_of_a_move_says_what_the_old_owner_can_do() {
        let letter = letters().email_changed("a@example.com", "b@example.com");
        assert!(
            letter.text.contains("contact Acme <ID> support"),
            "{}",
            letter.text
        );
        assert!(!letter.text.contains("reset your password at once"));
    }

    #[test]
    fn html_escapes_what_it_quotes() {
        let letter = letters().email_changed("a@example.com", "<b>@example.com");
        assert!(letter.html.contains("Acme &lt;ID&gt;"));
        assert!(letter.html.contains("&lt;b&gt;@example.com"));
        assert!(!letter.html.contains("<b>"));
    }
}
