//! A [`Report`] as text: an aligned table for the terminal, CSV (one figure per row), JSON, or
//! one self-contained HTML page (inline CSS and SVG charts; nothing fetched from anywhere).

use super::labels::{Labels, Lang};
use super::review::{Breakdown, NONE, ReviewItem, ReviewReason};
use super::{Count, DurationStats, Problem, Report};
use std::fmt::Write as _;

/// A problem's matched phrases as `<phrase> ×<tickets>`, each phrase shown by `show` (quoted,
/// escaped) as the format needs.
fn phrase_counts(p: &Problem, show: impl Fn(&str) -> String) -> Vec<String> {
    p.phrases.iter().map(|(ph, n)| format!("{} ×{n}", show(ph))).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
    Html,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot write the report as JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot write the report as CSV: {0}")]
    Csv(String),
}

/// The report in English, items by their ids.
pub fn render(report: &Report, format: Format) -> Result<String, RenderError> {
    render_in(report, format, &Labels::default())
}

/// The report with `labels`: every category, priority, team, target, channel and reason shown
/// by its label and the headings in the labels' language. JSON keeps the ids and, in Chinese,
/// adds the labels as `labels`.
pub fn render_in(report: &Report, format: Format, l: &Labels) -> Result<String, RenderError> {
    Ok(match format {
        Format::Table => table_in(&labelled(report, l), l),
        Format::Csv => csv(&labelled(report, l))?,
        Format::Json => {
            let mut v = serde_json::to_value(report)?;
            if l.lang != Lang::En
                && let Some(o) = v.as_object_mut()
            {
                o.insert("labels".into(), serde_json::to_value(l)?);
            }
            serde_json::to_string_pretty(&v)? + "\n"
        }
        Format::Html => html_in(&labelled(report, l), l),
    })
}

/// A copy of the report with ids replaced by their labels.
pub fn labelled(r: &Report, l: &Labels) -> Report {
    let mut r = r.clone();
    let keys = |v: &mut Vec<Count>, f: &dyn Fn(&str) -> String| {
        for c in v.iter_mut() {
            c.key = f(&c.key);
        }
    };
    keys(&mut r.by_category, &|k| l.category(k));
    keys(&mut r.by_channel, &|k| l.channel(k));
    keys(&mut r.by_priority, &|k| l.priority(k));
    keys(&mut r.by_team, &|k| l.team(k));
    for t in &mut r.on_time {
        t.target = l.target(&t.target);
    }
    for e in &mut r.escalations {
        e.target = l.target(&e.target);
    }
    for p in r.problems.top.iter_mut().chain(r.suggestions.by_problem.top.iter_mut()) {
        p.category = l.category(&p.category);
    }
    let bk = |v: &mut Vec<Breakdown>, f: &dyn Fn(&str) -> String| {
        for b in v.iter_mut() {
            b.key = f(&b.key);
        }
    };
    bk(&mut r.breakdowns.by_category, &|k| l.category(k));
    bk(&mut r.breakdowns.by_priority, &|k| l.priority(k));
    bk(&mut r.breakdowns.by_team, &|k| l.team(k));
    for i in &mut r.review {
        i.category = i.category.as_deref().map(|c| l.category(c));
        i.priority = i.priority.as_deref().map(|c| l.priority(c));
        i.team = i.team.as_deref().map(|c| l.team(c));
        for reason in &mut i.reasons {
            match reason {
                ReviewReason::Late { target, .. } => *target = l.target(target),
                ReviewReason::Unsatisfied { reason: Some(code), .. } => *code = l.reason(code),
                _ => {}
            }
        }
    }
    for c in &mut r.unsatisfied.reasons {
        c.reason = if c.reason == NONE {
            l.t("(no reason given)").to_owned()
        } else {
            l.reason(&c.reason)
        };
    }
    r.suggestions.category = l.category(&r.suggestions.category);
    r
}

