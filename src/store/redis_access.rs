//! How careline reaches Redis: where (one URL, or Sentinels that name the master), as whom
//! (credentials from the environment only) and over what (TLS, trusting a private CA or the
//! public web roots).
//!
//! A [`RedisAccess`] is built once at start-up from `[store]` and the environment and builds
//! every client careline opens: to the master, and to each Sentinel while following a failover.
//! Passwords live in [`Credentials`], whose `Debug` hides them, and go nowhere but into the
//! client's handshake: no message careline writes carries one, and a URL is only ever shown as
//! [`mask_url`] prints it.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use redis::{Client, IntoConnectionInfo, TlsCertificates};

use super::StoreError;
pub use crate::config::store_forms::{HostPort, HostPortError, mask_url};

/// The ACL user for the master (absent: the `default` user).
pub const USERNAME_VAR: &str = "CARELINE_REDIS_USERNAME";
/// The password for the master (`requirepass`, or the ACL user's).
pub const PASSWORD_VAR: &str = "CARELINE_REDIS_PASSWORD";
/// The ACL user for the Sentinels, when they do not share the master's credentials.
pub const SENTINEL_USERNAME_VAR: &str = "CARELINE_SENTINEL_USERNAME";
/// The Sentinels' password; set but empty: the Sentinels take no password.
pub const SENTINEL_PASSWORD_VAR: &str = "CARELINE_SENTINEL_PASSWORD";

/// A user name and password. `Debug` never prints the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    username: Option<String>,
    password: String,
}

impl Credentials {
    pub fn new(username: Option<&str>, password: &str) -> Credentials {
        Credentials {
            username: username.filter(|name| !name.is_empty()).map(str::to_owned),
            password: password.to_owned(),
        }
    }

    /// The credentials two environment variables hold: `None` without a password (unset or
    /// empty).
    fn from_env(username_var: &str, password_var: &str) -> Option<Credentials> {
        let password = std::env::var(password_var)
            .ok()
            .filter(|password| !password.is_empty())?;
        let username = std::env::var(username_var).ok();
        Some(Credentials::new(username.as_deref(), &password))
    }

    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// How careline authenticates to the Sentinels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SentinelAuth {
    /// The master's credentials (`CARELINE_REDIS_*`), if any.
    SameAsMaster,
    /// Credentials of their own (`CARELINE_SENTINEL_*`).
    Own(Credentials),
    /// No password (`CARELINE_SENTINEL_PASSWORD` set but empty).
    None,
}

/// Where the master is found.
#[derive(Clone)]
pub enum RedisTarget {
    /// `redis://` or `rediss://`: always this server.
    Url(String),
    /// Ask these Sentinels for the master they call `master_name`; `tls` reaches both the
    /// Sentinels and the master over TLS.
    Sentinels {
        sentinels: Vec<HostPort>,
        master_name: String,
        tls: bool,
    },
}

impl fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisTarget::Url(url) => f.debug_tuple("Url").field(&mask_url(url)).finish(),
            RedisTarget::Sentinels {
                sentinels,
                master_name,
                tls,
            } => f
                .debug_struct("Sentinels")
                .field("sentinels", sentinels)
                .field("master_name", master_name)
                .field("tls", tls)
                .finish(),
        }
    }
}

/// Everything needed to open a connection to Redis. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RedisAccess {
    target: RedisTarget,
    /// For the master; `None` leaves what the URL says (if anything).
    credentials: Option<Credentials>,
    sentinel_auth: SentinelAuth,
    /// PEM certificates to trust instead of the public web roots.
    tls_ca: Option<Arc<Vec<u8>>>,
}

impl RedisAccess {
    /// The Redis at `url` (`redis://` or `rediss://`), as the URL says.
    pub fn url(url: &str) -> RedisAccess {
        RedisAccess {
            target: RedisTarget::Url(url.to_owned()),
            credentials: None,
            sentinel_auth: SentinelAuth::SameAsMaster,
            tls_ca: None,
        }
    }

    /// The master that `sentinels` know as `master_name`.
    pub fn sentinels(sentinels: Vec<HostPort>, master_name: &str) -> RedisAccess {
        RedisAccess {
            target: RedisTarget::Sentinels {
                sentinels,
                master_name: master_name.to_owned(),
                tls: false,
            },
            credentials: None,
            sentinel_auth: SentinelAuth::SameAsMaster,
            tls_ca: None,
        }
    }

    /// Reach the Sentinels and the master they name over TLS (no effect with a URL, whose
    /// scheme says it).
    pub fn with_sentinel_tls(mut self, on: bool) -> RedisAccess {
        if let RedisTarget::Sentinels { tls, .. } = &mut self.target {
            *tls = on;
        }
        self
    }

    pub fn with_credentials(mut self, credentials: Credentials) -> RedisAccess {
        self.credentials = Some(credentials);
        self
    }

    pub fn with_sentinel_auth(mut self, auth: SentinelAuth) -> RedisAccess {
        self.sentinel_auth = auth;
        self
    }

    /// Trust the CA certificates in `pem` (and only them) for TLS.
    pub fn with_tls_ca_pem(mut self, pem: Vec<u8>) -> RedisAccess {
        self.tls_ca = Some(Arc::new(pem));
        self
    }

    /// Trust the CA certificates in the PEM file at `path` (`[store] tls_ca`).
    pub fn with_tls_ca_file(self, path: &Path) -> Result<RedisAccess, StoreError> {
        let pem = std::fs::read(path).map_err(|error| {
            StoreError::Config(format!(
                "tls_ca: cannot read {}: {error} (give the PEM file of the CA that signed \
                 Redis's certificate)",
                path.display()
            ))
        })?;
        Ok(self.with_tls_ca_pem(pem))
    }

