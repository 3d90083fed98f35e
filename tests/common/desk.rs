//! A help desk with identity verification and one-time reset codes, on a real server.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use careline::identity::{IdentityService, ImportOptions, Pepper, WebhookSecret, import_file};
use tempfile::TempDir;

use super::TestServer;

pub const PEPPER: &str = "test-pepper-0123456789abcdef0123456789";
pub const SECRET: &str = "test-webhook-secret-0123456789abcdef";

/// Patient P000101 in config/patients.example.csv: born 1948-03-12, ZIP 60601.
pub const DOB: &str = "03121948";
pub const ZIP: &str = "60601";

const FLOW: &str = r#"
[server]
listen = "127.0.0.1:0"
public_url = "PUBLIC_URL"

[prompts]
dir = "PROMPTS"

[ivr]
entry = "main"
operator = "operator"
first_digit_timeout_secs = 2
inter_digit_timeout_secs = 1

[nodes.main]
type = "menu"
prompt = ["main_menu"]
options = { "1" = "verify" }

[nodes.verify]
type = "verify"
identifiers = ["dob", "zip"]
on_success = "reset"
on_failure = "operator"

[nodes.reset]
type = "password_reset"
method = "code"
next = "goodbye"
on_failure = "operator"

[nodes.operator]
type = "say"
prompt = ["operator_hours"]
next = "goodbye"

[nodes.goodbye]
type = "hangup"
prompt = ["goodbye"]

[identity]
directory = { kind = "file", path = "DIRECTORY" }
audit_log = "AUDIT"
max_attempts = 3
lockout_failures = 5

[password_reset]
code_digits = 6
"#;

pub struct Desk {
    pub server: TestServer,
    pub audit: PathBuf,
    _dir: TempDir,
}

pub async fn help_desk() -> Desk {
    help_desk_on(None).await
}

/// A help desk whose store is the Redis at `redis_url` (the embedded store without one).
pub async fn help_desk_on(redis_url: Option<&str>) -> Desk {
    let dir = TempDir::new().expect("tempdir");
    let directory = dir.path().join("directory.jsonl");
    let audit = dir.path().join("audit.jsonl");
    let pepper = Pepper::new(PEPPER).expect("pepper");
    import_file(
        Path::new("config/patients.example.csv"),
        &directory,
        &pepper,
        &ImportOptions {
            today: jiff::civil::date(2026, 11, 25),
            skip_invalid: false,
        },
    )
    .expect("import the example patients");
    let store = super::redis::store_section(redis_url, "careline");
    let flow = format!("{FLOW}\n{store}")
        .replace("DIRECTORY", &directory.display().to_string())
        .replace("AUDIT", &audit.display().to_string());
    let server = TestServer::start_configured(
        &flow,
        &["en"],
        &["main_menu", "operator_hours", "goodbye"],
        |loaded, state| {
            let identity = IdentityService::open(
                &loaded.config,
                |path| path.to_path_buf(),
                Arc::new(Pepper::new(PEPPER).expect("pepper")),
                Some(WebhookSecret::new(SECRET).expect("secret")),
                state.node.store.clone(),
            )
            .expect("identity opens")
            .expect("identity configured")
            .with_metrics(state.node.metrics.clone());
            state.node.identity = Some(Arc::new(identity));
            state.webhook_secret = Some(Arc::new(WebhookSecret::new(SECRET).expect("secret")));
        },
    )
    .await;
    Desk {
        server,
        audit,
        _dir: dir,
    }
}
