//! The backend-neutral SQL layer under the store: one connection type ([`Conn`]) over
//! SQLite (rusqlite) or PostgreSQL (the synchronous `postgres` crate), statements with
//! `?N` placeholders (rewritten to `$N` for PostgreSQL), parameters as [`Value`]s, rows as
//! [`Row`]s of [`Value`]s, and transactions ([`Conn::transaction`]).
//!
//! Every query of the store is written once, in the SQL both databases accept
//! (`ON CONFLICT … DO …`, `RETURNING`, RFC 3339 text times); the few real dialect
//! differences (DDL types, the schema version, row locks) branch on [`Dialect`] where they
//! are.
//!
//! Why the synchronous `postgres` crate and not sqlx or tokio-postgres: the store's API is
//! synchronous and called from blocking threads and from async code alike; keeping it so
//! leaves every caller unchanged, and the `postgres` crate is a thin blocking wrapper over
//! tokio-postgres (a crate the tree can afford on a 2-core CI, unlike sqlx's macros and
//! drivers). It drives its connection on a private current-thread runtime, which panics when
//! used from a thread that is inside a tokio runtime; [`on_plain_thread`] runs such calls on a
//! scoped thread of their own (the caller waits, as it waits for SQLite).

use std::sync::Arc;

use super::UnknownValue;

/// Which database a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// A parameter or a column value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Text(String),
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}
impl From<&i64> for Value {
    fn from(v: &i64) -> Value {
        Value::Int(*v)
    }
}
impl From<usize> for Value {
    fn from(v: usize) -> Value {
        Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Value {
        Value::Text(v.clone())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}
impl From<&Option<String>> for Value {
    fn from(v: &Option<String>) -> Value {
        v.as_deref().map_or(Value::Null, Value::from)
    }
}

/// Parameters: `args![a, b]` is a `&[Value]`.
macro_rules! args {
    ($($v:expr),* $(,)?) => { &[$($crate::store::sql::Value::from($v)),*][..] };
}
pub(crate) use args;

/// An error of the SQL layer.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("{}", pg_text(.0))]
    Postgres(#[from] postgres::Error),
    #[error(transparent)]
    Unknown(#[from] UnknownValue),
    /// A column that is missing or of another type than the code reads.
    #[error("column {column}: {problem}")]
    Column { column: String, problem: String },
    #[error("no row")]
    NoRow,
}

/// A PostgreSQL error with the server's message and detail (never the connection string:
/// the client's errors do not carry it).
fn pg_text(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(d) => format!("{} ({}): {d}", db.message(), db.code().code()),
            None => format!("{} ({})", db.message(), db.code().code()),
        },
        None => e.to_string(),
    }
}

/// A result row: its values by position, with the column names.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    cols: Arc<[String]>,
    vals: Vec<Value>,
}

/// A column position or name.
pub(crate) trait Col {
    fn index(&self, cols: &[String]) -> Option<usize>;
    fn name(&self) -> String;
}
impl Col for usize {
    fn index(&self, cols: &[String]) -> Option<usize> {
        (*self < cols.len()).then_some(*self)
    }
    fn name(&self) -> String {
        self.to_string()
    }
}
impl Col for &str {
    fn index(&self, cols: &[String]) -> Option<usize> {
        cols.iter().position(|c| c.eq_ignore_ascii_case(self))
    }
    fn name(&self) -> String {
        (*self).to_string()
    }
}

impl Row {
    /// The value of a column, converted.
    pub(crate) fn get<T: FromValue>(&self, col: impl Col) -> Result<T, SqlError> {
        let Some(i) = col.index(&self.cols) else {
            return Err(SqlError::Column {
                column: col.name(),
                problem: "no such column".into(),
            });
        };
        T::from_value(&self.vals[i]).map_err(|e| match e {
            SqlError::Column { problem, .. } => SqlError::Column {
                column: self.cols[i].clone(),
                problem,
            },
            other => other,
        })
    }
}

/// A type a column value converts to.
pub(crate) trait FromValue: Sized {
    fn from_value(v: &Value) -> Result<Self, SqlError>;
}

fn wrong(expected: &str, v: &Value) -> SqlError {
    SqlError::Column {
        column: String::new(),
        problem: format!("expected {expected}, found {v:?}"),
    }
}

