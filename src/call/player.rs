//! Outbound audio for one call: prompts sent with a bounded lead, paced by Twilio's mark echoes
//! and never ahead of real time by more than that lead.
//!
//! Twilio plays what it is sent in order and echoes a mark when playback reaches it. The player
//! sends each prompt in messages of up to [`MESSAGE_CHUNKS`] chunks, each followed by a mark,
//! and keeps at most [`LEAD_MESSAGES`] unechoed messages at Twilio: about 1.5 s of audio. So a
//! key press never waits behind minutes of buffered audio, hold music can be endless, and a
//! `clear` has little to flush. The mark after a prompt's last audio is named
//! `prompt:{lang}/{id}:{n}` (the test caller prints these); the others are `pace:{n}`.
//!
//! A mark echo does not prove playback: a peer that echoes every mark at once would otherwise
//! be sent hold music as fast as the socket takes it. So the player also keeps the clock of
//! what Twilio would still have to play had it played everything in real time since it was
//! sent, and holds back a message that would take that beyond [`LEAD`]; the session sends it
//! at [`Player::send_more_at`] ([`Player::resume`]). The player does no I/O and reads no
//! clock: each call that may send takes `now`.
//!
//! After a `clear`, Twilio echoes every pending mark; marks up to the clear are then stale and
//! ignored, so an interrupted prompt never reports that it finished. A mark careline never sent
//! is ignored too.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ivr::PlaybackId;
use crate::media::prompt::{CHUNK_DURATION, PromptAudio, PromptLibrary};

/// Chunks (60 ms each) per media message: 480 ms.
pub const MESSAGE_CHUNKS: usize = 8;
/// Unechoed media messages allowed at Twilio: the lead, about 1.5 s.
pub const LEAD_MESSAGES: usize = 3;
/// The most audio Twilio may have buffered, played in real time: [`LEAD_MESSAGES`] full
/// messages, 1.44 s.
pub const LEAD: Duration = CHUNK_DURATION.saturating_mul((LEAD_MESSAGES * MESSAGE_CHUNKS) as u32);

/// What the session must send, in order.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// `count` chunks of `audio` from chunk `first`.
    Media {
        audio: Arc<PromptAudio>,
        first: usize,
        count: usize,
    },
    Mark(String),
    Clear,
}

#[derive(Debug)]
struct Clip {
    audio: Arc<PromptAudio>,
    /// `{lang}/{id}`, for the prompt's end mark; `None` for audio that is missing, whose mark
    /// must not claim a prompt was played.
    label: Option<Arc<str>>,
    next_chunk: usize,
    /// Set on the last clip of a play: its end mark finishes the playback.
    finishes: Option<PlaybackId>,
    /// Hold audio: starts over at its end, until a `clear`.
    looping: bool,
}

#[derive(Debug, Default)]
pub struct Player {
    queue: VecDeque<Clip>,
    /// The number of the last mark sent.
    next_mark: u64,
    /// Marks numbered at or below this were sent before a `clear`: their echoes mean nothing.
    stale_through: u64,
    /// Sent, not yet echoed, not stale: (mark number, playback it finishes).
    in_flight: VecDeque<(u64, Option<PlaybackId>)>,
    /// When everything sent would have finished playing, had Twilio played it in real time
    /// from when it was sent; `None` (or a time past) when nothing would still be playing. The
    /// real-time bound: never more than [`LEAD`] beyond now.
    plays_until: Option<Instant>,
    /// The next message waits for the real-time bound: when it may go.
    held_until: Option<Instant>,
}

impl Player {
    pub fn new() -> Player {
        Player::default()
    }

    /// Queue prompts after whatever is playing and send what the lead allows.
    pub fn play(
        &mut self,
        library: &PromptLibrary,
        playback: PlaybackId,
        language: &str,
        prompts: &[Arc<str>],
        now: Instant,
        out: &mut Vec<Outgoing>,
    ) {
        let last = prompts.len().saturating_sub(1);
        for (index, id) in prompts.iter().enumerate() {
            let (audio, label) = match library.get(language, id) {
                Some(audio) => (audio.clone(), Some(Arc::from(format!("{language}/{id}")))),
                None => {
                    // `careline check` and start-up make sure every prompt is loaded; reaching
                    // here is a bug. A mark is still sent so the call moves on.
                    tracing::error!(language, prompt = %id, "prompt audio missing; skipped");
                    (Arc::new(PromptAudio::from_mulaw(Vec::new())), None)
                }
            };
            self.queue.push_back(Clip {
                audio,
                label,
                next_chunk: 0,
                finishes: (index == last).then_some(playback),
                looping: false,
            });
        }
        self.pump(now, out);
    }

