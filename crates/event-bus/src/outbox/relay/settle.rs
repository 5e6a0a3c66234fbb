//! Settling: writing rows' outcomes (sent, failed, parked, released) back to
//! the table, one set-based statement per kind of outcome.

use super::{config::OutboxRelay, pipeline::Settled, round::Outcome};
use crate::outbox::error::OutboxError;

impl OutboxRelay {
    /// Writes `batch`'s outcomes. Marking sent is retried a few times: a row
    /// left claimed is published again once its lease expires.
    pub(super) async fn settle(&self, batch: &[Settled]) -> Result<(), OutboxError> {
        let mut sent = Vec::new();
        let mut released = Vec::new();
        let (mut failed, mut delays, mut errors) = (Vec::new(), Vec::new(), Vec::new());
        let (mut parked, mut reasons) = (Vec::new(), Vec::new());
        for row in batch {
            match &row.outcome {
                Outcome::Sent => sent.push(row.seq),
                Outcome::Released => released.push(row.seq),
                Outcome::Failed(error) => {
                    failed.push(row.seq);
                    let retry = usize::try_from(row.attempts).unwrap_or_default();
                    delays.push(self.backoff_delay(retry).as_secs_f64());
                    errors.push(truncate(error));
                }
                Outcome::Parked(reason) => {
                    parked.push(row.seq);
                    reasons.push(truncate(reason));
                }
            }
        }
        if !sent.is_empty() {
            let mut attempt = 0;
            loop {
                match sqlx::query(&self.sql.mark_sent)
                    .bind(&sent)
                    .execute(&self.pool)
                    .await
                {
                    Ok(_) => break,
                    Err(error) if attempt < 3 => {
                        attempt += 1;
                        tracing::warn!(%error, "could not mark outbox rows sent; retrying");
                        tokio::time::sleep(self.backoff_delay(attempt)).await;
                    }
                    Err(error) => return Err(error.into()),
                }
            }
        }
        if !failed.is_empty() {
            sqlx::query(&self.sql.mark_failed)
                .bind(&failed)
                .bind(&delays)
                .bind(&errors)
                .bind(&self.owner)
                .execute(&self.pool)
                .await?;
        }
        if !parked.is_empty() {
            sqlx::query(&self.sql.park)
                .bind(&parked)
                .bind(&reasons)
                .execute(&self.pool)
                .await?;
        }
        if !released.is_empty() {
            sqlx::query(&self.sql.release)
                .bind(&released)
                .bind(&self.owner)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }
}

/// Cuts an error text to what the table keeps.
fn truncate(text: &str) -> String {
    const MAX: usize = 2000;
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_reasons_are_cut_on_a_char_boundary() {
        let long = "é".repeat(1500);
        let cut = truncate(&long);
        assert!(cut.len() <= 2000);
        assert!(long.starts_with(&cut));
    }
}
