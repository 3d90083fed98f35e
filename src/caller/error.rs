//! Why the test caller could not place or carry on a call.

use crate::twilio::twiml::TwimlError;

use super::script::ScriptError;

#[derive(Debug, thiserror::Error)]
pub enum CallerError {
    #[error("`{url}` is not a usable URL: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("could not reach {url}: {source} (is `careline serve` running there?)")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error(
        "{url} answered HTTP {status}; Twilio would play an application error and hang up (403: check CARELINE_TWILIO_AUTH_TOKEN matches on both sides)"
    )]
    WebhookStatus { url: String, status: u16 },
    #[error(
        "{url} answered with Content-Type `{content_type}`; Twilio runs TwiML only from text/xml or application/xml (error 12300)"
    )]
    ContentType { url: String, content_type: String },
    #[error("{url} answered with TwiML Twilio could not act on: {source}")]
    Twiml {
        url: String,
        #[source]
        source: TwimlError,
    },
    #[error("media stream {url} refused the WebSocket upgrade with HTTP {status}")]
    HandshakeRefused { url: String, status: u16 },
    #[error("could not open media stream {url}: {source}")]
    Handshake {
        url: String,
        #[source]
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
    #[error("media stream failed: {0}")]
    WebSocket(#[from] Box<tokio_tungstenite::tungstenite::Error>),
    #[error("the media stream is already closed")]
    StreamClosed,
    #[error(transparent)]
    Script(#[from] ScriptError),
    #[error("could not write the recording: {0}")]
    Wav(#[from] hound::Error),
}

impl CallerError {
    /// Whether a media stream failed because its connection did: refused, reset or closed
    /// underneath (the node is gone), or the upgrade answered 502/503/504 (no node behind the
    /// balancer, or a draining node). Twilio then runs the TwiML after `</Connect>`; it is
    /// not careline breaking the protocol, unlike a 403 or a malformed frame.
    pub fn is_connection_lost(&self) -> bool {
        match self {
            CallerError::HandshakeRefused { status, .. } => matches!(status, 502..=504),
            CallerError::Handshake { source, .. } => connection_lost(source),
            CallerError::WebSocket(error) => connection_lost(error),
            CallerError::StreamClosed => true,
            _ => false,
        }
    }
}

fn connection_lost(error: &tokio_tungstenite::tungstenite::Error) -> bool {
    use tokio_tungstenite::tungstenite::Error;
    use tokio_tungstenite::tungstenite::error::ProtocolError;
    matches!(
        error,
        Error::Io(_)
            | Error::ConnectionClosed
            | Error::AlreadyClosed
            | Error::Protocol(
                ProtocolError::ResetWithoutClosingHandshake | ProtocolError::HandshakeIncomplete
            )
    )
}

impl From<tokio_tungstenite::tungstenite::Error> for CallerError {
    fn from(error: tokio_tungstenite::tungstenite::Error) -> Self {
        CallerError::WebSocket(Box::new(error))
    }
}
