//! How a message leaves the node: SMTP from `GATEHOUSE_SMTP_URL`, or, with
//! none set, an `.eml` file in `GATEHOUSE_MAIL_DIR` that a developer opens.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use entity::outbox;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use uuid::Uuid;

/// The longest one SMTP conversation may take; far below the outbox lease.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Where messages go.
#[derive(Clone)]
pub struct Mailer {
    from: Mailbox,
    route: Route,
}

#[derive(Clone)]
enum Route {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Directory(PathBuf),
}

/// Why a message was not delivered.
#[derive(Debug)]
pub struct Undelivered {
    /// Retrying cannot help: the server or the address refused it for good.
    pub permanent: bool,
    /// For the log and `outbox.last_error`; it never holds the message.
    pub reason: String,
}

impl Mailer {
    /// SMTP when `smtp_url` is set (`smtp://` with `?tls=required` for
    /// STARTTLS, or `smtps://`), otherwise `.eml` files in `dir`.
    pub fn new(smtp_url: Option<&str>, from: &str, dir: PathBuf) -> anyhow::Result<Self> {
        let from: Mailbox = from
            .parse()
            .with_context(|| format!("GATEHOUSE_MAIL_FROM {from:?} is not an address"))?;
        let route = match smtp_url {
            Some(url) => Route::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .context("GATEHOUSE_SMTP_URL is not a valid smtp:// or smtps:// URL")?
                    .timeout(Some(SMTP_TIMEOUT))
                    .build(),
            ),
            None => {
                std::fs::create_dir_all(&dir).with_context(|| {
                    format!("cannot create GATEHOUSE_MAIL_DIR {}", dir.display())
                })?;
                Route::Directory(dir)
            }
        };
        Ok(Self { from, route })
    }

    /// Hands one queued message to the server (or the directory).
    pub async fn send(&self, message: &outbox::Model) -> Result<(), Undelivered> {
        let email = self.compose(message).map_err(|reason| Undelivered {
            permanent: true,
            reason,
        })?;
        match &self.route {
            // lettre's timeout covers connecting only: a server that then
            // stalls must not hold this node's courier.
            Route::Smtp(smtp) => match tokio::time::timeout(SMTP_TIMEOUT, smtp.send(email)).await {
                Ok(sent) => sent.map(drop).map_err(|e| Undelivered {
                    permanent: e.is_permanent(),
                    reason: e.to_string(),
                }),
                Err(_) => Err(Undelivered {
                    permanent: false,
                    reason: format!("no answer within {}s", SMTP_TIMEOUT.as_secs()),
                }),
            },
            Route::Directory(dir) => write_eml(dir, &email).await.map_err(|e| Undelivered {
                permanent: false,
                reason: e.to_string(),
            }),
        }
    }

    fn compose(&self, message: &outbox::Model) -> Result<Message, String> {
        let to: Mailbox = message
            .recipient
            .parse()
            .map_err(|e| format!("recipient: {e}"))?;
        let domain = self.from.email.domain().to_owned();
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(message.subject.clone())
            // The outbox id: a duplicate delivery would show as a repeated id.
            .message_id(Some(format!("<{}@{domain}>", message.id)))
            .multipart(MultiPart::alternative_plain_html(
                message.body_text.clone(),
                message.body_html.clone(),
            ))
            .map_err(|e| format!("message: {e}"))
    }
}

/// Writes one `.eml` file whole or not at all: a hidden file first, then
/// renamed, so that whoever watches the directory never reads half of one.
async fn write_eml(dir: &Path, email: &Message) -> std::io::Result<()> {
    let name = Uuid::new_v4();
    let partial = dir.join(format!(".{name}.eml.part"));
    let written = match tokio::fs::write(&partial, email.formatted()).await {
        Ok(()) => tokio::fs::rename(&partial, dir.join(format!("{name}.eml"))).await,
        Err(err) => Err(err),
    };
    if written.is_err() {
        // A full disk must not leave halves behind for every retry.
        let _ = tokio::fs::remove_file(&partial).await;
    }
    written
}
