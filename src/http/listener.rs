//! The main listener's accept loop. hyper's defaults let one client hold a
//! node's sockets and memory: no deadline on headers, idle keep-alives kept
//! forever, a 400 KB read buffer per connection, and no cap on connections.
//! Here every connection has a deadline for its headers, a small buffer,
//! and a place under a cap in total and per client address.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

use crate::config::ConnectionSettings;
use crate::http::places::{Place, Places, network};

/// How long the loop rests after `accept` fails for want of a resource
/// (EMFILE, ENFILE, ENOBUFS): the backlog waits, and a retry at once would
/// only fail again, at full speed.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// At most one log line per this long about failing `accept`s.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(1);
/// How long graceful shutdown waits for connections to finish; the rest
/// are dropped, so a client that never reads cannot hold a deploy (systemd
/// kills at 30 s by default).
const DRAIN: Duration = Duration::from_secs(20);
/// Files a node opens besides its connections: the database pool, log and
/// mail files, the metrics listener, with room to spare.
const OTHER_FILES: u64 = 256;

/// Who may hold a connection, and for how long without a request.
#[derive(Clone)]
pub struct Admission {
    total: Arc<Semaphore>,
    per_address: usize,
    addresses: Places<IpAddr>,
    /// Peers that carry many clients: no per-address cap.
    proxies: Arc<[IpNet]>,
    header_read_timeout: Duration,
    max_header_bytes: usize,
}

impl Admission {
    /// The caps these settings describe; `proxies` are exempt from the
    /// per-address one.
    pub fn new(settings: &ConnectionSettings, proxies: &[IpNet]) -> Self {
        Self {
            total: Arc::new(Semaphore::new(settings.max_connections as usize)),
            per_address: settings.max_connections_per_address as usize,
            addresses: Places::default(),
            proxies: proxies.into(),
            header_read_timeout: settings.header_read_timeout,
            max_header_bytes: settings.max_header_bytes as usize,
        }
    }

    /// A place for one more connection from `peer`, or `None` past a cap.
    fn admit(&self, peer: IpAddr) -> Option<Ticket> {
        let total = self.total.clone().try_acquire_owned().ok()?;
        // A dual-stack listener sees IPv4 peers as `::ffff:a.b.c.d`.
        let canonical = peer.to_canonical();
        let address = if self.proxies.iter().any(|net| net.contains(&canonical)) {
            None
        } else {
            Some(self.addresses.take(network(peer), self.per_address)?)
        };
        Some(Ticket {
            _total: total,
            _address: address,
        })
    }

    fn builder(&self) -> Builder<TokioExecutor> {
        let mut builder = Builder::new(TokioExecutor::new());
        // hyper 1.12 restarts this deadline whenever it waits for a head,
        // between requests too: it is also the keep-alive idle timeout.
        // Only HTTP/1 is compiled in (hyper-util's `http2` feature is off),
        // as it was under `axum::serve`.
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout)
            .max_buf_size(self.max_header_bytes);
        builder
    }
}

/// A connection's places under the caps; given back when the socket closes.
struct Ticket {
    _total: OwnedSemaphorePermit,
    _address: Option<Place<IpAddr>>,
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops
/// accepting and waits for the requests in flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    admission: Admission,
    shutdown: impl Future<Output = ()>,
) {
    let builder = Arc::new(admission.builder());
    let (stop, stopping) = watch::channel(false);
    let mut errors = AcceptErrors::default();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    errors.back_off(err).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Past a cap the socket is closed unread: it costs nothing more.
        let Some(ticket) = admission.admit(peer.ip()) else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn = Conn {
            io: Counted {
                stream,
                write_stall: admission.header_read_timeout,
                stalled: None,
                _ticket: ticket,
            },
            peer,
            router: router.clone(),
            first_request_within: admission.header_read_timeout,
        };
        tokio::spawn(conn.run(builder.clone(), stopping.clone()));
    }
    drop(listener);
    let _ = stop.send(true);
    drop(stopping);
    // Every connection task holds a receiver until it ends.
    if tokio::time::timeout(DRAIN, stop.closed()).await.is_err() {
        tracing::warn!("connections still open after the drain deadline; dropping them");
    }
}

/// One accepted connection, before hyper takes it.
struct Conn {
    io: Counted,
    peer: SocketAddr,
    router: Router,
    first_request_within: Duration,
}

