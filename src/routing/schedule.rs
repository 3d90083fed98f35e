//! Opening hours as a pure function of (rules, instant): weekly hours, holidays and dated
//! overrides in the schedule's own time zone.
//!
//! A [`Schedule`] is compiled once from a [`ScheduleConfig`] (a `[schedules.<name>]` table of
//! the configuration, defined here beside the rules that read it); compiling is also how
//! `careline check` validates one, so the syntax lives only here. Every question is asked about
//! a [`Timestamp`] the caller supplies: there is no clock in this module.
//!
//! Rules are read on the local wall clock, through jiff's copy of the time zone database:
//!
//! - Each calendar date has the hours that *start* on it: the weekly rules whose days include
//!   that date, unless the date is a holiday (no hours) or has an override (the override's
//!   hours, or none).
//! - `to` earlier than `from` crosses midnight: the part after midnight falls on the next
//!   calendar date but belongs to the start date. So a Thursday 22:00–06:00 shift still runs
//!   until 06:00 on a Friday holiday (the holiday cancels only the hours that start on it), and
//!   a holiday on Thursday cancels the whole shift, Friday morning included.
//! - On the spring-forward day a time inside the skipped hour is reached when the clocks jump:
//!   hours from 02:30 open at 03:00. On the fall-back day the repeated hour is covered twice:
//!   hours 01:00–01:30 are open during both passes of that half hour.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;

/// How far ahead [`Schedule::next_open`] and [`Schedule::next_change`] look. Two weeks covers
/// any weekly pattern plus a run of holidays; a schedule closed for longer is treated as closed.
pub const LOOKAHEAD_DAYS: i64 = 14;

const MINUTES_PER_DAY: u16 = 24 * 60;

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
/// One `[schedules.<name>]` table of the configuration, as the admin wrote it.
pub struct ScheduleConfig {
    /// IANA time zone, e.g. `America/Chicago`.
    pub timezone: String,
    #[serde(default)]
    pub hours: Vec<HoursRule>,
    /// `YYYY-MM-DD` dates on which the schedule is closed all day.
    #[serde(default)]
    pub holidays: Vec<String>,
    /// Dated exceptions that replace the weekly hours for that date.
    #[serde(default)]
    pub overrides: Vec<OverrideRule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoursRule {
    /// `mon-fri`, `sat`, `sun,tue`, ...
    pub days: String,
    /// `HH:MM`; `to` earlier than `from` crosses midnight.
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideRule {
    pub date: String,
    /// Both absent: closed all that day.
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
}

/// A compiled schedule: ask it whether it is open at an instant, and when it opens next.
#[derive(Debug, Clone)]
pub struct Schedule {
    zone: TimeZone,
    weekly: Vec<WeeklyHours>,
    holidays: BTreeSet<Date>,
    /// `None`: closed all that date.
    overrides: BTreeMap<Date, Option<Hours>>,
}

/// One thing wrong with a schedule's rules, at a key path relative to the schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleProblem {
    /// E.g. `hours[1].from`, `timezone`, `holidays[0]`.
    pub key_path: String,
    pub message: String,
    /// What the admin should write instead.
    pub hint: String,
}

impl fmt::Display for ScheduleProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.key_path, self.message, self.hint)
    }
}

/// Minutes since local midnight. `to` is in `1..=1440`, or `0` meaning midnight at the end of
/// the day; `to <= from` means the hours run past midnight into the next date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Hours {
    from: u16,
    to: u16,
}

impl Hours {
    fn crosses_midnight(self) -> bool {
        self.to <= self.from
    }

    /// Open at `minute` of the date these hours start on.
    fn covers_start_date(self, minute: u16) -> bool {
        minute >= self.from && (self.crosses_midnight() || minute < self.to)
    }

    /// Open at `minute` of the date after the one these hours start on.
    fn covers_next_date(self, minute: u16) -> bool {
        self.crosses_midnight() && minute < self.to
    }
}

#[derive(Debug, Clone, Copy)]
struct WeeklyHours {
    /// Bit `n` set: open on the day `n` days after Monday.
    days: u8,
    hours: Hours,
}

