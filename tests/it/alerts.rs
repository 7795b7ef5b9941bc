//! `deploy/prometheus/alerts.yml`: promtool accepts it (`promtool check rules`, and `check config`
//! of the compose file's `prometheus.yml`, which loads it), its unit tests
//! pass (`promtool test rules deploy/prometheus/alerts.test.yml`), every alert has a unit test
//! that makes it fire, and every metric a rule reads is one the Metrics table of
//! docs/OPERATIONS.md documents. promtool is Debian's `prometheus` package (`.ci/run` installs
//! it); without it the promtool checks fail under `CI` and print SKIPPED elsewhere.

use crate::common::manifest_dir;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn promtool_or_skip(test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("promtool"))
            .find(|p| p.is_file())
    });
    if found.is_some() {
        return found;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test}: promtool is missing, and CI must check the alert rules (apt-get install -y prometheus)");
    }
    println!("SKIPPED {test}: promtool not found; install it (apt-get install -y prometheus) to run it");
    None
}

fn promtool(bin: &PathBuf, args: &[&str]) -> (bool, String) {
    let out = Command::new(bin)
        .args(args)
        .current_dir(manifest_dir().join("deploy/prometheus"))
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn yaml(file: &str) -> Value {
    let text = std::fs::read_to_string(manifest_dir().join("deploy/prometheus").join(file))
        .unwrap_or_else(|e| panic!("read deploy/prometheus/{file}: {e}"));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("deploy/prometheus/{file} is not YAML: {e}"))
}

fn rules() -> Vec<Value> {
    yaml("alerts.yml")["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules").clone())
        .collect()
}

#[test]
fn promtool_accepts_the_rules_and_their_unit_tests_pass() {
    let Some(bin) = promtool_or_skip("promtool_accepts_the_rules_and_their_unit_tests_pass") else {
        return;
    };
    let (ok, out) = promtool(&bin, &["check", "rules", "alerts.yml"]);
    assert!(ok, "promtool check rules deploy/prometheus/alerts.yml:\n{out}");
    assert!(out.contains(&format!("{} rules found", rules().len())), "{out}");
    // The compose file's Prometheus configuration loads them (a relative rule file path).
    let (ok, out) = promtool(&bin, &["check", "config", "prometheus.yml"]);
    assert!(ok, "promtool check config deploy/prometheus/prometheus.yml:\n{out}");
    let (ok, out) = promtool(&bin, &["test", "rules", "alerts.test.yml"]);
    assert!(ok, "promtool test rules deploy/prometheus/alerts.test.yml:\n{out}");
}

#[test]
fn promtool_unit_tests_can_fail() {
    // Not vacuous: the same unit tests against rules whose threshold moved fail.
    let Some(bin) = promtool_or_skip("promtool_unit_tests_can_fail") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("switchboard-alerts-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = manifest_dir().join("deploy/prometheus");
    let rules = std::fs::read_to_string(src.join("alerts.yml")).unwrap();
    let moved = rules.replace(">= 5\n", ">= 50\n");
    assert_ne!(moved, rules, "the SLA rule's threshold is where this test expects it");
    std::fs::write(dir.join("alerts.yml"), moved).unwrap();
    std::fs::copy(src.join("alerts.test.yml"), dir.join("alerts.test.yml")).unwrap();
    let out = Command::new(&bin)
        .args(["test", "rules", "alerts.test.yml"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("SwitchboardSlaBreaches"), "{text}");
}

#[test]
fn every_alert_has_a_unit_test_that_fires_it() {
    let tests = yaml("alerts.test.yml");
    let fired: Vec<String> = tests["tests"]
        .as_array()
        .expect("tests")
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_array().cloned().unwrap_or_default())
        .filter(|c| c["exp_alerts"].as_array().is_some_and(|a| !a.is_empty()))
        .filter_map(|c| c["alertname"].as_str().map(str::to_owned))
        .collect();
    let names: Vec<String> = rules()
        .iter()
        .filter_map(|r| r["alert"].as_str().map(str::to_owned))
        .collect();
    assert!(names.len() >= 6, "{names:?}");
    for name in &names {
        assert!(
            fired.contains(name),
            "alert {name} has no promtool unit test in deploy/prometheus/alerts.test.yml that expects it to fire"
        );
    }
    for wanted in [
        "switchboard_queue_messages_ready",
        "switchboard_dead_letters",
        "switchboard_sla_breaches_total",
        "switchboard_timer_claim_lateness_seconds",
        "switchboard_collector_up",
        "switchboard_ready",
    ] {
        assert!(
            rules()
                .iter()
                .any(|r| r["expr"].as_str().is_some_and(|e| e.contains(wanted))),
            "no alert reads {wanted}"
        );
    }
}

#[test]
fn alerts_read_only_documented_metrics() {
    let table = std::fs::read_to_string(manifest_dir().join("docs/OPERATIONS.md")).unwrap();
    let name = regex::Regex::new(r"switchboard_[a-z_]+").unwrap();
    for rule in rules() {
        let expr = rule["expr"].as_str().expect("expr");
        for m in name.find_iter(expr) {
            let metric = m
                .as_str()
                .trim_end_matches("_bucket")
                .trim_end_matches("_count")
                .trim_end_matches("_sum");
            assert!(
                table.contains(&format!("| `{metric}` |")),
                "{} reads {metric}, which is not in the Metrics table of docs/OPERATIONS.md",
                rule["alert"]
            );
        }
    }
}
