//! `GET /metrics`: this node's counters and gauges read at scrape time, in the Prometheus text
//! format.
//!
//! The gauges are this node's calls by phase (from the call registry), and from the store, which
//! every node shares, the depth and longest wait of each queue and the agents by state. Counters
//! are per node (sum them across nodes); the store gauges are the same on every node (take one,
//! or `max`).
//!
//! Nothing here carries a caller: labels are queue names, states and outcomes only.
//! `/metrics` is read like the admin API by a viewer: a bearer token when tokens are set, open
//! on a loopback-only server without tokens.

use std::collections::BTreeMap;
use std::fmt::{Display, Write as _};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::access::AccessPolicy;
use super::queues::StoreGauges;
use crate::call::CallServices;
use crate::store::CallPhase;
use crate::telemetry::Counters;

/// What a scrape reads besides the counters.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    /// Every node's calls by phase (from the call records).
    pub calls_by_phase: BTreeMap<&'static str, u64>,
    /// Media streams this node carries.
    pub streams_here: u64,
    /// From the store; `None` when it could not be read.
    pub store: Option<StoreGauges>,
}

/// The Prometheus text format (version 0.0.4), one metric family at a time.
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (index, (label, value)) in labels.iter().enumerate() {
                if index > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{label}=\"{}\"", escape_label_value(value));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "counter", help);
        self.sample(name, &[], value);
    }
}

/// Label values escape backslash, double quote and line feed.
pub fn escape_label_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// HELP text escapes backslash and line feed.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// The whole exposition: every counter, then the gauges.
pub fn render(counters: &Counters, gauges: &Gauges) -> String {
    let mut out = Exposition {
        text: String::with_capacity(4096),
    };
    out.counter(
        "careline_media_frames_received_total",
        "Media frames received from Twilio.",
        counters.frames_in,
    );
    out.counter(
        "careline_media_frames_sent_total",
        "Media frames sent to Twilio.",
        counters.frames_out,
    );
    out.counter(
        "careline_calls_started_total",
        "Calls whose media stream started on this node.",
        counters.calls_started,
    );
    out.counter(
        "careline_calls_ended_total",
        "Calls that ended on this node.",
        counters.calls_ended,
    );
    out.counter(
        "careline_reservations_total",
        "Calls reserved for an agent by this node.",
        counters.reservations,
    );
    out.counter(
        "careline_calls_abandoned_total",
        "Callers who hung up while waiting in a queue.",
        counters.abandoned,
    );
    out.family(
        "careline_verifications_total",
        "counter",
        "Identity verifications decided, by outcome: passed, or failed (out of attempts or locked out).",
    );
    out.sample(
        "careline_verifications_total",
        &[("outcome", "passed")],
        counters.verifications_passed,
    );
    out.sample(
        "careline_verifications_total",
        &[("outcome", "failed")],
        counters.verifications_failed,
    );
    out.counter(
        "careline_calls_expired_total",
        "Calls whose records passed their safety deadline with every signal lost; what they held (a queue place, an agent) was released.",
        counters.calls_expired,
    );
    out.counter(
        "careline_callbacks_placed_total",
        "Callback calls careline asked Twilio to place, and Twilio took.",
        counters.callbacks_placed,
    );
    out.counter(
        "careline_callback_rest_errors_total",
        "Callback calls Twilio's REST API refused or did not answer in time (each is retried).",
        counters.callback_rest_errors,
    );
    out.counter(
        "careline_streams_stalled_total",
        &format!(
            "Media streams dropped because the peer stopped reading: a write did not complete within {} s.",
            crate::call::session::STREAM_WRITE_TIMEOUT.as_secs()
        ),
        counters.streams_stalled,
    );
    out.counter(
        "careline_http_connections_refused_total",
        "HTTP connections answered 503 at server.max_connections because every open one was busy.",
        counters.http_connections_refused,
    );
    out.counter(
        "careline_http_connections_displaced_total",
        "Idle HTTP connections closed to make room for a new one at server.max_connections.",
        counters.http_connections_displaced,
    );
    out.counter(
        "careline_http_connections_timed_out_total",
        "HTTP connections closed, or requests answered 400, because the client was too slow (headers, body, reading the response) or idle too long.",
        counters.http_connections_timed_out,
    );
    out.counter(
        "careline_store_errors_total",
        "Store operations that failed (Redis unreachable, slow, or holding unexpected data).",
        counters.store_errors,
    );

    out.family(
        "careline_calls",
        "gauge",
        "Calls on every node by phase: connecting, menus, queued, between (streams), ringing, connected.",
    );
    for (phase, count) in &gauges.calls_by_phase {
        out.sample("careline_calls", &[("phase", phase)], count);
    }
    out.family(
        "careline_streams",
        "gauge",
        "Media streams this node carries.",
    );
    out.sample("careline_streams", &[], gauges.streams_here);
    out.family(
        "careline_http_connections",
        "gauge",
        "HTTP connections open on this node, media streams included (at most server.max_connections).",
    );
    out.sample("careline_http_connections", &[], counters.http_connections);

    out.family(
        "careline_store_up",
        "gauge",
        "1 if the store answered this scrape; the queue and agent gauges are missing when 0.",
    );
    out.sample("careline_store_up", &[], u8::from(gauges.store.is_some()));
    let Some(store) = &gauges.store else {
        return out.text;
    };
    out.family(
        "careline_queue_waiting_calls",
        "gauge",
        "Calls waiting in each queue (all nodes).",
    );
    for (queue, depth) in &store.queues {
        out.sample(
            "careline_queue_waiting_calls",
            &[("queue", queue)],
            depth.waiting,
        );
    }
    out.family(
        "careline_queue_longest_wait_seconds",
        "gauge",
        "How long the longest-waiting call of each queue has waited; 0 when none waits.",
    );
    for (queue, depth) in &store.queues {
        out.sample(
            "careline_queue_longest_wait_seconds",
            &[("queue", queue)],
            depth.longest_wait_secs,
        );
    }
    out.family(
        "careline_agents",
        "gauge",
        "Configured agents by state: available (and idle), reserved, on_call, wrap_up, break, offline.",
    );
    for (state, count) in store.agents.by_state() {
        out.sample("careline_agents", &[("state", state)], count);
    }
    out.text
}

