//! Keypad presses of one call, wherever they come from: Twilio's `dtmf` messages, tones heard in
//! the caller's audio (`ivr.dtmf = "inband"`), or both — one press reported both ways counts once.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::DtmfMode;
use crate::media::dtmf::DtmfDetector;

/// Keypad input for one call: Twilio's `dtmf` events, tones detected in the inbound audio, or
/// both — in which case one press reported both ways counts once.
pub struct Keypad {
    mode: DtmfMode,
    detector: Option<DtmfDetector>,
    /// Decoded inbound audio, reused for every frame.
    audio: Vec<u8>,
    /// A key reported by an event, and when: the same key heard in the audio soon after is
    /// that press, not another.
    last_event: Option<(char, Instant)>,
    /// The last key heard as a tone, and when its tone was last heard.
    last_tone: Option<(char, Instant)>,
}

/// Within this long, a key reported both as an event and as a tone is one press.
const SAME_PRESS: Duration = Duration::from_millis(300);

impl Keypad {
    pub fn new(mode: DtmfMode) -> Keypad {
        let listens = matches!(mode, DtmfMode::Inband | DtmfMode::Both);
        Keypad {
            mode,
            detector: listens.then(DtmfDetector::new),
            audio: Vec::new(),
            last_event: None,
            last_tone: None,
        }
    }

    /// A `dtmf` message: whether it is a new press.
    pub fn event(&mut self, key: char) -> bool {
        match self.mode {
            DtmfMode::Inband => false,
            DtmfMode::Events => true,
            DtmfMode::Both => {
                let now = Instant::now();
                self.last_event = Some((key, now));
                !self
                    .last_tone
                    .is_some_and(|(tone, at)| tone == key && now - at < SAME_PRESS)
            }
        }
    }

    /// A `media` payload: report each press heard in it.
    pub fn listen(&mut self, payload: &str, mut on_key: impl FnMut(char)) {
        let Some(detector) = &mut self.detector else {
            return;
        };
        use base64::Engine;
        self.audio.clear();
        if base64::engine::general_purpose::STANDARD
            .decode_vec(payload.as_bytes(), &mut self.audio)
            .is_err()
        {
            tracing::debug!("media payload is not base64; skipped");
            return;
        }
        let now = Instant::now();
        let last_event = self.last_event;
        let mut heard = None;
        detector.push_mulaw_each(&self.audio, |key| {
            heard = Some(key);
            let same_press =
                last_event.is_some_and(|(event_key, at)| event_key == key && now - at < SAME_PRESS);
            if !same_press {
                on_key(key);
            }
        });
        if let Some(key) = heard.or(detector.held()) {
            self.last_tone = Some((key, now));
        }
    }
}
