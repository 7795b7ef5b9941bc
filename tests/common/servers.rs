//! Outages of the shared RabbitMQ and PostgreSQL: stop and start them, and guards that bring
//! them back when dropped, even after a failed assertion.
//!
//! A test that stops a server must be the only test in its binary (cargo runs test binaries one
//! after another; tests inside one binary run in parallel).

use std::process::{Command, Stdio};

/// Runs a command to completion; whether it succeeded. Panics when it cannot be started.
pub fn run(cmd: &str, args: &[&str]) -> bool {
    match Command::new(cmd).args(args).status() {
        Ok(s) => s.success(),
        Err(e) => panic!("cannot run {cmd}: {e}"),
    }
}

/// Runs a command without showing its output (a guard's "already running" is no news).
fn quiet(cmd: &str, args: &[&str]) -> std::io::Result<std::process::ExitStatus> {
    Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
}

/// The local cluster's version (`/etc/postgresql/<version>/main`).
pub fn pg_version() -> String {
    let mut versions: Vec<String> = std::fs::read_dir("/etc/postgresql")
        .expect("/etc/postgresql: this test restarts the local PostgreSQL cluster with pg_ctlcluster")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    versions.sort();
    versions.pop().expect("a PostgreSQL cluster under /etc/postgresql")
}

/// `rabbitmqctl stop_app`: every connection to the broker drops.
pub fn stop_rabbitmq() {
    assert!(run("rabbitmqctl", &["stop_app"]), "rabbitmqctl stop_app");
}

/// `rabbitmqctl start_app`, then waits for the broker to finish booting.
pub fn start_rabbitmq() {
    assert!(run("rabbitmqctl", &["start_app"]), "rabbitmqctl start_app");
    let _ = run("rabbitmqctl", &["await_startup"]);
}

pub fn stop_postgres(version: &str) {
    assert!(
        run("pg_ctlcluster", &["--skip-systemctl-redirect", version, "main", "stop"]),
        "pg_ctlcluster stop"
    );
}

pub fn start_postgres(version: &str) {
    assert!(
        run(
            "pg_ctlcluster",
            &["--skip-systemctl-redirect", version, "main", "start"]
        ),
        "pg_ctlcluster start"
    );
}

/// Restarts RabbitMQ's application when dropped (harmless when it is running).
pub struct RabbitGuard;

impl Drop for RabbitGuard {
    fn drop(&mut self) {
        let _ = quiet("rabbitmqctl", &["start_app"]);
        let _ = quiet("rabbitmqctl", &["await_startup"]);
    }
}

/// Starts the Postgres cluster of this version when dropped (harmless when it is running).
pub struct PostgresGuard(pub String);

impl Drop for PostgresGuard {
    fn drop(&mut self) {
        let _ = quiet(
            "pg_ctlcluster",
            &["--skip-systemctl-redirect", &self.0, "main", "start"],
        );
    }
}

/// Sets RabbitMQ's memory high watermark (a fraction of RAM): 0.0001 raises the memory alarm at
/// once, which blocks every publishing connection.
pub fn set_memory_watermark(fraction: &str) {
    assert!(
        run("rabbitmqctl", &["set_vm_memory_high_watermark", fraction]),
        "rabbitmqctl set_vm_memory_high_watermark {fraction}"
    );
}

/// Restores the default memory watermark (0.4) when dropped, so a failing test clears the alarm.
pub struct WatermarkGuard;

impl Drop for WatermarkGuard {
    fn drop(&mut self) {
        let _ = quiet("rabbitmqctl", &["set_vm_memory_high_watermark", "0.4"]);
    }
}

/// A certificate authority and a server certificate for `localhost` / 127.0.0.1, made with
/// openssl in a directory of their own; the key is readable by the postgres user only.
pub struct TestCerts {
    pub dir: std::path::PathBuf,
    pub ca: std::path::PathBuf,
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
    /// The same key, for RabbitMQ's user.
    pub rabbit_key: std::path::PathBuf,
}

impl TestCerts {
    pub fn make(name: &str) -> TestCerts {
        let dir = std::env::temp_dir().join(format!("switchboard-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("cert dir");
        let p = |f: &str| dir.join(f).to_string_lossy().into_owned();
        let ok = |args: &[&str]| assert!(run("openssl", args), "openssl {args:?}");
        ok(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &p("ca.key"),
            "-out",
            &p("ca.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN=switchboard test CA {name}"),
        ]);
        ok(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &p("server.key"),
            "-out",
            &p("server.csr"),
            "-subj",
            "/CN=localhost",
        ]);
        std::fs::write(dir.join("ext.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").expect("ext");
        ok(&[
            "x509",
            "-req",
            "-in",
            &p("server.csr"),
            "-CA",
            &p("ca.pem"),
            "-CAkey",
            &p("ca.key"),
            "-CAcreateserial",
            "-out",
            &p("server.pem"),
            "-days",
            "2",
            "-extfile",
            &p("ext.cnf"),
        ]);
        // Each server reads the key as its own user, and Postgres refuses one others can read.
        let _ = std::fs::copy(dir.join("server.key"), dir.join("rabbit.key"));
        let _ = quiet("chown", &["postgres", &p("server.key")]);
        let _ = quiet("chmod", &["600", &p("server.key")]);
        let _ = quiet("chown", &["rabbitmq", &p("rabbit.key")]);
        let _ = quiet("chmod", &["600", &p("rabbit.key")]);
        let _ = quiet("chmod", &["755", &dir.to_string_lossy()]);
        TestCerts {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
            rabbit_key: dir.join("rabbit.key"),
            dir,
        }
    }
}

impl Drop for TestCerts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
