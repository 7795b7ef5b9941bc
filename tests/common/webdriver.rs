//! A minimal W3C WebDriver client for the browser tests: chromedriver as a child process on a
//! free port, and sessions of headless Chromium driven over WebDriver's JSON-over-HTTP protocol
//! (with the tools' `HttpClient`, no browser-automation crate).
//!
//! Only what the tests use: new session, navigate, find by CSS, click, type, read text and
//! attributes, key presses, run a script, wait until something holds, screenshot, end the session.

use base64::Engine;
use serde_json::{Value, json};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use switchboard_tools::client::HttpClient;
use tokio::sync::Mutex;

pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// The key WebDriver sends for Enter, and for Escape.
pub const ENTER: &str = "\u{E007}";
pub const ESCAPE: &str = "\u{E00C}";
/// How W3C WebDriver names an element reference in JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver's path when the browser tests can run here. Without it, a test in CI (`CI` set)
/// fails; elsewhere it prints SKIPPED and the caller returns.
pub fn chromedriver_or_skip(test: &str) -> Option<PathBuf> {
    let driver = Path::new(CHROMEDRIVER);
    if driver.exists() && Path::new(CHROMIUM).exists() {
        return Some(driver.to_path_buf());
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{test}: {CHROMEDRIVER} or {CHROMIUM} is missing, and CI must run the browser tests (apt-get install -y chromium chromium-driver)"
        );
    }
    println!(
        "SKIPPED {test}: {CHROMEDRIVER} or {CHROMIUM} not found; install them (apt-get install -y chromium chromium-driver) to run it"
    );
    None
}

#[derive(Debug, thiserror::Error)]
pub enum WebDriverError {
    #[error("HTTP to chromedriver failed: {0}")]
    Http(#[from] switchboard_tools::client::ClientError),
    #[error("{status} {error}: {message}")]
    Command {
        status: u16,
        error: String,
        message: String,
    },
    #[error("unexpected reply from chromedriver: {0}")]
    Reply(String),
}

impl WebDriverError {
    /// An element not (yet) there: what a wait retries on.
    pub fn is_no_such_element(&self) -> bool {
        matches!(self, WebDriverError::Command { error, .. } if error == "no such element" || error == "stale element reference")
    }
}

pub type Result<T> = std::result::Result<T, WebDriverError>;

/// chromedriver, listening on its own port; killed on drop (each [`Session`] closes its browser
/// when it ends or is dropped).
pub struct Driver {
    child: Child,
    pub port: u16,
}

/// How a browser session starts.
#[derive(Debug, Clone)]
pub struct Browser {
    pub width: u32,
    pub height: u32,
    /// The browser's language (`navigator.language`), e.g. `en-US` or `zh-CN`.
    pub lang: String,
}

impl Default for Browser {
    fn default() -> Self {
        Browser {
            width: 1400,
            height: 900,
            lang: "en-US".into(),
        }
    }
}

impl Driver {
    /// Starts chromedriver on a free port and waits until it is ready.
    pub async fn start(path: &Path) -> Driver {
        let port = super::process::free_port();
        let mut cmd = Command::new(path);
        cmd.arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().expect("start chromedriver");
        let driver = Driver { child, port };
        let start = Instant::now();
        loop {
            if let Ok(mut http) = HttpClient::new(&driver.base()).map(|c| c.with_timeout(Duration::from_secs(2)))
                && let Ok(reply) = http.get("/status", &[]).await
                && reply.json()["value"]["ready"] == true
            {
                return driver;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "chromedriver on port {port} not ready after 20 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A new headless Chromium session.
    pub async fn session(&self, browser: &Browser) -> Session {
        let http = HttpClient::new(&self.base())
            .expect("chromedriver URL")
            .with_timeout(Duration::from_secs(60));
        let mut session = Session {
            http: Mutex::new(http),
            id: String::new(),
            port: self.port,
        };
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "goog:chromeOptions": {
                        "binary": CHROMIUM,
                        "args": [
                            "--headless=new",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-dev-shm-usage",
                            "--disable-quic",
                            "--no-first-run",
                            "--no-default-browser-check",
                            "--disable-background-networking",
                            "--disable-component-update",
                            "--disable-sync",
                            "--disable-extensions",
                            "--hide-scrollbars",
                            "--force-device-scale-factor=1",
                            format!("--window-size={},{}", browser.width, browser.height),
                            format!("--lang={}", browser.lang),
                        ],
                        "prefs": { "intl.accept_languages": browser.lang },
                    },
                },
            },
        });
        let value = session
            .call("POST", "/session", Some(caps))
            .await
            .expect("new WebDriver session");
        let id = value["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no sessionId in {value}"))
            .to_owned();
        session.id = id;
        session
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An element found in the page (its WebDriver reference).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element(pub String);

/// One browser window; closed by [`Session::quit`], or on drop (a failed test's too).
pub struct Session {
    http: Mutex<HttpClient>,
    /// Empty once ended.
    id: String,
    port: u16,
}

impl Session {
    /// One WebDriver command; its `value`, or the error it answered with.
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let method = hyper::Method::from_bytes(method.as_bytes()).map_err(|e| WebDriverError::Reply(e.to_string()))?;
        let body = match body {
            Some(b) => bytes_of(&b),
            None if method == hyper::Method::POST => bytes_of(&json!({})),
            None => Vec::new(),
        };
        let reply = self
            .http
            .lock()
            .await
            .send(
                method,
                path,
                &[("content-type", "application/json; charset=utf-8")],
                body.into(),
            )
            .await?;
        let v: Value = serde_json::from_slice(&reply.body)
            .map_err(|e| WebDriverError::Reply(format!("{e}: {}", String::from_utf8_lossy(&reply.body))))?;
        let value = v.get("value").cloned().unwrap_or(Value::Null);
        if !reply.status.is_success() {
            return Err(WebDriverError::Command {
                status: reply.status.as_u16(),
                error: value["error"].as_str().unwrap_or("unknown error").to_owned(),
                message: value["message"]
                    .as_str()
                    .unwrap_or_default()
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            });
        }
        Ok(value)
    }

