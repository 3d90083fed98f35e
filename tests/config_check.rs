//! `careline check` as an admin meets it: every problem in a configuration at once, each at the
//! key path and line where the admin has to fix it.

mod config_support;

use std::fs;
use std::path::{Path, PathBuf};

use careline::config::{self, Finding, LoadedConfig, Node, Report, Severity, check, parse};
use careline::ivr::prompts::system_prompts;
use tempfile::TempDir;

/// A prompts directory with a short valid `.wav` for each id in each language (check decodes
/// every recording).
fn prompts_dir(root: &Path, languages: &[&str], ids: &[String]) -> PathBuf {
    let dir = root.join("prompts");
    for language in languages {
        fs::create_dir_all(dir.join(language)).expect("create language folder");
        for id in ids {
            config_support::write_wav(&dir.join(language).join(format!("{id}.wav")));
        }
    }
    dir
}

/// Every prompt id a configuration plays, system prompts included.
fn prompt_ids(config: &config::Config) -> Vec<String> {
    let mut ids: Vec<String> = config
        .nodes
        .values()
        .flat_map(|node| node.prompts().cloned())
        .chain(config.queues.values().filter_map(|q| q.hold_prompt.clone()))
        .chain(system_prompts().map(str::to_owned))
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

fn load(dir: &TempDir, source: &str) -> Result<LoadedConfig, Report> {
    let path = dir.path().join("careline.toml");
    fs::write(&path, source).expect("write config");
    parse(&path, source.to_owned())
}

/// 1-based line of the first line containing `marker`.
fn line_of(source: &str, marker: &str) -> usize {
    source
        .lines()
        .position(|line| line.contains(marker))
        .unwrap_or_else(|| panic!("marker {marker:?} not in the test config"))
        + 1
}

fn find<'r>(report: &'r Report, severity: Severity, key_path: &str, says: &str) -> &'r Finding {
    report
        .findings
        .iter()
        .find(|f| f.severity == severity && f.key_path == key_path && f.message.contains(says))
        .unwrap_or_else(|| {
            panic!("no {severity:?} at {key_path} saying {says:?}; the report was:\n{report}")
        })
}

#[test]
fn the_example_configuration_passes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut loaded = config::load(&root.join("config/careline.toml")).expect("example parses");
    let prompts = TempDir::new().expect("tempdir");
    let ids = prompt_ids(&loaded.config);
    let mut languages = vec![loaded.config.prompts.default_language.clone()];
    for node in loaded.config.nodes.values() {
        if let Node::Language(node) = node {
            languages.push(node.language.clone());
        }
    }
    let languages: Vec<&str> = languages.iter().map(String::as_str).collect();
    loaded.config.prompts.dir = prompts_dir(prompts.path(), &languages, &ids);

    let report = check(&loaded);

    assert!(!report.has_errors(), "the example has errors:\n{report}");
}

const BROKEN: &str = r##"
[server]
listen = "localhost:8080"
public_url = "ftp://ivr.example.org"

[prompts]
dir = 'PROMPTS'
default_language = "en"

[ivr]
entry = "main"
operator = "front_desk"
repeat_key = "#"
first_digit_timeout_secs = 3

[nodes.main]
type = "menu"
prompt = ["welcome", "main_menu"]
options = { "1" = "billing", "12" = "front_desk", "#" = "front_desk", "2" = "Reset", "3" = "collect_mrn", "4" = "to_spanish", "5" = "front_desk" }

[nodes.Reset]
type = "password_reset"
method = "portal"
next = "goodbye"

[nodes.collect_mrn]
type = "collect"
prompt = ["enter_account"]
min_digits = 8
max_digits = 6
next = "check_identity"

[nodes.check_identity]
type = "verify"
identifiers = ["mrn", "zip"]
on_success = "goodbye"
on_failure = "front_desk"

[nodes.to_spanish]
type = "language"
language = "es"
next = "main"

[nodes.front_desk]
type = "queue"
queue = "frontdesk"

[nodes.orphan]
type = "say"
prompt = ["goodbye"]
next = "loop_back"

[nodes.loop_back]
type = "say"
prompt = ["goodbye"]
next = "orphan"

[nodes.after_hours]
type = "schedule"
schedule = "weekend"
open = "front_desk"
closed = "goodbye"

[nodes.goodbye]
type = "hangup"
prompt = ["goodbye"]

[queues.front_desk]
skills = ["portal", "klingon"]
schedule = "helpdesk"
when_closed = "after_hours"
hold_prompt = "hold_music"

