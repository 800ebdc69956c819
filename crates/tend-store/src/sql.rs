//! The little SQL the store needs, over either backend: statements with `$1`-style
//! parameters (rewritten to `?1` for SQLite), integer and text values, and write transactions
//! that serialise writers (SQLite `BEGIN IMMEDIATE`; PostgreSQL a transaction-level advisory
//! lock), so that everything above is written once.

use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;

use postgres::types::{ToSql, Type};

/// A column or parameter value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Val {
    Int(i64),
    Text(String),
    Null,
}

impl Val {
    pub(crate) fn int(&self) -> i64 {
        match self {
            Val::Int(i) => *i,
            Val::Text(t) => t.parse().unwrap_or(0),
            Val::Null => 0,
        }
    }

    pub(crate) fn text(self) -> String {
        match self {
            Val::Text(t) => t,
            Val::Int(i) => i.to_string(),
            Val::Null => String::new(),
        }
    }

    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }
}

impl From<&str> for Val {
    fn from(s: &str) -> Self {
        Val::Text(s.to_string())
    }
}

impl From<String> for Val {
    fn from(s: String) -> Self {
        Val::Text(s)
    }
}

impl From<i64> for Val {
    fn from(i: i64) -> Self {
        Val::Int(i)
    }
}

pub(crate) type Row = Vec<Val>;

/// Statements inside a transaction (or autocommit for reads).
pub(crate) trait Sql {
    fn exec(&mut self, sql: &str, params: &[Val]) -> Result<u64, String>;
    fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>, String>;
}

/// Which writers a write transaction excludes: appends to the chain and migrations share one
/// lock (a migration must not interleave with an append); leases have their own.
#[derive(Clone, Copy)]
pub(crate) enum Lock {
    Chain,
    Leases,
}

impl Lock {
    /// PostgreSQL advisory lock keys ("tend" in ASCII, then a number).
    fn key(self) -> i64 {
        match self {
            Lock::Chain => 0x7465_6e64_0000_0001,
            Lock::Leases => 0x7465_6e64_0000_0002,
        }
    }
}

pub(crate) enum Backend {
    Sqlite(rusqlite::Connection),
    Postgres(Box<postgres::Client>),
}

/// How long a SQLite writer waits for another one before giving up.
const SQLITE_BUSY: Duration = Duration::from_secs(60);

impl Backend {
    pub(crate) fn open_sqlite(path: &Path, create: bool) -> Result<Backend, String> {
        if create {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                if !dir.exists() {
                    DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(dir)
                        .map_err(|e| format!("cannot create directory {}: {e}", dir.display()))?;
                }
            }
            // Created here with 0600 so that the history is private from the first byte;
            // SQLite gives its journal files the database file's mode.
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
            {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
            | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX
            | rusqlite::OpenFlags::SQLITE_OPEN_URI;
        let conn = rusqlite::Connection::open_with_flags(path, flags).map_err(|e| e.to_string())?;
        conn.busy_timeout(SQLITE_BUSY).map_err(|e| e.to_string())?;
        // WAL: readers (tend history) never block a running apply. synchronous stays FULL:
        // an audit record is on disk when append returns.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| e.to_string())?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| e.to_string())?;
        Ok(Backend::Sqlite(conn))
    }

    pub(crate) fn open_postgres(url: &str) -> Result<Backend, String> {
        let client = postgres::Client::connect(url, postgres::NoTls).map_err(|e| pg_error(&e))?;
        Ok(Backend::Postgres(Box::new(client)))
    }

    /// Runs `f` in a write transaction holding `lock`; commits if it returns `Ok`.
    pub(crate) fn write<T, E>(
        &mut self,
        lock: Lock,
        f: impl FnOnce(&mut dyn Sql) -> Result<T, E>,
    ) -> Result<Result<T, E>, String> {
        match self {
            Backend::Sqlite(conn) => {
                let tx = conn
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .map_err(|e| e.to_string())?;
                let out = f(&mut Lite(&tx));
                if out.is_ok() {
                    tx.commit().map_err(|e| e.to_string())?;
                }
                Ok(out)
            }
            Backend::Postgres(client) => {
                let mut tx = client.transaction().map_err(|e| pg_error(&e))?;
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock.key()])
                    .map_err(|e| pg_error(&e))?;
                let out = f(&mut Pg(&mut tx));
                if out.is_ok() {
                    tx.commit().map_err(|e| pg_error(&e))?;
                }
                Ok(out)
            }
        }
    }

    /// Statements outside a transaction (reads).
    pub(crate) fn read(&mut self) -> Box<dyn Sql + '_> {
        match self {
            Backend::Sqlite(conn) => Box::new(Lite(conn)),
            Backend::Postgres(client) => Box::new(Pg(client.as_mut())),
        }
    }
}

