//! Prompt audio: WAV files read once, downmixed, resampled to 8 kHz and μ-law encoded.