[schedules.helpdesk]
timezone = "America/Chicgo"
hours = [
  { days = "mon-fri", from = "07:00", to = "19:00" },
  { days = "sat", from = "9:00", to = "13:00" },
]

[[agents]]
id = "anguyen"
name = "Anh Nguyen"
skills = ["portal"]
shift = "helpdesk"
dial = "+13125550101"
client = "anh"

[[agents]]
id = "anguyen"
name = "Another Anh"
skills = ["portal"]
shift = "nights"
sip = "sip:anh@pbx.example.org"
"##;

#[test]
fn a_broken_configuration_reports_every_problem_at_once_with_its_place() {
    let dir = TempDir::new().expect("tempdir");
    // English recordings exist except two the menus name and one the engine plays; Spanish has
    // no folder at all.
    let ids: Vec<String> = ["welcome", "goodbye", "hold_music"]
        .into_iter()
        .map(str::to_owned)
        .chain(
            system_prompts()
                .filter(|id| *id != "no_input")
                .map(str::to_owned),
        )
        .collect();
    let prompts = prompts_dir(dir.path(), &["en"], &ids);
    let source = BROKEN.replace("PROMPTS", &prompts.display().to_string());
    let loaded = load(&dir, &source).expect("broken config still parses");

    let report = check(&loaded);

    let error = |key_path: &str, says: &str, marker: &str| {
        let finding = find(&report, Severity::Error, key_path, says);
        assert_eq!(
            finding.line,
            Some(line_of(&source, marker)),
            "line of {key_path}: {finding}"
        );
        assert_eq!(finding.file, dir.path().join("careline.toml"));
        assert!(!finding.hint.is_empty(), "{finding} has no hint");
    };
    error("server.listen", "not an IP address and port", "listen =");
    error("server.public_url", "not an http", "public_url =");
    error(
        "nodes.main.options.\"1\"",
        "no node `billing`",
        "options = {",
    );
    error("nodes.main.options.\"12\"", "not a key", "options = {");
    error("nodes.main.options.\"#\"", "repeat key", "options = {");
    error("nodes.Reset", "not made of a-z", "[nodes.Reset]");
    error("nodes.Reset", "without verifying", "[nodes.Reset]");
    error("nodes.Reset.method", "portal", "method = \"portal\"");
    error(
        "nodes.collect_mrn.min_digits",
        "more than max_digits",
        "min_digits = 8",
    );
    error(
        "nodes.check_identity.identifiers",
        "date of birth",
        "identifiers =",
    );
    error(
        "nodes.check_identity",
        "[identity]",
        "[nodes.check_identity]",
    );
    error(
        "nodes.front_desk.queue",
        "no queue `frontdesk`",
        "queue = \"frontdesk\"",
    );
    error("nodes.orphan", "no call can reach", "[nodes.orphan]");
    error("nodes.loop_back", "no call can reach", "[nodes.loop_back]");
    error(
        "nodes.orphan",
        "reaches a person or a hang-up",
        "[nodes.orphan]",
    );
    error(
        "nodes.loop_back",
        "reaches a person or a hang-up",
        "[nodes.loop_back]",
    );
    error(
        "nodes.after_hours.schedule",
        "no schedule `weekend`",
        "schedule = \"weekend\"",
    );
    error(
        "schedules.helpdesk.timezone",
        "America/Chicgo",
        "timezone =",
    );
    error("schedules.helpdesk.hours[1].from", "9:00", "days = \"sat\"");
    error("agents[0]", "2 ways", "[[agents]]");
    error(
        "agents[1].shift",
        "no schedule `nights`",
        "shift = \"nights\"",
    );
    error(
        "nodes.main.prompt[1]",
        "`main_menu` has no `en` recording",
        "prompt = [\"welcome\", \"main_menu\"]",
    );
    error(
        "nodes.collect_mrn.prompt[0]",
        "`enter_account`",
        "prompt = [\"enter_account\"]",
    );
    error("prompts.dir", "system prompt `no_input`", "dir =");
    error(
        "nodes.to_spanish.language",
        "no prompts for language `es`",
        "language = \"es\"",
    );

    let warning = |key_path: &str, says: &str| find(&report, Severity::Warning, key_path, says);
    warning("nodes.main.options", "7 options");
    warning("queues.front_desk.skills", "`klingon`");
    warning("ivr.first_digit_timeout_secs", "short for older callers");

    // The duplicate id is reported on the second agent's `id` line, not the first's.
    let duplicate = find(
        &report,
        Severity::Error,
        "agents[1].id",
        "already used by agents[0]",
    );
    assert_eq!(
        duplicate.line,
        Some(line_of(&source, "name = \"Another Anh\"") - 1)
    );
    assert_eq!(
        report.errors().count(),
        26,
        "unexpected extra errors:\n{report}"
    );
}

