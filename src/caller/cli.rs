//! `careline call`: place one test call from the command line and print what happens.

use std::io::BufRead as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::sync::mpsc;

use super::audio::KeySignalling;
use super::call::{CallOptions, DialBehaviour, place_call};
use super::script::{DigitScript, Step, StepAction};
use super::transcript::CallEnd;

/// The environment variable Twilio's auth token comes from.
pub const AUTH_TOKEN_ENV: &str = "CARELINE_TWILIO_AUTH_TOKEN";

/// How the far end answers a `<Dial>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DialChoice {
    Answer,
    NoAnswer,
    Busy,
    Failed,
}

/// Place a Twilio-faithful test call against careline.
#[derive(Debug, clap::Args)]
pub struct CallArgs {
    /// careline's public base URL; the voice webhook is {URL}/twilio/voice.
    #[arg(default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Keys to press, as comma-separated steps: keys (`1`, `19700101#`), `hangup` or `pSECS`
    /// (pause); a `w` prefix waits for the current prompt to finish first. Without it, keys are
    /// read from standard input, one step per line.
    #[arg(long, value_name = "SEQ")]
    pub digits: Option<String>,
    /// Save what the caller heard as a 16-bit 8 kHz mono WAV file.
    #[arg(long, value_name = "FILE.wav")]
    pub record: Option<PathBuf>,
    /// The caller's number.
    #[arg(long, default_value = "+15555550100")]
    pub from: String,
    /// The number called (careline's).
    #[arg(long, default_value = "+15555550199")]
    pub to: String,
    /// Sign requests with this auth token, as Twilio does [default: $CARELINE_TWILIO_AUTH_TOKEN].
    #[arg(long)]
    pub auth_token: Option<String>,
    /// Send requests unsigned even if an auth token is set.
    #[arg(long)]
    pub unsigned: bool,
    /// Hang up once the call has lasted this many seconds.
    #[arg(long, default_value_t = 300)]
    pub max_secs: u64,
    /// How each <Dial> goes, in order; the last one repeats.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "answer")]
    pub dial: Vec<DialChoice>,
    /// When answering a <Dial>: seconds of ringing first.
    #[arg(long, default_value_t = 1.0)]
    pub answer_after_secs: f64,
    /// When answering a <Dial>: seconds the agent talks before hanging up.
    #[arg(long, default_value_t = 10.0)]
    pub talk_secs: f64,
    /// How key presses reach careline.
    #[arg(long, value_enum, default_value_t = KeySignalling::Events)]
    pub keys: KeySignalling,
}

fn seconds(value: f64, option: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .with_context(|| format!("--{option} must be a non-negative number of seconds"))
}

