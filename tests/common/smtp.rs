//! A real SMTP server for tests: Python's aiosmtpd (`tests/fixtures/smtp_sink.py`) on a free
//! local port, saving each accepted message to a file in its own directory. Recipients
//! `reject@…` are refused with 550 and `later@…` with 451. Killed, and its directory removed,
//! when the sink is dropped.
//!
//! The interpreter is `$SWITCHBOARD_TEST_PYTHON`, else the first of `python3` and
//! `/usr/bin/python3` that has aiosmtpd (`.ci/run` installs Debian's `python3-aiosmtpd`, which
//! the system Python sees even when another `python3` comes first on the PATH).

use super::manifest_dir;
use super::process::free_port;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct SmtpSink {
    pub port: u16,
    pub dir: PathBuf,
    child: Child,
}

/// One message as the server received it, with the headers the tests look at decoded.
#[derive(Debug, Clone)]
pub struct Received {
    pub raw: Vec<u8>,
    pub subject: Option<String>,
    /// Addresses of `To`.
    pub to: Vec<String>,
    /// Without angle brackets, as mail-parser gives them.
    pub message_id: Option<String>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    /// The first text/plain body, decoded.
    pub text: Option<String>,
}

impl Received {
    pub fn parse(raw: Vec<u8>) -> Received {
        let parsed = mail_parser::MessageParser::default()
            .parse(&raw)
            .expect("a parsable message");
        let ids = |v: &mail_parser::HeaderValue<'_>| -> Vec<String> {
            v.as_text_list()
                .map(|l| l.iter().map(|s| s.to_string()).collect())
                .unwrap_or_default()
        };
        let received = Received {
            subject: parsed.subject().map(str::to_owned),
            to: parsed
                .to()
                .map(|a| a.iter().filter_map(|x| x.address().map(str::to_owned)).collect())
                .unwrap_or_default(),
            message_id: parsed.message_id().map(str::to_owned),
            in_reply_to: ids(parsed.in_reply_to()),
            references: ids(parsed.references()),
            text: parsed.body_text(0).map(|t| t.into_owned()),
            raw: Vec::new(),
        };
        Received { raw, ..received }
    }

    /// A header's raw value (unfolded, trimmed), by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<String> {
        let text = String::from_utf8_lossy(&self.raw);
        let head = text.split("\r\n\r\n").next().unwrap_or_default().replace("\r\n ", " ");
        head.split("\r\n").find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// The Python that has aiosmtpd.
fn python() -> String {
    if let Ok(p) = std::env::var("SWITCHBOARD_TEST_PYTHON") {
        return p;
    }
    for candidate in ["python3", "/usr/bin/python3"] {
        let ok = Command::new(candidate)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return candidate.to_owned();
        }
    }
    panic!(
        "no Python with aiosmtpd found (tried python3 and /usr/bin/python3): \
         apt-get install python3-aiosmtpd, or pip install aiosmtpd (.ci/run does this)"
    );
}

impl SmtpSink {
    /// Starts the server and waits until its port accepts connections.
    pub async fn start() -> SmtpSink {
        let python = python();
        let dir = std::env::temp_dir().join(format!("switchboard-smtp-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create the sink's directory");
        let port = free_port();
        let child = Command::new(&python)
            .arg(manifest_dir().join("tests/fixtures/smtp_sink.py"))
            .arg(port.to_string())
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(dir.join("server.log"))
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            )
            .spawn()
            .expect("start the SMTP sink");
        let mut sink = SmtpSink { port, dir, child };
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = sink.child.try_wait() {
                panic!("the SMTP sink exited with {status}: {}", sink.log());
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return sink;
            }
            if start.elapsed() > Duration::from_secs(20) {
                panic!("the SMTP sink did not listen on {port} within 20 s: {}", sink.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `smtp://127.0.0.1:PORT` (plain SMTP).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// The messages received so far, oldest first.
    pub fn received(&self) -> Vec<Received> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|f| f.extension().is_some_and(|e| e == "eml"));
        files.sort();
        files
            .into_iter()
            .filter_map(|f| std::fs::read(f).ok())
            .map(Received::parse)
            .collect()
    }

    /// Waits until at least `n` messages have arrived and returns them; panics after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let start = Instant::now();
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            if start.elapsed() > timeout {
                panic!(
                    "{} of {n} messages after {timeout:?}; server log: {}",
                    got.len(),
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
