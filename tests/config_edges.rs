//! `careline check` at the edges of what an admin (or a generator) may write: empty menus, keys
//! nested thousands deep, call flows of ten thousand nodes.

mod config_support;

use careline::config::{Severity, check, parse};
use config_support::{check_source, line_of, write_config};
use tempfile::TempDir;

const HEAD: &str = r#"
[server]
public_url = "https://ivr.example.org"

[prompts]
dir = 'PROMPTS'

[ivr]
entry = "main"
operator = "portal_queue"

[nodes.portal_queue]
type = "queue"
queue = "portal"

[nodes.goodbye]
type = "hangup"
prompt = ["goodbye"]

[queues.portal]
skills = ["portal"]

[[agents]]
id = "anguyen"
name = "Anh Nguyen"
skills = ["portal"]
dial = "+13125550101"
"#;

#[test]
fn an_empty_menu_is_an_error_at_its_prompt_and_its_options() {
    let source = format!(
        "{HEAD}\n[nodes.main]\ntype = \"menu\"\nprompt = []\noptions = {{}}\non_failure = \"goodbye\"\n"
    );
    let (_dir, report) = check_source(&source);
    let errors: Vec<_> = report
        .errors()
        .map(|f| (f.key_path.as_str(), f.line))
        .collect();
    assert_eq!(
        errors,
        [
            ("nodes.main.prompt", Some(line_of(&source, "prompt = []"))),
            ("nodes.main.options", Some(line_of(&source, "options = {}"))),
        ],
        "{report}"
    );
}

#[test]
fn a_dotted_key_thousands_of_parts_deep_is_reported_at_its_line() {
    let deep = vec!["a"; 5000].join(".");
    let source = format!("{HEAD}\n[store]\nkey_prefix = \"careline\"\n{deep} = 1\n");
    let dir = TempDir::new().expect("tempdir");
    let report =
        parse(&dir.path().join("careline.toml"), source.clone()).expect_err("too deep to parse");
    assert_eq!(report.findings.len(), 1, "{report}");
    let finding = &report.findings[0];
    assert_eq!(finding.line, Some(line_of(&source, "a.a.a")), "{finding}");
    assert_eq!(finding.key_path, "store.a…", "{finding}");
    assert!(finding.message.contains("5000 parts"), "{finding}");
    assert!(!finding.message.contains("recursion"), "{finding}");
}

#[test]
fn values_nested_too_deep_are_reported_at_their_line_with_a_short_path() {
    let source = format!(
        "{HEAD}\n[store]\nkey_prefix = {}1{}\n",
        "[".repeat(100),
        "]".repeat(100)
    );
    let dir = TempDir::new().expect("tempdir");
    let report =
        parse(&dir.path().join("careline.toml"), source.clone()).expect_err("too deep to parse");
    let finding = &report.findings[0];
    assert_eq!(finding.line, Some(line_of(&source, "key_prefix = [[")));
    assert_eq!(finding.key_path, "store.key_prefix[0]…", "{finding}");
    assert!(finding.message.contains("nested more than 80"), "{finding}");
}

/// `main` → `n0` → `n1` → … → `n{count-1}` → `last`, each a `say`.
fn chain(count: usize, last: &str) -> String {
    let mut source = format!(
        "{HEAD}\n[nodes.main]\ntype = \"menu\"\nprompt = [\"main_menu\"]\noptions = {{ \"1\" = \"n0\", \"2\" = \"goodbye\" }}\n"
    );
    for n in 0..count {
        let next = if n + 1 < count {
            format!("n{}", n + 1)
        } else {
            last.to_owned()
        };
        source.push_str(&format!(
            "\n[nodes.n{n}]\ntype = \"say\"\nprompt = [\"main_menu\"]\nnext = \"{next}\"\n"
        ));
    }
    source
}

#[test]
fn a_ten_thousand_node_chain_that_ends_in_a_hang_up_passes() {
    let (_dir, report) = check_source(&chain(10_000, "goodbye"));
    assert!(!report.has_errors(), "{report}");
}

