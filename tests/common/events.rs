//! Every CloudEvent a test sees is checked against the JSON Schema of its own type: the file in
//! `schemas/events/` that its `dataschema` names. The harness does it for every event drained
//! from a queue ([`super::Harness::drain_queue`]), so the integration tests check real events
//! of every type they provoke.

use jsonschema::{Retrieve, Uri, Validator};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use switchboard::contracts::events::SCHEMA_BASE;

/// Resolves the schemas' `$id`s (`https://switchboard.example/schemas/events/<file>`) to the
/// files in `schemas/events/`: nothing is fetched.
struct EventSchemas;

impl Retrieve for EventSchemas {
    fn retrieve(&self, uri: &Uri<String>) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let file = uri
            .as_str()
            .strip_prefix(SCHEMA_BASE)
            .ok_or_else(|| format!("{uri} is not one of our event schemas ({SCHEMA_BASE}…)"))?;
        Ok(read(file)?)
    }
}

fn read(file: &str) -> Result<Value, String> {
    let path = super::manifest_dir().join("schemas/events").join(file);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The compiled schema of the event type whose `dataschema` is `uri`.
pub fn validator(uri: &str) -> Arc<Validator> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Validator>>>> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(v) = cache.get(uri) {
        return v.clone();
    }
    let file = uri
        .strip_prefix(SCHEMA_BASE)
        .unwrap_or_else(|| panic!("dataschema {uri} is not under {SCHEMA_BASE}"));
    let schema = read(file).unwrap_or_else(|e| panic!("dataschema {uri} names no schema file: {e}"));
    assert_eq!(schema["$id"], uri, "{file}: its $id is not its dataschema");
    let v = jsonschema::options()
        .with_retriever(EventSchemas)
        .build(&schema)
        .unwrap_or_else(|e| panic!("schemas/events/{file} is not a valid schema: {e}"));
    let v = Arc::new(v);
    cache.insert(uri.to_owned(), v.clone());
    v
}

/// The schema errors of `event` against the schema its `dataschema` names.
pub fn errors(event: &Value) -> Vec<String> {
    let Some(uri) = event["dataschema"].as_str() else {
        return vec![format!("no dataschema: {event}")];
    };
    validator(uri)
        .iter_errors(event)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

/// Panics, naming what is wrong, unless `event` matches the schema of its own type.
pub fn assert_matches_its_schema(event: &Value) {
    let errors = errors(event);
    assert!(
        errors.is_empty(),
        "event {} ({}) breaks its schema {}: {errors:#?}\n{event:#}",
        event["id"],
        event["type"],
        event["dataschema"]
    );
}
