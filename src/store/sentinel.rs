//! Asking Redis Sentinels where the master is, and making sure it is one.
//!
//! [`ask_for_master`] asks each Sentinel in turn (`SENTINEL get-master-addr-by-name`) until one
//! names the master; [`confirm_master`] then asks that server itself (`ROLE`), because a
//! Sentinel can still name a master that has just been demoted, and careline must never send a
//! write to a replica. Each exchange has a short deadline: a Sentinel that does not answer costs
//! half a second, not the operation. Nothing here logs or returns a password: errors name the
//! address and what went wrong.

use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{AsyncConnectionConfig, RedisError, Value};

use super::StoreError;
use super::redis_access::{
    HostPort, PASSWORD_VAR, RedisAccess, RedisTarget, SENTINEL_PASSWORD_VAR, SENTINEL_USERNAME_VAR,
    USERNAME_VAR,
};

/// Connecting to one Sentinel takes at most this.
const SENTINEL_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// A Sentinel's answer takes at most this.
const SENTINEL_RESPONSE_TIMEOUT: Duration = Duration::from_millis(1000);

/// The master the Sentinels call `master_name`, and the index of the Sentinel that said so.
/// Sentinels are asked in order starting at `first` (the one that answered last time).
pub(crate) async fn ask_for_master(
    access: &RedisAccess,
    sentinels: &[HostPort],
    master_name: &str,
    first: usize,
) -> Result<(HostPort, usize), StoreError> {
    let mut failures = Vec::new();
    for offset in 0..sentinels.len() {
        let index = (first + offset) % sentinels.len();
        let sentinel = &sentinels[index];
        match ask_one(access, sentinel, master_name).await {
            Ok(master) => return Ok((master, index)),
            // Credentials are the same for every Sentinel: no point asking the others.
            Err(error @ StoreError::Config(_)) => return Err(error),
            Err(error) => failures.push(format!("{sentinel}: {}", reason(&error))),
        }
    }
    Err(StoreError::Unavailable(format!(
        "no Sentinel named the master `{master_name}` ({})",
        failures.join("; ")
    )))
}

async fn ask_one(
    access: &RedisAccess,
    sentinel: &HostPort,
    master_name: &str,
) -> Result<HostPort, StoreError> {
    let client = access.sentinel_client(sentinel)?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(SENTINEL_CONNECT_TIMEOUT))
        .set_response_timeout(Some(SENTINEL_RESPONSE_TIMEOUT));
    let deadline = SENTINEL_CONNECT_TIMEOUT + SENTINEL_RESPONSE_TIMEOUT;
    let exchange = async {
        let mut connection = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(master_name)
            .query_async::<Value>(&mut connection)
            .await
    };
    let answer = match tokio::time::timeout(deadline, exchange).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(error)) => {
            return Err(auth_problem(
                &error,
                &format!("the Sentinel at {sentinel}"),
                Who::Sentinel,
            )
            .unwrap_or_else(|| StoreError::Unavailable(describe(&error))));
        }
        Err(_) => return Err(StoreError::Unavailable("no answer".to_owned())),
    };
    match answer {
        Value::Nil => Err(StoreError::Unavailable(format!(
            "does not monitor a master named `{master_name}`"
        ))),
        Value::Array(parts) => match parts.as_slice() {
            [host, port] => {
                let host = text(host).ok_or_else(|| unreadable("host"))?;
                let port = text(port)
                    .and_then(|port| port.parse::<u16>().ok())
                    .ok_or_else(|| unreadable("port"))?;
                Ok(HostPort::new(&host, port))
            }
            _ => Err(unreadable("answer")),
        },
        _ => Err(unreadable("answer")),
    }
}

fn unreadable(what: &str) -> StoreError {
    StoreError::Unavailable(format!("its {what} for the master is not readable"))
}

/// Check that the server behind `connection` is a master now.
pub(crate) async fn confirm_master<C: ConnectionLike>(
    connection: &mut C,
    address: &HostPort,
) -> Result<(), StoreError> {
    let role = redis::cmd("ROLE")
        .query_async::<Value>(connection)
        .await
        .map_err(|error| {
            auth_problem(&error, &format!("Redis at {address}"), Who::Master).unwrap_or_else(|| {
                StoreError::Unavailable(format!("Redis at {address}: {}", describe(&error)))
            })
        })?;
    let role = match &role {
        Value::Array(parts) => parts.first().and_then(text),
        _ => None,
    };
    match role.as_deref() {
        Some("master") => Ok(()),
        Some(other) => Err(StoreError::Unavailable(format!(
            "Redis at {address} is a {other}, not the master (a failover is under way; \
             asking the Sentinels again)"
        ))),
        None => Err(StoreError::Unavailable(format!(
            "Redis at {address} did not say its role"
        ))),
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    }
}