impl Schedule {
    /// Parse and validate a schedule, reporting every problem at once.
    pub fn compile(config: &ScheduleConfig) -> Result<Schedule, Vec<ScheduleProblem>> {
        let mut problems = Vec::new();
        let mut problem = |key_path: String, message: String, hint: &str| {
            problems.push(ScheduleProblem {
                key_path,
                message,
                hint: hint.to_owned(),
            });
        };

        let zone = match TimeZone::get(&config.timezone) {
            Ok(zone) => Some(zone),
            Err(_) => {
                problem(
                    "timezone".to_owned(),
                    format!("`{}` is not a known time zone", config.timezone),
                    "use an IANA time zone name such as America/Chicago or Europe/Berlin",
                );
                None
            }
        };

        let mut weekly = Vec::new();
        for (index, rule) in config.hours.iter().enumerate() {
            let days = parse_days(&rule.days).map_err(|message| {
                problem(
                    format!("hours[{index}].days"),
                    message,
                    "write days like \"mon-fri\", \"sat\" or \"sun,tue,thu\" (mon tue wed thu fri sat sun)",
                )
            });
            let hours = parse_hours(&rule.from, &rule.to).map_err(|(field, message)| {
                problem(format!("hours[{index}].{field}"), message, TIME_HINT)
            });
            if let (Ok(days), Ok(hours)) = (days, hours) {
                weekly.push(WeeklyHours { days, hours });
            }
        }

        let mut holidays = BTreeSet::new();
        for (index, text) in config.holidays.iter().enumerate() {
            match parse_date(text) {
                Ok(date) => {
                    holidays.insert(date);
                }
                Err(message) => problem(format!("holidays[{index}]"), message, DATE_HINT),
            }
        }

        let mut overrides = BTreeMap::new();
        for (index, rule) in config.overrides.iter().enumerate() {
            let date = parse_date(&rule.date)
                .map_err(|message| problem(format!("overrides[{index}].date"), message, DATE_HINT));
            let hours = match (&rule.from, &rule.to) {
                (None, None) => Ok(None),
                (Some(from), Some(to)) => {
                    parse_hours(from, to).map(Some).map_err(|(field, message)| {
                        problem(format!("overrides[{index}].{field}"), message, TIME_HINT)
                    })
                }
                (Some(_), None) | (None, Some(_)) => {
                    problem(
                        format!("overrides[{index}]"),
                        "an override needs both `from` and `to`, or neither".to_owned(),
                        "give both times for shortened hours, or leave both out to close all day",
                    );
                    Err(())
                }
            };
            let (Ok(date), Ok(hours)) = (date, hours) else {
                continue;
            };
            if holidays.contains(&date) {
                problem(
                    format!("overrides[{index}].date"),
                    format!("{date} is both a holiday and an override"),
                    "keep the holiday to close all day, or the override to set that day's hours",
                );
            } else if overrides.insert(date, hours).is_some() {
                problem(
                    format!("overrides[{index}].date"),
                    format!("{date} has more than one override"),
                    "keep one override per date",
                );
            }
        }

        match zone {
            Some(zone) if problems.is_empty() => Ok(Schedule {
                zone,
                weekly,
                holidays,
                overrides,
            }),
            _ => Err(problems),
        }
    }

    pub fn time_zone(&self) -> &TimeZone {
        &self.zone
    }

    /// Whether any rule can ever open this schedule.
    pub fn has_hours(&self) -> bool {
        !self.weekly.is_empty() || self.overrides.values().any(Option::is_some)
    }

    /// Whether the schedule is open at `at`.
    pub fn is_open(&self, at: Timestamp) -> bool {
        let local = self.zone.to_datetime(at);
        let minute = minute_of_day(local.time());
        let date = local.date();
        if self
            .hours_starting_on(date)
            .any(|hours| hours.covers_start_date(minute))
        {
            return true;
        }
        match date.yesterday() {
            Ok(yesterday) => self
                .hours_starting_on(yesterday)
                .any(|hours| hours.covers_next_date(minute)),
            Err(_) => false,
        }
    }

    /// The first instant after `at` at which the schedule opens or closes, within
    /// [`LOOKAHEAD_DAYS`].
    pub fn next_change(&self, at: Timestamp) -> Option<Timestamp> {
        let open = self.is_open(at);
        self.candidate_changes(at)
            .into_iter()
            .find(|&candidate| self.is_open(candidate) != open)
    }

    /// `at` itself if open, else the first instant the schedule opens within
    /// [`LOOKAHEAD_DAYS`]: when a callback can be returned.
    pub fn next_open(&self, at: Timestamp) -> Option<Timestamp> {
        if self.is_open(at) {
            return Some(at);
        }
        self.next_change(at)
    }

