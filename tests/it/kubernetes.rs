//! `deploy/kubernetes/base/` against the Kubernetes 1.32 and KEDA schemas vendored in
//! `tests/fixtures/kubernetes/` (see its README for where they come from), and the deployment's
//! own rules: a Deployment per stage and for the gateway with liveness and readiness probes and
//! resource requests, a PodDisruptionBudget for each, and a KEDA ScaledObject on the queue of
//! every stage that consumes one.

use crate::common::manifest_dir;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use switchboard::contracts::StageName;

fn base() -> std::path::PathBuf {
    manifest_dir().join("deploy/kubernetes/base")
}

/// Every document of every file the kustomization lists, as JSON, with the file it came from.
fn manifests() -> Vec<(String, Value)> {
    let text = std::fs::read_to_string(base().join("kustomization.yaml")).expect("read kustomization.yaml");
    let kustomization: Value = serde_yaml::from_str(&text).expect("kustomization.yaml is YAML");
    let resources = kustomization["resources"]
        .as_array()
        .expect("kustomization lists resources");
    assert!(!resources.is_empty());
    let mut out = Vec::new();
    for r in resources {
        let file = r.as_str().expect("a resource is a file name");
        let text = std::fs::read_to_string(base().join(file)).unwrap_or_else(|e| panic!("read {file}: {e}"));
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = Value::deserialize(doc).unwrap_or_else(|e| panic!("{file} is not YAML: {e}"));
            if !value.is_null() {
                out.push((file.to_owned(), value));
            }
        }
    }
    out
}

/// The vendored schema for a manifest's `apiVersion` and `kind`.
fn schema_for(api_version: &str, kind: &str) -> Option<Value> {
    let file = match (api_version, kind) {
        ("apps/v1", "Deployment") => "Deployment.apps.v1.json",
        ("policy/v1", "PodDisruptionBudget") => "PodDisruptionBudget.policy.v1.json",
        ("v1", "Service") => "Service.v1.json",
        ("v1", "ServiceAccount") => "ServiceAccount.v1.json",
        ("keda.sh/v1alpha1", "ScaledObject") => "ScaledObject.keda.sh.v1alpha1.json",
        ("keda.sh/v1alpha1", "TriggerAuthentication") => "TriggerAuthentication.keda.sh.v1alpha1.json",
        _ => return None,
    };
    let text = std::fs::read_to_string(manifest_dir().join("tests/fixtures/kubernetes").join(file))
        .unwrap_or_else(|e| panic!("read {file}: {e}"));
    Some(serde_json::from_str(&text).expect("schema is JSON"))
}

fn errors(doc: &Value) -> Vec<String> {
    let (api, kind) = (
        doc["apiVersion"].as_str().unwrap_or(""),
        doc["kind"].as_str().unwrap_or(""),
    );
    let Some(schema) = schema_for(api, kind) else {
        return vec![format!(
            "no vendored schema for {api} {kind}: add it to tests/fixtures/kubernetes/vendor.py"
        )];
    };
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    validator
        .iter_errors(doc)
        .map(|e| format!("{}: {}", e.instance_path(), e))
        .collect()
}

#[test]
fn every_manifest_matches_its_kubernetes_or_keda_schema() {
    let docs = manifests();
    let mut broken = Vec::new();
    for (file, doc) in &docs {
        for e in errors(doc) {
            broken.push(format!("{file} {} {}: {e}", doc["kind"], doc["metadata"]["name"]));
        }
    }
    assert!(
        broken.is_empty(),
        "manifests break their schemas:\n{}",
        broken.join("\n")
    );
    assert!(docs.len() >= 30, "{} documents", docs.len());
}

#[test]
fn the_schemas_reject_a_broken_manifest() {
    // Not vacuous: a misspelt probe field, a string replica count, a ScaledObject without
    // triggers and one with an unknown field all fail.
    let deployment = serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
        "spec": {"replicas": "two", "selector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": {"labels": {"a": "b"}},
                              "spec": {"containers": [{"name": "x", "image": "x",
                                        "livenessProbe": {"httpGet": {"path": "/healthz", "prot": 9100}}}]}}}
    });
    let errs = errors(&deployment);
    assert!(errs.len() >= 2, "{errs:?}");
    let scaled = serde_json::json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "x"},
        "spec": {"scaleTargetRef": {"name": "x"}, "maxReplicas": 3}
    });
    let errs = errors(&scaled);
    assert!(errs.len() >= 2, "{errs:?}");
    let unknown = serde_json::json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "x"}});
    assert!(errors(&unknown)[0].contains("no vendored schema"));
}

fn by_kind<'a>(docs: &'a [(String, Value)], kind: &str) -> BTreeMap<String, &'a Value> {
    docs.iter()
        .filter(|(_, d)| d["kind"] == kind)
        .map(|(_, d)| (d["metadata"]["name"].as_str().unwrap_or_default().to_owned(), d))
        .collect()
}

/// `(name, component label)` of everything deployed: each stage and the gateway.
fn components() -> Vec<String> {
    StageName::ALL
        .iter()
        .map(|s| s.as_str().to_owned())
        .chain(["gateway".to_owned()])
        .collect()
}

