//! `X-Twilio-Signature`: computing and checking Twilio's request signatures.
//!
//! Twilio signs every webhook with HMAC-SHA1 keyed by the account's auth token, over the full
//! URL it requested followed by each POST parameter, sorted by name, as `name + value` with no
//! delimiters; the header is the base64 digest. The Media Streams WebSocket upgrade is signed the
//! same way over its `wss://` URL with no parameters, in a lowercase `x-twilio-signature` header.
//!
//! Twilio's own SDKs accept a URL signed with or without an explicit default port, because
//! "signature generation on the back end is inconsistent"; [`validate`] does the same.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// The header a webhook's signature arrives in (HTTP header names are case-insensitive; the
/// WebSocket upgrade sends it lowercase).
pub const SIGNATURE_HEADER: &str = "x-twilio-signature";

/// Why a public base URL cannot be turned into a WebSocket one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PublicUrlError {
    #[error(
        "public URL `{url}` must start with http:// or https:// (set [server] public_url to the address Twilio reaches careline at)"
    )]
    UnsupportedScheme { url: String },
}

/// The signature Twilio would send for a request to `url` carrying the form `params`.
///
/// Parameters are sorted by name, then by value (Twilio's SDKs sort repeated names' values).
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    BASE64.encode(digest(auth_token, url, params))
}

/// Whether `header_value` is Twilio's signature for this request, in constant time.
///
/// The URL is tried as given, with its scheme's default port made explicit, and with it
/// removed, as Twilio's SDKs do.
pub fn validate(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    header_value: &str,
) -> bool {
    let Ok(claimed) = BASE64.decode(header_value.trim()) else {
        return false;
    };
    let mut candidates = vec![url.to_owned()];
    candidates.extend(with_default_port(url));
    candidates.extend(without_default_port(url));
    let mut matched = subtle::Choice::from(0);
    for candidate in &candidates {
        let expected = digest(auth_token, candidate, params);
        matched |= expected.as_slice().ct_eq(&claimed);
    }
    matched.into()
}

fn digest(auth_token: &str, url: &str, params: &[(String, String)]) -> Vec<u8> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return Vec::new(),
    };
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac.finalize().into_bytes().to_vec()
}

/// The pieces of an absolute URL that port handling needs.
struct Authority<'a> {
    /// Everything up to and including `://` and any `user:pass@`.
    prefix: &'a str,
    host: &'a str,
    port: Option<&'a str>,
    /// Path, query and fragment.
    rest: &'a str,
    default_port: &'static str,
}

fn split_authority(url: &str) -> Option<Authority<'_>> {
    let scheme_end = url.find("://")?;
    let default_port = match url[..scheme_end].to_ascii_lowercase().as_str() {
        "https" | "wss" => "443",
        "http" | "ws" => "80",
        _ => return None,
    };
    let authority_start = scheme_end + 3;
    let authority_end = url[authority_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |offset| authority_start + offset);
    let authority = &url[authority_start..authority_end];
    let host_start = authority.rfind('@').map_or(0, |at| at + 1);
    let host_port = &authority[host_start..];
    // An IPv6 literal's colons are inside the brackets; a port follows the closing one.
    let port_colon = match host_port.rfind(']') {
        Some(bracket) => host_port[bracket..].find(':').map(|colon| bracket + colon),
        None => host_port.rfind(':'),
    };
    let (host, port) = match port_colon {
        Some(colon) => (&host_port[..colon], Some(&host_port[colon + 1..])),
        None => (host_port, None),
    };
    Some(Authority {
        prefix: &url[..authority_start + host_start],
        host,
        port,
        rest: &url[authority_end..],
        default_port,
    })
}

/// The host of an absolute `http(s)://` or `ws(s)://` URL, without an IPv6 literal's brackets;
/// `None` for anything else.
pub fn url_host(url: &str) -> Option<&str> {
    let host = split_authority(url)?.host;
    let host = host
        .strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty()).then_some(host)
}

/// `url` with its scheme's default port written out, if it has no port yet.
pub fn with_default_port(url: &str) -> Option<String> {
    let parts = split_authority(url)?;
    if parts.port.is_some() {
        return None;
    }
    Some(format!(
        "{}{}:{}{}",
        parts.prefix, parts.host, parts.default_port, parts.rest
    ))
}

/// `url` without an explicit port, if the one it has is its scheme's default.
pub fn without_default_port(url: &str) -> Option<String> {
    let parts = split_authority(url)?;
    if parts.port != Some(parts.default_port) {
        return None;
    }
    Some(format!("{}{}{}", parts.prefix, parts.host, parts.rest))
}