struct Lite<'a>(&'a rusqlite::Connection);

/// `$1` → `?1`: SQLite's numbered parameters, so one SQL text serves both backends.
fn sqlite_text(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

fn lite_params(params: &[Val]) -> Vec<rusqlite::types::Value> {
    params
        .iter()
        .map(|p| match p {
            Val::Int(i) => rusqlite::types::Value::Integer(*i),
            Val::Text(t) => rusqlite::types::Value::Text(t.clone()),
            Val::Null => rusqlite::types::Value::Null,
        })
        .collect()
}

impl Sql for Lite<'_> {
    fn exec(&mut self, sql: &str, params: &[Val]) -> Result<u64, String> {
        let mut stmt = self
            .0
            .prepare_cached(&sqlite_text(sql))
            .map_err(|e| e.to_string())?;
        let n = stmt
            .execute(rusqlite::params_from_iter(lite_params(params)))
            .map_err(|e| e.to_string())?;
        Ok(n as u64)
    }

    fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>, String> {
        let mut stmt = self
            .0
            .prepare_cached(&sqlite_text(sql))
            .map_err(|e| e.to_string())?;
        let width = stmt.column_count();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(lite_params(params)))
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| e.to_string())? {
            let mut r = Vec::with_capacity(width);
            for i in 0..width {
                let v = match row.get_ref(i).map_err(|e| e.to_string())? {
                    rusqlite::types::ValueRef::Integer(i) => Val::Int(i),
                    rusqlite::types::ValueRef::Text(t) => {
                        Val::Text(String::from_utf8_lossy(t).into_owned())
                    }
                    rusqlite::types::ValueRef::Null => Val::Null,
                    rusqlite::types::ValueRef::Real(f) => Val::Text(f.to_string()),
                    rusqlite::types::ValueRef::Blob(b) => {
                        Val::Text(String::from_utf8_lossy(b).into_owned())
                    }
                };
                r.push(v);
            }
            out.push(r);
        }
        Ok(out)
    }
}

struct Pg<'a, C: postgres::GenericClient>(&'a mut C);

/// PostgreSQL's own message (with detail and hint), not just "db error".
pub(crate) fn pg_error(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{}: {}", db.severity(), db.message());
            if let Some(d) = db.detail() {
                s.push_str(&format!(" ({d})"));
            }
            s
        }
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s.push_str(&format!(": {inner}"));
                src = inner.source();
            }
            s
        }
    }
}

fn pg_params(params: &[Val]) -> Vec<Box<dyn ToSql + Sync>> {
    params
        .iter()
        .map(|p| -> Box<dyn ToSql + Sync> {
            match p {
                Val::Int(i) => Box::new(*i),
                Val::Text(t) => Box::new(t.clone()),
                Val::Null => Box::new(None::<String>),
            }
        })
        .collect()
}

impl<C: postgres::GenericClient> Sql for Pg<'_, C> {
    fn exec(&mut self, sql: &str, params: &[Val]) -> Result<u64, String> {
        let owned = pg_params(params);
        let refs: Vec<&(dyn ToSql + Sync)> = owned.iter().map(|b| b.as_ref()).collect();
        self.0.execute(sql, &refs).map_err(|e| pg_error(&e))
    }

    fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>, String> {
        let owned = pg_params(params);
        let refs: Vec<&(dyn ToSql + Sync)> = owned.iter().map(|b| b.as_ref()).collect();
        let rows = self.0.query(sql, &refs).map_err(|e| pg_error(&e))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut r = Vec::with_capacity(row.len());
            for (i, col) in row.columns().iter().enumerate() {
                let t = col.type_();
                let v = if *t == Type::INT8 {
                    row.try_get::<_, Option<i64>>(i).map(|v| v.map(Val::Int))
                } else if *t == Type::INT4 {
                    row.try_get::<_, Option<i32>>(i)
                        .map(|v| v.map(|v| Val::Int(i64::from(v))))
                } else if *t == Type::INT2 {
                    row.try_get::<_, Option<i16>>(i)
                        .map(|v| v.map(|v| Val::Int(i64::from(v))))
                } else {
                    row.try_get::<_, Option<String>>(i)
                        .map(|v| v.map(Val::Text))
                }
                .map_err(|e| pg_error(&e))?;
                r.push(v.unwrap_or(Val::Null));
            }
            out.push(r);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_parameters_become_sqlite_ones() {
        assert_eq!(
            sqlite_text("SELECT $1, '$x', $12 FROM t WHERE a = $2"),
            "SELECT ?1, '$x', ?12 FROM t WHERE a = ?2"
        );
    }
}
