//! This node's counters: what the call path, the dispatcher and identity services count, as
//! lock-free atomics shared by every call.
//!
//! Bumping one is a single relaxed add, with no lock, so the media path can count every frame.
//! Nothing here carries a caller; `crate::admin::metrics` renders a reading for `GET /metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of this node since it started.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Bumped for every inbound and outbound media frame: each on its own cache line, so the
    /// two hottest counters do not make the cores fight over one line.
    frames_in: PaddedCounter,
    frames_out: PaddedCounter,
    calls_started: AtomicU64,
    calls_ended: AtomicU64,
    reservations: AtomicU64,
    abandoned: AtomicU64,
    verifications_passed: AtomicU64,
    verifications_failed: AtomicU64,
    store_errors: AtomicU64,
    calls_expired: AtomicU64,
    callbacks_placed: AtomicU64,
    callback_rest_errors: AtomicU64,
    streams_stalled: AtomicU64,
    http_connections: AtomicU64,
    http_connections_refused: AtomicU64,
    http_connections_displaced: AtomicU64,
    http_connections_timed_out: AtomicU64,
}

#[derive(Debug, Default)]
#[repr(align(64))]
struct PaddedCounter(AtomicU64);

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// One media frame received from Twilio.
    pub fn frame_in(&self) {
        bump(&self.frames_in.0, 1);
    }

    /// `n` media frames received from Twilio (a call adds its frames in batches, so thousands
    /// of calls do not all write this counter 50 times a second).
    pub fn frames_in(&self, n: u64) {
        bump(&self.frames_in.0, n);
    }

    /// `n` media frames sent to Twilio.
    pub fn frame_out(&self, n: u64) {
        bump(&self.frames_out.0, n);
    }

    /// A call's media stream started.
    pub fn call_started(&self) {
        bump(&self.calls_started, 1);
    }

    /// A call ended (the caller hung up or careline closed the stream for good).
    pub fn call_ended(&self) {
        bump(&self.calls_ended, 1);
    }

    /// A call was reserved for an agent.
    pub fn reservation(&self) {
        bump(&self.reservations, 1);
    }

    /// A caller hung up while waiting in a queue.
    pub fn abandoned(&self) {
        bump(&self.abandoned, 1);
    }

    /// An identity verification was decided for a call: passed, or failed for good (out of
    /// attempts or locked out). Counted by [`crate::identity::IdentityService`].
    pub fn verification(&self, passed: bool) {
        if passed {
            bump(&self.verifications_passed, 1);
        } else {
            bump(&self.verifications_failed, 1);
        }
    }

    /// A store operation failed (Redis unreachable, slow, or holding unexpected data).
    pub fn store_error(&self) {
        bump(&self.store_errors, 1);
    }

    /// A call's record passed its safety deadline (every signal lost) and what it held was
    /// released.
    pub fn call_expired(&self) {
        bump(&self.calls_expired, 1);
    }

    /// careline asked Twilio to place a callback call, and Twilio took it.
    pub fn callback_placed(&self) {
        bump(&self.callbacks_placed, 1);
    }

    /// Twilio's REST API refused a callback call or did not answer (it is retried).
    pub fn callback_rest_error(&self) {
        bump(&self.callback_rest_errors, 1);
    }

    /// A media stream was dropped because its peer stopped reading (a write did not complete
    /// in time).
    pub fn stream_stalled(&self) {
        bump(&self.streams_stalled, 1);
    }

    /// An HTTP connection was accepted (it counts until it closes).
    pub fn http_connection_opened(&self) {
        bump(&self.http_connections, 1);
    }

    /// An accepted HTTP connection closed.
    pub fn http_connection_closed(&self) {
        self.http_connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// A connection beyond `server.max_connections` was answered 503: every open one was busy.
    pub fn http_connection_refused(&self) {
        bump(&self.http_connections_refused, 1);
    }

    /// The longest-quiet connection was closed to make room under `server.max_connections`.
    pub fn http_connection_displaced(&self) {
        bump(&self.http_connections_displaced, 1);
    }

    /// A connection was closed (or a request refused) because its client was too slow:
    /// headers, body, or reading the response, or it stayed idle too long.
    pub fn http_connection_timed_out(&self) {
        bump(&self.http_connections_timed_out, 1);
    }

    /// The counters as they are now.
    pub fn counters(&self) -> Counters {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Counters {
            frames_in: read(&self.frames_in.0),
            frames_out: read(&self.frames_out.0),
            calls_started: read(&self.calls_started),
            calls_ended: read(&self.calls_ended),
            reservations: read(&self.reservations),
            abandoned: read(&self.abandoned),
            verifications_passed: read(&self.verifications_passed),
            verifications_failed: read(&self.verifications_failed),
            store_errors: read(&self.store_errors),
            calls_expired: read(&self.calls_expired),
            callbacks_placed: read(&self.callbacks_placed),
            callback_rest_errors: read(&self.callback_rest_errors),
            streams_stalled: read(&self.streams_stalled),
            http_connections: read(&self.http_connections),
            http_connections_refused: read(&self.http_connections_refused),
            http_connections_displaced: read(&self.http_connections_displaced),
            http_connections_timed_out: read(&self.http_connections_timed_out),
        }
    }
}

/// A reading of [`Metrics`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    pub frames_in: u64,
    pub frames_out: u64,
    pub calls_started: u64,
    pub calls_ended: u64,
    pub reservations: u64,
    pub abandoned: u64,
    pub verifications_passed: u64,
    pub verifications_failed: u64,
    pub store_errors: u64,
    pub calls_expired: u64,
    pub callbacks_placed: u64,
    pub callback_rest_errors: u64,
    pub streams_stalled: u64,
    /// Open now (a gauge, not a count).
    pub http_connections: u64,
    pub http_connections_refused: u64,
    pub http_connections_displaced: u64,
    pub http_connections_timed_out: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_count_what_the_call_path_reports() {
        let metrics = Metrics::new();
        metrics.frame_in();
        metrics.frame_in();
        metrics.frame_out(3);
        metrics.call_started();
        metrics.call_ended();
        metrics.reservation();
        metrics.abandoned();
        metrics.verification(true);
        metrics.verification(true);
        metrics.verification(false);
        metrics.store_error();
        metrics.stream_stalled();
        metrics.http_connection_opened();
        metrics.http_connection_opened();
        metrics.http_connection_closed();
        metrics.http_connection_refused();
        metrics.http_connection_displaced();
        metrics.http_connection_timed_out();
        assert_eq!(
            metrics.counters(),
            Counters {
                frames_in: 2,
                frames_out: 3,
                calls_started: 1,
                calls_ended: 1,
                reservations: 1,
                abandoned: 1,
                verifications_passed: 2,
                verifications_failed: 1,
                store_errors: 1,
                calls_expired: 0,
                callbacks_placed: 0,
                callback_rest_errors: 0,
                streams_stalled: 1,
                http_connections: 1,
                http_connections_refused: 1,
                http_connections_displaced: 1,
                http_connections_timed_out: 1,
            }
        );
    }
}
