//! The inbound Media Streams parser against anything a socket can deliver: arbitrary text,
//! arbitrary bytes, and valid messages with random damage. It never panics, and an error never
//! carries the message's payload (audio, a keyed digit, a parameter).
//!
//! 256 cases per property by default. A longer run:
//!
//! ```sh
//! PROPTEST_CASES=100000 cargo test --release --test wire_properties
//! ```

use careline::twilio::wire::{StreamEvent, parse_stream_event};
use proptest::prelude::*;

/// A secret long enough that finding it in an error message cannot be a coincidence.
fn secret() -> impl Strategy<Value = String> {
    "[A-Za-z0-9+/]{24,64}"
}

/// The five messages Twilio sends, each carrying `secret` where PHI or audio would be.
fn valid_message(kind: u8, secret: &str) -> String {
    match kind % 5 {
        0 => format!(
            r#"{{"event":"media","sequenceNumber":"3","media":{{"track":"inbound","chunk":"1","timestamp":"5","payload":"{secret}"}},"streamSid":"MZ1"}}"#
        ),
        1 => format!(
            r#"{{"event":"dtmf","streamSid":"MZ1","sequenceNumber":"5","dtmf":{{"track":"inbound_track","digit":"{secret}"}}}}"#
        ),
        2 => format!(
            r#"{{"event":"start","sequenceNumber":"1","start":{{"accountSid":"AC1","streamSid":"MZ1","callSid":"CA1","tracks":["inbound"],"mediaFormat":{{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}},"customParameters":{{"token":"{secret}"}}}},"streamSid":"MZ1"}}"#
        ),
        3 => format!(
            r#"{{"event":"mark","sequenceNumber":"4","streamSid":"MZ1","mark":{{"name":"{secret}"}}}}"#
        ),
        _ => format!(
            r#"{{"event":"stop","sequenceNumber":"6","streamSid":"MZ1","stop":{{"accountSid":"AC1","callSid":"CA1"}},"note":"{secret}"}}"#
        ),
    }
}

/// One kind of damage a frame can suffer.
#[derive(Debug, Clone)]
enum Damage {
    Delete(usize),
    Insert(usize, char),
    Replace(usize, char),
    Truncate(usize),
    Duplicate(usize, usize),
}

fn damage() -> impl Strategy<Value = Damage> {
    let special = prop::sample::select(vec![
        '"', '\\', '{', '}', '[', ']', ':', ',', ' ', '\n', '\0', 'é', '😀', 'u', '0',
    ]);
    prop_oneof![
        any::<usize>().prop_map(Damage::Delete),
        (any::<usize>(), special.clone()).prop_map(|(at, c)| Damage::Insert(at, c)),
        (any::<usize>(), special).prop_map(|(at, c)| Damage::Replace(at, c)),
        any::<usize>().prop_map(Damage::Truncate),
        (any::<usize>(), any::<usize>()).prop_map(|(at, len)| Damage::Duplicate(at, len)),
    ]
}

/// Apply `damage` at character positions (so the text stays valid UTF-8, as a text frame is).
fn apply(text: &str, damage: &[Damage]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for step in damage {
        let len = chars.len().max(1);
        match *step {
            Damage::Delete(at) => {
                if !chars.is_empty() {
                    chars.remove(at % chars.len());
                }
            }
            Damage::Insert(at, c) => chars.insert(at % (chars.len() + 1), c),
            Damage::Replace(at, c) => {
                if !chars.is_empty() {
                    let at = at % chars.len();
                    chars[at] = c;
                }
            }
            Damage::Truncate(at) => chars.truncate(at % len),
            Damage::Duplicate(at, count) => {
                if !chars.is_empty() {
                    let at = at % chars.len();
                    let end = (at + count % 16).min(chars.len());
                    let copy: Vec<char> = chars[at..end].to_vec();
                    chars.splice(at..at, copy);
                }
            }
        }
    }
    chars.into_iter().collect()
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = parse_stream_event(&text);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse_stream_event(&text);
    }

    #[test]
    fn json_shaped_text_never_panics(text in r#"[{}\[\]":,a-z0-9 \\]{0,200}"#) {
        let _ = parse_stream_event(&text);
    }

    #[test]
    fn valid_messages_parse_and_carry_their_payload(kind in any::<u8>(), secret in secret()) {
        let text = valid_message(kind, &secret);
        let event = parse_stream_event(&text);
        prop_assert!(event.is_ok(), "{text}: {event:?}");
        match event {
            Ok(StreamEvent::Media { payload, .. }) => prop_assert_eq!(payload, secret.as_str()),
            Ok(StreamEvent::Dtmf { digit, .. }) => prop_assert_eq!(digit, secret.as_str()),
            Ok(StreamEvent::Mark { name, .. }) => prop_assert_eq!(name, secret.as_str()),
            Ok(StreamEvent::Start(start)) => {
                prop_assert_eq!(&start.custom_parameters["token"], &secret);
            }
            _ => {}
        }
    }

    #[test]
    fn damaged_messages_never_panic_and_errors_never_carry_the_payload(
        kind in any::<u8>(),
        secret in secret(),
        damage in prop::collection::vec(damage(), 1..6),
    ) {
        let text = apply(&valid_message(kind, &secret), &damage);
        if let Err(error) = parse_stream_event(&text) {
            let shown = format!("{error} {error:?}");
            // Any 12 characters of the secret would be a leak.
            let leaked = secret
                .as_bytes()
                .windows(12)
                .any(|window| shown.as_bytes().windows(12).any(|part| part == window));
            prop_assert!(!leaked, "error {shown:?} carries part of the payload");
        }
    }
}
