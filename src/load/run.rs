//! A load run: start the calls evenly over the ramp, keep them all up for the hold (a call that
//! ends early is replaced by a new one), hang every call up at the end, and gather what they
//! measured into a [`LoadReport`].
//!
//! One task per call slot; the calls report [`Sample`]s over a channel to the run, which is the
//! only place that aggregates, so calls share nothing but the HTTP client.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use super::call::{CallContext, LoadCall, Sample, WEBHOOK_TIMEOUT};
use super::process::{self, Process, Usage};
use super::progress::Progress;
use super::report::{Latency, LoadReport, ProcessFigures, Underruns};
use crate::caller::stream::random_sid;
use crate::caller::{DigitScript, KeySignalling};

/// Calls are not started this close to the end: they would hang up before saying anything.
const LAST_START_BEFORE_END: Duration = Duration::from_secs(2);
/// A call that failed waits this long before its slot places the next one.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);
/// How long calls may take to hang up after the end before they are abandoned.
const WIND_DOWN_LIMIT: Duration = Duration::from_secs(30);
/// The first seconds of the hold are left out of the measuring window: calls started last are
/// still in their first prompt.
const MAX_SETTLE: Duration = Duration::from_secs(5);

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// careline's base URL; the voice webhook is `{url}/twilio/voice`.
    pub url: String,
    /// Concurrent calls to reach and hold.
    pub calls: usize,
    pub ramp: Duration,
    pub hold: Duration,
    /// Call `n` runs `scripts[n % len]`; empty means every call only listens.
    pub scripts: Vec<DigitScript>,
    /// Start a call's script again whenever it runs out.
    pub repeat: bool,
    pub signalling: KeySignalling,
    pub auth_token: Option<String>,
    /// careline's process, for its CPU and memory.
    pub server_pid: Option<u32>,
    /// The p99 keypad → prompt latency a run must stay under to pass.
    pub max_p99: Duration,
    /// Show a progress line on stderr.
    pub progress: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("`{url}` is not a usable base URL: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
    #[error("--server-pid: {0}")]
    ServerProcess(#[from] process::ProcessError),
    #[error("--calls must be at least 1")]
    NoCalls,
}

/// Run the plan to its end.
pub async fn run(plan: LoadPlan) -> Result<LoadReport, RunError> {
    if plan.calls == 0 {
        return Err(RunError::NoCalls);
    }
    let base = base_url(&plan.url)?;
    let http = reqwest::Client::builder()
        .timeout(WEBHOOK_TIMEOUT)
        .build()
        .map_err(RunError::HttpClient)?;
    let server_before = plan
        .server_pid
        .map(|pid| process::usage(Process::Pid(pid)))
        .transpose()?;
    let generator_before = process::usage(Process::Current).ok();

    let start = Instant::now();
    let ramp_end = start + plan.ramp;
    let end = ramp_end + plan.hold;
    let window_start = ramp_end + MAX_SETTLE.min(plan.hold / 4);
    let shared = Arc::new(Shared {
        context: CallContext {
            http,
            base,
            auth_token: plan.auth_token.clone(),
            signalling: plan.signalling,
            account_sid: random_sid("AC"),
        },
        scripts: if plan.scripts.is_empty() {
            vec![DigitScript::default()]
        } else {
            plan.scripts.clone()
        },
        repeat: plan.repeat,
        end,
    });

    let (samples, mut received) = mpsc::unbounded_channel();
    let mut slots = JoinSet::new();
    for index in 0..plan.calls {
        let offset = plan.ramp.mul_f64(index as f64 / plan.calls as f64);
        slots.spawn(slot(index, start + offset, shared.clone(), samples.clone()));
    }
    drop(samples);

    let mut tally = Tally::default();
    let mut progress = Progress::new(plan.progress, plan.calls, end - start);
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let window_opens = tokio::time::sleep_until(window_start);
    let window_closes = tokio::time::sleep_until(end);
    let abandon = tokio::time::sleep_until(end + WIND_DOWN_LIMIT);
    tokio::pin!(window_opens, window_closes, abandon);
    let mut window_opened = false;
    let mut window_closed = false;
    let mut server_window: Option<Usage> = None;
    let mut generator_window: Option<Usage> = None;
    let mut server_figures = None;
    let mut generator_figures = None;
    let mut concurrency_sum = 0.0;
    let mut concurrency_ticks = 0u32;
    loop {
        tokio::select! {
            sample = received.recv() => {
                let Some(sample) = sample else { break };
                let at_load = window_opened && !window_closed;
                tally.add(sample, at_load);
            }
            _ = ticker.tick() => {
                if window_opened && !window_closed {
                    concurrency_sum += tally.live as f64;
                    concurrency_ticks += 1;
                }
                progress.show(start.elapsed(), &mut tally);
            }
            () = &mut window_opens, if !window_opened => {
                window_opened = true;
                server_window = plan.server_pid.and_then(|pid| process::usage(Process::Pid(pid)).ok());
                generator_window = process::usage(Process::Current).ok();
            }
            () = &mut window_closes, if !window_closed => {
                window_closed = true;
                let seconds = (end - window_start).as_secs_f64();
                let calls = if concurrency_ticks > 0 {
                    concurrency_sum / f64::from(concurrency_ticks)
                } else {
                    tally.live as f64
                };
                let live = tally.live;
                server_figures = plan.server_pid.and_then(|pid| {
                    figures(server_before, server_window, process::usage(Process::Pid(pid)).ok(), seconds, calls, live)
                });
                generator_figures = figures(
                    generator_before,
                    generator_window,
                    process::usage(Process::Current).ok(),
                    seconds,
                    calls,
                    live,
                );
                if plan.server_pid.is_some() && server_figures.is_none() {
                    tally.error("server process could not be read at the end of the hold".to_owned());
                }
            }
            () = &mut abandon => {
                let stuck = slots.len() as u64;
                slots.abort_all();
                *tally
                    .errors
                    .entry("call did not end within 30 s of the end of the run".to_owned())
                    .or_default() += stuck;
                tally.failed += stuck;
                break;
            }
        }
    }
    progress.finish(start.elapsed(), &mut tally);

    let window_secs = (end - window_start).as_secs_f64();
    let concurrent_during_window = if concurrency_ticks > 0 {
        concurrency_sum / f64::from(concurrency_ticks)
    } else {
        0.0
    };
    let mut report = LoadReport {
        url: plan.url.clone(),
        target_calls: plan.calls,
        ramp_secs: plan.ramp.as_secs_f64(),
        hold_secs: plan.hold.as_secs_f64(),
        calls_started: tally.placed,
        calls_completed: tally.completed,
        calls_failed: tally.failed,
        concurrent_peak: tally.peak,
        concurrent_during_window,
        window_secs,
        key_to_prompt_at_load: Latency::of(&mut tally.latency_at_load),
        key_to_prompt_all: Latency::of(&mut tally.latency_all),
        underruns: tally.underruns,
        errors: tally.errors,
        server: server_figures,
        load_generator: generator_figures,
        max_p99_ms: plan.max_p99.as_secs_f64() * 1e3,
        passed: false,
    };
    report.passed = report.failures().is_empty();
    Ok(report)
}

fn base_url(url: &str) -> Result<Url, RunError> {
    let invalid = |reason: String| RunError::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    // A trailing slash makes `join("twilio/voice")` append rather than replace the last segment.
    let base = Url::parse(&format!("{}/", url.trim_end_matches('/')))
        .map_err(|error| invalid(error.to_string()))?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https".to_owned()));
    }
    Ok(base)
}

