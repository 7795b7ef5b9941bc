//! The processed-message ledger: which input messages a stage has applied, and what it
//! published for each, written in the same transaction as the effects (DESIGN §3).

use crate::contracts::Outgoing;
use crate::store::StoreError;
use deadpool_postgres::Transaction;
use std::collections::HashMap;

/// Outputs recorded for each of `keys` that was already processed.
pub async fn lookup(tx: &Transaction<'_>, keys: &[String]) -> Result<HashMap<String, Vec<Outgoing>>, StoreError> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = tx
        .query(
            &crate::store::prepared(
                tx,
                // One primary-key probe per key (LATERAL with OFFSET 0 is not flattened into a
                // join): a plan cached while the ledger was small would otherwise keep scanning
                // all of it for every batch as it grows.
                // Records written before V20 hold jsonb in `outputs`; later ones JSON text.
                "SELECT m.message_id, m.outputs FROM unnest($1::text[]) AS k(id),
                        LATERAL (SELECT message_id, COALESCE(outputs_text, outputs::text) AS outputs
                                 FROM processed_messages WHERE message_id = k.id OFFSET 0) m",
            )
            .await?,
            &[&keys],
        )
        .await?;
    let mut found = HashMap::with_capacity(rows.len());
    for r in rows {
        let id: String = r.get(0);
        // Straight from the column's text into the messages, without a JSON tree between; each
        // body keeps the text it was published with.
        let outputs = r
            .try_get::<_, &str>(1)
            .map_err(|e| e.to_string())
            .and_then(|text| serde_json::from_str::<Vec<Outgoing>>(text).map_err(|e| e.to_string()))
            .map_err(|e| StoreError::Conflict(format!("processed record {id} is unreadable: {e}")))?;
        found.insert(id, outputs);
    }
    Ok(found)
}

/// [`record`]s messages this transaction applied under their locks: a key already there was
/// applied by another worker meanwhile, and the whole transaction is a conflict to retry.
pub async fn record_own<O: AsRef<[Outgoing]> + Sync>(
    tx: &Transaction<'_>,
    stage: &str,
    entries: &[(String, O)],
) -> Result<(), StoreError> {
    let raced = record(tx, stage, entries).await?;
    if raced.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Conflict(format!(
            "{stage}: messages {raced:?} were processed concurrently"
        )))
    }
}

/// Records applied messages. Returns the keys that were already there: another worker applied
/// the same message concurrently, so this transaction must not count it as its own.
pub async fn record<O: AsRef<[Outgoing]> + Sync>(
    tx: &Transaction<'_>,
    stage: &str,
    entries: &[(String, O)],
) -> Result<Vec<String>, StoreError> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
    // JSON text, stored as it is: the bodies are text already, and Postgres does not parse it.
    let outputs: Vec<String> = entries
        .iter()
        .map(|(_, o)| serde_json::to_string(o.as_ref()))
        .collect::<Result<_, _>>()
        .map_err(|e| StoreError::Conflict(format!("{stage}: outputs that are not JSON: {e}")))?;
    let rows = tx
        .query(
            &crate::store::prepared(
                tx,
                "INSERT INTO processed_messages (message_id, stage, outputs_text)
             SELECT k, $1, o FROM unnest($2::text[], $3::text[]) AS t(k, o)
             ON CONFLICT (message_id) DO NOTHING
             RETURNING message_id",
            )
            .await?,
            &[&stage, &keys, &outputs],
        )
        .await?;
    let inserted: std::collections::HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
    Ok(keys
        .iter()
        .filter(|k| !inserted.contains(**k))
        .map(|k| k.to_string())
        .collect())
}
