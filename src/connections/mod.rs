//! The node's HTTP connections: the accept loop, the connection cap (`server.max_connections`), and
//! the timeouts that keep a slow or idle client from holding a socket.
//!
//! Every accepted connection takes one of `max_connections` slots and keeps it until its socket
//! closes, media streams included (an upgraded connection carries a call). At the cap, the
//! connection that has been quiet longest (no request in progress, not a media stream) is
//! closed to make room; when every slot is busy serving, the newcomer is answered `503` with
//! `Retry-After` and closed, so an idle flood never starves Twilio's webhooks and streams.
//!
//! Each connection is watched by its own task, which closes it when
//! - a request's headers began but did not all arrive within `header_timeout`;
//! - no request is in progress for `idle_timeout` (a kept-alive socket nobody uses);
//! - a response's bytes could not be written for `idle_timeout` (the client stopped reading).
//!
//! A request's body that does not arrive within `body_timeout` of its headers fails, which
//! answers `400` and closes the connection. hyper's own header timer is off: it also runs while
//! a kept-alive connection waits for its next request, which is the idle timeout's job.

mod requests;
mod resources;
mod watch;

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::requests::Tracked;
use self::resources::{ensure_file_limit, give_memory_back_after_floods};
use self::watch::{ConnState, CountedIo, Watch};
use crate::config::ServerConfig;
use crate::telemetry::Metrics;

/// How many connections a node holds and how long it waits for their clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    /// From a request's first byte to the end of its headers.
    pub header_timeout: Duration,
    /// With no request in progress; also how long a response may wait for the client to read.
    pub idle_timeout: Duration,
    /// From a request's headers to the end of its body.
    pub body_timeout: Duration,
}

impl ConnectionLimits {
    /// The `[server]` keys (checked against `crate::config::limits` at load).
    pub fn of(server: &ServerConfig) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: usize::try_from(server.max_connections).unwrap_or(usize::MAX),
            header_timeout: Duration::from_secs(server.header_timeout_secs),
            idle_timeout: Duration::from_secs(server.idle_timeout_secs),
            body_timeout: Duration::from_secs(server.body_timeout_secs),
        }
    }
}

/// How long a newcomer at the cap waits for the connection closed to make room for it.
const ROOM_WAIT: Duration = Duration::from_millis(250);

/// Refusals being written at once; beyond this a newcomer at the cap is closed unanswered.
const REFUSALS_AT_ONCE: usize = 64;

/// How long a refused client gets to read its `503` before the socket closes.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// The longest pause between accept attempts while the system refuses them (out of file
/// descriptors, say).
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: text/plain; charset=utf-8\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 54\r\n\
\r\n\
careline is at its connection limit; try again shortly";

/// The running HTTP side: stop it with [`Http::stop`].
pub struct Http {
    accepting: tokio::task::JoinHandle<()>,
    /// Cancelled to stop accepting and let each connection finish its request in progress.
    stopping: CancellationToken,
    /// Cancelled to close every connection where it stands.
    closing: CancellationToken,
    connections: TaskTracker,
}

impl Http {
    /// Accept connections on `listener` and serve `app` on each, within `limits`.
    pub fn start(
        listener: TcpListener,
        app: axum::Router,
        limits: ConnectionLimits,
        metrics: Arc<Metrics>,
    ) -> Http {
        ensure_file_limit(limits.max_connections);
        let stopping = CancellationToken::new();
        let closing = CancellationToken::new();
        let connections = TaskTracker::new();
        let open = Arc::new(OpenConnections::default());
        tokio::spawn(give_memory_back_after_floods(
            open.clone(),
            stopping.clone(),
        ));
        let acceptor = Acceptor {
            listener,
            app,
            limits,
            slots: Arc::new(Semaphore::new(limits.max_connections)),
            open,
            refusals: Arc::new(Semaphore::new(REFUSALS_AT_ONCE)),
            metrics,
            stopping: stopping.clone(),
            closing: closing.clone(),
            connections: connections.clone(),
            epoch: Instant::now(),
        };
        Http {
            accepting: tokio::spawn(acceptor.run()),
            stopping,
            closing,
            connections,
        }
    }

    /// Stop accepting, let each connection finish the request it is serving, and close
    /// whatever is still open at `deadline`. Media streams are not waited for: their sessions
    /// end with the node's force-close.
    pub async fn stop(self, deadline: Instant) {
        self.stopping.cancel();
        if let Err(error) = self.accepting.await {
            tracing::error!(%error, "the accept loop stopped abnormally");
        }
        self.connections.close();
        if tokio::time::timeout_at(deadline, self.connections.wait())
            .await
            .is_err()
        {
            tracing::debug!(
                connections = self.connections.len(),
                "closing HTTP connections still open at the end of shutdown"
            );
            self.closing.cancel();
            let _ = tokio::time::timeout(Duration::from_millis(100), self.connections.wait()).await;
        }
    }
}