    /// Play `prompt` over and over (hold audio) after whatever is queued, keeping only the lead
    /// at Twilio, until [`Player::clear`]. It never finishes a playback.
    pub fn play_looped(
        &mut self,
        library: &PromptLibrary,
        language: &str,
        prompt: &str,
        now: Instant,
        out: &mut Vec<Outgoing>,
    ) {
        let Some(audio) = library.get(language, prompt) else {
            tracing::error!(
                language,
                prompt,
                "hold audio missing; the caller hears silence"
            );
            return;
        };
        if audio.chunk_count() == 0 {
            return;
        }
        self.queue.push_back(Clip {
            audio: audio.clone(),
            label: Some(Arc::from(format!("{language}/{prompt}"))),
            next_chunk: 0,
            finishes: None,
            looping: true,
        });
        self.pump(now, out);
    }

    /// Drop everything queued and buffered (barge-in). Twilio discards its buffer, so nothing
    /// counts as still playing.
    pub fn clear(&mut self, out: &mut Vec<Outgoing>) {
        if self.queue.is_empty() && self.in_flight.is_empty() {
            return;
        }
        self.queue.clear();
        self.in_flight.clear();
        self.stale_through = self.next_mark;
        self.plays_until = None;
        self.held_until = None;
        out.push(Outgoing::Clear);
    }

    /// A mark came back. Returns the playback it finished, if any, and sends more audio.
    pub fn on_mark(
        &mut self,
        name: &str,
        now: Instant,
        out: &mut Vec<Outgoing>,
    ) -> Option<PlaybackId> {
        let number = mark_number(name)?;
        if number <= self.stale_through || number > self.next_mark {
            return None;
        }
        let mut finished = None;
        // Echoes come in order; anything before this mark has been played too.
        while let Some(&(sent, playback)) = self.in_flight.front() {
            if sent > number {
                break;
            }
            self.in_flight.pop_front();
            if playback.is_some() {
                finished = playback;
            }
        }
        self.pump(now, out);
        finished
    }

    /// When a message held back by the real-time bound may go: call [`Player::resume`] then.
    /// `None` when nothing waits for the clock (only for marks, or for nothing).
    pub fn send_more_at(&self) -> Option<Instant> {
        self.held_until
    }

    /// Send what the lead allows `now` (after [`Player::send_more_at`]).
    pub fn resume(&mut self, now: Instant, out: &mut Vec<Outgoing>) {
        self.pump(now, out);
    }

    /// Whether anything is queued or still playing at Twilio.
    pub fn is_busy(&self) -> bool {
        !self.queue.is_empty() || !self.in_flight.is_empty()
    }

    fn pump(&mut self, now: Instant, out: &mut Vec<Outgoing>) {
        self.held_until = None;
        while self.in_flight.len() < LEAD_MESSAGES {
            let Some(clip) = self.queue.front_mut() else {
                return;
            };
            let remaining = clip.audio.chunk_count() - clip.next_chunk;
            let count = remaining.min(MESSAGE_CHUNKS);
            // Played in real time, Twilio would still be busy with what it has until `from`.
            let from = self.plays_until.map_or(now, |until| until.max(now));
            let plays_until = from + CHUNK_DURATION.saturating_mul(count as u32);
            if plays_until > now + LEAD {
                self.held_until = Some(plays_until - LEAD);
                return;
            }
            self.plays_until = Some(plays_until);
            if count > 0 {
                out.push(Outgoing::Media {
                    audio: clip.audio.clone(),
                    first: clip.next_chunk,
                    count,
                });
                clip.next_chunk += count;
            }
            self.next_mark += 1;
            let number = self.next_mark;
            if clip.next_chunk >= clip.audio.chunk_count() {
                let name = match &clip.label {
                    Some(label) => format!("prompt:{label}:{number}"),
                    None => format!("pace:{number}"),
                };
                let finishes = clip.finishes;
                if clip.looping {
                    clip.next_chunk = 0;
                } else {
                    self.queue.pop_front();
                }
                self.in_flight.push_back((number, finishes));
                out.push(Outgoing::Mark(name));
            } else {
                self.in_flight.push_back((number, None));
                out.push(Outgoing::Mark(format!("pace:{number}")));
            }
        }
    }
}

