//! Twilio's playback buffer, simulated: the audio careline sends is queued and played at 8000
//! bytes a second; marks come back when playback reaches them; `clear` flushes.
//!
//! This follows the reference's DERIVED model (§1.5): a FIFO of audio and marks, drained 160
//! bytes per 20 ms tick; a mark is echoed when the playback cursor reaches it, or at once when
//! nothing is buffered ahead of it; `clear` drops the audio and echoes every queued mark in
//! order. Sans-IO: the stream driver calls [`PlaybackBuffer::tick`] every 20 ms.

use std::collections::VecDeque;

use crate::media::{FRAME_BYTES, MULAW_SILENCE, SAMPLE_RATE};

/// Twilio discards audio once more than ten minutes are buffered (warning 31931).
pub const MAX_BUFFERED_BYTES: usize = SAMPLE_RATE as usize * 600;

/// Why a mark came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EchoReason {
    /// Playback reached the mark: the audio before it was heard.
    Played,
    /// A `clear` flushed the audio before it: it was not (entirely) heard.
    Cleared,
}

/// A mark echoed back to careline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkEcho {
    pub name: String,
    pub reason: EchoReason,
}

/// What one 20 ms tick of playback did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaybackTick {
    /// The 20 ms the caller heard: played audio, then silence if the buffer ran dry.
    pub heard: [u8; FRAME_BYTES],
    /// How many of those bytes were careline's audio.
    pub played_bytes: usize,
    /// Marks the playback cursor reached during this tick, in order.
    pub echoes: Vec<MarkEcho>,
}

/// Audio was refused because the buffer already held ten minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "audio discarded: more than 10 minutes buffered (Twilio warning 31931); keep a bounded lead"
)]
pub struct BufferOverflow;

#[derive(Debug)]
enum Queued {
    Audio {
        bytes: Vec<u8>,
        played: usize,
    },
    /// Audio whose length is kept but not its bytes ([`PlaybackBuffer::push_audio_len`]).
    Counted {
        len: usize,
        played: usize,
    },
    Mark(String),
}

#[derive(Debug, Default)]
pub struct PlaybackBuffer {
    queue: VecDeque<Queued>,
    /// Unplayed audio bytes in `queue`.
    buffered: usize,
    /// A `clear` cut audio that no mark has followed yet, and no audio has been queued since:
    /// a mark arriving now names audio that was interrupted, although nothing is ahead of it.
    cut_since_last_mark: bool,
}

