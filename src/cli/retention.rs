//! `switchboard retention`: the retention job, legal holds and the transition log's partitions
//! (the work is in `switchboard::store::retention`).

use anyhow::Result;
use switchboard::app::App;
use switchboard::config::Settings;
use switchboard::store::retention::{self, HoldSubject};

use super::exit::not_found;
use super::output::{Format, FormatArg, Listing, spinner};

#[derive(Debug, clap::Subcommand)]
pub enum RetentionCommand {
    /// Anonymise or purge tickets closed longer ago than the policy's [retention] period (legal
    /// holds excepted), create transition-log partitions ahead and drop expired months whole.
    Run {
        /// Print what would happen, with counts, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Place a legal hold: the ticket, or every ticket of the customer, is kept as it is.
    Hold {
        #[command(flatten)]
        subject: Subject,
        /// Why (a case number, a request from legal).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Release a legal hold; the next run treats the tickets like any other.
    Release {
        #[command(flatten)]
        subject: Subject,
    },
    /// List legal holds (active ones; --all adds released ones).
    Holds {
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Create the transition log's monthly partitions ahead and list them.
    Partitions {
        #[command(flatten)]
        format: FormatArg,
    },
}

#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct Subject {
    /// Ticket number.
    #[arg(long)]
    ticket: Option<String>,
    /// Customer id, phone number or email address (matches the ticket's customer id exactly,
    /// its email ignoring case, or its phone by digits).
    #[arg(long)]
    customer: Option<String>,
}

impl Subject {
    fn resolve(self) -> HoldSubject {
        match (self.ticket, self.customer) {
            (Some(t), _) => HoldSubject::Ticket(t),
            (None, c) => HoldSubject::Customer(c.unwrap_or_default()),
        }
    }
}

fn describe(s: &HoldSubject) -> String {
    match s {
        HoldSubject::Ticket(n) => format!("ticket {n}"),
        HoldSubject::Customer(c) => format!("customer {}", retention::mask_customer(c)),
    }
}

pub async fn run(settings: Settings, command: RetentionCommand) -> Result<()> {
    let app = App::start(settings).await?;
    let policy = &app.policy.doc.retention;
    match command {
        RetentionCommand::Run { dry_run } => {
            let bar = spinner(if dry_run {
                "planning the retention job"
            } else {
                "running the retention job"
            });
            let report = retention::run(&app.db, policy, chrono::Utc::now(), dry_run).await;
            bar.finish_and_clear();
            println!("{}", report?);
        }
        RetentionCommand::Hold { subject, reason } => {
            let subject = subject.resolve();
            if retention::hold(&app.db, &subject, &reason).await? {
                println!("legal hold placed on {}", describe(&subject));
            } else {
                println!("{} was already on legal hold; nothing changed", describe(&subject));
            }
        }
        RetentionCommand::Release { subject } => {
            let subject = subject.resolve();
            if retention::release(&app.db, &subject).await? {
                println!("legal hold on {} released", describe(&subject));
            } else {
                return Err(not_found(format!(
                    "{} has no active legal hold (see `switchboard retention holds`)",
                    describe(&subject)
                )));
            }
        }
        RetentionCommand::Holds { all, format } => {
            let format = format.get();
            let list = retention::holds(&app.db, all).await?;
            if list.is_empty() && format == Format::Table {
                println!("no legal holds");
                return Ok(());
            }
            let mut out = Listing::new()
                .num("id", "#")
                .shown("ticket", "held", false, |r| {
                    let text = |k: &str| r.get(k).and_then(serde_json::Value::as_str);
                    match (text("ticket"), text("customer")) {
                        (Some(t), _) => format!("ticket {t}"),
                        (None, Some(c)) => format!("customer {c}"),
                        (None, None) => "?".into(),
                    }
                })
                .extra("customer")
                .time("placed_at", "placed")
                .time("released_at", "released")
                .col("reason", "reason");
            for h in list {
                out.row(serde_json::json!({
                    "id": h.id,
                    "ticket": h.ticket,
                    "customer": h.customer,
                    "placed_at": h.placed_at,
                    "released_at": h.released_at,
                    "reason": h.reason,
                }));
            }
            out.print(format)?;
        }
        RetentionCommand::Partitions { format } => {
            let created =
                retention::ensure_partitions(&app.db, policy.partition_months_ahead, chrono::Utc::now()).await?;
            let client = app.db.pool.get().await?;
            let mut out = Listing::new()
                .col("name", "partition")
                .shown("created", "created now", false, |r| {
                    let created = r.get("created").and_then(serde_json::Value::as_bool) == Some(true);
                    if created { "yes" } else { "-" }.to_owned()
                });
            for name in retention::partitions(&**client).await? {
                let created = created.contains(&name);
                out.row(serde_json::json!({ "name": name, "created": created }));
            }
            out.print(format.get())?;
        }
    }
    Ok(())
}
