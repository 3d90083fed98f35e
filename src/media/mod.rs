//! Audio: the μ-law codec, prompt loading and resampling, the 20 ms framing of the wire, and
//! voicemail recording.
//!
//! Twilio streams G.711 μ-law at 8 kHz, mono, in 160-byte (20 ms) frames. Prompts are decoded
//! and resampled once at start-up into shared, immutable μ-law with their base64 pre-encoded,
//! so sending a frame costs neither a resample nor a copy of prompt audio.

pub mod dtmf;
pub mod prompt;
pub mod recording;
pub mod ulaw;

/// Samples per second on the wire.
pub const SAMPLE_RATE: u32 = 8000;
/// Bytes (= samples) in one 20 ms μ-law frame.
pub const FRAME_BYTES: usize = 160;
/// Duration of one frame in milliseconds.
pub const FRAME_MS: u64 = 20;
/// μ-law encoding of silence.
pub const MULAW_SILENCE: u8 = 0xFF;
