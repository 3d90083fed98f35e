//! Whole calls through the real server on loopback, placed by the Twilio-faithful test caller.

mod common;

use std::time::Duration;

use careline::caller::{
    CallEnd, CallOptions, Heard, KeySignalling, MediaStreamClient, StreamIds, TranscriptEntry,
    place_call,
};
use careline::twilio::signature;
use common::{TestServer, call, call_keying, script};
use tokio_tungstenite::tungstenite::Message;

/// A caller who asks for information, then enters an account number...
const WALK: &str = "w2,w1,w12345#";
/// ...hears these prompts, and goodbye before the hang-up.
const WALK_HEARS: [&str; 8] = [
    "welcome",
    "main_menu",
    "info",
    "welcome",
    "main_menu",
    "enter_account",
    "thanks",
    "goodbye",
];

#[tokio::test]
async fn a_caller_walks_the_menus_and_hears_goodbye_before_the_hang_up() {
    let server = TestServer::start().await;
    let report = call_keying(&server, WALK, 30).await;
    assert_eq!(report.played_prompts(), WALK_HEARS);
    assert_eq!(report.ended, CallEnd::Hangup);
    let close = report.stream_closes.first().expect("one stream");
    assert!(close.by_server);
    assert_eq!(close.code, Some(1000));
    assert!(!report.audio.is_empty(), "the caller heard audio");
}

#[tokio::test]
async fn a_key_during_a_prompt_cuts_it_off() {
    let server = TestServer::start().await;
    let report = call_keying(&server, "0", 30).await;
    assert_eq!(
        report.interrupted_prompts().first().map(String::as_str),
        Some("welcome")
    );
    assert_eq!(report.played_prompts(), ["operator_hours", "goodbye"]);
}

#[tokio::test]
async fn silence_brings_a_reprompt_and_then_a_person() {
    let server = TestServer::start().await;
    let report =
        place_call(CallOptions::new(&server.base_url).max_duration(Duration::from_secs(30)))
            .await
            .expect("call completes");
    assert_eq!(
        report.played_prompts(),
        [
            "welcome",
            "main_menu",
            "no_input",
            "welcome",
            "main_menu",
            "operator_hours",
            "goodbye"
        ]
    );
}

#[tokio::test]
async fn spanish_callers_hear_spanish_prompts() {
    let server = TestServer::start().await;
    let report = place_call(
        CallOptions::new(&server.base_url)
            .digits(script("w9,w0"))
            .max_duration(Duration::from_secs(30)),
    )
    .await
    .expect("call completes");
    let heard = report.played_prompts_with_language();
    assert!(
        heard.contains(&("es".to_owned(), "welcome".to_owned())),
        "{heard:?}"
    );
    assert_eq!(heard.last(), Some(&("es".to_owned(), "goodbye".to_owned())));
}

