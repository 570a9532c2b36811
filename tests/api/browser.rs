//! GraphiQL in a real headless Chromium, served by the real binary, with
//! every host but this machine unreachable: it must render from the server
//! alone and run an operation against it.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::helpers::{serve, sqlite_url};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn graphiql_renders_offline_and_runs_an_operation() {
    if !std::path::Path::new(CHROMEDRIVER).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install chromium and chromium-driver"
        );
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "*** SKIPPED graphiql_renders_offline_and_runs_an_operation: \
             apt-get install chromium chromium-driver ***"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&sqlite_url(&dir), "info");
    let port = free_port();
    let _driver = Driver(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts"),
    );
    let webdriver = format!("http://127.0.0.1:{port}");
    for _ in 0..50 {
        if reqwest::get(format!("{webdriver}/status")).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let profile = tempfile::tempdir().unwrap();
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--window-size=1280,800",
                format!("--user-data-dir={}", profile.path().display()),
                // The network is closed: anything but loopback goes to a dead proxy.
                "--proxy-server=http://127.0.0.1:9",
            ]
        }),
    );
    // chromedriver is on loopback: plain HTTP, no TLS stack needed.
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let browser = ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&webdriver)
        .await
        .expect("chromium starts");

    let operation = r#"mutation { register(input: {email: "browser@example.com", password: "correct horse battery"}) { user { email } } }"#;
    let origin = format!("http://{}", server.addr);
    let page = format!("{origin}/graphql?query={}", urlencode(operation));
    browser.goto(&page).await.unwrap();
    browser
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(".graphiql-container"))
        .await
        .expect("GraphiQL rendered");
    browser
        .find(Locator::Css(".graphiql-execute-button"))
        .await
        .expect("the run button")
        .click()
        .await
        .unwrap();

    let mut result = String::new();
    for _ in 0..100 {
        let text = browser
            .execute(
                "return document.querySelector('.result-window')?.innerText ?? ''",
                vec![],
            )
            .await
            .unwrap();
        result = text.as_str().unwrap_or_default().to_owned();
        if result.contains("browser@example.com") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let screenshot = browser.screenshot().await.unwrap();
    let _ = std::fs::write(
        concat!(env!("CARGO_TARGET_TMPDIR"), "/graphiql.png"),
        screenshot,
    );
    assert!(
        result.contains("browser@example.com"),
        "the operation did not run: {result:?}"
    );

    let loaded = browser
        .execute(
            "return performance.getEntriesByType('resource').map(e => e.name)",
            vec![],
        )
        .await
        .unwrap();
    let loaded: Vec<String> = serde_json::from_value(loaded).unwrap();
    assert!(loaded.len() >= 4, "{loaded:?}");
    for url in &loaded {
        assert!(
            url.starts_with(&origin),
            "the page loaded {url} from elsewhere"
        );
    }
    browser.close().await.unwrap();

    // The account exists on the server: the page really ran the mutation.
    let login = json!({
        "query": "mutation { login(input: {email: \"browser@example.com\", password: \"correct horse battery\"}) { token } }"
    });
    let (status, body): (u16, Value) = server.post(login, None).await;
    assert_eq!(status, 200);
    assert!(body["data"]["login"]["token"].is_string(), "{body}");
    assert!(server.terminate().0);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
