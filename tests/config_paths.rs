//! Relative paths in a configuration are relative to the configuration file's folder, as
//! documented, not to the directory careline happens to be started from.

mod config_support;

use std::fs;
use std::path::Path;
use std::process::Command;

use careline::config::{DirectoryConfig, load};
use config_support::prompts_for;
use tempfile::TempDir;

const RELATIVE: &str = r#"
[server]
public_url = "https://ivr.example.org"

[prompts]
dir = "sounds"

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

[identity]
directory = { kind = "file", path = "patients/directory.jsonl" }
audit_log = "logs/audit.jsonl"

[recordings]
dir = "voicemail"

[[agents]]
id = "anguyen"
name = "Anh Nguyen"
skills = ["portal"]
dial = "+13125550101"
"#;

/// `<tempdir>/etc/careline/careline.toml` with its prompts in `<tempdir>/etc/careline/sounds`.
fn installed() -> (TempDir, std::path::PathBuf) {
    let root = TempDir::new().expect("tempdir");
    let folder = root.path().join("etc/careline");
    fs::create_dir_all(&folder).expect("config folder");
    let path = folder.join("careline.toml");
    fs::write(&path, RELATIVE).expect("write config");
    let loaded = load(&path).expect("parses");
    prompts_for(&folder, "sounds", &loaded.config);
    (root, path)
}

#[test]
fn every_relative_path_is_relative_to_the_configuration_file() {
    let (root, path) = installed();
    let folder = root.path().join("etc/careline");
    let loaded = load(&path).expect("parses");
    let config = &loaded.config;
    let identity = config.identity.as_ref().expect("[identity]");
    let DirectoryConfig::File { path: directory } = &identity.directory else {
        panic!("a file directory");
    };
    let recordings = config.recordings.as_ref().expect("[recordings]");

    assert_eq!(loaded.prompts_dir(), folder.join("sounds"));
    assert_eq!(
        loaded.resolve(directory),
        folder.join("patients/directory.jsonl")
    );
    assert_eq!(
        loaded.resolve(&identity.audit_log),
        folder.join("logs/audit.jsonl")
    );
    assert_eq!(loaded.resolve(&recordings.dir), folder.join("voicemail"));
    // Absolute paths stay as written.
    assert_eq!(
        loaded.resolve(Path::new("/var/lib/careline")),
        Path::new("/var/lib/careline")
    );
}

#[test]
fn check_finds_the_prompts_when_started_from_another_directory() {
    let (_root, path) = installed();
    let elsewhere = TempDir::new().expect("another working directory");
    let output = Command::new(env!("CARGO_BIN_EXE_careline"))
        .args(["check", "--config"])
        .arg(&path)
        .current_dir(elsewhere.path())
        .output()
        .expect("careline check runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "check failed from another directory:\n{stdout}{stderr}"
    );
    assert!(stdout.contains("OK"), "{stdout}");
}