fn figures(
    before: Option<Usage>,
    window_start: Option<Usage>,
    window_end: Option<Usage>,
    seconds: f64,
    calls: f64,
    live: u64,
) -> Option<ProcessFigures> {
    let (before, start, end) = (before?, window_start?, window_end?);
    let cpu_percent = (end.cpu.saturating_sub(start.cpu)).as_secs_f64() / seconds * 100.0;
    let per_thousand = |value: f64| {
        if calls > 0.0 {
            value * 1000.0 / calls
        } else {
            0.0
        }
    };
    let rss_growth = end.rss_bytes.saturating_sub(before.rss_bytes) as f64 / 1024.0;
    Some(ProcessFigures {
        cpu_percent: round(cpu_percent),
        cpu_percent_per_1000_calls: round(per_thousand(cpu_percent)),
        rss_before_kib: before.rss_bytes / 1024,
        rss_at_load_kib: end.rss_bytes / 1024,
        rss_per_call_kib: if live > 0 {
            round(rss_growth / live as f64)
        } else {
            0.0
        },
    })
}

fn round(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

struct Shared {
    context: CallContext,
    scripts: Vec<DigitScript>,
    repeat: bool,
    end: Instant,
}

/// One call slot: calls back to back from `start` until the end of the run.
async fn slot(
    index: usize,
    start: Instant,
    shared: Arc<Shared>,
    samples: mpsc::UnboundedSender<Sample>,
) {
    tokio::time::sleep_until(start).await;
    let script = &shared.scripts[index % shared.scripts.len()];
    while Instant::now() + LAST_START_BEFORE_END < shared.end {
        let ok = LoadCall {
            context: &shared.context,
            script,
            repeat: shared.repeat,
            hang_up_at: shared.end,
            samples: &samples,
        }
        .run()
        .await;
        if !ok {
            tokio::time::sleep(RETRY_AFTER_FAILURE).await;
        }
    }
}

/// Everything the calls reported so far.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub placed: u64,
    pub completed: u64,
    pub failed: u64,
    /// Streams up now.
    pub live: u64,
    pub peak: u64,
    pub latency_at_load: Vec<Duration>,
    pub latency_all: Vec<Duration>,
    /// Latencies since the progress line last showed them.
    pub latency_recent: Vec<Duration>,
    pub underruns: Underruns,
    pub errors: BTreeMap<String, u64>,
    pub error_count: u64,
}

impl Tally {
    fn add(&mut self, sample: Sample, at_load: bool) {
        match sample {
            Sample::Placed => self.placed += 1,
            Sample::StreamOpened => {
                self.live += 1;
                self.peak = self.peak.max(self.live);
            }
            Sample::StreamClosed => self.live = self.live.saturating_sub(1),
            Sample::KeyToPrompt(latency) => {
                if at_load {
                    self.latency_at_load.push(latency);
                }
                self.latency_all.push(latency);
                self.latency_recent.push(latency);
            }
            Sample::Underrun(gap) => {
                let millis = gap.as_secs_f64() * 1e3;
                self.underruns.count += 1;
                self.underruns.total_ms += millis;
                self.underruns.worst_ms = self.underruns.worst_ms.max(millis);
            }
            Sample::Error(kind) => self.error(kind),
            Sample::Finished { ok: true } => self.completed += 1,
            Sample::Finished { ok: false } => self.failed += 1,
        }
    }

    fn error(&mut self, kind: String) {
        self.error_count += 1;
        *self.errors.entry(kind).or_default() += 1;
    }
}
