//! Queue statistics over time in the desk's own time zone,
//! `GET /api/v1/stats?queue=&from=&to=&interval=day|hour|15m&tz=&format=json|csv`: the store's
//! counters per local day, hour or quarter hour with the figures supervisors read, and the total
//! of the range.
//!
//! Buckets are local to `tz`, an IANA zone. Without it: the zone of the queue's `schedule` (UTC
//! for a queue without one); over every queue, the zone of the first queue by name that has a
//! schedule (the desk's zone when its queues share one; a desk spread over zones passes `tz`).
//! A day on which the clocks change has 23 or 25 hours; on fall-back the repeated hour is two
//! buckets, labelled with their two offsets (see [`local`]). Buckets are labelled by their local
//! start and end in RFC 3339 with the offset, `Z` in UTC itself.
//!
//! `from` and `to` are RFC 3339 times, or dates (`YYYY-MM-DD`, a local day in `tz`): a date as
//! `to` includes that whole day. Every bucket that overlaps `[from, to)` is listed, so the first
//! starts at or before `from`. Without `queue` the counters of every configured queue are added
//! up. Call-level figures (IVR containment, verification pass rate) belong to no queue and are
//! the same whichever queue is asked for.
//!
//! The store counts in UTC days, hours and quarter hours; the local buckets are added up from
//! the coarsest of those that tiles them, read in one store round trip per queue (and one for the
//! call-level counters). The store keeps hours and quarter hours 40 days and days 400, so local
//! buckets that need hours or quarter hours reach back 40 days at most, and a `from` further
//! back is refused with the earliest one that works rather than answered with zeros.
//!
//! `format=csv` answers the same buckets as a spreadsheet file ([`csv`]).

mod csv;
pub mod local;

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::try_join_all;
use jiff::tz::TimeZone;
use serde::Serialize;
use serde_json::{Value, json};

use self::local::{LocalBucket, LocalBucketError};
use super::access::AccessPolicy;
use crate::call::CallServices;
use crate::config::QueueConfig;
use crate::store::stats::{CallCounters, DAY_MS, MAX_BUCKETS, QueueCounters};
use crate::store::{StatsInterval, StoreError};

const ACCEPTED_TIMES: &str = "an RFC 3339 time (2026-01-05T08:00:00Z or 2026-01-05T08:00:00-06:00) or a date (2026-01-05, a day in `tz`)";
const ACCEPTED_PARAMETERS: &str = "queue, from, to, interval, tz, format";

/// How the answer is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    /// A header row and a row per bucket ([`csv`]).
    Csv,
}

/// A time as written in `from` or `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimeArg {
    Instant(i64),
    /// A local day, placed once the zone is known.
    Date(jiff::civil::Date),
}

/// The query string as written: dates not yet placed, the zone not yet defaulted.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryQuery {
    pub queue: Option<String>,
    /// `tz`, when given.
    pub zone: Option<TimeZone>,
    pub interval: StatsInterval,
    pub format: Format,
    from: Option<TimeArg>,
    to: Option<TimeArg>,
}

/// A request as understood.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRequest {
    pub queue: Option<String>,
    pub zone: TimeZone,
    pub from_ms: i64,
    pub to_ms: i64,
    pub interval: StatsInterval,
    pub format: Format,
}