/// Every node's calls by phase, every phase listed (zeros included); `None` when the store
/// could not be read.
async fn calls_by_phase(state: &CallServices) -> Option<BTreeMap<&'static str, u64>> {
    let mut phases: BTreeMap<&'static str, u64> = CallPhase::ALL
        .into_iter()
        .map(|phase| (phase.as_str(), 0))
        .collect();
    for call in state.calls.snapshot().await.ok()? {
        *phases.entry(call.phase.as_str()).or_default() += 1;
    }
    Some(phases)
}

/// `GET /metrics`.
pub async fn scrape(
    State(state): State<CallServices>,
    State(access): State<AccessPolicy>,
    headers: HeaderMap,
) -> Response {
    if let Err(refusal) = access.viewer(&headers) {
        return refusal.into_response();
    }
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let store = match super::queues::store_gauges(&state, now_ms).await {
        Ok(gauges) => Some(gauges),
        Err(error) => {
            state.metrics.store_error();
            tracing::warn!(%error, "store gauges could not be read for /metrics");
            None
        }
    };
    let gauges = Gauges {
        calls_by_phase: calls_by_phase(&state).await.unwrap_or_default(),
        streams_here: u64::try_from(state.calls.streams_here()).unwrap_or(u64::MAX),
        store,
    };
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&state.metrics.counters(), &gauges),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::queues::{AgentCounts, QueueDepth};

    fn sample_lines(text: &str) -> Vec<&str> {
        text.lines().filter(|line| !line.starts_with('#')).collect()
    }

    #[test]
    fn every_family_has_help_and_type_before_its_samples() {
        let gauges = Gauges {
            calls_by_phase: [("connecting", 0), ("queued", 2), ("ringing", 0)]
                .into_iter()
                .collect(),
            streams_here: 2,
            store: Some(StoreGauges {
                queues: vec![(
                    "portal".to_owned(),
                    QueueDepth {
                        waiting: 3,
                        longest_wait_secs: 75,
                    },
                )],
                agents: AgentCounts {
                    available: 1,
                    on_call: 2,
                    ..AgentCounts::default()
                },
            }),
        };
        let text = render(&Counters::default(), &gauges);
        let mut declared: Vec<&str> = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("name and type");
                assert!(kind == "counter" || kind == "gauge", "{line}");
                assert!(
                    text.contains(&format!("# HELP {name} ")),
                    "{name} has no HELP"
                );
                declared.push(name);
            } else if !line.starts_with('#') {
                let name = line
                    .split(['{', ' '])
                    .next()
                    .expect("a sample starts with its name");
                assert_eq!(declared.last(), Some(&name), "{line} follows its TYPE");
            }
        }
        assert!(text.ends_with('\n'));
        let samples = sample_lines(&text);
        for expected in [
            "careline_calls{phase=\"queued\"} 2",
            "careline_streams 2",
            "careline_store_up 1",
            "careline_queue_waiting_calls{queue=\"portal\"} 3",
            "careline_queue_longest_wait_seconds{queue=\"portal\"} 75",
            "careline_agents{state=\"on_call\"} 2",
            "careline_agents{state=\"break\"} 0",
            "careline_verifications_total{outcome=\"failed\"} 0",
        ] {
            assert!(samples.contains(&expected), "{expected} in\n{text}");
        }
    }

    #[test]
    fn without_the_store_only_this_nodes_figures_are_shown() {
        let text = render(&Counters::default(), &Gauges::default());
        assert!(sample_lines(&text).contains(&"careline_store_up 0"));
        assert!(!text.contains("careline_queue_waiting_calls"));
        assert!(!text.contains("careline_agents"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label_value(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label_value("two\nlines"), "two\\nlines");
        let gauges = Gauges {
            calls_by_phase: BTreeMap::new(),
            streams_here: 0,
            store: Some(StoreGauges {
                queues: vec![("odd\"queue".to_owned(), QueueDepth::default())],
                agents: AgentCounts::default(),
            }),
        };
        let text = render(&Counters::default(), &gauges);
        assert!(text.contains("careline_queue_waiting_calls{queue=\"odd\\\"queue\"} 0"));
    }
}