/// One review item on one line: number, what it is, and every reason.
pub fn review_line(i: &ReviewItem, l: &Labels) -> String {
    let what = [&i.category, &i.priority, &i.team]
        .iter()
        .map(|v| v.as_deref().unwrap_or(NONE).to_owned())
        .chain(std::iter::once(
            i.assignee.clone().unwrap_or_else(|| l.t("unassigned").to_owned()),
        ))
        .collect::<Vec<_>>()
        .join(" / ");
    let reasons: Vec<String> = i
        .reasons
        .iter()
        .map(|r| match r {
            ReviewReason::Late {
                target,
                met_at,
                late_seconds,
                ..
            } => format!(
                "{target} {} {}{}",
                l.t("late by"),
                human_duration(*late_seconds as f64),
                if met_at.is_none() {
                    format!(" ({})", l.t("breached"))
                } else {
                    String::new()
                }
            ),
            ReviewReason::Unresolved { state, open_seconds } => {
                format!(
                    "{} ({state}, {})",
                    l.t("still open"),
                    human_duration(*open_seconds as f64)
                )
            }
            ReviewReason::Unsatisfied { rating, reason } => format!(
                "{} {rating}/5: {}",
                l.t("rated"),
                reason.clone().unwrap_or_else(|| l.t("(no reason given)").to_owned())
            ),
        })
        .collect();
    format!("{} [{what}] {}", i.number, reasons.join("; "))
}

