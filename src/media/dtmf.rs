//! In-band DTMF: hears keypad tones in the caller's decoded 8 kHz audio, as a telephone switch
//! does (an ITU-T Q.24 receiver), for callers whose provider or trunk sends no `dtmf` events.
//!
//! The design follows spandsp's `dtmf_rx`, the detector Asterisk-class systems use, and goes
//! further where spandsp misses ITU-T Q.24. Audio is cut into blocks of [`BLOCK_SAMPLES`] (102
//! samples, 12.75 ms), and a block *hits* a key when:
//!
//! - Goertzel filters at the four row (697–941 Hz) and four column (1209–1633 Hz) tones find the
//!   strongest row and column each above −42 dBm0, each 8 dB above the other filters of its
//!   group, and the two carrying nearly all the block's energy (−0.85 dB). That last test is
//!   spandsp's talk-off defence: speech and music, with their harmonics and formants, fail it.
//! - The block's two halves carry similar energy (within 2 dB), so the tone fills at least 84
//!   of its 102 samples.
//! - Measured through a Blackman window, which the other tone cannot disturb, each tone lies
//!   within 2.5 % of nominal (a 102-sample Goertzel is ±78 Hz wide and cannot by itself refuse a
//!   697 Hz tone 3.5 %, 24 Hz, off, which spandsp accepts) and the twist is within 8 dB normal,
//!   4 dB reverse, plus 1 dB of margin (spandsp refuses tones at exactly those limits).
//! - The Goertzel powers are corrected for the measured offsets before the energy test, so a
//!   key with both tones 1.5 % off is heard; and the 8 dB test allows for what the pair's own
//!   tones leak into the other filters, so a key with 8 dB of twist is heard.
//! - The column tone has no strong second harmonic (libteletone's talk-off test).
//!
//! A key goes down after two successive hits and is released after three successive misses. So
//! a press needs 2 × 102 samples of tone, which 40 ms (320 samples) always holds and 20 ms never
//! can; a 10 ms dropout costs at most two blocks and does not split a press (spandsp splits some),
//! while a 40 ms pause always costs three and does.
//!
//! A detector is 210 bytes per call and allocates nothing. It reports each press once, at
//! key-down; [`DtmfDetector::held`] says which key is down now, so that a call receiving both
//! `dtmf` events and tones can count a press once.

use std::f32::consts::PI;
use std::sync::LazyLock;

use super::{SAMPLE_RATE, ulaw};

/// Samples per analysis block: 12.75 ms at 8 kHz, as in spandsp and Asterisk.
pub const BLOCK_SAMPLES: usize = 102;

const HALF_BLOCK: usize = BLOCK_SAMPLES / 2;
const TONES: usize = 8;

const ROW_HZ: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const COLUMN_HZ: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYPAD: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// Quietest tone heard, per tone (spandsp's default; Q.24 asks for −25 dBm0).
const MIN_TONE_DBM0: f32 = -42.0;
/// A full-scale μ-law sine is +3.14 dBm0 (G.711), which puts 0 dBm0 at 3.14 dB below 32768.
#[allow(clippy::approx_constant)] // G.711's +3.14 dBm0, not π.
const FULL_SCALE_SINE_DBM0: f32 = 3.14;
/// Every other tone of a group must be this much weaker than the strongest.
const RELATIVE_PEAK_DB: f32 = 8.0;
/// Q.24 asks for 8 dB normal twist (row louder) and 4 dB reverse; 1 dB of margin keeps a tone at
/// exactly the limit from flickering with μ-law and line noise.
const NORMAL_TWIST_DB: f32 = 9.0;
const REVERSE_TWIST_DB: f32 = 5.0;
/// Midway between Q.24's "accept within 1.5 %" and "reject beyond 3.5 %".
const FREQUENCY_TOLERANCE: f32 = 0.025;
/// The two tones must carry this share of the block's energy (spandsp's −0.85 dB).
const TONE_SHARE_OF_ENERGY_DB: f32 = -0.85;
/// The two halves of a block may differ in energy by at most this much, so a tone must fill at
/// least 84 of a block's 102 samples: a 20 ms (160-sample) blip can never fill two blocks,
/// whatever the other measurements make of it. A steady key's halves differ by at most 1.2 dB
/// (941 and 1209 Hz beating at 268 Hz).
const HALF_BLOCK_STEADINESS_DB: f32 = 2.0;
/// The column tone's second harmonic must be at least this much weaker than the tone. Column
/// harmonics (2418–3266 Hz) lie far from every DTMF tone; row harmonics do not (2 × 697 Hz is
/// 58 Hz from 1336 Hz), so a row test like libteletone's would reject real presses with
/// reverse twist.
const SECOND_HARMONIC_DB: f32 = 15.0;
/// Successive missed blocks that end a press: 3 blocks = 38 ms.
const MISSES_TO_RELEASE: u8 = 3;

