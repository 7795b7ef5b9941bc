//! `switchboard report`: the weekly or monthly service report (figures in `switchboard::core::report`).

use anyhow::{Context as _, Result};
use chrono::NaiveDate;
use std::path::PathBuf;
use switchboard::app::App;
use switchboard::config::Settings;
use switchboard::core::report::labels::{Labels, Lang};
use switchboard::core::report::render::{Format, render_in};
use switchboard::core::report::{Period, PeriodSpec, parse_quarter};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PeriodArg {
    /// The last complete week, Monday to Sunday.
    Week,
    /// The last complete calendar month.
    Month,
    /// The last complete calendar quarter (季报).
    Quarter,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("when").required(true).args(["period", "from", "quarter"])))]
pub struct ReportArgs {
    /// The last complete week (Monday–Sunday) or calendar month, in the policy's time zone.
    #[arg(long, value_enum, conflicts_with_all = ["from", "to", "quarter"])]
    period: Option<PeriodArg>,
    /// A given quarter, e.g. 2026-Q4 (policy time zone).
    #[arg(long, conflicts_with_all = ["from", "to"])]
    quarter: Option<String>,
    /// First day of the period (YYYY-MM-DD, policy time zone); needs --to.
    #[arg(long, requires = "to")]
    from: Option<NaiveDate>,
    /// Last day of the period, included (YYYY-MM-DD).
    #[arg(long, requires = "from")]
    to: Option<NaiveDate>,
    /// table (terminal), csv (section,item,metric,value), json, or html (one self-contained page
    /// with charts).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// en: ids as they are; zh: Chinese headings and the policy's Chinese names of categories,
    /// priorities, teams, SLA targets, channels and unsatisfied reasons.
    #[arg(long, value_enum, default_value_t = Lang::En)]
    lang: Lang,
    /// Write the report to this file instead of standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
}

pub async fn run(settings: Settings, args: ReportArgs) -> Result<()> {
    let spec = match (args.period, args.from, args.to, &args.quarter) {
        (Some(PeriodArg::Week), ..) => PeriodSpec::Week,
        (Some(PeriodArg::Month), ..) => PeriodSpec::Month,
        (Some(PeriodArg::Quarter), ..) => PeriodSpec::Quarter,
        (None, _, _, Some(q)) => {
            let (year, quarter) = parse_quarter(q)?;
            PeriodSpec::QuarterOf { year, quarter }
        }
        (None, Some(from), Some(to), None) => PeriodSpec::Dates { from, to },
        // clap enforces one of the forms.
        _ => anyhow::bail!("give --period week|month|quarter, --quarter YYYY-QN, or --from DATE --to DATE"),
    };
    let app = App::start(settings).await?;
    let now = chrono::Utc::now();
    let period = Period::resolve(spec, now, app.policy.tz)?;
    let report = switchboard::store::reports::report(&app.db, &app.policy, &period, now).await?;
    let labels = Labels::from_policy(&app.policy, args.lang);
    let text = render_in(&report, args.format, &labels)?;
    match args.output {
        Some(path) => {
            std::fs::write(&path, text).with_context(|| format!("cannot write the report to {}", path.display()))?;
            eprintln!(
                "report for {} ({} tickets received) written to {}",
                report.period.label,
                report.received,
                path.display()
            );
        }
        None => print!("{text}"),
    }
    Ok(())
}
