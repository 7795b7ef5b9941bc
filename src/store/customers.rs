//! Customer records. A request finds its customer only by what its channel vouches for
//! (`core::customer::identity_key`: a customer id, the caller's number, the sender's address);
//! a contact a request merely claims neither finds a record nor changes one. A new customer is
//! created when the identity is new; a request with no identity (an anonymous chat) gets none.

use super::StoreError;
use crate::core::customer::{Customer, identity_key, match_keys};
use deadpool_postgres::Transaction;
use std::collections::HashMap;

/// Finds or creates the customer of each request (`customer`, `channel`); returns their ids in
/// order (`None`: no identity to file it under). The caller holds advisory locks on every match
/// key, so two workers never create the same customer twice.
///
/// What a request may change on a record it found:
/// - found by customer id: it fills in missing contacts and updates the name and tier (the
///   integration vouches for the signed-in customer);
/// - found by the channel's own address: it may fill in a missing name, nothing else.
///
/// A batch costs a constant number of statements: one indexed lookup, one id allocation and one
/// insert for all new customers, plus an update only for a known customer we learn something
/// about. Requests of one batch from the same new customer share one new record.
pub async fn resolve(tx: &Transaction<'_>, requests: &[(&Customer, &str)]) -> Result<Vec<Option<i64>>, StoreError> {
    let idents: Vec<Option<String>> = requests.iter().map(|(c, ch)| identity_key(c, ch)).collect();
    // The keys each request may find a record by: a signed-in customer's vouched contacts too
    // (a caller's record gains the account that owns the number), otherwise the identity alone.
    let lookups: Vec<Vec<String>> = requests
        .iter()
        .zip(&idents)
        .map(|((c, _), ident)| match ident {
            Some(i) if i.starts_with("id:") => match_keys(c),
            Some(i) => vec![i.clone()],
            None => Vec::new(),
        })
        .collect();
    let by_kind = |kind: &str| -> Vec<String> {
        lookups
            .iter()
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
                    // One index probe per key (the LATERAL subqueries with OFFSET 0 are not
                    // flattened into a join): a plan cached while the table was small would
                    // otherwise keep scanning all of it for every batch as it grows.
                    "SELECT DISTINCT c.id, c.customer_id, c.phone, c.email, c.name, c.tier FROM (
                     SELECT x.* FROM unnest($1::text[]) AS k(v),
                            LATERAL (SELECT * FROM customers WHERE customer_id = k.v OFFSET 0) x
                     UNION ALL
                     SELECT x.* FROM unnest($2::text[]) AS k(v),
                            LATERAL (SELECT * FROM customers WHERE phone = k.v OFFSET 0) x
                     UNION ALL
                     SELECT x.* FROM unnest($3::text[]) AS k(v),
                            LATERAL (SELECT * FROM customers WHERE email = k.v OFFSET 0) x) c
                 ORDER BY c.id",
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
    let mut matches: Vec<Option<Match>> = Vec::with_capacity(requests.len());
    let mut fresh: Vec<[Option<String>; 5]> = Vec::new();
    for (((c, _), ident), lookup) in requests.iter().zip(&idents).zip(&lookups) {
        let Some(ident) = ident else {
            matches.push(None);
            continue;
        };
        let signed_in = ident.starts_with("id:");
        let ks = match_keys(c);
        // A signed-in customer's contacts are vouched for; otherwise only the identity itself.
        let learned = if signed_in {
            [field(&ks, "id"), field(&ks, "phone"), field(&ks, "email")]
        } else {
            let only = |kind: &str| ident.strip_prefix(&format!("{kind}:")).map(str::to_owned);
            [None, only("phone"), only("email")]
        };
        let name = c.name.clone();
        let tier = if signed_in {
            c.tier.map(|t| t.as_str().to_owned())
        } else {
            None
        };
        // The first record found that does not belong to another signed-in customer.
        let own_id = field(&ks, "id");
        let compatible = |m: &Match| {
            let stored_id = match m {
                Match::Stored(id) => held.get(id).and_then(|h| h[0].clone()),
                Match::New(k) => fresh[*k][0].clone(),
            };
            stored_id.is_none() || own_id.is_none() || stored_id == own_id
        };
        let found = lookup
            .iter()
            .filter_map(|k| known.get(k).copied())
            .find(|m| compatible(m));
        let m = match found {
            Some(Match::Stored(id)) => {
                let h = held.get(&id);
                let learns = h.is_none_or(|h| {
                    learned.iter().zip(h.iter()).any(|(n, o)| n.is_some() && o.is_none())
                        || (name.is_some() && (if signed_in { name != h[3] } else { h[3].is_none() }))
                        || (tier.is_some() && tier != h[4])
                });
                if learns {
                    // Fill in what we learn; only a signed-in customer renames the record.
                    tx.execute(
                        &crate::store::prepared(
                            tx,
                            "UPDATE customers SET customer_id = COALESCE(customer_id, $2), phone = COALESCE(phone, $3),
                           email = COALESCE(email, $4),
                           name = CASE WHEN $7 THEN COALESCE($5, name) ELSE COALESCE(name, $5) END,
                           tier = COALESCE($6, tier), updated_at = now()
                         WHERE id = $1 AND (customer_id IS NULL OR $2::text IS NULL OR customer_id = $2)",
                        )
                        .await?,
                        &[&id, &learned[0], &learned[1], &learned[2], &name, &tier, &signed_in],
                    )
                    .await?;
                    // The update's guard: a record with another customer id is left as it is.
                    if let Some(h) = held
                        .get_mut(&id)
                        .filter(|h| h[0].is_none() || learned[0].is_none() || h[0] == learned[0])
                    {
                        let name = if signed_in || h[3].is_none() { name } else { None };
                        fill(h, learned, name, tier);
                    }
                }
                Match::Stored(id)
            }
            Some(Match::New(k)) => {
                let name = if signed_in || fresh[k][3].is_none() { name } else { None };
                fill(&mut fresh[k], learned, name, tier);
                Match::New(k)
            }
            None => {
                fresh.push([None, None, None, None, None]);
                let k = fresh.len() - 1;
                fill(&mut fresh[k], learned.clone(), name, tier);
                Match::New(k)
            }
        };
        // The record is found again by the identity and, when signed in, by the contacts.
        for k in lookup.iter().cloned() {
            known.entry(k).or_insert(m);
        }
        matches.push(Some(m));
    }
    let new_ids = insert_new(tx, &fresh).await?;
    Ok(matches
        .into_iter()
        .map(|m| {
            m.map(|m| match m {
                Match::Stored(id) => id,
                Match::New(k) => new_ids[k],
            })
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
