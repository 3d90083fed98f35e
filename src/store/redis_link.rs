//! The connection the Redis store runs its commands on, and how it follows the master.
//!
//! With `[store] url` the link is one [`ConnectionManager`] to that server, which reconnects by
//! itself after a restart. With Sentinels the link asks them where the master is, connects,
//! checks with `ROLE` that the server is the master now, and keeps that connection until an
//! exchange fails in a way that says the master may have moved: the connection was lost or
//! refused, nothing answered, or the server said `-READONLY` (it was demoted to replica). The
//! next operation then asks the Sentinels again; while they name no reachable master (the
//! failover is under way), attempts are spaced out, from [`RESOLVE_PAUSE_FIRST`] doubling to
//! [`RESOLVE_PAUSE_LONGEST`], and operations fail at once with
//! [`StoreError::Unavailable`] in between instead of waiting out a deadline each.
//!
//! Only one task asks the Sentinels at a time; the others wait for its answer.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use redis::RedisError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::time::Instant;

use super::StoreError;
use super::redis_access::{HostPort, RedisAccess, RedisTarget};
use super::sentinel::{self, Who};

/// A connection attempt that takes longer than this has failed.
const CONNECTION_TIMEOUT: Duration = Duration::from_millis(500);
/// A command whose answer takes longer than this has failed (the library's default, 500 ms, is
/// tight for a loaded Redis; scripts here run in microseconds).
pub(crate) const RESPONSE_TIMEOUT: Duration = Duration::from_millis(1000);
/// Reconnection attempts after a lost connection, before an operation fails.
const RECONNECT_ATTEMPTS: usize = 2;
/// The first pause before asking the Sentinels again after they named no usable master.
pub const RESOLVE_PAUSE_FIRST: Duration = Duration::from_millis(100);
/// The longest such pause: after a promotion, the queues answer again within this.
pub const RESOLVE_PAUSE_LONGEST: Duration = Duration::from_secs(1);

pub(crate) fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECTION_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(RECONNECT_ATTEMPTS)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(400))
}

/// The connection to the master.
pub(crate) enum Link {
    /// `[store] url`: always this server.
    Fixed {
        connection: ConnectionManager,
        address: Option<HostPort>,
    },
    /// Wherever the Sentinels say the master is.
    Sentinel(Box<SentinelLink>),
}

/// A connection handed to one exchange, with the generation it belongs to: a failure reported
/// for an older generation than the current one changes nothing.
pub(crate) struct Leased {
    pub connection: ConnectionManager,
    generation: u64,
}

impl Link {
    /// The link for `access`. With a URL nothing connects until first use when `lazy`; with
    /// Sentinels nothing ever connects here (the first operation asks them).
    pub(crate) async fn open(access: &RedisAccess, lazy: bool) -> Result<Link, StoreError> {
        match access.target() {
            RedisTarget::Url(url) => {
                let client = access.url_client(url)?;
                let connection = if lazy {
                    ConnectionManager::new_lazy_with_config(client, manager_config())
                        .map_err(|error| StoreError::Unavailable(sentinel::describe(&error)))?
                } else {
                    let address = access
                        .url_address()
                        .map_or_else(|| "Redis".to_owned(), |at| format!("Redis at {at}"));
                    ConnectionManager::new_with_config(client, manager_config())
                        .await
                        .map_err(|error| {
                            sentinel::auth_problem(&error, &address, Who::Master).unwrap_or_else(
                                || {
                                    StoreError::Unavailable(format!(
                                        "cannot reach {address}: {}",
                                        sentinel::describe(&error)
                                    ))
                                },
                            )
                        })?
                };
                Ok(Link::Fixed {
                    connection,
                    address: access.url_address(),
                })
            }
            RedisTarget::Sentinels {
                sentinels,
                master_name,
                ..
            } => Ok(Link::Sentinel(Box::new(SentinelLink {
                access: access.clone(),
                sentinels: sentinels.clone(),
                master_name: master_name.clone(),
                state: Mutex::new(State {
                    master: None,
                    generation: 0,
                    retry_at: None,
                    pause: RESOLVE_PAUSE_FIRST,
                    last_failure: String::new(),
                    preferred_sentinel: 0,
                    last_address: None,
                }),
                resolving: tokio::sync::Mutex::new(()),
            }))),
        }
    }

    /// A connection to the master, asking the Sentinels first if there is none.
    pub(crate) async fn connection(&self) -> Result<Leased, StoreError> {
        match self {
            Link::Fixed { connection, .. } => Ok(Leased {
                connection: connection.clone(),
                generation: 0,
            }),
            Link::Sentinel(link) => link.connection().await,
        }
    }

    /// An exchange on `leased` failed with `error`: if that says the master may have moved,
    /// the next operation asks the Sentinels again. Returns whether it did.
    pub(crate) fn failed(&self, leased: &Leased, error: &RedisError) -> bool {
        match self {
            Link::Fixed { .. } => false,
            Link::Sentinel(link) => link.failed(leased, error),
        }
    }