#[test]
fn every_stage_and_the_gateway_has_a_probed_sized_and_guarded_deployment() {
    let docs = manifests();
    let deployments = by_kind(&docs, "Deployment");
    let budgets = by_kind(&docs, "PodDisruptionBudget");
    for component in components() {
        let name = format!("switchboard-{component}");
        let d = deployments
            .get(&name)
            .unwrap_or_else(|| panic!("no Deployment {name} in deploy/kubernetes/base"));
        let labels = &d["spec"]["template"]["metadata"]["labels"];
        assert_eq!(
            labels["app.kubernetes.io/component"],
            component.as_str(),
            "{name}: pod label"
        );
        assert_eq!(
            d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"],
            component.as_str(),
            "{name}: selector"
        );
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}: runs as non-root");
        let c = &pod["containers"][0];
        assert_eq!(c["command"][0], name.as_str(), "{name}: command");
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz", "{name}: liveness");
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz", "{name}: readiness");
        let env: Vec<&str> = c["env"]
            .as_array()
            .expect("env")
            .iter()
            .filter_map(|e| e["name"].as_str())
            .collect();
        for var in [
            "SWITCHBOARD_AMQP_URL",
            "SWITCHBOARD_DATABASE_URL",
            "SWITCHBOARD_METRICS_ADDR",
        ] {
            assert!(env.contains(&var), "{name}: {var}");
        }
        // Liveness on the metrics port: the one served from process start.
        let ports = c["ports"].as_array().expect("ports");
        let metrics = ports.iter().find(|p| p["name"] == "metrics").expect("a metrics port");
        assert_eq!(metrics["containerPort"], 9100, "{name}");
        assert_eq!(
            c["livenessProbe"]["httpGet"]["port"], "metrics",
            "{name}: liveness port"
        );
        let requests = &c["resources"]["requests"];
        let memory = mebibytes(
            requests["memory"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: memory request")),
        );
        let limit = mebibytes(c["resources"]["limits"]["memory"].as_str().expect("memory limit"));
        assert!(
            memory >= 32 && memory <= limit,
            "{name}: memory request {memory} Mi, limit {limit} Mi"
        );
        assert!(requests["cpu"].is_string(), "{name}: cpu request");

        let pdb = budgets
            .get(&name)
            .unwrap_or_else(|| panic!("no PodDisruptionBudget {name}"));
        assert_eq!(
            pdb["spec"]["selector"]["matchLabels"], d["spec"]["selector"]["matchLabels"],
            "{name}: the budget selects the Deployment's pods"
        );
    }
    assert_eq!(deployments.len(), components().len(), "a Deployment for nothing else");
}

fn mebibytes(quantity: &str) -> u64 {
    quantity
        .strip_suffix("Mi")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("memory {quantity:?}: write it in Mi"))
}

#[test]
fn every_queue_consumer_scales_on_its_queue_and_the_gateway_on_cpu() {
    let docs = manifests();
    let scaled = by_kind(&docs, "ScaledObject");
    let auth = by_kind(&docs, "TriggerAuthentication");
    for stage in StageName::consumers() {
        let name = format!("switchboard-{stage}");
        let s = scaled.get(&name).unwrap_or_else(|| panic!("no ScaledObject {name}"));
        assert_eq!(s["spec"]["scaleTargetRef"]["name"], name.as_str());
        let trigger = &s["spec"]["triggers"][0];
        assert_eq!(trigger["type"], "rabbitmq", "{name}");
        // The default topology prefix: `switchboard.<stage>` (src/contracts/stage.rs).
        assert_eq!(
            trigger["metadata"]["queueName"],
            format!("switchboard.{stage}").as_str(),
            "{name}"
        );
        assert_eq!(trigger["metadata"]["mode"], "QueueLength", "{name}");
        let value: u64 = trigger["metadata"]["value"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .expect("value");
        assert!(value > 0, "{name}");
        let by = trigger["authenticationRef"]["name"]
            .as_str()
            .expect("authenticationRef");
        assert!(
            auth.contains_key(by),
            "{name}: TriggerAuthentication {by} is not deployed"
        );
        let (min, max) = (
            s["spec"]["minReplicaCount"].as_u64().expect("min"),
            s["spec"]["maxReplicaCount"].as_u64().expect("max"),
        );
        assert!(1 <= min && min < max, "{name}: {min}..{max}");
    }
    for stage in StageName::ALL.iter().filter(|s| s.binding().is_none()) {
        assert!(
            !scaled.contains_key(&format!("switchboard-{stage}")),
            "{stage} consumes no queue: nothing for a queue scaler to read"
        );
    }
    let gateway = scaled.get("switchboard-gateway").expect("the gateway scales");
    assert_eq!(gateway["spec"]["triggers"][0]["type"], "cpu");
}

#[test]
fn every_worker_binary_is_deployed() {
    // A new `switchboard-*` binary in Cargo.toml without a Deployment would never run.
    let cargo = std::fs::read_to_string(manifest_dir().join("Cargo.toml")).expect("Cargo.toml");
    let docs = manifests();
    let deployments = by_kind(&docs, "Deployment");
    for line in cargo.lines() {
        let Some(name) = line.strip_prefix("name = \"switchboard-") else {
            continue;
        };
        let bin = format!("switchboard-{}", name.trim_end_matches('"'));
        assert!(deployments.contains_key(&bin), "binary {bin} has no Deployment");
    }
}