/// The WebSocket form of a public base URL: `https://` → `wss://`, `http://` → `ws://`, with
/// any trailing `/` dropped so that paths can be appended.
pub fn websocket_base(public_base: &str) -> Result<String, PublicUrlError> {
    let trimmed = public_base.trim_end_matches('/');
    let lower = trimmed.to_ascii_lowercase();
    if lower.starts_with("https://") {
        Ok(format!("wss://{}", &trimmed["https://".len()..]))
    } else if lower.starts_with("http://") {
        Ok(format!("ws://{}", &trimmed["http://".len()..]))
    } else {
        Err(PublicUrlError::UnsupportedScheme {
            url: public_base.to_owned(),
        })
    }
}

/// The URL Twilio signs when it opens the media stream at `path` of careline's public base.
pub fn websocket_url(public_base: &str, path: &str) -> Result<String, PublicUrlError> {
    Ok(format!("{}{}", websocket_base(public_base)?, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const EXPECTED: &str = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";

    fn published_params() -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
    }

    #[test]
    fn matches_twilios_published_vector() {
        assert_eq!(signature(TOKEN, URL, &published_params()), EXPECTED);
        assert!(validate(TOKEN, URL, &published_params(), EXPECTED));
    }

    #[test]
    fn parameter_order_on_the_wire_does_not_matter() {
        let mut shuffled = published_params();
        shuffled.reverse();
        assert_eq!(signature(TOKEN, URL, &shuffled), EXPECTED);
    }

    #[test]
    fn a_tampered_parameter_fails() {
        let mut params = published_params();
        params[2].1 = "1235".to_owned();
        assert!(!validate(TOKEN, URL, &params, EXPECTED));
    }

    #[test]
    fn a_wrong_token_or_garbage_header_fails() {
        assert!(!validate("54321", URL, &published_params(), EXPECTED));
        assert!(!validate(TOKEN, URL, &published_params(), "not base64!"));
        assert!(!validate(TOKEN, URL, &published_params(), ""));
    }

    #[test]
    fn a_request_signed_without_the_port_validates_with_it() {
        let with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
        assert!(validate(TOKEN, with_port, &published_params(), EXPECTED));
    }

    #[test]
    fn a_request_signed_with_the_port_validates_without_it() {
        let with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
        let signed = signature(TOKEN, with_port, &published_params());
        assert_ne!(signed, EXPECTED);
        assert!(validate(TOKEN, URL, &published_params(), &signed));
    }

    #[test]
    fn a_non_default_port_is_significant() {
        let other_port = "https://mycompany.com:8443/myapp.php?foo=1&bar=2";
        assert!(!validate(TOKEN, other_port, &published_params(), EXPECTED));
    }

    #[test]
    fn websocket_upgrades_are_signed_over_the_wss_url_and_its_port_variant() {
        let signed = signature(TOKEN, "wss://careline.example.org/twilio/media", &[]);
        assert!(validate(
            TOKEN,
            "wss://careline.example.org:443/twilio/media",
            &[],
            &signed
        ));
        assert!(!validate(
            TOKEN,
            "https://careline.example.org/twilio/media",
            &[],
            &signed
        ));
    }

    #[test]
    fn default_ports_follow_the_scheme() {
        assert_eq!(
            with_default_port("http://h/p").as_deref(),
            Some("http://h:80/p")
        );
        assert_eq!(
            with_default_port("ws://h?x=1").as_deref(),
            Some("ws://h:80?x=1")
        );
        assert_eq!(with_default_port("wss://h").as_deref(), Some("wss://h:443"));
        assert_eq!(with_default_port("https://h:8443/p"), None);
        assert_eq!(
            without_default_port("https://u:p@h:443/p").as_deref(),
            Some("https://u:p@h/p")
        );
        assert_eq!(without_default_port("http://h:8080/p"), None);
        assert_eq!(
            without_default_port("http://[::1]:80/p").as_deref(),
            Some("http://[::1]/p")
        );
        assert_eq!(
            with_default_port("http://[::1]/p").as_deref(),
            Some("http://[::1]:80/p")
        );
        assert_eq!(with_default_port("ftp://h/p"), None);
    }

    #[test]
    fn public_bases_become_websocket_bases() {
        assert_eq!(
            websocket_base("https://careline.example.org/").as_deref(),
            Ok("wss://careline.example.org")
        );
        assert_eq!(
            websocket_url("http://127.0.0.1:8080", "/twilio/media").as_deref(),
            Ok("ws://127.0.0.1:8080/twilio/media")
        );
        assert!(websocket_base("careline.example.org").is_err());
    }
}
