//! Queue statistics: what is counted, in which time buckets, and what the counts mean.
//!
//! Both stores keep plain counters per queue and per bucket (a UTC day, a UTC hour, or a
//! 15-minute interval starting on a UTC quarter hour), plus call-level counters per bucket that
//! belong to no queue (IVR containment, verification). An event adds to the counters of the day,
//! the hour and the quarter hour it falls in, by the same rules in both stores: [`QueueStatEvent::increments`] and
//! [`CallOutcomeStat::field`]. The figures a supervisor reads — service level, ASA, abandon rate,
//! containment, verification pass rate — are pure functions of the counters, so a sum of buckets
//! (a week, or a local day made of intervals) gives the right figures for the whole. A figure
//! whose denominator is zero is `None` (JSON `null`), never NaN.
//!
//! No I/O and no clock here: instants are milliseconds since the Unix epoch, passed in.

use std::ops::AddAssign;

use serde::Serialize;

/// An answer within this wait counts towards the service level (DESIGN: 20 s).
pub const SERVICE_LEVEL_ANSWER_MS: i64 = 20_000;
/// A caller who hangs up after waiting longer than this counts against the service level;
/// earlier hang-ups are "short abandons" (DESIGN: 5 s).
pub const SHORT_ABANDON_MS: i64 = 5_000;

pub const DAY_MS: i64 = 86_400_000;
pub const HOUR_MS: i64 = 3_600_000;
pub const FIFTEEN_MINUTES_MS: i64 = 900_000;

/// Day buckets are kept this long after their last change (Redis TTL; the memory store prunes).
pub const DAY_BUCKET_TTL_MS: i64 = 400 * DAY_MS;
/// Hour and 15-minute buckets are kept this long after their last change.
pub const INTERVAL_BUCKET_TTL_MS: i64 = 40 * DAY_MS;

/// At most this many buckets are read at once: 40 days of quarter hours, or 400 days.
pub const MAX_BUCKETS: usize = 4_000;

/// Something that happened to a call in a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueStatEvent {
    /// The call entered the queue (once per call: a call put back after a missed offer is not
    /// offered again).
    Offered,
    /// An agent answered, after the caller waited `wait_ms` since entering the queue.
    Answered { wait_ms: i64 },
    /// The caller hung up while waiting, after `wait_ms`.
    Abandoned { wait_ms: i64 },
    /// The caller left the line with a callback scheduled.
    CallbackRequested,
    /// careline placed a callback call (an agent was reserved and Twilio took the request).
    CallbackAttempt,
    /// A callback reached the patient and an agent.
    CallbackConnected,
    /// A callback was given up after its attempts ran out.
    CallbackFailed,
}

/// How a call went, for the counters that belong to no queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcomeStat {
    /// The call ended in self-service: it was never queued.
    Contained,
    /// The call went to a queue (or another human path).
    Routed,
    /// The caller passed identity verification.
    VerificationPassed,
    /// The caller failed verification: out of attempts, or the record is locked out.
    VerificationFailed,
}

/// The size of a statistics bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StatsInterval {
    /// A UTC day: [00:00Z, 24:00Z).
    Day,
    /// A UTC hour. Also what a local day is summed from where midnight falls on a UTC hour.
    Hour,
    /// A quarter hour starting at :00, :15, :30 or :45 UTC.
    FifteenMinutes,
}

impl StatsInterval {
    /// Every bucket size; an event counts in one bucket of each.
    pub const ALL: [StatsInterval; 3] = [
        StatsInterval::Day,
        StatsInterval::Hour,
        StatsInterval::FifteenMinutes,
    ];
}

/// One queue counter, as named in both stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueField {
    Offered,
    Answered,
    AnsweredWithin20s,
    Abandoned,
    AbandonedAfter5s,
    AnswerWaitMs,
    Callbacks,
    CallbackAttempts,
    CallbacksConnected,
    CallbacksFailed,
}

/// One call-level counter, as named in both stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallField {
    Contained,
    Routed,
    VerificationPassed,
    VerificationFailed,
}