#[tokio::test]
async fn signed_calls_go_through_and_unsigned_requests_are_refused() {
    let token = "12345";
    let server = TestServer::start_with(
        common::SHORT_FLOW,
        &["en", "es"],
        &common::SHORT_PROMPTS,
        Some(token),
    )
    .await;
    let client = reqwest::Client::new();
    let unsigned = client
        .post(format!("{}/twilio/voice", server.base_url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("CallSid=CA1&From=%2B13125550101")
        .send()
        .await
        .expect("request");
    assert_eq!(unsigned.status(), 403);
    let forged = client
        .post(format!("{}/twilio/voice", server.base_url))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
        .body("CallSid=CA1&From=%2B13125550101")
        .send()
        .await
        .expect("request");
    assert_eq!(forged.status(), 403);

    let refused = MediaStreamClient::connect(&server.ws_url(), None, StreamIds::random()).await;
    assert!(refused.is_err(), "an unsigned WebSocket upgrade is refused");
    let wrong =
        MediaStreamClient::connect(&server.ws_url(), Some("wrong"), StreamIds::random()).await;
    assert!(
        wrong.is_err(),
        "a wrongly signed WebSocket upgrade is refused"
    );

    let report = place_call(
        CallOptions::new(&server.base_url)
            .auth_token(token)
            .digits(script("0"))
            .max_duration(Duration::from_secs(30)),
    )
    .await
    .expect("signed call completes");
    assert_eq!(report.ended, CallEnd::Hangup);
    assert_eq!(
        report.played_prompts().last().map(String::as_str),
        Some("goodbye")
    );
}

#[tokio::test]
async fn the_signature_check_accepts_the_url_with_an_explicit_default_port() {
    let token = "12345";
    let params = vec![
        ("CallSid".to_owned(), "CA1234567890ABCDE".to_owned()),
        ("From".to_owned(), "+12349013030".to_owned()),
    ];
    let signed = signature::signature(token, "https://ivr.example.org:443/twilio/voice", &params);
    assert!(signature::validate(
        token,
        "https://ivr.example.org/twilio/voice",
        &params,
        &signed
    ));
}

/// Open a stream for a call the voice webhook announced.
async fn open_stream(server: &TestServer) -> (MediaStreamClient, String) {
    let twiml = reqwest::Client::new()
        .post(format!("{}/twilio/voice", server.base_url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("CallSid=CA0123456789abcdef0123456789abcdef&From=%2B13125550101&To=%2B18005550100")
        .send()
        .await
        .expect("voice webhook")
        .text()
        .await
        .expect("twiml");
    let token = twiml
        .split("name=\"token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("token parameter")
        .to_owned();
    let ids = StreamIds::for_call("AC1", "CA0123456789abcdef0123456789abcdef");
    let client = MediaStreamClient::connect(&server.ws_url(), None, ids)
        .await
        .expect("stream opens");
    (client, token)
}

async fn close_code_within(client: &mut MediaStreamClient, limit: Duration) -> Option<u16> {
    client
        .wait_for_close(limit)
        .await
        .and_then(|close| close.code)
}

#[tokio::test]
async fn media_before_start_is_closed_with_policy_violation() {
    let server = TestServer::start().await;
    let (mut client, _token) = open_stream(&server).await;
    client.send_connected().await.expect("send");
    client.send_media(&[0xFF; 160]).await.expect("send");
    assert_eq!(
        close_code_within(&mut client, Duration::from_secs(5)).await,
        Some(1008)
    );
}

#[tokio::test]
async fn an_oversized_message_is_closed_with_policy_violation() {
    let server = TestServer::start().await;
    let (mut client, token) = open_stream(&server).await;
    client.send_connected().await.expect("send");
    client
        .send_start([("token".to_owned(), token)].into_iter().collect())
        .await
        .expect("send");
    let huge = format!(
        r#"{{"event":"media","streamSid":"x","media":{{"payload":"{}"}}}}"#,
        "A".repeat(100 * 1024)
    );
    let _ = client.send_raw(Message::text(huge)).await;
    assert_eq!(
        close_code_within(&mut client, Duration::from_secs(5)).await,
        Some(1008)
    );
}

#[tokio::test]
async fn junk_on_one_call_does_not_disturb_it_or_another_call() {
    let server = TestServer::start().await;
    let (mut client, token) = open_stream(&server).await;
    client.send_connected().await.expect("send");
    client
        .send_start([("token".to_owned(), token)].into_iter().collect())
        .await
        .expect("send");
    client
        .send_raw(Message::text("{not json"))
        .await
        .expect("send");
    client
        .send_raw(Message::text(r#"{"event":"party","streamSid":"MZ1"}"#))
        .await
        .expect("send");
    client
        .send_raw(Message::binary(vec![0u8; 32]))
        .await
        .expect("send");
    // The junk call still gets its menu.
    let mut heard_prompt = false;
    for _ in 0..200 {
        if let Heard::Audio { bytes } = client.next_event().await
            && bytes > 0
        {
            heard_prompt = true;
            break;
        }
    }
    assert!(heard_prompt, "the call carried on after junk frames");
    // And a clean call alongside completes normally.
    let report = call_keying(&server, "0", 30).await;
    assert_eq!(
        report.played_prompts().last().map(String::as_str),
        Some("goodbye")
    );
}

#[tokio::test]
async fn shutdown_lets_a_call_in_progress_finish() {
    let server = TestServer::start().await;
    let base = server.base_url.clone();
    let call = tokio::spawn(async move {
        place_call(
            CallOptions::new(&base)
                .digits(script("w2,w0"))
                .max_duration(Duration::from_secs(30)),
        )
        .await
    });
    // Let the call reach the media stream, then ask the server to stop.
    tokio::time::sleep(Duration::from_millis(400)).await;
    server.shutdown.cancel();
    let report = call.await.expect("task").expect("call completes");
    assert_eq!(
        report.played_prompts().last().map(String::as_str),
        Some("goodbye")
    );
    tokio::time::timeout(Duration::from_secs(10), server.handle)
        .await
        .expect("server stops after the call")
        .expect("task")
        .expect("serve ok");
    let transcript_has_hang_up = report
        .transcript
        .iter()
        .any(|entry| matches!(entry, TranscriptEntry::StreamClosedByServer));
    assert!(transcript_has_hang_up);
}

async fn call_with_keys(dtmf: &str, signalling: KeySignalling, digits: &str) -> Vec<String> {
    let flow = common::SHORT_FLOW.replace(
        "max_retries = 2",
        &format!("max_retries = 2\ndtmf = \"{dtmf}\""),
    );
    let server = TestServer::start_with(&flow, &["en", "es"], &common::SHORT_PROMPTS, None).await;
    let report = call(
        CallOptions::new(&server.base_url)
            .key_signalling(signalling)
            .digits(script(digits))
            .max_duration(Duration::from_secs(30)),
    )
    .await;
    report.played_prompts()
}

#[tokio::test]
async fn keys_sent_only_as_tones_in_the_audio_work_in_inband_mode() {
    let heard = call_with_keys("inband", KeySignalling::Tones, WALK).await;
    assert_eq!(heard, WALK_HEARS);
}

#[tokio::test]
async fn a_key_sent_both_as_event_and_tone_counts_once() {
    let heard = call_with_keys("both", KeySignalling::Both, WALK).await;
    assert_eq!(heard, WALK_HEARS);
}

#[tokio::test]
async fn tones_are_ignored_in_events_mode() {
    // Only tones, but careline listens to events only: the menu times out to a person.
    let heard = call_with_keys("events", KeySignalling::Tones, "w2").await;
    assert_eq!(heard[2], "no_input");
}
