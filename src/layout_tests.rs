//! Keeps the layout of `lib.rs`'s `# Layout` section true: reads every source file of the
//! library and fails on an import that climbs a layer, on an import circle between sibling
//! modules, on SQL outside `store/`, on a publish outside `bus/`, and on a stage name spelled
//! outside `contracts` (the registry and the wire vocabulary).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layers, lowest first. A module may use its own layer's modules only where listed in
/// [`SAME_LAYER_ALLOWED`]; `store`, `bus` and `outbound` share a layer and must not import each
/// other.
const LAYERS: &[&[&str]] = &[
    &["core"],
    &["contracts"],
    &["channels"],
    &["config"],
    &["store", "bus", "outbound"],
    &["runtime"],
    &["stages"],
    &["http"],
    &["app"],
];
const SAME_LAYER_ALLOWED: &[(&str, &str)] = &[];
/// Modules held to fewer imports than their layer allows: the outbound transports are handed
/// what to send and where, so they need neither settings nor channels.
const ONLY_FROM: &[(&str, &[&str])] = &[("outbound", &["core", "contracts"])];

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every library source file (the binary's `main.rs` and `cli/` know everything, by design).
fn library_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("src is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&src(), &mut files);
    files.retain(|f| {
        let rel = f.strip_prefix(src()).expect("under src");
        !(rel.starts_with("cli")
            || rel == Path::new("main.rs")
            || rel == Path::new("lib.rs")
            || rel == Path::new("layout_tests.rs"))
    });
    files.sort();
    files
}

/// `src/bus/dead.rs` → `["bus", "dead"]`; `src/bus/mod.rs` → `["bus"]`.
fn module_path(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).expect("under src").with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The code of a file without its `#[cfg(test)]` module (tests may spell anything), line
/// comments and doc comments.
fn code_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        let code = match line.find("//") {
            // A `//` inside a string (a URL) is kept: only a comment outside quotes is cut.
            Some(at) if line[..at].matches('"').count() % 2 == 0 => &line[..at],
            _ => line,
        };
        out.push((i + 1, code.to_owned()));
    }
    out
}

/// Absolute module paths a line refers to: `crate::a::b…` and `super::…` resolved against
/// `here`. Returns the first two segments (enough to name a sibling module).
fn references(line: &str, here: &[String]) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < line.len() {
        let rest = &line[i..];
        let boundary =
            i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_' || bytes[i - 1] == b':');
        if boundary && (rest.starts_with("crate::") || rest.starts_with("super::")) {
            let mut base: Vec<String> = if rest.starts_with("crate::") {
                Vec::new()
            } else {
                // `here` names the module (`a/mod.rs` is `a`, `a/b.rs` is `a::b`): `super` is
                // its parent either way.
                let mut b = here.to_vec();
                b.pop();
                b
            };
            let mut path = &rest[rest.find("::").map(|p| p + 2).unwrap_or(0)..];
            while let Some(next) = path.strip_prefix("super::") {
                base.pop();
                path = next;
            }
            for seg in path.split("::") {
                let name: String = seg
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if name.is_empty() || name == "self" || name.starts_with(|c: char| c.is_ascii_uppercase()) {
                    break;
                }
                base.push(name);
                if seg.len() != base.last().map_or(0, String::len) {
                    break;
                }
            }
            base.truncate(2);
            if !base.is_empty() {
                found.push(base);
            }
            i += 7;
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    found
}

fn layer_of(top: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&top))
}