/// Run `careline call`.
pub async fn run_cli(args: CallArgs) -> anyhow::Result<()> {
    let after = seconds(args.answer_after_secs, "answer-after-secs")?;
    let talk = seconds(args.talk_secs, "talk-secs")?;
    let dial = args
        .dial
        .iter()
        .map(|choice| match choice {
            DialChoice::Answer => DialBehaviour::Answer { after, talk },
            DialChoice::NoAnswer => DialBehaviour::NoAnswer,
            DialChoice::Busy => DialBehaviour::Busy,
            DialChoice::Failed => DialBehaviour::Failed,
        })
        .collect();
    let script: DigitScript = match &args.digits {
        Some(digits) => digits.parse().context("--digits")?,
        None => DigitScript::default(),
    };
    let auth_token = if args.unsigned {
        None
    } else {
        args.auth_token.clone().or_else(|| {
            std::env::var(AUTH_TOKEN_ENV)
                .ok()
                .filter(|token| !token.is_empty())
        })
    };

    let (observer, mut entries) = mpsc::unbounded_channel();
    let printer = tokio::spawn(async move {
        while let Some(entry) = entries.recv().await {
            println!("{entry}");
        }
    });
    let mut options = CallOptions::new(args.url.clone())
        .from(args.from.clone())
        .to(args.to.clone())
        .digits(script)
        .max_duration(Duration::from_secs(args.max_secs))
        .dial(dial)
        .key_signalling(args.keys)
        .observer(observer);
    if let Some(token) = auth_token {
        options = options.auth_token(token);
    }
    if args.digits.is_none() {
        eprintln!(
            "Type keys and press Enter (e.g. `1` or `19700101#`; `w2` waits for the prompt); `hangup` ends the call."
        );
        options = options.live_steps(read_steps_from_stdin());
    }

    let report = place_call(options).await?;
    let _ = printer.await;

    let ended = match &report.ended {
        CallEnd::CallerHungUp => "the caller hung up".to_owned(),
        CallEnd::Hangup => "careline hung up".to_owned(),
        CallEnd::TwimlEnded => "careline's TwiML ran out".to_owned(),
        CallEnd::Failed(why) => format!("failure: {why}"),
    };
    println!(
        "call {} ended after {:.1}s: {ended}",
        report.call_sid,
        report.duration.as_secs_f64()
    );
    println!(
        "longest silence heard: {:.1}s",
        report.longest_silence.as_secs_f64()
    );
    for close in &report.stream_closes {
        if close.broken {
            println!("a stream's connection was lost ({})", close.reason);
        } else if close.by_server && close.code.is_some_and(|code| code != 1000) {
            println!(
                "careline closed a stream with code {} ({})",
                close.code.unwrap_or_default(),
                close.reason
            );
        }
    }
    if report.unsent_steps > 0 {
        println!("{} digit-script steps never ran", report.unsent_steps);
    }
    if let Some(path) = &args.record {
        report
            .write_wav(path)
            .with_context(|| format!("writing {}", path.display()))?;
        println!(
            "saved {:.1}s of what the caller heard to {}",
            report.audio.len() as f64 / f64::from(crate::media::SAMPLE_RATE),
            path.display()
        );
    }
    for error in &report.protocol_errors {
        eprintln!("protocol error: {error}");
    }
    if !report.protocol_errors.is_empty() {
        bail!(
            "careline broke the Media Streams protocol {} time(s)",
            report.protocol_errors.len()
        );
    }
    Ok(())
}

/// Steps typed at the terminal, one line at a time. A plain thread: a tokio stdin read would
/// keep the runtime from shutting down while it waits for a line.
fn read_steps_from_stdin() -> mpsc::UnboundedReceiver<Step> {
    let (steps, received) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { return };
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if matches!(line, "q" | "quit" | "exit") {
                let _ = steps.send(Step {
                    after_prompt: false,
                    action: StepAction::HangUp,
                });
                return;
            }
            match line.parse::<DigitScript>() {
                Ok(script) => {
                    for step in script.steps {
                        if steps.send(step).is_err() {
                            return;
                        }
                    }
                }
                Err(error) => eprintln!("{error}"),
            }
        }
    });
    received
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        call: CallArgs,
    }

    #[test]
    fn the_documented_command_line_parses() {
        let command = Command::try_parse_from([
            "call",
            "https://careline.example.org",
            "--digits",
            "1,w2,19700101#",
            "--record",
            "out.wav",
            "--dial",
            "no-answer,answer",
            "--keys",
            "both",
        ])
        .expect("valid arguments");
        let args = command.call;
        assert_eq!(args.url, "https://careline.example.org");
        assert_eq!(args.digits.as_deref(), Some("1,w2,19700101#"));
        assert_eq!(args.record, Some(PathBuf::from("out.wav")));
        assert_eq!(args.dial, vec![DialChoice::NoAnswer, DialChoice::Answer]);
        assert_eq!(args.keys, KeySignalling::Both);
        assert_eq!(args.max_secs, 300);
    }

    #[test]
    fn the_url_defaults_to_the_example_config_listener() {
        let command = Command::try_parse_from(["call"]).expect("valid arguments");
        assert_eq!(command.call.url, "http://127.0.0.1:8080");
        assert!(command.call.digits.is_none());
    }
}