impl FromValue for i64 {
    fn from_value(v: &Value) -> Result<i64, SqlError> {
        match v {
            Value::Int(i) => Ok(*i),
            other => Err(wrong("an integer", other)),
        }
    }
}
impl FromValue for String {
    fn from_value(v: &Value) -> Result<String, SqlError> {
        match v {
            Value::Text(s) => Ok(s.clone()),
            other => Err(wrong("text", other)),
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Result<Option<T>, SqlError> {
        match v {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// Runs `f` where the synchronous PostgreSQL client may block: on this thread when it is
/// not inside a tokio runtime, else on a scoped thread of its own (the caller waits).
pub(crate) fn on_plain_thread<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// Prepared statements of a PostgreSQL connection by SQL text: each statement is parsed by
/// the server once per connection, not once per call (a round trip saved per statement).
type Cache = std::collections::HashMap<String, postgres::Statement>;

/// A PostgreSQL client (closed on a plain thread: closing blocks on its runtime) and its
/// prepared statements.
pub(crate) struct PgClient {
    client: Option<postgres::Client>,
    cache: Cache,
}

impl PgClient {
    pub(crate) fn new(c: postgres::Client) -> Box<PgClient> {
        Box::new(PgClient {
            client: Some(c),
            cache: Cache::new(),
        })
    }

    fn parts(&mut self) -> (&mut postgres::Client, &mut Cache) {
        // Only `Drop` takes the client out.
        let client = self
            .client
            .as_mut()
            .unwrap_or_else(|| unreachable!("client used after close"));
        (client, &mut self.cache)
    }
}

impl Drop for PgClient {
    fn drop(&mut self) {
        let cache = std::mem::take(&mut self.cache);
        if let Some(c) = self.client.take() {
            on_plain_thread(move || {
                drop(cache);
                drop(c);
            });
        }
    }
}

/// The prepared statement of `sql` (placeholders rewritten), from the cache or prepared now.
fn statement<C: postgres::GenericClient>(
    c: &mut C,
    cache: &mut Cache,
    sql: &str,
) -> Result<postgres::Statement, SqlError> {
    if let Some(st) = cache.get(sql) {
        return Ok(st.clone());
    }
    let st = c.prepare(&pg_placeholders(sql))?;
    // Queries are constants (and a few filter combinations): a bound keeps it small.
    if cache.len() >= 256 {
        cache.clear();
    }
    cache.insert(sql.to_string(), st.clone());
    Ok(st)
}

/// One connection to the store's database.
pub(crate) enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres(Box<PgClient>),
}

/// What statements run on: a connection or a transaction.
pub(crate) trait Exec {
    fn dialect(&self) -> Dialect;
    /// Runs a statement; returns the number of rows changed.
    fn execute(&mut self, sql: &str, args: &[Value]) -> Result<u64, SqlError>;
    /// Runs a query; returns its rows.
    fn query(&mut self, sql: &str, args: &[Value]) -> Result<Vec<Row>, SqlError>;
    /// Runs statements separated by `;` (migrations).
    fn batch(&mut self, sql: &str) -> Result<(), SqlError>;

    /// The first row, if any.
    fn query_opt(&mut self, sql: &str, args: &[Value]) -> Result<Option<Row>, SqlError> {
        Ok(self.query(sql, args)?.into_iter().next())
    }

    /// The first row; [`SqlError::NoRow`] when there is none.
    fn query_row(&mut self, sql: &str, args: &[Value]) -> Result<Row, SqlError> {
        self.query_opt(sql, args)?.ok_or(SqlError::NoRow)
    }

    /// The first column of the first row.
    fn query_value<T: FromValue>(&mut self, sql: &str, args: &[Value]) -> Result<T, SqlError>
    where
        Self: Sized,
    {
        self.query_row(sql, args)?.get(0)
    }
}

/// `?N` placeholders as PostgreSQL's `$N` (outside quoted text).
pub(crate) fn pg_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    for c in sql.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => out.push('$'),
            _ => out.push(c),
        }
    }
    out
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        })
    }
}

impl postgres::types::ToSql for Value {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use postgres::types::{IsNull, Type};
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                _ => i.to_string().as_str().to_sql(ty, out),
            },
            Value::Text(s) => match *ty {
                Type::INT8 => s.parse::<i64>()?.to_sql(ty, out),
                _ => s.as_str().to_sql(ty, out),
            },
        }
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