/// A queue's counters over one bucket (or a sum of buckets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct QueueCounters {
    pub offered: u64,
    pub answered: u64,
    /// Answered within [`SERVICE_LEVEL_ANSWER_MS`].
    pub answered_within_20s: u64,
    pub abandoned: u64,
    /// Abandoned after more than [`SHORT_ABANDON_MS`].
    pub abandoned_after_5s: u64,
    /// The waits of every answered call, added up (for the average speed of answer).
    pub answer_wait_ms: u64,
    pub callbacks: u64,
    /// Callback calls careline placed.
    pub callback_attempts: u64,
    /// Callbacks that reached the patient and an agent.
    pub callbacks_connected: u64,
    /// Callbacks given up after their attempts ran out.
    pub callbacks_failed: u64,
}

/// Call-level counters over one bucket (or a sum of buckets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct CallCounters {
    pub contained: u64,
    pub routed: u64,
    pub verification_passed: u64,
    pub verification_failed: u64,
}

/// Counters of one bucket; `start_ms` is the bucket's first millisecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsBucket<C> {
    pub start_ms: i64,
    pub counters: C,
}

impl QueueStatEvent {
    /// The counters this event adds to, and by how much. Negative waits (clock skew between
    /// nodes) count as zero.
    pub fn increments(self) -> Vec<(QueueField, u64)> {
        let wait = |wait_ms: i64| u64::try_from(wait_ms).unwrap_or(0);
        match self {
            QueueStatEvent::Offered => vec![(QueueField::Offered, 1)],
            QueueStatEvent::Answered { wait_ms } => {
                let mut fields = vec![(QueueField::Answered, 1)];
                if wait_ms <= SERVICE_LEVEL_ANSWER_MS {
                    fields.push((QueueField::AnsweredWithin20s, 1));
                }
                if wait(wait_ms) > 0 {
                    fields.push((QueueField::AnswerWaitMs, wait(wait_ms)));
                }
                fields
            }
            QueueStatEvent::Abandoned { wait_ms } => {
                let mut fields = vec![(QueueField::Abandoned, 1)];
                if wait_ms > SHORT_ABANDON_MS {
                    fields.push((QueueField::AbandonedAfter5s, 1));
                }
                fields
            }
            QueueStatEvent::CallbackRequested => vec![(QueueField::Callbacks, 1)],
            QueueStatEvent::CallbackAttempt => vec![(QueueField::CallbackAttempts, 1)],
            QueueStatEvent::CallbackConnected => vec![(QueueField::CallbacksConnected, 1)],
            QueueStatEvent::CallbackFailed => vec![(QueueField::CallbacksFailed, 1)],
        }
    }
}

impl CallOutcomeStat {
    /// The one counter this outcome adds 1 to.
    pub fn field(self) -> CallField {
        match self {
            CallOutcomeStat::Contained => CallField::Contained,
            CallOutcomeStat::Routed => CallField::Routed,
            CallOutcomeStat::VerificationPassed => CallField::VerificationPassed,
            CallOutcomeStat::VerificationFailed => CallField::VerificationFailed,
        }
    }
}

impl QueueField {
    pub const ALL: [QueueField; 10] = [
        QueueField::Offered,
        QueueField::Answered,
        QueueField::AnsweredWithin20s,
        QueueField::Abandoned,
        QueueField::AbandonedAfter5s,
        QueueField::AnswerWaitMs,
        QueueField::Callbacks,
        QueueField::CallbackAttempts,
        QueueField::CallbacksConnected,
        QueueField::CallbacksFailed,
    ];

    /// The field name in a Redis stats hash (and in JSON).
    pub fn name(self) -> &'static str {
        match self {
            QueueField::Offered => "offered",
            QueueField::Answered => "answered",
            QueueField::AnsweredWithin20s => "answered_within_20s",
            QueueField::Abandoned => "abandoned",
            QueueField::AbandonedAfter5s => "abandoned_after_5s",
            QueueField::AnswerWaitMs => "answer_wait_ms",
            QueueField::Callbacks => "callbacks",
            QueueField::CallbackAttempts => "callback_attempts",
            QueueField::CallbacksConnected => "callbacks_connected",
            QueueField::CallbacksFailed => "callbacks_failed",
        }
    }
}

