//! The caller's audio: what it says into the call (silence, scripted frames, DTMF tones) and
//! what it heard (saved as WAV).

use std::f32::consts::TAU;
use std::path::Path;

use crate::media::{FRAME_BYTES, MULAW_SILENCE, SAMPLE_RATE, ulaw};

/// One 20 ms μ-law frame.
pub type Frame = [u8; FRAME_BYTES];

/// A source of the caller's voice: the next 20 ms to send in a `media` message.
pub trait InboundAudio: Send + Sync {
    fn next_frame(&mut self) -> Frame;
}

/// The caller says nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silence;

impl InboundAudio for Silence {
    fn next_frame(&mut self) -> Frame {
        [MULAW_SILENCE; FRAME_BYTES]
    }
}

/// Frames from an iterator, then silence once it runs out.
pub struct Frames<I>(pub I);

impl<I: Iterator<Item = Frame> + Send + Sync> InboundAudio for Frames<I> {
    fn next_frame(&mut self) -> Frame {
        self.0.next().unwrap_or([MULAW_SILENCE; FRAME_BYTES])
    }
}

/// How the caller's key presses reach careline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum KeySignalling {
    /// Twilio `dtmf` messages only.
    #[default]
    Events,
    /// In-band tones in the caller's audio only.
    Tones,
    /// Both, as a real phone through Twilio would likely produce.
    Both,
}

/// How long a key's tone lasts; the rest of the 100 ms key gap is silence.
pub const TONE_MS: u32 = 60;

/// The (row, column) frequencies of a keypad key, in Hz.
pub fn dtmf_frequencies(key: char) -> Option<(f32, f32)> {
    const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
    const COLUMNS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
    let (row, column) = match key {
        '1' => (0, 0),
        '2' => (0, 1),
        '3' => (0, 2),
        'A' => (0, 3),
        '4' => (1, 0),
        '5' => (1, 1),
        '6' => (1, 2),
        'B' => (1, 3),
        '7' => (2, 0),
        '8' => (2, 1),
        '9' => (2, 2),
        'C' => (2, 3),
        '*' => (3, 0),
        '0' => (3, 1),
        '#' => (3, 2),
        'D' => (3, 3),
        _ => return None,
    };
    Some((ROWS[row], COLUMNS[column]))
}

/// The DTMF tone for `key`, `duration_ms` long, as whole 20 ms frames (rounded up).
pub fn dtmf_tone(key: char, duration_ms: u32) -> Vec<Frame> {
    let Some((low, high)) = dtmf_frequencies(key) else {
        return Vec::new();
    };
    let frames = duration_ms.div_ceil(crate::media::FRAME_MS as u32) as usize;
    // Each tone at about -9 dBFS keeps the pair clear of clipping.
    let amplitude = 0.35 * f32::from(i16::MAX);
    let mut sample_index = 0u32;
    (0..frames)
        .map(|_| {
            let mut frame = [MULAW_SILENCE; FRAME_BYTES];
            for byte in &mut frame {
                let t = sample_index as f32 / SAMPLE_RATE as f32;
                let value = amplitude * ((TAU * low * t).sin() + (TAU * high * t).sin());
                *byte = ulaw::encode(value as i16);
                sample_index += 1;
            }
            frame
        })
        .collect()
}

/// Save μ-law audio as a 16-bit PCM, 8 kHz, mono WAV file.
pub fn write_wav(path: &Path, mulaw: &[u8]) -> Result<(), hound::Error> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec)?;
    for &byte in mulaw {
        writer.write_sample(ulaw::decode(byte))?;
    }
    writer.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goertzel power of `frequency` in `samples`.
    fn power(samples: &[f32], frequency: f32) -> f32 {
        let coefficient = 2.0 * (TAU * frequency / SAMPLE_RATE as f32).cos();
        let (mut previous, mut before) = (0.0f32, 0.0f32);
        for &sample in samples {
            let current = sample + coefficient * previous - before;
            before = previous;
            previous = current;
        }
        previous * previous + before * before - coefficient * previous * before
    }

    #[test]
    fn a_key_tone_carries_its_row_and_column_frequencies() {
        let frames = dtmf_tone('5', TONE_MS);
        assert_eq!(frames.len(), 3);
        let samples: Vec<f32> = frames
            .iter()
            .flatten()
            .map(|&byte| f32::from(ulaw::decode(byte)))
            .collect();
        let five = power(&samples, 770.0) + power(&samples, 1336.0);
        let one = power(&samples, 697.0) + power(&samples, 1209.0);
        assert!(five > 20.0 * one, "5's tones dominate: {five} vs {one}");
        assert!(dtmf_tone('x', TONE_MS).is_empty());
    }

    #[test]
    fn heard_audio_is_saved_as_pcm_wav() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("heard.wav");
        let mulaw = [ulaw::encode(1000), MULAW_SILENCE, ulaw::encode(-1000)];
        write_wav(&path, &mulaw).expect("written");
        let mut reader = hound::WavReader::open(&path).expect("readable");
        assert_eq!(reader.spec().sample_rate, 8000);
        assert_eq!(reader.spec().channels, 1);
        let samples: Vec<i16> = reader
            .samples::<i16>()
            .map(|s| s.expect("sample"))
            .collect();
        assert_eq!(samples.len(), 3);
        assert!(samples[0] > 900 && samples[2] < -900);
        assert_eq!(samples[1], 0);
    }

    #[test]
    fn scripted_frames_fall_back_to_silence() {
        let mut source = Frames(std::iter::once([7u8; FRAME_BYTES]));
        assert_eq!(source.next_frame(), [7u8; FRAME_BYTES]);
        assert_eq!(source.next_frame(), [MULAW_SILENCE; FRAME_BYTES]);
    }
}
