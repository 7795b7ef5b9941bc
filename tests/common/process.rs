//! The real `switchboard` binary as a child process: start it on a harness's prefix and schema,
//! talk to its ops endpoints, stop it with SIGTERM, and check the end state of a load.

use super::Harness;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use switchboard::config::Settings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A port nobody listens on right now (bound and released; fine on a test machine).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

/// Where a child's stderr goes: one log per harness, appended across restarts.
pub fn log_path(s: &Settings) -> PathBuf {
    std::env::temp_dir().join(format!("{}.log", s.topology_prefix))
}

/// `switchboard <args>` on these settings' prefix and schema.
pub fn command(s: &Settings, args: &[&str]) -> Command {
    command_bin(env!("CARGO_BIN_EXE_switchboard"), s, args)
}

/// Any of the crate's binaries (`env!("CARGO_BIN_EXE_…")`) on these settings' prefix and schema.
pub fn command_bin(bin: &str, s: &Settings, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env("SWITCHBOARD_AMQP_URL", &s.amqp_url)
        .env("SWITCHBOARD_DATABASE_URL", &s.database_url)
        .env(
            "SWITCHBOARD_DATABASE_SCHEMA",
            s.database_schema.as_deref().unwrap_or(""),
        )
        .env("SWITCHBOARD_TOPOLOGY_PREFIX", &s.topology_prefix)
        .env("SWITCHBOARD_POLICY", &s.policy_path)
        .env("SWITCHBOARD_DELIVERY_LIMIT", s.delivery_limit.to_string())
        .env("RUST_LOG", "info,lapin=warn");
    cmd
}

/// Runs a one-shot `switchboard <args>` on the harness's prefix and schema (warnings only in
/// its log): (succeeded, stdout, stderr).
pub fn cli(h: &Harness, args: &[&str]) -> (bool, String, String) {
    let out = command(&h.app.settings, args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run the switchboard binary");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A child process that is killed when dropped, so a failing test leaves no worker behind.
pub struct Running(pub Child);

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts `switchboard <args>` in the background, logging to [`log_path`].
pub fn spawn(s: &Settings, args: &[&str], env: &[(&str, String)]) -> Running {
    spawn_bin(env!("CARGO_BIN_EXE_switchboard"), s, args, env)
}

/// Starts one of the crate's binaries in the background, logging to [`log_path`].
pub fn spawn_bin(bin: &str, s: &Settings, args: &[&str], env: &[(&str, String)]) -> Running {
    spawn_bin_logged(bin, s, args, env, &log_path(s))
}

/// Starts one of the crate's binaries in the background, appending its stderr to `log`.
pub fn spawn_bin_logged(bin: &str, s: &Settings, args: &[&str], env: &[(&str, String)], log: &Path) -> Running {
    let mut cmd = command_bin(bin, s, args);
    cmd.stdout(Stdio::null()).stderr(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null()),
    );
    for (k, v) in env {
        cmd.env(k, v);
    }
    Running(cmd.spawn().expect("start the switchboard binary"))
}

/// Runs a one-shot `switchboard <args>` to completion (stdin empty), capturing its output. A
/// command that hangs is killed after five minutes and fails the test, naming the command,
/// rather than holding the whole suite until CI's limit.
pub async fn run_cli(s: &Settings, args: &[&str]) -> std::process::Output {
    let mut cmd = tokio::process::Command::from(command(s, args));
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    match tokio::time::timeout(Duration::from_secs(300), cmd.output()).await {
        Ok(out) => out.expect("run the switchboard binary"),
        Err(_) => panic!("`switchboard {}` did not finish in 300 s (killed)", args.join(" ")),
    }
}

/// `switchboard run` (all stages) with its ops endpoints on `metrics_port`.
pub fn spawn_run(h: &Harness, metrics_port: u16, env: &[(&str, String)]) -> Running {
    let mut all = vec![("SWITCHBOARD_METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))];
    all.extend(env.iter().cloned());
    spawn(&h.app.settings, &["run", "--concurrency", "2"], &all)
}

/// A plain HTTP/1.0 GET; `None` when nothing answers.
pub async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let io = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
            .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = tokio::time::timeout(Duration::from_secs(5), io).await.ok()?.ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_owned()))
}

/// Waits until `/readyz` answers 200; panics with the last answer after `timeout`.
pub async fn wait_ready(port: u16, timeout: Duration) {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < timeout {
        last = http_get(port, "/readyz").await;
        if matches!(last, Some((200, _))) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("not ready after {timeout:?}; last /readyz answer: {last:?}");
}

/// Sends SIGTERM through `kill(1)` (no unsafe code, no libc).
pub fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM {} failed", child.id());
}

/// Waits for the child to exit; panics (after killing it) when it takes longer than `timeout`.
pub async fn wait_exit(child: &mut Child, timeout: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the process did not exit within {timeout:?} of SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The end state of a load of `new` requests that each open a ticket: every one is a ticket
/// with exactly one transition per stage, agent loads add up, queues are drained, nothing is
/// dead. The escalate stage's same-state breaches do not count: under the shipped policy a
/// chat's first reply is due 10 s after it arrives, so a slow run sees them.
pub async fn assert_all_routed_once(h: &Harness, new: i64) {
    assert_eq!(
        h.count("SELECT count(*) FROM tickets").await,
        new,
        "one ticket per request"
    );
    let bad = h
        .count(
            "SELECT count(*) FROM (
               SELECT ticket_id, string_agg(to_state, ',' ORDER BY seq) AS path FROM ticket_transitions
               WHERE actor <> 'escalate' GROUP BY ticket_id) p
             WHERE path NOT IN ('received,classified,prioritized,assigned', 'received,classified,prioritized,queued')",
        )
        .await;
    assert_eq!(bad, 0, "every ticket has exactly one transition per stage");
    assert_eq!(
        h.count(
            "SELECT count(*) FROM agent_loads a WHERE open_tickets <> (SELECT count(*) FROM tickets t WHERE t.assignee = a.id AND t.state <> 'closed')"
        )
        .await,
        0,
        "agent loads were not double counted"
    );
    for stage in ["intake", "classify", "prioritize", "assign"] {
        assert_eq!(h.depth(&h.topo().queue(stage)).await, 0, "{stage} queue drained");
    }
    assert_eq!(h.depth(&h.topo().dead_queue()).await, 0, "nothing was dead-lettered");
}

/// Demo traffic without its thread replies. A reply published right behind its first message
/// can reach the other intake consumer first and then, correctly, opens a ticket of its own;
/// that makes the ticket count depend on timing, and these tests count tickets.
pub fn without_replies(pubs: Vec<switchboard_tools::demo::Publication>) -> Vec<switchboard_tools::demo::Publication> {
    pubs.into_iter()
        .filter(|p| p.kind != switchboard_tools::demo::Kind::Reply)
        .collect()
}

/// The child's log so far (for failure messages).
pub fn log_tail(s: &Settings, lines: usize) -> String {
    let text = std::fs::read_to_string(log_path(s)).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