#[test]
fn the_report_prints_file_line_key_path_and_what_to_do() {
    let dir = TempDir::new().expect("tempdir");
    let source = BROKEN.replace("PROMPTS", &dir.path().join("nowhere").display().to_string());
    let report = check(&load(&dir, &source).expect("parses"));
    let missing_dir = find(&report, Severity::Error, "prompts.dir", "does not exist");
    assert_eq!(
        missing_dir.to_string(),
        format!(
            "error: {}:{}: prompts.dir: the prompt directory {} does not exist ({})",
            dir.path().join("careline.toml").display(),
            line_of(&source, "dir ="),
            dir.path().join("nowhere").display(),
            missing_dir.hint
        )
    );
    assert!(
        !report
            .findings
            .iter()
            .any(|f| f.message.contains("recording")),
        "one finding for a missing directory, not one per file"
    );
}

const MINIMAL: &str = r#"
[server]
public_url = "https://ivr.example.org"

[prompts]
dir = 'PROMPTS'

[ivr]
entry = "main"
operator = "portal_queue"

[nodes.main]
type = "menu"
prompt = ["main_menu"]
options = { "1" = "portal_queue", "2" = "goodbye" }

[nodes.portal_queue]
type = "queue"
queue = "portal"

[nodes.goodbye]
type = "hangup"

[queues.portal]
skills = ["portal"]

[[agents]]
id = "anguyen"
name = "Anh Nguyen"
skills = ["portal"]
dial = "+13125550101"
"#;

/// MINIMAL with `edit` applied, checked against a complete prompts folder.
fn check_minimal(edit: impl Fn(&str) -> String) -> (String, Result<Report, Report>) {
    let dir = TempDir::new().expect("tempdir");
    let ids: Vec<String> = ["main_menu", "goodbye", "sorry"]
        .into_iter()
        .map(str::to_owned)
        .chain(system_prompts().map(str::to_owned))
        .collect();
    let prompts = prompts_dir(dir.path(), &["en"], &ids);
    let source = edit(MINIMAL).replace("PROMPTS", &prompts.display().to_string());
    let result = load(&dir, &source).map(|loaded| check(&loaded));
    (source, result)
}

#[test]
fn a_small_sound_configuration_has_no_findings() {
    let (_, result) = check_minimal(str::to_owned);
    let report = result.expect("parses");
    assert!(report.findings.is_empty(), "unexpected findings:\n{report}");
}

#[test]
fn a_typo_in_a_node_key_is_reported_at_its_line() {
    let (source, result) = check_minimal(|source| {
        source.replace("prompt = [\"main_menu\"]", "promt = [\"main_menu\"]")
    });
    let report = result.expect_err("unknown key is a parse error");
    let finding = find(
        &report,
        Severity::Error,
        "nodes.main.promt",
        "unknown key `promt`",
    );
    assert_eq!(finding.line, Some(line_of(&source, "promt =")));
    assert!(
        finding.message.contains("`prompt`"),
        "lists the allowed keys: {finding}"
    );
}

#[test]
fn every_node_with_a_type_error_is_reported_not_just_the_first() {
    let (source, result) = check_minimal(|source| {
        source
            .replace("prompt = [\"main_menu\"]", "promt = [\"main_menu\"]")
            .replace(
                "queue = \"portal\"",
                "queue = \"portal\"\npriority = \"high\"",
            )
            .replace("dial = ", "dail = ")
    });
    let report = result.expect_err("parse errors");
    let paths: Vec<(&str, Option<usize>)> = report
        .findings
        .iter()
        .map(|f| (f.key_path.as_str(), f.line))
        .collect();
    assert_eq!(
        paths,
        [
            ("nodes.main.promt", Some(line_of(&source, "promt ="))),
            (
                "nodes.portal_queue.priority",
                Some(line_of(&source, "priority ="))
            ),
            ("agents[0].dail", Some(line_of(&source, "dail ="))),
        ],
        "{report}"
    );
}

#[test]
fn a_menu_key_listed_twice_says_so_at_the_second_entry() {
    let (source, result) = check_minimal(|source| {
        source.replace(
            "options = { \"1\" = \"portal_queue\", \"2\" = \"goodbye\" }",
            "options = { \"1\" = \"portal_queue\", \"2\" = \"goodbye\",\n  \"1\" = \"goodbye\" }",
        )
    });
    let report = result.expect_err("duplicate keys do not parse");
    let finding = find(
        &report,
        Severity::Error,
        "nodes.main.options.\"1\"",
        "listed twice",
    );
    assert_eq!(finding.line, Some(line_of(&source, "\"1\" = \"goodbye\"")));
    assert!(finding.hint.contains("one node"), "{finding}");
}

