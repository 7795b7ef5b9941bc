//! `switchboard retention`: the retention job, legal holds and the transition log's partitions
//! (the work is in `switchboard::store::retention`).

use anyhow::Result;
use switchboard::app::App;
use switchboard::config::Settings;
use switchboard::store::retention::{self, HoldSubject};

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
    },
    /// Create the transition log's monthly partitions ahead and list them.
    Partitions,
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
            let report = retention::run(&app.db, policy, chrono::Utc::now(), dry_run).await?;
            println!("{report}");
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
                anyhow::bail!(
                    "{} has no active legal hold (see `switchboard retention holds`)",
                    describe(&subject)
                );
            }
        }
        RetentionCommand::Holds { all } => {
            let list = retention::holds(&app.db, all).await?;
            if list.is_empty() {
                println!("no legal holds");
            }
            for h in list {
                let what = match (&h.ticket, &h.customer) {
                    (Some(t), _) => format!("ticket {t}"),
                    (None, Some(c)) => format!("customer {c}"),
                    (None, None) => "?".into(),
                };
                println!(
                    "#{:<4} {:<32} placed {}{}  {}",
                    h.id,
                    what,
                    h.placed_at.format("%Y-%m-%d %H:%M"),
                    h.released_at
                        .map(|r| format!(", released {}", r.format("%Y-%m-%d %H:%M")))
                        .unwrap_or_default(),
                    h.reason
                );
            }
        }
        RetentionCommand::Partitions => {
            let created =
                retention::ensure_partitions(&app.db, policy.partition_months_ahead, chrono::Utc::now()).await?;
            if !created.is_empty() {
                println!("created: {}", created.join(", "));
            }
            let client = app.db.pool.get().await?;
            for name in retention::partitions(&**client).await? {
                println!("{name}");
            }
        }
    }
    Ok(())
}