    fn path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.id)
    }

    async fn cmd(&self, method: &str, rest: &str, body: Option<Value>) -> Result<Value> {
        self.call(method, &self.path(rest), body).await
    }

    pub async fn goto(&self, url: &str) -> Result<()> {
        self.cmd("POST", "/url", Some(json!({ "url": url }))).await.map(drop)
    }

    pub async fn refresh(&self) -> Result<()> {
        self.cmd("POST", "/refresh", None).await.map(drop)
    }

    pub async fn find(&self, css: &str) -> Result<Element> {
        let v = self
            .cmd(
                "POST",
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await?;
        element_of(&v)
    }

    pub async fn find_all(&self, css: &str) -> Result<Vec<Element>> {
        let v = self
            .cmd(
                "POST",
                "/elements",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await?;
        v.as_array()
            .ok_or_else(|| WebDriverError::Reply(v.to_string()))?
            .iter()
            .map(element_of)
            .collect()
    }

    pub async fn click(&self, e: &Element) -> Result<()> {
        self.cmd("POST", &format!("/element/{}/click", e.0), None)
            .await
            .map(drop)
    }

    /// Types `text` into the element (focusing it first).
    pub async fn send_keys(&self, e: &Element, text: &str) -> Result<()> {
        self.cmd(
            "POST",
            &format!("/element/{}/value", e.0),
            Some(json!({ "text": text })),
        )
        .await
        .map(drop)
    }

    pub async fn clear(&self, e: &Element) -> Result<()> {
        self.cmd("POST", &format!("/element/{}/clear", e.0), None)
            .await
            .map(drop)
    }

    /// The element's rendered text (empty when hidden).
    pub async fn text(&self, e: &Element) -> Result<String> {
        let v = self.cmd("GET", &format!("/element/{}/text", e.0), None).await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    pub async fn attribute(&self, e: &Element, name: &str) -> Result<Option<String>> {
        let v = self
            .cmd("GET", &format!("/element/{}/attribute/{name}", e.0), None)
            .await?;
        Ok(v.as_str().map(str::to_owned))
    }

    pub async fn is_displayed(&self, e: &Element) -> Result<bool> {
        let v = self.cmd("GET", &format!("/element/{}/displayed", e.0), None).await?;
        Ok(v == true)
    }

    /// Presses keys on whatever has the focus, one character (or WebDriver key code) at a time.
    pub async fn press(&self, keys: &str) -> Result<()> {
        let mut actions = Vec::new();
        for c in keys.chars() {
            actions.push(json!({ "type": "keyDown", "value": c.to_string() }));
            actions.push(json!({ "type": "keyUp", "value": c.to_string() }));
        }
        self.cmd(
            "POST",
            "/actions",
            Some(json!({ "actions": [{ "type": "key", "id": "keyboard", "actions": actions }] })),
        )
        .await?;
        self.cmd("DELETE", "/actions", None).await.map(drop)
    }

    /// Runs `script` (a function body: `return …`) in the page with `args`.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        self.cmd("POST", "/execute/sync", Some(json!({ "script": script, "args": args })))
            .await
    }

    /// A PNG of the window.
    pub async fn screenshot(&self) -> Result<Vec<u8>> {
        let v = self.cmd("GET", "/screenshot", None).await?;
        let b64 = v.as_str().ok_or_else(|| WebDriverError::Reply(v.to_string()))?;
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| WebDriverError::Reply(e.to_string()))
    }

    /// Writes a screenshot to `path` (creating its directory).
    pub async fn screenshot_to(&self, path: &Path) -> Result<()> {
        let png = self.screenshot().await?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| WebDriverError::Reply(e.to_string()))?;
        }
        std::fs::write(path, png).map_err(|e| WebDriverError::Reply(e.to_string()))
    }

    /// Polls `check` every 100 ms until it gives a value; panics after `timeout` naming `what`
    /// and the last answer.
    pub async fn wait_until<T, F, Fut>(&self, what: &str, timeout: Duration, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>>>,
    {
        let start = Instant::now();
        loop {
            let last = match check().await {
                Ok(Some(v)) => return v,
                Ok(None) => "not yet".to_owned(),
                Err(e) if e.is_no_such_element() => e.to_string(),
                Err(e) => panic!("waiting for {what}: {e}"),
            };
            if start.elapsed() > timeout {
                let url = self.execute("return location.href", vec![]).await.ok();
                panic!("timed out after {timeout:?} waiting for {what} ({last}; page {url:?})");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until an element matching `css` is there and displayed; returns it.
    pub async fn wait_visible(&self, css: &str, timeout: Duration) -> Element {
        self.wait_until(&format!("{css} visible"), timeout, || async {
            let e = self.find(css).await?;
            Ok(self.is_displayed(&e).await?.then_some(e))
        })
        .await
    }

    /// Clicks the element matching `css` once it is there and displayed, finding it again if
    /// the page redrew it in between.
    pub async fn click_when(&self, css: &str, timeout: Duration) {
        self.wait_until(&format!("a click on {css}"), timeout, || async {
            let e = self.find(css).await?;
            if !self.is_displayed(&e).await? {
                return Ok(None);
            }
            self.click(&e).await.map(Some)
        })
        .await
    }

    /// Waits until the text of the element matching `css` satisfies `ok`; returns the text.
    pub async fn wait_text(&self, css: &str, timeout: Duration, ok: impl Fn(&str) -> bool) -> String {
        self.wait_until(&format!("the text of {css}"), timeout, || async {
            let e = self.find(css).await?;
            let text = self.text(&e).await?;
            Ok(ok(&text).then_some(text))
        })
        .await
    }

    /// Ends the session and closes its browser.
    pub async fn quit(mut self) {
        let _ = self.cmd("DELETE", "", None).await;
        self.id.clear();
    }
}

impl Drop for Session {
    /// A session not ended (a test panicked): ends it with a blocking request, so its browser
    /// does not outlive the test.
    fn drop(&mut self) {
        use std::io::{Read, Write};
        if self.id.is_empty() {
            return;
        }
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let request = format!(
            "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.id, self.port
        );
        if stream.write_all(request.as_bytes()).is_ok() {
            let _ = stream.read_to_end(&mut Vec::new());
        }
    }
}

fn bytes_of(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

fn element_of(v: &Value) -> Result<Element> {
    v[ELEMENT_KEY]
        .as_str()
        .map(|id| Element(id.to_owned()))
        .ok_or_else(|| WebDriverError::Reply(format!("not an element: {v}")))
}