impl PlaybackBuffer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queue careline's audio behind whatever is buffered.
    pub fn push_audio(&mut self, audio: Vec<u8>) -> Result<(), BufferOverflow> {
        if audio.is_empty() {
            return Ok(());
        }
        if self.buffered + audio.len() > MAX_BUFFERED_BYTES {
            return Err(BufferOverflow);
        }
        self.cut_since_last_mark = false;
        self.buffered += audio.len();
        self.queue.push_back(Queued::Audio {
            bytes: audio,
            played: 0,
        });
        Ok(())
    }

    /// Queue `len` bytes of careline's audio without keeping them: it plays (and is reported) as
    /// silence. The load generator uses this, since it needs the timing, not the sound.
    pub fn push_audio_len(&mut self, len: usize) -> Result<(), BufferOverflow> {
        if len == 0 {
            return Ok(());
        }
        if self.buffered + len > MAX_BUFFERED_BYTES {
            return Err(BufferOverflow);
        }
        self.cut_since_last_mark = false;
        self.buffered += len;
        self.queue.push_back(Queued::Counted { len, played: 0 });
        Ok(())
    }

    /// Queue a mark; it comes straight back if nothing is buffered ahead of it.
    pub fn push_mark(&mut self, name: String) -> Option<MarkEcho> {
        let cut = std::mem::take(&mut self.cut_since_last_mark);
        if self.queue.is_empty() {
            let reason = if cut {
                EchoReason::Cleared
            } else {
                EchoReason::Played
            };
            return Some(MarkEcho { name, reason });
        }
        self.queue.push_back(Queued::Mark(name));
        None
    }

    /// Drop every buffered byte; every queued mark comes back, in order.
    pub fn clear(&mut self) -> Vec<MarkEcho> {
        let mut echoes = Vec::new();
        for item in self.queue.drain(..) {
            match item {
                Queued::Audio { bytes, played } => {
                    if played < bytes.len() {
                        self.cut_since_last_mark = true;
                    }
                }
                Queued::Counted { len, played } => {
                    if played < len {
                        self.cut_since_last_mark = true;
                    }
                }
                Queued::Mark(name) => {
                    self.cut_since_last_mark = false;
                    echoes.push(MarkEcho {
                        name,
                        reason: EchoReason::Cleared,
                    });
                }
            }
        }
        self.buffered = 0;
        echoes
    }

    /// Play the next 20 ms.
    pub fn tick(&mut self) -> PlaybackTick {
        let mut heard = [MULAW_SILENCE; FRAME_BYTES];
        let mut filled = 0;
        let mut echoes = Vec::new();
        loop {
            match self.queue.front_mut() {
                Some(Queued::Mark(_)) => {
                    if let Some(Queued::Mark(name)) = self.queue.pop_front() {
                        echoes.push(MarkEcho {
                            name,
                            reason: EchoReason::Played,
                        });
                    }
                }
                Some(Queued::Audio { bytes, played }) if filled < FRAME_BYTES => {
                    let take = (bytes.len() - *played).min(FRAME_BYTES - filled);
                    heard[filled..filled + take].copy_from_slice(&bytes[*played..*played + take]);
                    *played += take;
                    filled += take;
                    self.buffered -= take;
                    if *played == bytes.len() {
                        self.queue.pop_front();
                    }
                }
                Some(Queued::Counted { len, played }) if filled < FRAME_BYTES => {
                    let take = (*len - *played).min(FRAME_BYTES - filled);
                    *played += take;
                    filled += take;
                    self.buffered -= take;
                    if *played == *len {
                        self.queue.pop_front();
                    }
                }
                _ => break,
            }
        }
        PlaybackTick {
            heard,
            played_bytes: filled,
            echoes,
        }
    }

    /// Whether audio is still waiting to be played.
    pub fn is_playing(&self) -> bool {
        self.buffered > 0
    }

    /// Unplayed audio, in bytes (= samples).
    pub fn buffered_bytes(&self) -> usize {
        self.buffered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn played(name: &str) -> MarkEcho {
        MarkEcho {
            name: name.to_owned(),
            reason: EchoReason::Played,
        }
    }

    fn cleared(name: &str) -> MarkEcho {
        MarkEcho {
            name: name.to_owned(),
            reason: EchoReason::Cleared,
        }
    }

    #[test]
    fn a_mark_comes_back_once_the_audio_before_it_has_played() {
        let mut buffer = PlaybackBuffer::new();
        buffer.push_audio(vec![1; 800]).expect("room");
        assert_eq!(buffer.push_mark("prompt:en/welcome:1".to_owned()), None);
        for _ in 0..4 {
            let tick = buffer.tick();
            assert_eq!(tick.played_bytes, FRAME_BYTES);
            assert!(tick.echoes.is_empty());
        }
        let fifth = buffer.tick();
        assert_eq!(fifth.echoes, vec![played("prompt:en/welcome:1")]);
        assert!(!buffer.is_playing());
    }

    #[test]
    fn a_mark_with_nothing_buffered_comes_back_at_once() {
        let mut buffer = PlaybackBuffer::new();
        assert_eq!(buffer.push_mark("m".to_owned()), Some(played("m")));
        buffer.push_audio(vec![1; 160]).expect("room");
        buffer.tick();
        assert_eq!(buffer.push_mark("n".to_owned()), Some(played("n")));
    }

    #[test]
    fn playback_runs_through_marks_without_a_gap() {
        let mut buffer = PlaybackBuffer::new();
        buffer.push_audio(vec![1; 100]).expect("room");
        buffer.push_mark("a".to_owned());
        buffer.push_audio(vec![2; 100]).expect("room");
        buffer.push_mark("b".to_owned());
        let first = buffer.tick();
        assert_eq!(first.echoes, vec![played("a")]);
        assert_eq!(&first.heard[..100], &[1; 100][..]);
        assert_eq!(&first.heard[100..], &[2; 60][..]);
        let second = buffer.tick();
        assert_eq!(second.played_bytes, 40);
        assert_eq!(&second.heard[40..], &[MULAW_SILENCE; 120][..]);
        assert_eq!(second.echoes, vec![played("b")]);
    }

    #[test]
    fn clear_drops_the_audio_and_returns_every_pending_mark_in_order() {
        let mut buffer = PlaybackBuffer::new();
        buffer.push_audio(vec![1; 1600]).expect("room");
        buffer.push_mark("x".to_owned());
        buffer.push_audio(vec![1; 1600]).expect("room");
        buffer.push_mark("y".to_owned());
        buffer.tick();
        assert_eq!(buffer.clear(), vec![cleared("x"), cleared("y")]);
        assert!(!buffer.is_playing());
        let after = buffer.tick();
        assert_eq!(after.played_bytes, 0);
        assert_eq!(after.heard, [MULAW_SILENCE; FRAME_BYTES]);
    }

    #[test]
    fn a_mark_sent_after_its_audio_was_cleared_counts_as_interrupted() {
        let mut buffer = PlaybackBuffer::new();
        buffer.push_audio(vec![1; 1600]).expect("room");
        buffer.tick();
        assert!(buffer.clear().is_empty());
        assert_eq!(buffer.push_mark("late".to_owned()), Some(cleared("late")));
        assert_eq!(buffer.push_mark("next".to_owned()), Some(played("next")));
    }

    #[test]
    fn fresh_audio_after_a_clear_is_not_counted_as_interrupted() {
        let mut buffer = PlaybackBuffer::new();
        buffer.push_audio(vec![1; 1600]).expect("room");
        buffer.clear();
        buffer.push_audio(vec![2; 160]).expect("room");
        buffer.tick();
        assert_eq!(buffer.push_mark("fresh".to_owned()), Some(played("fresh")));
    }

    #[test]
    fn counted_audio_paces_marks_like_real_audio_but_sounds_silent() {
        let mut buffer = PlaybackBuffer::new();
        buffer.push_audio_len(200).expect("room");
        assert_eq!(buffer.push_mark("end".to_owned()), None);
        let first = buffer.tick();
        assert_eq!(first.played_bytes, FRAME_BYTES);
        assert_eq!(first.heard, [MULAW_SILENCE; FRAME_BYTES]);
        assert!(first.echoes.is_empty());
        let second = buffer.tick();
        assert_eq!(second.played_bytes, 40);
        assert_eq!(second.echoes, vec![played("end")]);
        buffer.push_audio_len(1600).expect("room");
        buffer.tick();
        assert!(buffer.clear().is_empty());
        assert_eq!(buffer.push_mark("late".to_owned()), Some(cleared("late")));
    }

    #[test]
    fn more_than_ten_minutes_of_audio_is_refused() {
        let mut buffer = PlaybackBuffer::new();
        buffer
            .push_audio(vec![1; MAX_BUFFERED_BYTES])
            .expect("exactly ten minutes fits");
        assert_eq!(buffer.push_audio(vec![1; 1]), Err(BufferOverflow));
        buffer.tick();
        assert_eq!(buffer.push_audio(vec![1; 160]), Ok(()));
    }
}
