//! The desk's own days, hours and quarter hours as ranges of UTC instants, and how the store's
//! UTC buckets add up into them.
//!
//! A local bucket is a longest run of instants that share a local date (`day`), or a local hour
//! or quarter hour *and* a UTC offset (`hour`, `15m`). So a day on which the clocks change lasts
//! 23 or 25 hours; the hour skipped when the clocks spring forward does not exist; the hour
//! repeated when they fall back is two buckets, one per offset. Buckets are found from offset
//! arithmetic and the zone's transitions (jiff's bundled tz database), a step per bucket or
//! clock change, never by walking minutes.
//!
//! The store counts in UTC days, hours and quarter hours. Every offset in use today is a whole
//! number of quarter hours (India +05:30, Nepal +05:45) and clocks change on a quarter hour, so
//! every local bucket is a whole number of UTC quarter hours — of UTC hours where the offsets
//! are whole hours, of UTC days in UTC — and the sums are exact. [`store_interval`] finds the
//! coarsest store bucket that tiles them all; where none does (local mean time, before a place
//! adopted standard time) the caller refuses rather than approximate.
//!
//! No I/O and no clock: instants are milliseconds since the Unix epoch, passed in.

use std::ops::AddAssign;

use jiff::Timestamp;
use jiff::tz::{Offset, TimeZone};

use crate::store::{StatsBucket, StatsInterval};

/// One local bucket: `[start_ms, end_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalBucket {
    pub start_ms: i64,
    pub end_ms: i64,
}

/// Why a range cannot be cut into local buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LocalBucketError {
    #[error("the range holds more than {max} buckets")]
    TooMany { max: usize },
    #[error("the range reaches times that cannot be placed in the zone")]
    OutOfRange,
}

/// Looking back for the start of a bucket passes at most this many clock changes: a day holds
/// two at most in any zone there has been.
const MAX_CUTS_BACK: usize = 16;

fn timestamp(at_ms: i64) -> Result<Timestamp, LocalBucketError> {
    Timestamp::from_millisecond(at_ms).map_err(|_| LocalBucketError::OutOfRange)
}

fn offset_ms(zone: &TimeZone, at_ms: i64) -> Result<i64, LocalBucketError> {
    Ok(i64::from(zone.to_offset(timestamp(at_ms)?).seconds()) * 1_000)
}

/// Instants with equal keys, one after the other, are one bucket: the local day number, or the
/// local hour or quarter-hour number with the offset.
fn key(
    zone: &TimeZone,
    interval: StatsInterval,
    at_ms: i64,
) -> Result<(i64, i64), LocalBucketError> {
    let offset = offset_ms(zone, at_ms)?;
    let number = (at_ms + offset).div_euclid(interval.length_ms());
    Ok(match interval {
        StatsInterval::Day => (number, 0),
        StatsInterval::Hour | StatsInterval::FifteenMinutes => (number, offset),
    })
}

/// The first instant after `at_ms` where the key may change: the next local boundary at the
/// offset in force, or the zone's next clock change if that comes first.
fn next_cut(zone: &TimeZone, interval: StatsInterval, at_ms: i64) -> Result<i64, LocalBucketError> {
    let offset = offset_ms(zone, at_ms)?;
    let length = interval.length_ms();
    let local = at_ms + offset;
    let boundary = local - local.rem_euclid(length) + length - offset;
    let change = zone
        .following(timestamp(at_ms)?)
        .next()
        .map(|transition| transition.timestamp().as_millisecond());
    Ok(change.map_or(boundary, |change| change.min(boundary)))
}

/// The last instant at or before `at_ms` where the key may have changed.
fn cut_at_or_before(
    zone: &TimeZone,
    interval: StatsInterval,
    at_ms: i64,
) -> Result<i64, LocalBucketError> {
    let offset = offset_ms(zone, at_ms)?;
    let local = at_ms + offset;
    let boundary = local - local.rem_euclid(interval.length_ms()) - offset;
    // Clock changes fall on whole seconds: one before `at_ms + 1` is at or before `at_ms`.
    let change = zone
        .preceding(timestamp(at_ms + 1)?)
        .next()
        .map(|transition| transition.timestamp().as_millisecond());
    Ok(change.map_or(boundary, |change| change.max(boundary)))
}

