//! Claiming a batch: the rows a round takes under lease, and how a claimed
//! row becomes the event to publish.

use sqlx::Row as _;

use super::{
    config::OutboxRelay,
    sql::{CLAIM_LOCK, CLAIM_LOCK_SALT},
};
use crate::{RawEvent, codec::is_json_media_type, outbox::error::OutboxError, wire};

/// One claimed row.
#[derive(Debug)]
pub(super) struct Claimed {
    pub(super) seq: i64,
    pub(super) event_id: String,
    pub(super) event_type: String,
    pub(super) subject: Option<String>,
    pub(super) attributes: String,
    pub(super) data: Vec<u8>,
    pub(super) attempts: i32,
}

impl OutboxRelay {
    /// Claims up to `limit` rows under the table's claim lock, so that
    /// concurrent relays see each other's leases and never split a subject.
    pub(super) async fn claim(&self, limit: u32) -> Result<Vec<Claimed>, OutboxError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(CLAIM_LOCK)
            .bind(self.outbox.table.lock_key() ^ CLAIM_LOCK_SALT)
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query(&self.sql.claim)
            .bind(i64::from(limit))
            .bind(self.lease.as_secs_f64())
            .bind(&self.owner)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut claimed = rows
            .iter()
            .map(|row| {
                Ok(Claimed {
                    seq: row.try_get("seq")?,
                    event_id: row.try_get("event_id")?,
                    event_type: row.try_get("event_type")?,
                    subject: row.try_get("subject")?,
                    attributes: row.try_get("attributes")?,
                    data: row.try_get("data")?,
                    attempts: row.try_get("attempts")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        claimed.sort_by_key(|row| row.seq);
        Ok(claimed)
    }
}

/// Turns a row into the event to publish, or says why it never can be.
pub(super) fn decode(row: &Claimed) -> Result<RawEvent, String> {
    let header = wire::from_structured(row.attributes.as_bytes())
        .map_err(|e| format!("the attributes are not a valid cloudevent: {e}"))?;
    let attributes = header.attributes;
    if attributes.id != row.event_id
        || attributes.ty != row.event_type
        || attributes.subject != row.subject
    {
        return Err(
            "the event_id, event_type or subject column disagrees with the attributes".to_owned(),
        );
    }
    let json = attributes
        .datacontenttype
        .as_deref()
        .is_none_or(is_json_media_type);
    if json
        && !row.data.is_empty()
        && serde_json::from_slice::<serde::de::IgnoredAny>(&row.data).is_err()
    {
        return Err("the data is not valid json though its content type says json".to_owned());
    }
    Ok(RawEvent::new(attributes, row.data.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Attributes;

    fn claimed(attributes: &str, data: &[u8]) -> Claimed {
        Claimed {
            seq: 1,
            event_id: "1".to_owned(),
            event_type: "t".to_owned(),
            subject: Some("u1".to_owned()),
            attributes: attributes.to_owned(),
            data: data.to_vec(),
            attempts: 0,
        }
    }

    const GOOD: &str = r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","subject":"u1","datacontenttype":"application/json"}"#;

    #[test]
    fn a_good_row_decodes_into_its_event() {
        let event = decode(&claimed(GOOD, br#"{"a":1}"#)).unwrap();
        let mut attrs = Attributes::new("1", "/s", "t");
        attrs.subject = Some("u1".to_owned());
        attrs.datacontenttype = Some("application/json".to_owned());
        assert_eq!(event, RawEvent::new(attrs, &br#"{"a":1}"#[..]));
    }

    #[test]
    fn bad_rows_give_a_reason_not_a_panic() {
        let cases = [
            (r#"{"id":"1"}"#, &b"{}"[..], "not a valid cloudevent"),
            ("[1,2]", b"{}", "not a valid cloudevent"),
            (
                r#"{"specversion":"0.3","id":"1","source":"/s","type":"t","subject":"u1"}"#,
                b"{}",
                "not a valid cloudevent",
            ),
            (
                r#"{"specversion":"1.0","id":"2","source":"/s","type":"t","subject":"u1"}"#,
                b"{}",
                "disagrees",
            ),
            (GOOD, b"{not json", "not valid json"),
        ];
        for (attributes, data, expected) in cases {
            let reason = decode(&claimed(attributes, data)).unwrap_err();
            assert!(reason.contains(expected), "{attributes}: {reason}");
        }
    }
}