/// Parse the query string; each error names the parameter and says what is accepted.
pub fn parse_query(query: Option<&str>) -> Result<HistoryQuery, String> {
    let mut parsed = HistoryQuery {
        queue: None,
        zone: None,
        interval: StatsInterval::Day,
        format: Format::Json,
        from: None,
        to: None,
    };
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match name.as_ref() {
            "queue" => parsed.queue = Some(value.into_owned()).filter(|queue| !queue.is_empty()),
            "from" => parsed.from = Some(parse_time("from", &value)?),
            "to" => parsed.to = Some(parse_time("to", &value)?),
            "interval" => {
                parsed.interval = StatsInterval::from_name(&value)
                    .ok_or_else(|| "`interval` must be `day`, `hour` or `15m`".to_owned())?;
            }
            "tz" => {
                parsed.zone = Some(TimeZone::get(&value).map_err(|_| {
                    "`tz` must be an IANA time zone name, such as America/Chicago, Asia/Kolkata or UTC".to_owned()
                })?);
            }
            "format" => {
                parsed.format = match value.as_ref() {
                    "json" => Format::Json,
                    "csv" => Format::Csv,
                    _ => return Err("`format` must be `json` or `csv`".to_owned()),
                };
            }
            other => {
                return Err(format!(
                    "unknown parameter `{other}`; accepted: {ACCEPTED_PARAMETERS}"
                ));
            }
        }
    }
    Ok(parsed)
}

/// An RFC 3339 time, or a date.
fn parse_time(name: &str, value: &str) -> Result<TimeArg, String> {
    if let Ok(at) = value.parse::<jiff::Timestamp>() {
        return Ok(TimeArg::Instant(at.as_millisecond()));
    }
    (value.len() == 10)
        .then(|| value.parse::<jiff::civil::Date>().ok())
        .flatten()
        .map(TimeArg::Date)
        .ok_or_else(|| format!("`{name}` must be {ACCEPTED_TIMES}"))
}

impl HistoryQuery {
    /// The request in the zone asked for, else in `default_zone`, at `now_ms`: `from` defaults
    /// to the start of the local day, `to` to now, and a date is a local day (as `to`, its end).
    pub fn resolve(
        self,
        default_zone: impl FnOnce() -> TimeZone,
        now_ms: i64,
    ) -> Result<HistoryRequest, String> {
        let zone = self.zone.unwrap_or_else(default_zone);
        let place = |name: &str, time: TimeArg, is_end: bool| -> Result<i64, String> {
            match time {
                TimeArg::Instant(at_ms) => Ok(at_ms),
                TimeArg::Date(date) => {
                    let day = if is_end {
                        date.tomorrow().ok()
                    } else {
                        Some(date)
                    };
                    // Midnight in a gap is when the gap ends: the day's first instant.
                    day.and_then(|day| day.to_zoned(zone.clone()).ok())
                        .map(|start| start.timestamp().as_millisecond())
                        .ok_or_else(|| format!("`{name}` is a date too far out to place"))
                }
            }
        };
        let from_ms = match self.from {
            Some(time) => place("from", time, false)?,
            None => local::bucket_start(&zone, StatsInterval::Day, now_ms)
                .unwrap_or_else(|_| StatsInterval::Day.bucket_start(now_ms)),
        };
        let to_ms = match self.to {
            Some(time) => place("to", time, true)?,
            None => now_ms,
        };
        if from_ms >= to_ms {
            return Err("`from` must be before `to`".to_owned());
        }
        Ok(HistoryRequest {
            queue: self.queue,
            zone,
            from_ms,
            to_ms,
            interval: self.interval,
            format: self.format,
        })
    }
}

/// [`parse_query`] then [`HistoryQuery::resolve`].
pub fn parse_request(
    query: Option<&str>,
    default_zone: &TimeZone,
    now_ms: i64,
) -> Result<HistoryRequest, String> {
    parse_query(query)?.resolve(|| default_zone.clone(), now_ms)
}

/// How a request is answered: its local buckets, and the one store range they are added up
/// from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPlan {
    pub buckets: Vec<LocalBucket>,
    pub read_from_ms: i64,
    pub read_to_ms: i64,
    pub read_interval: StatsInterval,
}

fn plural(interval: StatsInterval) -> &'static str {
    match interval {
        StatsInterval::Day => "days",
        StatsInterval::Hour => "hours",
        StatsInterval::FifteenMinutes => "quarter hours",
    }
}

