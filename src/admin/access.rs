//! Who may use the admin API: bearer tokens from `CARELINE_ADMIN_TOKENS`, each with a role.
//!
//! `CARELINE_ADMIN_TOKENS` is a comma-separated list of `role:token` entries, where the role is
//! `viewer`, `supervisor` or `agent:<agent id>` (e.g. `supervisor:8f3a…,agent:anguyen:c01d…`).
//! Viewers read; supervisors also change any agent and unlock patients; an agent changes only
//! their own status. The scheme `Bearer` is matched without regard to case (RFC 7235).
//!
//! With no tokens set the API is open to the local machine (a developer's laptop) only when
//! both the socket careline actually bound and `server.public_url` are loopback
//! ([`loopback_only`]): a `--listen` that binds elsewhere than the file says is judged by what
//! it bound, and a TLS proxy on the same host, which makes a loopback listener public, shows in
//! the public URL. Anywhere else, no tokens means no access.
//! Tokens are compared in constant time; a refusal says nothing about why.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

#[derive(Clone, PartialEq, Eq)]
pub enum Role {
    Viewer,
    Supervisor,
    Agent(String),
}

impl fmt::Debug for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Viewer => f.write_str("viewer"),
            Role::Supervisor => f.write_str("supervisor"),
            Role::Agent(id) => write!(f, "agent:{id}"),
        }
    }
}

#[derive(Clone)]
struct Token {
    secret: Vec<u8>,
    role: Role,
}

/// The admin tokens this server accepts.
#[derive(Clone, Default)]
pub struct AccessPolicy {
    tokens: Vec<Token>,
    /// No tokens, and both the bound socket and the public URL loopback: every request (all
    /// of them local) acts as a supervisor.
    open_locally: bool,
}

impl fmt::Debug for AccessPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessPolicy")
            .field("tokens", &self.tokens.len())
            .field("open_locally", &self.open_locally)
            .finish()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccessConfigError {
    #[error(
        "CARELINE_ADMIN_TOKENS entry {0} is not `role:token` with role viewer, supervisor or agent:<id> (e.g. supervisor:$(openssl rand -hex 24))"
    )]
    Malformed(usize),
    #[error(
        "CARELINE_ADMIN_TOKENS entry {0} has a token shorter than 16 characters; use a long random token"
    )]
    TooShort(usize),
}

/// Why a request was refused. The response body never says more than the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No or unknown token: 401.
    Unauthenticated,
    /// A valid token whose role may not do this: 403.
    Forbidden,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "unauthorized",
            )
                .into_response(),
            Refusal::Forbidden => (StatusCode::FORBIDDEN, "forbidden").into_response(),
        }
    }
}

/// Whether the API may be open without tokens: the socket careline bound is a loopback one and
/// the public URL names a loopback host (`localhost`, `127.0.0.0/8`, `[::1]`). A wildcard bind
/// (`0.0.0.0`, `[::]`) is not loopback.
pub fn loopback_only(bound: SocketAddr, public_url: &str) -> bool {
    let public_is_loopback = crate::twilio::signature::url_host(public_url).is_some_and(|host| {
        host.eq_ignore_ascii_case("localhost")
            || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    });
    bound.ip().is_loopback() && public_is_loopback
}

impl AccessPolicy {
    /// The policy of a server bound at `bound` and reached at `public_url`, with the tokens of
    /// `CARELINE_ADMIN_TOKENS` (`None`: unset); see [`loopback_only`].
    pub fn for_server(
        tokens: Option<&str>,
        bound: SocketAddr,
        public_url: &str,
    ) -> Result<AccessPolicy, AccessConfigError> {
        AccessPolicy::parse(tokens, loopback_only(bound, public_url))
    }

    /// Nobody can use the API: no tokens, and not open locally either.
    pub fn refuses_everyone(&self) -> bool {
        self.tokens.is_empty() && !self.open_locally
    }

    /// Parse the `CARELINE_ADMIN_TOKENS` value (`None`: unset).
    pub fn parse(
        value: Option<&str>,
        loopback_only: bool,
    ) -> Result<AccessPolicy, AccessConfigError> {
        let mut tokens = Vec::new();
        for (index, entry) in value
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .enumerate()
        {
            let number = index + 1;
            let (role, secret) = entry
                .rsplit_once(':')
                .ok_or(AccessConfigError::Malformed(number))?;
            let role = match role {
                "viewer" => Role::Viewer,
                "supervisor" => Role::Supervisor,
                other => match other.strip_prefix("agent:") {
                    Some(id) if !id.is_empty() => Role::Agent(id.to_owned()),
                    _ => return Err(AccessConfigError::Malformed(number)),
                },
            };
            if secret.len() < 16 {
                return Err(AccessConfigError::TooShort(number));
            }
            tokens.push(Token {
                secret: secret.as_bytes().to_vec(),
                role,
            });
        }
        Ok(AccessPolicy {
            open_locally: tokens.is_empty() && loopback_only,
            tokens,
        })
    }

