//! A real OpenID provider for the tests: panva's certified `oidc-provider`
//! (tests/oidc/provider.mjs), one process per test, with a control API for
//! its accounts, faults, keys and outages. Its login steps are driven over
//! HTTP here, as a browser would follow them.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;

use serde_json::{Value, json};

use gatehouse::config::{SecretKeyText, Settings};

/// Where the provider sends the browser back; never fetched.
pub const REDIRECT: &str = "http://127.0.0.1:5173/auth/callback";
pub const CLIENT_SECRET: &str = "gatehouse-test-secret-0123456789abcdef";

/// `npm ci` once per test binary.
static INSTALLED: Mutex<Option<bool>> = Mutex::new(None);

/// A running provider; killed when dropped.
pub struct Provider {
    child: Child,
    _stdin: ChildStdin,
    pub issuer: String,
    http: reqwest::Client,
}

/// What the provider's redirect carried back to the browser.
#[derive(Clone, Debug)]
pub struct Redirect {
    pub code: String,
    pub state: String,
    /// RFC 9207's `iss`, which oidc-provider sends.
    pub iss: Option<String>,
}

impl Provider {
    /// Starts one, or `None` (said loudly) where Node.js is missing and
    /// this is not CI.
    pub fn start(test: &str) -> Option<Self> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc");
        if !install(&dir) {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must have Node.js and npm"
            );
            eprintln!("*** SKIPPED {test}: Node.js and npm are not installed ***");
            return None;
        }
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .current_dir(&dir)
            .env("REDIRECT_URIS", REDIRECT)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node starts");
        let stdin = child.stdin.take().expect("stdin");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the provider says where it listens");
        let started: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("provider's first line {line:?}: {e}"));
        Some(Self {
            child,
            _stdin: stdin,
            issuer: started["issuer"].as_str().expect("issuer").to_owned(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        })
    }

    /// Settings for a node with this provider as `test`, e-mail codes on.
    pub fn configure(&self, trusted_for_linking: bool) -> impl FnOnce(&mut Settings) + use<> {
        let providers = json!([{
            "id": "test",
            "name": "Test provider",
            "issuer": self.issuer,
            "client_id": "gatehouse",
            "client_secret": CLIENT_SECRET,
            "trusted_for_linking": trusted_for_linking,
        }])
        .to_string();
        move |s: &mut Settings| {
            s.other_ways_in.oidc_providers = Some(SecretKeyText(providers));
            s.other_ways_in.oidc_redirect_uris = vec![REDIRECT.to_owned()];
        }
    }

    /// Creates or changes an account at the provider.
    pub async fn account(&self, sub: &str, email: Option<&str>, verified: bool) {
        let body = json!({ "email": email, "email_verified": verified, "name": sub });
        self.control(reqwest::Method::PUT, &format!("accounts/{sub}"), body)
            .await;
    }

    /// Alters every ID token it sends until cleared with `None`.
    pub async fn fault(&self, fault: Option<&str>) {
        let body = json!({ "id_token": fault });
        self.control(reqwest::Method::POST, "faults", body).await;
    }

    pub async fn rotate_keys(&self) {
        self.control(reqwest::Method::POST, "rotate-keys", json!({}))
            .await;
    }

    /// Every request but the control API's gets 503 (`false`), or none does.
    pub async fn set_up(&self, up: bool) {
        let path = if up { "up" } else { "down" };
        self.control(reqwest::Method::POST, path, json!({})).await;
    }

    /// How often its keys were fetched.
    pub async fn key_fetches(&self) -> u64 {
        let url = format!("{}/__test/jwks-requests", self.issuer);
        let reply: Value = self
            .http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        reply["count"].as_u64().expect("count")
    }

    async fn control(&self, method: reqwest::Method, path: &str, body: Value) {
        let url = format!("{}/__test/{path}", self.issuer);
        let response = self
            .http
            .request(method, url)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204, "{path}");
    }

    /// Signs `sub` in at the provider from `authorization_url`, as a
    /// browser would, and returns what the redirect carries back.
    pub async fn log_in(&self, authorization_url: &str, sub: &str) -> Redirect {
        let mut cookies: Vec<String> = Vec::new();
        let interaction = self.follow(authorization_url, None, &mut cookies).await;
        let login = format!("{interaction}/login");
        let resume = self.follow(&login, Some(sub), &mut cookies).await;
        let back = self.follow(&resume, None, &mut cookies).await;
        assert!(back.starts_with(REDIRECT), "{back}");
        let url = reqwest::Url::parse(&back).unwrap();
        let param = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        Redirect {
            code: param("code").expect("code"),
            state: param("state").expect("state"),
            iss: param("iss"),
        }
    }

    /// One step: the `Location` it redirects to, keeping its cookies.
    async fn follow(&self, url: &str, sub: Option<&str>, cookies: &mut Vec<String>) -> String {
        let request = match sub {
            Some(sub) => self.http.post(url).form(&[("sub", sub)]),
            None => self.http.get(url),
        };
        let response = request
            .header("cookie", cookies.join("; "))
            .send()
            .await
            .unwrap();
        for value in response.headers().get_all("set-cookie") {
            let pair = value
                .to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_owned();
            let name = pair.split('=').next().unwrap().to_owned();
            cookies.retain(|c| !c.starts_with(&format!("{name}=")));
            cookies.push(pair);
        }
        let status = response.status();
        let location = response
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        match location {
            Some(location) if status.is_redirection() => location,
            _ => panic!("{url}: {status} {}", response.text().await.unwrap()),
        }
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `npm ci` in `dir` unless done; false if npm is missing.
fn install(dir: &Path) -> bool {
    let mut installed = INSTALLED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(done) = *installed {
        return done;
    }
    let done = Command::new("npm").arg("--version").output().is_ok() && {
        let modified = |path: &Path| path.metadata().and_then(|m| m.modified()).ok();
        let lock = modified(&dir.join("package-lock.json"));
        let current = modified(&dir.join("node_modules/.package-lock.json"));
        if current.is_none() || current < lock {
            let output = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(dir)
                .output()
                .expect("npm runs");
            assert!(
                output.status.success(),
                "npm ci in tests/oidc: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        true
    };
    *installed = Some(done);
    done
}
