//! Liveness and readiness probes for load balancers and orchestrators, and
//! the client side of `/readyz` that `gatehouse healthcheck` runs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use sea_orm::DatabaseConnection;

/// `GET /healthz`: the process is serving.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: the database answers, so requests can succeed.
pub async fn readyz(State(db): State<DatabaseConnection>) -> (StatusCode, &'static str) {
    match db.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

/// Asks the server listening on `listen` for `GET /readyz`: `Ok` on a 200,
/// else what went wrong. Plain blocking HTTP/1.1, because a FROM-scratch
/// image has no curl for its HEALTHCHECK.
pub fn probe_ready(listen: SocketAddr, timeout: Duration) -> Result<(), String> {
    let addr = reachable(listen);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("cannot set a timeout: {e}"))?;
    write!(
        stream,
        "GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("cannot ask {addr}: {e}"))?;
    // A status line is short; a peer that sends more without a newline is
    // not the server.
    let mut status_line = String::new();
    BufReader::new(stream.take(256))
        .read_line(&mut status_line)
        .map_err(|e| format!("no answer from {addr}: {e}"))?;
    let status_line = status_line.trim_end();
    match status_line.split(' ').nth(1) {
        Some("200") if status_line.starts_with("HTTP/1.") => Ok(()),
        _ => Err(format!("{addr}/readyz answered {status_line:?}")),
    }
}

/// A server listening on every address (0.0.0.0, [::]) is asked on loopback.
fn reachable(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A one-shot server on loopback that reads the request, answers
    /// `response` and returns the request it read.
    fn answer_once(response: &'static str) -> (SocketAddr, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                let n = stream.read(&mut buf).unwrap();
                assert!(n > 0, "the probe closed before ending its request");
                request.extend_from_slice(&buf[..n]);
            }
            stream.write_all(response.as_bytes()).unwrap();
            String::from_utf8(request).unwrap()
        });
        (addr, server)
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_200_from_readyz_is_healthy() {
        let (addr, server) = answer_once("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nready");
        assert_eq!(probe_ready(addr, SECOND), Ok(()));
        let request = server.join().unwrap();
        assert!(request.starts_with("GET /readyz HTTP/1.1\r\n"), "{request}");
    }

    #[test]
    fn a_503_is_unhealthy_and_says_so() {
        let (addr, server) = answer_once("HTTP/1.1 503 Service Unavailable\r\n\r\n");
        let err = probe_ready(addr, SECOND).unwrap_err();
        assert!(err.contains("503"), "{err}");
        server.join().unwrap();
    }

    #[test]
    fn no_server_is_unhealthy() {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = probe_ready(addr, SECOND).unwrap_err();
        assert!(err.contains("cannot connect"), "{err}");
    }

    #[test]
    fn a_silent_server_is_unhealthy_within_the_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let started = std::time::Instant::now();
        let err = probe_ready(addr, Duration::from_millis(200)).unwrap_err();
        assert!(err.contains("no answer"), "{err}");
        assert!(started.elapsed() < SECOND, "{:?}", started.elapsed());
        drop(listener);
    }

    #[test]
    fn an_unspecified_address_is_probed_on_loopback() {
        let v4: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let v6: SocketAddr = "[::]:8080".parse().unwrap();
        let there: SocketAddr = "10.1.2.3:9000".parse().unwrap();
        assert_eq!(reachable(v4), "127.0.0.1:8080".parse().unwrap());
        assert_eq!(reachable(v6), "[::1]:8080".parse().unwrap());
        assert_eq!(reachable(there), there);
    }
}
