//! One connection: its state, its socket (which notes when bytes arrive and writes wait, and
//! holds the connection's slot), and the task that serves it and closes it on a timeout, to make
//! room, or at shutdown.

use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::requests::Tracked;
use super::{ConnectionLimits, OpenConnections};
use crate::telemetry::Metrics;

/// One connection's state, shared by its socket, its requests and its watch. Clocks are
/// milliseconds since the acceptor's epoch, plus one (0: not set).
pub(super) struct ConnState {
    pub(super) epoch: Instant,
    /// Requests whose response is not fully handed to hyper yet.
    pub(super) in_flight: AtomicU32,
    /// When the last response was handed over (or the connection accepted).
    pub(super) quiet_since_ms: AtomicU64,
    /// When the next request's first byte arrived; 0 while none has.
    pub(super) head_started_ms: AtomicU64,
    /// When a write began to wait for the client to read; 0 while none waits.
    pub(super) write_blocked_ms: AtomicU64,
    /// Switched protocols (a media stream): never idle, never displaced.
    pub(super) upgraded: AtomicBool,
    /// Chosen to make room for a newcomer.
    pub(super) displaced: AtomicBool,
    /// Wakes the watch to look again.
    pub(super) changed: Notify,
}

impl ConnState {
    pub(super) fn new(epoch: Instant) -> ConnState {
        let conn = ConnState {
            epoch,
            in_flight: AtomicU32::new(0),
            quiet_since_ms: AtomicU64::new(0),
            head_started_ms: AtomicU64::new(0),
            write_blocked_ms: AtomicU64::new(0),
            upgraded: AtomicBool::new(false),
            displaced: AtomicBool::new(false),
            changed: Notify::new(),
        };
        conn.quiet_since_ms.store(conn.now_ms(), Ordering::Relaxed);
        conn
    }

    pub(super) fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    }

    pub(super) fn at(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms.saturating_sub(1))
    }

    pub(super) fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0 || self.upgraded.load(Ordering::Acquire)
    }

    pub(super) fn displaceable(&self) -> bool {
        !self.busy() && !self.displaced.load(Ordering::Relaxed)
    }

    /// Quiet since: the first byte of a request whose headers are still coming, else the end
    /// of the last response.
    pub(super) fn quiet_since_ms(&self) -> u64 {
        match self.head_started_ms.load(Ordering::Relaxed) {
            0 => self.quiet_since_ms.load(Ordering::Relaxed),
            started => started,
        }
    }

    pub(super) fn displace(&self) {
        self.displaced.store(true, Ordering::Relaxed);
        self.changed.notify_one();
    }

    /// Bytes arrived from the client.
    pub(super) fn bytes_arrived(&self) {
        if self.busy() || self.head_started_ms.load(Ordering::Relaxed) != 0 {
            return;
        }
        self.head_started_ms.store(self.now_ms(), Ordering::Relaxed);
        self.changed.notify_one();
    }

    pub(super) fn write_waits(&self) {
        if self.write_blocked_ms.load(Ordering::Relaxed) == 0 {
            self.write_blocked_ms
                .store(self.now_ms(), Ordering::Relaxed);
            self.changed.notify_one();
        }
    }

    pub(super) fn write_went_through(&self) {
        if self.write_blocked_ms.load(Ordering::Relaxed) != 0 {
            self.write_blocked_ms.store(0, Ordering::Relaxed);
        }
    }

    pub(super) fn request_began(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started_ms.store(0, Ordering::Relaxed);
    }

    pub(super) fn request_ended(&self) {
        self.quiet_since_ms.store(self.now_ms(), Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.changed.notify_one();
    }

    /// Why the connection should close now, if it should; else when to look again (`None`:
    /// when something changes).
    pub(super) fn check(&self, limits: &ConnectionLimits) -> Result<Option<Instant>, &'static str> {
        if self.upgraded.load(Ordering::Acquire) {
            return Ok(None);
        }
        let now = Instant::now();
        let due = |since_ms: u64, limit: Duration, reason| {
            let at = self.at(since_ms) + limit;
            if at <= now { Err(reason) } else { Ok(Some(at)) }
        };
        let blocked = self.write_blocked_ms.load(Ordering::Relaxed);
        if blocked != 0 {
            return due(blocked, limits.idle_timeout, "the client stopped reading");
        }
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Ok(None);
        }
        match self.head_started_ms.load(Ordering::Relaxed) {
            0 => due(
                self.quiet_since_ms.load(Ordering::Relaxed),
                limits.idle_timeout,
                "idle",
            ),
            started => due(started, limits.header_timeout, "headers too slow"),
        }
    }
}

/// A connection's socket: notes when bytes arrive and when writes wait, and gives back its slot
/// when it closes (which for a media stream is when the call's session lets go of it).
pub(super) struct CountedIo {
    pub(super) stream: TcpStream,
    pub(super) conn: Arc<ConnState>,
    pub(super) open: Arc<OpenConnections>,
    pub(super) id: u64,
    pub(super) metrics: Arc<Metrics>,
    pub(super) _permit: OwnedSemaphorePermit,
}

impl Drop for CountedIo {
    fn drop(&mut self) {
        self.open.remove(self.id);
        self.metrics.http_connection_closed();
    }
}

impl AsyncRead for CountedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.conn.bytes_arrived();
        }
        poll
    }
}

impl AsyncWrite for CountedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.note_write(poll.is_pending());
        poll
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.note_write(poll.is_pending());
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

impl CountedIo {
    pub(super) fn note_write(&self, waits: bool) {
        if waits {
            self.conn.write_waits();
        } else {
            self.conn.write_went_through();
        }
    }
}

/// One connection's task: serves it and closes it when a timeout passes, when it is displaced,
/// or at shutdown.
pub(super) struct Watch {
    pub(super) conn: Arc<ConnState>,
    pub(super) limits: ConnectionLimits,
    pub(super) metrics: Arc<Metrics>,
    pub(super) stopping: CancellationToken,
    pub(super) closing: CancellationToken,
}

impl Watch {
    pub(super) async fn serve(self, io: CountedIo, service: Tracked) {
        let mut http = hyper::server::conn::http1::Builder::new();
        // Idle waits are ours (see the module note).
        http.header_read_timeout(None);
        let mut connection = pin!(
            http.serve_connection(TokioIo::new(io), service)
                .with_upgrades()
        );
        let mut stopping = false;
        loop {
            let look_again = match self.conn.check(&self.limits) {
                Ok(at) => at,
                Err(reason) => {
                    self.metrics.http_connection_timed_out();
                    tracing::debug!(reason, "closing an HTTP connection");
                    return;
                }
            };
            tokio::select! {
                outcome = connection.as_mut() => {
                    if let Err(error) = outcome {
                        tracing::debug!(%error, "HTTP connection ended with an error");
                    }
                    return;
                }
                () = self.closing.cancelled() => return,
                () = self.stopping.cancelled(), if !stopping => {
                    stopping = true;
                    connection.as_mut().graceful_shutdown();
                }
                () = self.conn.changed.notified() => {
                    if self.conn.displaced.load(Ordering::Relaxed) {
                        if self.conn.busy() {
                            self.conn.displaced.store(false, Ordering::Relaxed);
                        } else {
                            self.metrics.http_connection_displaced();
                            tracing::debug!("closing the longest-quiet HTTP connection to make room");
                            return;
                        }
                    }
                }
                () = sleep_until(look_again) => {}
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