/// The first instant of the local bucket `at_ms` falls in.
pub fn bucket_start(
    zone: &TimeZone,
    interval: StatsInterval,
    at_ms: i64,
) -> Result<i64, LocalBucketError> {
    let wanted = key(zone, interval, at_ms)?;
    let mut start = cut_at_or_before(zone, interval, at_ms)?;
    // A clock change inside a local day starts no new day: look further back.
    for _ in 0..MAX_CUTS_BACK {
        if key(zone, interval, start - 1)? != wanted {
            return Ok(start);
        }
        start = cut_at_or_before(zone, interval, start - 1)?;
    }
    Err(LocalBucketError::OutOfRange)
}

/// Every local bucket of `interval` in `zone` that overlaps `[from_ms, to_ms)`, oldest first
/// (so the first starts at or before `from_ms`), or an error when there are more than `max`.
pub fn local_buckets(
    zone: &TimeZone,
    interval: StatsInterval,
    from_ms: i64,
    to_ms: i64,
    max: usize,
) -> Result<Vec<LocalBucket>, LocalBucketError> {
    let mut buckets = Vec::new();
    if from_ms >= to_ms {
        return Ok(buckets);
    }
    let mut start = bucket_start(zone, interval, from_ms)?;
    let mut current = key(zone, interval, start)?;
    let mut at = start;
    while start < to_ms {
        let cut = next_cut(zone, interval, at)?;
        let next = key(zone, interval, cut)?;
        if next != current {
            if buckets.len() == max {
                return Err(LocalBucketError::TooMany { max });
            }
            buckets.push(LocalBucket {
                start_ms: start,
                end_ms: cut,
            });
            start = cut;
            current = next;
        }
        at = cut;
    }
    Ok(buckets)
}

/// The coarsest store bucket size whose buckets tile every one of `buckets` exactly: days for
/// UTC days, hours where the offsets are whole hours, quarter hours elsewhere; `None` when not
/// even quarter hours do.
pub fn store_interval(buckets: &[LocalBucket]) -> Option<StatsInterval> {
    let on = |interval: StatsInterval, at_ms: i64| interval.bucket_start(at_ms) == at_ms;
    StatsInterval::ALL.into_iter().find(|&interval| {
        buckets
            .iter()
            .all(|bucket| on(interval, bucket.start_ms) && on(interval, bucket.end_ms))
    })
}

/// The store's buckets added up into the local buckets they start in; one outside them all
/// counts nowhere. The store's buckets must tile the local ones (see [`store_interval`]).
pub fn add_up<'a, C>(
    local: &[LocalBucket],
    store: impl IntoIterator<Item = &'a StatsBucket<C>>,
) -> Vec<C>
where
    C: AddAssign + Default + Copy + 'a,
{
    let mut sums = vec![C::default(); local.len()];
    for bucket in store {
        let index = local.partition_point(|local| local.end_ms <= bucket.start_ms);
        if let Some(sum) = sums.get_mut(index)
            && local[index].start_ms <= bucket.start_ms
        {
            *sum += bucket.counters;
        }
    }
    sums
}

/// Whether `zone` is UTC itself: offset zero, never a clock change.
pub fn is_utc(zone: &TimeZone) -> bool {
    zone.to_offset(Timestamp::UNIX_EPOCH) == Offset::UTC
        && zone.following(Timestamp::MIN).next().is_none()
}

/// `at_ms` as an RFC 3339 local time with the offset then in force (`2026-11-01T01:00:00-05:00`);
/// with `Z` in UTC itself.
pub fn local_time(zone: &TimeZone, at_ms: i64) -> String {
    match Timestamp::from_millisecond(at_ms) {
        Ok(at) if is_utc(zone) => at.to_string(),
        Ok(at) => at.display_with_offset(zone.to_offset(at)).to_string(),
        Err(_) => at_ms.to_string(),
    }
}