impl CallField {
    pub const ALL: [CallField; 4] = [
        CallField::Contained,
        CallField::Routed,
        CallField::VerificationPassed,
        CallField::VerificationFailed,
    ];

    /// The field name in a Redis stats hash (and in JSON).
    pub fn name(self) -> &'static str {
        match self {
            CallField::Contained => "contained",
            CallField::Routed => "routed",
            CallField::VerificationPassed => "verification_passed",
            CallField::VerificationFailed => "verification_failed",
        }
    }
}

impl QueueCounters {
    pub fn get(&self, field: QueueField) -> u64 {
        match field {
            QueueField::Offered => self.offered,
            QueueField::Answered => self.answered,
            QueueField::AnsweredWithin20s => self.answered_within_20s,
            QueueField::Abandoned => self.abandoned,
            QueueField::AbandonedAfter5s => self.abandoned_after_5s,
            QueueField::AnswerWaitMs => self.answer_wait_ms,
            QueueField::Callbacks => self.callbacks,
            QueueField::CallbackAttempts => self.callback_attempts,
            QueueField::CallbacksConnected => self.callbacks_connected,
            QueueField::CallbacksFailed => self.callbacks_failed,
        }
    }

    pub fn add(&mut self, field: QueueField, amount: u64) {
        let counter = match field {
            QueueField::Offered => &mut self.offered,
            QueueField::Answered => &mut self.answered,
            QueueField::AnsweredWithin20s => &mut self.answered_within_20s,
            QueueField::Abandoned => &mut self.abandoned,
            QueueField::AbandonedAfter5s => &mut self.abandoned_after_5s,
            QueueField::AnswerWaitMs => &mut self.answer_wait_ms,
            QueueField::Callbacks => &mut self.callbacks,
            QueueField::CallbackAttempts => &mut self.callback_attempts,
            QueueField::CallbacksConnected => &mut self.callbacks_connected,
            QueueField::CallbacksFailed => &mut self.callbacks_failed,
        };
        *counter = counter.saturating_add(amount);
    }

    /// Count one event.
    pub fn apply(&mut self, event: QueueStatEvent) {
        for (field, amount) in event.increments() {
            self.add(field, amount);
        }
    }

    /// Calls an agent took or that left with a callback scheduled: the offered calls dealt
    /// with, as opposed to abandoned (or sent on by a timeout, which is neither).
    pub fn handled(&self) -> u64 {
        self.answered.saturating_add(self.callbacks)
    }

    /// Answered within 20 s ÷ (answered + abandoned after 5 s).
    pub fn service_level(&self) -> Option<f64> {
        ratio(
            self.answered_within_20s,
            self.answered.saturating_add(self.abandoned_after_5s),
        )
    }

    /// Average speed of answer: total answer wait ÷ answered, in seconds.
    pub fn asa_secs(&self) -> Option<f64> {
        ratio(self.answer_wait_ms, self.answered).map(|ms| ms / 1000.0)
    }

    /// Abandoned ÷ offered.
    pub fn abandon_rate(&self) -> Option<f64> {
        ratio(self.abandoned, self.offered)
    }
}

impl CallCounters {
    pub fn get(&self, field: CallField) -> u64 {
        match field {
            CallField::Contained => self.contained,
            CallField::Routed => self.routed,
            CallField::VerificationPassed => self.verification_passed,
            CallField::VerificationFailed => self.verification_failed,
        }
    }

    pub fn add(&mut self, field: CallField, amount: u64) {
        let counter = match field {
            CallField::Contained => &mut self.contained,
            CallField::Routed => &mut self.routed,
            CallField::VerificationPassed => &mut self.verification_passed,
            CallField::VerificationFailed => &mut self.verification_failed,
        };
        *counter = counter.saturating_add(amount);
    }

    /// IVR containment: contained ÷ (contained + routed).
    pub fn ivr_containment(&self) -> Option<f64> {
        ratio(self.contained, self.contained.saturating_add(self.routed))
    }

    /// Verification pass rate: passed ÷ (passed + failed).
    pub fn verification_pass_rate(&self) -> Option<f64> {
        ratio(
            self.verification_passed,
            self.verification_passed
                .saturating_add(self.verification_failed),
        )
    }
}

