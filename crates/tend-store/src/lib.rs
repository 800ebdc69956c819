//! tend's memory: every run recorded as hash-chained audit records, run leases, and the history
//! and metrics read back from those records.
//!
//! One schema ([`schema`]), two backends: an embedded SQLite file (default
//! `.tend/history.db` beside the playbook) or a PostgreSQL database shared by a team
//! (`postgres://…`). Everything above the backend — appending to the chain, verifying it, leases,
//! history and metrics — is written once against a small SQL interface ([`sql`]).
//!
//! The audit chain ([`chain`]) is the only source of history: `tend history`, `tend history
//! show` and `tend metrics` read the records, so what they say can always be checked with
//! [`Store::verify`].

pub mod chain;
pub mod git;
mod lease;
pub mod metrics;
mod query;
pub mod records;
mod schema;
mod sql;
pub mod time;

use std::path::{Path, PathBuf};

pub use chain::{Problem, Record, VerifyReport};
pub use lease::{Lease, LeaseHolder};
pub use metrics::{Bucket, Metrics};
pub use query::{RunDetail, RunFilter, RunSummary, STATUSES};
pub use records::{
    new_run_id, secret_looking, GitInfo, HostResult, RunEnd, RunKind, RunStart, RunStatus,
    Scrubber, TaskRecord, MASK,
};
pub use schema::SCHEMA_VERSION;

use sql::Backend;

/// Where the history lives: a SQLite file or a PostgreSQL URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreSpec {
    Sqlite(PathBuf),
    Postgres(String),
}

impl StoreSpec {
    /// `postgres://…` / `postgresql://…` is PostgreSQL; anything else is a SQLite file path.
    pub fn parse(s: &str) -> StoreSpec {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            StoreSpec::Postgres(s.to_string())
        } else {
            StoreSpec::Sqlite(PathBuf::from(s))
        }
    }

    /// The default store of a playbook: `.tend/history.db` in its directory.
    pub fn beside(playbook: &Path) -> StoreSpec {
        let dir = playbook
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        StoreSpec::Sqlite(dir.join(".tend").join("history.db"))
    }

    /// How the store is named in messages: the path, or the URL without its password.
    pub fn display(&self) -> String {
        match self {
            StoreSpec::Sqlite(p) => p.display().to_string(),
            StoreSpec::Postgres(url) => redact_url(url),
        }
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db` (also `password=` options).
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest = &out[scheme_end + 3..];
        let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
        if let Some(at) = rest[..auth_end].rfind('@') {
            if let Some(colon) = rest[..at].find(':') {
                let start = scheme_end + 3 + colon + 1;
                let end = scheme_end + 3 + at;
                out.replace_range(start..end, "***");
            }
        }
    }
    if let Some(i) = out.find("password=") {
        let start = i + "password=".len();
        let end = out[start..]
            .find(['&', ' '])
            .map_or(out.len(), |e| start + e);
        out.replace_range(start..end, "***");
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the history store {location}: {reason}")]
    Open { location: String, reason: String },
    #[error("there is no history store at {location}")]
    Missing { location: String },
    #[error("history store {location}: {reason}")]
    Backend { location: String, reason: String },
    #[error(
        "the history store {location} has schema version {found}, newer than this tend knows ({known})"
    )]
    TooNew {
        location: String,
        found: i64,
        known: i64,
    },
    #[error("history store {location}: record {seq} is not valid JSON: {reason}")]
    BadRecord {
        location: String,
        seq: i64,
        reason: String,
    },
    #[error("{} is held by run {} of {} since {}", .0.host, .0.run_id, .0.user, .0.since)]
    Leased(LeaseHolder),
    #[error("{host} is not leased by any run")]
    NotLeased { host: String },
    #[error("no run matches `{0}`")]
    NoRun(String),
    #[error("`{prefix}` matches several runs: {}", .runs.join(", "))]
    AmbiguousRun { prefix: String, runs: Vec<String> },
    #[error("{0}")]
    BadFilter(String),
    #[error("plan {plan} was already applied by run {run} ({by}); a plan may be applied once")]
    PlanApplied {
        plan: String,
        run: String,
        /// `started WHEN by USER`.
        by: String,
    },
}

impl StoreError {
    /// The next step for the user, where there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            StoreError::Missing { .. } => Some(
                "run tend from the playbook's directory (the history is .tend/history.db beside the playbook), or name the store with --store PATH|postgres://… or TEND_STORE".into(),
            ),
            StoreError::Open { .. } => Some(
                "check the path's permissions or the PostgreSQL URL, or run with --no-history to run without recording".into(),
            ),
            StoreError::TooNew { .. } => Some(
                "a newer tend wrote this store: use that version (older versions never rewrite a newer schema)".into(),
            ),
            StoreError::Leased(h) => Some(format!(
                "wait for run {} to finish (--lock-timeout SECONDS waits), or if it died: tend unlock {} --run {}",
                h.run_id, h.host, h.run_id
            )),
            StoreError::NoRun(_) => Some("`tend history` lists the runs and their ids".into()),
            StoreError::PlanApplied { run, .. } => Some(format!(
                "`tend history show {run}` shows what it did; run `tend plan` again for a new plan"
            )),
            _ => None,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// An open history store.
pub struct Store {
    backend: Backend,
    location: String,
    scrubber: Scrubber,
}

impl Store {
    /// Opens the store, creating it (a SQLite file with mode 0600 in a 0700 directory, or the
    /// tables in a PostgreSQL database) and applying pending schema migrations.
    pub fn open(spec: &StoreSpec) -> Result<Store> {
        Self::open_with(spec, true)
    }

    /// Opens a store that must already exist (the history commands never create one). The
    /// schema is still migrated if this tend is newer.
    pub fn open_existing(spec: &StoreSpec) -> Result<Store> {
        Self::open_with(spec, false)
    }

    fn open_with(spec: &StoreSpec, create: bool) -> Result<Store> {
        let location = spec.display();
        let backend = match spec {
            StoreSpec::Sqlite(path) => {
                if !create && !path.exists() {
                    return Err(StoreError::Missing { location });
                }
                Backend::open_sqlite(path, create).map_err(|reason| StoreError::Open {
                    location: location.clone(),
                    reason,
                })?
            }
            StoreSpec::Postgres(url) => {
                Backend::open_postgres(url).map_err(|reason| StoreError::Open {
                    location: location.clone(),
                    reason,
                })?
            }
        };
        let mut store = Store {
            backend,
            location,
            scrubber: Scrubber::default(),
        };
        schema::migrate(&mut store)?;
        Ok(store)
    }

    /// The store's name for messages (a PostgreSQL password is never shown).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Values that must never be stored: every occurrence in a record is replaced by [`MASK`]
    /// before it is written (vault values, passwords, secret-looking extra vars).
    pub fn mark_secret(&mut self, value: &str) {
        self.scrubber.add(value);
    }

    fn backend_err(&self, reason: impl std::fmt::Display) -> StoreError {
        StoreError::Backend {
            location: self.location.clone(),
            reason: reason.to_string(),
        }
    }
}