#[test]
fn layers_import_downward_only() {
    let mut violations = Vec::new();
    for file in library_files() {
        let here = module_path(&file);
        let Some(own) = layer_of(&here[0]) else {
            violations.push(format!(
                "{}: top-level module `{}` is in no layer",
                file.display(),
                here[0]
            ));
            continue;
        };
        let text = std::fs::read_to_string(&file).expect("readable source");
        for (n, line) in code_lines(&text) {
            for target in references(&line, &here) {
                let top = target[0].as_str();
                if top == here[0] {
                    continue;
                }
                let Some(theirs) = layer_of(top) else { continue };
                let narrowed = ONLY_FROM
                    .iter()
                    .find(|(m, _)| *m == here[0])
                    .is_some_and(|(_, only)| !only.contains(&top));
                let allowed = !narrowed && (theirs < own || SAME_LAYER_ALLOWED.contains(&(here[0].as_str(), top)));
                if !allowed {
                    violations.push(format!(
                        "{}:{n}: `{}` (layer {own}) uses `{}` (layer {theirs}): {}",
                        file.display(),
                        here[0],
                        target.join("::"),
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "imports that climb a layer:\n{}",
        violations.join("\n")
    );
}

#[test]
fn sibling_modules_import_no_circle() {
    // Edges between modules of the same parent (`bus::dead` → `bus::dead_queue`).
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for file in library_files() {
        let mut here = module_path(&file);
        let refs: Vec<Vec<String>> = code_lines(&std::fs::read_to_string(&file).expect("readable"))
            .iter()
            .flat_map(|(_, l)| references(l, &here))
            .collect();
        here.truncate(2);
        if here.len() < 2 {
            continue;
        }
        for r in refs {
            if r.len() == 2 && r[0] == here[0] && r != here {
                edges.entry(here.clone()).or_default().insert(r);
            }
        }
    }
    let mut circles = Vec::new();
    for (from, tos) in &edges {
        for to in tos {
            if edges.get(to).is_some_and(|back| back.contains(from)) && from < to {
                circles.push(format!("{} ↔ {}", from.join("::"), to.join("::")));
            }
        }
    }
    assert!(
        circles.is_empty(),
        "modules that import each other:\n{}",
        circles.join("\n")
    );
}

/// Files outside `store/` whose code holds SQL. Empty once every statement lives in the store.
fn sql_outside_store() -> Vec<String> {
    // A statement's text starts a string literal; these calls run one.
    const SQL: [&str; 13] = [
        "\"SELECT ",
        "\"INSERT ",
        "\"UPDATE ",
        "\"DELETE ",
        "\"WITH ",
        "\"LOCK ",
        ".batch_execute(",
        ".query(",
        ".query_one(",
        ".query_opt(",
        ".execute(",
        ".prepare(",
        "prepared(",
    ];
    let mut found = Vec::new();
    for file in library_files() {
        let here = module_path(&file);
        if here[0] == "store" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("readable");
        for (n, line) in code_lines(&text) {
            if SQL.iter().any(|k| line.contains(k)) {
                found.push(format!("{}:{n}: {}", file.display(), line.trim()));
            }
        }
    }
    found
}

#[test]
fn no_sql_outside_the_store() {
    let found = sql_outside_store();
    assert!(found.is_empty(), "SQL outside src/store:\n{}", found.join("\n"));
}

#[test]
fn only_the_bus_publishes() {
    let mut found = Vec::new();
    for file in library_files() {
        let here = module_path(&file);
        if here[0] == "bus" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("readable");
        for (n, line) in code_lines(&text) {
            if line.contains("basic_publish") || line.contains("confirm_select") {
                found.push(format!("{}:{n}: {}", file.display(), line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "publishing outside src/bus:\n{}", found.join("\n"));
}

#[test]
fn row_locks_that_wait_are_taken_only_in_the_one_lock_order() {
    let mut found = Vec::new();
    for file in library_files() {
        if module_path(&file) == ["store", "locks"] {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("readable");
        for (n, line) in code_lines(&text) {
            let upper = line.to_ascii_uppercase();
            if (upper.contains("FOR UPDATE") || upper.contains("FOR NO KEY UPDATE") || upper.contains("FOR SHARE"))
                && !upper.contains("SKIP LOCKED")
            {
                found.push(format!("{}:{n}: {}", file.display(), line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "row locks outside store::locks (agents by id, then tickets by id):\n{}",
        found.join("\n")
    );
}

#[test]
fn stage_names_are_spelled_only_in_the_registry() {
    // "intake" is also an exchange's name, so only the other stages are looked for.
    const NAMES: [&str; 6] = [
        "\"classify\"",
        "\"prioritize\"",
        "\"assign\"",
        "\"escalate\"",
        "\"lifecycle\"",
        "\"scheduler\"",
    ];
    let mut found = Vec::new();
    for file in library_files() {
        let here = module_path(&file);
        if here[0] == "contracts" {
            continue;
        }
        // Action kinds are a namespace of their own: `escalate` is an action (by hand) as
        // well as a stage, and `core::actions` and `core::access` name actions.
        let names_actions = here == ["core", "actions"] || here == ["core", "access"];
        let text = std::fs::read_to_string(&file).expect("readable");
        for (n, line) in code_lines(&text) {
            let action_kind = names_actions && line.contains("\"escalate\"") && !line.contains("StageName");
            if NAMES.iter().any(|k| line.contains(k)) && !action_kind {
                found.push(format!("{}:{n}: {}", file.display(), line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "stage names outside contracts::stage:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_scanner_sees_what_it_should() {
    let here = vec!["bus".to_owned(), "dead".to_owned()];
    assert_eq!(
        references("use super::dead_queue::DEAD_ID;", &here),
        vec![vec!["bus".to_owned(), "dead_queue".to_owned()]]
    );
    assert_eq!(
        references("use crate::store::{Db, tickets};", &here),
        vec![vec!["store".to_owned()]]
    );
    assert_eq!(
        references("let x = crate::runtime::ops::start(a);", &here),
        vec![vec!["runtime".to_owned(), "ops".to_owned()]]
    );
    let bus = vec!["bus".to_owned()];
    assert_eq!(
        references("use super::config::Settings;", &bus),
        vec![vec!["config".to_owned()]]
    );
    assert_eq!(
        code_lines("a\n// crate::app\n#[cfg(test)]\nmod tests { crate::app }").len(),
        2
    );
}
