//! The `switchboard` command's conventions, on the real binary: `--format table|json|csv` on a
//! listing, and the exit codes of `src/cli/exit.rs` (0 ok, 1 failure, 2 usage, 3 not found,
//! 4 unreachable).

use crate::common::Harness;
use crate::common::process::command;
use std::process::{Output, Stdio};
use unicode_width::UnicodeWidthStr as _;

fn run(h: &Harness, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = command(&h.app.settings, args);
    cmd.env("RUST_LOG", "warn").stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run the switchboard binary")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const ROSTER: &str = "id,name,team,languages,channels,skills,max_open,presence\n\
    cj-001,欧阳娜娜,front_line,zh,,,8,online\n\
    cj-002,Bob,front_line,en,,\"billing;refunds\",12,away\n\
    cj-003,張偉,technical_support,zh;en,phone,,5,offline\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_print_as_table_json_or_csv_and_exit_codes_say_what_happened() {
    let h = Harness::new("cliconv").await;
    // Imported through the binary: its spinner draws nothing on a pipe, the summary still prints.
    let roster = std::env::temp_dir().join(format!("{}-roster.csv", h.app.settings.topology_prefix));
    std::fs::write(&roster, ROSTER).unwrap();
    let out = run(&h, &["agents", "import", roster.to_str().unwrap()], &[]);
    let _ = std::fs::remove_file(&roster);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("imported 3 agents"),
        "{}",
        text(&out.stdout)
    );
    let err = text(&out.stderr);
    assert!(!err.contains('\r') && !err.contains("importing"), "{err:?}");

    // table (the default): columns line up by terminal width, Chinese names included.
    let out = run(&h, &["agents", "list"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    let team_at: Vec<usize> = lines
        .iter()
        .map(|l| {
            let i = l
                .find("front_line")
                .or_else(|| l.find("technical_support"))
                .or_else(|| l.find("team"));
            l[..i.unwrap_or_else(|| panic!("no team column: {l}"))].width()
        })
        .collect();
    assert!(team_at.iter().all(|&w| w == team_at[0]), "{team_at:?}\n{table}");
    assert!(table.contains("0/8") && table.contains("billing;refunds"), "{table}");

    // json: an array of objects with the same fields.
    let out = run(&h, &["agents", "list", "--format", "json"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("a JSON array");
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["name"], "欧阳娜娜");
    assert_eq!(rows[1]["skills"], serde_json::json!(["billing", "refunds"]));
    assert_eq!(rows[2]["max_open"], 5);
    for r in &rows {
        let mut keys: Vec<&String> = r.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "channels",
                "id",
                "languages",
                "max_open",
                "name",
                "open_tickets",
                "presence",
                "skills",
                "team"
            ]
        );
    }

    // csv: a header of field names, quoting where needed.
    let out = run(&h, &["agents", "list", "--team", "front_line", "--format", "csv"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let csv = text(&out.stdout);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("id,name,team,presence,open_tickets,languages,channels,skills")
    );
    assert_eq!(lines.next(), Some("cj-001,欧阳娜娜,front_line,online,0,zh,,"));
    assert_eq!(lines.next(), Some("cj-002,Bob,front_line,away,0,en,,billing;refunds"));
    assert_eq!(lines.next(), None);

    // The old --json still works where it existed.
    let out = run(&h, &["dead", "list", "--json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "[]");

    // 1: a failure the message explains.
    let out = run(&h, &["agents", "set-status", "cj-001"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("nothing to change"), "{}", text(&out.stderr));

    // 2: a usage error, from clap.
    let out = run(&h, &["agents", "lsit"], &[]);
    assert_eq!(out.status.code(), Some(2));

    // 3: what is named does not exist.
    let out = run(&h, &["ticket", "209901-99999"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("no ticket"), "{}", text(&out.stderr));
    let out = run(&h, &["keys", "revoke", "key_nosuchkey"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));

    // 4: a server that cannot be reached (nothing listens on port 1).
    let out = run(
        &h,
        &["agents", "list"],
        &[(
            "SWITCHBOARD_DATABASE_URL",
            "postgres://postgres@127.0.0.1:1/switchboard",
        )],
    );
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    let out = run(
        &h,
        &["dead", "list"],
        &[("SWITCHBOARD_AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2f")],
    );
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));

    // And --help says so.
    let out = run(&h, &["--help"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    assert!(
        help.contains("Exit codes:") && help.contains("4  RabbitMQ or PostgreSQL unreachable"),
        "{help}"
    );
    h.cleanup().await;
}
