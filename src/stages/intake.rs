//! Intake stage: validate, de-duplicate, thread onto a ticket that takes the message or open and
//! number a new one (linked to the customer's closed ticket it follows up).

use super::{Context, finish, work_message};
use crate::contracts::Outgoing;
use crate::contracts::StageName;
use crate::contracts::action::ActionMessage;
use crate::contracts::events;
use crate::contracts::intake::IntakeRequest;
use crate::core::actions::Action;
use crate::core::customer::{Customer, same_customer};
use crate::core::numbering::{find_numbers, format_number, period};
use crate::core::state::TicketState;
use crate::core::ticket::{Ticket, Transition};
use crate::runtime::runner::{Inbound, Outcome, Stage};
use crate::store::StoreError;
use crate::store::intake as store;
use crate::store::ledger;
use crate::store::tickets::insert_transitions;
use deadpool_postgres::Transaction;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};

pub struct Intake {
    pub ctx: Context,
}

/// Thread keys one message may name; a longer References chain keeps its newest ids (each key
/// is a lock and a look-up, so a hostile header must not cost thousands).
pub const MAX_THREAD_KEYS: usize = 32;

/// Thread keys a message refers to, most specific first: quoted ticket numbers, chat sessions,
/// then message ids (email In-Reply-To / References), at most [`MAX_THREAD_KEYS`].
pub fn thread_tokens(thread_ref: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let Some(r) = thread_ref else { return out };
    let mut tickets = Vec::new();
    let mut others = Vec::new();
    for raw in r.split(|c: char| c.is_whitespace() || c == ',') {
        let tok = raw.trim_matches(|c| c == '<' || c == '>');
        if tok.is_empty() {
            continue;
        }
        if let Some(n) = tok.strip_prefix("ticket:") {
            tickets.push(format!("ticket:{n}"));
        } else if let Some(n) = find_numbers(tok).into_iter().next() {
            tickets.push(format!("ticket:{n}"));
        } else if tok.starts_with("chat:") {
            others.push(tok.to_owned());
        } else {
            others.push(format!("msg:{tok}"));
        }
    }
    // References list the oldest message first; the newest is the best anchor.
    others.reverse();
    let mut seen = std::collections::HashSet::new();
    for k in tickets.into_iter().chain(others) {
        if out.len() == MAX_THREAD_KEYS {
            break;
        }
        if seen.insert(k.clone()) {
            out.push(k);
        }
    }
    out
}

pub fn dedup_key(r: &IntakeRequest) -> String {
    format!("intake:{}:{}", r.channel, r.channel_message_id)
}

/// The action a message threaded onto ticket `number` sends the lifecycle, under the
/// deterministic id `reply:<channel>:<message id>`: applied once however often it arrives.
fn customer_wrote(number: &str, r: &IntakeRequest) -> Outgoing {
    let action = ActionMessage {
        ticket: number.to_owned(),
        actor: "customer".into(),
        action: Action::CustomerReplied {
            message: Some(r.channel_message_id.clone()),
        },
    };
    Outgoing {
        exchange: crate::contracts::Exchange::Actions,
        routing_key: format!("action.{}", action.action.kind()),
        message_id: format!("reply:{}:{}", r.channel, r.channel_message_id),
        body: crate::contracts::Body::of(&action),
        headers: vec![],
    }
}

/// The reason on a new ticket's `received` transition: the message that opened it, the other
/// customer's conversation it did not join, the earlier ticket it follows up.
fn opened_reason(
    r: &IntakeRequest,
    refused: Option<&str>,
    follows: Option<&Earlier>,
    reopen_window: crate::core::calendar::SlaDuration,
) -> String {
    let mut reason = format!("opened from {} message {}", r.channel, r.channel_message_id);
    if let Some(old) = follows {
        reason.push_str(&if old.closed {
            format!(", a follow-up of closed ticket {}", old.number)
        } else {
            format!(
                ", a follow-up of ticket {}, resolved longer than {reopen_window} ago",
                old.number
            )
        });
    }
    if let Some(key) = refused {
        reason.push_str(&format!(
            ": its thread reference {key} leads to another customer's ticket, which it did not join"
        ));
    }
    reason
}

