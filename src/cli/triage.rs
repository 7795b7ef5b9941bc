//! `switchboard train` and `switchboard eval`: the learned triage model from the labelled corpus,
//! and figures that cannot flatter it (a held-out set written apart from the training corpus,
//! near-duplicates of training items refused, k-fold cross-validation on the rest).

use anyhow::{Context as _, Result, bail};
use clap::Args;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Instant;
use switchboard::config::Settings;
use switchboard::core::classify::Triage;
use switchboard::core::classify::eval::{
    Decided, EvalItem, EvalReport, evaluate_decisions, evaluate_triage, split_near_duplicates,
};
use switchboard::core::classify::model::{CorpusFile, TrainingInfo};
use switchboard::core::classify::train::{
    Example, TrainConfig, choose_urgent_threshold, cross_validate, prepare, train_model,
};
use switchboard::core::policy::Policy;

const DEFAULT_TRAIN: &str = "config/corpus/train";
const DEFAULT_HELDOUT: &str = "config/corpus/heldout";
const DEFAULT_MODEL: &str = "config/models/triage.model";

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Labelled requests to learn from: JSON Lines files or directories of them
    /// (format: config/corpus/README.md). Repeat for several.
    #[arg(long = "corpus", default_value = DEFAULT_TRAIN)]
    corpus: Vec<PathBuf>,
    /// Also learn from agents' reclassifications stored in the database (each counts twice).
    #[arg(long)]
    with_corrections: bool,
    /// Model file to write; default: the file the policy's `[classification] model` names, else
    /// config/models/triage.model.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Cross-validate with this many folds first (prints honest figures and chooses the urgent
    /// threshold); 0 skips it and keeps the threshold at 0.5.
    #[arg(long, default_value_t = 5)]
    folds: usize,
    /// Passes over the examples.
    #[arg(long, default_value_t = TrainConfig::default().epochs)]
    epochs: usize,
    /// AdaGrad's step size.
    #[arg(long, default_value_t = TrainConfig::default().learning_rate)]
    learning_rate: f64,
    /// L2 regularisation: more keeps weights small and the model closer to general words.
    #[arg(long, default_value_t = TrainConfig::default().l2)]
    l2: f64,
    /// Leave out features seen in fewer training items than this.
    #[arg(long, default_value_t = TrainConfig::default().min_count)]
    min_count: usize,
    /// Training weight of an urgent item (more weight: fewer missed urgent requests).
    #[arg(long, default_value_t = TrainConfig::default().urgent_weight)]
    urgent_weight: f64,
    /// Seed of the shuffles (the same seed and corpus give the same model, byte for byte).
    #[arg(long, default_value_t = TrainConfig::default().seed)]
    seed: u64,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Labelled requests to score: JSON Lines files or directories (default: the held-out set).
    #[arg(long = "file", default_value = DEFAULT_HELDOUT)]
    files: Vec<PathBuf>,
    /// The training corpus: held-out items that are near-duplicates of its items are left out
    /// and listed, so nothing the model learned from is scored as new.
    #[arg(long = "corpus", default_value = DEFAULT_TRAIN)]
    corpus: Vec<PathBuf>,
    /// Score the rules alone, as if the policy named no model.
    #[arg(long)]
    rules_only: bool,
    /// Instead of the held-out set: k-fold cross-validation on the training corpus.
    #[arg(long)]
    cv: Option<usize>,
    /// Character 4-gram overlap (Jaccard) from which two texts count as near-duplicates.
    #[arg(long, default_value_t = 0.6)]
    duplicate_overlap: f64,
}

