//! The `[store]` forms: one Redis `url`, or `sentinels` with `master_name`; TLS by `rediss://`
//! or `sentinels_tls`, with an optional private CA (`tls_ca`). Credentials never appear here:
//! they come from the environment (`CARELINE_REDIS_USERNAME`, `CARELINE_REDIS_PASSWORD`).
//!
//! [`problems`] is what `careline check` reports about `[store]`; [`HostPort`] reads a
//! Sentinel's address, and [`mask_url`] is how a Redis URL is shown in any message.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::locate::KeyPath;
use super::model::StoreConfig;

/// Something wrong with `[store]`, at `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreProblem {
    pub at: KeyPath,
    pub message: String,
    /// What to do about it.
    pub hint: String,
}

/// Every problem with `store` as written. `resolve` turns `tls_ca` into the path careline opens.
pub fn problems(store: &StoreConfig, resolve: impl Fn(&Path) -> PathBuf) -> Vec<StoreProblem> {
    let mut found = Vec::new();
    let mut problem = |at: KeyPath, message: String, hint: &str| {
        found.push(StoreProblem {
            at,
            message,
            hint: hint.to_owned(),
        });
    };
    let store_key = |key: &str| KeyPath::root().key("store").key(key);
    let has_sentinels = !store.sentinels.is_empty();

    if let Some(url) = &store.url {
        let scheme = url.split_once("://").map(|(scheme, _)| scheme);
        if !matches!(scheme, Some("redis" | "rediss" | "redis+unix" | "unix")) {
            problem(
                store_key("url"),
                format!("`{}` is not a redis:// or rediss:// URL", mask_url(url)),
                "write it like \"redis://10.0.0.5:6379/0\", or \"rediss://redis.example.org:6380/0\" for TLS",
            );
        }
        if url_has_password(url) {
            problem(
                store_key("url"),
                format!(
                    "`{}` carries a password, and secrets never go in the configuration",
                    mask_url(url)
                ),
                "remove it from the URL and set CARELINE_REDIS_PASSWORD (with CARELINE_REDIS_USERNAME for an ACL user) in the environment",
            );
        }
        if has_sentinels {
            problem(
                store_key("sentinels"),
                "both url and sentinels are set; careline reaches Redis one way".to_owned(),
                "keep url for one Redis, or sentinels with master_name for a Sentinel-managed master, and remove the other",
            );
        }
    }
    match (&store.master_name, has_sentinels) {
        (None, true) => problem(
            store_key("sentinels"),
            "sentinels are set without master_name".to_owned(),
            "add master_name = \"…\", the name in the Sentinels' `sentinel monitor <name> …` line",
        ),
        (Some(_), false) => problem(
            store_key("master_name"),
            "master_name is set without sentinels".to_owned(),
            "list the Sentinels as sentinels = [\"10.0.0.5:26379\", …], or remove master_name and use url",
        ),
        (Some(name), true) if name.trim().is_empty() || name.contains(char::is_whitespace) => {
            problem(
                store_key("master_name"),
                format!("`{name}` is not a master name"),
                "use the name from the Sentinels' `sentinel monitor <name> …` line",
            );
        }
        _ => {}
    }
    let mut seen = Vec::new();
    for (index, entry) in store.sentinels.iter().enumerate() {
        match entry.parse::<HostPort>() {
            Ok(address) if seen.contains(&address) => problem(
                store_key("sentinels").index(index),
                format!("`{address}` is listed twice"),
                "list each Sentinel once",
            ),
            Ok(address) => seen.push(address),
            Err(error) => problem(
                store_key("sentinels").index(index),
                format!("`{entry}` {error}"),
                "write each Sentinel as \"host:port\", e.g. \"10.0.0.5:26379\" (an IPv6 address in brackets: \"[fd00::5]:26379\")",
            ),
        }
    }
    if store.sentinels_tls && !has_sentinels {
        problem(
            store_key("sentinels_tls"),
            "sentinels_tls is set without sentinels".to_owned(),
            "for one Redis over TLS use a rediss:// url instead",
        );
    }
    if let Some(ca) = &store.tls_ca {
        let tls_in_use = store
            .url
            .as_deref()
            .is_some_and(|url| url.starts_with("rediss://"))
            || (has_sentinels && store.sentinels_tls);
        if !tls_in_use {
            problem(
                store_key("tls_ca"),
                "tls_ca is set but nothing connects over TLS".to_owned(),
                "use a rediss:// url, or sentinels_tls = true with sentinels; or remove tls_ca",
            );
        }
        let path = resolve(ca);
        match std::fs::read(&path) {
            Ok(pem) if !contains(&pem, b"-----BEGIN CERTIFICATE-----") => problem(
                store_key("tls_ca"),
                format!("{} holds no PEM certificate", path.display()),
                "give the CA certificate that signed Redis's, in PEM (-----BEGIN CERTIFICATE-----)",
            ),
            Ok(_) => {}
            Err(error) => problem(
                store_key("tls_ca"),
                format!("cannot read {}: {error}", path.display()),
                "give the path of the CA certificate (PEM) that signed Redis's; a relative path is relative to the directory careline runs in",
            ),
        }
    }
    found
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Whether a Redis URL has a password in it (`redis://:pw@host`, `redis://user:pw@host`).
fn url_has_password(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

/// A `host:port` (an IPv6 host in brackets: `[::1]:26379`). Never carries credentials.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl HostPort {
    pub fn new(host: &str, port: u16) -> HostPort {
        HostPort {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
        }
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Why a `host:port` is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostPortError {
    #[error("has no `:port`")]
    NoPort,
    #[error("has no host before the `:`")]
    NoHost,
    #[error("port `{0}` is not a number from 1 to 65535")]
    BadPort(String),
    #[error("host `{0}` is not a host name or IP address")]
    BadHost(String),
}

impl FromStr for HostPort {
    type Err = HostPortError;

    fn from_str(text: &str) -> Result<HostPort, HostPortError> {
        let (host, port) = text.rsplit_once(':').ok_or(HostPortError::NoPort)?;
        let host = if let Some(inner) = host.strip_prefix('[') {
            inner
                .strip_suffix(']')
                .ok_or_else(|| HostPortError::BadHost(host.to_owned()))?
        } else if host.contains(':') {
            // An IPv6 address needs brackets, or its last group reads as the port.
            return Err(HostPortError::BadHost(host.to_owned()));
        } else {
            host
        };
        if host.is_empty() {
            return Err(HostPortError::NoHost);
        }
        let valid_host = host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
        if !valid_host {
            return Err(HostPortError::BadHost(host.to_owned()));
        }
        match port.parse::<u16>() {
            Ok(port) if port > 0 => Ok(HostPort::new(host, port)),
            _ => Err(HostPortError::BadPort(port.to_owned())),
        }
    }
}

/// A URL fit for a message: any user name and password replaced by `***`.
pub fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // Not a URL at all: it may still be a secret pasted in the wrong place.
        return "(not a URL)".to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rfind('@') {
        Some(at) => format!("{scheme}://***@{}{path}", &authority[at + 1..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_masked_url_keeps_the_host_and_drops_the_credentials() {
        assert_eq!(
            mask_url("redis://:hunter2@10.0.0.5:6379/0"),
            "redis://***@10.0.0.5:6379/0"
        );
        assert_eq!(
            mask_url("rediss://careline:p@ss@word@redis.example.org/1"),
            "rediss://***@redis.example.org/1"
        );
        assert_eq!(
            mask_url("redis://127.0.0.1:6379/"),
            "redis://127.0.0.1:6379/"
        );
        assert_eq!(mask_url("hunter2"), "(not a URL)");
    }

    #[test]
    fn host_and_port_are_read_strictly() {
        assert_eq!(
            "10.0.0.5:26379".parse::<HostPort>(),
            Ok(HostPort::new("10.0.0.5", 26379))
        );
        assert_eq!(
            "[::1]:26379".parse::<HostPort>().map(|hp| hp.to_string()),
            Ok("[::1]:26379".to_owned())
        );
        assert_eq!(
            "sentinel-1.example.org:26379"
                .parse::<HostPort>()
                .map(|hp| hp.host),
            Ok("sentinel-1.example.org".to_owned())
        );
        assert_eq!("10.0.0.5".parse::<HostPort>(), Err(HostPortError::NoPort));
        assert_eq!(":26379".parse::<HostPort>(), Err(HostPortError::NoHost));
        assert!(matches!(
            "10.0.0.5:0".parse::<HostPort>(),
            Err(HostPortError::BadPort(_))
        ));
        assert!(matches!(
            "10.0.0.5:http".parse::<HostPort>(),
            Err(HostPortError::BadPort(_))
        ));
        assert!(matches!(
            "::1:26379".parse::<HostPort>(),
            Err(HostPortError::BadHost(_))
        ));
        assert!(matches!(
            "redis://10.0.0.5:26379".parse::<HostPort>(),
            Err(HostPortError::BadHost(_))
        ));
    }

    fn store(text: &str) -> StoreConfig {
        toml::from_str(text).expect("a [store] table")
    }

    fn found(text: &str) -> Vec<(String, String)> {
        problems(&store(text), Path::to_path_buf)
            .into_iter()
            .map(|problem| (problem.at.to_string(), problem.message))
            .collect()
    }

    #[test]
    fn one_url_or_sentinels_with_a_master_name_are_the_forms() {
        assert!(found(r#"url = "redis://10.0.0.5:6379/0""#).is_empty());
        assert!(
            found(
                r#"sentinels = ["10.0.0.5:26379", "[fd00::6]:26379"]
master_name = "careline""#
            )
            .is_empty()
        );
        assert!(found("").is_empty());
        let both = found(
            r#"url = "redis://10.0.0.5:6379/0"
sentinels = ["10.0.0.5:26379"]
master_name = "careline""#,
        );
        assert_eq!(both.len(), 1, "{both:?}");
        assert_eq!(both[0].0, "store.sentinels");
        assert_eq!(
            found(r#"sentinels = ["10.0.0.5:26379"]"#)[0].0,
            "store.sentinels"
        );
        assert_eq!(
            found(r#"master_name = "careline""#)[0].0,
            "store.master_name"
        );
    }

    #[test]
    fn each_sentinel_must_be_a_host_and_port() {
        let bad = found(
            r#"sentinels = ["10.0.0.5:26379", "10.0.0.6", "10.0.0.7:99999", "10.0.0.5:26379"]
master_name = "careline""#,
        );
        let at: Vec<&str> = bad.iter().map(|(at, _)| at.as_str()).collect();
        assert_eq!(
            at,
            [
                "store.sentinels[1]",
                "store.sentinels[2]",
                "store.sentinels[3]"
            ]
        );
        assert!(bad[0].1.contains("no `:port`"), "{bad:?}");
    }

    #[test]
    fn a_password_in_the_url_is_refused_without_being_repeated() {
        let found = found(r#"url = "redis://careline:hunter2@10.0.0.5:6379/0""#);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(!found[0].1.contains("hunter2"), "{found:?}");
        assert!(found[0].1.contains("***@10.0.0.5:6379"), "{found:?}");
        assert!(
            problems(&store(r#"url = "http://10.0.0.5/""#), Path::to_path_buf)[0]
                .message
                .contains("not a redis://")
        );
    }

    #[test]
    fn tls_ca_needs_tls_and_a_readable_certificate() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ca = dir.path().join("ca.pem");
        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let ca = ca.display();
        assert!(
            found(&format!(
                "url = \"rediss://10.0.0.5:6380/0\"\ntls_ca = \"{ca}\""
            ))
            .is_empty()
        );
        assert!(found(&format!(
            "sentinels = [\"10.0.0.5:26379\"]\nmaster_name = \"m\"\nsentinels_tls = true\ntls_ca = \"{ca}\""
        ))
        .is_empty());
        let plain = found(&format!(
            "url = \"redis://10.0.0.5:6379/0\"\ntls_ca = \"{ca}\""
        ));
        assert_eq!(plain.len(), 1, "{plain:?}");
        assert!(plain[0].1.contains("nothing connects over TLS"));
        let missing = found("url = \"rediss://10.0.0.5:6380/0\"\ntls_ca = \"/nonexistent/ca.pem\"");
        assert_eq!(missing.len(), 1, "{missing:?}");
        assert_eq!(missing[0].0, "store.tls_ca");
        assert!(missing[0].1.contains("cannot read /nonexistent/ca.pem"));
    }
}