/// Whose credentials an authentication problem is about.
#[derive(Clone, Copy)]
pub(crate) enum Who {
    Master,
    Sentinel,
}

/// A refused or missing password as a configuration problem naming the variables to set.
/// `None` when `error` is not about authentication.
pub(crate) fn auth_problem(error: &RedisError, server: &str, who: Who) -> Option<StoreError> {
    let (user_var, password_var) = match who {
        Who::Master => (USERNAME_VAR, PASSWORD_VAR),
        Who::Sentinel => (SENTINEL_USERNAME_VAR, SENTINEL_PASSWORD_VAR),
    };
    let shared = match who {
        Who::Master => String::new(),
        Who::Sentinel => format!(
            "; without {password_var} the Sentinels are sent the master's credentials \
             ({PASSWORD_VAR})"
        ),
    };
    let detail = error.detail().unwrap_or_default();
    let problem = if error.code() == Some("NOAUTH") {
        format!(
            "{server} asks for a password: set {password_var} (and {user_var} for an ACL \
             user){shared}"
        )
    } else if error.kind() == redis::ErrorKind::AuthenticationFailed
        || error.code() == Some("WRONGPASS")
    {
        format!(
            "{server} refused the user name and password from {user_var} / {password_var}{shared}"
        )
    } else if detail.contains("without any password configured") {
        match who {
            Who::Master => format!("{server} takes no password, but {password_var} is set"),
            Who::Sentinel => format!(
                "{server} takes no password, but one was sent: set {password_var} to an empty \
                 value{shared}"
            ),
        }
    } else if error.code() == Some("NOPERM") {
        format!(
            "{server}: the ACL user in {user_var} may not run what careline needs ({detail}); \
             give it the ACL rules in docs/redis.md"
        )
    } else {
        return None;
    };
    Some(StoreError::Config(problem))
}

/// A Redis error in words, without anything a server could have echoed back of a request.
pub(crate) fn describe(error: &RedisError) -> String {
    if error.is_timeout() {
        return "no answer within the deadline".to_owned();
    }
    if error.is_connection_refusal() {
        return "connection refused".to_owned();
    }
    let described = match (error.code(), error.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        _ => error.to_string(),
    };
    if described.contains("certificate") || described.contains("CertificateRequired") {
        format!(
            "{described}; TLS: [store] tls_ca must be the CA that signed Redis's certificate \
             (without tls_ca, only the public web CAs are trusted)"
        )
    } else {
        described
    }
}

/// The part of a store error worth repeating in a list of failures.
fn reason(error: &StoreError) -> String {
    match error {
        StoreError::Unavailable(reason) | StoreError::Config(reason) => reason.clone(),
        other => other.to_string(),
    }
}

/// A client for the master now and a connection to it: the URL's server, or the master the
/// Sentinels name (asked afresh, and checked with `ROLE`). For connections the store does not
/// manage itself, such as the event relay's; `deadline` bounds the whole exchange.
pub async fn connect_to_master(
    access: &RedisAccess,
    deadline: Duration,
) -> Result<(redis::Client, redis::aio::MultiplexedConnection), StoreError> {
    let connecting = async {
        let (client, address) = match access.target() {
            RedisTarget::Url(url) => (access.url_client(url)?, access.url_address()),
            RedisTarget::Sentinels {
                sentinels,
                master_name,
                ..
            } => {
                let (address, _) = ask_for_master(access, sentinels, master_name, 0).await?;
                (access.master_client(&address)?, Some(address))
            }
        };
        let server = address.as_ref().map_or_else(
            || "Redis".to_owned(),
            |address| format!("Redis at {address}"),
        );
        let mut connection = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|error| {
                auth_problem(&error, &server, Who::Master).unwrap_or_else(|| {
                    StoreError::Unavailable(format!("{server}: {}", describe(&error)))
                })
            })?;
        if let (RedisTarget::Sentinels { .. }, Some(address)) = (access.target(), &address) {
            confirm_master(&mut connection, address).await?;
        }
        Ok((client, connection))
    };
    tokio::time::timeout(deadline, connecting)
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(
                "no connection to the Redis master within the deadline".to_owned(),
            ))
        })
}
