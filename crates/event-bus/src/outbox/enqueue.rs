//! [`Outbox`] and its enqueue: events written into the outbox table inside
//! the caller's transaction.

use std::sync::Arc;

use sqlx::{Postgres, Transaction};

use super::{error::OutboxError, table::TableName};
use crate::{Codec, Envelope, Event, JsonCodec, RawEvent, wire};

/// Writes events into an outbox table inside the caller's transaction.
///
/// Cheap to clone. The codec (JSON by default) encodes typed envelopes.
#[derive(Debug)]
pub struct Outbox<C = JsonCodec> {
    pub(super) inner: Arc<Inner>,
    codec: Arc<C>,
}

/// What every clone of an [`Outbox`] shares: the table and its insert statement.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) table: TableName,
    insert_sql: String,
}

impl<C> Clone for Outbox<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            codec: Arc::clone(&self.codec),
        }
    }
}

impl Default for Outbox<JsonCodec> {
    /// The table `tessera.outbox`, JSON data.
    fn default() -> Self {
        Self::new(TableName::new("tessera", "outbox").expect("valid default name"))
    }
}

impl Outbox<JsonCodec> {
    /// An outbox in `table`, encoding typed events as JSON.
    pub fn new(table: TableName) -> Self {
        Self::with_codec(table, JsonCodec)
    }
}

impl<C: Codec> Outbox<C> {
    /// An outbox in `table`, encoding typed events with `codec`.
    pub fn with_codec(table: TableName, codec: C) -> Self {
        Self {
            inner: Arc::new(Inner::new(table, true)),
            codec: Arc::new(codec),
        }
    }

    /// Whether enqueue serialises the transactions that enqueue events of the
    /// same subject (default `true`), so that rows of a subject are in commit
    /// order.
    ///
    /// Turn it off only when the application already serialises them (for
    /// example by locking the user's row first); otherwise two concurrent
    /// transactions may commit in the opposite order of their rows.
    #[must_use]
    pub fn lock_subjects(self, lock: bool) -> Self {
        Self {
            inner: Arc::new(Inner::new(self.inner.table.clone(), lock)),
            codec: self.codec,
        }
    }