    /// The role of the request's bearer token.
    pub fn role(&self, headers: &HeaderMap) -> Result<Role, Refusal> {
        if self.open_locally {
            return Ok(Role::Supervisor);
        }
        let presented = bearer_token(headers).ok_or(Refusal::Unauthenticated)?;
        self.role_of(presented.as_bytes())
    }

    /// The role of the token `presented`, however it came.
    fn role_of(&self, presented: &[u8]) -> Result<Role, Refusal> {
        let mut found = None;
        // Every token is compared, so timing does not tell which one (or whether any) matched.
        for token in &self.tokens {
            if bool::from(token.secret.as_slice().ct_eq(presented)) {
                found = Some(token.role.clone());
            }
        }
        found.ok_or(Refusal::Unauthenticated)
    }

    /// Any valid token may read.
    pub fn viewer(&self, headers: &HeaderMap) -> Result<Role, Refusal> {
        self.role(headers)
    }

    /// Any valid token may read, given as the bearer token or, when there is no
    /// `Authorization` header, as `query_token` (the `?token=` of a request a browser cannot
    /// add headers to, such as an `EventSource`'s). Only routes that need it accept this.
    pub fn viewer_or_query_token(
        &self,
        headers: &HeaderMap,
        query_token: Option<&str>,
    ) -> Result<Role, Refusal> {
        if self.open_locally || headers.contains_key(header::AUTHORIZATION) {
            return self.role(headers);
        }
        self.role_of(query_token.ok_or(Refusal::Unauthenticated)?.as_bytes())
    }

    /// Supervisors only.
    pub fn supervisor(&self, headers: &HeaderMap) -> Result<Role, Refusal> {
        match self.role(headers)? {
            role @ Role::Supervisor => Ok(role),
            _ => Err(Refusal::Forbidden),
        }
    }

    /// A supervisor, or the agent `agent_id` themselves.
    pub fn supervisor_or_agent(
        &self,
        headers: &HeaderMap,
        agent_id: &str,
    ) -> Result<Role, Refusal> {
        match self.role(headers)? {
            role @ Role::Supervisor => Ok(role),
            Role::Agent(id) if id == agent_id => Ok(Role::Agent(id)),
            _ => Err(Refusal::Forbidden),
        }
    }