/// The IANA name of `zone`, as the answer and the errors give it.
fn zone_name(zone: &TimeZone) -> &str {
    zone.iana_name().unwrap_or("UTC")
}

/// The local buckets of `request` and how to read them, at `now_ms`; refused when there are too
/// many, or when the store no longer keeps what they are made of. The error says what works.
pub fn plan(request: &HistoryRequest, now_ms: i64) -> Result<HistoryPlan, String> {
    let zone = &request.zone;
    let tz = zone_name(zone);
    let interval = request.interval;
    let buckets = local::local_buckets(zone, interval, request.from_ms, request.to_ms, MAX_BUCKETS)
        .map_err(|error| match error {
            LocalBucketError::TooMany { max } => format!(
                "the range covers more than {max} buckets of `{}`; ask for a shorter range or a larger interval (`hour`, `day`)",
                interval.name()
            ),
            LocalBucketError::OutOfRange => {
                format!("`from` and `to` must be times that can be placed in `{tz}`")
            }
        })?;
    let (Some(first), Some(last)) = (buckets.first(), buckets.last()) else {
        return Err("`from` must be before `to`".to_owned());
    };
    let (read_from_ms, read_to_ms) = (first.start_ms, last.end_ms);
    let read_interval = local::store_interval(&buckets).ok_or_else(|| {
        format!(
            "in `{tz}` the clocks were not a whole number of quarter hours from UTC over this range, so its local {} cannot be added up from the store's quarter hours; ask with `tz=UTC`",
            plural(interval)
        )
    })?;
    let kept_since = now_ms.saturating_sub(read_interval.ttl_ms());
    if read_from_ms < kept_since {
        let earliest = local::local_buckets(zone, interval, kept_since, kept_since + 1, 1)
            .ok()
            .and_then(|buckets| buckets.first().copied())
            .map_or(kept_since, |bucket| {
                if bucket.start_ms < kept_since {
                    bucket.end_ms
                } else {
                    bucket.start_ms
                }
            });
        let hint = if read_interval == StatsInterval::Day {
            String::new()
        } else {
            format!(
                "; UTC days are kept {} days (`tz=UTC&interval=day`)",
                StatsInterval::Day.ttl_ms() / DAY_MS
            )
        };
        return Err(format!(
            "`from` reaches back further than the store keeps: local {} in `{tz}` are added up from the store's {}, which are kept {} days, so the earliest `from` now is {}{hint}",
            plural(interval),
            plural(read_interval),
            read_interval.ttl_ms() / DAY_MS,
            local::local_time(zone, earliest),
        ));
    }
    let reads = read_interval.bucket_count(read_from_ms, read_to_ms);
    if reads > MAX_BUCKETS as u64 {
        return Err(format!(
            "local {} in `{tz}` are added up from the store's {}, and this range needs {reads} of them; at most {MAX_BUCKETS} at once: ask for a shorter range",
            plural(interval),
            plural(read_interval),
        ));
    }
    Ok(HistoryPlan {
        buckets,
        read_from_ms,
        read_to_ms,
        read_interval,
    })
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
    /// Callback calls careline placed, those that reached the patient and an agent, and
    /// those given up.
    pub callback_attempts: u64,
    pub callbacks_connected: u64,
    pub callbacks_failed: u64,
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
            callback_attempts: queue.callback_attempts,
            callbacks_connected: queue.callbacks_connected,
            callbacks_failed: queue.callbacks_failed,
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
    /// The bucket's first instant, RFC 3339 local time with its offset.
    start: String,
    /// The first instant after it: 23 or 25 hours after `start` on a day the clocks change.
    end: String,
    #[serde(flatten)]
    figures: Figures,
}

#[derive(Debug, Serialize)]
struct HistoryView {
    queue: Option<String>,
    /// The IANA zone the buckets are local to.
    timezone: String,
    interval: &'static str,
    /// The first bucket's start.
    from: String,
    /// The end asked for (exclusive).
    to: String,
    buckets: Vec<BucketView>,
    total: Figures,
}