#[test]
fn a_ten_thousand_node_chain_that_loops_reports_every_node_at_its_line() {
    // The last node leads back to the first: no node of the chain reaches a person or hangs up.
    let source = chain(10_000, "n0");
    let (_dir, loaded) = write_config(&source);
    let report = check(&loaded);
    let dead_ends: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error && f.message.contains("reaches a person"))
        .collect();
    assert_eq!(dead_ends.len(), 10_000, "one per node of the loop");
    let n9999 = dead_ends
        .iter()
        .find(|f| f.key_path == "nodes.n9999")
        .expect("the last node is reported");
    assert_eq!(n9999.line, Some(line_of(&source, "[nodes.n9999]")));
    assert_eq!(
        report.errors().count(),
        10_000,
        "nothing else is wrong with the chain"
    );
}

const WITH_INTRO: &str = r#"
[nodes.main]
type = "menu"
intro = ["welcome", "INTRO_ID"]
prompt = ["main_menu"]
options = { "1" = "portal_queue", "2" = "goodbye" }
"#;

#[test]
fn intro_prompt_ids_are_checked_like_every_other_prompt() {
    let source = format!("{HEAD}{}", WITH_INTRO.replace("INTRO_ID", "Emergency"));
    let (_dir, report) = check_source(&source);
    let finding = report
        .errors()
        .find(|f| f.key_path == "nodes.main.intro[1]")
        .unwrap_or_else(|| panic!("no error at intro[1]:\n{report}"));
    assert!(finding.message.contains("not made of a-z"), "{finding}");
    assert_eq!(finding.line, Some(line_of(&source, "intro = [")));
}

#[test]
fn an_intro_prompt_without_a_recording_is_reported_at_the_intro() {
    let source = format!("{HEAD}{}", WITH_INTRO.replace("INTRO_ID", "emergency"));
    let (_dir, loaded) = write_config(&source);
    std::fs::remove_file(loaded.prompts_dir().join("en/emergency.wav")).expect("remove");
    let report = check(&loaded);
    let errors: Vec<_> = report.errors().collect();
    assert_eq!(errors.len(), 1, "{report}");
    assert_eq!(errors[0].key_path, "nodes.main.intro[1]");
    assert!(
        errors[0]
            .message
            .contains("`emergency` has no `en` recording"),
        "{}",
        errors[0]
    );
}

#[test]
fn check_decodes_every_recording_and_names_a_corrupt_one_where_it_is_used() {
    let source = format!("{HEAD}{}", WITH_INTRO.replace("INTRO_ID", "emergency"));
    let (_dir, loaded) = write_config(&source);
    let corrupt = loaded.prompts_dir().join("en/main_menu.wav");
    let whole = std::fs::read(&corrupt).expect("read");
    std::fs::write(&corrupt, &whole[..100]).expect("truncate");

    let report = check(&loaded);

    let errors: Vec<_> = report.errors().collect();
    assert_eq!(errors.len(), 1, "{report}");
    let finding = errors[0];
    assert_eq!(finding.key_path, "nodes.main.prompt[0]");
    assert_eq!(
        finding.line,
        Some(line_of(&source, "prompt = [\"main_menu\"]"))
    );
    assert!(
        finding.message.contains(&corrupt.display().to_string())
            && finding.message.contains("not a usable WAV"),
        "{finding}"
    );
}

#[test]
fn a_table_header_thousands_of_parts_deep_is_reported_at_its_line() {
    let deep = vec!["b"; 5000].join(".");
    let source = format!("{HEAD}\n[{deep}]\nx = 1\n");
    let dir = TempDir::new().expect("tempdir");
    let report =
        parse(&dir.path().join("careline.toml"), source.clone()).expect_err("too deep to parse");
    let finding = &report.findings[0];
    assert_eq!(finding.line, Some(line_of(&source, "[b.b.b")), "{finding}");
    assert_eq!(finding.key_path, "b…", "{finding}");
}
