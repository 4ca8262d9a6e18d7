//! The closed sets of values the store keeps as TEXT (scan outcome and kind, drift status,
//! drift event, outbox state), as enums.
//!
//! Each enum reads and writes exactly the text the schema has always held (`as_str`), so no
//! migration is involved; a value the enum does not know is an [`UnknownValue`] naming the
//! column, never a silent default.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

/// A TEXT value in the store that this envdrift does not know (a newer envdrift, or a hand
/// edit, wrote it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{column}: unknown value `{value}` (known: {known})")]
pub struct UnknownValue {
    /// `table.column`.
    pub column: &'static str,
    pub value: String,
    /// The values this envdrift knows, comma-separated.
    pub known: String,
}

macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $name:ident in $column:literal {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];
            /// The column (`table.column`) that holds it.
            pub const COLUMN: &'static str = $column;

            /// The stored (and serialized) text.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownValue;

            fn from_str(s: &str) -> Result<Self, UnknownValue> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(UnknownValue {
                        column: $column,
                        value: other.to_string(),
                        known: $name::ALL
                            .iter()
                            .map(|v| v.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    }),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::Borrowed(ValueRef::Text(self.as_str().as_bytes())))
            }
        }

        impl From<$name> for super::sql::Value {
            fn from(v: $name) -> super::sql::Value {
                super::sql::Value::Text(v.as_str().to_string())
            }
        }

        impl From<&$name> for super::sql::Value {
            fn from(v: &$name) -> super::sql::Value {
                super::sql::Value::Text(v.as_str().to_string())
            }
        }

        impl super::sql::FromValue for $name {
            fn from_value(v: &super::sql::Value) -> Result<Self, super::sql::SqlError> {
                let s = <String as super::sql::FromValue>::from_value(v)?;
                Ok(s.parse::<$name>()?)
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                value
                    .as_str()?
                    .parse()
                    .map_err(|e: UnknownValue| FromSqlError::Other(Box::new(e)))
            }
        }
    };
}

text_enum! {
    /// How a scan ended (`scans.outcome`).
    ScanOutcome in "scans.outcome" {
        /// Started, not finished (the column's default).
        Running = "running",
        /// Everything was read.
        Ok = "ok",
        /// Something could not be read: only what was read resolves drifts.
        Partial = "partial",
        /// Nothing can be trusted: nothing resolves.
        Failed = "failed",
    }
}

impl Default for ScanOutcome {
    /// A scan end that says nothing else is a failure: it never resolves anything.
    fn default() -> Self {
        ScanOutcome::Failed
    }
}

text_enum! {
    /// What a scan scanned (`scans.kind`).
    ScanKind in "scans.kind" {
        /// Desired (Git, a directory) against live.
        Environment = "environment",
        /// One live environment against another.
        Comparison = "comparison",
    }
}

text_enum! {
    /// Where a drift is in its lifecycle (`drifts.status`).
    DriftStatus in "drifts.status" {
        Open = "open",
        Resolved = "resolved",
    }
}

text_enum! {
    /// A drift history event (`drift_events.event`).
    EventKind in "drift_events.event" {
        /// First seen, or seen again after it was resolved.
        Opened = "opened",
        /// Same identity, new fingerprint, same or lower severity.
        Changed = "changed",
        /// Same identity, new fingerprint, higher severity.
        Escalated = "escalated",
        /// Gone in a scan that could see it.
        Resolved = "resolved",
        /// Acknowledged by someone (`detail`: who, and a note).
        Acknowledged = "acknowledged",
        /// Silenced (`detail`: until when, and why).
        Silenced = "silenced",
    }
}

text_enum! {
    /// Where an alert is in its delivery (`outbox.state`).
    OutboxState in "outbox.state" {
        /// Not delivered yet; retried at `next_attempt_at` (the column's default).
        Pending = "pending",
        /// The sink accepted it.
        Sent = "sent",
        /// Given up (not retryable, or too many attempts).
        Failed = "failed",
    }
}

text_enum! {
    /// A requested scan's state (src/store/coord.rs).
    ScanRequestState in "scan_requests.state" {
        Queued = "queued",
        Taken = "taken",
        Done = "done",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_and_unknown_names_the_column() {
        for v in ScanOutcome::ALL {
            assert_eq!(v.as_str().parse::<ScanOutcome>().unwrap(), *v);
        }
        for v in EventKind::ALL {
            assert_eq!(v.as_str().parse::<EventKind>().unwrap(), *v);
        }
        let e = "done".parse::<OutboxState>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "outbox.state: unknown value `done` (known: pending, sent, failed)"
        );
        assert_eq!(
            serde_json::to_string(&DriftStatus::Resolved).unwrap(),
            "\"resolved\""
        );
    }

    #[test]
    fn sql_text_is_the_same_as_before() {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        let s: String = c
            .query_row("SELECT ?1", [ScanKind::Comparison], |r| r.get(0))
            .unwrap();
        assert_eq!(s, "comparison");
        let k: ScanOutcome = c.query_row("SELECT 'partial'", [], |r| r.get(0)).unwrap();
        assert_eq!(k, ScanOutcome::Partial);
        let bad = c
            .query_row("SELECT 'sideways'", [], |r| r.get::<_, DriftStatus>(0))
            .unwrap_err();
        assert!(
            bad.to_string()
                .contains("drifts.status: unknown value `sideways`")
        );
    }
}
