//! Queue statistics over time, `GET /api/v1/stats?queue=&from=&to=&interval=day|hour|15m`: the
//! store's counters per bucket with the figures supervisors read, and the total of the range.
//!
//! Buckets are UTC days, hours or quarter hours. `from` and `to` are RFC 3339 times, or dates
//! (`YYYY-MM-DD`, a UTC day): a date as `to` includes that whole day. Every bucket that overlaps
//! `[from, to)` is listed, so the first starts at or before `from`. Without `queue` the counters
//! of every configured queue are added up. Call-level figures (IVR containment, verification
//! pass rate) belong to no queue and are the same whichever queue is asked for.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::future::try_join_all;
use serde::Serialize;
use serde_json::json;

use super::access::AccessPolicy;
use crate::call::CallServices;
use crate::store::stats::{self, CallCounters, DAY_MS, MAX_BUCKETS, QueueCounters};
use crate::store::{StatsBucket, StatsInterval, StoreError};

const ACCEPTED_TIMES: &str = "an RFC 3339 time (2026-01-05T08:00:00Z or 2026-01-05T08:00:00-06:00) or a UTC date (2026-01-05)";

/// A request as understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRequest {
    pub queue: Option<String>,
    pub from_ms: i64,
    pub to_ms: i64,
    pub interval: StatsInterval,
}

/// Parse the query string, with `now_ms` for the defaults: `from` = the start of today (UTC),
/// `to` = now, `interval` = `day`. The error says what is accepted.
pub fn parse_request(query: Option<&str>, now_ms: i64) -> Result<HistoryRequest, String> {
    let mut request = HistoryRequest {
        queue: None,
        from_ms: StatsInterval::Day.bucket_start(now_ms),
        to_ms: now_ms,
        interval: StatsInterval::Day,
    };
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match name.as_ref() {
            "queue" => request.queue = Some(value.into_owned()).filter(|queue| !queue.is_empty()),
            "from" => request.from_ms = parse_time("from", &value, false)?,
            "to" => request.to_ms = parse_time("to", &value, true)?,
            "interval" => {
                request.interval = StatsInterval::from_name(&value)
                    .ok_or_else(|| "`interval` must be `day`, `hour` or `15m`".to_owned())?;
            }
            other => {
                return Err(format!(
                    "unknown parameter `{other}`; accepted: queue, from, to, interval"
                ));
            }
        }
    }
    if request.from_ms >= request.to_ms {
        return Err("`from` must be before `to`".to_owned());
    }
    let buckets = request
        .interval
        .bucket_count(request.from_ms, request.to_ms);
    if buckets > MAX_BUCKETS as u64 {
        return Err(format!(
            "the range covers {buckets} buckets of `{}`; at most {MAX_BUCKETS} at once: ask for a shorter range or a larger interval (`hour`, `day`)",
            request.interval.name()
        ));
    }
    Ok(request)
}

/// An RFC 3339 time, or a UTC date: its start, or as an end its whole day.
fn parse_time(name: &str, value: &str, is_end: bool) -> Result<i64, String> {
    if let Ok(at) = value.parse::<jiff::Timestamp>() {
        return Ok(at.as_millisecond());
    }
    let date = (value.len() == 10)
        .then(|| value.parse::<jiff::civil::Date>().ok())
        .flatten()
        .and_then(|date| date.to_zoned(jiff::tz::TimeZone::UTC).ok());
    match date {
        Some(day) => {
            let start = day.timestamp().as_millisecond();
            Ok(if is_end { start + DAY_MS } else { start })
        }
        None => Err(format!("`{name}` must be {ACCEPTED_TIMES}")),
    }
}

/// The figures of one bucket, or of a whole range.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub offered: u64,
    pub answered: u64,
    pub abandoned: u64,
    /// Answered plus callbacks: offered calls a person took or that left with a callback.
    pub handled: u64,
    pub callbacks: u64,
    pub service_level: Option<f64>,
    pub asa_secs: Option<f64>,
    pub abandon_rate: Option<f64>,
    pub ivr_containment: Option<f64>,
    pub verification_pass_rate: Option<f64>,
}

impl Figures {
    pub fn of(queue: &QueueCounters, calls: &CallCounters) -> Figures {
        Figures {
            offered: queue.offered,
            answered: queue.answered,
            abandoned: queue.abandoned,
            handled: queue.handled(),
            callbacks: queue.callbacks,
            service_level: queue.service_level(),
            asa_secs: queue.asa_secs(),
            abandon_rate: queue.abandon_rate(),
            ivr_containment: calls.ivr_containment(),
            verification_pass_rate: calls.verification_pass_rate(),
        }
    }
}

#[derive(Debug, Serialize)]
struct BucketView {
    /// The bucket's first instant, RFC 3339 in UTC.
    start: String,
    #[serde(flatten)]
    figures: Figures,
}

#[derive(Debug, Serialize)]
struct HistoryView {
    queue: Option<String>,
    interval: &'static str,
    /// The first bucket's start.
    from: String,
    /// The end asked for (exclusive).
    to: String,
    buckets: Vec<BucketView>,
    total: Figures,
}

fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(|_| ms.to_string(), |at| at.to_string())
}

