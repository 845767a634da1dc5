//! The accept loop: hyper's HTTP/1 connections with the limits axum's `serve` lacks.
//!
//! | limit | value | why |
//! | --- | --- | --- |
//! | header read | [`HEADER_READ_TIMEOUT`] | a client that sends nothing, or trickles its headers, is cut off (also between keep-alive requests) |
//! | idle | [`IDLE_TIMEOUT`] | a connection where no byte moves either way (a reader that stops reading a response) is closed |
//! | connections | [`MAX_CONNECTIONS`] | more wait in the kernel's backlog instead of costing memory here |
//! | per client address | [`MAX_PER_ADDRESS`] | one address cannot hold every connection (trusted proxies and loopback are exempt) |
//!
//! A shutdown stops accepting, asks every connection to finish its request in flight
//! and close (keep-alive off), and returns when they have.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

/// Longest a client may take to send a request's headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a connection may sit with no byte moving.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Most connections served at once.
pub const MAX_CONNECTIONS: usize = 1024;
/// Most connections from one client address at once.
pub const MAX_PER_ADDRESS: usize = 32;

/// The limits, adjustable for tests.
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_read: Duration,
    pub idle: Duration,
    pub connections: usize,
    pub per_address: usize,
    /// Peers without a per-address limit (reverse proxies carry many clients).
    pub exempt: Vec<crate::config::IpNet>,
    /// Whether loopback peers (a proxy on the same host) are exempt too.
    pub exempt_loopback: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read: HEADER_READ_TIMEOUT,
            idle: IDLE_TIMEOUT,
            connections: MAX_CONNECTIONS,
            per_address: MAX_PER_ADDRESS,
            exempt: Vec::new(),
            exempt_loopback: true,
        }
    }
}

/// Open connections per peer address.
#[derive(Default)]
struct PerAddress(std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>);

impl PerAddress {
    /// Counts a new connection from `ip`; false when it already has `max`.
    fn enter(&self, ip: std::net::IpAddr, max: usize) -> bool {
        let Ok(mut map) = self.0.lock() else {
            return true;
        };
        let n = map.entry(ip).or_insert(0);
        if *n >= max {
            return false;
        }
        *n += 1;
        true
    }

    fn leave(&self, ip: std::net::IpAddr) {
        if let Ok(mut map) = self.0.lock()
            && let Some(n) = map.get_mut(&ip)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&ip);
            }
        }
    }
}

/// One counted connection; leaving on drop, so that a panicking connection task still
/// gives its place back.
struct Counted {
    per_address: Arc<PerAddress>,
    key: std::net::IpAddr,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.per_address.leave(self.key);
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then finishes what is in
/// flight. Each request carries the peer's address as [`ConnectInfo`].
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.connections.max(1)));
    let per_address = Arc::new(PerAddress::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, go on.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let ip = peer.ip().to_canonical();
        let exempt = (limits.exempt_loopback && ip.is_loopback())
            || limits.exempt.iter().any(|net| net.contains(ip));
        // Counted like the rate limit: an IPv6 host by its /64.
        let key = super::client::client_key(ip);
        let counted = if exempt {
            None
        } else if per_address.enter(key, limits.per_address) {
            Some(Counted {
                per_address: Arc::clone(&per_address),
                key,
            })
        } else {
            // Closed at once: this address holds enough connections already.
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let stop = stop_rx.clone();
        let limits = limits.clone();
        connections.spawn(async move {
            serve_connection(stream, peer, router, &limits, stop).await;
            drop(counted);
            drop(permit);
        });
        while connections.try_join_next().is_some() {}
    }
    let _ = stop_tx.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: &Limits,
    mut stop: watch::Receiver<bool>,
) {
    let started = Instant::now();
    let activity = Arc::new(AtomicU64::new(0));
    let io = Watched {
        inner: stream,
        started,
        activity: Arc::clone(&activity),
    };
    let service =
        hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request)
        });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .max_buf_size(64 * 1024);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let mut stopping = false;
    loop {
        let idle_for = Duration::from_millis(
            (started.elapsed().as_millis() as u64).saturating_sub(activity.load(Ordering::Relaxed)),
        );
        let idle_left = limits.idle.saturating_sub(idle_for);
        tokio::select! {
            _ = connection.as_mut() => return,
            () = tokio::time::sleep(idle_left) => {
                let idle_for = (started.elapsed().as_millis() as u64).saturating_sub(activity.load(Ordering::Relaxed));
                if idle_for >= limits.idle.as_millis() as u64 {
                    tracing::debug!(%peer, "closing an idle connection");
                    return;
                }
            }
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// A socket that records when a byte last moved (milliseconds since `started`).
struct Watched {
    inner: TcpStream,
    started: Instant,
    activity: Arc<AtomicU64>,
}

impl Watched {
    fn touch(&self) {
        self.activity
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