impl AddAssign for QueueCounters {
    fn add_assign(&mut self, other: QueueCounters) {
        for field in QueueField::ALL {
            self.add(field, other.get(field));
        }
    }
}

impl AddAssign for CallCounters {
    fn add_assign(&mut self, other: CallCounters) {
        for field in CallField::ALL {
            self.add(field, other.get(field));
        }
    }
}

/// The counters of many buckets added up.
pub fn total<C: AddAssign + Default + Copy>(buckets: &[StatsBucket<C>]) -> C {
    let mut total = C::default();
    for bucket in buckets {
        total += bucket.counters;
    }
    total
}

/// `numerator ÷ denominator`, or `None` when nothing was counted below the line.
fn ratio(numerator: u64, denominator: u64) -> Option<f64> {
    (denominator > 0).then(|| numerator as f64 / denominator as f64)
}

impl StatsInterval {
    pub fn length_ms(self) -> i64 {
        match self {
            StatsInterval::Day => DAY_MS,
            StatsInterval::Hour => HOUR_MS,
            StatsInterval::FifteenMinutes => FIFTEEN_MINUTES_MS,
        }
    }

    /// How long a bucket is kept after its last change.
    pub fn ttl_ms(self) -> i64 {
        match self {
            StatsInterval::Day => DAY_BUCKET_TTL_MS,
            StatsInterval::Hour | StatsInterval::FifteenMinutes => INTERVAL_BUCKET_TTL_MS,
        }
    }

    /// `day`, `hour` or `15m`: in Redis keys and in the API.
    pub fn name(self) -> &'static str {
        match self {
            StatsInterval::Day => "day",
            StatsInterval::Hour => "hour",
            StatsInterval::FifteenMinutes => "15m",
        }
    }

    /// The interval called `name` (see [`StatsInterval::name`]).
    pub fn from_name(name: &str) -> Option<StatsInterval> {
        StatsInterval::ALL
            .into_iter()
            .find(|interval| interval.name() == name)
    }

    /// The largest bucket size whose buckets start at `start_ms`: how a range that starts
    /// there (a local day) is read in the fewest buckets.
    pub fn coarsest_starting_at(start_ms: i64) -> StatsInterval {
        StatsInterval::ALL
            .into_iter()
            .find(|interval| interval.bucket_start(start_ms) == start_ms)
            .unwrap_or(StatsInterval::FifteenMinutes)
    }

    /// The start of the bucket `at_ms` falls in.
    pub fn bucket_start(self, at_ms: i64) -> i64 {
        at_ms - at_ms.rem_euclid(self.length_ms())
    }

    /// The start of every bucket that overlaps `[from_ms, to_ms)`, oldest first, at most
    /// [`MAX_BUCKETS`] of them (the first ones).
    pub fn bucket_starts(self, from_ms: i64, to_ms: i64) -> impl Iterator<Item = i64> {
        let length = self.length_ms();
        let first = self.bucket_start(from_ms);
        let count = if from_ms < to_ms { MAX_BUCKETS } else { 0 };
        (0..count as i64)
            .map(move |index| first.saturating_add(index.saturating_mul(length)))
            .take_while(move |&start| start < to_ms)
    }

    /// How many buckets overlap `[from_ms, to_ms)` (not capped).
    pub fn bucket_count(self, from_ms: i64, to_ms: i64) -> u64 {
        if to_ms <= from_ms {
            return 0;
        }
        let first = self.bucket_start(from_ms);
        let span = i128::from(to_ms) - i128::from(first);
        let length = i128::from(self.length_ms());
        u64::try_from((span + length - 1) / length).unwrap_or(u64::MAX)
    }
}

