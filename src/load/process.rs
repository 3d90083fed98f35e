//! A process's CPU time, resident memory and open-file limit, read from `/proc` (Linux).

use std::path::PathBuf;
use std::time::Duration;

/// `/proc/<pid>/stat` counts CPU time in clock ticks of 1/100 s (`USER_HZ`, fixed at 100 by the
/// Linux ABI whatever the kernel's own tick rate).
const TICKS_PER_SECOND: u64 = 100;

/// Which process to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    /// This process (the load generator).
    Current,
    Pid(u32),
}

impl Process {
    fn path(self, file: &str) -> PathBuf {
        match self {
            Process::Current => PathBuf::from("/proc/self").join(file),
            Process::Pid(pid) => PathBuf::from(format!("/proc/{pid}")).join(file),
        }
    }
}

/// CPU and memory at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// User + system CPU time since the process started.
    pub cpu: Duration,
    /// Resident set size.
    pub rss_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot read {path}: {source} (is the process running, and is this Linux with /proc?)")]
    Unreadable {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} does not have the layout Linux documents; cannot read CPU and memory")]
    Unexpected { path: String },
}

/// Read the process's CPU time and RSS.
pub fn usage(process: Process) -> Result<Usage, ProcessError> {
    let stat_path = process.path("stat");
    let stat = read(&stat_path)?;
    let cpu = parse_cpu(&stat).ok_or_else(|| ProcessError::Unexpected {
        path: stat_path.display().to_string(),
    })?;
    let status_path = process.path("status");
    let status = read(&status_path)?;
    let rss_bytes = parse_rss(&status).ok_or_else(|| ProcessError::Unexpected {
        path: status_path.display().to_string(),
    })?;
    Ok(Usage { cpu, rss_bytes })
}

/// The soft and hard limits on open files, if `/proc` says.
pub fn open_files_limit(process: Process) -> Option<(u64, u64)> {
    let limits = read(&process.path("limits")).ok()?;
    parse_open_files_limit(&limits)
}

fn read(path: &std::path::Path) -> Result<String, ProcessError> {
    std::fs::read_to_string(path).map_err(|source| ProcessError::Unreadable {
        path: path.display().to_string(),
        source,
    })
}

/// utime + stime: fields 14 and 15 of `stat`, counted after the command name, which is in
/// parentheses and may itself contain spaces and parentheses.
fn parse_cpu(stat: &str) -> Option<Duration> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // After the name come field 3 (state) onwards: utime is field 14, the 12th from here.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = utime + stime;
    Some(Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND))
}

fn parse_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn parse_open_files_limit(limits: &str) -> Option<(u64, u64)> {
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    let mut numbers = line["Max open files".len()..].split_whitespace();
    let soft = numbers.next()?.parse().unwrap_or(u64::MAX);
    let hard = numbers.next()?.parse().unwrap_or(u64::MAX);
    Some((soft, hard))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_after_a_command_name_with_spaces() {
        let stat = "4242 (care line) S 1 4242 4242 0 -1 4194560 1530 0 0 0 250 50 0 0 20 0 \
                    3 0 123 456 789";
        assert_eq!(parse_cpu(stat), Some(Duration::from_secs(3)));
    }

    #[test]
    fn rss_and_the_open_file_limit_are_found_by_name() {
        let status = "Name:\tcareline\nVmPeak:\t  9000 kB\nVmRSS:\t    2048 kB\n";
        assert_eq!(parse_rss(status), Some(2 * 1024 * 1024));
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(parse_open_files_limit(limits), Some((1024, 524_288)));
    }

    #[test]
    fn this_process_can_be_read() {
        let usage = usage(Process::Current).expect("/proc/self is readable");
        assert!(usage.rss_bytes > 0);
        assert!(open_files_limit(Process::Current).is_some());
    }
}