    /// The hours that start on `date`, after holidays and overrides.
    fn hours_starting_on(&self, date: Date) -> impl Iterator<Item = Hours> + '_ {
        let (overridden, weekly): (Option<Hours>, &[WeeklyHours]) = if self.holidays.contains(&date)
        {
            (None, &[])
        } else if let Some(hours) = self.overrides.get(&date) {
            (*hours, &[])
        } else {
            (None, &self.weekly)
        };
        let day_bit = 1u8 << date.weekday().to_monday_zero_offset();
        overridden.into_iter().chain(
            weekly
                .iter()
                .filter(move |rule| rule.days & day_bit != 0)
                .map(|rule| rule.hours),
        )
    }

    /// Every instant in the lookahead after `at` where the state could change, sorted: each
    /// rule boundary on each pass of the wall clock over it, and each offset transition (which
    /// is where a boundary inside a skipped hour takes effect). Whether a candidate really
    /// changes the state is decided by [`Schedule::is_open`], so extras are harmless.
    fn candidate_changes(&self, at: Timestamp) -> Vec<Timestamp> {
        let Ok(horizon) = at.checked_add(SignedDuration::from_hours(24 * LOOKAHEAD_DAYS)) else {
            return Vec::new();
        };
        let mut boundaries: Vec<DateTime> = Vec::new();
        let mut date = self.zone.to_datetime(at).date().yesterday().ok();
        for _ in 0..LOOKAHEAD_DAYS + 3 {
            let Some(day) = date else { break };
            let next_day = day.tomorrow().ok();
            for hours in self.hours_starting_on(day) {
                boundaries.push(at_minute(day, hours.from));
                let end_day = if hours.crosses_midnight() || hours.to == MINUTES_PER_DAY {
                    next_day
                } else {
                    Some(day)
                };
                if let Some(end_day) = end_day {
                    boundaries.push(at_minute(end_day, hours.to % MINUTES_PER_DAY));
                }
            }
            date = next_day;
        }

        let mut candidates: Vec<Timestamp> = Vec::new();
        for boundary in boundaries {
            let offsets = match self.zone.to_ambiguous_timestamp(boundary).offset() {
                AmbiguousOffset::Unambiguous { offset } => [offset, offset],
                AmbiguousOffset::Gap { before, after }
                | AmbiguousOffset::Fold { before, after } => [before, after],
            };
            candidates.extend(
                offsets
                    .into_iter()
                    .filter_map(|offset| offset.to_timestamp(boundary).ok()),
            );
        }
        candidates.extend(
            self.zone
                .following(at)
                .map(|transition| transition.timestamp())
                .take_while(|&instant| instant <= horizon),
        );
        candidates.retain(|&instant| instant > at && instant <= horizon);
        candidates.sort();
        candidates.dedup();
        candidates
    }
}

const TIME_HINT: &str = "write times as HH:MM on the 24-hour clock, e.g. \"07:00\" or \"19:30\"; \"24:00\" ends at midnight";
const DATE_HINT: &str = "write dates as YYYY-MM-DD, e.g. \"2026-12-25\"";

fn minute_of_day(time: Time) -> u16 {
    // Both in range by construction of `Time`, so the product fits.
    (time.hour() as u16) * 60 + time.minute() as u16
}

fn at_minute(date: Date, minute: u16) -> DateTime {
    let time =
        Time::new((minute / 60) as i8, (minute % 60) as i8, 0, 0).unwrap_or(Time::midnight());
    DateTime::from_parts(date, time)
}

/// `mon-fri`, `sat`, `sun,tue,thu`, `fri-mon` (wraps past Sunday).
fn parse_days(text: &str) -> Result<u8, String> {
    let mut days = 0u8;
    for part in text.split(',') {
        let part = part.trim();
        let (first, last) = match part.split_once('-') {
            Some((first, last)) => (day_index(first.trim())?, day_index(last.trim())?),
            None => {
                let day = day_index(part)?;
                (day, day)
            }
        };
        let mut day = first;
        loop {
            days |= 1 << day;
            if day == last {
                break;
            }
            day = (day + 1) % 7;
        }
    }
    Ok(days)
}

fn day_index(name: &str) -> Result<u8, String> {
    let lower = name.to_ascii_lowercase();
    DAY_NAMES
        .iter()
        .position(|day| *day == lower)
        .map(|index| index as u8)
        .ok_or_else(|| {
            if name.is_empty() {
                "a day is missing".to_owned()
            } else {
                format!("`{name}` is not a day")
            }
        })
}