/// Listens to one call's inbound audio for keypad tones.
///
/// Feed it the call's audio in order, in slices of any size; state carries across slices.
///
/// ```
/// use careline::media::dtmf::DtmfDetector;
///
/// let mut detector = DtmfDetector::new();
/// let silence = [0xFF_u8; 160];
/// assert_eq!(detector.push_mulaw(&silence), None);
/// assert_eq!(detector.held(), None);
/// ```
#[derive(Clone)]
pub struct DtmfDetector {
    /// The block being gathered. Kept as samples, not only as running Goertzel state, so that a
    /// block that looks like a key can be examined again for exact frequencies and harmonics.
    block: [i16; BLOCK_SAMPLES],
    /// Samples of `block` gathered so far (always < `BLOCK_SAMPLES` between calls).
    filled: u8,
    /// What the previous block hit: a press needs two agreeing blocks in a row.
    last_hit: Option<Key>,
    /// The key currently down.
    held: Option<Key>,
    /// Successive blocks without the held key.
    misses: u8,
}

/// A key as its index on the keypad: row × 4 + column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key(u8);

impl Key {
    fn new(row: usize, column: usize) -> Key {
        Key((row * 4 + column) as u8)
    }

    fn as_char(self) -> char {
        let index = self.0 as usize;
        KEYPAD[index / 4][index % 4]
    }
}

