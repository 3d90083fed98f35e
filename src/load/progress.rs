//! The progress line on stderr: redrawn in place on a terminal, a line every ten seconds
//! otherwise (logs, CI).

use std::io::{IsTerminal as _, Write as _};
use std::time::Duration;

use super::report::Latency;
use super::run::Tally;

const BAR_WIDTH: usize = 24;
/// Without a terminal, one line per this many seconds.
const PLAIN_EVERY_SECS: u64 = 10;

pub(super) struct Progress {
    enabled: bool,
    terminal: bool,
    target: usize,
    total: Duration,
    last_plain: Option<u64>,
}

impl Progress {
    pub fn new(enabled: bool, target: usize, total: Duration) -> Progress {
        Progress {
            enabled,
            terminal: std::io::stderr().is_terminal(),
            target,
            total,
            last_plain: None,
        }
    }

    pub fn show(&mut self, elapsed: Duration, tally: &mut Tally) {
        let recent = Latency::of(&mut tally.latency_recent);
        tally.latency_recent.clear();
        if !self.enabled {
            return;
        }
        let seconds = elapsed.as_secs();
        if !self.terminal {
            if self
                .last_plain
                .is_some_and(|last| seconds < last + PLAIN_EVERY_SECS)
            {
                return;
            }
            self.last_plain = Some(seconds);
        }
        let line = self.line(elapsed, tally, &recent);
        let mut stderr = std::io::stderr().lock();
        // Progress is a courtesy: a closed stderr must not stop the run.
        let _ = if self.terminal {
            write!(stderr, "\r{line}\x1b[K")
        } else {
            writeln!(stderr, "{line}")
        };
        let _ = stderr.flush();
    }

    pub fn finish(&mut self, elapsed: Duration, tally: &mut Tally) {
        if !self.enabled {
            return;
        }
        self.last_plain = None;
        self.show(elapsed, tally);
        if self.terminal {
            let _ = writeln!(std::io::stderr());
        }
    }

    fn line(&self, elapsed: Duration, tally: &Tally, recent: &Latency) -> String {
        let fraction = if self.total.is_zero() {
            1.0
        } else {
            (elapsed.as_secs_f64() / self.total.as_secs_f64()).min(1.0)
        };
        let filled = (fraction * BAR_WIDTH as f64).round() as usize;
        let bar: String = (0..BAR_WIDTH)
            .map(|cell| if cell < filled { '#' } else { '.' })
            .collect();
        format!(
            "[{bar}] {:>4}s  live {}/{}  done {}  failed {}  keys {}  p99(1s) {:.1} ms  underruns {}  errors {}",
            elapsed.as_secs(),
            tally.live,
            self.target,
            tally.completed,
            tally.failed,
            tally.latency_all.len(),
            recent.p99_ms,
            tally.underruns.count,
            tally.error_count,
        )
    }
}