fn lite_rows(c: &rusqlite::Connection, sql: &str, args: &[Value]) -> Result<Vec<Row>, SqlError> {
    let mut st = c.prepare_cached(sql)?;
    let cols: Arc<[String]> = st.column_names().map(str::to_string).collect();
    let n = cols.len();
    let mut rows = st.query(rusqlite::params_from_iter(args.iter()))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let mut vals = Vec::with_capacity(n);
        for i in 0..n {
            use rusqlite::types::ValueRef;
            vals.push(match r.get_ref(i)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(v) => Value::Int(v),
                ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Real(f) => Value::Text(f.to_string()),
                ValueRef::Blob(b) => Value::Text(String::from_utf8_lossy(b).into_owned()),
            });
        }
        out.push(Row {
            cols: Arc::clone(&cols),
            vals,
        });
    }
    Ok(out)
}

fn lite_execute(c: &rusqlite::Connection, sql: &str, args: &[Value]) -> Result<u64, SqlError> {
    let n = c
        .prepare_cached(sql)?
        .execute(rusqlite::params_from_iter(args.iter()))?;
    Ok(u64::try_from(n).unwrap_or(u64::MAX))
}

fn pg_refs(args: &[Value]) -> Vec<&(dyn postgres::types::ToSql + Sync)> {
    args.iter()
        .map(|a| a as &(dyn postgres::types::ToSql + Sync))
        .collect()
}

fn pg_rows<C: postgres::GenericClient>(
    c: &mut C,
    cache: &mut Cache,
    sql: &str,
    args: &[Value],
) -> Result<Vec<Row>, SqlError> {
    use postgres::types::Type;
    let st = statement(c, cache, sql)?;
    let rows = c.query(&st, &pg_refs(args))?;
    let cols: Arc<[String]> = st.columns().iter().map(|c| c.name().to_string()).collect();
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let mut vals = Vec::with_capacity(cols.len());
        for (i, col) in st.columns().iter().enumerate() {
            let v = match *col.type_() {
                Type::INT8 => r.try_get::<_, Option<i64>>(i)?.map(Value::Int),
                Type::INT4 => r
                    .try_get::<_, Option<i32>>(i)?
                    .map(|v| Value::Int(v.into())),
                Type::INT2 => r
                    .try_get::<_, Option<i16>>(i)?
                    .map(|v| Value::Int(v.into())),
                Type::BOOL => r
                    .try_get::<_, Option<bool>>(i)?
                    .map(|v| Value::Int(v.into())),
                _ => r.try_get::<_, Option<String>>(i)?.map(Value::Text),
            };
            vals.push(v.unwrap_or(Value::Null));
        }
        out.push(Row {
            cols: Arc::clone(&cols),
            vals,
        });
    }
    Ok(out)
}

fn pg_execute<C: postgres::GenericClient>(
    c: &mut C,
    cache: &mut Cache,
    sql: &str,
    args: &[Value],
) -> Result<u64, SqlError> {
    let st = statement(c, cache, sql)?;
    Ok(c.execute(&st, &pg_refs(args))?)
}

impl Exec for rusqlite::Connection {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }
    fn execute(&mut self, sql: &str, args: &[Value]) -> Result<u64, SqlError> {
        lite_execute(self, sql, args)
    }
    fn query(&mut self, sql: &str, args: &[Value]) -> Result<Vec<Row>, SqlError> {
        lite_rows(self, sql, args)
    }
    fn batch(&mut self, sql: &str) -> Result<(), SqlError> {
        Ok(self.execute_batch(sql)?)
    }
}

impl Exec for rusqlite::Transaction<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }
    fn execute(&mut self, sql: &str, args: &[Value]) -> Result<u64, SqlError> {
        lite_execute(self, sql, args)
    }
    fn query(&mut self, sql: &str, args: &[Value]) -> Result<Vec<Row>, SqlError> {
        lite_rows(self, sql, args)
    }
    fn batch(&mut self, sql: &str) -> Result<(), SqlError> {
        Ok(self.execute_batch(sql)?)
    }
}

