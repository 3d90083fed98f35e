//! The per-frame hot path: one inbound `media` message parsed (and its payload base64-decoded),
//! one outbound `media` message serialized from pre-encoded prompt audio, and the μ-law codec on
//! one 20 ms frame.
//!
//! Run with `cargo bench --bench media_path`.

use std::hint::black_box;

use base64::Engine;
use careline::media::prompt::PromptAudio;
use careline::media::ulaw;
use careline::twilio::wire::{Outbound, OutboundMedia, StreamEvent, parse_stream_event};
use criterion::{Criterion, criterion_group, criterion_main};

fn inbound_frame() -> String {
    let payload = base64::engine::general_purpose::STANDARD.encode([0xD5u8; 160]);
    format!(
        r#"{{"event":"media","sequenceNumber":"4711","media":{{"track":"inbound","chunk":"4710","timestamp":"94200","payload":"{payload}"}},"streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0"}}"#
    )
}

fn media_path(c: &mut Criterion) {
    let frame = inbound_frame();
    c.bench_function("inbound media: parse", |b| {
        b.iter(|| {
            let event = parse_stream_event(black_box(&frame));
            black_box(event.is_ok())
        })
    });
    let mut decoded = [0u8; 160];
    c.bench_function("inbound media: parse + base64 decode", |b| {
        b.iter(|| {
            if let Ok(StreamEvent::Media { payload, .. }) = parse_stream_event(black_box(&frame)) {
                let _ = base64::engine::general_purpose::STANDARD
                    .decode_slice(payload.as_bytes(), &mut decoded);
            }
            black_box(decoded[0])
        })
    });
    let audio = PromptAudio::from_mulaw(vec![0x55; 480 * 100]);
    c.bench_function(
        "outbound media: serialize one 20 ms-aligned 480 ms message",
        |b| {
            b.iter(|| {
                let text = Outbound::Media {
                    stream_sid: "MZ18ad3ab5a668481ce02b83e7395059f0",
                    media: OutboundMedia {
                        payload: audio.base64_chunks(black_box(8), 8),
                    },
                }
                .to_json();
                black_box(text.len())
            })
        },
    );
    c.bench_function("outbound media: serialize one 60 ms message", |b| {
        b.iter(|| {
            let text = Outbound::Media {
                stream_sid: "MZ18ad3ab5a668481ce02b83e7395059f0",
                media: OutboundMedia {
                    payload: audio.base64_chunks(black_box(8), 1),
                },
            }
            .to_json();
            black_box(text.len())
        })
    });
}

fn mulaw(c: &mut Criterion) {
    let frame: Vec<u8> = (0..160u32).map(|n| (n * 37 % 256) as u8).collect();
    let mut samples = Vec::with_capacity(160);
    c.bench_function("μ-law: decode one 20 ms frame (160 bytes)", |b| {
        b.iter(|| {
            ulaw::decode_into(black_box(&frame), &mut samples);
            black_box(samples[0])
        })
    });
    ulaw::decode_into(&frame, &mut samples);
    let mut encoded = Vec::with_capacity(160);
    c.bench_function("μ-law: encode one 20 ms frame (160 samples)", |b| {
        b.iter(|| {
            ulaw::encode_into(black_box(&samples), &mut encoded);
            black_box(encoded[0])
        })
    });
}

criterion_group!(benches, media_path, mulaw);
criterion_main!(benches);
