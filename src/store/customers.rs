//! Customer records: a request is matched to a customer by customer id, then phone, then
//! email, and a new customer is created when none matches.

use super::StoreError;
use crate::domain::intake::Customer;
use std::collections::HashMap;
use tokio_postgres::Transaction;

/// The keys a customer can be found by, most reliable first.
pub fn match_keys(c: &Customer) -> Vec<String> {
    let mut keys = Vec::new();
    if let Some(id) = c.customer_id.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        keys.push(format!("id:{id}"));
    }
    if let Some(p) = c.phone.as_deref().map(normal_phone).filter(|s| s.len() >= 5) {
        keys.push(format!("phone:{p}"));
    }
    if let Some(e) = c
        .email
        .as_deref()
        .map(|e| e.trim().to_lowercase())
        .filter(|s| s.contains('@'))
    {
        keys.push(format!("email:{e}"));
    }
    keys
}

/// Digits only; a +86 country code is dropped so local and international forms match.
pub fn normal_phone(p: &str) -> String {
    let digits: String = p.chars().filter(char::is_ascii_digit).collect();
    match digits.strip_prefix("86") {
        Some(rest) if p.trim_start().starts_with('+') && rest.len() == 11 => rest.to_owned(),
        _ => digits,
    }
}

/// Finds or creates the customer of each request; returns their ids in order. The caller holds
/// advisory locks on every match key, so two workers never create the same customer twice.
pub async fn resolve(tx: &Transaction<'_>, customers: &[&Customer]) -> Result<Vec<i64>, StoreError> {
    let keys: Vec<Vec<String>> = customers.iter().map(|c| match_keys(c)).collect();
    let all: Vec<String> = keys.iter().flatten().cloned().collect();
    let mut known: HashMap<String, i64> = HashMap::new();
    // What each known customer record already holds, to skip updates that change nothing.
    let mut held: HashMap<i64, [Option<String>; 5]> = HashMap::new();
    if !all.is_empty() {
        let rows = tx
            .query(
                "SELECT id, customer_id, phone, email, name, tier FROM customers
                 WHERE 'id:' || customer_id = ANY($1) OR 'phone:' || phone = ANY($1) OR 'email:' || email = ANY($1)
                 ORDER BY id",
                &[&all],
            )
            .await?;
        for r in rows {
            let id: i64 = r.get(0);
            held.insert(id, [r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)]);
            for (prefix, col) in [("id", 1), ("phone", 2), ("email", 3)] {
                if let Some(v) = r.get::<_, Option<String>>(col) {
                    known.entry(format!("{prefix}:{v}")).or_insert(id);
                }
            }
        }
    }
    let mut out = Vec::with_capacity(customers.len());
    for (c, ks) in customers.iter().zip(&keys) {
        if let Some(id) = ks.iter().find_map(|k| known.get(k)).copied() {
            let learns = held.get(&id).is_none_or(|h| {
                let new = [field(ks, "id"), field(ks, "phone"), field(ks, "email")];
                new.iter().zip(h.iter()).any(|(n, o)| n.is_some() && o.is_none())
                    || (c.name.is_some() && c.name != h[3])
                    || (c.tier.is_some() && c.tier.map(|t| t.as_str().to_owned()) != h[4])
            });
            if !learns {
                for k in ks {
                    known.entry(k.clone()).or_insert(id);
                }
                out.push(id);
                continue;
            }
            // Fill in what we learn; never overwrite what we know.
            tx.execute(
                "UPDATE customers SET customer_id = COALESCE(customer_id, $2), phone = COALESCE(phone, $3),
                   email = COALESCE(email, $4), name = COALESCE($5, name), tier = COALESCE($6, tier), updated_at = now()
                 WHERE id = $1 AND (customer_id IS NULL OR $2::text IS NULL OR customer_id = $2)",
                &[
                    &id,
                    &field(ks, "id"),
                    &field(ks, "phone"),
                    &field(ks, "email"),
                    &c.name,
                    &c.tier.map(|t| t.as_str()),
                ],
            )
            .await?;
            for k in ks {
                known.entry(k.clone()).or_insert(id);
            }
            out.push(id);
            continue;
        }
        let id: i64 = tx
            .query_one(
                "INSERT INTO customers (customer_id, phone, email, name, tier) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                &[&field(ks, "id"), &field(ks, "phone"), &field(ks, "email"), &c.name, &c.tier.map(|t| t.as_str())],
            )
            .await?
            .get(0);
        for k in ks {
            known.insert(k.clone(), id);
        }
        out.push(id);
    }
    Ok(out)
}

fn field(keys: &[String], prefix: &str) -> Option<String> {
    keys.iter()
        .find_map(|k| k.strip_prefix(&format!("{prefix}:")).map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_normalise_phone_and_email() {
        let c = Customer {
            customer_id: Some(" C1 ".into()),
            phone: Some("+86 138-1234-5678".into()),
            email: Some("Zhang@Example.com".into()),
            ..Default::default()
        };
        assert_eq!(
            match_keys(&c),
            vec!["id:C1", "phone:13812345678", "email:zhang@example.com"]
        );
        assert_eq!(normal_phone("138 1234 5678"), "13812345678");
    }
}