impl Conn {
    /// Serves the connection. hyper's header deadline starts only once it
    /// has told HTTP/1 from HTTP/2 by the first bytes, so a client that
    /// sends nothing (or a few bytes of the HTTP/2 preface) is held to a
    /// deadline of ours for its first request.
    async fn run(self, builder: Arc<Builder<TokioExecutor>>, mut stopping: watch::Receiver<bool>) {
        let started = Arc::new(Notify::new());
        let service = WithPeer {
            router: self.router,
            peer: self.peer,
            started: started.clone(),
        };
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(self.io), service);
        tokio::pin!(conn);
        let first_deadline = tokio::time::sleep(self.first_request_within);
        tokio::pin!(first_deadline);
        let (mut waiting, mut draining) = (true, false);
        loop {
            tokio::select! {
                served = conn.as_mut() => {
                    if let Err(err) = served {
                        tracing::debug!(error = %err, peer = %self.peer, "connection ended");
                    }
                    return;
                }
                () = started.notified(), if waiting => waiting = false,
                () = &mut first_deadline, if waiting => return,
                _ = stopping.wait_for(|stop| *stop), if !draining => {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// The router, with the peer's address where axum's `ConnectInfo` looks.
struct WithPeer {
    router: Router,
    peer: SocketAddr,
    started: Arc<Notify>,
}

impl Service<hyper::Request<Incoming>> for WithPeer {
    type Response = <Router as tower_service::Service<hyper::Request<Incoming>>>::Response;
    type Error = <Router as tower_service::Service<hyper::Request<Incoming>>>::Error;
    type Future = <Router as tower_service::Service<hyper::Request<Incoming>>>::Future;

    fn call(&self, mut request: hyper::Request<Incoming>) -> Self::Future {
        self.started.notify_one();
        request.extensions_mut().insert(ConnectInfo(self.peer));
        // A router is always ready: it needs no `poll_ready`.
        tower_service::Service::call(&mut self.router.clone(), request)
    }
}

/// The socket with its [`Ticket`]: the place is held as long as the socket
/// is open, past a WebSocket upgrade too. A write that waits longer than
/// `write_stall` for the peer to read fails the connection: a client that
/// stops reading must not hold its place and kernel buffers for ever.
struct Counted {
    stream: TcpStream,
    write_stall: Duration,
    /// Running while a write waits for the peer.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
    _ticket: Ticket,
}

impl Counted {
    /// Passes a write's outcome on; past `write_stall` without progress, a
    /// time-out instead.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let limit = self.write_stall;
        let stall = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match stall.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.watch(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_flush(cx);
        this.watch(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Failing `accept`s: logged at most once per [`ACCEPT_LOG_EVERY`], each
/// followed by a short rest.
#[derive(Default)]
struct AcceptErrors {
    logged_at: Option<Instant>,
    unlogged: u64,
}

impl AcceptErrors {
    async fn back_off(&mut self, err: io::Error) {
        // The peer gave up between SYN and accept: nothing is short.
        if matches!(
            err.kind(),
            io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
        ) {
            return;
        }
        if self
            .logged_at
            .is_none_or(|at| at.elapsed() >= ACCEPT_LOG_EVERY)
        {
            tracing::error!(
                error = %err,
                since_last_line = self.unlogged,
                "cannot accept connections; backing off"
            );
            self.logged_at = Some(Instant::now());
            self.unlogged = 0;
        } else {
            self.unlogged += 1;
        }
        tokio::time::sleep(ACCEPT_BACKOFF).await;
    }
}

/// Raises the soft limit on open files to the hard one, and warns when it
/// is still below what `settings` may hold open.
pub fn raise_file_limit(settings: &ConnectionSettings) {
    let needed = u64::from(settings.max_connections) + OTHER_FILES;
    match raise_nofile() {
        Ok(limit) if limit < needed => tracing::warn!(
            limit,
            needed,
            "the open-file limit is below GATEHOUSE_MAX_CONNECTIONS plus {OTHER_FILES}: \
             raise it (LimitNOFILE) or lower the cap, or accept fails when it is reached"
        ),
        Ok(_) => {}
        Err(err) => tracing::warn!(error = %err, "cannot read or raise the open-file limit"),
    }
}

/// The soft `RLIMIT_NOFILE`, after raising it to the hard limit.
#[cfg(unix)]
fn raise_nofile() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own, nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(io::Error::last_os_error());
        }
        limit = raised;
    }
    Ok(limit.rlim_cur)
}

#[cfg(not(unix))]
fn raise_nofile() -> io::Result<u64> {
    Ok(u64::MAX)
}
