//! The schema, the same text for SQLite and PostgreSQL, and its versioned migrations.
//!
//! `schema_version` holds one row per applied migration. Each migration runs once, in one
//! transaction together with its row, under the chain's write lock, so two tend processes
//! opening a new store at the same moment apply it once. A store whose newest version is
//! above [`SCHEMA_VERSION`] was written by a newer tend and is refused, never rewritten.

use crate::sql::{Lock, Val};
use crate::{time, Store, StoreError};

/// Migrations in order: (version, statements). Never edit a released one; add the next.
const MIGRATIONS: &[(i64, &str)] = &[(
    1,
    "CREATE TABLE audit (
        seq BIGINT PRIMARY KEY,
        run_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        host TEXT NOT NULL,
        at TEXT NOT NULL,
        body TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE INDEX audit_run ON audit (run_id, seq);
    CREATE INDEX audit_kind ON audit (kind, seq);
    CREATE TABLE leases (
        host TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        user_name TEXT NOT NULL,
        since TEXT NOT NULL,
        expires TEXT NOT NULL
    );",
)];

/// The newest schema this tend writes and reads.
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

pub(crate) fn migrate(store: &mut Store) -> Result<(), StoreError> {
    let location = store.location.clone();
    let out = store
        .backend
        .write(Lock::Chain, |sql| -> Result<(), StoreError> {
            let err = |reason: String| StoreError::Backend {
                location: location.clone(),
                reason,
            };
            sql.exec(
                "CREATE TABLE IF NOT EXISTS schema_version (
                    version BIGINT PRIMARY KEY,
                    applied_at TEXT NOT NULL
                )",
                &[],
            )
            .map_err(err)?;
            let rows = sql
                .query("SELECT max(version) FROM schema_version", &[])
                .map_err(err)?;
            let current = rows
                .first()
                .and_then(|r| r.first())
                .filter(|v| !v.is_null())
                .map_or(0, Val::int);
            if current > SCHEMA_VERSION {
                return Err(StoreError::TooNew {
                    location: location.clone(),
                    found: current,
                    known: SCHEMA_VERSION,
                });
            }
            for (version, text) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
                for stmt in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                    sql.exec(stmt, &[])
                        .map_err(|e| err(format!("migration {version}: {e}")))?;
                }
                sql.exec(
                    "INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)",
                    &[Val::Int(*version), Val::Text(time::now())],
                )
                .map_err(err)?;
            }
            Ok(())
        })
        .map_err(|reason| StoreError::Backend {
            location: store.location.clone(),
            reason,
        })?;
    out
}
