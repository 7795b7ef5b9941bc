//! `switchboard calendar`: public holidays and make-up workdays (import an iCalendar feed,
//! check that the coming year is declared, show what the calendars hold).

use anyhow::{Context as _, Result, bail};
use chrono::Utc;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use switchboard::config::Settings;
use switchboard::core::calendar::{PublicHolidayYear, PublicHolidays, WARN_FROM_MONTH, ics};
use switchboard::core::policy::Policy;

use super::output::{Format, FormatArg, Listing};

#[derive(Debug, clap::Subcommand)]
pub enum CalendarCommand {
    /// Read an iCalendar holiday feed (days off and make-up workdays, e.g. a Chinese public
    /// holiday .ics) and show the policy file of each year it covers, policy/holidays/YYYY.toml
    /// next to the policy. Nothing is written without --write.
    Import {
        /// The .ics file.
        file: PathBuf,
        /// Write the year files (a year whose file is already identical is left alone).
        #[arg(long)]
        write: bool,
        /// With --write: replace a year file that differs (it is regenerated whole, so hand
        /// edits in it are lost; the previous text is printed first).
        #[arg(long)]
        replace: bool,
        /// Only these years (repeat or comma-separate); default: every year in the feed.
        #[arg(long, value_delimiter = ',')]
        year: Vec<i32>,
        /// Directory of the year files; default: policy/holidays next to the policy file.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Check the declarations: exit 1 when the current year, or from October on the next one,
    /// has no [public_holidays.YYYY].
    Check,
    /// The calendars, the declared years and the days off and make-up workdays of a year.
    Show {
        /// Year to list (default: the current one).
        #[arg(long)]
        year: Option<i32>,
        /// table: the calendars, the declared years and the year's days; json or csv: the
        /// year's days alone, one row each (`date`, `kind`: `day_off` or `workday`).
        #[command(flatten)]
        format: FormatArg,
    },
}

pub fn run(settings: &Settings, command: CalendarCommand) -> Result<()> {
    match command {
        CalendarCommand::Import {
            file,
            write,
            replace,
            year,
            dir,
        } => {
            let dir = dir.unwrap_or_else(|| holidays_dir(&settings.policy_path));
            import(&settings.policy_path, &file, &dir, &year, write, replace)
        }
        CalendarCommand::Check => {
            let policy = Policy::load_rules(&settings.policy_path)?;
            let today = Utc::now().with_timezone(&policy.tz).date_naive();
            print_years(&policy.public_holidays);
            match policy.public_holidays.missing_year(today, WARN_FROM_MONTH) {
                Some(year) => bail!("{}", missing_message(year)),
                None => {
                    println!("ok: the public holidays are declared for every year due by {today}");
                    Ok(())
                }
            }
        }
        CalendarCommand::Show { year, format } => {
            let policy = Policy::load_rules(&settings.policy_path)?;
            let year = year.unwrap_or_else(|| chrono::Datelike::year(&Utc::now().with_timezone(&policy.tz)));
            if format.get() != Format::Table {
                return days_listing(&policy.public_holidays, year).print(format.get());
            }
            for (name, cal) in policy.calendar().iter() {
                let sla = if name == policy.calendar().default_name() {
                    " ([sla] calendar, \"business\")"
                } else {
                    ""
                };
                println!(
                    "calendar {name}{sla}: {}, public holidays {}, holidays {}",
                    cal.time_zone,
                    if cal.public_holidays { "used" } else { "ignored" },
                    if cal.holiday_hours.is_closed() {
                        "closed".to_owned()
                    } else {
                        format!(
                            "open {}",
                            cal.holiday_hours
                                .windows()
                                .iter()
                                .map(|w| w.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                );
            }
            print_years(&policy.public_holidays);
            let in_year = |d: &&chrono::NaiveDate| chrono::Datelike::year(*d) == year;
            let list = |set: &std::collections::BTreeSet<chrono::NaiveDate>| {
                set.iter()
                    .filter(in_year)
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            println!("{year} days off: {}", list(&policy.public_holidays.holidays));
            println!("{year} make-up workdays: {}", list(&policy.public_holidays.workdays));
            Ok(())
        }
    }
}

/// The declared days off and make-up workdays of `year`, in date order.
fn days_listing(declared: &PublicHolidays, year: i32) -> Listing {
    let mut days: Vec<(chrono::NaiveDate, &str)> = declared
        .holidays
        .iter()
        .map(|d| (*d, "day_off"))
        .chain(declared.workdays.iter().map(|d| (*d, "workday")))
        .filter(|(d, _)| chrono::Datelike::year(d) == year)
        .collect();
    days.sort();
    let mut out = Listing::new().col("date", "date").col("kind", "kind");
    for (date, kind) in days {
        out.row(serde_json::json!({ "date": date.to_string(), "kind": kind }));
    }
    out
}

/// The message `check`, the readiness check and the log share.
pub fn missing_message(year: i32) -> String {
    switchboard::core::calendar::missing_year_message(year)
}

fn print_years(declared: &PublicHolidays) {
    if declared.years.is_empty() {
        println!("no public holidays declared");
    }
    for (year, source) in &declared.years {
        println!("declared {year}: {}", source.as_deref().unwrap_or("(no source given)"));
    }
}

fn holidays_dir(policy: &Path) -> PathBuf {
    policy.parent().unwrap_or(Path::new(".")).join("policy/holidays")
}

/// Parses a rendered year file back, so that nothing is written the policy would refuse.
fn check_rendered(text: &str) -> Result<()> {
    #[derive(serde::Deserialize)]
    struct YearFile {
        public_holidays: BTreeMap<String, PublicHolidayYear>,
    }
    let parsed: YearFile = toml::from_str(text).context("internal error: the generated year file is not TOML")?;
    PublicHolidays::from_years(parsed.public_holidays)?;
    Ok(())
}

fn import(policy: &Path, file: &Path, dir: &Path, years: &[i32], write: bool, replace: bool) -> Result<()> {
    let size = std::fs::metadata(file)
        .with_context(|| format!("cannot read {}", file.display()))?
        .len();
    if size > ics::MAX_BYTES as u64 {
        bail!(
            "{}: {size} bytes; a holiday feed has far fewer (at most {})",
            file.display(),
            ics::MAX_BYTES
        );
    }
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let feed = ics::parse(&bytes).with_context(|| format!("{}", file.display()))?;
    for skipped in &feed.skipped {
        eprintln!("skipped {skipped}");
    }
    let by_year = ics::by_year(&feed);
    if by_year.is_empty() {
        bail!(
            "{}: no day off or make-up workday found (see `skipped` above); type the notice in by hand (docs/SLA.md, \"Holidays, working days and channel SLAs\")",
            file.display()
        );
    }
    let source = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut wrote = Vec::new();
    for (year, days) in &by_year {
        if !years.is_empty() && !years.contains(year) {
            continue;
        }
        let text = ics::render_year(*year, days, &source);
        check_rendered(&text).with_context(|| format!("year {year}"))?;
        let path = dir.join(format!("{year}.toml"));
        let existing = std::fs::read_to_string(&path).ok();
        let status = match &existing {
            None => "new",
            Some(old) if *old == text => "unchanged",
            Some(_) => "changed",
        };
        println!("== {} ({status})", path.display());
        if !write {
            print!("{text}");
            continue;
        }
        match status {
            "unchanged" => continue,
            "changed" if !replace => bail!(
                "{} exists and differs; compare it with the output without --write, then add --replace to regenerate it",
                path.display()
            ),
            "changed" => {
                println!("-- previous text:");
                print!("{}", existing.as_deref().unwrap_or_default());
            }
            _ => {}
        }
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, &text).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
        wrote.push((path, existing));
    }
    if write && !wrote.is_empty() {
        if let Err(e) = Policy::load_rules(policy) {
            // Leave the policy as it was, so that no worker restart finds it broken.
            for (path, previous) in &wrote {
                let undone = match previous {
                    Some(text) => std::fs::write(path, text),
                    None => std::fs::remove_file(path),
                };
                if let Err(u) = undone {
                    eprintln!("could not undo {}: {u}", path.display());
                }
            }
            bail!(
                "the policy {} would fail to load with {}: {e}; nothing was changed",
                policy.display(),
                wrote
                    .iter()
                    .map(|(p, _)| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            );
        }
        println!(
            "the policy loads; bump `version` in {} and restart the workers",
            policy.display()
        );
    } else if !write {
        println!("(dry run: nothing written; add --write)");
    }
    Ok(())
}
