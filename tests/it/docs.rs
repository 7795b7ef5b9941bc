//! The README and the guides in `docs/` link to each other and to files of the repository; a
//! moved section or a renamed file must not leave a reader at a dead link.

use crate::common::manifest_dir;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == ' ' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Lines outside fenced code blocks, numbered from 1.
fn prose(text: &str) -> Vec<(usize, &str)> {
    let mut in_code = false;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code {
            out.push((n + 1, line));
        }
    }
    out
}

fn anchors(path: &Path) -> HashSet<String> {
    let text = std::fs::read_to_string(path).unwrap();
    prose(&text)
        .into_iter()
        .filter_map(|(_, l)| {
            l.trim_start_matches('#')
                .strip_prefix(' ')
                .filter(|_| l.starts_with('#'))
                .map(slug)
        })
        .collect()
}

#[test]
fn every_link_in_the_readme_and_the_guides_resolves() {
    let root = manifest_dir();
    let mut files: Vec<PathBuf> = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "md") {
            files.push(p);
        }
    }
    assert!(files.len() >= 10, "the guides are in docs/");
    let link = regex::Regex::new(r"\]\(([^)\s]+)\)").unwrap();
    let mut dead = Vec::new();
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let dir = file.parent().unwrap();
        for (n, line) in prose(&text) {
            for cap in link.captures_iter(line) {
                let target = &cap[1];
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                checked += 1;
                let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
                let resolved = if path.is_empty() { file.clone() } else { dir.join(path) };
                let shown = format!("{}:{n}: {target}", file.strip_prefix(&root).unwrap().display());
                if !resolved.exists() {
                    dead.push(format!("{shown} (no such file)"));
                } else if !anchor.is_empty()
                    && resolved.extension().is_some_and(|e| e == "md")
                    && !anchors(&resolved).contains(anchor)
                {
                    dead.push(format!("{shown} (no such heading)"));
                }
            }
        }
    }
    assert!(checked > 50, "only {checked} links found");
    assert!(dead.is_empty(), "dead links:\n{}", dead.join("\n"));
}

/// The README is the front door: what Switchboard is, the flow, the quick start and the guides;
/// the manuals live in `docs/`.
#[test]
fn the_readme_is_a_front_door_that_links_every_guide() {
    let root = manifest_dir();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        readme.len() < 16_000,
        "README.md is {} bytes: move manuals to docs/",
        readme.len()
    );
    for section in ["## How a request flows", "## Quick start", "## Guides", "## Tests"] {
        assert!(readme.contains(section), "README.md has no {section:?}");
    }
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".md") {
            assert!(
                readme.contains(&format!("(docs/{name})")),
                "README.md's guide table does not link docs/{name}"
            );
        }
    }
}
