//! The estimated wait a caller hears: from the queue's recent handle times and the agents on
//! shift for it, never from a queue-wide average wait.
//!
//! # The model
//!
//! With `n` agents on shift working the queue side by side, and each of them spending `T` on a
//! call on average (talk plus wrap-up: an agent is free for the next caller only after both),
//! the callers ahead are served in waves of `n`. The caller at 1-based position `p` is in wave
//! `ceil(p / n)`, and each wave takes about `T`, so
//!
//! ```text
//! wait ≈ ceil(p / n) × T
//! ```
//!
//! `T` is the mean of the queue's last [`HISTORY`] handle times, so the estimate follows the
//! desk as calls get longer or shorter; before any history it is [`DEFAULT_HANDLE_TIME`].
//!
//! Why not the average wait of recent callers: that mixes callers who were first in line with
//! callers who were tenth, lags behind every change in staffing (the shift change at 17:00 is
//! invisible until the callers who waited through it are served), and says nothing about *this*
//! caller's place. Position and staffing are known now; handle time is the one quantity that
//! has to be learnt. The model is deliberately on the long side: it assumes the agents ahead of
//! the caller have just started their calls, and a caller told "about 10 minutes" who is served
//! in 6 is happier than the reverse.
//!
//! Nobody on shift means no estimate at all ([`None`]): there is no honest number to announce.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// How many recent handle times per queue the estimate averages.
pub const HISTORY: usize = 20;

/// The handle time assumed for a queue with no history yet.
pub const DEFAULT_HANDLE_TIME: Duration = Duration::from_secs(5 * 60);

/// The last [`HISTORY`] handle times of each queue.
#[derive(Debug, Clone, Default)]
pub struct HandleTimes {
    queues: HashMap<String, Recent>,
}

/// One queue's recent handle times, oldest first; never more than [`HISTORY`].
type Recent = VecDeque<Duration>;

impl HandleTimes {
    pub fn new() -> HandleTimes {
        HandleTimes::default()
    }

    /// A call of `queue` took `handled` from answer to the end of wrap-up.
    pub fn record(&mut self, queue: &str, handled: Duration) {
        let recent = match self.queues.get_mut(queue) {
            Some(recent) => recent,
            None => self.queues.entry(queue.to_owned()).or_default(),
        };
        if recent.len() == HISTORY {
            recent.pop_front();
        }
        recent.push_back(handled);
    }

    /// The mean of the queue's recent handle times, or [`DEFAULT_HANDLE_TIME`] without any.
    pub fn mean(&self, queue: &str) -> Duration {
        match self.queues.get(queue) {
            Some(recent) if !recent.is_empty() => {
                // Summed in nanoseconds as u128: twenty of even Duration::MAX cannot overflow.
                let total: u128 = recent.iter().map(Duration::as_nanos).sum();
                let mean = total / recent.len() as u128;
                u64::try_from(mean).map_or(Duration::MAX, Duration::from_nanos)
            }
            _ => DEFAULT_HANDLE_TIME,
        }
    }

    /// The wait of the caller at 1-based `position` in `queue` with `agents_on_shift` agents
    /// able to take its calls: `ceil(position / agents_on_shift) × mean handle time` (see the
    /// module documentation). `None` when nobody is on shift. Position 0 is read as 1.
    pub fn estimate(
        &self,
        queue: &str,
        position: usize,
        agents_on_shift: usize,
    ) -> Option<Duration> {
        if agents_on_shift == 0 {
            return None;
        }
        let waves = position.max(1).div_ceil(agents_on_shift);
        let waves = u32::try_from(waves).unwrap_or(u32::MAX);
        Some(self.mean(queue).saturating_mul(waves))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(seconds: u64) -> Duration {
        Duration::from_secs(seconds)
    }

    #[test]
    fn without_history_each_wave_takes_five_minutes() {
        let times = HandleTimes::new();
        assert_eq!(times.estimate("portal", 1, 1), Some(secs(300)));
        assert_eq!(times.estimate("portal", 3, 2), Some(secs(600)));
        assert_eq!(times.estimate("portal", 4, 2), Some(secs(600)));
        assert_eq!(times.estimate("portal", 5, 2), Some(secs(900)));
    }

    #[test]
    fn callers_within_the_first_wave_wait_one_handle_time() {
        let times = HandleTimes::new();
        for position in 1..=3 {
            assert_eq!(times.estimate("portal", position, 3), Some(secs(300)));
        }
        assert_eq!(times.estimate("portal", 4, 3), Some(secs(600)));
    }

    #[test]
    fn the_estimate_uses_the_mean_of_recorded_handle_times() {
        let mut times = HandleTimes::new();
        times.record("portal", secs(60));
        times.record("portal", secs(120));
        assert_eq!(times.mean("portal"), secs(90));
        assert_eq!(times.estimate("portal", 5, 2), Some(secs(270)));
        assert_eq!(times.estimate("portal", 1, 4), Some(secs(90)));
    }

    #[test]
    fn only_the_last_twenty_handle_times_count() {
        let mut times = HandleTimes::new();
        for seconds in 1..=25 {
            times.record("portal", secs(seconds));
        }
        // 6..=25: sum 310 s over 20 calls.
        assert_eq!(times.mean("portal"), Duration::from_millis(15_500));
        assert_eq!(
            times.estimate("portal", 3, 1),
            Some(Duration::from_millis(46_500))
        );
    }

    #[test]
    fn queues_learn_separately() {
        let mut times = HandleTimes::new();
        times.record("billing", secs(30));
        assert_eq!(times.estimate("billing", 1, 1), Some(secs(30)));
        assert_eq!(times.estimate("portal", 1, 1), Some(secs(300)));
    }

    #[test]
    fn nobody_on_shift_means_no_estimate() {
        let mut times = HandleTimes::new();
        assert_eq!(times.estimate("portal", 1, 0), None);
        times.record("portal", secs(60));
        assert_eq!(times.estimate("portal", 7, 0), None);
    }

    #[test]
    fn position_zero_is_read_as_first() {
        assert_eq!(HandleTimes::new().estimate("portal", 0, 2), Some(secs(300)));
    }

    #[test]
    fn absurd_positions_saturate_instead_of_overflowing() {
        let mut times = HandleTimes::new();
        times.record("portal", Duration::MAX);
        assert_eq!(times.estimate("portal", usize::MAX, 1), Some(Duration::MAX));
    }
}