/// Where a request goes: onto a ticket already in the database, onto one opened earlier in
/// this batch, or into a new ticket.
#[derive(Debug, Clone, PartialEq)]
enum Target {
    Existing {
        ticket_id: i64,
        number: String,
    },
    InBatch(usize),
    /// A new ticket. `refused` is the thread key that led to another customer's conversation,
    /// which this message therefore did not join; `follows` the customer's ticket that its keys
    /// lead to but that takes no message (closed, or resolved longer than the reopen window
    /// ago): the new ticket is its follow-up.
    New {
        refused: Option<String>,
        follows: Option<Earlier>,
    },
}

/// A ticket of the customer's that a message does not join: its new ticket follows it up.
#[derive(Debug, Clone, PartialEq)]
struct Earlier {
    ticket_id: i64,
    number: String,
    closed: bool,
}

/// A ticket a thread key leads to.
#[derive(Debug, Clone, PartialEq)]
struct KnownTicket {
    ticket_id: i64,
    number: String,
    customer: Customer,
    /// Takes a message of its customer's now (`LifecyclePolicy::takes_customer_message`).
    joinable: bool,
    closed: bool,
}

/// Which ticket each request of a batch goes to, in batch order: a ticket of the same customer
/// that one of its thread keys leads to and that takes the message (`threads`: key → tickets,
/// newest first; open, or resolved within the reopen window); else the new ticket an earlier
/// request of this batch, from the same customer, opens for the same conversation (its keys or
/// its message id); else a new one, which follows up the customer's first ticket its keys lead
/// to that took no message (closed, or resolved too long ago). A key that leads only to another
/// customer's conversation is never followed: whoever quotes a ticket number, a chat session or
/// an email's References cannot join a stranger's ticket.
/// `tokens[n]` are request n's thread keys, `message_ids[n]` its channel message id and
/// `customers[n]` who sent it.
fn decide_targets(
    message_ids: &[&str],
    tokens: &[Vec<String>],
    customers: &[&Customer],
    threads: &HashMap<String, Vec<KnownTicket>>,
) -> Vec<Target> {
    let mut targets: Vec<Target> = Vec::with_capacity(tokens.len());
    let mut batch_keys: HashMap<String, Vec<usize>> = HashMap::new();
    for (n, (id, toks)) in message_ids.iter().zip(tokens).enumerate() {
        let who = customers[n];
        let mut refused: Option<String> = None;
        let mut follows: Option<Earlier> = None;
        let existing = toks.iter().find_map(|k| {
            let tickets = threads.get(k)?;
            let mut theirs = tickets.iter().filter(|t| same_customer(who, &t.customer)).peekable();
            if theirs.peek().is_none() && refused.is_none() {
                refused = Some(k.clone());
            }
            for t in theirs {
                if t.joinable {
                    return Some(t);
                }
                if follows.is_none() {
                    follows = Some(Earlier {
                        ticket_id: t.ticket_id,
                        number: t.number.clone(),
                        closed: t.closed,
                    });
                }
            }
            None
        });
        let in_batch = toks.iter().find_map(|k| {
            let owners = batch_keys.get(k)?;
            let same = owners.iter().copied().find(|o| same_customer(who, customers[*o]));
            if same.is_none() && refused.is_none() {
                refused = Some(k.clone());
            }
            same
        });
        let target = match (existing, in_batch) {
            (Some(t), _) => Target::Existing {
                ticket_id: t.ticket_id,
                number: t.number.clone(),
            },
            (None, Some(owner)) => Target::InBatch(owner),
            (None, None) => Target::New { refused, follows },
        };
        let owner = match target {
            Target::InBatch(o) => Some(o),
            Target::New { .. } => Some(n),
            Target::Existing { .. } => None,
        };
        if let Some(o) = owner {
            for k in toks.iter().cloned().chain([format!("msg:{id}")]) {
                let owners = batch_keys.entry(k).or_default();
                if !owners.contains(&o) {
                    owners.push(o);
                }
            }
        }
        targets.push(target);
    }
    targets
}