/// Every JSON Lines file named, directories expanded (sorted, so runs are reproducible).
fn corpus_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("cannot list {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "jsonl"))
                .collect();
            files.sort();
            if files.is_empty() {
                bail!("{} holds no .jsonl files", p.display());
            }
            out.extend(files);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Read labelled items; an unreadable line names its file and line.
fn read_items(paths: &[PathBuf]) -> Result<(Vec<EvalItem>, Vec<CorpusFile>)> {
    let mut items = Vec::new();
    let mut files = Vec::new();
    let mut ids = HashSet::new();
    for file in corpus_files(paths)? {
        let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
        let text = std::str::from_utf8(&bytes).with_context(|| format!("{} is not UTF-8", file.display()))?;
        let mut n = 0;
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let item: EvalItem = serde_json::from_str(line).with_context(|| {
                format!(
                    "{} line {}: not a labelled request (see config/corpus/README.md)",
                    file.display(),
                    i + 1
                )
            })?;
            if !ids.insert(item.id.clone()) {
                bail!("{} line {}: id {} appears twice", file.display(), i + 1, item.id);
            }
            items.push(item);
            n += 1;
        }
        files.push(CorpusFile {
            path: file.display().to_string(),
            items: n,
            sha256: hex(&Sha256::digest(&bytes)),
        });
    }
    Ok((items, files))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn example(item: &EvalItem, weight: f64) -> Example {
    Example {
        id: item.id.clone(),
        subject: item.subject.clone(),
        body: item.body.clone(),
        channel: item.channel.clone(),
        category: item.category.clone(),
        priority: item.priority.clone(),
        weight,
    }
}

/// The policy's rules without any model: what training starts from.
fn rules_only(policy: &Policy) -> Result<Triage> {
    policy.triage.with_model(None).map_err(anyhow::Error::msg)
}

/// Where `train` writes: `--out`, else the file the policy names (already resolved against the
/// policy file that names it), else the default.
fn model_path(policy: &Policy, out: Option<PathBuf>) -> PathBuf {
    out.or_else(|| policy.doc.classification.model.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_MODEL))
}

pub async fn train(settings: Settings, args: TrainArgs) -> Result<()> {
    let started = Instant::now();
    let policy = Policy::load_rules(&settings.policy_path)?;
    let triage = rules_only(&policy)?;
    let (items, corpus) = read_items(&args.corpus)?;
    let mut examples: Vec<Example> = items.iter().map(|i| example(i, 1.0)).collect();
    let mut corrections = 0;
    if args.with_corrections {
        let db = switchboard::store::Db::connect(&settings)
            .await
            .context("--with-corrections reads agents' reclassifications from the database")?;
        for row in switchboard::store::tickets::corrections_for_training(&db).await? {
            let Some(priority) = row.priority else {
                continue; // corrected before prioritisation: no priority label to learn
            };
            examples.push(Example {
                id: format!("correction:{}", row.number),
                subject: row.subject,
                body: row.body,
                channel: row.channel,
                category: row.category,
                priority,
                // A person looked at this ticket and decided: worth two written examples.
                weight: 2.0,
            });
            corrections += 1;
        }
    }
    eprintln!(
        "training on {} labelled requests from {} files{}",
        examples.len(),
        corpus.len(),
        if args.with_corrections {
            format!(" and {corrections} agents' corrections")
        } else {
            String::new()
        }
    );
    let cfg = TrainConfig {
        epochs: args.epochs,
        learning_rate: args.learning_rate,
        l2: args.l2,
        min_count: args.min_count,
        seed: args.seed,
        urgent_weight: args.urgent_weight,
        ..TrainConfig::default()
    };
    let info = TrainingInfo::new(&cfg, corpus, corrections);
    let (model, cv) = train_model(&triage, &examples, &cfg, args.folds, info, &mut |f, k| {
        eprint!("\rcross-validation: fold {f}/{k}");
        let _ = std::io::stderr().flush();
    })
    .map_err(anyhow::Error::msg)?;
    if let Some(cv) = &cv {
        eprintln!(
            "\n{}-fold cross-validation: category {:.1}%, urgent recall {:.1}% at urgent threshold {:.2}",
            cv.folds,
            cv.category_accuracy * 100.0,
            cv.urgent_recall * 100.0,
            cv.urgent_threshold
        );
    }
    let threshold = model.header.urgent_threshold;
    let text = model.to_text().map_err(anyhow::Error::msg)?;
    let out = model_path(&policy, args.out);
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // Write beside, then rename: a worker reading the file never sees half of it.
    let tmp = out.with_extension("model.tmp");
    std::fs::write(&tmp, &text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &out).with_context(|| format!("cannot replace {}", out.display()))?;
    println!(
        "wrote {} ({}, {} features, {:.1} MB, urgent threshold {:.2}) in {:.1} s",
        out.display(),
        model.version(),
        model.header.features,
        text.len() as f64 / 1e6,
        threshold,
        started.elapsed().as_secs_f64()
    );
    if policy.doc.classification.model.is_none() {
        println!(
            "the policy names no model yet: under [classification] add `model = \"{}\"` (an absolute path; a relative one is read relative to the policy file that holds it, e.g. {})",
            std::fs::canonicalize(&out).unwrap_or(out.clone()).display(),
            settings.policy_path.display()
        );
    }
    Ok(())
}

