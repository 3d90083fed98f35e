//! Twilio's side of the call, without I/O: Media Streams wire types, TwiML, signatures, and the
//! REST API's outbound-call request and answer.

pub mod rest;
pub mod signature;
pub mod twiml;
pub mod wire;