/// The counters of `queues` added up bucket by bucket.
async fn queue_buckets(
    state: &CallServices,
    queues: &[&String],
    request: &HistoryRequest,
) -> Result<Vec<StatsBucket<QueueCounters>>, StoreError> {
    let per_queue = try_join_all(queues.iter().map(|queue| {
        state
            .store
            .queue_stats(queue, request.from_ms, request.to_ms, request.interval)
    }))
    .await?;
    let mut sums: Vec<StatsBucket<QueueCounters>> = request
        .interval
        .bucket_starts(request.from_ms, request.to_ms)
        .map(|start_ms| StatsBucket {
            start_ms,
            counters: QueueCounters::default(),
        })
        .collect();
    let index: HashMap<i64, usize> = sums
        .iter()
        .enumerate()
        .map(|(index, bucket)| (bucket.start_ms, index))
        .collect();
    for bucket in per_queue.into_iter().flatten() {
        if let Some(&at) = index.get(&bucket.start_ms) {
            sums[at].counters += bucket.counters;
        }
    }
    Ok(sums)
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}

/// `GET /api/v1/stats`.
pub async fn queue_history(
    State(state): State<CallServices>,
    State(access): State<AccessPolicy>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err(refusal) = access.viewer(&headers) {
        return refusal.into_response();
    }
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let request = match parse_request(query.as_deref(), now_ms) {
        Ok(request) => request,
        Err(message) => return bad_request(message),
    };
    let roster = state.roster();
    let queues: Vec<&String> = match &request.queue {
        Some(name) => match roster.queues.iter().find(|queue| *queue == name) {
            Some(queue) => vec![queue],
            None => {
                return (
                    StatusCode::NOT_FOUND,
                    Json(json!({
                        "error": format!("no queue `{name}` (queues come from [queues] in the configuration)")
                    })),
                )
                    .into_response();
            }
        },
        None => roster.queues.iter().collect(),
    };
    let read = futures_util::future::try_join(
        queue_buckets(&state, &queues, &request),
        state
            .store
            .call_outcome_stats(request.from_ms, request.to_ms, request.interval),
    )
    .await;
    let (queue_buckets, call_buckets) = match read {
        Ok(read) => read,
        Err(store_error) => {
            return super::queues::store_unavailable(&state, &store_error, "statistics");
        }
    };
    let calls: HashMap<i64, CallCounters> = call_buckets
        .iter()
        .map(|bucket| (bucket.start_ms, bucket.counters))
        .collect();
    let buckets = queue_buckets
        .iter()
        .map(|bucket| BucketView {
            start: rfc3339(bucket.start_ms),
            figures: Figures::of(
                &bucket.counters,
                &calls.get(&bucket.start_ms).copied().unwrap_or_default(),
            ),
        })
        .collect();
    let total = Figures::of(&stats::total(&queue_buckets), &stats::total(&call_buckets));
    Json(HistoryView {
        queue: request.queue,
        interval: request.interval.name(),
        from: rfc3339(request.interval.bucket_start(request.from_ms)),
        to: rfc3339(request.to_ms),
        buckets,
        total,
    })
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-01-05 15:20 UTC.
    const NOW_MS: i64 = 1_767_626_400_000;
    const JAN_5: i64 = 1_767_571_200_000;

    #[test]
    fn without_parameters_it_is_today_by_day_up_to_now() {
        assert_eq!(
            parse_request(None, NOW_MS),
            Ok(HistoryRequest {
                queue: None,
                from_ms: JAN_5,
                to_ms: NOW_MS,
                interval: StatsInterval::Day,
            })
        );
    }

    #[test]
    fn dates_are_utc_days_and_an_end_date_includes_its_day() {
        let request = parse_request(
            Some("queue=portal&from=2026-01-01&to=2026-01-05&interval=day"),
            NOW_MS,
        )
        .expect("valid");
        assert_eq!(request.queue.as_deref(), Some("portal"));
        assert_eq!(request.from_ms, JAN_5 - 4 * DAY_MS);
        assert_eq!(request.to_ms, JAN_5 + DAY_MS);
    }

    #[test]
    fn rfc3339_times_keep_their_offset() {
        let request = parse_request(
            Some("from=2026-01-05T08:00:00-06:00&to=2026-01-05T15:00:00Z&interval=15m"),
            NOW_MS,
        )
        .expect("valid");
        assert_eq!(request.from_ms, JAN_5 + 14 * 3_600_000);
        assert_eq!(request.to_ms, JAN_5 + 15 * 3_600_000);
        assert_eq!(request.interval, StatsInterval::FifteenMinutes);
    }

    #[test]
    fn bad_parameters_say_what_is_accepted() {
        let error = parse_request(Some("from=yesterday"), NOW_MS).expect_err("invalid");
        assert!(
            error.contains("RFC 3339") && error.contains("2026-01-05"),
            "{error}"
        );
        let error = parse_request(Some("interval=week"), NOW_MS).expect_err("invalid");
        assert!(error.contains("`day`, `hour` or `15m`"), "{error}");
        let error = parse_request(Some("form=2026-01-01"), NOW_MS).expect_err("invalid");
        assert!(error.contains("queue, from, to, interval"), "{error}");
        let error =
            parse_request(Some("from=2026-01-05&to=2026-01-04"), NOW_MS).expect_err("invalid");
        assert!(error.contains("before"), "{error}");
    }

    #[test]
    fn a_range_too_long_for_its_interval_is_refused() {
        assert!(parse_request(Some("from=2025-11-01&to=2026-01-05&interval=15m"), NOW_MS).is_err());
        assert!(parse_request(Some("from=2025-11-01&to=2026-01-05&interval=day"), NOW_MS).is_ok());
    }
}
