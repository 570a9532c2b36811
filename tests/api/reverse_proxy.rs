//! Gatehouse behind a real nginx, configured with the README's example:
//! per-address limits key on each client, not on the proxy; forged
//! forwarding headers from anyone else are ignored; `/metrics` is never
//! relayed; and `sessionStatus` works through the proxy.
//!
//! Every test client is on loopback, so distinct clients are simulated by
//! sending `X-Forwarded-For: 198.51.100.N` to nginx: nginx appends the real
//! peer (127.0.0.1), which Gatehouse skips as a trusted proxy.

use std::net::{IpAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::{PASSWORD, Server, TestDatabase, serve_with, sqlite_url};

/// What nginx is started with around the README's block.
const README: &str = include_str!("../../README.md");
/// The address the README's `upstream` names, replaced by the real one.
const README_UPSTREAM: &str = "127.0.0.1:8000";

/// The README's nginx example: (what goes in `http { }`, the `location`).
fn readme_nginx_example() -> (String, String) {
    let block = README
        .split_once("<!-- nginx-example -->\n```nginx\n")
        .and_then(|(_, rest)| rest.split_once("\n```"))
        .map(|(block, _)| block)
        .expect("the README has the nginx example");
    let (http, location) = block
        .split_once("# In your TLS server { }:\n")
        .expect("the example marks the server part");
    assert!(
        location.trim_start().starts_with("location / {"),
        "{location}"
    );
    for line in [
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header Upgrade $http_upgrade;",
    ] {
        assert!(location.contains(line), "the example lacks {line}");
    }
    assert!(http.contains(README_UPSTREAM), "{http}");
    (http.to_owned(), location.to_owned())
}

/// An nginx process of the test's own, with everything in a temp dir.
struct Nginx {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl Nginx {
    /// nginx in front of `upstream` (host:port), or `None` (said loudly)
    /// where nginx is not installed, except under CI, where that fails.
    fn start(test: &str, upstream: &str) -> Option<Self> {
        let Some(binary) = nginx_binary() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "{test} needs nginx; .ci/run installs nginx-light"
            );
            eprintln!(
                "*** SKIPPED {test}: nginx is not installed (apt-get install nginx-light) ***"
            );
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config(&binary, dir.path(), port, upstream)).unwrap();
        let child = Command::new(&binary)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(&conf)
            // One process, in the foreground: no user switch, nothing left behind.
            .args(["-g", "daemon off; master_process off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts");
        let nginx = Self { child, port, dir };
        nginx.wait_until_listening();
        Some(nginx)
    }

    fn wait_until_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let log = std::fs::read_to_string(self.dir.path().join("error.log"));
            assert!(Instant::now() < deadline, "nginx did not start: {log:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx_binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|path| path.is_file())
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The whole configuration: the README's block, in a server on `port`,
/// with every file nginx writes inside `dir`.
fn config(binary: &Path, dir: &Path, port: u16, upstream: &str) -> String {
    let (http, location) = readme_nginx_example();
    let http = http.replace(README_UPSTREAM, upstream);
    let dir = dir.display();
    // Only the temp paths of the modules this build has (nginx-light lacks some).
    let built = Command::new(binary)
        .arg("-V")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stderr).into_owned())
        .unwrap_or_default();
    let temp_paths: String = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
        .iter()
        .filter(|m| !built.contains(&format!("--without-http_{m}_module")))
        .map(|m| format!("    {m}_temp_path {dir}/{m}_temp;\n"))
        .collect();
    format!(
        "pid {dir}/nginx.pid;\n\
         error_log {dir}/error.log;\n\
         events {{ worker_connections 128; }}\n\
         http {{\n\
         access_log {dir}/access.log;\n\
         {temp_paths}\
         {http}\n\
         server {{\n\
         listen 127.0.0.1:{port};\n\
         {location}\n\
         }}\n\
         }}\n"
    )
}

/// Gatehouse trusting 127.0.0.1 as its proxy, with these settings too.
fn gatehouse(url: &str, envs: &[(&str, &str)]) -> Server {
    let mut all = vec![("GATEHOUSE_TRUSTED_PROXIES", "127.0.0.1")];
    all.extend_from_slice(envs);
    serve_with(url, "info", &all)
}

/// Posts a GraphQL request to `url` as the client `forwarded_for` says.
async fn post(
    client: &reqwest::Client,
    url: &str,
    forwarded_for: &str,
    query: &str,
    variables: Value,
) -> Value {
    client
        .post(url)
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

const LOGIN: &str = "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { token session { ipAddress } } }";
const REGISTER: &str = "mutation($e: String!, $p: String!) { register(input: {email: $e, password: $p}) { token session { ipAddress } } }";

fn code(reply: &Value) -> &str {
    reply["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("")
}

#[tokio::test]
async fn one_client_burning_its_limit_behind_nginx_locks_only_itself() {
    let database = TestDatabase::create().await;
    let server = gatehouse(
        &database.url,
        &[("GATEHOUSE_LOGIN_MAX_FAILURES_PER_IP", "3")],
    );
    let test = "one_client_burning_its_limit_behind_nginx_locks_only_itself";
    let Some(nginx) = Nginx::start(test, &server.addr) else {
        return;
    };
    let (client, url) = (reqwest::Client::new(), nginx.url("/graphql"));
    let vars = |e: &str, p: &str| json!({ "e": e, "p": p });
    let user = "proxied@example.com";
    let registered = post(
        &client,
        &url,
        "198.51.100.9",
        REGISTER,
        vars(user, PASSWORD),
    )
    .await;
    assert_eq!(
        registered["data"]["register"]["session"]["ipAddress"], "198.51.100.9",
        "{registered}"
    );

    // Client 1 spends its per-address budget on unknown accounts...
    for i in 0..3 {
        let email = format!("nobody{i}@example.com");
        let wrong = post(
            &client,
            &url,
            "198.51.100.1",
            LOGIN,
            vars(&email, "wrong password!"),
        )
        .await;
        assert_eq!(code(&wrong), "INVALID_CREDENTIALS", "{wrong}");
    }
    // ...and stays locked, even with the right password...
    let locked = post(&client, &url, "198.51.100.1", LOGIN, vars(user, PASSWORD)).await;
    assert_eq!(code(&locked), "RATE_LIMITED", "{locked}");
    // ...however it dresses its own X-Forwarded-For: nginx appends it after.
    let forged = post(
        &client,
        &url,
        "203.0.113.50, 198.51.100.1",
        LOGIN,
        vars(user, PASSWORD),
    )
    .await;
    assert_eq!(code(&forged), "RATE_LIMITED", "{forged}");

    // Client 2, through the same proxy, signs in.
    let other = post(&client, &url, "198.51.100.2", LOGIN, vars(user, PASSWORD)).await;
    assert_eq!(
        other["data"]["login"]["session"]["ipAddress"], "198.51.100.2",
        "{other}"
    );
}

/// A client whose connections come from `ip`, on the loopback network.
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    let database = TestDatabase::create().await;
    let server = gatehouse(
        &database.url,
        &[("GATEHOUSE_LOGIN_MAX_FAILURES_PER_IP", "3")],
    );
    // Straight to Gatehouse, from 127.0.0.2: not the trusted 127.0.0.1.
    let (client, url) = (
        client_from("127.0.0.2"),
        format!("http://{}/graphql", server.addr),
    );
    let vars = |e: &str, p: &str| json!({ "e": e, "p": p });
    let registered = post(
        &client,
        &url,
        "198.51.100.77",
        REGISTER,
        vars("direct@example.com", PASSWORD),
    )
    .await;
    assert_eq!(
        registered["data"]["register"]["session"]["ipAddress"], "127.0.0.2",
        "{registered}"
    );
    for i in 0..3 {
        let email = format!("nobody{i}@example.com");
        let xff = format!("198.51.100.{}", 10 + i);
        let wrong = post(&client, &url, &xff, LOGIN, vars(&email, "wrong password!")).await;
        assert_eq!(code(&wrong), "INVALID_CREDENTIALS", "{wrong}");
    }
    let fresh_face = post(
        &client,
        &url,
        "198.51.100.99",
        LOGIN,
        vars("direct@example.com", PASSWORD),
    )
    .await;
    assert_eq!(code(&fresh_face), "RATE_LIMITED", "{fresh_face}");
}

#[tokio::test]
async fn metrics_are_never_relayed_by_the_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let server = gatehouse(&sqlite_url(&dir), &[]);
    let Some(nginx) = Nginx::start("metrics_are_never_relayed_by_the_proxy", &server.addr) else {
        return;
    };
    let client = reqwest::Client::new();
    let direct = format!("http://{}/metrics", server.addr);
    let scrape = client.get(&direct).send().await.unwrap();
    assert_eq!(scrape.status(), 200);
    assert!(
        scrape
            .text()
            .await
            .unwrap()
            .contains("gatehouse_build_info")
    );

    let relayed = client.get(nginx.url("/metrics")).send().await.unwrap();
    assert_eq!(relayed.status(), 404);
    for (name, value) in [
        ("x-forwarded-for", "127.0.0.1"),
        ("forwarded", "for=127.0.0.1"),
        ("x-real-ip", "127.0.0.1"),
    ] {
        let forwarded = client
            .get(&direct)
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(forwarded.status(), 404, "{name}");
    }
}

#[tokio::test]
async fn session_status_streams_through_the_proxy() {
    let database = TestDatabase::create().await;
    let server = gatehouse(&database.url, &[]);
    let Some(nginx) = Nginx::start("session_status_streams_through_the_proxy", &server.addr) else {
        return;
    };
    let client = reqwest::Client::new();
    let vars = json!({ "e": "live@example.com", "p": PASSWORD });
    let registered = post(
        &client,
        &nginx.url("/graphql"),
        "198.51.100.5",
        REGISTER,
        vars,
    )
    .await;
    let token = registered["data"]["register"]["token"].as_str().unwrap();

    let mut request = nginx
        .url("/graphql")
        .replacen("http", "ws", 1)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let messages = [
        json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } }),
        json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { sessionStatus { kind } }" } }),
    ];
    for message in messages {
        socket
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let next = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message in time")
            .expect("the socket is open")
            .unwrap();
        if let Message::Text(text) = next {
            seen.push(serde_json::from_str::<Value>(&text).unwrap());
        }
    }
    assert_eq!(seen[0]["type"], "connection_ack", "{seen:?}");
    assert_eq!(seen[1]["type"], "next", "{seen:?}");
    assert_eq!(
        seen[1]["payload"]["data"]["sessionStatus"]["kind"],
        "CURRENT"
    );
}