    /// The master in use now, `host:port` (with Sentinels, `None` until one was found).
    pub(crate) fn master_address(&self) -> Option<HostPort> {
        match self {
            Link::Fixed { address, .. } => address.clone(),
            Link::Sentinel(link) => link
                .state()
                .master
                .as_ref()
                .map(|master| master.address.clone()),
        }
    }
}

/// Whether an error means the connection no longer reaches the master.
pub(crate) fn master_may_have_moved(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
        || matches!(error.code(), Some("READONLY" | "MASTERDOWN"))
}

pub(crate) struct SentinelLink {
    access: RedisAccess,
    sentinels: Vec<HostPort>,
    master_name: String,
    state: Mutex<State>,
    /// Held while asking the Sentinels, so that one task asks and the others wait for it.
    resolving: tokio::sync::Mutex<()>,
}

struct State {
    master: Option<Master>,
    /// Counts the masters connected to, so a late failure report on an earlier one is ignored.
    generation: u64,
    /// No new attempt before this, after a failed one.
    retry_at: Option<Instant>,
    pause: Duration,
    last_failure: String,
    /// The Sentinel that answered last: asked first next time.
    preferred_sentinel: usize,
    /// The master found last, to log a change of master once.
    last_address: Option<HostPort>,
}

struct Master {
    connection: ConnectionManager,
    address: HostPort,
    generation: u64,
}

impl SentinelLink {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Every change to the state is a plain assignment: a poisoned lock still guards it whole.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn current(&self) -> Option<Leased> {
        self.state().master.as_ref().map(|master| Leased {
            connection: master.connection.clone(),
            generation: master.generation,
        })
    }

    async fn connection(&self) -> Result<Leased, StoreError> {
        if let Some(leased) = self.current() {
            return Ok(leased);
        }
        let _resolving = self.resolving.lock().await;
        if let Some(leased) = self.current() {
            return Ok(leased);
        }
        {
            let state = self.state();
            if state.retry_at.is_some_and(|at| Instant::now() < at) {
                return Err(StoreError::Unavailable(format!(
                    "no Redis master to use yet ({}); asking the Sentinels again shortly",
                    state.last_failure
                )));
            }
        }
        let preferred = self.state().preferred_sentinel;
        match self.find_master(preferred).await {
            Ok((connection, address, sentinel)) => {
                let mut state = self.state();
                state.generation += 1;
                let generation = state.generation;
                state.master = Some(Master {
                    connection: connection.clone(),
                    address: address.clone(),
                    generation,
                });
                state.retry_at = None;
                state.pause = RESOLVE_PAUSE_FIRST;
                state.preferred_sentinel = sentinel;
                if state.last_address.as_ref() != Some(&address) {
                    match &state.last_address {
                        Some(before) => tracing::warn!(
                            master = %address, before = %before, sentinel = %self.sentinels[sentinel],
                            "store: the Redis master moved (failover); using the new one"
                        ),
                        None => tracing::info!(
                            master = %address, sentinel = %self.sentinels[sentinel],
                            "store: using the Redis master the Sentinels name"
                        ),
                    }
                    state.last_address = Some(address);
                }
                Ok(Leased {
                    connection,
                    generation,
                })
            }
            Err(error) => {
                let mut state = self.state();
                let pause = state.pause;
                state.retry_at = Some(Instant::now() + pause);
                state.pause = (pause * 2).min(RESOLVE_PAUSE_LONGEST);
                state.last_failure = match &error {
                    StoreError::Unavailable(reason) | StoreError::Config(reason) => reason.clone(),
                    other => other.to_string(),
                };
                Err(error)
            }
        }
    }

    /// Ask the Sentinels, connect to the master they name and check it is one.
    async fn find_master(
        &self,
        preferred: usize,
    ) -> Result<(ConnectionManager, HostPort, usize), StoreError> {
        let (address, sentinel) =
            sentinel::ask_for_master(&self.access, &self.sentinels, &self.master_name, preferred)
                .await?;
        let client = self.access.master_client(&address)?;
        let connecting = ConnectionManager::new_with_config(client, manager_config());
        let mut connection = match tokio::time::timeout(CONNECTION_TIMEOUT * 4, connecting).await {
            Ok(Ok(connection)) => connection,
            Ok(Err(error)) => {
                return Err(sentinel::auth_problem(
                    &error,
                    &format!("Redis at {address}"),
                    Who::Master,
                )
                .unwrap_or_else(|| {
                    StoreError::Unavailable(format!(
                        "the master the Sentinels name, {address}, cannot be reached: {}",
                        sentinel::describe(&error)
                    ))
                }));
            }
            Err(_) => {
                return Err(StoreError::Unavailable(format!(
                    "the master the Sentinels name, {address}, did not answer"
                )));
            }
        };
        sentinel::confirm_master(&mut connection, &address).await?;
        Ok((connection, address, sentinel))
    }

    fn failed(&self, leased: &Leased, error: &RedisError) -> bool {
        if !master_may_have_moved(error) {
            return false;
        }
        let mut state = self.state();
        let current = state
            .master
            .as_ref()
            .is_some_and(|master| master.generation == leased.generation);
        if current && let Some(master) = state.master.take() {
            tracing::info!(master = %master.address, reason = %sentinel::describe(error),
                "store: lost the Redis master; asking the Sentinels where it is");
        }
        true
    }
}