fn breakdown_sets(r: &Report) -> [(&'static str, &Vec<Breakdown>); 4] {
    [
        ("category", &r.breakdowns.by_category),
        ("priority", &r.breakdowns.by_priority),
        ("team", &r.breakdowns.by_team),
        ("agent", &r.breakdowns.by_agent),
    ]
}

fn csat_mean(m: Option<f64>) -> String {
    m.map(|m| format!("{m:.2}")).unwrap_or_else(|| "–".into())
}

/// `45s`, `12m 30s`, `3h 05m`, `2d 04h`.
pub fn human_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as i64;
    match s {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {:02}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d {:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

fn pct(rate: Option<f64>) -> String {
    rate.map(|r| format!("{:.1}%", r * 100.0)).unwrap_or_else(|| "–".into())
}

fn dur(v: Option<f64>) -> String {
    v.map(human_duration).unwrap_or_else(|| "–".into())
}

fn dur_i(v: Option<i64>) -> String {
    dur(v.map(|x| x as f64))
}

fn header_line(r: &Report, l: &Labels) -> String {
    format!(
        "{}: {} ({} to {}, {})",
        l.t("Switchboard service report"),
        r.period.label,
        r.period.first_day,
        r.period.last_day,
        r.period.time_zone
    )
}

fn basis_line(r: &Report) -> String {
    format!(
        "Figures cover {} ({} UTC); policy {}.",
        r.population,
        r.generated_at.format("%Y-%m-%d %H:%M:%S"),
        r.policy_version
    )
}

// ---------------------------------------------------------------------------------------------
// Table
// ---------------------------------------------------------------------------------------------

pub fn table(r: &Report) -> String {
    table_in(r, &Labels::default())
}

/// The table of an already [`labelled`] report, headings in `l`'s language.
pub fn table_in(r: &Report, l: &Labels) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{}", header_line(r, l));
    let _ = writeln!(o, "{}", basis_line(r));
    let _ = writeln!(o);
    let _ = writeln!(o, "{}: {}", l.t("Tickets received"), r.received);
    let _ = writeln!(o);
    let _ = writeln!(o, "{:<36} {:>8} {:>7}", l.t("Volume"), l.t("tickets"), l.t("share"));
    for (name, counts) in volumes(r) {
        let _ = writeln!(o, "  {} {}", l.t("by"), l.t(name));
        for c in counts {
            let _ = writeln!(o, "    {:<32} {:>8} {:>7}", c.key, c.count, pct(Some(c.share)));
        }
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{:<36} {:>8} {:>9} {:>9} {:>9}",
        l.t("Handling time"),
        l.t("tickets"),
        "mean",
        "p50",
        "p90"
    );
    for (name, s) in [
        ("first response", &r.first_response),
        ("resolution (excl. waiting)", &r.resolution),
    ] {
        let _ = writeln!(
            o,
            "  {:<34} {:>8} {:>9} {:>9} {:>9}",
            l.t(name),
            s.count,
            dur(s.mean_seconds),
            dur_i(s.p50_seconds),
            dur_i(s.p90_seconds)
        );
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{:<36} {:>8} {:>6} {:>8} {:>9} {:>7}",
        l.t("SLA on-time rate"),
        l.t("on time"),
        l.t("late"),
        l.t("breached"),
        l.t("undecided"),
        l.t("rate")
    );
    for t in &r.on_time {
        let _ = writeln!(
            o,
            "  {:<34} {:>8} {:>6} {:>8} {:>9} {:>7}",
            t.target,
            t.on_time,
            t.late,
            t.breached,
            t.undecided,
            pct(t.rate)
        );
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{:<36} {:>8} {:>6} {:>12}",
        l.t("Escalations"),
        l.t("tickets"),
        l.t("steps"),
        l.t("acknowledged")
    );
    if r.escalations.is_empty() {
        let _ = writeln!(o, "  none");
    }
    for e in &r.escalations {
        let _ = writeln!(
            o,
            "  {:<34} {:>8} {:>6} {:>12}",
            e.target, e.tickets, e.steps, e.acknowledged
        );
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "Resolution rate: {} of {} resolved or closed ({})",
        r.resolution_rate.count,
        r.resolution_rate.of,
        pct(r.resolution_rate.rate)
    );
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "Customer satisfaction (1-5): mean {} from {} ratings",
        r.csat.mean.map(|m| format!("{m:.2}")).unwrap_or_else(|| "–".into()),
        r.csat.rated
    );
    let most = r.csat.distribution.iter().copied().max().unwrap_or(0).max(1);
    for (i, n) in r.csat.distribution.iter().enumerate() {
        let bar = "#".repeat(((*n as f64 / most as f64) * 30.0).round() as usize);
        let share = (r.csat.rated > 0).then(|| *n as f64 / r.csat.rated as f64);
        let _ = writeln!(o, "  {}  {:>6} {:>7}  {bar}", i + 1, n, pct(share));
    }
    let _ = writeln!(o);
    let rc = &r.repeat_complaints;
    let _ = writeln!(
        o,
        "Repeat complaints: {} of {} complaints ({}) came from a customer who had complained in the {} days before",
        rc.repeats,
        rc.complaints,
        pct(rc.rate),
        rc.window_days
    );
    if rc.unidentified > 0 {
        let _ = writeln!(
            o,
            "  ({} complaints had no customer id, phone or email and cannot be matched)",
            rc.unidentified
        );
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "Most frequent problems (classifier rules of the winning category, tickets each)"
    );
    if r.problems.top.is_empty() {
        let _ = writeln!(o, "  none");
    }
    let cat_w = r
        .problems
        .top
        .iter()
        .map(|p| p.category.chars().count())
        .max()
        .unwrap_or(0);
    let rule_w = r.problems.top.iter().map(|p| p.rule.chars().count()).max().unwrap_or(0);
    for (i, p) in r.problems.top.iter().enumerate() {
        let phrases = phrase_counts(p, |ph| format!("\"{ph}\""));
        let _ = writeln!(
            o,
            "  {:>2}. {:<cat_w$}  {:<rule_w$} {:>5}  {}",
            i + 1,
            p.category,
            p.rule,
            p.tickets,
            phrases.join(", ")
        );
    }
    if r.problems.no_rule + r.problems.unclassified > 0 {
        let _ = writeln!(
            o,
            "  ({} tickets matched no rule of their category; {} have no classification in the log)",
            r.problems.no_rule, r.problems.unclassified
        );
    }
    review_table(&mut o, r, l);
    o
}

/// The review sections of the table: breakdowns, the 复盘 list, unsatisfied reasons, suggestions.
fn review_table(o: &mut String, r: &Report, l: &Labels) {
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{:<36} {:>7} {:>8} {:>15} {:>8} {:>8} {:>6}",
        l.t("Breakdown"),
        l.t("tickets"),
        l.t("resolved"),
        l.t("mean resolution"),
        "FR ok",
        "res ok",
        l.t("CSAT")
    );
    for (name, rows) in breakdown_sets(r) {
        let _ = writeln!(o, "  {} {}", l.t("by"), l.t(name));
        for b in rows {
            let _ = writeln!(
                o,
                "    {:<32} {:>7} {:>8} {:>15} {:>8} {:>8} {:>6}",
                b.key,
                b.tickets,
                b.resolved,
                dur(b.mean_resolution_seconds),
                pct(b.first_response_on_time.rate),
                pct(b.resolution_on_time.rate),
                csat_mean(b.csat_mean)
            );
        }
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{} ({})",
        l.t("Review (late, unresolved, unsatisfied)"),
        r.review.len()
    );
    if r.review.is_empty() {
        let _ = writeln!(o, "  {}", l.t("none"));
    }
    for i in &r.review {
        let _ = writeln!(o, "  {}", review_line(i, l));
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{} (≤ {}: {})",
        l.t("Unsatisfied reasons"),
        r.unsatisfied.at_or_below,
        r.unsatisfied.tickets
    );
    for c in &r.unsatisfied.reasons {
        let _ = writeln!(o, "  {:<40} {:>6}", c.reason, c.count);
    }
    let _ = writeln!(o);
    let s = &r.suggestions;
    let _ = writeln!(
        o,
        "{} ({}: {}, {} {})",
        l.t("Suggestions for product management"),
        s.category,
        s.tickets,
        s.resolved,
        l.t("resolved")
    );
    if s.by_problem.top.is_empty() {
        let _ = writeln!(o, "  {}", l.t("none"));
    }
    for p in &s.by_problem.top {
        let phrases = phrase_counts(p, |ph| format!("\"{ph}\""));
        let _ = writeln!(o, "  {:<40} {:>5}  {}", p.rule, p.tickets, phrases.join(", "));
    }
    if s.by_problem.no_rule + s.by_problem.unclassified > 0 {
        let _ = writeln!(
            o,
            "  ({} matched no rule; {} unclassified)",
            s.by_problem.no_rule, s.by_problem.unclassified
        );
    }
}

