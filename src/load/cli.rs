//! `careline load`: parse the options, check the open-file limits, run, print the report.

use std::time::Duration;

use anyhow::{Context as _, bail};

use super::process::{self, Process};
use super::run::{LoadPlan, run};
use crate::caller::KeySignalling;
use crate::caller::cli::AUTH_TOKEN_ENV;

/// File descriptors a run needs besides one per call (HTTP connections, the runtime, stdio).
const SPARE_FILES: u64 = 256;

/// Place many Twilio-faithful calls at once and report latency, underruns, CPU and memory.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// careline's public base URL; the voice webhook is {URL}/twilio/voice.
    #[arg(default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Concurrent calls to reach and hold.
    #[arg(long, default_value_t = 100)]
    pub calls: usize,
    /// Seconds over which the calls are started, evenly.
    #[arg(long, default_value_t = 10.0)]
    pub ramp_secs: f64,
    /// Seconds all calls are held after the ramp; then every call hangs up. A call careline
    /// ends sooner is replaced by a new one.
    #[arg(long, default_value_t = 30.0)]
    pub duration_secs: f64,
    /// Keys each call presses, as `careline call --digits` takes them (e.g. `w1` waits for each
    /// prompt to end, then presses 1; `p1,2` presses 2 a second into the prompt). Give it more
    /// than once to spread several scripts over the calls (call n runs the n-th, cycling).
    #[arg(long = "digits", value_name = "SEQ", default_value = "w1")]
    pub digits: Vec<String>,
    /// Run each call's script once instead of over and over.
    #[arg(long)]
    pub once: bool,
    /// How key presses reach careline.
    #[arg(long, value_enum, default_value_t = KeySignalling::Events)]
    pub keys: KeySignalling,
    /// Sign requests with this auth token, as Twilio does [default: $CARELINE_TWILIO_AUTH_TOKEN].
    #[arg(long)]
    pub auth_token: Option<String>,
    /// Send requests unsigned even if an auth token is set.
    #[arg(long)]
    pub unsigned: bool,
    /// careline's process id: report its CPU and memory while all calls are up (from /proc).
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// A run passes if the keypad → prompt p99 stays under this many milliseconds.
    #[arg(long, default_value_t = 20.0)]
    pub max_p99_ms: f64,
    /// Print the report as JSON on stdout (the progress line stays on stderr).
    #[arg(long)]
    pub json: bool,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
}

fn seconds(value: f64, option: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .with_context(|| format!("--{option} must be a non-negative number of seconds"))
}

/// Run `careline load`. Fails (after printing the report) if the run did not pass.
pub async fn run_cli(args: LoadArgs) -> anyhow::Result<()> {
    let scripts = args
        .digits
        .iter()
        .enumerate()
        .map(|(index, digits)| {
            digits
                .parse()
                .with_context(|| format!("--digits (number {})", index + 1))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    check_open_files(args.calls as u64, args.server_pid)?;
    let auth_token = if args.unsigned {
        None
    } else {
        args.auth_token.clone().or_else(|| {
            std::env::var(AUTH_TOKEN_ENV)
                .ok()
                .filter(|token| !token.is_empty())
        })
    };
    let plan = LoadPlan {
        url: args.url.clone(),
        calls: args.calls,
        ramp: seconds(args.ramp_secs, "ramp-secs")?,
        hold: seconds(args.duration_secs, "duration-secs")?,
        scripts,
        repeat: !args.once,
        signalling: args.keys,
        auth_token,
        server_pid: args.server_pid,
        max_p99: Duration::try_from_secs_f64(args.max_p99_ms / 1e3)
            .context("--max-p99-ms must be a non-negative number")?,
        progress: !args.quiet,
    };
    let report = run(plan).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    let failures = report.failures();
    if !failures.is_empty() {
        bail!("the run did not pass: {}", failures.join("; "));
    }
    Ok(())
}

/// Each call holds a socket here and one in careline: refuse to start a run that would hit the
/// open-file limit halfway, and say how to raise it.
fn check_open_files(calls: u64, server_pid: Option<u32>) -> anyhow::Result<()> {
    let needed = calls + SPARE_FILES;
    if let Some((soft, hard)) = process::open_files_limit(Process::Current)
        && soft < needed
    {
        let advice = if hard >= needed {
            format!("run `ulimit -n {needed}` in this shell first")
        } else {
            format!(
                "the hard limit is {hard}: raise it (e.g. `nofile` in /etc/security/limits.conf) or place fewer calls"
            )
        };
        bail!("{calls} calls need about {needed} open files but the limit is {soft}: {advice}");
    }
    if let Some(pid) = server_pid
        && let Some((soft, _)) = process::open_files_limit(Process::Pid(pid))
        && soft < needed
    {
        eprintln!(
            "warning: careline (pid {pid}) may open only {soft} files; {calls} calls need about {needed}: start it after `ulimit -n {needed}`"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        load: LoadArgs,
    }

    #[test]
    fn several_scripts_and_the_server_pid_parse() {
        let command = Command::try_parse_from([
            "load",
            "http://127.0.0.1:9000",
            "--calls",
            "5000",
            "--digits",
            "w1",
            "--digits",
            "p1,2",
            "--server-pid",
            "4242",
            "--json",
        ])
        .expect("valid arguments");
        let args = command.load;
        assert_eq!(args.calls, 5000);
        assert_eq!(args.digits, ["w1", "p1,2"]);
        assert_eq!(args.server_pid, Some(4242));
        assert!(args.json);
    }

    #[test]
    fn by_default_calls_loop_on_w1() {
        let command = Command::try_parse_from(["load"]).expect("valid arguments");
        assert_eq!(command.load.digits, ["w1"]);
        assert!(!command.load.once);
        assert_eq!(command.load.url, "http://127.0.0.1:8080");
    }
}
