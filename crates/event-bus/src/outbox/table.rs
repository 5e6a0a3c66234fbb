//! Validated schema and table names, the only names ever spliced into SQL.

use std::fmt;

/// Why a schema or table name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TableNameError {
    /// The name is empty, too long, or has characters other than lowercase
    /// ASCII letters, digits and underscores (or starts with a digit).
    #[error(
        "invalid sql identifier `{0}` (1 to 30 lowercase ascii letters, digits or underscores, not starting with a digit)"
    )]
    InvalidIdentifier(String),
    /// The name starts with `pg_`, which PostgreSQL reserves for system schemas.
    #[error("sql identifier `{0}` starts with `pg_`, which postgresql reserves")]
    Reserved(String),
}

/// The longest schema or table name accepted, so that derived names (indexes,
/// the trigger function, the notification channel) stay within PostgreSQL's
/// 63-byte identifier limit.
pub const MAX_IDENTIFIER_LEN: usize = 30;

/// A table and the schema it lives in, both validated.
///
/// Names are 1 to [`MAX_IDENTIFIER_LEN`] lowercase ASCII letters, digits or
/// underscores, not starting with a digit nor with `pg_`. Only such names are
/// ever interpolated into SQL, and always double-quoted.
///
/// ```
/// use tessera_event_bus::outbox::TableName;
///
/// let name = TableName::new("billing", "outbox").unwrap();
/// assert_eq!(name.qualified(), r#""billing"."outbox""#);
/// assert!(TableName::new("billing", "outbox; drop table users").is_err());
/// assert!(TableName::new("Billing", "outbox").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TableName {
    schema: String,
    table: String,
}

impl TableName {
    /// Validates both names.
    pub fn new(
        schema: impl Into<String>,
        table: impl Into<String>,
    ) -> Result<Self, TableNameError> {
        let schema = schema.into();
        let table = table.into();
        validate_identifier(&schema)?;
        validate_identifier(&table)?;
        Ok(Self { schema, table })
    }

    /// The schema name.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// `"schema"."table"`, ready for SQL.
    pub fn qualified(&self) -> String {
        format!(r#""{}"."{}""#, self.schema, self.table)
    }

    /// `"schema"."table<suffix>"`: a related object (function) in the same schema.
    pub(crate) fn sibling(&self, suffix: &str) -> String {
        format!(r#""{}"."{}{}""#, self.schema, self.table, suffix)
    }

    /// `"table<suffix>"`: an index name (indexes live in their table's schema).
    pub(crate) fn local(&self, suffix: &str) -> String {
        format!(r#""{}{}""#, self.table, suffix)
    }

    /// `schema.table`: the notification channel and the metrics label.
    pub fn label(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }

    /// A stable 64-bit key for advisory locks on this table.
    pub(crate) fn lock_key(&self) -> i64 {
        // FNV-1a: stable across processes and versions, unlike std's hasher.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in self.label().bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        i64::from_ne_bytes(hash.to_ne_bytes())
    }
}

impl fmt::Debug for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TableName({})", self.label())
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

fn validate_identifier(name: &str) -> Result<(), TableNameError> {
    let bytes = name.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= MAX_IDENTIFIER_LEN
        && !bytes[0].is_ascii_digit()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_');
    if !valid {
        return Err(TableNameError::InvalidIdentifier(name.to_owned()));
    }
    if name.starts_with("pg_") {
        return Err(TableNameError::Reserved(name.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_that_could_escape_quoting_are_refused() {
        for bad in [
            "",
            "a\"b",
            "a.b",
            "a b",
            "UPPER",
            "1abc",
            "é",
            "x;drop",
            "a-b",
            &"a".repeat(31),
        ] {
            let err = TableName::new("ok", bad).unwrap_err();
            assert!(
                matches!(err, TableNameError::InvalidIdentifier(_)),
                "{bad}: {err}"
            );
            assert!(TableName::new(bad, "ok").is_err(), "{bad}");
        }
        assert_eq!(
            TableName::new("pg_catalog", "t").unwrap_err(),
            TableNameError::Reserved("pg_catalog".to_owned())
        );
    }

    #[test]
    fn valid_names_are_quoted_and_keys_are_stable() {
        let t = TableName::new("svc_1", "_outbox").unwrap();
        assert_eq!(t.qualified(), r#""svc_1"."_outbox""#);
        assert_eq!(t.sibling("_notify"), r#""svc_1"."_outbox_notify""#);
        assert_eq!(t.label(), "svc_1._outbox");
        assert_eq!(
            t.lock_key(),
            TableName::new("svc_1", "_outbox").unwrap().lock_key()
        );
        assert_ne!(
            t.lock_key(),
            TableName::new("svc_1", "inbox").unwrap().lock_key()
        );
        assert!(TableName::new("a".repeat(30), "b".repeat(30)).is_ok());
    }
}
