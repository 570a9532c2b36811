//! A TCP proxy in front of PostgreSQL that records every round trip a
//! client makes: each `Sync` or simple `Query` message waits for the
//! server's `ReadyForQuery`, so it ends one exchange. An exchange records
//! the statements it ran; one with none is a bare ping.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What one round trip carried.
#[derive(Clone, Debug, Default)]
pub struct Exchange {
    /// Which client connection, numbered as they arrived.
    pub connection: usize,
    /// The statements it executed, in order.
    pub statements: Vec<String>,
    /// The statements it prepared.
    pub prepared: Vec<String>,
}

impl Exchange {
    /// A bare `Sync`: nothing prepared, nothing run.
    pub fn is_ping(&self) -> bool {
        self.statements.is_empty() && self.prepared.is_empty()
    }
}

pub struct WireCounter {
    /// The database URL through the proxy, without TLS so it can be read.
    pub url: String,
    exchanges: Arc<Mutex<Vec<Exchange>>>,
}

impl WireCounter {
    /// Proxies the server that `url` names.
    pub async fn start(url: &str) -> Self {
        let (scheme, rest) = url.split_once("://").expect("URL has a scheme");
        let (credentials, after) = rest.rsplit_once('@').expect("URL has credentials");
        let (host, path) = after.split_once('/').expect("URL has a database");
        let path = path.split_once('?').map_or(path, |(p, _)| p);
        let upstream = host.to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let exchanges = Arc::new(Mutex::new(Vec::new()));
        let recorded = exchanges.clone();
        tokio::spawn(async move {
            let mut connection = 0;
            while let Ok((client, _)) = listener.accept().await {
                connection += 1;
                let upstream = upstream.clone();
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        relay(client, server, connection, recorded).await;
                    }
                });
            }
        });
        Self {
            url: format!("{scheme}://{credentials}@127.0.0.1:{port}/{path}?sslmode=disable"),
            exchanges,
        }
    }

    /// Every exchange so far, on every connection.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.exchanges.lock().unwrap().clone()
    }
}

async fn relay(
    client: TcpStream,
    server: TcpStream,
    connection: usize,
    recorded: Arc<Mutex<Vec<Exchange>>>,
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let down = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    });
    let mut parser = Frontend {
        current: Exchange {
            connection,
            ..Exchange::default()
        },
        ..Frontend::default()
    };
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = match client_read.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for exchange in parser.feed(&buffer[..n]) {
            recorded.lock().unwrap().push(exchange);
        }
        if server_write.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    down.abort();
}

/// Reads the frontend's side of the protocol: untyped start-up packets
/// first (an `SSLRequest` may precede the real one), then typed messages.
#[derive(Default)]
struct Frontend {
    pending: Vec<u8>,
    started: bool,
    /// Prepared statement name to its text, for `Bind`s of cached ones.
    prepared: HashMap<String, String>,
    /// Statement text of the last `Parse`, for an unnamed `Bind`.
    unnamed: String,
    current: Exchange,
}

const SSL_REQUEST: u32 = 80_877_103;

impl Frontend {
    fn feed(&mut self, bytes: &[u8]) -> Vec<Exchange> {
        self.pending.extend_from_slice(bytes);
        let mut done = Vec::new();
        loop {
            if !self.started {
                let Some(len) = read_u32(&self.pending, 0) else {
                    break;
                };
                let len = len as usize;
                if self.pending.len() < len {
                    break;
                }
                let code = read_u32(&self.pending, 4);
                self.started = code != Some(SSL_REQUEST);
                self.pending.drain(..len);
                continue;
            }
            let Some(len) = read_u32(&self.pending, 1) else {
                break;
            };
            let total = 1 + len as usize;
            if self.pending.len() < total {
                break;
            }
            let message: Vec<u8> = self.pending.drain(..total).collect();
            let body = &message[5..];
            match message[0] {
                b'P' => {
                    let mut fields = body.split(|&b| b == 0);
                    let name = text(fields.next());
                    let sql = text(fields.next());
                    self.current.prepared.push(sql.clone());
                    if name.is_empty() {
                        self.unnamed = sql;
                    } else {
                        self.prepared.insert(name, sql);
                    }
                }
                b'B' => {
                    let mut fields = body.split(|&b| b == 0);
                    let _portal = fields.next();
                    let name = text(fields.next());
                    let sql = if name.is_empty() {
                        self.unnamed.clone()
                    } else {
                        self.prepared.get(&name).cloned().unwrap_or(name)
                    };
                    self.current.statements.push(sql);
                }
                b'Q' => {
                    let sql = text(body.split(|&b| b == 0).next());
                    done.push(Exchange {
                        connection: self.current.connection,
                        statements: vec![sql],
                        prepared: Vec::new(),
                    });
                }
                b'S' => {
                    let next = Exchange {
                        connection: self.current.connection,
                        ..Exchange::default()
                    };
                    done.push(std::mem::replace(&mut self.current, next));
                }
                _ => {}
            }
        }
        done
    }
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let slice = bytes.get(at..at + 4)?;
    Some(u32::from_be_bytes(slice.try_into().ok()?))
}

fn text(field: Option<&[u8]>) -> String {
    String::from_utf8_lossy(field.unwrap_or_default()).into_owned()
}