#[test]
fn a_node_defined_twice_names_both_places() {
    let (source, result) =
        check_minimal(|source| format!("{source}\n[nodes.goodbye]\ntype = \"hangup\"\n"));
    let report = result.expect_err("duplicate tables do not parse");
    let finding = find(&report, Severity::Error, "nodes.goodbye", "defined twice");
    assert_eq!(finding.line, Some(source.lines().count() - 1));
    assert!(
        finding.message.contains(&format!(
            "first on line {}",
            line_of(&source, "[nodes.goodbye]")
        )),
        "{finding}"
    );
}

#[test]
fn a_syntax_error_is_reported_at_its_line() {
    let (source, result) =
        check_minimal(|source| source.replace("type = \"hangup\"", "type = hangup"));
    let report = result.expect_err("syntax error");
    assert_eq!(report.findings.len(), 1, "{report}");
    assert_eq!(
        report.findings[0].line,
        Some(line_of(&source, "type = hangup"))
    );
    assert_eq!(report.findings[0].key_path, "nodes.goodbye.type");
}

#[test]
fn a_repeat_key_must_be_one_keypad_key() {
    let (_, result) = check_minimal(|source| {
        source.replace(
            "operator = \"portal_queue\"",
            "operator = \"portal_queue\"\nrepeat_key = \"**\"",
        )
    });
    let report = result.expect("parses");
    find(
        &report,
        Severity::Error,
        "ivr.repeat_key",
        "not a single key",
    );
}

#[test]
fn a_collect_node_that_accepts_no_digits_is_an_error() {
    let (_, result) = check_minimal(|source| {
        format!(
            "{}\n[nodes.account]\ntype = \"collect\"\nprompt = [\"main_menu\"]\nmax_digits = 0\nnext = \"goodbye\"\n",
            source.replace("\"2\" = \"goodbye\"", "\"2\" = \"account\"")
        )
    });
    let report = result.expect("parses");
    find(
        &report,
        Severity::Error,
        "nodes.account.max_digits",
        "accepts no digits",
    );
}

#[test]
fn a_menu_whose_zero_leads_nowhere_human_warns_but_passes() {
    let (_, result) = check_minimal(|source| {
        format!(
            "{}\n[nodes.more]\ntype = \"menu\"\nprompt = [\"main_menu\"]\noptions = {{ \"0\" = \"sorry\", \"9\" = \"goodbye\" }}\n\n[nodes.sorry]\ntype = \"say\"\nprompt = [\"sorry\"]\nnext = \"goodbye\"\n",
            source.replace("\"2\" = \"goodbye\"", "\"2\" = \"more\"")
        )
    });
    let report = result.expect("parses");
    find(
        &report,
        Severity::Warning,
        "nodes.more",
        "no way to reach a person",
    );
    assert!(!report.has_errors(), "warnings only:\n{report}");
}

#[test]
fn a_long_menu_warns_but_passes() {
    let (_, result) = check_minimal(|source| {
        source.replace(
            "\"2\" = \"goodbye\" }",
            "\"2\" = \"goodbye\", \"3\" = \"goodbye\", \"4\" = \"goodbye\", \"5\" = \"goodbye\", \"6\" = \"goodbye\" }",
        )
    });
    let report = result.expect("parses");
    find(
        &report,
        Severity::Warning,
        "nodes.main.options",
        "6 options",
    );
    assert!(!report.has_errors(), "warnings only:\n{report}");
}

#[test]
fn a_queue_nobody_can_answer_warns() {
    let (_, result) = check_minimal(|source| {
        source.replace(
            "skills = [\"portal\"]\n\n",
            "skills = [\"portal\", \"ios\"]\n\n",
        )
    });
    let report = result.expect("parses");
    find(&report, Severity::Warning, "queues.portal.skills", "`ios`");
}

#[test]
fn an_unknown_node_suggests_the_closest_name() {
    let (_, result) =
        check_minimal(|source| source.replace("entry = \"main\"", "entry = \"mian\""));
    let report = result.expect("parses");
    let finding = find(&report, Severity::Error, "ivr.entry", "no node `mian`");
    assert!(finding.hint.contains("did you mean `main`"), "{finding}");
}