impl Exec for Conn {
    fn dialect(&self) -> Dialect {
        match self {
            Conn::Sqlite(_) => Dialect::Sqlite,
            Conn::Postgres(_) => Dialect::Postgres,
        }
    }
    fn execute(&mut self, sql: &str, args: &[Value]) -> Result<u64, SqlError> {
        match self {
            Conn::Sqlite(c) => lite_execute(c, sql, args),
            Conn::Postgres(c) => {
                let (client, cache) = c.parts();
                pg_execute(client, cache, sql, args)
            }
        }
    }
    fn query(&mut self, sql: &str, args: &[Value]) -> Result<Vec<Row>, SqlError> {
        match self {
            Conn::Sqlite(c) => lite_rows(c, sql, args),
            Conn::Postgres(c) => {
                let (client, cache) = c.parts();
                pg_rows(client, cache, sql, args)
            }
        }
    }
    fn batch(&mut self, sql: &str) -> Result<(), SqlError> {
        match self {
            Conn::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Conn::Postgres(c) => Ok(c.parts().0.batch_execute(sql)?),
        }
    }
}

/// A transaction of either backend (what [`Conn::transaction`] hands its closure).
pub(crate) enum Tx<'a> {
    Sqlite(rusqlite::Transaction<'a>),
    Postgres(postgres::Transaction<'a>, &'a mut Cache),
}

impl Exec for Tx<'_> {
    fn dialect(&self) -> Dialect {
        match self {
            Tx::Sqlite(_) => Dialect::Sqlite,
            Tx::Postgres(..) => Dialect::Postgres,
        }
    }
    fn execute(&mut self, sql: &str, args: &[Value]) -> Result<u64, SqlError> {
        match self {
            Tx::Sqlite(t) => lite_execute(t, sql, args),
            Tx::Postgres(t, cache) => pg_execute(t, cache, sql, args),
        }
    }
    fn query(&mut self, sql: &str, args: &[Value]) -> Result<Vec<Row>, SqlError> {
        match self {
            Tx::Sqlite(t) => lite_rows(t, sql, args),
            Tx::Postgres(t, cache) => pg_rows(t, cache, sql, args),
        }
    }
    fn batch(&mut self, sql: &str) -> Result<(), SqlError> {
        match self {
            Tx::Sqlite(t) => Ok(t.execute_batch(sql)?),
            Tx::Postgres(t, _) => Ok(t.batch_execute(sql)?),
        }
    }
}

impl Conn {
    /// Runs `f` in a transaction: committed when it returns `Ok`, rolled back otherwise.
    /// SQLite's is `BEGIN IMMEDIATE` (a writer takes the lock first, so it waits for another
    /// writer within the busy timeout instead of failing at its first write).
    pub(crate) fn transaction<T, E: From<SqlError>>(
        &mut self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        match self {
            Conn::Sqlite(c) => {
                let tx = c
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .map_err(SqlError::from)?;
                let mut tx = Tx::Sqlite(tx);
                let v = f(&mut tx)?;
                match tx {
                    Tx::Sqlite(t) => t.commit().map_err(SqlError::from)?,
                    Tx::Postgres(..) => unreachable!(),
                }
                Ok(v)
            }
            Conn::Postgres(c) => {
                let (client, cache) = c.parts();
                let tx = client.transaction().map_err(SqlError::from)?;
                let mut tx = Tx::Postgres(tx, cache);
                let v = f(&mut tx)?;
                match tx {
                    Tx::Postgres(t, _) => t.commit().map_err(SqlError::from)?,
                    Tx::Sqlite(_) => unreachable!(),
                }
                Ok(v)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_rewritten_outside_quoted_text() {
        assert_eq!(
            pg_placeholders("SELECT ?1, '?2' FROM t WHERE a = ?12 AND b = 'it''s ?'"),
            "SELECT $1, '?2' FROM t WHERE a = $12 AND b = 'it''s ?'"
        );
    }

    #[test]
    fn sqlite_rows_convert_and_name_their_columns() {
        let mut c = Conn::Sqlite(rusqlite::Connection::open_in_memory().unwrap());
        let r = c
            .query_row("SELECT ?1 AS a, ?2 AS b, NULL AS c", args![7i64, "x"])
            .unwrap();
        assert_eq!(r.get::<i64>("a").unwrap(), 7);
        assert_eq!(r.get::<String>(1).unwrap(), "x");
        assert_eq!(r.get::<Option<String>>("c").unwrap(), None);
        let e = r.get::<i64>("b").unwrap_err();
        assert!(
            e.to_string().starts_with("column b: expected an integer"),
            "{e}"
        );
        assert!(r.get::<i64>("nope").is_err());
    }
}