/// Shows whether a key is down but not which: keys callers press are health information.
impl std::fmt::Debug for DtmfDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtmfDetector")
            .field("key_down", &self.held.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for DtmfDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl DtmfDetector {
    /// A detector for a new call: nothing heard, no key down.
    pub fn new() -> DtmfDetector {
        DtmfDetector {
            block: [0; BLOCK_SAMPLES],
            filled: 0,
            last_hit: None,
            held: None,
            misses: 0,
        }
    }

    /// Feeds linear samples; returns the key pressed within them, if any.
    ///
    /// Two key-downs are at least two blocks apart, so a 20 ms frame, or any slice of up to 204
    /// samples, holds at most one. For longer slices use [`DtmfDetector::push_each`], which
    /// reports every one.
    pub fn push(&mut self, samples: &[i16]) -> Option<char> {
        let mut first = None;
        self.push_each(samples, |key| {
            first.get_or_insert(key);
        });
        first
    }

    /// Feeds one μ-law frame as received on the wire; returns the key pressed within it, if any.
    /// Decodes in place, without allocating. Same one-key limit as [`DtmfDetector::push`].
    pub fn push_mulaw(&mut self, frame: &[u8]) -> Option<char> {
        let mut first = None;
        self.push_mulaw_each(frame, |key| {
            first.get_or_insert(key);
        });
        first
    }

    /// Feeds linear samples of any length, calling `on_key` for every key-down among them.
    pub fn push_each(&mut self, samples: &[i16], mut on_key: impl FnMut(char)) {
        let mut rest = samples;
        while !rest.is_empty() {
            let start = self.filled as usize;
            let take = (BLOCK_SAMPLES - start).min(rest.len());
            self.block[start..start + take].copy_from_slice(&rest[..take]);
            rest = &rest[take..];
            self.gathered(take, &mut on_key);
        }
    }

    /// Feeds μ-law bytes of any length, calling `on_key` for every key-down among them.
    pub fn push_mulaw_each(&mut self, frame: &[u8], mut on_key: impl FnMut(char)) {
        let mut rest = frame;
        while !rest.is_empty() {
            let start = self.filled as usize;
            let take = (BLOCK_SAMPLES - start).min(rest.len());
            for (slot, &byte) in self.block[start..start + take].iter_mut().zip(rest) {
                *slot = ulaw::decode(byte);
            }
            rest = &rest[take..];
            self.gathered(take, &mut on_key);
        }
    }

    /// The key down right now: from its key-down until three missed blocks, 28–41 ms after its
    /// tone stops. A `dtmf` event for this key while it is held belongs to the same press.
    pub fn held(&self) -> Option<char> {
        self.held.map(Key::as_char)
    }

    fn gathered(&mut self, samples: usize, on_key: &mut impl FnMut(char)) {
        let filled = self.filled as usize + samples;
        if filled < BLOCK_SAMPLES {
            self.filled = filled as u8;
            return;
        }
        self.filled = 0;
        let hit = block_hit(&self.block);
        if let Some(key) = self.debounce(hit) {
            on_key(key.as_char());
        }
    }

    /// Turns per-block hits into presses; returns the key that just went down.
    fn debounce(&mut self, hit: Option<Key>) -> Option<Key> {
        let previous = std::mem::replace(&mut self.last_hit, hit);
        match self.held {
            Some(held) if hit == Some(held) => {
                self.misses = 0;
                None
            }
            // Two agreeing blocks: a new press, or a roll straight onto another key.
            _ if hit.is_some() && hit == previous => {
                self.held = hit;
                self.misses = 0;
                hit
            }
            Some(_) => {
                self.misses += 1;
                if self.misses >= MISSES_TO_RELEASE {
                    self.held = None;
                    self.misses = 0;
                }
                None
            }
            None => None,
        }
    }
}

/// Constants derived once: filter coefficients, thresholds as power ratios, window tables.
struct Tables {
    /// Goertzel coefficient 2·cos ω per tone, rows then columns.
    coefficient: [f32; TONES],
    cos: [f32; TONES],
    sin: [f32; TONES],
    /// e^{jωM}, M = half a block: carries the first half-block's result to the block's end.
    carry_re: [f32; TONES],
    carry_im: [f32; TONES],
    /// Per tone, the Blackman window w and its derivative w′ times e^{−jωn}, as
    /// [w·cos, −w·sin, w′·cos, −w′·sin], so that measuring a tone is four dot products.
    /// Blackman's sidelobes are low enough 3.4 bins out (941 Hz seen from 1209 Hz) that the
    /// other tone, even 8 dB louder, moves a measurement by under 0.1 %; Hann's would move it by
    /// up to 0.65 %.
    probes: [[[f32; BLOCK_SAMPLES]; 4]; TONES],
    /// Σ w·m^k for k = 0, 2, 4, 6, m counted from the block's centre: the window's gain for a
    /// tone δ rad/sample off is Σ w·cos δm ≈ W₀ − W₂δ²/2 + W₄δ⁴/24 − W₆δ⁶/720, within 0.1 %
    /// inside the frequency tolerance.
    window_moments: [f32; 4],
    /// The most a tone's Goertzel power can be raised for its offset: its loss at the tolerance.
    most_correction: [f32; TONES],
    min_power: f32,
    relative_peak: f32,
    normal_twist: f32,
    reverse_twist: f32,
    /// Minimum (row + column power) / block energy. A steady tone of amplitude a has Goertzel
    /// power (a·N/2)² and energy N·a²/2, a ratio of N/2.
    tone_share: f32,
    steadiness: f32,
    second_harmonic: f32,
}

static TABLES: LazyLock<Tables> = LazyLock::new(Tables::new);

fn db_to_power_ratio(db: f32) -> f32 {
    10f32.powf(db / 10.0)
}

fn radians_per_sample(hz: f32) -> f32 {
    2.0 * PI * hz / SAMPLE_RATE as f32
}

impl Tables {
    fn new() -> Tables {
        let mut tables = Tables {
            coefficient: [0.0; TONES],
            cos: [0.0; TONES],
            sin: [0.0; TONES],
            carry_re: [0.0; TONES],
            carry_im: [0.0; TONES],
            probes: [[[0.0; BLOCK_SAMPLES]; 4]; TONES],
            window_moments: [0.0; 4],
            most_correction: [0.0; TONES],
            min_power: 0.0,
            relative_peak: db_to_power_ratio(RELATIVE_PEAK_DB),
            normal_twist: db_to_power_ratio(NORMAL_TWIST_DB),
            reverse_twist: db_to_power_ratio(REVERSE_TWIST_DB),
            tone_share: BLOCK_SAMPLES as f32 / 2.0 * db_to_power_ratio(TONE_SHARE_OF_ENERGY_DB),
            steadiness: db_to_power_ratio(HALF_BLOCK_STEADINESS_DB),
            second_harmonic: db_to_power_ratio(SECOND_HARMONIC_DB),
        };
        let centre = (BLOCK_SAMPLES - 1) as f64 / 2.0;
        let window = |n: usize| {
            let phase = std::f64::consts::TAU * (n as f64 + 0.5) / BLOCK_SAMPLES as f64;
            let w = 0.42 - 0.5 * phase.cos() + 0.08 * (2.0 * phase).cos();
            let slope = (0.5 * phase.sin() - 0.16 * (2.0 * phase).sin()) * std::f64::consts::TAU
                / BLOCK_SAMPLES as f64;
            (w, slope)
        };
        for (moment, power) in tables.window_moments.iter_mut().zip([0, 2, 4, 6]) {
            *moment = (0..BLOCK_SAMPLES)
                .map(|n| window(n).0 * (n as f64 - centre).powi(power))
                .sum::<f64>() as f32;
        }
        for tone in 0..TONES {
            let hz = tone_hz(tone);
            let omega = radians_per_sample(hz);
            tables.coefficient[tone] = 2.0 * omega.cos();
            tables.cos[tone] = omega.cos();
            tables.sin[tone] = omega.sin();
            let carried = omega * HALF_BLOCK as f32;
            tables.carry_re[tone] = carried.cos();
            tables.carry_im[tone] = carried.sin();
            tables.most_correction[tone] = 1.0 / goertzel_response(FREQUENCY_TOLERANCE * hz);
            let omega = f64::from(omega);
            for n in 0..BLOCK_SAMPLES {
                let (w, slope) = window(n);
                let (cos, sin) = ((omega * n as f64).cos(), (omega * n as f64).sin());
                let probe = &mut tables.probes[tone];
                probe[0][n] = (w * cos) as f32;
                probe[1][n] = (-w * sin) as f32;
                probe[2][n] = (slope * cos) as f32;
                probe[3][n] = (-slope * sin) as f32;
            }
        }
        let min_amplitude = 32768.0 * 10f32.powf((MIN_TONE_DBM0 - FULL_SCALE_SINE_DBM0) / 20.0);
        tables.min_power = (min_amplitude * BLOCK_SAMPLES as f32 / 2.0).powi(2);
        tables
    }
}

/// The eight Goertzel powers of one block and its energy, whole and in either half.
struct BlockSpectrum {
    power: [f32; TONES],
    energy: f32,
    half_energy: (f32, f32),
}

/// Runs the eight Goertzel filters over a block.
///
/// The block is run as two independent half-blocks, interleaved, and the halves combined at the
/// end: each Goertzel step waits on the previous one, so two chains in flight keep the FPU busy
/// where one would leave it waiting.
fn spectrum(block: &[i16; BLOCK_SAMPLES], tables: &Tables) -> BlockSpectrum {
    let (first, second) = block.split_at(HALF_BLOCK);
    let coefficient = tables.coefficient;
    let (mut a1, mut a2) = ([0f32; TONES], [0f32; TONES]);
    let (mut b1, mut b2) = ([0f32; TONES], [0f32; TONES]);
    let (mut energy_a, mut energy_b) = (0f32, 0f32);
    for (&xa, &xb) in first.iter().zip(second) {
        let (xa, xb) = (f32::from(xa), f32::from(xb));
        energy_a += xa * xa;
        energy_b += xb * xb;
        for tone in 0..TONES {
            // (x − s[n−2]) does not wait on s[n−1], leaving one multiply-add on the chain.
            let next_a = coefficient[tone] * a1[tone] + (xa - a2[tone]);
            a2[tone] = a1[tone];
            a1[tone] = next_a;
            let next_b = coefficient[tone] * b1[tone] + (xb - b2[tone]);
            b2[tone] = b1[tone];
            b1[tone] = next_b;
        }
    }
    let mut spectrum = BlockSpectrum {
        power: [0.0; TONES],
        energy: energy_a + energy_b,
        half_energy: (energy_a, energy_b),
    };
    for tone in 0..TONES {
        let (cos, sin) = (tables.cos[tone], tables.sin[tone]);
        let (a_re, a_im) = (a1[tone] - cos * a2[tone], sin * a2[tone]);
        let (b_re, b_im) = (b1[tone] - cos * b2[tone], sin * b2[tone]);
        let (carry_re, carry_im) = (tables.carry_re[tone], tables.carry_im[tone]);
        let re = carry_re * a_re - carry_im * a_im + b_re;
        let im = carry_re * a_im + carry_im * a_re + b_im;
        spectrum.power[tone] = re * re + im * im;
    }
    spectrum
}

/// Decides which key, if any, one block carries. The cheap tests on the Goertzel bank come first:
/// most speech fails them before any tone is measured.
fn block_hit(block: &[i16; BLOCK_SAMPLES]) -> Option<Key> {
    let tables = &*TABLES;
    let spectrum = spectrum(block, tables);
    let row = strongest(&spectrum.power[..4]);
    let column = 4 + strongest(&spectrum.power[4..]);
    let (row_power, column_power) = (spectrum.power[row], spectrum.power[column]);
    if row_power < tables.min_power || column_power < tables.min_power {
        return None;
    }
    let (first, second) = spectrum.half_energy;
    if first > second * tables.steadiness || second > first * tables.steadiness {
        return None;
    }
    let share_needed = tables.tone_share * spectrum.energy;
    let most_correction = &tables.most_correction;
    if row_power * most_correction[row] + column_power * most_correction[column] < share_needed {
        return None;
    }

    let row_tone = measure(block, row, tables)?;
    let column_tone = measure(block, column, tables)?;
    if column_tone.power > row_tone.power * tables.reverse_twist
        || row_tone.power > column_tone.power * tables.normal_twist
    {
        return None;
    }
    let row_power = row_power / goertzel_response(row_tone.offset_hz);
    let column_power = column_power / goertzel_response(column_tone.offset_hz);
    if row_power + column_power < share_needed {
        return None;
    }
    let pair = [(row, &row_tone), (column, &column_tone)];
    if !stands_out(&spectrum, 0..4, row, &pair, tables)
        || !stands_out(&spectrum, 4..TONES, column, &pair, tables)
    {
        return None;
    }
    let harmonic = goertzel_power(block, 2.0 * (tone_hz(column) + column_tone.offset_hz));
    if harmonic * tables.second_harmonic > column_power {
        return None;
    }
    Some(Key::new(row, column - 4))
}

/// Nominal frequency of tone `tone`: rows 0–3, then columns 4–7.
fn tone_hz(tone: usize) -> f32 {
    if tone < 4 {
        ROW_HZ[tone]
    } else {
        COLUMN_HZ[tone - 4]
    }
}

fn strongest(powers: &[f32]) -> usize {
    let mut best = 0;
    for (index, &power) in powers.iter().enumerate().skip(1) {
        if power > powers[best] {
            best = index;
        }
    }
    best
}

/// Whether every other filter of a group is 8 dB below the group's tone (spandsp's relative
/// peak test), or failing that, would be once what the pair's own two tones leak into it is
/// allowed for. Without that allowance an 8 dB louder 941 Hz row tone leaking into the 1209 Hz
/// filter, with the 1336 Hz column tone leaking into it too, comes within 7.7 dB of the column
/// tone and refuses a valid '0'.
fn stands_out(
    spectrum: &BlockSpectrum,
    group: std::ops::Range<usize>,
    best: usize,
    pair: &[(usize, &MeasuredTone); 2],
    tables: &Tables,
) -> bool {
    let power = &spectrum.power;
    let others = || group.clone().filter(|&tone| tone != best);
    if others().all(|tone| power[tone] * tables.relative_peak <= power[best]) {
        return true;
    }
    let best_power = pair
        .iter()
        .find(|(tone, _)| *tone == best)
        .map_or(power[best], |(_, measured)| measured.power);
    let limit = (best_power / tables.relative_peak).sqrt();
    others().all(|tone| {
        let leaked: f32 = pair
            .iter()
            .map(|(source, measured)| {
                let distance = tone_hz(*source) + measured.offset_hz - tone_hz(tone);
                (measured.power * goertzel_response(distance)).sqrt()
            })
            .sum();
        power[tone].sqrt() <= limit + leaked
    })
}

/// A tone as measured through the Blackman window, where the other tone of the pair cannot
/// reach it: a plain Goertzel's sidelobes let an 8 dB louder row tone move the column tone's
/// power by ±1 dB, too much for a twist limit.
struct MeasuredTone {
    offset_hz: f32,
    /// On the Goertzel scale, (amplitude · N / 2)².
    power: f32,
}

/// Measures the tone near nominal tone `tone`: its offset by windowed reassignment (for a tone
/// δ rad/sample off, Σ w′·x·e^{−jωn} = −jδ · Σ w·x·e^{−jωn}), then its power, undoing the
/// window's loss at that offset. None if there is no tone within the frequency tolerance.
fn measure(block: &[i16; BLOCK_SAMPLES], tone: usize, tables: &Tables) -> Option<MeasuredTone> {
    let [windowed_re, windowed_im, slope_re, slope_im] = &tables.probes[tone];
    let mut sums = [0f32; 4];
    for (n, &sample) in block.iter().enumerate() {
        let x = f32::from(sample);
        sums[0] += x * windowed_re[n];
        sums[1] += x * windowed_im[n];
        sums[2] += x * slope_re[n];
        sums[3] += x * slope_im[n];
    }
    let [windowed_re, windowed_im, slope_re, slope_im] = sums;
    let magnitude = windowed_re * windowed_re + windowed_im * windowed_im;
    if magnitude <= 0.0 {
        return None;
    }
    let delta = -(slope_im * windowed_re - slope_re * windowed_im) / magnitude;
    let offset_hz = delta * SAMPLE_RATE as f32 / (2.0 * PI);
    if offset_hz.abs() > FREQUENCY_TOLERANCE * tone_hz(tone) {
        return None;
    }
    let [w0, w2, w4, w6] = tables.window_moments;
    let d2 = delta * delta;
    let gain = w0 - d2 * (w2 / 2.0 - d2 * (w4 / 24.0 - d2 * w6 / 720.0));
    Some(MeasuredTone {
        offset_hz,
        power: magnitude * (BLOCK_SAMPLES as f32 / gain).powi(2),
    })
}

/// Power response of a block-long Goertzel filter to a tone `offset_hz` off its frequency.
fn goertzel_response(offset_hz: f32) -> f32 {
    let half_angle = PI * offset_hz / SAMPLE_RATE as f32;
    if half_angle.abs() < 1e-6 {
        return 1.0;
    }
    let gain =
        (half_angle * BLOCK_SAMPLES as f32).sin() / (BLOCK_SAMPLES as f32 * half_angle.sin());
    gain * gain
}

/// One Goertzel filter over a block, at any frequency; same scale as [`spectrum`].
fn goertzel_power(block: &[i16; BLOCK_SAMPLES], hz: f32) -> f32 {
    let omega = radians_per_sample(hz);
    let coefficient = 2.0 * omega.cos();
    let (mut s1, mut s2) = (0f32, 0f32);
    for &sample in block {
        let next = coefficient * s1 + (f32::from(sample) - s2);
        s2 = s1;
        s1 = next;
    }
    s1 * s1 + s2 * s2 - coefficient * s1 * s2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dual_tone(row_hz: f32, column_hz: f32, amplitude: f32, samples: usize) -> Vec<i16> {
        (0..samples)
            .map(|n| {
                let t = n as f32 / SAMPLE_RATE as f32;
                let value = amplitude
                    * ((2.0 * PI * row_hz * t).sin() + (2.0 * PI * column_hz * t + 1.0).sin());
                value.round() as i16
            })
            .collect()
    }

    fn block_of(samples: &[i16]) -> [i16; BLOCK_SAMPLES] {
        samples[..BLOCK_SAMPLES].try_into().expect("a block")
    }

    #[test]
    fn split_goertzel_matches_a_plain_dft() {
        let samples = dual_tone(852.0, 1336.0, 5000.0, BLOCK_SAMPLES);
        let block = block_of(&samples);
        let spectrum = spectrum(&block, &TABLES);
        for (tone, hz) in ROW_HZ.iter().chain(&COLUMN_HZ).enumerate() {
            let omega = radians_per_sample(*hz) as f64;
            let (mut re, mut im) = (0f64, 0f64);
            for (n, &x) in block.iter().enumerate() {
                re += x as f64 * (omega * n as f64).cos();
                im -= x as f64 * (omega * n as f64).sin();
            }
            let expected = re * re + im * im;
            let got = spectrum.power[tone] as f64;
            assert!(
                (got - expected).abs() <= 1e-3 * expected.max(1e6),
                "{hz} Hz: {got} vs {expected}"
            );
        }
    }

    #[test]
    fn a_detuned_tone_is_measured_exactly_beside_a_louder_one() {
        for percent in [-2.5f32, -1.5, 0.0, 1.5, 2.0, 2.5] {
            let row_hz = 941.0 * (1.0 + percent / 100.0);
            // The column tone 4 dB louder (reverse twist) is the worst neighbour for 941 Hz.
            let samples: Vec<i16> = (0..BLOCK_SAMPLES)
                .map(|n| {
                    let t = n as f32 / SAMPLE_RATE as f32;
                    (3000.0 * (2.0 * PI * row_hz * t + 0.3).sin()
                        + 4750.0 * (2.0 * PI * 1209.0 * t).sin())
                    .round() as i16
                })
                .collect();
            let tone = measure(&block_of(&samples), 3, &TABLES).expect("a tone");
            let expected = row_hz - 941.0;
            assert!(
                (tone.offset_hz - expected).abs() < 1.0,
                "{percent}%: measured {} Hz",
                tone.offset_hz
            );
            let level_db = 10.0 * (tone.power / (3000.0f32 * 51.0).powi(2)).log10();
            assert!(
                level_db.abs() < 0.1,
                "{percent}%: level off by {level_db} dB"
            );
        }
    }

    #[test]
    fn a_tone_beyond_the_tolerance_is_not_measured() {
        for percent in [-3.5f32, -3.0, 3.0, 3.5] {
            let row_hz = 697.0 * (1.0 + percent / 100.0);
            let samples = dual_tone(row_hz, 1209.0, 5000.0, BLOCK_SAMPLES);
            assert!(
                measure(&block_of(&samples), 0, &TABLES).is_none(),
                "{percent}%"
            );
        }
    }

    #[test]
    fn a_clean_key_hits_every_full_block() {
        let samples = dual_tone(770.0, 1477.0, 6000.0, BLOCK_SAMPLES);
        assert_eq!(block_hit(&block_of(&samples)), Some(Key::new(1, 2)));
        assert_eq!(Key::new(1, 2).as_char(), '6');
    }

    #[test]
    fn silence_and_one_tone_alone_are_not_keys() {
        assert_eq!(block_hit(&[0; BLOCK_SAMPLES]), None);
        let row_only: Vec<i16> = (0..BLOCK_SAMPLES)
            .map(|n| (6000.0 * (2.0 * PI * 770.0 * n as f32 / 8000.0).sin()) as i16)
            .collect();
        assert_eq!(block_hit(&block_of(&row_only)), None);
    }

    fn hits(detector: &mut DtmfDetector, pattern: &str) -> String {
        pattern
            .chars()
            .filter_map(|symbol| {
                let hit = match symbol {
                    '-' => None,
                    key => {
                        let index = KEYPAD.iter().flatten().position(|&k| k == key)?;
                        Some(Key(index as u8))
                    }
                };
                detector.debounce(hit).map(Key::as_char)
            })
            .collect()
    }

    #[test]
    fn presses_follow_spandsps_hit_patterns() {
        // Patterns from spandsp's dtmf.c, one symbol per block.
        let cases = [
            ("-----ABB", "B"),
            ("----B-BB", "B"),
            ("----A-BB", "B"),
            ("BBBBBABB", "B"),
            ("BBBBBB---BB", "BB"),
            ("BBBBBBCC", "BC"),
            ("BBBBBCDD", "BD"),
            ("B-B-B-B-", ""),
        ];
        for (pattern, presses) in cases {
            assert_eq!(
                hits(&mut DtmfDetector::new(), pattern),
                presses,
                "{pattern}"
            );
        }
    }

    #[test]
    fn a_press_survives_two_lost_blocks_but_not_three() {
        assert_eq!(hits(&mut DtmfDetector::new(), "55--55"), "5");
        assert_eq!(hits(&mut DtmfDetector::new(), "55---55"), "55");
    }

    #[test]
    fn held_key_is_known_until_release() {
        let mut detector = DtmfDetector::new();
        hits(&mut detector, "99");
        assert_eq!(detector.held(), Some('9'));
        hits(&mut detector, "--");
        assert_eq!(detector.held(), Some('9'));
        hits(&mut detector, "-");
        assert_eq!(detector.held(), None);
    }

    #[test]
    fn per_call_state_stays_small() {
        assert_eq!(std::mem::size_of::<DtmfDetector>(), 210);
    }

    #[test]
    fn debug_output_does_not_name_the_key() {
        let mut detector = DtmfDetector::new();
        hits(&mut detector, "77");
        let shown = format!("{detector:?}");
        assert!(
            shown.contains("key_down: true") && !shown.contains('7'),
            "{shown}"
        );
    }
}
