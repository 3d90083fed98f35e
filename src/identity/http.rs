//! Signed POSTs to the portal: the HTTP verifier ([`HttpVerifier`]) and the shared client both
//! it and [`super::PortalReset`] use.
//!
//! Every request is JSON signed with `X-Careline-Signature: sha256=<hex HMAC-SHA256(secret,
//! body)>`, has a timeout, follows no redirects (a redirect would resend identifiers somewhere
//! nobody configured), and reads at most [`MAX_ANSWER_BYTES`] of the answer. `https://` works
//! (rustls, Mozilla's roots); plain `http://` is accepted only for loopback addresses, because
//! a verifier request carries the caller's date of birth.
//!
//! Anything but a well-formed 2xx answer is "cannot tell": the caller goes to a person.
//!
//! The verifier protocol, for portal developers:
//!
//! ```text
//! POST <url>   Content-Type: application/json   X-Careline-Signature: sha256=<hex>
//! {"call_sid":"CA…","dob":"1970-01-31","zip":"60601"}        (one of mrn | zip | ssn4, as keyed)
//!
//! 200 {"verified":true,"patient_ref":"P000123"}
//! 200 {"verified":false}                                      or, to count towards a lockout:
//! 200 {"verified":false,"claimed_ref":"P000123"}              (the record the caller was claiming)
//! ```

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Url;
use serde::{Deserialize, Serialize};

use super::claim::Claim;
use super::directory::{Directory, DirectoryError, PatientRef, Verification};
use super::secret::{Pepper, SIGNATURE_HEADER, WebhookSecret};

/// A portal's answer larger than this is not one careline asked for.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// A portal URL careline will not send identifiers to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("`{url}` is not a URL")]
    NotAUrl { url: String },
    #[error("`{url}` must start with https:// (http:// only for a portal on this host)")]
    NotHttps { url: String },
    #[error("cannot set up an HTTP client: {0}")]
    Client(String),
}

/// Why a signed POST got no usable answer. Never holds what the portal sent back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PostFailure {
    TimedOut,
    Unreachable,
    Status(u16),
    TooLarge,
    Other,
}

impl PostFailure {
    pub(crate) fn describe(&self, timeout: Duration) -> String {
        match self {
            PostFailure::TimedOut => format!("no answer within {} ms", timeout.as_millis()),
            PostFailure::Unreachable => "cannot connect".to_owned(),
            PostFailure::Status(status) => format!("answered HTTP {status}"),
            PostFailure::TooLarge => format!("answer larger than {MAX_ANSWER_BYTES} bytes"),
            PostFailure::Other => "the request failed".to_owned(),
        }
    }
}

/// One portal endpoint, with its client, secret and timeout.
#[derive(Clone)]
pub(crate) struct SignedEndpoint {
    client: reqwest::Client,
    url: Url,
    secret: WebhookSecret,
    pub(crate) timeout: Duration,
}

impl SignedEndpoint {
    pub(crate) fn new(
        url: &str,
        secret: WebhookSecret,
        timeout: Duration,
    ) -> Result<SignedEndpoint, EndpointError> {
        let parsed = Url::parse(url).map_err(|_| EndpointError::NotAUrl {
            url: url.to_owned(),
        })?;
        let allowed = match parsed.scheme() {
            "https" => true,
            "http" => is_loopback(&parsed),
            _ => false,
        };
        if !allowed {
            return Err(EndpointError::NotHttps {
                url: url.to_owned(),
            });
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| EndpointError::Client(e.to_string()))?;
        Ok(SignedEndpoint {
            client,
            url: parsed,
            secret,
            timeout,
        })
    }

    pub(crate) fn url(&self) -> &Url {
        &self.url
    }

    /// POST `body` signed; the answer's body on a 2xx.
    pub(crate) async fn post(&self, body: Vec<u8>) -> Result<Vec<u8>, PostFailure> {
        let signature = self.secret.sign(&body);
        let mut response = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await
            .map_err(classify)?;
        let status = response.status();
        if !status.is_success() {
            return Err(PostFailure::Status(status.as_u16()));
        }
        let mut answer = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            if answer.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(PostFailure::TooLarge);
            }
            answer.extend_from_slice(&chunk);
        }
        Ok(answer)
    }
}