/// What the accept loop owns.
struct Acceptor {
    listener: TcpListener,
    app: axum::Router,
    limits: ConnectionLimits,
    slots: Arc<Semaphore>,
    open: Arc<OpenConnections>,
    refusals: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    stopping: CancellationToken,
    closing: CancellationToken,
    connections: TaskTracker,
    /// Connection clocks count milliseconds from here.
    epoch: Instant,
}

impl Acceptor {
    async fn run(self) {
        let mut backoff = Duration::ZERO;
        loop {
            let accepted = tokio::select! {
                () = self.stopping.cancelled() => return,
                accepted = self.listener.accept() => accepted,
            };
            let stream = match accepted {
                Ok((stream, _peer)) => {
                    backoff = Duration::ZERO;
                    stream
                }
                // The client gave up before it was accepted: nothing to do.
                Err(error) if is_connection_error(&error) => continue,
                Err(error) => {
                    if backoff.is_zero() {
                        tracing::error!(%error, "cannot accept connections; retrying (if the error is `Too many open files`, raise the open-file limit, e.g. `LimitNOFILE=` in the service unit)");
                        backoff = Duration::from_millis(10);
                    } else {
                        tracing::debug!(%error, "cannot accept connections");
                        backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    }
                    tokio::select! {
                        () = self.stopping.cancelled() => return,
                        () = tokio::time::sleep(backoff) => continue,
                    }
                }
            };
            // Media messages are small and latency-bound: no Nagle delay behind an
            // unacknowledged one.
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY");
            }
            match self.slot().await {
                Some(permit) => self.serve(stream, permit),
                None => self.refuse(stream),
            }
        }
    }

    /// A free slot, or one made by closing the longest-quiet connection; `None` when every
    /// connection is busy.
    async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Some(permit);
        }
        let victim = self.open.quietest()?;
        victim.displace();
        tokio::time::timeout(ROOM_WAIT, self.slots.clone().acquire_owned())
            .await
            .ok()?
            .ok()
    }

    /// Serve `stream` on its own task.
    fn serve(&self, stream: TcpStream, permit: OwnedSemaphorePermit) {
        let conn = Arc::new(ConnState::new(self.epoch));
        let id = self.open.insert(conn.clone());
        self.metrics.http_connection_opened();
        let io = CountedIo {
            stream,
            conn: conn.clone(),
            open: self.open.clone(),
            id,
            metrics: self.metrics.clone(),
            _permit: permit,
        };
        let service = Tracked {
            app: TowerToHyperService::new(self.app.clone()),
            conn: conn.clone(),
            body_timeout: self.limits.body_timeout,
            metrics: self.metrics.clone(),
        };
        let watch = Watch {
            conn,
            limits: self.limits,
            metrics: self.metrics.clone(),
            stopping: self.stopping.clone(),
            closing: self.closing.clone(),
        };
        self.connections.spawn(watch.serve(io, service));
    }

    /// Answer `503` and close, on a task of its own so the client can read it first.
    fn refuse(&self, mut stream: TcpStream) {
        self.metrics.http_connection_refused();
        let Ok(permit) = self.refusals.clone().try_acquire_owned() else {
            return;
        };
        tracing::debug!("connection refused: every slot is serving a request or a stream");
        tokio::spawn(async move {
            let answer = async {
                stream.write_all(REFUSAL).await?;
                stream.shutdown().await?;
                // Read what the client sends until it closes, so closing does not reset the
                // connection under the answer it has not read yet.
                let mut sink = [0u8; 1024];
                while tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await? > 0 {}
                io::Result::Ok(())
            };
            let _ = tokio::time::timeout(REFUSAL_LINGER, answer).await;
            drop(permit);
        });
    }
}

/// Accept errors about one connection (the client left), not about the listener.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// The open connections, for choosing which to close at the cap.
#[derive(Default)]
struct OpenConnections {
    by_id: Mutex<HashMap<u64, Arc<ConnState>>>,
    next_id: AtomicU64,
    /// The most open at once since memory was last given back.
    peak: AtomicUsize,
}

impl OpenConnections {
    fn insert(&self, conn: Arc<ConnState>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let open = {
            let mut by_id = self.lock();
            by_id.insert(id, conn);
            by_id.len()
        };
        self.peak.fetch_max(open, Ordering::Relaxed);
        id
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// The connection quiet longest that may be closed: no request in progress, not a media
    /// stream, not already chosen.
    fn quietest(&self) -> Option<Arc<ConnState>> {
        self.lock()
            .values()
            .filter(|conn| conn.displaceable())
            .min_by_key(|conn| conn.quiet_since_ms())
            .cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<ConnState>>> {
        // The map holds no invariant a panicking holder could break halfway.
        self.by_id
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
