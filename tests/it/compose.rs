//! `docker-compose.yml` against the Compose Specification's JSON Schema (vendored in
//! `tests/fixtures/compose/`, see its README), and the deployment's own rules: one service per
//! stage, each with a health check and a replica count.

use serde_json::Value;
use std::path::PathBuf;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn compose() -> Value {
    let text = std::fs::read_to_string(manifest_dir().join("docker-compose.yml")).expect("read docker-compose.yml");
    let mut yaml: serde_yaml::Value = serde_yaml::from_str(&text).expect("docker-compose.yml is YAML");
    // `<<: *worker` merge keys are YAML, not Compose: resolve them as Compose does.
    yaml.apply_merge().expect("merge keys");
    serde_json::to_value(yaml).expect("YAML as JSON")
}

fn schema() -> Value {
    let text = std::fs::read_to_string(manifest_dir().join("tests/fixtures/compose/compose-spec.json"))
        .expect("read compose-spec.json");
    serde_json::from_str(&text).expect("schema is JSON")
}

#[test]
fn compose_file_matches_the_compose_specification() {
    let mut doc = compose();
    let top = doc.as_object_mut().expect("a mapping at the top");
    // The vendored schema predates the top-level `name` (Compose spec 2022): check it here.
    if let Some(name) = top.remove("name") {
        let name = name.as_str().expect("`name` is a string");
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'),
            "project name {name:?}: lower-case letters, digits, '-' and '_' only"
        );
    }
    let schema = schema();
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{}: {}", e.instance_path(), e))
        .collect();
    assert!(
        errors.is_empty(),
        "docker-compose.yml breaks the Compose specification:\n{}",
        errors.join("\n")
    );
}

#[test]
fn schema_rejects_a_broken_compose_file() {
    // The validator is not vacuous: a misspelt service key and a non-numeric replica count fail.
    let doc = serde_json::json!({
        "services": {"x": {"image": "a", "helthcheck": {}, "deploy": {"replicas": "two"}}}
    });
    let schema = schema();
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    assert!(validator.iter_errors(&doc).count() >= 2);
}

#[test]
fn every_stage_has_a_service_with_health_check_and_replicas() {
    let doc = compose();
    let services = doc["services"].as_object().expect("services");
    for stage in [
        "intake",
        "classify",
        "prioritize",
        "assign",
        "escalate",
        "lifecycle",
        "scheduler",
        "gateway",
    ] {
        let svc = services
            .get(stage)
            .unwrap_or_else(|| panic!("no `{stage}` service in docker-compose.yml"));
        let command = svc["command"][0].as_str().unwrap_or_default();
        assert_eq!(command, format!("switchboard-{stage}"), "{stage}: command");
        let test = &svc["healthcheck"]["test"];
        assert!(
            test.as_array().is_some_and(|t| !t.is_empty()) || test.as_str().is_some_and(|t| !t.is_empty()),
            "{stage}: no healthcheck test"
        );
        let replicas = svc["deploy"]["replicas"].as_u64();
        assert!(
            replicas.is_some_and(|r| r >= 1),
            "{stage}: deploy.replicas must be set (got {replicas:?})"
        );
        let env = &svc["environment"];
        assert!(
            env["SWITCHBOARD_METRICS_ADDR"].as_str().is_some_and(|a| !a.is_empty()),
            "{stage}: SWITCHBOARD_METRICS_ADDR"
        );
        for var in ["SWITCHBOARD_AMQP_URL", "SWITCHBOARD_DATABASE_URL"] {
            assert!(env[var].is_string(), "{stage}: {var}");
        }
    }
}

#[test]
fn every_worker_binary_has_a_service() {
    // A new `switchboard-*` binary in Cargo.toml without a service would never be deployed.
    let cargo = std::fs::read_to_string(manifest_dir().join("Cargo.toml")).expect("Cargo.toml");
    let doc = compose();
    let commands: Vec<&str> = doc["services"]
        .as_object()
        .expect("services")
        .values()
        .filter_map(|s| s["command"][0].as_str())
        .collect();
    for line in cargo.lines() {
        let Some(name) = line.strip_prefix("name = \"switchboard-") else {
            continue;
        };
        let bin = format!("switchboard-{}", name.trim_end_matches('"'));
        assert!(commands.contains(&bin.as_str()), "binary {bin} has no service");
    }
}

#[test]
fn health_checks_ask_the_process_itself_without_a_shell() {
    // `switchboard healthcheck` (src/cli/healthcheck.rs), not bash: the image needs no shell.
    let doc = compose();
    for (name, svc) in doc["services"].as_object().expect("services") {
        let Some(command) = svc["command"][0].as_str().filter(|c| c.starts_with("switchboard-")) else {
            continue;
        };
        let test: Vec<&str> = svc["healthcheck"]["test"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: healthcheck.test as a list"))
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(&test[..3], ["CMD", "switchboard", "healthcheck"], "{name} ({command})");
        if command == "switchboard-gateway" {
            assert!(
                test.contains(&"--ready"),
                "the gateway is healthy when it can take requests"
            );
        }
    }
}

#[test]
fn prometheus_and_grafana_are_provisioned_with_the_shipped_rules_and_dashboard() {
    let doc = compose();
    let services = doc["services"].as_object().expect("services");
    let mounts = |svc: &str| -> Vec<(String, String)> {
        services
            .get(svc)
            .unwrap_or_else(|| panic!("no `{svc}` service in docker-compose.yml"))["volumes"]
            .as_array()
            .unwrap_or_else(|| panic!("{svc}: volumes"))
            .iter()
            .filter_map(Value::as_str)
            .filter_map(|v| {
                let mut parts = v.split(':');
                Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
            })
            .collect()
    };
    let prometheus = mounts("prometheus");
    let grafana = mounts("grafana");
    for (wanted, mounted) in [
        ("./deploy/prometheus/alerts.yml", &prometheus),
        ("./deploy/prometheus/prometheus.yml", &prometheus),
        ("./docs/grafana-dashboard.json", &grafana),
        ("./deploy/grafana/provisioning", &grafana),
    ] {
        assert!(
            mounted.iter().any(|(host, _)| host == wanted),
            "{wanted} is not mounted"
        );
    }
    // Every bind-mounted path exists in the repository.
    for (host, _) in prometheus.iter().chain(&grafana).filter(|(h, _)| h.starts_with("./")) {
        assert!(
            manifest_dir().join(host).exists(),
            "{host} is mounted but does not exist"
        );
    }
    // Prometheus scrapes every service that runs a Switchboard binary, on its metrics port.
    let config = std::fs::read_to_string(manifest_dir().join("deploy/prometheus/prometheus.yml")).unwrap();
    let config: Value = serde_yaml::from_str(&config).expect("prometheus.yml is YAML");
    let sd = &config["scrape_configs"][0]["dns_sd_configs"][0];
    let names: Vec<&str> = sd["names"]
        .as_array()
        .expect("names")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for (name, svc) in services {
        if svc["command"][0]
            .as_str()
            .is_some_and(|c| c.starts_with("switchboard-"))
        {
            assert!(names.contains(&name.as_str()), "Prometheus does not scrape `{name}`");
            let addr = svc["environment"]["SWITCHBOARD_METRICS_ADDR"]
                .as_str()
                .unwrap_or_default();
            assert!(addr.ends_with(&format!(":{}", sd["port"])), "{name}: metrics on {addr}");
        }
    }
    assert!(
        config["rule_files"][0] == "alerts.yml",
        "Prometheus loads the alert rules"
    );
}
