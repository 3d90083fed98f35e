//! What a load run measured, as a table for people and as JSON for scripts.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// Percentiles of a set of durations, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Latency {
    pub samples: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    /// Summarise `samples` (sorted in place).
    pub fn of(samples: &mut [Duration]) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort_unstable();
        let at = |quantile: f64| {
            // Nearest rank: the smallest sample with at least `quantile` of them at or below it.
            let rank = (quantile * samples.len() as f64).ceil() as usize;
            millis(samples[rank.clamp(1, samples.len()) - 1])
        };
        Latency {
            samples: samples.len(),
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            max_ms: millis(samples[samples.len() - 1]),
        }
    }
}

fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e3
}

/// Playback running dry mid-prompt.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Underruns {
    pub count: u64,
    /// Silence callers heard in the middle of prompts, in all.
    pub total_ms: f64,
    pub worst_ms: f64,
}

/// CPU and memory of one process while every call was up.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ProcessFigures {
    /// Share of one core over the measuring window (200 = two cores busy).
    pub cpu_percent: f64,
    /// `cpu_percent` for every 1,000 concurrent calls.
    pub cpu_percent_per_1000_calls: f64,
    pub rss_before_kib: u64,
    pub rss_at_load_kib: u64,
    /// (RSS at load − RSS before) / concurrent calls.
    pub rss_per_call_kib: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadReport {
    pub url: String,
    pub target_calls: usize,
    pub ramp_secs: f64,
    pub hold_secs: f64,
    pub calls_started: u64,
    pub calls_completed: u64,
    pub calls_failed: u64,
    /// Streams up at once, at most.
    pub concurrent_peak: u64,
    /// Streams up at once, averaged over the measuring window.
    pub concurrent_during_window: f64,
    /// Seconds over which CPU was measured: the hold, less its first seconds.
    pub window_secs: f64,
    /// Keypad → first frame of the next prompt, while all calls were up.
    pub key_to_prompt_at_load: Latency,
    /// The same over the whole run, ramp included.
    pub key_to_prompt_all: Latency,
    pub underruns: Underruns,
    /// Error kind → count.
    pub errors: BTreeMap<String, u64>,
    pub server: Option<ProcessFigures>,
    pub load_generator: Option<ProcessFigures>,
    /// The p99 limit the run was judged against, in milliseconds.
    pub max_p99_ms: f64,
    /// Every call completed, no underruns, p99 at load under the limit.
    pub passed: bool,
}

impl LoadReport {
    /// Why the run did not pass, one reason per line; empty if it passed.
    pub fn failures(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        if self.calls_failed > 0 {
            reasons.push(format!("{} call(s) failed", self.calls_failed));
        }
        if self.underruns.count > 0 {
            reasons.push(format!("{} underrun(s)", self.underruns.count));
        }
        if self.key_to_prompt_at_load.p99_ms >= self.max_p99_ms {
            reasons.push(format!(
                "keypad → prompt p99 {:.1} ms is not under {} ms",
                self.key_to_prompt_at_load.p99_ms, self.max_p99_ms
            ));
        }
        if self.key_to_prompt_at_load.samples == 0 {
            reasons.push("no key press was answered while all calls were up".to_owned());
        }
        reasons
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "careline load: {}", self.url)?;
        writeln!(
            f,
            "  plan                 {} calls, ramp {:.0} s, hold {:.0} s",
            self.target_calls, self.ramp_secs, self.hold_secs
        )?;
        writeln!(
            f,
            "  calls                {} started, {} completed, {} failed",
            self.calls_started, self.calls_completed, self.calls_failed
        )?;
        writeln!(
            f,
            "  concurrent           peak {}, {:.0} on average over the {:.0} s window",
            self.concurrent_peak, self.concurrent_during_window, self.window_secs
        )?;
        for (label, latency) in [
            ("keypad → prompt", &self.key_to_prompt_at_load),
            ("  (whole run)", &self.key_to_prompt_all),
        ] {
            writeln!(
                f,
                "  {label:<20} p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms   ({} keys)",
                latency.p50_ms, latency.p99_ms, latency.max_ms, latency.samples
            )?;
        }
        writeln!(
            f,
            "  underruns            {} (silence mid-prompt: {:.0} ms in all, worst {:.0} ms)",
            self.underruns.count, self.underruns.total_ms, self.underruns.worst_ms
        )?;
        for (label, figures) in [
            ("server", &self.server),
            ("load generator", &self.load_generator),
        ] {
            if let Some(figures) = figures {
                writeln!(
                    f,
                    "  {label:<20} CPU {:.1}% of a core ({:.1}% per 1,000 calls), RSS {} → {} KiB ({:.1} KiB per call)",
                    figures.cpu_percent,
                    figures.cpu_percent_per_1000_calls,
                    figures.rss_before_kib,
                    figures.rss_at_load_kib,
                    figures.rss_per_call_kib
                )?;
            }
        }
        if self.errors.is_empty() {
            writeln!(f, "  errors               none")?;
        } else {
            writeln!(f, "  errors")?;
            for (kind, count) in &self.errors {
                writeln!(f, "    {count:>8}  {kind}")?;
            }
        }
        let failures = self.failures();
        if failures.is_empty() {
            writeln!(
                f,
                "  verdict              PASS (p99 under {} ms, no underruns, no failures)",
                self.max_p99_ms
            )
        } else {
            writeln!(f, "  verdict              FAIL: {}", failures.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        samples.reverse();
        let latency = Latency::of(&mut samples);
        assert_eq!(latency.samples, 100);
        assert_eq!(latency.p50_ms, 50.0);
        assert_eq!(latency.p99_ms, 99.0);
        assert_eq!(latency.max_ms, 100.0);
        assert_eq!(Latency::of(&mut []), Latency::default());
        let mut one = [Duration::from_micros(1500)];
        assert_eq!(Latency::of(&mut one).p99_ms, 1.5);
    }
}
