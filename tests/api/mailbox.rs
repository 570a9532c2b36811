//! The mail the server sends, as a recipient sees it: `.eml` files from the
//! embedded default, or messages received by a real SMTP server (Python's
//! `aiosmtpd`, started here).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mail_parser::MessageParser;
use tempfile::TempDir;

/// One received message.
#[derive(Clone, Debug)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub message_id: String,
    pub text: String,
    pub html: String,
}

impl Mail {
    /// The token with `prefix` (`ghr_`, `ghv_`) in the message's link; the
    /// same in the plain-text and HTML bodies.
    pub fn token(&self, prefix: &str) -> String {
        let token = find_token(&self.text, prefix)
            .unwrap_or_else(|| panic!("no {prefix} token in {:?}", self.text));
        assert_eq!(
            find_token(&self.html, prefix).as_deref(),
            Some(token.as_str())
        );
        token
    }
}

fn find_token(body: &str, prefix: &str) -> Option<String> {
    let start = body.find(prefix)?;
    let token: String = body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    (token.len() == prefix.len() + 43).then_some(token)
}

/// Every message in the files under `dir`, oldest first.
pub fn read_dir(dir: &Path) -> Vec<Mail> {
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                // Not a message being written (a hidden name until whole).
                .filter(|e| e.path().is_file() && !e.file_name().to_string_lossy().starts_with('.'))
                .map(|e| (e.metadata().and_then(|m| m.modified()).unwrap(), e.path()))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
        .into_iter()
        .map(|(_, path)| parse(&std::fs::read(&path).unwrap()))
        .collect()
}

fn parse(raw: &[u8]) -> Mail {
    let message = MessageParser::default().parse(raw).expect("a MIME message");
    let to = message
        .to()
        .and_then(|to| to.first())
        .and_then(|a| a.address())
        .unwrap_or_default()
        .to_owned();
    Mail {
        to,
        subject: message.subject().unwrap_or_default().to_owned(),
        message_id: message.message_id().unwrap_or_default().to_owned(),
        text: message.body_text(0).unwrap_or_default().into_owned(),
        html: message.body_html(0).unwrap_or_default().into_owned(),
    }
}

/// Waits until `read` returns at least `count` messages; panics after 20 s.
async fn wait_for(count: usize, read: impl Fn() -> Vec<Mail>) -> Vec<Mail> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mail = read();
        if mail.len() >= count {
            return mail;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected {count} messages, got {}: {mail:?}",
            mail.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Where a test reads what the server sent.
pub trait Inbox {
    /// Every message received so far, oldest first.
    fn messages(&self) -> Vec<Mail>;

    fn to(&self, address: &str) -> Vec<Mail> {
        self.messages()
            .into_iter()
            .filter(|m| m.to == address)
            .collect()
    }

    async fn wait_for(&self, count: usize) -> Vec<Mail> {
        wait_for(count, || self.messages()).await
    }

    /// Waits for the `nth` (from 1) message to `address`.
    async fn nth_to(&self, address: &str, nth: usize) -> Mail {
        wait_for(nth, || self.to(address)).await[nth - 1].clone()
    }

    /// Waits for a message to `address` whose subject holds `subject`:
    /// notices are sent after the answer, by the outbox.
    async fn titled(&self, address: &str, subject: &str) -> Mail {
        let matching = || {
            self.to(address)
                .into_iter()
                .filter(|m| m.subject.contains(subject))
                .collect()
        };
        wait_for(1, matching).await.remove(0)
    }
}

/// The `.eml` files of a server on the embedded default.
pub struct MailDir(pub TempDir);

impl MailDir {
    pub fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Inbox for MailDir {
    fn messages(&self) -> Vec<Mail> {
        read_dir(self.path())
    }
}

/// A real SMTP server, `aiosmtpd`, storing what it receives in a Maildir.
pub struct SmtpServer {
    child: Option<Child>,
    pub port: u16,
    maildir: TempDir,
}

const PYTHON_ENV: &str = "GATEHOUSE_TEST_PYTHON";

impl SmtpServer {
    /// The Python that has `aiosmtpd`: `$GATEHOUSE_TEST_PYTHON`, or the
    /// one `.ci/run` installs into `.ci/.venv`. `None` (said loudly) when
    /// there is none, except under CI, where it is a failure.
    pub fn python(test: &str) -> Option<PathBuf> {
        let python = std::env::var_os(PYTHON_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/.venv/bin/python"));
        let usable = Command::new(&python)
            .args(["-c", "import aiosmtpd"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if usable {
            return Some(python);
        }
        assert!(
            std::env::var_os("CI").is_none(),
            "{test} needs aiosmtpd; .ci/run installs it into .ci/.venv"
        );
        eprintln!(
            "*** SKIPPED {test}: it needs Python with aiosmtpd \
             (python3 -m venv .ci/.venv && .ci/.venv/bin/pip install aiosmtpd, or {PYTHON_ENV}) ***"
        );
        None
    }

    /// A port nobody listens on yet.
    pub fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// Starts a server on `port` and waits until it accepts connections.
    pub async fn start(python: &Path, port: u16) -> Self {
        let maildir = tempfile::tempdir().unwrap();
        let child = Command::new(python)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir.path().join("box"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aiosmtpd starts");
        let server = Self {
            child: Some(child),
            port,
            maildir,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "aiosmtpd never listened"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }
}

impl Inbox for SmtpServer {
    fn messages(&self) -> Vec<Mail> {
        read_dir(&self.maildir.path().join("box/new"))
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
