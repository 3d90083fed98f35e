//! What a node's connections take from the process: the open-file limit raised to fit the
//! cap, and memory given back once a flood of connections has ebbed.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::OpenConnections;

/// How often [`give_memory_back_after_floods`] looks.
const FLOOD_CHECK_EVERY: Duration = Duration::from_secs(5);

/// Connections open at once that count as a flood worth giving memory back after.
const FLOOD: usize = 256;

/// Once a flood of connections has ebbed (a quarter of its peak or less still open), hand the
/// memory their buffers took back to the system. The allocator keeps freed memory for reuse
/// otherwise: measured, 2,048 idle connections took a node from 33 MB to 70 MB resident, and it
/// stayed there after they closed.
pub(super) async fn give_memory_back_after_floods(
    open: Arc<OpenConnections>,
    stop: CancellationToken,
) {
    let mut every = tokio::time::interval(FLOOD_CHECK_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        let peak = open.peak.load(Ordering::Relaxed);
        let now = open.len();
        if peak < FLOOD || now > peak / 4 {
            continue;
        }
        open.peak.store(now, Ordering::Relaxed);
        tracing::debug!(
            peak,
            now,
            "a flood of connections ebbed; giving memory back"
        );
        let _ = tokio::task::spawn_blocking(trim_allocator).await;
    }
}

/// Return the allocator's free memory to the system (glibc keeps it otherwise).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_allocator() {
    // SAFETY: `malloc_trim` takes no pointers; it only walks the allocator's own free lists,
    // under the allocator's locks, and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators give memory back on their own.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_allocator() {}

/// Raise this process's open-file limit toward what `max_connections` needs (each connection
/// is a file descriptor, plus what the store, prompts and logs hold); warn when it cannot.
pub(super) fn ensure_file_limit(max_connections: usize) {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let wanted = u64::try_from(max_connections)
            .unwrap_or(u64::MAX)
            .saturating_add(FILES_BESIDES_CONNECTIONS);
        let limit = getrlimit(Resource::Nofile);
        let Some(current) = limit.current else {
            return;
        };
        if current >= wanted {
            return;
        }
        let raised = limit.maximum.map_or(wanted, |maximum| maximum.min(wanted));
        if raised > current
            && setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(raised),
                    maximum: limit.maximum,
                },
            )
            .is_ok()
            && raised >= wanted
        {
            return;
        }
        let now = getrlimit(Resource::Nofile).current.unwrap_or(current);
        tracing::warn!(
            open_files = now,
            max_connections,
            "the open-file limit is below server.max_connections plus {FILES_BESIDES_CONNECTIONS}: raise it (`ulimit -n`, or `LimitNOFILE=` in the service unit) or lower server.max_connections"
        );
    }
}

/// File descriptors a node holds besides its connections.
const FILES_BESIDES_CONNECTIONS: u64 = 128;
