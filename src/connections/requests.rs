//! Each request on a connection: tracked from its headers until its response is handed over,
//! its body bounded by `body_timeout`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::service::TowerToHyperService;
use tokio::time::Instant;

use super::watch::ConnState;
use crate::telemetry::Metrics;

/// The route table, wrapped to track each request on its connection and bound its body.
#[derive(Clone)]
pub(super) struct Tracked {
    pub(super) app: TowerToHyperService<axum::Router>,
    pub(super) conn: Arc<ConnState>,
    pub(super) body_timeout: Duration,
    pub(super) metrics: Arc<Metrics>,
}

impl hyper::service::Service<Request<Incoming>> for Tracked {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<TrackedBody>, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let in_progress = InProgress::begin(self.conn.clone());
        let body_timeout = self.body_timeout;
        let metrics = self.metrics.clone();
        let request = request.map(|body| {
            Body::new(TimedBody {
                inner: body,
                deadline: Instant::now() + body_timeout,
                timer: None,
                metrics,
            })
        });
        let response = self.app.call(request);
        Box::pin(async move {
            let response = response.await?;
            if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                in_progress.conn.upgraded.store(true, Ordering::Release);
            }
            Ok(response.map(|body| TrackedBody {
                inner: body,
                _in_progress: in_progress,
            }))
        })
    }
}

/// A request in progress on its connection, from its headers until its response is handed
/// over (or abandoned).
struct InProgress {
    pub(super) conn: Arc<ConnState>,
}

impl InProgress {
    pub(super) fn begin(conn: Arc<ConnState>) -> InProgress {
        conn.request_began();
        InProgress { conn }
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.conn.request_ended();
    }
}

/// A response body that keeps its request in progress until hyper is done with it.
pub(super) struct TrackedBody {
    inner: Body,
    _in_progress: InProgress,
}

impl http_body::Body for TrackedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that fails once `deadline` passes before it has all arrived.
struct TimedBody {
    pub(super) inner: Incoming,
    pub(super) deadline: Instant,
    /// Set the first time the body has to wait (most never do: they came with the headers).
    pub(super) timer: Option<Pin<Box<tokio::time::Sleep>>>,
    pub(super) metrics: Arc<Metrics>,
}

/// The request body did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within server.body_timeout_secs")]
struct BodyTimedOut;

impl http_body::Body for TimedBody {
    type Data = axum::body::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|frame| frame.map_err(Into::into))),
            Poll::Pending => match this
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(this.deadline)))
                .as_mut()
                .poll(cx)
            {
                Poll::Ready(()) => {
                    this.metrics.http_connection_timed_out();
                    tracing::debug!("request body too slow; answering 400");
                    Poll::Ready(Some(Err(BodyTimedOut.into())))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
