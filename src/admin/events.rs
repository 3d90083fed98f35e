//! `GET /api/v1/events`: the node's change events ([`crate::telemetry::events`]) as Server-Sent
//! Events, for dashboards and the agent workspace.
//!
//! A subscriber too slow to keep up skips the events it missed and is sent a `resync` event
//! instead, telling it to refetch everything.

use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::access::AccessPolicy;
use crate::call::CallServices;
use crate::telemetry::events::ChangeEvent;

/// How often an idle event stream sends a comment, so proxies keep it open.
pub const KEEP_ALIVE_EVERY: Duration = Duration::from_secs(15);

/// `GET /api/v1/events`: the change events as Server-Sent Events, for anyone who may read the
/// live state. Browsers' `EventSource` cannot send headers, so this route also takes the token
/// as `?token=` (the header wins when both are present).
///
/// The stream opens with `event: ready`; then `event: change` per [`ChangeEvent`], `event:
/// resync` when the client fell behind and should refetch everything, and a comment every
/// [`KEEP_ALIVE_EVERY`]. It ends when the server shuts down (`EventSource` reconnects).
pub async fn stream_events(
    State(state): State<CallServices>,
    State(access): State<AccessPolicy>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let token = query.as_deref().and_then(query_token);
    if let Err(refusal) = access.viewer_or_query_token(&headers, token.as_deref()) {
        return refusal.into_response();
    }
    let receiver = state.events.subscribe();
    let closed = state.events.closed();
    let ready = futures_util::stream::once(async {
        Ok::<Event, std::convert::Infallible>(Event::default().event("ready").data("{}"))
    });
    let changes =
        futures_util::stream::unfold((receiver, closed), |(mut receiver, closed)| async move {
            let item = next_item(&mut receiver, &closed).await?;
            Some((Ok(item.into_event()), (receiver, closed)))
        });
    Sse::new(ready.chain(changes))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE_EVERY))
        .into_response()
}

/// What an event stream sends next.
#[derive(Debug, PartialEq, Eq)]
enum StreamItem {
    Change(ChangeEvent),
    /// The subscriber fell this many events behind and skipped them: refetch everything.
    Resync {
        missed: u64,
    },
}

impl StreamItem {
    fn into_event(self) -> Event {
        match self {
            StreamItem::Change(change) => match serde_json::to_string(&change) {
                Ok(json) => Event::default().event("change").data(json),
                // Cannot happen for these plain types; a resync is the safe answer anyway.
                Err(_) => Event::default().event("resync").data("{}"),
            },
            StreamItem::Resync { missed } => Event::default()
                .event("resync")
                .data(format!("{{\"missed\":{missed}}}")),
        }
    }
}

/// The next item for a stream, or `None` once the server is shutting down.
async fn next_item(
    receiver: &mut broadcast::Receiver<ChangeEvent>,
    closed: &CancellationToken,
) -> Option<StreamItem> {
    tokio::select! {
        biased;
        () = closed.cancelled() => None,
        received = receiver.recv() => match received {
            Ok(change) => Some(StreamItem::Change(change)),
            Err(broadcast::error::RecvError::Lagged(missed)) => Some(StreamItem::Resync { missed }),
            Err(broadcast::error::RecvError::Closed) => None,
        },
    }
}

/// The `token` parameter of a query string.
fn query_token(query: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "token")
        .map(|(_, value)| value.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::events::{Change, EventBus, EventKind, SUBSCRIBER_BUFFER};

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_told_to_resync_then_continues() {
        let bus = EventBus::local("node-a".to_owned());
        let mut receiver = bus.subscribe();
        let closed = bus.closed();
        let total = SUBSCRIBER_BUFFER + 10;
        for n in 0..total {
            bus.publish(ChangeEvent::new(EventKind::Agent, Change::Status, n as i64));
        }
        assert_eq!(
            next_item(&mut receiver, &closed).await,
            Some(StreamItem::Resync { missed: 10 })
        );
        let Some(StreamItem::Change(oldest_kept)) = next_item(&mut receiver, &closed).await else {
            panic!("changes continue after the resync");
        };
        assert_eq!(oldest_kept.at_ms, 10);
        closed.cancel();
        assert_eq!(next_item(&mut receiver, &closed).await, None);
    }

    #[test]
    fn the_token_is_read_from_the_query_string() {
        assert_eq!(
            query_token("a=1&token=abc%2Bdef"),
            Some("abc+def".to_owned())
        );
        assert_eq!(query_token("tokens=x"), None);
    }
}