impl Stage for Intake {
    fn name(&self) -> &'static str {
        StageName::Intake.as_str()
    }

    async fn process(&self, tx: &Transaction<'_>, batch: &[Inbound]) -> Result<Vec<Outcome>, StoreError> {
        {
            let policy = &self.ctx.policy;
            let mut settled: Vec<Option<Outcome>> = vec![None; batch.len()];
            let mut copies = Vec::new();
            let mut first_by_key: HashMap<String, usize> = HashMap::new();
            let mut requests: Vec<(usize, IntakeRequest)> = Vec::new();
            for (i, m) in batch.iter().enumerate() {
                match IntakeRequest::decode(&m.data, &policy.doc.channels)
                    .and_then(|r| r.validate_record(&policy.doc.record).map(|()| r))
                {
                    Err(e) => settled[i] = Some(Outcome::Dead(format!("intake request rejected: {e}"))),
                    Ok(r) => {
                        let expected_key = format!("intake.{}", r.channel);
                        if m.routing_key.starts_with("intake.") && m.routing_key != expected_key {
                            settled[i] = Some(Outcome::Dead(format!(
                                "intake request rejected: routing key {:?} does not match field `channel` {:?} (publish with {expected_key:?})",
                                m.routing_key, r.channel
                            )));
                            continue;
                        }
                        let key = dedup_key(&r);
                        if let Some(&j) = first_by_key.get(&key) {
                            copies.push((i, j));
                        } else {
                            first_by_key.insert(key, i);
                            requests.push((i, r));
                        }
                    }
                }
            }
            if requests.is_empty() {
                return Ok(finish(settled, &copies));
            }

            // Serialise on each request's own key and on every conversation it names, so two
            // workers never both open a ticket for one conversation or one message.
            // A request also locks its own `msg:` key: an email reply quoting it then waits for
            // this transaction instead of missing the ticket it is about to open.
            let mut lock_keys: Vec<String> = requests.iter().map(|(_, r)| dedup_key(r)).collect();
            for (_, r) in &requests {
                lock_keys.extend(thread_tokens(r.thread_ref.as_deref()));
                lock_keys.push(format!("msg:{}", r.channel_message_id));
                lock_keys.extend(
                    crate::core::customer::match_keys(&r.customer)
                        .into_iter()
                        .map(|k| format!("customer:{k}")),
                );
            }
            store::lock_conversations(tx, &lock_keys).await?;

            let keys: Vec<String> = requests.iter().map(|(_, r)| dedup_key(r)).collect();
            let done = ledger::lookup(tx, &keys).await?;
            requests.retain(|(i, r)| match done.get(&dedup_key(r)) {
                Some(out) => {
                    settled[*i] = Some(Outcome::Duplicate(out.clone()));
                    false
                }
                None => true,
            });

            let tokens: Vec<Vec<String>> = requests
                .iter()
                .map(|(_, r)| thread_tokens(r.thread_ref.as_deref()))
                .collect();
            let all_tokens: Vec<String> = tokens.iter().flatten().cloned().collect();
            let now = chrono::Utc::now();
            let mut threads: HashMap<String, Vec<KnownTicket>> = HashMap::new();
            if !all_tokens.is_empty() {
                for o in store::threads(tx, &all_tokens).await? {
                    let state = TicketState::parse(&o.state);
                    threads.entry(o.key).or_default().push(KnownTicket {
                        ticket_id: o.ticket_id,
                        number: o.number,
                        customer: o.customer,
                        joinable: state
                            .is_some_and(|s| policy.doc.lifecycle.takes_customer_message(s, o.resolved_at, now)),
                        closed: state == Some(TicketState::Closed),
                    });
                }
            }

            let message_ids: Vec<&str> = requests.iter().map(|(_, r)| r.channel_message_id.as_str()).collect();
            let customers: Vec<&Customer> = requests.iter().map(|(_, r)| &r.customer).collect();
            let targets = decide_targets(&message_ids, &tokens, &customers, &threads);

            // Number the new tickets: one counter bump per month for the whole batch, committed
            // apart so that other batches need not wait for this transaction to end. Before the
            // customers: while it waits for the counter (an action opening a task holds it until
            // its commit) this transaction must hold no row another one could wait for, or the
            // two would wait for each other where Postgres cannot see it.
            let mut per_period: BTreeMap<String, Vec<usize>> = BTreeMap::new();
            for (n, t) in targets.iter().enumerate() {
                if matches!(t, Target::New { .. }) {
                    per_period
                        .entry(period(requests[n].1.received_at, policy.tz))
                        .or_default()
                        .push(n);
                }
            }
            let mut numbers: HashMap<usize, String> = HashMap::new();
            for (p, members) in &per_period {
                let count = members.len() as i64;
                let last = store::reserve_numbers_apart(&self.ctx.db, p, count).await?;
                for (k, n) in members.iter().enumerate() {
                    numbers.insert(
                        *n,
                        format_number(&policy.doc.ticket_number_prefix, p, last - count + 1 + k as i64),
                    );
                }
            }

            // The customers of the new tickets, found or created.
            let customer_refs: HashMap<usize, Option<i64>> = {
                let new: Vec<usize> = (0..requests.len())
                    .filter(|n| matches!(targets[*n], Target::New { .. }))
                    .collect();
                let who: Vec<(&Customer, &str)> = new
                    .iter()
                    .map(|n| (&requests[*n].1.customer, requests[*n].1.channel.as_str()))
                    .collect();
                let ids = crate::store::customers::resolve(tx, &who).await?;
                new.into_iter().zip(ids).collect()
            };

            // Insert the new tickets.
            let new_idx: Vec<usize> = (0..requests.len())
                .filter(|n| matches!(targets[*n], Target::New { .. }))
                .collect();
            let mut ticket_ids: HashMap<usize, (i64, String)> = HashMap::new();
            let new_tickets: Vec<store::NewTicket<'_>> = new_idx
                .iter()
                .map(|n| store::NewTicket {
                    number: numbers[n].as_str(),
                    request: &requests[*n].1,
                    customer_ref: customer_refs[n],
                })
                .collect();
            let by_number: HashMap<String, i64> = store::insert_tickets(tx, &new_tickets)
                .await?
                .into_iter()
                .map(|(id, number)| (number, id))
                .collect();
            for n in &new_idx {
                if let Some(id) = by_number.get(&numbers[n]) {
                    ticket_ids.insert(*n, (*id, numbers[n].clone()));
                }
            }
            // A follow-up is linked both ways to the ticket it follows (`follow_up_of` from the
            // new one, `follow_up` from the old).
            let follow_ups: Vec<(i64, i64)> = new_idx
                .iter()
                .filter_map(|n| match (&targets[*n], ticket_ids.get(n)) {
                    (Target::New { follows: Some(old), .. }, Some((id, _))) => Some((*id, old.ticket_id)),
                    _ => None,
                })
                .collect();
            crate::store::tickets::link_all(tx, &follow_ups, "follow_up_of", StageName::Intake.as_str(), now).await?;

            // Resolve every request to its ticket; one whose message is already stored is an
            // old duplicate whose processed record has been pruned: nothing to redo.
            let mut resolved: Vec<Option<(i64, String)>> = Vec::with_capacity(requests.len());
            for (n, t) in targets.iter().enumerate() {
                resolved.push(match t {
                    Target::Existing { ticket_id, number } => Some((*ticket_id, number.clone())),
                    Target::New { .. } => ticket_ids.get(&n).cloned(),
                    Target::InBatch(o) => ticket_ids.get(o).cloned(),
                });
            }
            let live: Vec<usize> = (0..requests.len()).filter(|n| resolved[*n].is_some()).collect();
            let messages: Vec<(i64, &IntakeRequest)> = live
                .iter()
                .map(|n| (resolved[*n].as_ref().map(|x| x.0).unwrap_or_default(), &requests[*n].1))
                .collect();
            let stored: std::collections::HashSet<(String, String)> =
                store::insert_messages(tx, &messages).await?.into_iter().collect();

            // Thread keys: the ticket number, each message id, and every conversation named
            // (a ticket number only ever leads to its own ticket).
            let mut tk_keys = Vec::new();
            let mut tk_ids = Vec::new();
            for n in &live {
                let (tid, number) = resolved[*n].clone().unwrap_or_default();
                let r = &requests[*n].1;
                for k in tokens[*n]
                    .iter()
                    .filter(|k| !k.starts_with("ticket:"))
                    .cloned()
                    .chain([format!("msg:{}", r.channel_message_id), format!("ticket:{number}")])
                {
                    tk_keys.push(k);
                    tk_ids.push(tid);
                }
            }
            store::register_thread_keys(tx, &tk_keys, &tk_ids).await?;

            // Transitions and outputs.
            let mut transitions = Vec::new();
            let mut records: Vec<(String, Vec<Outgoing>)> = Vec::new();
            for (n, (i, r)) in requests.iter().enumerate() {
                let Some((tid, number)) = resolved[n].clone() else {
                    settled[*i] = Some(Outcome::Duplicate(Vec::new()));
                    continue;
                };
                if !stored.contains(&(r.channel.clone(), r.channel_message_id.clone())) {
                    settled[*i] = Some(Outcome::Duplicate(Vec::new()));
                    continue;
                }
                let mut outputs = Vec::new();
                let _span =
                    tracing::info_span!("message", stage = StageName::Intake.as_str(), ticket = %number, message_id = %r.channel_message_id).entered();
                if let Target::New { refused, follows } = &targets[n] {
                    let ticket = Ticket {
                        id: tid,
                        number: number.clone(),
                        channel: r.channel.clone(),
                        channel_message_id: r.channel_message_id.clone(),
                        customer: r.customer.clone(),
                        subject: r.subject.clone(),
                        body: r.body.clone(),
                        language: None,
                        category: None,
                        category_confidence: None,
                        category_candidates: Vec::new(),
                        needs_triage: false,
                        priority: None,
                        state: TicketState::Received,
                        team: None,
                        assignee: None,
                        sla_rule: None,
                        first_response_due: None,
                        resolution_due: None,
                        received_at: r.received_at,
                        assigned_at: None,
                        version: 1,
                        life: crate::core::ticket::Progress {
                            record: r.record.clone().unwrap_or_default(),
                            ..Default::default()
                        },
                    };
                    let tr = Transition {
                        ticket_id: tid,
                        seq: 1,
                        from: None,
                        to: TicketState::Received,
                        at: now,
                        actor: StageName::Intake.as_str().into(),
                        reason: opened_reason(
                            r,
                            refused.as_deref(),
                            follows.as_ref(),
                            policy.doc.lifecycle.reopen_window,
                        ),
                        policy_version: policy.version().to_owned(),
                        details: json!({ "channel": r.channel, "channel_message_id": r.channel_message_id, "attachments": r.attachments.len(), "record_fields": r.record.as_ref().map(|x| x.columns(&policy.doc.record).into_iter().filter(|(_, v)| !v.is_empty()).count()).unwrap_or(0), "thread_ref_refused": refused, "follows": follows.as_ref().map(|f| &f.number) }),
                    };
                    outputs.push(events::ticket_event(&ticket, "received", &tr));
                    outputs.push(work_message(&ticket, StageName::Classify));
                    transitions.push(tr);
                    if let Some(h) = batch[*i].handoff() {
                        // As the row holds it: the database keeps microseconds.
                        use chrono::SubsecRound;
                        let mut stored = ticket;
                        stored.received_at = stored.received_at.trunc_subsecs(6);
                        h.written(stored);
                    }
                    metrics::counter!("switchboard_intake_total", "channel" => r.channel.clone(), "result" => "opened")
                        .increment(1);
                } else {
                    tracing::info!(ticket = %number, "message threaded onto its ticket");
                    // The customer wrote: the lifecycle resumes a waiting ticket, reopens a
                    // resolved one, and tells the assignee of it on any other (`plan`).
                    outputs.push(customer_wrote(&number, r));
                    metrics::counter!("switchboard_intake_total", "channel" => r.channel.clone(), "result" => "threaded").increment(1);
                }
                batch[*i].stamp(&mut outputs);
                match batch[*i].handoff() {
                    // The chain records it with everything its later stages publish.
                    Some(h) => h.defer_record(*i, dedup_key(r)),
                    None => records.push((dedup_key(r), outputs.clone())),
                }
                settled[*i] = Some(Outcome::Done(outputs));
            }
            let refs: Vec<&Transition> = transitions.iter().collect();
            insert_transitions(tx, &refs).await?;
            ledger::record_own(tx, self.name(), &records).await?;
            Ok(finish(settled, &copies))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_tokens_prefer_ticket_numbers_then_the_newest_reference() {
        assert_eq!(
            thread_tokens(Some("<a@x> <b@x> ticket:202405-00012")),
            vec!["ticket:202405-00012", "msg:b@x", "msg:a@x"]
        );
        assert_eq!(thread_tokens(Some("chat:s-1")), vec!["chat:s-1"]);
        assert_eq!(
            thread_tokens(Some("回复 202406-00001")),
            vec!["ticket:202406-00001", "msg:回复"]
        );
        assert!(thread_tokens(None).is_empty());
    }

    #[test]
    fn a_hostile_references_chain_names_at_most_the_cap_newest_first() {
        let refs: String = (0..100_000).map(|n| format!("<m{n}@x> ")).collect();
        let toks = thread_tokens(Some(&refs));
        assert_eq!(toks.len(), MAX_THREAD_KEYS);
        assert_eq!(toks[0], "msg:m99999@x");
    }
}

#[cfg(test)]
mod target_tests {
    use super::*;

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    fn phone(p: &str) -> Customer {
        Customer {
            phone: Some(p.into()),
            ..Default::default()
        }
    }

    fn open(entries: &[(&str, i64, &Customer)]) -> HashMap<String, Vec<KnownTicket>> {
        known(&entries.iter().map(|(k, id, c)| (*k, *id, *c, true)).collect::<Vec<_>>())
    }

    /// Key → tickets, newest first as `threads` returns them; `joinable: false` is a closed one.
    fn known(entries: &[(&str, i64, &Customer, bool)]) -> HashMap<String, Vec<KnownTicket>> {
        let mut m: HashMap<String, Vec<KnownTicket>> = HashMap::new();
        for (k, id, c, joinable) in entries {
            m.entry(k.to_string()).or_default().push(KnownTicket {
                ticket_id: *id,
                number: format!("202612-{id:05}"),
                customer: (*c).clone(),
                joinable: *joinable,
                closed: !*joinable,
            });
        }
        for v in m.values_mut() {
            v.sort_by_key(|t| std::cmp::Reverse(t.ticket_id));
        }
        m
    }

    fn new() -> Target {
        Target::New {
            refused: None,
            follows: None,
        }
    }

    #[test]
    fn requests_join_open_tickets_or_the_ticket_an_earlier_request_of_the_batch_opens() {
        let li = phone("13800000001");
        let open = open(&[("chat:s1", 7, &li)]);
        let targets = decide_targets(
            &["m1", "m2", "m3", "m4", "m5"],
            &[
                keys(&["chat:s1"]), // an open conversation
                keys(&["chat:s2"]), // a new one
                keys(&["chat:s2"]), // the same new one, later in the batch
                keys(&["msg:m2"]),  // an email reply to the second request
                keys(&[]),          // nothing to thread on
            ],
            &[&li; 5],
            &open,
        );
        assert_eq!(
            targets,
            vec![
                Target::Existing {
                    ticket_id: 7,
                    number: "202612-00007".into()
                },
                new(),
                Target::InBatch(1),
                Target::InBatch(1),
                new(),
            ]
        );
    }

    #[test]
    fn an_open_ticket_wins_over_a_ticket_opened_in_the_batch() {
        let li = phone("13800000001");
        let open = open(&[("chat:s1", 3, &li)]);
        let targets = decide_targets(
            &["a", "b"],
            &[keys(&["chat:s9"]), keys(&["chat:s9", "chat:s1"])],
            &[&li, &li],
            &open,
        );
        assert_eq!(targets[0], new());
        assert!(matches!(targets[1], Target::Existing { ticket_id: 3, .. }));
    }

    #[test]
    fn thread_hijack_a_stranger_quoting_a_ticket_opens_their_own() {
        let victim = phone("13800000001");
        let stranger = phone("13900000002");
        let open = open(&[("ticket:202612-00007", 7, &victim), ("chat:s1", 7, &victim)]);
        let targets = decide_targets(
            &["x1", "x2", "x3"],
            &[
                keys(&["ticket:202612-00007"]),
                keys(&["chat:s1"]),
                keys(&["chat:s1"]), // the victim, after the stranger used the session key
            ],
            &[&stranger, &stranger, &victim],
            &open,
        );
        assert_eq!(
            targets[0],
            Target::New {
                refused: Some("ticket:202612-00007".into()),
                follows: None
            }
        );
        // The session key leads only to the victim's ticket: refused too.
        assert_eq!(
            targets[1],
            Target::New {
                refused: Some("chat:s1".into()),
                follows: None
            }
        );
        assert!(matches!(targets[2], Target::Existing { ticket_id: 7, .. }));
    }

    #[test]
    fn a_key_shared_by_two_customers_leads_each_to_their_own_ticket() {
        let a = phone("13800000001");
        let b = phone("13900000002");
        let open = open(&[("chat:s1", 9, &b), ("chat:s1", 7, &a)]);
        let targets = decide_targets(
            &["m1", "m2"],
            &[keys(&["chat:s1"]), keys(&["chat:s1"])],
            &[&a, &b],
            &open,
        );
        assert!(matches!(targets[0], Target::Existing { ticket_id: 7, .. }));
        assert!(matches!(targets[1], Target::Existing { ticket_id: 9, .. }));
    }

    #[test]
    fn a_message_on_a_closed_ticket_opens_a_follow_up_and_never_joins_it() {
        let li = phone("13800000001");
        let stranger = phone("13900000002");
        let threads = known(&[
            ("ticket:202612-00003", 3, &li, false),
            ("chat:s1", 3, &li, false),
            ("chat:s2", 4, &li, false),
            ("chat:s2", 2, &li, true),
        ]);
        let targets = decide_targets(
            &["m1", "m2", "m3", "m4"],
            &[
                keys(&["ticket:202612-00003"]),
                keys(&["chat:s1"]), // the same conversation, later in the batch
                keys(&["chat:s2"]), // a closed ticket and an older open one: the open one
                keys(&["ticket:202612-00003"]),
            ],
            &[&li, &li, &li, &stranger],
            &threads,
        );
        assert_eq!(
            targets[0],
            Target::New {
                refused: None,
                follows: Some(Earlier {
                    ticket_id: 3,
                    number: "202612-00003".into(),
                    closed: true
                })
            }
        );
        // chat:s1 leads only to the closed ticket; the batch's new ticket named no chat key.
        assert!(matches!(&targets[1], Target::New { follows: Some(e), .. } if e.ticket_id == 3));
        assert!(matches!(targets[2], Target::Existing { ticket_id: 2, .. }));
        // Another customer's closed ticket is neither joined nor followed up.
        assert_eq!(
            targets[3],
            Target::New {
                refused: Some("ticket:202612-00003".into()),
                follows: None
            }
        );
    }

    #[test]
    fn later_messages_of_a_follow_up_s_conversation_join_it() {
        let li = phone("13800000001");
        // `threads` reaches the follow-up (9) of the closed ticket (3) through its link.
        let threads = known(&[
            ("ticket:202612-00003", 3, &li, false),
            ("ticket:202612-00003", 9, &li, true),
        ]);
        let targets = decide_targets(
            &["m1", "m2"],
            &[keys(&["ticket:202612-00003"]), keys(&["chat:new", "msg:m1"])],
            &[&li, &li],
            &threads,
        );
        assert!(matches!(targets[0], Target::Existing { ticket_id: 9, .. }));
        assert_eq!(targets[1], new());
    }

    #[test]
    fn the_received_reason_names_the_ticket_followed_up() {
        let r: IntakeRequest = serde_json::from_value(serde_json::json!({
            "channel": "chat", "channel_message_id": "m1", "received_at": "2026-11-02T08:00:00Z",
            "customer": {"customer_id": "C1"}, "body": "hi"
        }))
        .unwrap();
        let window = "168h".parse().unwrap();
        let closed = Earlier {
            ticket_id: 3,
            number: "202612-00003".into(),
            closed: true,
        };
        assert_eq!(
            opened_reason(&r, None, Some(&closed), window),
            "opened from chat message m1, a follow-up of closed ticket 202612-00003"
        );
        let stale = Earlier {
            closed: false,
            ..closed
        };
        assert_eq!(
            opened_reason(&r, None, Some(&stale), window),
            "opened from chat message m1, a follow-up of ticket 202612-00003, resolved longer than 168h ago"
        );
        assert_eq!(opened_reason(&r, None, None, window), "opened from chat message m1");
    }
}
