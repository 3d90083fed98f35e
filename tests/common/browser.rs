//! A headless Chromium of the test's own, driven over the Chrome DevTools Protocol with the
//! crates already in the tree: the page tests (`tests/dashboard_browser.rs`,
//! `tests/workspace_browser.rs`) open careline's pages in it, evaluate JavaScript, wait for
//! what a person would see, and take screenshots.
//!
//! Needs Debian's `chromium` (`scripts/test` installs it); [`find_chromium`] says whether there
//! is one, so a developer without a browser can still run the suite.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt as _;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How many times a condition on the page is checked, 100 ms apart, before the test fails.
pub const PAGE_CHECKS: u32 = 600;
pub const PAGE_CHECK_EVERY: Duration = Duration::from_millis(100);

/// The `chromium` to run: `CARELINE_CHROMIUM`, else the first of the usual names on `PATH`.
pub fn find_chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CARELINE_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find_map(|dir| {
        ["chromium", "chromium-browser", "google-chrome"]
            .iter()
            .map(|name| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// A headless Chromium of our own, killed when dropped, with its profile in a temp dir.
pub struct Browser {
    _process: tokio::process::Child,
    _profile: tempfile::TempDir,
    devtools_url: String,
}

impl Browser {
    pub async fn launch(binary: &Path) -> Browser {
        let profile = tempfile::TempDir::new().expect("a temp profile dir");
        let mut process = tokio::process::Command::new(binary)
            .arg("--headless")
            // Containers (and CI) run tests as root, where Chromium's sandbox cannot start; the
            // browser only ever loads this test's own page.
            .arg("--no-sandbox")
            .arg("--disable-gpu")
            .arg("--disable-dev-shm-usage")
            .arg("--disable-extensions")
            .arg("--disable-background-networking")
            .arg("--disable-component-update")
            .arg("--disable-sync")
            .arg("--no-first-run")
            .arg("--no-default-browser-check")
            .arg("--hide-scrollbars")
            .arg("--mute-audio")
            // The workspace plays voicemails when a test clicks Play, with no real gesture.
            .arg("--autoplay-policy=no-user-gesture-required")
            .arg("--window-size=1600,1000")
            .arg("--remote-debugging-address=127.0.0.1")
            .arg("--remote-debugging-port=0")
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| panic!("{} does not start: {error}", binary.display()));
        let stderr = process.stderr.take().expect("stderr is piped");
        let (found, mut url) = mpsc::unbounded_channel();
        // Keep reading after the address is found: a full pipe would stall the browser.
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(at) = line.find("ws://") {
                    let _ = found.send(line[at..].trim().to_owned());
                }
            }
        });
        let devtools_url = tokio::time::timeout(Duration::from_secs(60), url.recv())
            .await
            .expect("Chromium prints its DevTools address within 60 s")
            .expect("Chromium prints \"DevTools listening on ws://...\" before exiting");
        Browser {
            _process: process,
            _profile: profile,
            devtools_url,
        }
    }
}

/// A Chrome DevTools Protocol connection, attached to one page.
pub struct Page {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    session: String,
    next_id: u64,
}

impl Page {
    pub async fn open(browser: &Browser) -> Page {
        let (socket, _) = tokio_tungstenite::connect_async(browser.devtools_url.as_str())
            .await
            .expect("the DevTools socket opens");
        let mut page = Page {
            socket,
            session: String::new(),
            next_id: 0,
        };
        let target = page
            .browser_call("Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let target_id = target["targetId"].as_str().expect("a target id").to_owned();
        let attached = page
            .browser_call(
                "Target.attachToTarget",
                json!({"targetId": target_id, "flatten": true}),
            )
            .await;
        page.session = attached["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        page.call("Page.enable", json!({})).await;
        page.call("Runtime.enable", json!({})).await;
        page.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1600, "height": 1000, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await;
        page
    }

    async fn browser_call(&mut self, method: &str, params: Value) -> Value {
        self.send(None, method, params).await
    }

    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.send(Some(&session), method, params).await
    }

    /// Send one command and wait for its answer, skipping the events in between.
    async fn send(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("DevTools takes the command");
        let answer = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(message) = self.socket.next().await {
                let Ok(Message::Text(text)) = message else {
                    continue;
                };
                let Ok(value) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                if value["id"] == json!(id) {
                    return value;
                }
            }
            panic!("the DevTools socket closed during {method}");
        })
        .await
        .unwrap_or_else(|_| panic!("DevTools did not answer {method} within 60 s"));
        if let Some(error) = answer.get("error") {
            panic!("{method} failed: {error}");
        }
        answer["result"].clone()
    }

    /// The value of a JavaScript expression in the page.
    pub async fn evaluate(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("`{expression}` threw: {exception}");
        }
        result["result"]["value"].clone()
    }

    /// Check `expression` until it equals `expected`; fail after [`PAGE_CHECKS`] tries.
    pub async fn until(&mut self, expression: &str, expected: Value) {
        let mut last = Value::Null;
        for _ in 0..PAGE_CHECKS {
            last = self.evaluate(expression).await;
            if last == expected {
                return;
            }
            tokio::time::sleep(PAGE_CHECK_EVERY).await;
        }
        let text = self.evaluate("document.body.innerText").await;
        panic!("`{expression}` stayed {last}, never {expected}; the page reads:\n{text}");
    }

    pub async fn screenshot(&mut self, path: &Path) {
        let shot = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("screenshot is base64");
        std::fs::write(path, png).expect("the screenshot is written");
    }
}