#[tokio::test]
async fn each_per_address_limit_can_be_turned_off() {
    let database = TestDatabase::create().await;
    // What an operator whose proxy cannot name its clients would set.
    let server = serve_with(
        &database.url,
        "info",
        &[
            ("GATEHOUSE_LOGIN_MAX_FAILURES_PER_IP", "off"),
            ("GATEHOUSE_MAIL_MAX_PER_IP", "off"),
        ],
    );
    let (client, url) = (
        reqwest::Client::new(),
        format!("http://{}/graphql", server.addr),
    );
    // More than the defaults (20 and 20) from one address.
    for i in 0..22 {
        let email = format!("nobody{i}@example.com");
        let vars = json!({ "e": email, "p": "wrong password!" });
        let wrong = post(&client, &url, "", LOGIN, vars).await;
        assert_eq!(code(&wrong), "INVALID_CREDENTIALS", "attempt {i}: {wrong}");
        let reset = "mutation($e: String!) { requestPasswordReset(input: {email: $e}) }";
        let asked = post(&client, &url, "", reset, json!({ "e": email })).await;
        assert_eq!(
            asked["data"]["requestPasswordReset"], true,
            "reset {i}: {asked}"
        );
    }
    // The per-account limit stays.
    for _ in 0..5 {
        let vars = json!({ "e": "nobody0@example.com", "p": "wrong password!" });
        post(&client, &url, "", LOGIN, vars).await;
    }
    let vars = json!({ "e": "nobody0@example.com", "p": "wrong password!" });
    assert_eq!(
        code(&post(&client, &url, "", LOGIN, vars).await),
        "RATE_LIMITED"
    );

    // Sign-ups, through the router (serve_with lifts that limit itself).
    let app =
        crate::helpers::spawn_app_on(database, |s| s.login_limits.register_max_per_ip = 0).await;
    for i in 0..12 {
        let reply = app
            .register(&format!("many{i}@example.com"), PASSWORD)
            .await;
        reply.data("register");
    }
}