/// The first millisecond of the local day `now_ms` falls in, in `zone` (DST-aware: a day that
/// starts in a gap starts when the gap ends). `None` only for instants jiff cannot represent.
pub fn local_day_start_ms(now_ms: i64, zone: &jiff::tz::TimeZone) -> Option<i64> {
    let now = jiff::Timestamp::from_millisecond(now_ms).ok()?;
    let start = now.to_zoned(zone.clone()).start_of_day().ok()?;
    Some(start.timestamp().as_millisecond())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-01-01 00:00 UTC.
    const DAY0: i64 = 1_767_225_600_000;
    const SECOND: i64 = 1_000;

    fn queue_history(events: &[QueueStatEvent]) -> QueueCounters {
        let mut counters = QueueCounters::default();
        for event in events {
            counters.apply(*event);
        }
        counters
    }

    /// 10 offered; 6 answered after 5, 10, 20, 21, 40 and 60 s; 3 abandoned after 2, 5 and
    /// 30 s; 1 callback.
    fn a_morning() -> QueueCounters {
        let mut events = vec![QueueStatEvent::Offered; 10];
        for wait in [5, 10, 20, 21, 40, 60] {
            events.push(QueueStatEvent::Answered {
                wait_ms: wait * SECOND,
            });
        }
        for wait in [2, 5, 30] {
            events.push(QueueStatEvent::Abandoned {
                wait_ms: wait * SECOND,
            });
        }
        events.push(QueueStatEvent::CallbackRequested);
        queue_history(&events)
    }

    #[test]
    fn counters_follow_the_thresholds_exactly() {
        let counters = a_morning();
        assert_eq!(
            counters,
            QueueCounters {
                offered: 10,
                answered: 6,
                // 5, 10 and 20 s: "within 20 s" includes 20 s itself.
                answered_within_20s: 3,
                abandoned: 3,
                // Only 30 s: "after 5 s" excludes 5 s itself.
                abandoned_after_5s: 1,
                answer_wait_ms: 156_000,
                callbacks: 1,
                ..QueueCounters::default()
            }
        );
    }

    #[test]
    fn service_level_counts_short_abandons_in_neither_part() {
        // 3 within 20 s ÷ (6 answered + 1 abandoned after 5 s).
        assert_eq!(a_morning().service_level(), Some(3.0 / 7.0));
    }

    #[test]
    fn asa_is_the_average_wait_of_answered_calls_in_seconds() {
        assert_eq!(a_morning().asa_secs(), Some(26.0));
    }

    #[test]
    fn abandon_rate_is_abandoned_over_offered() {
        assert_eq!(a_morning().abandon_rate(), Some(0.3));
    }

    #[test]
    fn handled_is_answered_plus_callbacks() {
        assert_eq!(a_morning().handled(), 7);
    }

    #[test]
    fn an_empty_bucket_has_no_figures_rather_than_nan() {
        let empty = QueueCounters::default();
        assert_eq!(empty.service_level(), None);
        assert_eq!(empty.asa_secs(), None);
        assert_eq!(empty.abandon_rate(), None);
        let calls = CallCounters::default();
        assert_eq!(calls.ivr_containment(), None);
        assert_eq!(calls.verification_pass_rate(), None);
    }

    #[test]
    fn only_short_abandons_give_no_service_level() {
        let counters = queue_history(&[
            QueueStatEvent::Offered,
            QueueStatEvent::Abandoned { wait_ms: 3_000 },
        ]);
        assert_eq!(counters.service_level(), None);
        assert_eq!(counters.abandon_rate(), Some(1.0));
        assert_eq!(counters.asa_secs(), None);
    }

    #[test]
    fn a_negative_wait_counts_as_an_immediate_answer() {
        let counters = queue_history(&[QueueStatEvent::Answered { wait_ms: -40 }]);
        assert_eq!(counters.answered_within_20s, 1);
        assert_eq!(counters.answer_wait_ms, 0);
        assert_eq!(counters.asa_secs(), Some(0.0));
    }

    #[test]
    fn containment_and_verification_rates() {
        let mut calls = CallCounters::default();
        for (outcome, times) in [
            (CallOutcomeStat::Contained, 3),
            (CallOutcomeStat::Routed, 5),
            (CallOutcomeStat::VerificationPassed, 4),
            (CallOutcomeStat::VerificationFailed, 1),
        ] {
            calls.add(outcome.field(), times);
        }
        assert_eq!(calls.ivr_containment(), Some(0.375));
        assert_eq!(calls.verification_pass_rate(), Some(0.8));
    }

    #[test]
    fn figures_of_a_sum_are_figures_of_the_whole_not_an_average_of_figures() {
        let quiet = queue_history(&[
            QueueStatEvent::Offered,
            QueueStatEvent::Answered { wait_ms: 1_000 },
        ]);
        let busy = a_morning();
        let buckets = [quiet, busy].map(|counters| StatsBucket {
            start_ms: DAY0,
            counters,
        });
        let total = total(&buckets);
        assert_eq!(total.offered, 11);
        assert_eq!(total.service_level(), Some(4.0 / 8.0));
        assert_eq!(total.asa_secs(), Some(157.0 / 7.0));
    }

    #[test]
    fn buckets_start_on_utc_days_and_quarter_hours() {
        let at = DAY0 + 13 * 3_600_000 + 47 * 60_000 + 12_345;
        assert_eq!(StatsInterval::Day.bucket_start(at), DAY0);
        assert_eq!(
            StatsInterval::FifteenMinutes.bucket_start(at),
            DAY0 + 13 * 3_600_000 + 45 * 60_000
        );
        // Before 1970 too.
        assert_eq!(StatsInterval::Day.bucket_start(-1), -DAY_MS);
    }

    #[test]
    fn bucket_starts_cover_every_bucket_the_range_touches() {
        let starts: Vec<i64> = StatsInterval::FifteenMinutes
            .bucket_starts(DAY0 + 10 * 60_000, DAY0 + 31 * 60_000)
            .collect();
        assert_eq!(
            starts,
            [
                DAY0,
                DAY0 + FIFTEEN_MINUTES_MS,
                DAY0 + 2 * FIFTEEN_MINUTES_MS
            ]
        );
        assert_eq!(
            StatsInterval::FifteenMinutes.bucket_count(DAY0 + 10 * 60_000, DAY0 + 31 * 60_000),
            3
        );
        let days: Vec<i64> = StatsInterval::Day
            .bucket_starts(DAY0, DAY0 + 2 * DAY_MS)
            .collect();
        assert_eq!(days, [DAY0, DAY0 + DAY_MS]);
        assert_eq!(StatsInterval::Day.bucket_starts(DAY0, DAY0).count(), 0);
        assert_eq!(
            StatsInterval::Day.bucket_starts(DAY0 + 5, DAY0 + 5).count(),
            0
        );
        assert_eq!(StatsInterval::Day.bucket_count(DAY0 + 5, DAY0 + 5), 0);
    }

    #[test]
    fn a_huge_range_is_capped() {
        assert_eq!(
            StatsInterval::FifteenMinutes
                .bucket_starts(i64::MIN / 2, i64::MAX)
                .count(),
            MAX_BUCKETS
        );
        assert!(StatsInterval::FifteenMinutes.bucket_count(0, i64::MAX) > MAX_BUCKETS as u64);
    }

    #[test]
    fn a_range_is_read_in_the_largest_buckets_that_start_with_it() {
        assert_eq!(
            StatsInterval::coarsest_starting_at(DAY0),
            StatsInterval::Day
        );
        assert_eq!(
            StatsInterval::coarsest_starting_at(DAY0 + 6 * HOUR_MS),
            StatsInterval::Hour
        );
        assert_eq!(
            StatsInterval::coarsest_starting_at(DAY0 + 18 * HOUR_MS + 30 * 60_000),
            StatsInterval::FifteenMinutes
        );
        assert_eq!(StatsInterval::from_name("hour"), Some(StatsInterval::Hour));
        assert_eq!(StatsInterval::from_name("week"), None);
    }

    #[test]
    fn a_local_day_starts_at_local_midnight() {
        let chicago = jiff::tz::TimeZone::get("America/Chicago").expect("tz");
        // 2026-01-01 03:00 UTC is still 2025-12-31 21:00 in Chicago (UTC-6).
        let late_evening = DAY0 + 3 * 3_600_000;
        assert_eq!(
            local_day_start_ms(late_evening, &chicago),
            Some(DAY0 - DAY_MS + 6 * 3_600_000)
        );
        assert_eq!(
            local_day_start_ms(late_evening, &jiff::tz::TimeZone::UTC),
            Some(DAY0)
        );
    }
}