    /// The outbox table.
    pub fn table(&self) -> &TableName {
        &self.inner.table
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    /// Writes `envelope` into the outbox within `tx`; it is published once
    /// `tx` commits, and never if it rolls back.
    pub async fn enqueue<E: Event>(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        envelope: &Envelope<E>,
    ) -> Result<(), OutboxError> {
        self.enqueue_all(tx, std::slice::from_ref(envelope)).await
    }

    /// Writes several envelopes in one statement; they keep their order.
    pub async fn enqueue_all<E: Event>(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        envelopes: &[Envelope<E>],
    ) -> Result<(), OutboxError> {
        // Only the data is encoded; the attributes are written from the
        // envelopes as they are, with the codec's content type (what
        // `Envelope::encode` would give, without a copy of each).
        let data = envelopes
            .iter()
            .map(|e| self.codec.encode(e.data()))
            .collect::<Result<Vec<_>, _>>()?;
        let content_type = Some(self.codec.content_type());
        let rows: Vec<Row<'_>> = envelopes
            .iter()
            .zip(&data)
            .map(|(envelope, data)| Row {
                attributes: envelope.attributes(),
                content_type,
                data,
            })
            .collect();
        self.write(tx, &rows).await
    }

    /// Writes an already encoded event.
    pub async fn enqueue_raw(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        event: &RawEvent,
    ) -> Result<(), OutboxError> {
        self.enqueue_raw_all(tx, std::slice::from_ref(event)).await
    }

    /// Writes already encoded events (of any types) in one statement; they
    /// keep their order. Every event is validated first: one invalid event
    /// writes nothing.
    pub async fn enqueue_raw_all(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        events: &[RawEvent],
    ) -> Result<(), OutboxError> {
        let rows: Vec<Row<'_>> = events
            .iter()
            .map(|event| Row {
                attributes: &event.attributes,
                content_type: None,
                data: &event.data,
            })
            .collect();
        self.write(tx, &rows).await
    }

    /// Writes rows in one statement, inside a `create` span with `otel`.
    async fn write(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        rows: &[Row<'_>],
    ) -> Result<(), OutboxError> {
        if rows.is_empty() {
            return Ok(());
        }
        #[cfg(feature = "otel")]
        let span = crate::otel::create::start(
            &self.inner.table.label(),
            rows.iter().map(|row| row.attributes),
        );
        #[cfg(feature = "otel")]
        let stamp = |attributes: &crate::Attributes| {
            let mut stamped = attributes.clone();
            crate::otel::create::inject(&span, &mut stamped);
            Some(stamped)
        };
        #[cfg(not(feature = "otel"))]
        let stamp = |_: &crate::Attributes| None;
        let result = self.insert(tx, rows, stamp);
        #[cfg(feature = "otel")]
        let result = tracing::Instrument::instrument(result, span.clone());
        let result = result.await;
        #[cfg(feature = "otel")]
        if let Err(error) = &result {
            crate::otel::create::failed(&span, error);
        }
        result
    }

    /// Validates and inserts the rows; `stamp` sees each row's attributes
    /// before they are written and returns a changed copy, or `None` to
    /// write them as they are.
    async fn insert(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        rows: &[Row<'_>],
        stamp: impl Fn(&crate::Attributes) -> Option<crate::Attributes>,
    ) -> Result<(), OutboxError> {
        let mut ids = Vec::with_capacity(rows.len());
        let mut types = Vec::with_capacity(rows.len());
        let mut subjects = Vec::with_capacity(rows.len());
        let mut attributes = Vec::with_capacity(rows.len());
        let mut data = Vec::with_capacity(rows.len());
        for row in rows {
            row.validate()?;
            let json = match stamp(row.attributes) {
                Some(stamped) => wire::attributes_to_json(&stamped, row.content_type)?,
                None => wire::attributes_to_json(row.attributes, row.content_type)?,
            };
            // Borrowed: the statement's arguments are encoded from them, not copied first.
            ids.push(row.attributes.id.as_str());
            types.push(row.attributes.ty.as_str());
            subjects.push(row.attributes.subject.as_deref());
            attributes.push(json);
            data.push(&row.data[..]);
        }
        sqlx::query(&self.inner.insert_sql)
            .bind(ids)
            .bind(types)
            .bind(subjects)
            .bind(attributes)
            .bind(data)
            .bind(self.inner.table.lock_key())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

/// One event on its way into the table, borrowed from the caller.
struct Row<'a> {
    attributes: &'a crate::Attributes,
    /// The codec's content type, written in place of the attributes' own.
    content_type: Option<&'a str>,
    data: &'a bytes::Bytes,
}

impl Row<'_> {
    /// The attributes as they will be written, checked.
    fn validate(&self) -> Result<(), crate::AttributeError> {
        match self.content_type {
            // The attributes' own content type is replaced: an empty one,
            // which `validate` refuses, does not count.
            Some(_) => self.attributes.validate_without_content_type(),
            None => self.attributes.validate(),
        }
    }
}

impl Inner {
    fn new(table: TableName, lock_subjects: bool) -> Self {
        let qualified = table.qualified();
        // The advisory locks run (sorted, so batches cannot deadlock each
        // other) before any row gets its seq: the ORDER BY keeps the
        // subquery from being flattened, so all locks are taken first.
        let locks = if lock_subjects {
            "(SELECT count(pg_advisory_xact_lock(k)) FROM \
               (SELECT DISTINCT hashtextextended(s, $6) AS k FROM unnest($3::text[]) AS s \
                WHERE s IS NOT NULL ORDER BY 1) AS keys) AS locked, "
        } else {
            "(SELECT $6::bigint) AS unused, "
        };
        let insert_sql = format!(
            "INSERT INTO {qualified} (event_id, event_type, subject, attributes, data) \
             SELECT r.event_id, r.event_type, r.subject, r.attributes::jsonb, r.data FROM \
             {locks}\
             unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[]) \
               WITH ORDINALITY AS r(event_id, event_type, subject, attributes, data, ord) \
             ORDER BY r.ord"
        );
        Self { table, insert_sql }
    }
}
