//! One step of the call engine: a caller at a menu presses a key and the engine answers with
//! the next menu's prompt (`Call::handle` with `Event::Digit`), and the prompt's end arming the
//! first-digit timer (`Event::PlaybackDone`). Pure computation: no I/O, no clock.
//!
//! Run with `cargo bench --bench engine`.

use std::hint::black_box;
use std::sync::Arc;

use careline::config::Config;
use careline::ivr::{Action, Call, Event, Flow};
use criterion::{Criterion, criterion_group, criterion_main};

/// Two menus leading to each other, as in config/load.toml.
const FLOW: &str = r#"
[server]
public_url = "http://127.0.0.1:8080"

[ivr]
entry = "menu_a"
operator = "goodbye"

[nodes.menu_a]
type = "menu"
prompt = ["connecting"]
options = { "1" = "menu_b", "9" = "goodbye" }

[nodes.menu_b]
type = "menu"
prompt = ["queue_position"]
options = { "1" = "menu_a", "9" = "goodbye" }

[nodes.goodbye]
type = "hangup"
prompt = ["goodbye"]
"#;

fn engine(c: &mut Criterion) {
    let config: Config = toml::from_str(FLOW).expect("flow parses");
    let flow = Arc::new(Flow::from_config(&config).expect("flow compiles"));
    let now = jiff::Timestamp::now();
    let mut call = Call::new(flow);
    call.handle(Event::Started, now);
    c.bench_function("engine: key at a menu → next menu's prompt", |b| {
        b.iter(|| {
            let actions = call.handle(black_box(Event::Digit('1')), now);
            debug_assert!(matches!(actions.last(), Some(Action::Play { .. })));
            black_box(actions)
        })
    });
    c.bench_function(
        "engine: key → prompt, then its end → first-digit timer",
        |b| {
            b.iter(|| {
                let actions = call.handle(black_box(Event::Digit('1')), now);
                let playback = actions.iter().find_map(|action| match action {
                    Action::Play { playback, .. } => Some(*playback),
                    _ => None,
                });
                playback.map(|playback| black_box(call.handle(Event::PlaybackDone(playback), now)))
            })
        },
    );
}

criterion_group!(benches, engine);
criterion_main!(benches);
