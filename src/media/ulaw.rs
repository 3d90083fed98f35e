//! G.711 μ-law: 14-bit linear PCM ↔ 8-bit companded samples.

/// Decode table, built at compile time.
static DECODE: [i16; 256] = build_decode_table();

const BIAS: i32 = 0x84;
const CLIP: i32 = 32635;

const fn decode_one(byte: u8) -> i16 {
    let byte = !byte;
    let sign = byte & 0x80;
    let exponent = ((byte >> 4) & 0x07) as i32;
    let mantissa = (byte & 0x0F) as i32;
    let magnitude = (((mantissa << 3) + BIAS) << exponent) - BIAS;
    if sign != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

const fn build_decode_table() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut index = 0;
    while index < 256 {
        table[index] = decode_one(index as u8);
        index += 1;
    }
    table
}

/// μ-law byte → linear 16-bit sample.
#[inline]
pub fn decode(byte: u8) -> i16 {
    DECODE[byte as usize]
}

/// Linear 16-bit sample → μ-law byte.
#[inline]
pub fn encode(sample: i16) -> u8 {
    let mut value = sample as i32;
    let sign = if value < 0 {
        value = -value;
        0x80
    } else {
        0
    };
    if value > CLIP {
        value = CLIP;
    }
    value += BIAS;
    // Position of the highest set bit above bit 7 gives the segment (exponent).
    let exponent = (31 - (value as u32).leading_zeros() as i32 - 7).clamp(0, 7);
    let mantissa = (value >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) as u8 as i32 | mantissa) as u8
}

/// Decode a block of μ-law bytes into `out` (cleared first).
pub fn decode_into(bytes: &[u8], out: &mut Vec<i16>) {
    out.clear();
    out.extend(bytes.iter().map(|&byte| decode(byte)));
}

/// Encode a block of samples into `out` (cleared first).
pub fn encode_into(samples: &[i16], out: &mut Vec<u8>) {
    out.clear();
    out.extend(samples.iter().map(|&sample| encode(sample)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_survives_decode_then_encode() {
        for byte in 0..=255u8 {
            let back = encode(decode(byte));
            // 0x7F and 0xFF both mean zero; encoding zero gives 0xFF.
            if decode(byte) == 0 {
                assert_eq!(decode(back), 0);
            } else {
                assert_eq!(back, byte, "byte {byte:#04x}");
            }
        }
    }

    #[test]
    fn known_values_match_g711() {
        assert_eq!(encode(0), 0xFF);
        assert_eq!(decode(0xFF), 0);
        assert_eq!(decode(0x00), -32124);
        assert_eq!(decode(0x80), 32124);
        assert_eq!(encode(32767), 0x80);
        assert_eq!(encode(-32768), 0x00);
    }

    #[test]
    fn encoding_error_is_small_relative_to_the_sample() {
        for sample in (-32000i32..32000).step_by(97) {
            let sample = sample as i16;
            let error = (decode(encode(sample)) as i32 - sample as i32).abs();
            assert!(
                error <= (sample as i32).abs() / 16 + 8,
                "sample {sample} error {error}"
            );
        }
    }
}