    /// Credentials from `CARELINE_REDIS_USERNAME`/`CARELINE_REDIS_PASSWORD` (they override any
    /// in the URL) and `CARELINE_SENTINEL_USERNAME`/`CARELINE_SENTINEL_PASSWORD`.
    pub fn with_env_credentials(mut self) -> RedisAccess {
        if let Some(credentials) = Credentials::from_env(USERNAME_VAR, PASSWORD_VAR) {
            self.credentials = Some(credentials);
        }
        self.sentinel_auth = match std::env::var(SENTINEL_PASSWORD_VAR) {
            Ok(password) if password.is_empty() => SentinelAuth::None,
            Ok(_) => Credentials::from_env(SENTINEL_USERNAME_VAR, SENTINEL_PASSWORD_VAR)
                .map_or(SentinelAuth::None, SentinelAuth::Own),
            Err(_) => SentinelAuth::SameAsMaster,
        };
        self
    }

    pub fn target(&self) -> &RedisTarget {
        &self.target
    }

    /// Where the URL points, `host:port` (`None` for Sentinels, or a URL careline cannot read).
    pub fn url_address(&self) -> Option<HostPort> {
        let RedisTarget::Url(url) = &self.target else {
            return None;
        };
        let info = url.as_str().into_connection_info().ok()?;
        match info.addr() {
            redis::ConnectionAddr::Tcp(host, port)
            | redis::ConnectionAddr::TcpTls { host, port, .. } => Some(HostPort::new(host, *port)),
            _ => None,
        }
    }

    /// A client for the URL's server.
    pub(crate) fn url_client(&self, url: &str) -> Result<Client, StoreError> {
        let info = url.into_connection_info().map_err(|error| {
            StoreError::Config(format!(
                "url (or CARELINE_REDIS_URL) `{}` is not a Redis URL ({}); expected \
                 redis://host[:port][/db] or rediss:// for TLS",
                mask_url(url),
                error.category()
            ))
        })?;
        let tls = matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. });
        self.client(info, self.credentials.as_ref(), tls)
    }

    /// A client for the master at `address` (named by the Sentinels).
    pub(crate) fn master_client(&self, address: &HostPort) -> Result<Client, StoreError> {
        let tls = matches!(self.target, RedisTarget::Sentinels { tls: true, .. });
        let info = address_info(address, tls)?;
        self.client(info, self.credentials.as_ref(), tls)
    }

    /// A client for the Sentinel at `address`.
    pub(crate) fn sentinel_client(&self, address: &HostPort) -> Result<Client, StoreError> {
        let tls = matches!(self.target, RedisTarget::Sentinels { tls: true, .. });
        let info = address_info(address, tls)?;
        let credentials = match &self.sentinel_auth {
            SentinelAuth::SameAsMaster => self.credentials.as_ref(),
            SentinelAuth::Own(credentials) => Some(credentials),
            SentinelAuth::None => None,
        };
        self.client(info, credentials, tls)
    }

    fn client(
        &self,
        info: redis::ConnectionInfo,
        credentials: Option<&Credentials>,
        tls: bool,
    ) -> Result<Client, StoreError> {
        let info = match credentials {
            Some(credentials) => {
                let mut settings = info.redis_settings().clone();
                if let Some(username) = &credentials.username {
                    settings = settings.set_username(username);
                }
                settings = settings.set_password(&credentials.password);
                info.set_redis_settings(settings)
            }
            None => info,
        };
        let built = match (&self.tls_ca, tls) {
            (Some(ca), true) => Client::build_with_tls(
                info,
                TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca.as_ref().clone()),
                },
            ),
            _ => Client::open(info),
        };
        built.map_err(|error| {
            StoreError::Config(format!(
                "cannot set up the Redis client ({}: {})",
                error.category(),
                error.detail().unwrap_or("check tls_ca")
            ))
        })
    }
}

fn address_info(address: &HostPort, tls: bool) -> Result<redis::ConnectionInfo, StoreError> {
    let scheme = if tls { "rediss" } else { "redis" };
    format!("{scheme}://{address}/")
        .into_connection_info()
        .map_err(|error| {
            StoreError::Config(format!(
                "`{address}` is not a Redis address ({})",
                error.category()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_print_their_password() {
        let credentials = Credentials::new(Some("careline"), "s3cret-pw");
        let access = RedisAccess::url("redis://:other-pw@127.0.0.1:6379/")
            .with_credentials(credentials.clone())
            .with_sentinel_auth(SentinelAuth::Own(credentials));
        let printed = format!("{access:?} {access:#?}");
        assert!(!printed.contains("s3cret-pw"), "{printed}");
        assert!(!printed.contains("other-pw"), "{printed}");
        assert!(printed.contains("careline"), "{printed}");
    }

    #[test]
    fn a_url_that_is_not_one_is_refused_without_repeating_its_password() {
        let access = RedisAccess::url("http://:s3cret@example.org/");
        let RedisTarget::Url(url) = access.target().clone() else {
            panic!("a URL target");
        };
        let message = match access.url_client(&url) {
            Err(error) => error.to_string(),
            Ok(_) => panic!("http:// is not a Redis URL"),
        };
        assert!(!message.contains("s3cret"), "{message}");
        assert!(message.contains("***@example.org"), "{message}");
    }
}
