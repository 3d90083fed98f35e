//! `careline stats [--watch] [--url URL] [--token TOKEN]`: the queue board and the agents of a
//! running careline, as two compact tables in the terminal.
//!
//! It reads `GET /api/v1/queues` and `GET /api/v1/agents` like any dashboard (a viewer token is
//! enough). The server defaults to `server.listen` of the configuration; the token to
//! `CARELINE_ADMIN_TOKEN`. `--watch` redraws every 2 s (ANSI clear screen) until Ctrl-C, and
//! keeps going through errors (a restarting server), showing them in place of the tables.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::admin::queues::QueueView;
use anyhow::{Context, anyhow};
use reqwest::StatusCode;
use serde::Deserialize;

/// How often `--watch` redraws.
const WATCH_EVERY: Duration = Duration::from_secs(2);
/// A request that takes longer has failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Clear the screen and move to its top-left corner.
const CLEAR_SCREEN: &str = "\x1b[2J\x1b[H";
const TOKEN_ENV: &str = "CARELINE_ADMIN_TOKEN";

#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// Redraw every 2 seconds until interrupted (Ctrl-C).
    #[arg(long)]
    pub watch: bool,
    /// The careline server, e.g. http://127.0.0.1:8080 (default: server.listen of --config).
    #[arg(long)]
    pub url: Option<String>,
    /// An admin token; a viewer token is enough (default: the CARELINE_ADMIN_TOKEN variable).
    #[arg(long)]
    pub token: Option<String>,
    /// The configuration whose server.listen is the default --url.
    #[arg(long, default_value = "config/careline.toml")]
    pub config: PathBuf,
}

/// One agent of `/api/v1/agents`.
#[derive(Debug, Clone, Deserialize)]
pub struct AgentRow {
    pub id: String,
    pub name: String,
    pub status: String,
    pub state: String,
    pub on_shift: bool,
    pub time_in_state_secs: Option<i64>,
    #[serde(default)]
    pub wrap_up_left_secs: Option<i64>,
    pub calls_today: u32,
}

