//! Customer records: a request is matched to a customer by customer id, then phone, then
//! email, and a new customer is created when none matches.

use super::StoreError;
use crate::core::customer::{Customer, match_keys};
use deadpool_postgres::Transaction;
use std::collections::HashMap;

/// Finds or creates the customer of each request; returns their ids in order. The caller holds
/// advisory locks on every match key, so two workers never create the same customer twice.
///
/// A batch costs a constant number of statements: one indexed lookup, one id allocation and one
/// insert for all new customers, plus an update only for a known customer we learn something
/// about (a first phone number, say). Requests of one batch from the same new customer share one
/// new record, filled in from all of them.
pub async fn resolve(tx: &Transaction<'_>, customers: &[&Customer]) -> Result<Vec<i64>, StoreError> {
    let keys: Vec<Vec<String>> = customers.iter().map(|c| match_keys(c)).collect();
    let by_kind = |kind: &str| -> Vec<String> {
        keys.iter()
            .flatten()
            .filter_map(|k| k.strip_prefix(kind).map(str::to_owned))
            .collect()
    };
    let (ids, phones, emails) = (by_kind("id:"), by_kind("phone:"), by_kind("email:"));
    let mut known: HashMap<String, Match> = HashMap::new();
    // What each known customer record already holds, to skip updates that change nothing.
    let mut held: HashMap<i64, [Option<String>; 5]> = HashMap::new();
    if !(ids.is_empty() && phones.is_empty() && emails.is_empty()) {
        let rows = tx
            .query(
                &crate::store::prepared(
                    tx,
                    "SELECT id, customer_id, phone, email, name, tier FROM customers
                 WHERE customer_id = ANY($1) OR phone = ANY($2) OR email = ANY($3)
                 ORDER BY id",
                )
                .await?,
                &[&ids, &phones, &emails],
            )
            .await?;
        for r in rows {
            let id: i64 = r.get(0);
            held.insert(id, [r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)]);
            for (prefix, col) in [("id", 1), ("phone", 2), ("email", 3)] {
                if let Some(v) = r.get::<_, Option<String>>(col) {
                    known.entry(format!("{prefix}:{v}")).or_insert(Match::Stored(id));
                }
            }
        }
    }
    let mut matches: Vec<Match> = Vec::with_capacity(customers.len());
    let mut fresh: Vec<[Option<String>; 5]> = Vec::new();
    for (c, ks) in customers.iter().zip(&keys) {
        let learned = [field(ks, "id"), field(ks, "phone"), field(ks, "email")];
        let name = c.name.clone();
        let tier = c.tier.map(|t| t.as_str().to_owned());
        let m = match ks.iter().find_map(|k| known.get(k)).copied() {
            Some(Match::Stored(id)) => {
                let learns = held.get(&id).is_none_or(|h| {
                    learned.iter().zip(h.iter()).any(|(n, o)| n.is_some() && o.is_none())
                        || (name.is_some() && name != h[3])
                        || (tier.is_some() && tier != h[4])
                });
                if learns {
                    // Fill in what we learn; never overwrite what we know.
                    tx.execute(
                        &crate::store::prepared(tx, "UPDATE customers SET customer_id = COALESCE(customer_id, $2), phone = COALESCE(phone, $3),
                           email = COALESCE(email, $4), name = COALESCE($5, name), tier = COALESCE($6, tier), updated_at = now()
                         WHERE id = $1 AND (customer_id IS NULL OR $2::text IS NULL OR customer_id = $2)").await?,
                        &[&id, &learned[0], &learned[1], &learned[2], &name, &tier],
                    )
                    .await?;
                    // The update's guard: a record with another customer id is left as it is.
                    if let Some(h) = held
                        .get_mut(&id)
                        .filter(|h| h[0].is_none() || learned[0].is_none() || h[0] == learned[0])
                    {
                        fill(h, learned, name, tier);
                    }
                }
                Match::Stored(id)
            }
            Some(Match::New(k)) => {
                fill(&mut fresh[k], learned, name, tier);
                Match::New(k)
            }
            None => {
                fresh.push([None, None, None, None, None]);
                let k = fresh.len() - 1;
                fill(&mut fresh[k], learned, name, tier);
                Match::New(k)
            }
        };
        for k in ks {
            known.entry(k.clone()).or_insert(m);
        }
        matches.push(m);
    }
    let new_ids = insert_new(tx, &fresh).await?;
    Ok(matches
        .into_iter()
        .map(|m| match m {
            Match::Stored(id) => id,
            Match::New(k) => new_ids[k],
        })
        .collect())
}

/// A request's customer: a stored record, or the `k`-th record this batch creates.
#[derive(Debug, Clone, Copy)]
enum Match {
    Stored(i64),
    New(usize),
}

/// Fills the empty identity fields of `record` from `learned`; a name or tier given replaces
/// the one held (the latest request knows best).
fn fill(record: &mut [Option<String>; 5], learned: [Option<String>; 3], name: Option<String>, tier: Option<String>) {
    for (slot, value) in record.iter_mut().zip(learned) {
        if slot.is_none() {
            *slot = value;
        }
    }
    if name.is_some() {
        record[3] = name;
    }
    if tier.is_some() {
        record[4] = tier;
    }
}

/// Creates `records` (customer_id, phone, email, name, tier) and returns their ids in order:
/// ids are drawn from the sequence first, so the mapping never depends on the order in which
/// INSERT … RETURNING reports rows.
async fn insert_new(tx: &Transaction<'_>, records: &[[Option<String>; 5]]) -> Result<Vec<i64>, StoreError> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = tx
        .query(
            &crate::store::prepared(
                tx,
                "SELECT nextval(pg_get_serial_sequence('customers', 'id')) FROM generate_series(1, $1::int)",
            )
            .await?,
            &[&(records.len() as i32)],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let column = |i: usize| -> Vec<Option<&str>> { records.iter().map(|r| r[i].as_deref()).collect() };
    tx.execute(
        &crate::store::prepared(
            tx,
            "INSERT INTO customers (id, customer_id, phone, email, name, tier) OVERRIDING SYSTEM VALUE
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])",
        )
        .await?,
        &[&ids, &column(0), &column(1), &column(2), &column(3), &column(4)],
    )
    .await?;
    Ok(ids)
}

fn field(keys: &[String], prefix: &str) -> Option<String> {
    keys.iter()
        .find_map(|k| k.strip_prefix(&format!("{prefix}:")).map(str::to_owned))
}