    /// Supervisors and agents (who help patients on the phone), not viewers.
    pub fn staff(&self, headers: &HeaderMap) -> Result<Role, Refusal> {
        match self.role(headers)? {
            Role::Viewer => Err(Refusal::Forbidden),
            role => Ok(role),
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header, the scheme in any case.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start_matches(' '))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
        );
        headers
    }

    const TOKENS: &str = "viewer:vvvvvvvvvvvvvvvvvvvv,supervisor:ssssssssssssssssssss,agent:anguyen:aaaaaaaaaaaaaaaaaaaa";

    #[test]
    fn each_token_carries_its_role() {
        let policy = AccessPolicy::parse(Some(TOKENS), false).expect("valid");
        assert_eq!(
            policy.role(&bearer("vvvvvvvvvvvvvvvvvvvv")),
            Ok(Role::Viewer)
        );
        assert_eq!(
            policy.role(&bearer("ssssssssssssssssssss")),
            Ok(Role::Supervisor)
        );
        assert_eq!(
            policy.role(&bearer("aaaaaaaaaaaaaaaaaaaa")),
            Ok(Role::Agent("anguyen".to_owned()))
        );
        assert_eq!(policy.role(&bearer("nope")), Err(Refusal::Unauthenticated));
        assert_eq!(
            policy.role(&HeaderMap::new()),
            Err(Refusal::Unauthenticated)
        );
    }

    #[test]
    fn an_agent_may_change_only_their_own_status() {
        let policy = AccessPolicy::parse(Some(TOKENS), false).expect("valid");
        let agent = bearer("aaaaaaaaaaaaaaaaaaaa");
        assert!(policy.supervisor_or_agent(&agent, "anguyen").is_ok());
        assert_eq!(
            policy.supervisor_or_agent(&agent, "bsmith"),
            Err(Refusal::Forbidden)
        );
        assert_eq!(
            policy.supervisor_or_agent(&bearer("vvvvvvvvvvvvvvvvvvvv"), "anguyen"),
            Err(Refusal::Forbidden)
        );
        assert!(
            policy
                .supervisor_or_agent(&bearer("ssssssssssssssssssss"), "bsmith")
                .is_ok()
        );
    }

    #[test]
    fn without_tokens_only_a_loopback_server_is_open() {
        let local = AccessPolicy::parse(None, true).expect("valid");
        assert_eq!(local.role(&HeaderMap::new()), Ok(Role::Supervisor));
        let public = AccessPolicy::parse(None, false).expect("valid");
        assert_eq!(
            public.role(&HeaderMap::new()),
            Err(Refusal::Unauthenticated)
        );
    }

    #[test]
    fn the_scheme_is_matched_in_any_case() {
        let policy = AccessPolicy::parse(Some(TOKENS), false).expect("valid");
        for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(&format!("{scheme} vvvvvvvvvvvvvvvvvvvv")).expect("header"),
            );
            assert_eq!(policy.role(&headers), Ok(Role::Viewer), "{scheme}");
        }
        let mut basic = HeaderMap::new();
        basic.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic vvvvvvvvvvvvvvvvvvvv"),
        );
        assert_eq!(policy.role(&basic), Err(Refusal::Unauthenticated));
    }

    #[test]
    fn open_without_tokens_only_when_bound_socket_and_public_url_are_loopback() {
        let loopback: SocketAddr = "127.0.0.1:8080".parse().expect("address");
        let wildcard: SocketAddr = "0.0.0.0:8080".parse().expect("address");
        let lan: SocketAddr = "192.0.2.2:8080".parse().expect("address");
        let v6: SocketAddr = "[::1]:8080".parse().expect("address");
        assert!(loopback_only(loopback, "http://127.0.0.1:8080"));
        assert!(loopback_only(loopback, "http://localhost:8080/"));
        assert!(loopback_only(v6, "http://[::1]:8080"));
        // `--listen 0.0.0.0:…` with `listen = "127.0.0.1:…"` in the file.
        assert!(!loopback_only(wildcard, "http://127.0.0.1:8080"));
        assert!(!loopback_only(lan, "http://127.0.0.1:8080"));
        // A TLS proxy on the same host makes a loopback listener public.
        assert!(!loopback_only(loopback, "https://ivr.example.org"));
        assert!(!loopback_only(loopback, "https://127.0.0.1.example.org"));
        assert!(!loopback_only(loopback, "not a url"));
        let closed =
            AccessPolicy::for_server(None, wildcard, "http://127.0.0.1:8080").expect("valid");
        assert!(closed.refuses_everyone());
        assert_eq!(
            closed.role(&HeaderMap::new()),
            Err(Refusal::Unauthenticated)
        );
        let open =
            AccessPolicy::for_server(None, loopback, "http://127.0.0.1:8080").expect("valid");
        assert_eq!(open.role(&HeaderMap::new()), Ok(Role::Supervisor));
        let tokens = AccessPolicy::for_server(Some(TOKENS), loopback, "http://127.0.0.1:8080")
            .expect("valid");
        assert!(!tokens.refuses_everyone());
        assert_eq!(
            tokens.role(&HeaderMap::new()),
            Err(Refusal::Unauthenticated),
            "tokens set: every request needs one, local or not"
        );
    }

    #[test]
    fn a_query_token_counts_only_without_an_authorization_header() {
        let policy = AccessPolicy::parse(Some(TOKENS), false).expect("valid");
        let none = HeaderMap::new();
        assert_eq!(
            policy.viewer_or_query_token(&none, Some("vvvvvvvvvvvvvvvvvvvv")),
            Ok(Role::Viewer)
        );
        assert_eq!(
            policy.viewer_or_query_token(&none, Some("nope")),
            Err(Refusal::Unauthenticated)
        );
        assert_eq!(
            policy.viewer_or_query_token(&none, None),
            Err(Refusal::Unauthenticated)
        );
        assert_eq!(
            policy.viewer_or_query_token(&bearer("nope"), Some("vvvvvvvvvvvvvvvvvvvv")),
            Err(Refusal::Unauthenticated)
        );
        assert_eq!(
            policy.viewer_or_query_token(&bearer("ssssssssssssssssssss"), None),
            Ok(Role::Supervisor)
        );
    }

    #[test]
    fn malformed_or_short_tokens_are_configuration_errors() {
        assert_eq!(
            AccessPolicy::parse(Some("boss:ssssssssssssssssssss"), false).err(),
            Some(AccessConfigError::Malformed(1))
        );
        assert_eq!(
            AccessPolicy::parse(Some("viewer:short"), false).err(),
            Some(AccessConfigError::TooShort(1))
        );
    }
}