/// Both times of a rule; on error, which field is wrong.
fn parse_hours(from: &str, to: &str) -> Result<Hours, (&'static str, String)> {
    let from_minute = parse_time(from).map_err(|message| ("from", message))?;
    if from_minute == MINUTES_PER_DAY {
        return Err((
            "from",
            "24:00 can only end hours; start them at \"00:00\"".to_owned(),
        ));
    }
    let to_minute = parse_time(to).map_err(|message| ("to", message))?;
    if to_minute == from_minute {
        return Err((
            "to",
            format!(
                "`from` and `to` are both {from}; for all day write from = \"00:00\", to = \"24:00\""
            ),
        ));
    }
    Ok(Hours {
        from: from_minute,
        to: to_minute,
    })
}

/// `HH:MM`, 00:00 to 23:59, or 24:00.
fn parse_time(text: &str) -> Result<u16, String> {
    let invalid = || format!("`{text}` is not a time");
    let bytes = text.as_bytes();
    if bytes.len() != 5 || bytes[2] != b':' {
        return Err(invalid());
    }
    let number = |digits: &[u8]| -> Option<u16> {
        digits.iter().try_fold(0u16, |value, &byte| {
            byte.is_ascii_digit()
                .then(|| value * 10 + u16::from(byte - b'0'))
        })
    };
    let (Some(hour), Some(minute)) = (number(&bytes[..2]), number(&bytes[3..])) else {
        return Err(invalid());
    };
    match (hour, minute) {
        (24, 0) => Ok(MINUTES_PER_DAY),
        (0..=23, 0..=59) => Ok(hour * 60 + minute),
        _ => Err(format!("`{text}` is not a time of day")),
    }
}