pub async fn run(args: StatsArgs) -> anyhow::Result<()> {
    let base = match &args.url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => url_from_config(&args.config)?,
    };
    let token = args
        .token
        .clone()
        .or_else(|| std::env::var(TOKEN_ENV).ok())
        .filter(|token| !token.is_empty());
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .context("cannot set up the HTTP client")?;
    let board = Board {
        client,
        base,
        token,
    };
    if !args.watch {
        let (queues, agents) = board.fetch().await?;
        print!("{}", render(&queues, &agents));
        return Ok(());
    }
    loop {
        let screen = match board.fetch().await {
            Ok((queues, agents)) => render(&queues, &agents),
            Err(error) => format!("{}\n", super::describe(&error)),
        };
        let time = jiff::Timestamp::now().strftime("%H:%M:%S UTC");
        print!(
            "{CLEAR_SCREEN}careline {} — {time} — every {} s, Ctrl-C to stop\n\n{screen}",
            board.base,
            WATCH_EVERY.as_secs()
        );
        use std::io::Write as _;
        std::io::stdout()
            .flush()
            .context("cannot write to the terminal")?;
        tokio::select! {
            _ = tokio::time::sleep(WATCH_EVERY) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// `http://<server.listen>`, with a wildcard address replaced by loopback.
fn url_from_config(path: &Path) -> anyhow::Result<String> {
    let loaded = crate::config::load(path).map_err(|report| {
        anyhow!(
            "no --url given and {} cannot be read for server.listen:\n{report}\npass --url http://HOST:PORT",
            path.display()
        )
    })?;
    let listen = &loaded.config.server.listen;
    let addr: SocketAddr = listen.parse().map_err(|_| {
        anyhow!(
            "server.listen `{listen}` in {} is not an address; pass --url http://HOST:PORT",
            path.display()
        )
    })?;
    Ok(format!("http://{}", local_address(addr)))
}

/// Where a client on this machine reaches a server listening on `addr`.
fn local_address(addr: SocketAddr) -> SocketAddr {
    let mut local = addr;
    if addr.ip().is_unspecified() {
        local.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    local
}

struct Board {
    client: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Board {
    async fn fetch(&self) -> anyhow::Result<(Vec<QueueView>, Vec<AgentRow>)> {
        futures_util::future::try_join(self.get("/api/v1/queues"), self.get("/api/v1/agents")).await
    }

    async fn get<T: for<'de> Deserialize<'de>>(&self, path: &str) -> anyhow::Result<T> {
        let url = format!("{}{path}", self.base);
        let mut request = self.client.get(&url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|error| {
            anyhow!(
                "cannot reach careline at {}: {error} (is it running? set --url)",
                self.base
            )
        })?;
        let status = response.status();
        let body = response
            .text()
            .await
            .with_context(|| format!("{url}: the answer was cut off"))?;
        match status {
            StatusCode::OK => serde_json::from_str(&body).with_context(|| {
                format!("{url} answered with JSON this careline stats cannot read")
            }),
            StatusCode::UNAUTHORIZED => Err(anyhow!(
                "careline refused the request (401): set {TOKEN_ENV} or pass --token with an admin token (a viewer token is enough)"
            )),
            StatusCode::FORBIDDEN => Err(anyhow!(
                "careline refused the request (403): this token may not read {path}"
            )),
            status => {
                let message = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|value| value["error"].as_str().map(str::to_owned))
                    .unwrap_or(body);
                Err(anyhow!("{url} answered {status}: {message}"))
            }
        }
    }
}

/// Both tables, each row ending in a newline.
pub fn render(queues: &[QueueView], agents: &[AgentRow]) -> String {
    let queue_rows: Vec<Vec<String>> = queues
        .iter()
        .map(|queue| {
            let (agents, today) = (&queue.agents, &queue.today);
            vec![
                queue.name.clone(),
                queue.waiting.to_string(),
                duration(queue.longest_wait_secs),
                agents.available.to_string(),
                agents.reserved.to_string(),
                agents.on_call.to_string(),
                agents.wrap_up.to_string(),
                agents.on_break.to_string(),
                agents.offline.to_string(),
                today.offered.to_string(),
                today.answered.to_string(),
                today.abandoned.to_string(),
                today.callbacks.to_string(),
                percent(today.service_level),
                today
                    .asa_secs
                    .map_or_else(|| "-".to_owned(), |secs| duration(secs.round() as i64)),
                percent(today.abandon_rate),
            ]
        })
        .collect();
    let agent_rows: Vec<Vec<String>> = agents
        .iter()
        .map(|agent| {
            let in_state = match (agent.time_in_state_secs, agent.wrap_up_left_secs) {
                (Some(secs), _) => duration(secs),
                (None, Some(left)) => format!("{} left", duration(left)),
                (None, None) => "-".to_owned(),
            };
            vec![
                agent.id.clone(),
                agent.name.clone(),
                agent.status.clone(),
                agent.state.clone(),
                if agent.on_shift { "yes" } else { "no" }.to_owned(),
                in_state,
                agent.calls_today.to_string(),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "QUEUE",
            "WAITING",
            "LONGEST",
            "AVAIL",
            "RSRV",
            "CALL",
            "WRAP",
            "BREAK",
            "OFF",
            "OFFERED",
            "ANSWERED",
            "ABANDONED",
            "CALLBACKS",
            "SL",
            "ASA",
            "ABANDON%",
        ],
        &queue_rows,
        1,
    );
    out.push('\n');
    out.push_str(&table(
        &[
            "AGENT", "NAME", "STATUS", "STATE", "SHIFT", "IN STATE", "CALLS",
        ],
        &agent_rows,
        5,
    ));
    out
}

/// Columns padded to their widest cell; columns from `first_numeric` on are right-aligned.
/// Trailing spaces are trimmed.
fn table(headers: &[&str], rows: &[Vec<String>], first_numeric: usize) -> String {
    let mut widths: Vec<usize> = headers
        .iter()
        .map(|header| header.chars().count())
        .collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (index, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if index > 0 {
                text.push_str("  ");
            }
            let pad = " ".repeat(width - cell.chars().count());
            if index >= first_numeric {
                text.push_str(&pad);
                text.push_str(cell);
            } else {
                text.push_str(cell);
                text.push_str(&pad);
            }
        }
        let mut text = text.trim_end().to_owned();
        text.push('\n');
        text
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// `45s`, `1m05s`, `2h03m`.
fn duration(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
    }
}

/// `87.5%`, or `-` when there is nothing to divide.
fn percent(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "-".to_owned(), |ratio| format!("{:.1}%", ratio * 100.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::queues::{AgentCounts, TodayView};

    fn queue(name: &str, waiting: usize, longest: i64, today: TodayView) -> QueueView {
        QueueView {
            name: name.to_owned(),
            waiting,
            longest_wait_secs: longest,
            agents: AgentCounts {
                available: 1,
                reserved: 0,
                on_call: 2,
                wrap_up: 0,
                on_break: 1,
                offline: 12,
            },
            today,
        }
    }

    #[test]
    fn the_tables_line_up_and_show_missing_figures_as_dashes() {
        let queues = [
            queue(
                "portal",
                3,
                125,
                TodayView {
                    date: "2026-11-30".to_owned(),
                    timezone: "America/Chicago".to_owned(),
                    offered: 40,
                    answered: 35,
                    abandoned: 3,
                    callbacks: 2,
                    callback_attempts: 0,
                    callbacks_connected: 0,
                    callbacks_failed: 0,
                    service_level: Some(0.875),
                    asa_secs: Some(12.4),
                    abandon_rate: Some(0.075),
                },
            ),
            queue(
                "registration",
                0,
                0,
                TodayView {
                    date: "2026-11-30".to_owned(),
                    timezone: "America/Chicago".to_owned(),
                    offered: 0,
                    answered: 0,
                    abandoned: 0,
                    callbacks: 0,
                    callback_attempts: 0,
                    callbacks_connected: 0,
                    callbacks_failed: 0,
                    service_level: None,
                    asa_secs: None,
                    abandon_rate: None,
                },
            ),
        ];
        let agents = [
            AgentRow {
                id: "anguyen".to_owned(),
                name: "An Nguyen".to_owned(),
                status: "available".to_owned(),
                state: "on_call".to_owned(),
                on_shift: true,
                time_in_state_secs: Some(61),
                wrap_up_left_secs: None,
                calls_today: 4,
            },
            AgentRow {
                id: "bsmith".to_owned(),
                name: "Bea Smith".to_owned(),
                status: "available".to_owned(),
                state: "wrap_up".to_owned(),
                on_shift: false,
                time_in_state_secs: None,
                wrap_up_left_secs: Some(20),
                calls_today: 11,
            },
        ];
        let expected = "\
QUEUE         WAITING  LONGEST  AVAIL  RSRV  CALL  WRAP  BREAK  OFF  OFFERED  ANSWERED  ABANDONED  CALLBACKS     SL  ASA  ABANDON%
portal              3    2m05s      1     0     2     0      1   12       40        35          3          2  87.5%  12s      7.5%
registration        0       0s      1     0     2     0      1   12        0         0          0          0      -    -         -

AGENT    NAME       STATUS     STATE    SHIFT  IN STATE  CALLS
anguyen  An Nguyen  available  on_call  yes       1m01s      4
bsmith   Bea Smith  available  wrap_up  no     20s left     11
";
        assert_eq!(render(&queues, &agents), expected);
    }

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(duration(-3), "0s");
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(60), "1m00s");
        assert_eq!(duration(3_599), "59m59s");
        assert_eq!(duration(7_380), "2h03m");
    }

    #[test]
    fn a_wildcard_listen_address_is_reached_on_loopback() {
        let any: SocketAddr = "0.0.0.0:8080".parse().expect("address");
        assert_eq!(local_address(any).to_string(), "127.0.0.1:8080");
        let any6: SocketAddr = "[::]:8080".parse().expect("address");
        assert_eq!(local_address(any6).to_string(), "[::1]:8080");
        let host: SocketAddr = "10.0.0.5:9000".parse().expect("address");
        assert_eq!(local_address(host), host);
    }
}
