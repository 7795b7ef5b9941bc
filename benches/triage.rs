//! Triage cost per ticket: the rules alone (before the learned model) against the rules and the
//! model (what the classify and prioritize stages run now), over the held-out set's texts, plus
//! the memory the model takes. Pure computation: no broker, no database.
//!
//! Run: `cargo bench --bench triage` (release). Prints per-ticket p50 / p99 / mean in µs for
//! classify and prioritize, decisions per second on one core, and the process's resident memory
//! before and after loading the model.

use std::path::Path;
use std::time::Instant;
use switchboard::core::classify::Triage;
use switchboard::core::classify::eval::EvalItem;
use switchboard::core::policy::Policy;

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn items() -> anyhow::Result<Vec<EvalItem>> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir("config/corpus/heldout")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    for f in files {
        out.extend(EvalItem::parse_jsonl(&std::fs::read_to_string(f)?).map_err(anyhow::Error::msg)?);
    }
    Ok(out)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn measure(name: &str, triage: &Triage, items: &[EvalItem], rounds: usize) {
    let mut classify_us = Vec::with_capacity(items.len() * rounds);
    let mut prioritize_us = Vec::with_capacity(items.len() * rounds);
    let started = Instant::now();
    for _ in 0..rounds {
        for it in items {
            let t = Instant::now();
            let c = triage.classify(it.subject.as_deref(), &it.body, &it.channel);
            classify_us.push(t.elapsed().as_secs_f64() * 1e6);
            let t = Instant::now();
            let p = triage.prioritize(&it.priority_input(&c.category));
            prioritize_us.push(t.elapsed().as_secs_f64() * 1e6);
            std::hint::black_box(p);
        }
    }
    let total = started.elapsed().as_secs_f64();
    for (what, v) in [("classify", &mut classify_us), ("prioritize", &mut prioritize_us)] {
        v.sort_by(f64::total_cmp);
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        println!(
            "{name:<16} {what:<10} p50 {:6.1} µs  p99 {:6.1} µs  mean {:6.1} µs",
            percentile(v, 0.5),
            percentile(v, 0.99),
            mean
        );
    }
    println!(
        "{name:<16} both       {:.0} tickets/s on one core ({} decisions)",
        (items.len() * rounds) as f64 / total,
        items.len() * rounds
    );
}

fn main() -> anyhow::Result<()> {
    let items = items()?;
    let before = rss_mib();
    let rules = Policy::load_rules(Path::new("config/policy.toml"))?;
    let after_rules = rss_mib();
    let policy = Policy::load(Path::new("config/policy.toml"))?;
    let after_model = rss_mib();
    let version = policy.triage.model().map(|m| m.version().to_owned());
    println!(
        "{} held-out requests; model {}",
        items.len(),
        version.as_deref().unwrap_or("(none named by the policy)")
    );
    println!(
        "resident memory: {before:.1} MiB at start, {after_rules:.1} MiB with the rules, {after_model:.1} MiB with the model too (+{:.1} MiB)",
        after_model - after_rules
    );
    let rounds = 20;
    measure("rules alone", &rules.triage, &items, rounds);
    measure("rules and model", &policy.triage, &items, rounds);
    Ok(())
}
