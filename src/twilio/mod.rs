//! Twilio's side of the call, without I/O: Media Streams wire types, TwiML, signatures.

pub mod signature;
pub mod twiml;
pub mod wire;