/// The local date of `at_ms`, `YYYY-MM-DD`.
pub fn local_date(zone: &TimeZone, at_ms: i64) -> String {
    Timestamp::from_millisecond(at_ms).map_or_else(
        |_| at_ms.to_string(),
        |at| at.to_zoned(zone.clone()).date().to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{QueueCounters, QueueStatEvent};

    const MINUTE: i64 = 60_000;
    const DAY: i64 = 86_400_000;

    fn zone(name: &str) -> TimeZone {
        TimeZone::get(name).expect("a zone in the bundled database")
    }

    fn at(rfc3339: &str) -> i64 {
        rfc3339
            .parse::<Timestamp>()
            .expect("an RFC 3339 time")
            .as_millisecond()
    }

    /// The buckets labelled as the API labels them, with their lengths in minutes.
    fn labelled(zone: &TimeZone, buckets: &[LocalBucket]) -> Vec<(String, i64)> {
        buckets
            .iter()
            .map(|bucket| {
                (
                    local_time(zone, bucket.start_ms),
                    (bucket.end_ms - bucket.start_ms) / MINUTE,
                )
            })
            .collect()
    }

    /// One call offered in every UTC quarter hour of `[from_ms, to_ms)`, as the store holds
    /// them read in `interval` buckets.
    fn a_call_every_quarter_hour(
        from_ms: i64,
        to_ms: i64,
        interval: StatsInterval,
    ) -> Vec<StatsBucket<QueueCounters>> {
        let mut per_bucket = std::collections::BTreeMap::<i64, QueueCounters>::new();
        let mut quarter = from_ms;
        while quarter < to_ms {
            per_bucket
                .entry(interval.bucket_start(quarter))
                .or_default()
                .apply(QueueStatEvent::Offered);
            quarter += 15 * MINUTE;
        }
        per_bucket
            .into_iter()
            .map(|(start_ms, counters)| StatsBucket { start_ms, counters })
            .collect()
    }

    /// What the store holds and how the local buckets add it up, for a day's worth of buckets.
    fn offered_per_bucket(
        zone: &TimeZone,
        interval: StatsInterval,
        from_ms: i64,
        to_ms: i64,
    ) -> (Vec<LocalBucket>, Vec<u64>) {
        let buckets = local_buckets(zone, interval, from_ms, to_ms, 4_000).expect("buckets");
        let read = store_interval(&buckets).expect("the store's buckets tile them");
        let first = buckets.first().expect("a bucket").start_ms;
        let last = buckets.last().expect("a bucket").end_ms;
        let store = a_call_every_quarter_hour(first, last, read);
        let offered = add_up(&buckets, &store)
            .iter()
            .map(|counters| counters.offered)
            .collect();
        (buckets, offered)
    }

    #[test]
    fn spring_forward_in_chicago_is_a_23_hour_day_made_of_utc_hours() {
        let chicago = zone("America/Chicago");
        let (days, offered) = offered_per_bucket(
            &chicago,
            StatsInterval::Day,
            at("2026-03-07T12:00:00-06:00"),
            at("2026-03-09T12:00:00-05:00"),
        );
        assert_eq!(
            labelled(&chicago, &days),
            [
                ("2026-03-07T00:00:00-06:00".to_owned(), 24 * 60),
                ("2026-03-08T00:00:00-06:00".to_owned(), 23 * 60),
                ("2026-03-09T00:00:00-05:00".to_owned(), 24 * 60),
            ]
        );
        assert_eq!(offered, [96, 92, 96], "a call every quarter hour, exactly");
        assert_eq!(store_interval(&days), Some(StatsInterval::Hour));
    }

    #[test]
    fn fall_back_in_chicago_is_a_25_hour_day() {
        let chicago = zone("America/Chicago");
        let (days, offered) = offered_per_bucket(
            &chicago,
            StatsInterval::Day,
            at("2026-11-01T00:00:00-05:00"),
            at("2026-11-02T00:00:00-06:00"),
        );
        assert_eq!(
            labelled(&chicago, &days),
            [("2026-11-01T00:00:00-05:00".to_owned(), 25 * 60)]
        );
        assert_eq!(offered, [100]);
    }

    #[test]
    fn spring_forward_skips_the_two_oclock_hour() {
        let chicago = zone("America/Chicago");
        let (hours, offered) = offered_per_bucket(
            &chicago,
            StatsInterval::Hour,
            at("2026-03-08T00:00:00-06:00"),
            at("2026-03-08T04:00:00-05:00"),
        );
        assert_eq!(
            labelled(&chicago, &hours),
            [
                ("2026-03-08T00:00:00-06:00".to_owned(), 60),
                ("2026-03-08T01:00:00-06:00".to_owned(), 60),
                ("2026-03-08T03:00:00-05:00".to_owned(), 60),
            ]
        );
        assert_eq!(offered, [4, 4, 4]);
        let whole_day = local_buckets(
            &chicago,
            StatsInterval::Hour,
            at("2026-03-08T00:00:00-06:00"),
            at("2026-03-09T00:00:00-05:00"),
            100,
        )
        .expect("hours");
        assert_eq!(whole_day.len(), 23);
    }

    #[test]
    fn fall_back_shows_one_oclock_twice_with_its_two_offsets() {
        let chicago = zone("America/Chicago");
        let (hours, offered) = offered_per_bucket(
            &chicago,
            StatsInterval::Hour,
            at("2026-11-01T00:00:00-05:00"),
            at("2026-11-01T03:00:00-06:00"),
        );
        assert_eq!(
            labelled(&chicago, &hours),
            [
                ("2026-11-01T00:00:00-05:00".to_owned(), 60),
                ("2026-11-01T01:00:00-05:00".to_owned(), 60),
                ("2026-11-01T01:00:00-06:00".to_owned(), 60),
                ("2026-11-01T02:00:00-06:00".to_owned(), 60),
            ]
        );
        assert_eq!(offered, [4, 4, 4, 4]);
        let quarters = local_buckets(
            &chicago,
            StatsInterval::FifteenMinutes,
            at("2026-11-01T01:30:00-05:00"),
            at("2026-11-01T01:30:00-06:00"),
            100,
        )
        .expect("quarter hours");
        assert_eq!(
            labelled(&chicago, &quarters)
                .into_iter()
                .map(|(label, _)| label)
                .collect::<Vec<_>>(),
            [
                "2026-11-01T01:30:00-05:00",
                "2026-11-01T01:45:00-05:00",
                "2026-11-01T01:00:00-06:00",
                "2026-11-01T01:15:00-06:00",
            ]
        );
        let whole_day = local_buckets(
            &chicago,
            StatsInterval::Hour,
            at("2026-11-01T00:00:00-05:00"),
            at("2026-11-02T00:00:00-06:00"),
            100,
        )
        .expect("hours");
        assert_eq!(whole_day.len(), 25);
    }

    #[test]
    fn half_hour_zones_add_up_exactly_from_quarter_hours() {
        let kolkata = zone("Asia/Kolkata");
        let (days, offered) = offered_per_bucket(
            &kolkata,
            StatsInterval::Day,
            at("2026-01-05T00:00:00+05:30"),
            at("2026-01-06T00:00:00+05:30"),
        );
        assert_eq!(
            labelled(&kolkata, &days),
            [("2026-01-05T00:00:00+05:30".to_owned(), 24 * 60)]
        );
        assert_eq!(offered, [96]);
        assert_eq!(store_interval(&days), Some(StatsInterval::FifteenMinutes));
        let (hours, offered) = offered_per_bucket(
            &kolkata,
            StatsInterval::Hour,
            at("2026-01-05T09:10:00+05:30"),
            at("2026-01-05T11:00:00+05:30"),
        );
        assert_eq!(
            labelled(&kolkata, &hours),
            [
                ("2026-01-05T09:00:00+05:30".to_owned(), 60),
                ("2026-01-05T10:00:00+05:30".to_owned(), 60),
            ]
        );
        assert_eq!(hours[0].start_ms, at("2026-01-05T03:30:00Z"));
        assert_eq!(offered, [4, 4]);
    }

    #[test]
    fn a_quarter_to_the_hour_zone_and_a_half_hour_daylight_saving_zone() {
        let kathmandu = zone("Asia/Kathmandu");
        let (hours, offered) = offered_per_bucket(
            &kathmandu,
            StatsInterval::Hour,
            at("2026-01-05T09:00:00+05:45"),
            at("2026-01-05T10:00:00+05:45"),
        );
        assert_eq!(hours[0].start_ms, at("2026-01-05T03:15:00Z"));
        assert_eq!(offered, [4]);
        // Adelaide moves from +10:30 to +09:30 at 03:00 on 2026-04-05: a 25-hour day.
        let adelaide = zone("Australia/Adelaide");
        let (days, offered) = offered_per_bucket(
            &adelaide,
            StatsInterval::Day,
            at("2026-04-05T00:00:00+10:30"),
            at("2026-04-06T00:00:00+09:30"),
        );
        assert_eq!(
            labelled(&adelaide, &days),
            [("2026-04-05T00:00:00+10:30".to_owned(), 25 * 60)]
        );
        assert_eq!(offered, [100]);
    }

    #[test]
    fn utc_days_are_the_stores_own_days() {
        let from = at("2026-01-05T10:00:00Z");
        let days = local_buckets(&TimeZone::UTC, StatsInterval::Day, from, from + 2 * DAY, 10)
            .expect("days");
        assert_eq!(days.len(), 3);
        assert_eq!(days[0].start_ms, at("2026-01-05T00:00:00Z"));
        assert_eq!(store_interval(&days), Some(StatsInterval::Day));
        assert_eq!(
            local_time(&TimeZone::UTC, days[0].start_ms),
            "2026-01-05T00:00:00Z"
        );
        assert_eq!(
            local_time(&zone("UTC"), days[0].start_ms),
            "2026-01-05T00:00:00Z"
        );
        assert_eq!(
            local_time(&zone("Europe/London"), days[0].start_ms),
            "2026-01-05T00:00:00+00:00",
            "a zone that is at UTC only in winter says so with its offset"
        );
    }

    #[test]
    fn a_bucket_in_the_middle_of_the_range_is_found_from_any_instant_in_it() {
        let chicago = zone("America/Chicago");
        for probe in ["2026-11-01T01:59:59-05:00", "2026-11-01T23:00:00-06:00"] {
            assert_eq!(
                bucket_start(&chicago, StatsInterval::Day, at(probe)),
                Ok(at("2026-11-01T00:00:00-05:00")),
                "{probe}"
            );
        }
        assert_eq!(
            bucket_start(
                &chicago,
                StatsInterval::Hour,
                at("2026-11-01T01:20:00-06:00")
            ),
            Ok(at("2026-11-01T01:00:00-06:00"))
        );
    }

    #[test]
    fn local_mean_time_is_not_made_of_quarter_hours() {
        // Chicago kept its own sun time, 5 h 50 min 36 s behind UTC, until 1883.
        let chicago = zone("America/Chicago");
        let from = at("1883-01-01T12:00:00Z");
        let days = local_buckets(&chicago, StatsInterval::Day, from, from + DAY, 10).expect("days");
        assert_eq!(store_interval(&days), None);
    }

    #[test]
    fn too_many_buckets_are_refused_before_they_are_all_found() {
        let from = at("2026-01-01T00:00:00Z");
        assert_eq!(
            local_buckets(
                &TimeZone::UTC,
                StatsInterval::FifteenMinutes,
                from,
                i64::MAX / 4,
                10
            ),
            Err(LocalBucketError::TooMany { max: 10 })
        );
        assert_eq!(
            local_buckets(&TimeZone::UTC, StatsInterval::Hour, from, from, 10),
            Ok(Vec::new())
        );
    }
}