/// The sequence number at the end of a careline mark name; `None` for names careline never sent.
fn mark_number(name: &str) -> Option<u64> {
    if !(name.starts_with("prompt:") || name.starts_with("pace:")) {
        return None;
    }
    name.rsplit(':').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::prompt::CHUNK_BYTES;

    fn library() -> PromptLibrary {
        let mut library = PromptLibrary::default();
        // 20 chunks = 1.2 s, 2 chunks = 120 ms.
        library.insert(
            "en",
            "long",
            PromptAudio::from_mulaw(vec![0x55; 20 * CHUNK_BYTES]),
        );
        library.insert(
            "en",
            "short",
            PromptAudio::from_mulaw(vec![0x55; 2 * CHUNK_BYTES]),
        );
        library
    }

    /// The instant the tests start playing at.
    fn start() -> Instant {
        use std::sync::OnceLock;
        static START: OnceLock<Instant> = OnceLock::new();
        *START.get_or_init(Instant::now)
    }

    /// Long enough after [`start`] for any test prompt to have played in real time.
    fn late() -> Instant {
        start() + Duration::from_secs(3_600)
    }

    fn marks(out: &[Outgoing]) -> Vec<String> {
        out.iter()
            .filter_map(|send| match send {
                Outgoing::Mark(name) => Some(name.clone()),
                _ => None,
            })
            .collect()
    }

    fn chunks_sent(out: &[Outgoing]) -> usize {
        out.iter()
            .map(|send| match send {
                Outgoing::Media { count, .. } => *count,
                _ => 0,
            })
            .sum()
    }

    #[test]
    fn sends_no_more_than_the_lead_ahead() {
        let mut player = Player::new();
        let mut out = Vec::new();
        let prompts = [Arc::from("long"), Arc::from("long"), Arc::from("long")];
        player.play(&library(), PlaybackId(1), "en", &prompts, start(), &mut out);
        assert_eq!(marks(&out).len(), LEAD_MESSAGES);
        assert!(chunks_sent(&out) <= LEAD_MESSAGES * MESSAGE_CHUNKS);
    }

    #[test]
    fn each_echo_tops_the_lead_up_and_the_last_prompt_mark_finishes_the_playback() {
        let library = library();
        let mut player = Player::new();
        let mut out = Vec::new();
        player.play(
            &library,
            PlaybackId(7),
            "en",
            &[Arc::from("short"), Arc::from("long")],
            start(),
            &mut out,
        );
        let mut sent = marks(&out);
        assert_eq!(sent[0], "prompt:en/short:1");
        let mut finished = None;
        let mut total_chunks = chunks_sent(&out);
        while !sent.is_empty() {
            let name = sent.remove(0);
            let mut more = Vec::new();
            // Echoed at once, as far as the real-time bound lets the player go.
            if let Some(done) = player.on_mark(&name, late(), &mut more) {
                finished = Some((done, name.clone()));
            }
            total_chunks += chunks_sent(&more);
            sent.extend(marks(&more));
        }
        assert_eq!(
            total_chunks, 22,
            "every chunk of both prompts is sent exactly once"
        );
        let (done, mark) = finished.expect("playback finished");
        assert_eq!(done, PlaybackId(7));
        assert!(mark.starts_with("prompt:en/long:"));
        assert!(!player.is_busy());
    }

    #[test]
    fn marks_echoed_because_of_a_clear_finish_nothing() {
        let library = library();
        let mut player = Player::new();
        let mut out = Vec::new();
        player.play(
            &library,
            PlaybackId(1),
            "en",
            &[Arc::from("short")],
            start(),
            &mut out,
        );
        let stale = marks(&out);
        let mut cleared = Vec::new();
        player.clear(&mut cleared);
        assert!(matches!(cleared.as_slice(), [Outgoing::Clear]));
        for name in stale {
            assert_eq!(player.on_mark(&name, start(), &mut Vec::new()), None);
        }
        let mut out = Vec::new();
        player.play(
            &library,
            PlaybackId(2),
            "en",
            &[Arc::from("short")],
            start(),
            &mut out,
        );
        let fresh = marks(&out);
        assert_eq!(
            player.on_mark(&fresh[0], start(), &mut Vec::new()),
            Some(PlaybackId(2))
        );
    }

    #[test]
    fn hold_audio_loops_with_the_lead_bounded_until_cleared() {
        let library = library();
        let mut player = Player::new();
        let mut out = Vec::new();
        let mut now = start();
        player.play_looped(&library, "en", "short", now, &mut out);
        let mut sent = marks(&out);
        assert_eq!(sent.len(), LEAD_MESSAGES);
        let mut total_chunks = chunks_sent(&out);
        // Ten minutes of echoes later the lead is still bounded and audio keeps coming.
        for _ in 0..5_000 {
            // Each echo comes when its message (two chunks) has played.
            now += CHUNK_DURATION * 2;
            let name = sent.remove(0);
            let mut more = Vec::new();
            assert_eq!(player.on_mark(&name, now, &mut more), None);
            total_chunks += chunks_sent(&more);
            sent.extend(marks(&more));
            assert_eq!(sent.len(), LEAD_MESSAGES);
        }
        assert_eq!(total_chunks, 2 * (5_000 + LEAD_MESSAGES));
        let mut cleared = Vec::new();
        player.clear(&mut cleared);
        assert!(matches!(cleared.as_slice(), [Outgoing::Clear]));
        assert!(!player.is_busy());
    }

    #[test]
    fn unknown_mark_names_are_ignored() {
        let mut player = Player::new();
        assert_eq!(
            player.on_mark("somebody else's mark", start(), &mut Vec::new()),
            None
        );
        assert_eq!(
            player.on_mark("pace:notanumber", start(), &mut Vec::new()),
            None
        );
    }

    #[test]
    fn a_missing_prompt_still_finishes_its_playback() {
        let mut player = Player::new();
        let mut out = Vec::new();
        player.play(
            &library(),
            PlaybackId(3),
            "en",
            &[Arc::from("nope")],
            start(),
            &mut out,
        );
        let sent = marks(&out);
        assert_eq!(
            sent,
            ["pace:1"],
            "a missing prompt is not reported as played"
        );
        assert_eq!(
            player.on_mark(&sent[0], start(), &mut Vec::new()),
            Some(PlaybackId(3))
        );
    }
}