fn volumes(r: &Report) -> [(&'static str, &Vec<Count>); 4] {
    [
        ("category", &r.by_category),
        ("channel", &r.by_channel),
        ("priority", &r.by_priority),
        ("team", &r.by_team),
    ]
}

// ---------------------------------------------------------------------------------------------
// CSV: section,item,metric,value
// ---------------------------------------------------------------------------------------------

pub fn csv(r: &Report) -> Result<String, RenderError> {
    let mut rows: Vec<[String; 4]> = Vec::new();
    let mut put = |section: &str, item: &str, metric: &str, value: String| {
        rows.push([section.into(), item.into(), metric.into(), value]);
    };
    let opt = |v: Option<f64>| v.map(|x| format!("{x:.4}")).unwrap_or_default();
    let opt_i = |v: Option<i64>| v.map(|x| x.to_string()).unwrap_or_default();
    put("period", "label", "text", r.period.label.clone());
    put("period", "first_day", "date", r.period.first_day.to_string());
    put("period", "last_day", "date", r.period.last_day.to_string());
    put("period", "time_zone", "text", r.period.time_zone.clone());
    put("period", "population", "text", r.population.into());
    put("period", "generated_at", "utc", r.generated_at.to_rfc3339());
    put("period", "policy_version", "text", r.policy_version.clone());
    put("volume", "received", "tickets", r.received.to_string());
    for (name, counts) in volumes(r) {
        for c in counts {
            put(&format!("by_{name}"), &c.key, "tickets", c.count.to_string());
            put(&format!("by_{name}"), &c.key, "share", format!("{:.4}", c.share));
        }
    }
    let mut times = |section: &str, s: &DurationStats| {
        put(section, "all", "tickets", s.count.to_string());
        put(section, "all", "mean_seconds", opt(s.mean_seconds));
        put(section, "all", "p50_seconds", opt_i(s.p50_seconds));
        put(section, "all", "p90_seconds", opt_i(s.p90_seconds));
    };
    times("first_response_time", &r.first_response);
    times("resolution_time", &r.resolution);
    for t in &r.on_time {
        put("sla_on_time", &t.target, "on_time", t.on_time.to_string());
        put("sla_on_time", &t.target, "late", t.late.to_string());
        put("sla_on_time", &t.target, "breached", t.breached.to_string());
        put("sla_on_time", &t.target, "undecided", t.undecided.to_string());
        put("sla_on_time", &t.target, "rate", opt(t.rate));
    }
    for e in &r.escalations {
        put("escalations", &e.target, "tickets", e.tickets.to_string());
        put("escalations", &e.target, "steps", e.steps.to_string());
        put("escalations", &e.target, "acknowledged", e.acknowledged.to_string());
    }
    put(
        "resolution_rate",
        "all",
        "resolved_or_closed",
        r.resolution_rate.count.to_string(),
    );
    put("resolution_rate", "all", "received", r.resolution_rate.of.to_string());
    put("resolution_rate", "all", "rate", opt(r.resolution_rate.rate));
    put("csat", "all", "rated", r.csat.rated.to_string());
    put("csat", "all", "mean", opt(r.csat.mean));
    for (i, n) in r.csat.distribution.iter().enumerate() {
        put("csat", &(i + 1).to_string(), "tickets", n.to_string());
    }
    let rc = &r.repeat_complaints;
    put("repeat_complaints", "all", "complaints", rc.complaints.to_string());
    put("repeat_complaints", "all", "repeats", rc.repeats.to_string());
    put("repeat_complaints", "all", "unidentified", rc.unidentified.to_string());
    put("repeat_complaints", "all", "window_days", rc.window_days.to_string());
    put("repeat_complaints", "all", "rate", opt(rc.rate));
    for p in &r.problems.top {
        let item = format!("{}: {}", p.category, p.rule);
        put("problems", &item, "tickets", p.tickets.to_string());
        let phrases = phrase_counts(p, str::to_owned);
        put("problems", &item, "phrases", phrases.join("; "));
    }
    put("problems", "no_rule", "tickets", r.problems.no_rule.to_string());
    put(
        "problems",
        "unclassified",
        "tickets",
        r.problems.unclassified.to_string(),
    );

    for (name, rows) in breakdown_sets(r) {
        let section = format!("breakdown_{name}");
        for b in rows {
            put(&section, &b.key, "tickets", b.tickets.to_string());
            put(&section, &b.key, "resolved", b.resolved.to_string());
            put(
                &section,
                &b.key,
                "mean_resolution_seconds",
                opt(b.mean_resolution_seconds),
            );
            put(
                &section,
                &b.key,
                "first_response_on_time_rate",
                opt(b.first_response_on_time.rate),
            );
            put(
                &section,
                &b.key,
                "resolution_on_time_rate",
                opt(b.resolution_on_time.rate),
            );
            put(&section, &b.key, "rated", b.rated.to_string());
            put(&section, &b.key, "csat_mean", opt(b.csat_mean));
        }
    }
    for i in &r.review {
        for reason in &i.reasons {
            let (metric, value) = match reason {
                ReviewReason::Late {
                    target, late_seconds, ..
                } => (format!("late:{target}"), late_seconds.to_string()),
                ReviewReason::Unresolved { state, open_seconds } => {
                    (format!("unresolved:{state}"), open_seconds.to_string())
                }
                ReviewReason::Unsatisfied { rating, reason } => (
                    format!("unsatisfied:{}", reason.as_deref().unwrap_or(NONE)),
                    rating.to_string(),
                ),
            };
            put("review", &i.number, &metric, value);
        }
    }
    for c in &r.unsatisfied.reasons {
        put("unsatisfied_reasons", &c.reason, "tickets", c.count.to_string());
    }
    let s = &r.suggestions;
    put("suggestions", &s.category, "tickets", s.tickets.to_string());
    put("suggestions", &s.category, "resolved", s.resolved.to_string());
    for p in &s.by_problem.top {
        put("suggestions", &p.rule, "tickets", p.tickets.to_string());
        let phrases = phrase_counts(p, str::to_owned);
        put("suggestions", &p.rule, "phrases", phrases.join("; "));
    }

    let mut w = ::csv::Writer::from_writer(Vec::new());
    let err = |e: ::csv::Error| RenderError::Csv(e.to_string());
    w.write_record(["section", "item", "metric", "value"]).map_err(err)?;
    for row in &rows {
        w.write_record(row).map_err(err)?;
    }
    let bytes = w.into_inner().map_err(|e| RenderError::Csv(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| RenderError::Csv(e.to_string()))
}

// ---------------------------------------------------------------------------------------------
// HTML
// ---------------------------------------------------------------------------------------------

pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const CSS: &str = "body{font-family:system-ui,-apple-system,'Segoe UI','PingFang SC','Microsoft YaHei',sans-serif;margin:2rem auto;max-width:60rem;color:#1f2933;padding:0 1rem}\
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #d9e2ec;padding-bottom:.3rem}\
.meta{color:#52606d;font-size:.9rem}.big{font-size:2rem;font-weight:600}\
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(26rem,1fr));gap:1rem}\
table{border-collapse:collapse;margin:.5rem 0}td,th{padding:.25rem .7rem;text-align:right;border-bottom:1px solid #eef2f7}\
td:first-child,th:first-child{text-align:left}th{color:#52606d;font-weight:600}\
svg.chart text{font-size:12px;fill:#1f2933}svg.chart .value{fill:#52606d}.note{color:#52606d;font-size:.85rem}";

/// Roughly how wide `s` is at 12px: CJK characters take about twice a Latin one.
fn text_width(s: &str) -> f64 {
    s.chars().map(|c| if c.is_ascii() { 7.0 } else { 13.0 }).sum()
}

/// Horizontal bars: one row per item, scaled to the largest value.
pub fn bar_chart(title: &str, items: &[(String, f64, String)]) -> String {
    let row = 24.0;
    let height = (items.len().max(1) as f64) * row + 8.0;
    let label_w = items
        .iter()
        .map(|i| text_width(&i.0))
        .fold(60.0f64, f64::max)
        .min(340.0)
        + 8.0;
    let bar_x = label_w + 8.0;
    let width = bar_x + 300.0 + 90.0;
    let max = items.iter().map(|i| i.1).fold(0.0f64, f64::max).max(f64::MIN_POSITIVE);
    let mut s = format!(
        "<svg class=\"chart\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"{t}\"><title>{t}</title>",
        t = escape(title)
    );
    if items.is_empty() {
        s.push_str("<text x=\"0\" y=\"18\">no data</text>");
    }
    for (i, (label, value, shown)) in items.iter().enumerate() {
        let y = i as f64 * row + 4.0;
        let w = (value / max * 300.0).max(if *value > 0.0 { 1.0 } else { 0.0 });
        let _ = write!(
            s,
            "<text x=\"{label_w}\" y=\"{ty}\" text-anchor=\"end\">{l}</text><rect x=\"{bar_x}\" y=\"{y}\" width=\"{w:.1}\" height=\"18\" rx=\"2\" fill=\"#3e7bfa\"/><text class=\"value\" x=\"{vx:.1}\" y=\"{ty}\">{v}</text>",
            ty = y + 14.0,
            l = escape(label),
            vx = bar_x + w + 6.0,
            v = escape(shown)
        );
    }
    s.push_str("</svg>");
    s
}

/// The CSAT histogram: one vertical bar per score 1–5.
pub fn histogram(title: &str, distribution: &[u64; 5]) -> String {
    let max = distribution.iter().copied().max().unwrap_or(0).max(1) as f64;
    let colours = ["#d64545", "#f0854f", "#f7c948", "#7bc47f", "#2f9e44"];
    let mut s = format!(
        "<svg class=\"chart\" width=\"360\" height=\"200\" viewBox=\"0 0 360 200\" role=\"img\" aria-label=\"{t}\"><title>{t}</title><line x1=\"20\" y1=\"170\" x2=\"350\" y2=\"170\" stroke=\"#9aa5b1\"/>",
        t = escape(title)
    );
    for (i, (n, colour)) in distribution.iter().zip(colours).enumerate() {
        let h = *n as f64 / max * 140.0;
        let x = 30.0 + i as f64 * 64.0;
        let _ = write!(
            s,
            "<rect x=\"{x}\" y=\"{y:.1}\" width=\"44\" height=\"{h:.1}\" rx=\"2\" fill=\"{colour}\"/><text class=\"value\" x=\"{cx}\" y=\"{ly:.1}\" text-anchor=\"middle\">{n}</text><text x=\"{cx}\" y=\"188\" text-anchor=\"middle\">{score}</text>",
            y = 170.0 - h,
            cx = x + 22.0,
            ly = 170.0 - h - 4.0,
            score = i + 1
        );
    }
    s.push_str("</svg>");
    s
}

fn count_items(counts: &[Count]) -> Vec<(String, f64, String)> {
    counts
        .iter()
        .map(|c| {
            (
                c.key.clone(),
                c.count as f64,
                format!("{} ({})", c.count, pct(Some(c.share))),
            )
        })
        .collect()
}

pub fn html(r: &Report) -> String {
    html_in(r, &Labels::default())
}

/// The page of an already [`labelled`] report.
pub fn html_in(r: &Report, l: &Labels) -> String {
    let mut o = String::new();
    let title = format!("{}: {}", l.t("Switchboard service report"), r.period.label);
    let lang = if l.lang == Lang::Zh { "zh-Hans" } else { "en" };
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{}</title><style>{CSS}</style></head><body>\n",
        escape(&title)
    );
    let _ = writeln!(
        o,
        "<h1>{}</h1><p class=\"meta\">{}<br>{}</p>",
        escape(&header_line(r, l)),
        escape(&format!(
            "{} to {} ({}).",
            r.period.from.to_rfc3339(),
            r.period.to.to_rfc3339(),
            "UTC, end excluded"
        )),
        escape(&basis_line(r))
    );
    let _ = writeln!(
        o,
        "<p><span class=\"big\">{}</span> tickets received · resolution rate <b>{}</b> · CSAT <b>{}</b></p>",
        r.received,
        pct(r.resolution_rate.rate),
        r.csat.mean.map(|m| format!("{m:.2}")).unwrap_or_else(|| "–".into())
    );

    o.push_str("<h2>Volume</h2><div class=\"grid\">");
    for (name, counts) in volumes(r) {
        let _ = write!(
            o,
            "<div><h3>By {}</h3>{}</div>",
            name,
            bar_chart(&format!("Tickets by {name}"), &count_items(counts))
        );
    }
    o.push_str("</div>\n");

    o.push_str("<h2>Handling time</h2><table><tr><th></th><th>tickets</th><th>mean</th><th>p50</th><th>p90</th></tr>");
    for (name, s) in [
        ("First response", &r.first_response),
        ("Resolution (waiting for the customer excluded)", &r.resolution),
    ] {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(name),
            s.count,
            dur(s.mean_seconds),
            dur_i(s.p50_seconds),
            dur_i(s.p90_seconds)
        );
    }
    o.push_str("</table>\n");

    o.push_str("<h2>SLA on-time rate</h2><table><tr><th>target</th><th>on time</th><th>late</th><th>breached</th><th>undecided</th><th>rate</th></tr>");
    for t in &r.on_time {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&t.target),
            t.on_time,
            t.late,
            t.breached,
            t.undecided,
            pct(t.rate)
        );
    }
    o.push_str("</table>");
    let rates: Vec<(String, f64, String)> = r
        .on_time
        .iter()
        .map(|t| (t.target.clone(), t.rate.unwrap_or(0.0) * 100.0, pct(t.rate)))
        .collect();
    o.push_str(&bar_chart("On-time rate by SLA target", &rates));
    o.push_str("<p class=\"note\">Rate = met on time ÷ (on time + met late + breached). Undecided: still running, paused while waiting for the customer, or not applicable.</p>\n");

    o.push_str("<h2>Escalations</h2>");
    if r.escalations.is_empty() {
        o.push_str("<p>None.</p>");
    } else {
        o.push_str("<table><tr><th>target</th><th>tickets</th><th>steps sent</th><th>acknowledged</th></tr>");
        for e in &r.escalations {
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&e.target),
                e.tickets,
                e.steps,
                e.acknowledged
            );
        }
        o.push_str("</table>");
    }
    o.push('\n');

    let _ = writeln!(
        o,
        "<h2>Resolution rate</h2><p>{} of {} tickets resolved or closed: <b>{}</b>.</p>",
        r.resolution_rate.count,
        r.resolution_rate.of,
        pct(r.resolution_rate.rate)
    );

    let _ = writeln!(
        o,
        "<h2>Customer satisfaction</h2><p>Mean <b>{}</b> from {} ratings (1 = very unsatisfied, 5 = very satisfied).</p>{}",
        r.csat.mean.map(|m| format!("{m:.2}")).unwrap_or_else(|| "–".into()),
        r.csat.rated,
        histogram("Ratings 1 to 5", &r.csat.distribution)
    );

    let rc = &r.repeat_complaints;
    let _ = writeln!(
        o,
        "<h2>Repeat complaints</h2><p>{} of {} complaints (<b>{}</b>) came from a customer who had complained in the {} days before.{}</p>",
        rc.repeats,
        rc.complaints,
        pct(rc.rate),
        rc.window_days,
        if rc.unidentified > 0 {
            format!(
                " {} complaints had no customer id, phone or email and cannot be matched.",
                rc.unidentified
            )
        } else {
            String::new()
        }
    );

    o.push_str("<h2>Most frequent problems</h2>");
    if r.problems.top.is_empty() {
        o.push_str("<p>None recorded.</p>");
    } else {
        let items: Vec<(String, f64, String)> = r
            .problems
            .top
            .iter()
            .map(|p| {
                (
                    format!("{}: {}", p.category, p.rule),
                    p.tickets as f64,
                    p.tickets.to_string(),
                )
            })
            .collect();
        o.push_str(&bar_chart("Tickets per problem", &items));
        o.push_str("<table><tr><th>category</th><th>problem (classifier rule)</th><th>tickets</th><th>phrases matched</th></tr>");
        for p in &r.problems.top {
            let phrases = phrase_counts(p, |ph| format!("“{}”", escape(ph)));
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td style=\"text-align:left\">{}</td></tr>",
                escape(&p.category),
                escape(&p.rule),
                p.tickets,
                phrases.join(", ")
            );
        }
        o.push_str("</table>");
    }
    let _ = writeln!(
        o,
        "<p class=\"note\">Counted once per ticket from the classifier's reasons for its category. {} tickets matched no rule of their category; {} have no classification in the transition log.</p>",
        r.problems.no_rule, r.problems.unclassified
    );
    review_html(&mut o, r, l);
    o.push_str("</body></html>\n");
    o
}