/// The counters of `queues` and the call-level counters, added up per local bucket: one store
/// read per queue and one for the calls, all at once.
async fn read_history(
    state: &CallServices,
    queues: &[&String],
    plan: &HistoryPlan,
) -> Result<(Vec<QueueCounters>, Vec<CallCounters>), StoreError> {
    let (from, to, interval) = (plan.read_from_ms, plan.read_to_ms, plan.read_interval);
    let (per_queue, calls) = futures_util::future::try_join(
        try_join_all(
            queues
                .iter()
                .map(|queue| state.store.queue_stats(queue, from, to, interval)),
        ),
        state.store.call_outcome_stats(from, to, interval),
    )
    .await?;
    Ok((
        local::add_up(&plan.buckets, per_queue.iter().flatten()),
        local::add_up(&plan.buckets, &calls),
    ))
}

fn sum<C: std::ops::AddAssign + Default + Copy>(counters: &[C]) -> C {
    let mut total = C::default();
    for each in counters {
        total += *each;
    }
    total
}

fn history_view(
    request: &HistoryRequest,
    plan: &HistoryPlan,
    queues: &[QueueCounters],
    calls: &[CallCounters],
) -> HistoryView {
    let zone = &request.zone;
    let buckets = plan
        .buckets
        .iter()
        .zip(queues.iter().zip(calls))
        .map(|(bucket, (queue, calls))| BucketView {
            start: local::local_time(zone, bucket.start_ms),
            end: local::local_time(zone, bucket.end_ms),
            figures: Figures::of(queue, calls),
        })
        .collect();
    HistoryView {
        queue: request.queue.clone(),
        timezone: zone_name(zone).to_owned(),
        interval: request.interval.name(),
        from: local::local_time(zone, plan.read_from_ms),
        to: local::local_time(zone, request.to_ms),
        buckets,
        total: Figures::of(&sum(queues), &sum(calls)),
    }
}

/// The buckets of `view` as a CSV download.
fn csv_response(request: &HistoryRequest, view: &Value) -> Response {
    let buckets = view["buckets"].as_array().map_or(&[][..], Vec::as_slice);
    let name = csv::file_name(
        request.queue.as_deref(),
        request.interval.name(),
        &local::local_date(&request.zone, request.from_ms),
        &local::local_date(&request.zone, request.to_ms - 1),
    );
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        csv::table(buckets),
    )
        .into_response()
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}