#[cfg(test)]
mod real_time {
    use super::*;
    use crate::media::prompt::CHUNK_BYTES;

    /// Hold music a minute long, so only the bound stops it.
    fn hold() -> PromptLibrary {
        let mut library = PromptLibrary::default();
        library.insert(
            "en",
            "hold",
            PromptAudio::from_mulaw(vec![0x55; 1_000 * CHUNK_BYTES]),
        );
        library
    }

    fn audio_and_marks(out: &[Outgoing]) -> (Duration, Vec<String>) {
        let mut audio = Duration::ZERO;
        let mut marks = Vec::new();
        for send in out {
            match send {
                Outgoing::Media { count, .. } => audio += CHUNK_DURATION * *count as u32,
                Outgoing::Mark(name) => marks.push(name.clone()),
                Outgoing::Clear => {}
            }
        }
        (audio, marks)
    }

    /// A peer echoing each mark the moment it is sent, for `seconds`, the session resuming the
    /// player whenever it asks: the audio it was sent.
    fn echoing_at_once(seconds: u64) -> Duration {
        let start = Instant::now();
        let end = start + Duration::from_secs(seconds);
        let mut player = Player::new();
        let mut out = Vec::new();
        player.play_looped(&hold(), "en", "hold", start, &mut out);
        let mut now = start;
        let mut total = Duration::ZERO;
        loop {
            let (audio, marks) = audio_and_marks(&out);
            total += audio;
            if total > Duration::from_secs(seconds + 60) {
                return total;
            }
            out.clear();
            for name in marks {
                player.on_mark(&name, now, &mut out);
            }
            if out.is_empty() {
                match player.send_more_at() {
                    Some(at) if at <= end => {
                        assert!(at > now, "the player asks for a time to come");
                        now = at;
                        player.resume(now, &mut out);
                    }
                    _ => return total,
                }
            }
        }
    }

    #[test]
    fn echoing_marks_at_once_gets_no_more_audio_than_real_time_and_the_lead() {
        for seconds in [0, 1, 10, 60] {
            let sent = echoing_at_once(seconds);
            let played = Duration::from_secs(seconds);
            assert!(sent <= played + LEAD, "{seconds} s: {sent:?} sent");
            // And the caller never runs dry: all of real time is covered.
            assert!(
                sent + CHUNK_DURATION * MESSAGE_CHUNKS as u32 >= played + LEAD,
                "{seconds} s: {sent:?}"
            );
        }
    }

    #[test]
    fn a_mark_that_was_never_sent_tops_nothing_up() {
        let now = Instant::now();
        let mut player = Player::new();
        let mut out = Vec::new();
        player.play_looped(&hold(), "en", "hold", now, &mut out);
        let mut more = Vec::new();
        player.on_mark("pace:1000", now + LEAD, &mut more);
        assert!(more.is_empty(), "{more:?}");
    }

    #[test]
    fn after_a_clear_the_next_prompt_goes_at_once() {
        let now = Instant::now();
        let mut player = Player::new();
        let mut out = Vec::new();
        player.play_looped(&hold(), "en", "hold", now, &mut out);
        assert_eq!(audio_and_marks(&out).0, LEAD);
        out.clear();
        player.clear(&mut out);
        player.play(
            &hold(),
            PlaybackId(1),
            "en",
            &[Arc::from("hold")],
            now,
            &mut out,
        );
        assert_eq!(
            audio_and_marks(&out).0,
            LEAD,
            "Twilio dropped what it had: a full lead goes out again"
        );
    }
}