fn review_html(o: &mut String, r: &Report, l: &Labels) {
    let _ = write!(o, "<h2>{}</h2>", escape(l.t("Breakdown")));
    for (name, rows) in breakdown_sets(r) {
        let _ = write!(
            o,
            "<h3>{} {}</h3><table><tr><th></th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            escape(l.t("by")),
            escape(l.t(name)),
            escape(l.t("tickets")),
            escape(l.t("resolved")),
            escape(l.t("mean resolution")),
            escape(l.t("first response on time")),
            escape(l.t("resolution on time")),
            escape(l.t("CSAT"))
        );
        for b in rows {
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&b.key),
                b.tickets,
                b.resolved,
                dur(b.mean_resolution_seconds),
                pct(b.first_response_on_time.rate),
                pct(b.resolution_on_time.rate),
                csat_mean(b.csat_mean)
            );
        }
        o.push_str("</table>");
    }
    let _ = write!(
        o,
        "\n<h2>{} ({})</h2>",
        escape(l.t("Review (late, unresolved, unsatisfied)")),
        r.review.len()
    );
    if r.review.is_empty() {
        let _ = write!(o, "<p>{}</p>", escape(l.t("none")));
    } else {
        o.push_str("<ul>");
        for i in &r.review {
            let _ = write!(o, "<li>{}</li>", escape(&review_line(i, l)));
        }
        o.push_str("</ul>");
    }
    let _ = write!(o, "\n<h2>{}</h2><table>", escape(l.t("Unsatisfied reasons")));
    for c in &r.unsatisfied.reasons {
        let _ = write!(o, "<tr><td>{}</td><td>{}</td></tr>", escape(&c.reason), c.count);
    }
    o.push_str("</table>");
    let s = &r.suggestions;
    let _ = write!(
        o,
        "\n<h2>{}</h2><p>{}: {} · {} {}</p>",
        escape(l.t("Suggestions for product management")),
        escape(&s.category),
        s.tickets,
        s.resolved,
        escape(l.t("resolved"))
    );
    if !s.by_problem.top.is_empty() {
        o.push_str("<table>");
        for p in &s.by_problem.top {
            let phrases = phrase_counts(p, |ph| format!("“{}”", escape(ph)));
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td style=\"text-align:left\">{}</td></tr>",
                escape(&p.rule),
                p.tickets,
                phrases.join(", ")
            );
        }
        o.push_str("</table>");
    }
    o.push('\n');
}