/// The zone of a request without `tz`: the queue's schedule's; over every queue, that of the
/// first queue by name with a schedule; UTC where there is none.
fn default_zone(
    state: &CallServices,
    queue: Option<&QueueConfig>,
    every_queue: &BTreeMap<String, QueueConfig>,
) -> TimeZone {
    queue
        .or_else(|| {
            every_queue
                .values()
                .find(|config| config.schedule.is_some())
        })
        .map_or(TimeZone::UTC, |config| {
            super::queues::queue_time_zone(state, config)
        })
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
    let query = match parse_query(query.as_deref()) {
        Ok(query) => query,
        Err(message) => return bad_request(message),
    };
    let roster = state.roster();
    let (queues, queue_config): (Vec<&String>, Option<&QueueConfig>) = match &query.queue {
        Some(name) => match roster.queue_configs.get_key_value(name) {
            Some((queue, config)) => (vec![queue], Some(config)),
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
        None => (roster.queues.iter().collect(), None),
    };
    let request = match query.resolve(
        || default_zone(&state, queue_config, &roster.queue_configs),
        now_ms,
    ) {
        Ok(request) => request,
        Err(message) => return bad_request(message),
    };
    let plan = match plan(&request, now_ms) {
        Ok(plan) => plan,
        Err(message) => return bad_request(message),
    };
    let (queue_sums, call_sums) = match read_history(&state, &queues, &plan).await {
        Ok(sums) => sums,
        Err(store_error) => {
            return super::queues::store_unavailable(&state, &store_error, "statistics");
        }
    };
    let view = history_view(&request, &plan, &queue_sums, &call_sums);
    match request.format {
        Format::Json => Json(view).into_response(),
        Format::Csv => match serde_json::to_value(&view) {
            Ok(value) => csv_response(&request, &value),
            Err(error) => {
                tracing::warn!(%error, "statistics could not be written as CSV");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-01-05 15:20 UTC.
    const NOW_MS: i64 = 1_767_626_400_000;
    const JAN_5: i64 = 1_767_571_200_000;
    const HOUR_MS: i64 = 3_600_000;

    fn chicago() -> TimeZone {
        TimeZone::get("America/Chicago").expect("tz")
    }

    fn planned(query: &str, zone: &TimeZone, now_ms: i64) -> Result<HistoryPlan, String> {
        plan(&parse_request(Some(query), zone, now_ms)?, now_ms)
    }

    #[test]
    fn without_parameters_it_is_the_local_day_so_far_by_day() {
        assert_eq!(
            parse_request(None, &TimeZone::UTC, NOW_MS),
            Ok(HistoryRequest {
                queue: None,
                zone: TimeZone::UTC,
                from_ms: JAN_5,
                to_ms: NOW_MS,
                interval: StatsInterval::Day,
                format: Format::Json,
            })
        );
        let request = parse_request(None, &chicago(), NOW_MS).expect("valid");
        assert_eq!(request.from_ms, JAN_5 + 6 * HOUR_MS, "09:20 in Chicago");
    }

    #[test]
    fn dates_are_days_in_the_zone_and_an_end_date_includes_its_day() {
        let request = parse_request(
            Some("queue=portal&from=2026-01-01&to=2026-01-05&interval=day"),
            &TimeZone::UTC,
            NOW_MS,
        )
        .expect("valid");
        assert_eq!(request.queue.as_deref(), Some("portal"));
        assert_eq!(request.from_ms, JAN_5 - 4 * DAY_MS);
        assert_eq!(request.to_ms, JAN_5 + DAY_MS);
        // The zone may come after the dates in the query.
        let request = parse_request(
            Some("from=2026-01-05&to=2026-01-05&tz=America/Chicago"),
            &TimeZone::UTC,
            NOW_MS,
        )
        .expect("valid");
        assert_eq!(request.zone, chicago());
        assert_eq!(request.from_ms, JAN_5 + 6 * HOUR_MS);
        assert_eq!(request.to_ms, JAN_5 + DAY_MS + 6 * HOUR_MS);
    }

    #[test]
    fn rfc3339_times_keep_their_offset() {
        let request = parse_request(
            Some("from=2026-01-05T08:00:00-06:00&to=2026-01-05T15:00:00Z&interval=15m&format=csv"),
            &chicago(),
            NOW_MS,
        )
        .expect("valid");
        assert_eq!(request.from_ms, JAN_5 + 14 * HOUR_MS);
        assert_eq!(request.to_ms, JAN_5 + 15 * HOUR_MS);
        assert_eq!(request.interval, StatsInterval::FifteenMinutes);
        assert_eq!(request.format, Format::Csv);
    }

    #[test]
    fn bad_parameters_are_named_with_what_is_accepted() {
        let error =
            |query: &str| parse_request(Some(query), &TimeZone::UTC, NOW_MS).expect_err("invalid");
        let message = error("from=yesterday");
        assert!(
            message.contains("`from`")
                && message.contains("RFC 3339")
                && message.contains("2026-01-05"),
            "{message}"
        );
        assert!(error("interval=week").contains("`day`, `hour` or `15m`"));
        let message = error("form=2026-01-01");
        assert!(
            message.contains("queue, from, to, interval, tz, format"),
            "{message}"
        );
        assert!(error("from=2026-01-05&to=2026-01-04").contains("before"));
        let message = error("tz=America/Springfield");
        assert!(
            message.starts_with("`tz` must be an IANA time zone"),
            "{message}"
        );
        assert!(error("tz=").contains("`tz`"));
        assert!(error("format=xlsx").contains("`format` must be `json` or `csv`"));
    }

    #[test]
    fn a_range_too_long_for_its_interval_is_refused() {
        let error = planned(
            "from=2025-11-01&to=2026-01-05&interval=15m",
            &TimeZone::UTC,
            NOW_MS,
        )
        .expect_err("too many quarter hours");
        assert!(error.contains("more than 4000 buckets of `15m`"), "{error}");
        let plan = planned(
            "from=2025-11-01&to=2026-01-05&interval=day",
            &TimeZone::UTC,
            NOW_MS,
        )
        .expect("UTC days for two months");
        assert_eq!(plan.buckets.len(), 66);
        assert_eq!(plan.read_interval, StatsInterval::Day);
    }

    #[test]
    fn utc_days_are_read_as_days_and_local_days_as_hours_or_quarter_hours() {
        let query = "from=2026-01-01&to=2026-01-04";
        let utc = planned(query, &TimeZone::UTC, NOW_MS).expect("plan");
        assert_eq!(
            (utc.read_interval, utc.buckets.len()),
            (StatsInterval::Day, 4)
        );
        let chicago = planned(query, &chicago(), NOW_MS).expect("plan");
        assert_eq!(chicago.read_interval, StatsInterval::Hour);
        assert_eq!(chicago.read_from_ms, JAN_5 - 4 * DAY_MS + 6 * HOUR_MS);
        assert_eq!(chicago.read_to_ms, JAN_5 + 6 * HOUR_MS);
        let kolkata = TimeZone::get("Asia/Kolkata").expect("tz");
        let kolkata = planned(query, &kolkata, NOW_MS).expect("plan");
        assert_eq!(kolkata.read_interval, StatsInterval::FifteenMinutes);
        assert_eq!(
            kolkata.read_from_ms,
            JAN_5 - 4 * DAY_MS - 5 * HOUR_MS - 30 * 60_000
        );
    }

    #[test]
    fn local_buckets_older_than_the_store_keeps_their_parts_are_refused_with_what_works() {
        // Chicago days are made of hours, kept 40 days: 2025-11-20 is 46 days back.
        let error = planned("from=2025-11-20&interval=day", &chicago(), NOW_MS)
            .expect_err("hours are gone");
        assert!(error.contains("kept 40 days"), "{error}");
        assert!(
            error.contains("the earliest `from` now is 2025-11-27T00:00:00-06:00"),
            "{error}"
        );
        assert!(error.contains("tz=UTC&interval=day"), "{error}");
        // UTC days are the store's own days, kept 400 days.
        assert!(planned("from=2025-11-20&interval=day", &TimeZone::UTC, NOW_MS).is_ok());
        let error = planned("from=2024-11-20&interval=day", &TimeZone::UTC, NOW_MS)
            .expect_err("days are gone too");
        assert!(error.contains("kept 400 days"), "{error}");
        assert!(!error.contains("tz=UTC"), "{error}");
    }

    #[test]
    fn csv_has_a_column_for_every_field_of_a_json_bucket() {
        let bucket = BucketView {
            start: "2026-01-05T00:00:00Z".to_owned(),
            end: "2026-01-06T00:00:00Z".to_owned(),
            figures: Figures::of(&QueueCounters::default(), &CallCounters::default()),
        };
        let json = serde_json::to_value(&bucket).expect("serializes");
        let mut keys: Vec<&str> = json
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        let mut columns = csv::COLUMNS.to_vec();
        columns.sort_unstable();
        assert_eq!(keys, columns);
    }
}