fn classify(error: reqwest::Error) -> PostFailure {
    if error.is_timeout() {
        PostFailure::TimedOut
    } else if error.is_connect() {
        PostFailure::Unreachable
    } else {
        PostFailure::Other
    }
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// What the verifier is sent. The second identifier goes as keyed (the portal knows its own
/// formats, e.g. zero-padded MRNs); the date as `YYYY-MM-DD`.
#[derive(Serialize)]
struct VerifyRequest<'a> {
    call_sid: &'a str,
    dob: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    mrn: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    zip: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ssn4: Option<&'a str>,
}

#[derive(Deserialize)]
struct VerifyAnswer {
    verified: bool,
    #[serde(default)]
    patient_ref: Option<String>,
    #[serde(default)]
    claimed_ref: Option<String>,
}

/// A [`Directory`] that asks the portal's verification endpoint.
pub struct HttpVerifier {
    endpoint: SignedEndpoint,
    pepper: Arc<Pepper>,
}

impl HttpVerifier {
    /// `pepper` makes the record pseudonyms for the audit log and lockout counters.
    pub fn new(
        url: &str,
        secret: WebhookSecret,
        timeout: Duration,
        pepper: Arc<Pepper>,
    ) -> Result<HttpVerifier, EndpointError> {
        Ok(HttpVerifier {
            endpoint: SignedEndpoint::new(url, secret, timeout)?,
            pepper,
        })
    }

    fn unavailable(&self, reason: String) -> DirectoryError {
        tracing::warn!(url = %self.endpoint.url(), %reason, "identity verifier cannot tell");
        DirectoryError::Unavailable { reason }
    }
}

#[async_trait]
impl Directory for HttpVerifier {
    fn kind(&self) -> &'static str {
        "http"
    }

    async fn verify(&self, call_sid: &str, claim: &Claim) -> Result<Verification, DirectoryError> {
        let second = claim.second();
        let value = Some(second.expose());
        let kind = second.kind();
        let request = VerifyRequest {
            call_sid,
            dob: claim.dob().expose_iso(),
            mrn: value.filter(|_| kind == crate::config::Identifier::Mrn),
            zip: value.filter(|_| kind == crate::config::Identifier::Zip),
            ssn4: value.filter(|_| kind == crate::config::Identifier::Ssn4),
        };
        let body = serde_json::to_vec(&request)
            .map_err(|_| self.unavailable("cannot encode the request".to_owned()))?;
        let answer = self
            .endpoint
            .post(body)
            .await
            .map_err(|failure| self.unavailable(failure.describe(self.endpoint.timeout)))?;
        let answer: VerifyAnswer = serde_json::from_slice(&answer)
            .map_err(|_| self.unavailable("the answer is not the expected JSON".to_owned()))?;
        let pseudonym_of = |text: String| {
            PatientRef::new(text)
                .map_err(|e| self.unavailable(format!("the answer's patient reference: {e}")))
        };
        if answer.verified {
            let patient_ref = answer
                .patient_ref
                .ok_or_else(|| self.unavailable("verified without a patient_ref".to_owned()))?;
            let patient_ref = pseudonym_of(patient_ref)?;
            let record = self.pepper.pseudonym(patient_ref.as_str());
            return Ok(Verification::Match {
                patient_ref,
                record,
            });
        }
        let claimed_records = match answer.claimed_ref {
            Some(claimed) => vec![self.pepper.pseudonym(pseudonym_of(claimed)?.as_str())],
            None => Vec::new(),
        };
        Ok(Verification::NoMatch { claimed_records })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> WebhookSecret {
        WebhookSecret::new("webhook-secret-for-tests").expect("long enough")
    }

    #[test]
    fn plain_http_is_refused_except_on_this_host() {
        let timeout = Duration::from_secs(1);
        for url in [
            "https://portal.example.org/ivr/verify",
            "http://127.0.0.1:9/verify",
            "http://localhost:8080/verify",
            "http://[::1]:8080/verify",
        ] {
            assert!(SignedEndpoint::new(url, secret(), timeout).is_ok(), "{url}");
        }
        for url in ["http://portal.example.org/verify", "ftp://127.0.0.1/x"] {
            assert!(
                matches!(
                    SignedEndpoint::new(url, secret(), timeout),
                    Err(EndpointError::NotHttps { .. })
                ),
                "{url}"
            );
        }
        assert!(matches!(
            SignedEndpoint::new("portal", secret(), timeout),
            Err(EndpointError::NotAUrl { .. })
        ));
    }
}