/// `YYYY-MM-DD`, a real calendar date.
fn parse_date(text: &str) -> Result<Date, String> {
    let invalid = || format!("`{text}` is not a date");
    let mut parts = text.split('-');
    let (Some(year), Some(month), Some(day), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    let all_digits =
        |part: &str, len: usize| part.len() == len && part.bytes().all(|b| b.is_ascii_digit());
    if !(all_digits(year, 4) && all_digits(month, 2) && all_digits(day, 2)) {
        return Err(invalid());
    }
    let (Ok(year), Ok(month), Ok(day)) = (year.parse(), month.parse(), day.parse()) else {
        return Err(invalid());
    };
    Date::new(year, month, day).map_err(|_| format!("`{text}` is not a day of the calendar"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(days: &str, from: &str, to: &str) -> HoursRule {
        HoursRule {
            days: days.to_owned(),
            from: from.to_owned(),
            to: to.to_owned(),
        }
    }

    fn chicago(hours: Vec<HoursRule>) -> ScheduleConfig {
        ScheduleConfig {
            timezone: "America/Chicago".to_owned(),
            hours,
            holidays: Vec::new(),
            overrides: Vec::new(),
        }
    }

    fn compile(config: &ScheduleConfig) -> Schedule {
        Schedule::compile(config).expect("schedule compiles")
    }

    fn at(text: &str) -> Timestamp {
        text.parse().expect("test timestamp")
    }

    /// A Chicago wall-clock time, for instants where the offset is not in question.
    fn local(text: &str) -> Timestamp {
        let datetime: DateTime = text.parse().expect("test datetime");
        TimeZone::get("America/Chicago")
            .expect("zone")
            .to_ambiguous_timestamp(datetime)
            .unambiguous()
            .expect("unambiguous local time")
    }

    fn helpdesk() -> ScheduleConfig {
        chicago(vec![
            hours("mon-fri", "07:00", "19:00"),
            hours("sat", "09:00", "13:00"),
        ])
    }

    #[test]
    fn weekday_hours_are_open_and_evenings_are_closed() {
        let schedule = compile(&helpdesk());
        // 2026-03-04 is a Wednesday.
        assert!(!schedule.is_open(local("2026-03-04T06:59:59")));
        assert!(schedule.is_open(local("2026-03-04T07:00")));
        assert!(schedule.is_open(local("2026-03-04T18:59:59")));
        assert!(!schedule.is_open(local("2026-03-04T19:00")));
        assert!(
            schedule.is_open(local("2026-03-07T10:00")),
            "Saturday morning"
        );
        assert!(!schedule.is_open(local("2026-03-08T10:00")), "Sunday");
    }

    #[test]
    fn opening_after_the_spring_forward_weekend_uses_daylight_time() {
        let schedule = compile(&helpdesk());
        // Saturday 2026-03-07 13:00 CST, after Saturday hours; DST starts Sunday 03-08.
        let saturday_closing = at("2026-03-07T19:00:00Z");
        assert!(!schedule.is_open(saturday_closing));
        // Monday 07:00 CDT is 12:00 UTC, an hour earlier in UTC than the week before.
        assert_eq!(
            schedule.next_open(saturday_closing),
            Some(at("2026-03-09T12:00:00Z"))
        );
        assert_eq!(
            schedule.next_open(at("2026-03-02T01:00:00Z")),
            Some(at("2026-03-02T13:00:00Z")),
            "Monday 07:00 CST the week before"
        );
    }

    #[test]
    fn hours_starting_in_the_skipped_hour_open_when_the_clocks_jump() {
        // 2026-03-08: 02:00 CST jumps to 03:00 CDT, so 02:30 never happens on the wall clock.
        let schedule = compile(&chicago(vec![hours("sun", "02:30", "04:00")]));
        assert!(
            !schedule.is_open(at("2026-03-08T07:59:59Z")),
            "01:59:59 CST"
        );
        assert!(schedule.is_open(at("2026-03-08T08:00:00Z")), "03:00 CDT");
        assert_eq!(
            schedule.next_open(at("2026-03-08T07:00:00Z")),
            Some(at("2026-03-08T08:00:00Z"))
        );
        assert_eq!(
            schedule.next_change(at("2026-03-08T08:00:00Z")),
            Some(at("2026-03-08T09:00:00Z")),
            "closes at 04:00 CDT"
        );
    }

    #[test]
    fn hours_inside_the_repeated_hour_are_open_on_both_passes() {
        // 2026-11-01: 02:00 CDT falls back to 01:00 CST, so 01:00-01:30 happens twice.
        let schedule = compile(&chicago(vec![hours("sun", "01:00", "01:30")]));
        assert!(schedule.is_open(at("2026-11-01T06:15:00Z")), "01:15 CDT");
        assert!(!schedule.is_open(at("2026-11-01T06:45:00Z")), "01:45 CDT");
        assert!(schedule.is_open(at("2026-11-01T07:15:00Z")), "01:15 CST");
        assert!(!schedule.is_open(at("2026-11-01T07:45:00Z")), "01:45 CST");
        assert_eq!(
            schedule.next_open(at("2026-11-01T06:45:00Z")),
            Some(at("2026-11-01T07:00:00Z")),
            "the wall clock returns to 01:00"
        );
    }

    #[test]
    fn overnight_shift_belongs_to_the_day_it_starts() {
        let schedule = compile(&chicago(vec![hours("fri", "22:00", "06:00")]));
        // 2026-03-06 is a Friday.
        assert!(
            !schedule.is_open(local("2026-03-06T03:00")),
            "Friday early morning"
        );
        assert!(schedule.is_open(local("2026-03-06T22:00")));
        assert!(
            schedule.is_open(local("2026-03-07T05:59")),
            "Saturday early morning"
        );
        assert!(!schedule.is_open(local("2026-03-07T06:00")));
        assert!(
            !schedule.is_open(local("2026-03-07T23:00")),
            "Saturday night"
        );
    }

    #[test]
    fn day_ranges_wrap_past_sunday() {
        let schedule = compile(&chicago(vec![hours("fri-mon", "09:00", "17:00")]));
        // 2026-03-02 Monday .. 2026-03-08 Sunday.
        let open_days: Vec<bool> = (2..=8)
            .map(|day| schedule.is_open(local(&format!("2026-03-0{day}T12:00"))))
            .collect();
        assert_eq!(open_days, [true, false, false, false, true, true, true]);
    }

    #[test]
    fn day_lists_name_single_days() {
        let schedule = compile(&chicago(vec![hours("sun,tue,thu", "09:00", "17:00")]));
        let open_days: Vec<bool> = (2..=8)
            .map(|day| schedule.is_open(local(&format!("2026-03-0{day}T12:00"))))
            .collect();
        assert_eq!(open_days, [false, true, false, true, false, false, true]);
    }

    #[test]
    fn holiday_closes_the_day_and_next_open_skips_it_and_the_weekend() {
        let mut config = helpdesk();
        config.holidays = vec!["2026-12-25".to_owned()];
        let schedule = compile(&config);
        assert!(schedule.is_open(local("2026-12-24T12:00")));
        assert!(
            !schedule.is_open(local("2026-12-25T12:00")),
            "Christmas Friday"
        );
        assert!(
            schedule.is_open(local("2026-12-26T10:00")),
            "Saturday hours still hold"
        );
        assert_eq!(
            schedule.next_open(local("2026-12-24T19:30")),
            Some(local("2026-12-26T09:00"))
        );
        assert_eq!(
            schedule.next_open(local("2026-12-26T13:00")),
            Some(local("2026-12-28T07:00")),
            "Saturday afternoon to Monday morning"
        );
    }

    #[test]
    fn overnight_shift_from_the_evening_before_a_holiday_runs_until_morning() {
        let mut config = chicago(vec![hours("mon-fri", "22:00", "06:00")]);
        // Thursday 2026-12-24 is a normal night; Friday 2026-12-25 is the holiday.
        config.holidays = vec!["2026-12-25".to_owned()];
        let schedule = compile(&config);
        assert!(schedule.is_open(local("2026-12-25T03:00")));
        assert!(
            !schedule.is_open(local("2026-12-25T22:30")),
            "holiday night shift cancelled"
        );
        assert!(!schedule.is_open(local("2026-12-26T03:00")));
    }

    #[test]
    fn override_replaces_that_dates_hours() {
        let mut config = helpdesk();
        config.overrides = vec![
            OverrideRule {
                date: "2026-12-24".to_owned(),
                from: Some("07:00".to_owned()),
                to: Some("12:00".to_owned()),
            },
            OverrideRule {
                date: "2026-12-23".to_owned(),
                from: None,
                to: None,
            },
            OverrideRule {
                date: "2026-12-27".to_owned(),
                from: Some("10:00".to_owned()),
                to: Some("14:00".to_owned()),
            },
        ];
        let schedule = compile(&config);
        assert!(schedule.is_open(local("2026-12-24T11:59")));
        assert!(
            !schedule.is_open(local("2026-12-24T12:00")),
            "Christmas Eve closes at noon"
        );
        assert!(
            !schedule.is_open(local("2026-12-23T12:00")),
            "closed all day"
        );
        assert!(
            schedule.is_open(local("2026-12-27T11:00")),
            "a Sunday opened by override"
        );
        assert!(
            schedule.is_open(local("2026-12-22T12:00")),
            "other days unchanged"
        );
        assert_eq!(
            schedule.next_open(local("2026-12-22T20:00")),
            Some(local("2026-12-24T07:00"))
        );
    }

    #[test]
    fn midnight_ending_and_all_day_hours() {
        let schedule = compile(&chicago(vec![
            hours("mon", "00:00", "24:00"),
            hours("tue", "20:00", "00:00"),
        ]));
        assert!(schedule.is_open(local("2026-03-02T00:00")));
        assert!(schedule.is_open(local("2026-03-02T23:59")));
        assert!(!schedule.is_open(local("2026-03-03T12:00")));
        assert!(schedule.is_open(local("2026-03-03T23:59")));
        assert!(!schedule.is_open(local("2026-03-04T00:00")));
        assert_eq!(
            schedule.next_change(local("2026-03-02T12:00")),
            Some(local("2026-03-03T00:00"))
        );
    }

    #[test]
    fn a_schedule_that_never_opens_has_no_next_open() {
        let schedule = compile(&chicago(Vec::new()));
        assert!(!schedule.has_hours());
        assert_eq!(schedule.next_open(local("2026-03-02T12:00")), None);
    }

    #[test]
    fn every_mistake_in_a_schedule_is_reported_with_its_place() {
        let config = ScheduleConfig {
            timezone: "America/Chicgo".to_owned(),
            hours: vec![
                hours("mon-fri", "07:00", "19:00"),
                hours("mon-funday", "7:00", "25:00"),
                hours("sat", "24:00", "09:00"),
                hours("sun", "09:00", "09:00"),
            ],
            holidays: vec![
                "2026-12-25".to_owned(),
                "12/25/2026".to_owned(),
                "2026-02-30".to_owned(),
            ],
            overrides: vec![
                OverrideRule {
                    date: "2026-12-25".to_owned(),
                    from: None,
                    to: None,
                },
                OverrideRule {
                    date: "2026-12-24".to_owned(),
                    from: Some("07:00".to_owned()),
                    to: None,
                },
            ],
        };
        let problems = Schedule::compile(&config).expect_err("broken schedule");
        let paths: Vec<&str> = problems.iter().map(|p| p.key_path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "timezone",
                "hours[1].days",
                "hours[1].from",
                "hours[2].from",
                "hours[3].to",
                "holidays[1]",
                "holidays[2]",
                "overrides[0].date",
                "overrides[1]",
            ]
        );
        assert!(problems[1].message.contains("funday"));
    }
}