pub fn eval(settings: &Settings, args: EvalArgs) -> Result<()> {
    // The rules alone need no model file (it may not exist yet).
    let policy = if args.rules_only {
        Policy::load_rules(&settings.policy_path)?
    } else {
        Policy::load(&settings.policy_path)?
    };
    let triage = if args.rules_only {
        rules_only(&policy)?
    } else {
        policy.triage.as_ref().clone()
    };
    let decider = match triage.model() {
        Some(m) => format!("the rules and model {}", m.version()),
        None => "the rules alone".to_owned(),
    };
    if let Some(k) = args.cv {
        let (items, _) = read_items(&args.corpus)?;
        return cross_validation_report(&policy, &triage, &items, k, &decider);
    }
    let (items, _) = read_items(&args.files)?;
    let (train, _) = read_items(&args.corpus)?;
    let (scored, leaked) = split_near_duplicates(items, &train, args.duplicate_overlap);
    println!(
        "policy {} — {} labelled requests from {}, decided by {decider}",
        policy.version(),
        scored.len(),
        args.files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !leaked.is_empty() {
        println!(
            "left out {} near-duplicates of training items (4-gram overlap ≥ {:.0}%):",
            leaked.len(),
            args.duplicate_overlap * 100.0
        );
        for d in &leaked {
            println!("  {} ≈ {} ({:.0}%)", d.id, d.of, d.overlap * 100.0);
        }
    }
    println!();
    let report = evaluate_triage(&triage, &scored);
    println!("{report}");
    if !args.rules_only && triage.model().is_some() {
        let rules = evaluate_triage(&rules_only(&policy)?, &scored);
        print_comparison(&rules, &report);
    }
    Ok(())
}

fn print_comparison(rules: &EvalReport, both: &EvalReport) {
    println!("rules alone vs rules and model on the same items:");
    println!(
        "  category {:5.1}% → {:5.1}%   priority {:5.1}% → {:5.1}%   urgent recall {:5.1}% → {:5.1}%   cost/100 {:5.1} → {:5.1}",
        rules.category_accuracy() * 100.0,
        both.category_accuracy() * 100.0,
        rules.priority_accuracy() * 100.0,
        both.priority_accuracy() * 100.0,
        rules.urgent_recall() * 100.0,
        both.urgent_recall() * 100.0,
        rules.cost_per_100(),
        both.cost_per_100()
    );
}

/// k-fold cross-validation on the training corpus, reported like an evaluation: every item
/// decided by a model trained without it.
fn cross_validation_report(
    policy: &Policy,
    triage: &Triage,
    items: &[EvalItem],
    k: usize,
    decider: &str,
) -> Result<()> {
    let base = rules_only(policy)?;
    let examples: Vec<Example> = items.iter().map(|i| example(i, 1.0)).collect();
    let prepared = prepare(&base, &examples).map_err(anyhow::Error::msg)?;
    let cfg = TrainConfig::default();
    let preds = cross_validate(&prepared, k, &cfg, &mut |f, k| {
        eprint!("\rcross-validation: fold {f}/{k}");
        let _ = std::io::stderr().flush();
    })
    .map_err(anyhow::Error::msg)?;
    eprintln!();
    let threshold = triage
        .model()
        .map(|m| m.header.urgent_threshold)
        .unwrap_or_else(|| choose_urgent_threshold(&preds, &prepared.priority, cfg.missed_urgent_cost));
    let categories = prepared.categories.clone();
    let levels = prepared.priorities.clone();
    let triage_threshold = policy.doc.classification.triage_threshold;
    let mut next = 0;
    let report = evaluate_decisions(items, categories.clone(), levels.clone(), |item| {
        let p = &preds[next];
        next += 1;
        let top = p.category_order()[0];
        let level = p.priority_level(threshold);
        let estimate = switchboard::core::classify::ModelEstimate {
            model: "cross-validation".into(),
            level,
            probability: p.priority[level],
        };
        let prio = |category| {
            base.prioritizer()
                .prioritize_with(&item.priority_input(category), Some(&estimate))
                .priority
        };
        Decided {
            priority: prio(&categories[top]),
            priority_given_category: prio(&item.category),
            needs_triage: p.category[top] < triage_threshold,
            category: categories[top].clone(),
        }
    });
    println!(
        "policy {} — {k}-fold cross-validation on {} training requests (each decided by a model trained without it; {decider} otherwise)\n",
        policy.version(),
        items.len()
    );
    println!("{report}");
    Ok(())
}
