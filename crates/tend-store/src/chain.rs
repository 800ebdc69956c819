//! The audit chain: an append-only table of records, each carrying the hash of the one before.
//!
//! # The hash
//!
//! `hash = hex(sha256(E))`, lowercase, where `E` is the byte string
//!
//! ```text
//! "tend-audit-v1\n" ‖ f(prev_hash) ‖ f(seq) ‖ f(run_id) ‖ f(kind) ‖ f(host) ‖ f(at) ‖ f(body)
//! f(x) = decimal length of x in bytes ‖ ":" ‖ x ‖ "\n"        (x as UTF-8; seq in decimal)
//! ```
//!
//! The length prefix makes the encoding unambiguous (no two different rows encode alike).
//! `prev_hash` of the first record (seq 1) is 64 zeros. `at` is UTC RFC 3339 with milliseconds,
//! `host` is empty for records that concern no host, `body` is canonical JSON: keys sorted by
//! their bytes, no insignificant whitespace, as serde_json writes strings and numbers. The body
//! is hashed as the stored text, so verification never re-serialises anything.
//!
//! # What verification can tell
//!
//! A record edited in place no longer matches its hash. A record deleted from the middle leaves
//! a gap in `seq` (or, if the rows after it were renumbered, a `prev_hash` that matches nothing
//! before it). Records moved to other positions are recognised because their hash matches only
//! under the `seq` they were written with. What the chain cannot show on its own: the newest
//! records deleted (the chain just ends earlier; a run whose `run_end` is missing is the only
//! trace), or someone rewriting every hash after an edit. Keep the head hash that `tend audit
//! verify` prints somewhere else to catch those.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::sql::{Lock, Val};
use crate::{time, Result, Store, StoreError};

/// `prev_hash` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The record kinds tend writes.
pub mod kind {
    pub const RUN_START: &str = "run_start";
    pub const HOST_RESULT: &str = "host_result";
    pub const RUN_END: &str = "run_end";
    pub const UNLOCK: &str = "unlock";
}

/// One row of the chain, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Record {
    pub seq: i64,
    pub run_id: String,
    pub kind: String,
    pub host: String,
    pub at: String,
    /// Canonical JSON text.
    pub body: String,
    pub prev_hash: String,
    pub hash: String,
}

impl Record {
    /// The hash this record's columns give under `seq` (see the module docs).
    pub fn compute_hash(&self, seq: i64) -> String {
        let mut h = Sha256::new();
        h.update(b"tend-audit-v1\n");
        let seq = seq.to_string();
        for field in [
            self.prev_hash.as_str(),
            &seq,
            &self.run_id,
            &self.kind,
            &self.host,
            &self.at,
            &self.body,
        ] {
            h.update(field.len().to_string().as_bytes());
            h.update(b":");
            h.update(field.as_bytes());
            h.update(b"\n");
        }
        hex::encode(h.finalize())
    }

    /// The body, parsed.
    pub fn json(&self) -> Result<Value> {
        serde_json::from_str(&self.body).map_err(|e| StoreError::BadRecord {
            location: String::new(),
            seq: self.seq,
            reason: e.to_string(),
        })
    }
}

/// JSON with keys sorted and no whitespace: the body's stored form.
pub fn canonical_json(v: &Value) -> String {
    fn sort(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let sorted: BTreeMap<&String, Value> =
                    m.iter().map(|(k, v)| (k, sort(v))).collect();
                Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
            }
            Value::Array(a) => Value::Array(a.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_string(&sort(v)).unwrap_or_default()
}

const COLUMNS: &str = "seq, run_id, kind, host, at, body, prev_hash, hash";

fn to_record(row: Vec<Val>) -> Record {
    let mut it = row.into_iter();
    let mut next = || it.next().unwrap_or(Val::Null);
    Record {
        seq: next().int(),
        run_id: next().text(),
        kind: next().text(),
        host: next().text(),
        at: next().text(),
        body: next().text(),
        prev_hash: next().text(),
        hash: next().text(),
    }
}

/// Which records to read.
#[derive(Clone, Debug, Default)]
pub struct RecordFilter<'a> {
    pub kinds: &'a [&'a str],
    pub run_id: Option<&'a str>,
}

/// Something wrong in the chain, named by the record where it shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Problem {
    /// The record's columns no longer give its hash.
    Edited { seq: i64, run_id: String },
    /// Records `first..=last` are missing; `seq`/`run_id` name the record after the gap.
    Deleted {
        first: i64,
        last: i64,
        seq: i64,
        run_id: String,
    },
    /// The record was written as `written_as` and now stands at `seq`.
    Reordered {
        seq: i64,
        run_id: String,
        written_as: i64,
    },
    /// The record does not follow the one before it (records removed and the rest renumbered,
    /// or the previous record replaced).
    Unlinked { seq: i64, run_id: String },
    /// A run with a start and no end: the newest records were deleted, or the run was
    /// interrupted (killed, machine lost) before it could record its end.
    Unended { seq: i64, run_id: String },
    /// Records of a run whose start is missing (deleted).
    NoStart { seq: i64, run_id: String },
}

impl Problem {
    pub fn seq(&self) -> i64 {
        match self {
            Problem::Edited { seq, .. }
            | Problem::Deleted { seq, .. }
            | Problem::Reordered { seq, .. }
            | Problem::Unlinked { seq, .. }
            | Problem::Unended { seq, .. }
            | Problem::NoStart { seq, .. } => *seq,
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Edited { seq, run_id } => write!(
                f,
                "record {seq} (run {run_id}) was edited: its contents do not match its hash"
            ),
            Problem::Deleted {
                first,
                last,
                seq,
                run_id,
            } => {
                let what = if first == last {
                    format!("record {first} was deleted")
                } else {
                    format!("records {first}..{last} were deleted")
                };
                write!(f, "{what} (the chain resumes at record {seq}, run {run_id})")
            }
            Problem::Reordered {
                seq,
                run_id,
                written_as,
            } => write!(
                f,
                "record {seq} (run {run_id}) was written as record {written_as}: records were reordered, or records before it were deleted and the rest renumbered"
            ),
            Problem::Unlinked { seq, run_id } => write!(
                f,
                "record {seq} (run {run_id}) does not follow the record before it: records before it were deleted and the rest renumbered, or the previous record was replaced"
            ),
            Problem::Unended { seq, run_id } => write!(
                f,
                "run {run_id} (started at record {seq}) has no end: the newest records were deleted, or the run was interrupted before it could record its end"
            ),
            Problem::NoStart { seq, run_id } => write!(
                f,
                "run {run_id} has records (from record {seq}) but no start: its run_start record was deleted"
            ),
        }
    }
}

/// What `verify` found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct VerifyReport {
    pub records: u64,
    pub runs: u64,
    /// The newest record: keep its hash elsewhere to detect a truncated or rewritten chain.
    pub head: Option<(i64, String)>,
    /// In chain order; the first is the first bad record.
    pub problems: Vec<Problem>,
    /// Runs without an end that hold a live lease: still running, not a problem.
    pub running: Vec<String>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// How far from its position a moved record is looked for when its predecessors are gone.
const RENUMBER_WINDOW: i64 = 64;

/// Walks records in `seq` order; `live_runs` are runs still holding a lease.
pub fn verify_records(records: &[Record], live_runs: &HashSet<String>) -> VerifyReport {
    let by_hash: HashMap<&str, usize> = records
        .iter()
        .enumerate()
        .map(|(i, r)| (r.hash.as_str(), i))
        .collect();
    let intact: Vec<bool> = records
        .iter()
        .map(|r| r.compute_hash(r.seq) == r.hash)
        .collect();
    // The seq a record was written with: follow prev_hash back to an intact record (or the
    // genesis), counting steps.
    let written_as = |i: usize| -> Option<i64> {
        let mut cur = i;
        let mut steps = 0i64;
        loop {
            let prev = &records[cur].prev_hash;
            if prev == GENESIS {
                return Some(steps + 1);
            }
            let &j = by_hash.get(prev.as_str())?;
            steps += 1;
            if intact[j] {
                return Some(records[j].seq + steps);
            }
            if steps > records.len() as i64 {
                return None;
            }
            cur = j;
        }
    };

    let mut report = VerifyReport {
        records: records.len() as u64,
        head: records.last().map(|r| (r.seq, r.hash.clone())),
        ..Default::default()
    };
    let mut expected = 1i64;
    let mut prev: Option<&Record> = None;
    let mut prev_bad = false;
    let mut last_offset: Option<i64> = None;
    let mut started: BTreeMap<&str, i64> = BTreeMap::new();
    let mut ended: HashSet<&str> = HashSet::new();
    let mut orphan: HashSet<&str> = HashSet::new();
    for (i, r) in records.iter().enumerate() {
        let mut bad = false;
        let link_ok = match prev {
            None => r.prev_hash == GENESIS,
            Some(p) => r.prev_hash == p.hash,
        };
        if intact[i] {
            last_offset = None;
        } else {
            bad = true;
            let verifies = |s: i64| s != r.seq && r.compute_hash(s) == r.hash;
            let orig = written_as(i)
                .filter(|&s| verifies(s))
                .or_else(|| last_offset.map(|d| r.seq + d).filter(|&s| verifies(s)))
                .or_else(|| {
                    (1..=RENUMBER_WINDOW)
                        .flat_map(|d| [r.seq + d, r.seq - d])
                        .find(|&s| s > 0 && verifies(s))
                });
            match orig {
                Some(orig) => {
                    let offset = orig - r.seq;
                    // Rows renumbered together after a deletion: one problem, not one each.
                    if !(last_offset == Some(offset) && link_ok) {
                        report.problems.push(Problem::Reordered {
                            seq: r.seq,
                            run_id: r.run_id.clone(),
                            written_as: orig,
                        });
                    }
                    last_offset = Some(offset);
                }
                None => {
                    last_offset = None;
                    report.problems.push(Problem::Edited {
                        seq: r.seq,
                        run_id: r.run_id.clone(),
                    });
                }
            }
        }
        if r.seq > expected {
            report.problems.push(Problem::Deleted {
                first: expected,
                last: r.seq - 1,
                seq: r.seq,
                run_id: r.run_id.clone(),
            });
            bad = true;
        } else if !link_ok && !bad && !prev_bad {
            report.problems.push(Problem::Unlinked {
                seq: r.seq,
                run_id: r.run_id.clone(),
            });
            bad = true;
        }
        match r.kind.as_str() {
            kind::RUN_START => {
                started.entry(&r.run_id).or_insert(r.seq);
            }
            kind::RUN_END => {
                ended.insert(&r.run_id);
            }
            kind::UNLOCK => {}
            _ => {
                if !started.contains_key(r.run_id.as_str()) && orphan.insert(&r.run_id) {
                    report.problems.push(Problem::NoStart {
                        seq: r.seq,
                        run_id: r.run_id.clone(),
                    });
                }
            }
        }
        if r.kind == kind::RUN_END
            && !started.contains_key(r.run_id.as_str())
            && orphan.insert(&r.run_id)
        {
            report.problems.push(Problem::NoStart {
                seq: r.seq,
                run_id: r.run_id.clone(),
            });
        }
        expected = r.seq + 1;
        prev = Some(r);
        prev_bad = bad;
    }
    report.runs = started.len() as u64;
    for (run, seq) in started {
        if ended.contains(run) {
            continue;
        }
        if live_runs.contains(run) {
            report.running.push(run.to_string());
        } else {
            report.problems.push(Problem::Unended {
                seq,
                run_id: run.to_string(),
            });
        }
    }
    report.problems.sort_by_key(Problem::seq);
    report
}

impl Store {
    /// Appends one record: reads the head and inserts after it in one write transaction, so
    /// concurrent writers (threads or processes, on SQLite or PostgreSQL) never fork the chain.
    /// The body is scrubbed of every value marked secret, then stored as canonical JSON.
    pub fn append(&mut self, run_id: &str, kind: &str, host: &str, body: &Value) -> Result<Record> {
        let mut out = self.append_many(run_id, &[(kind, host, body.clone())])?;
        Ok(out.pop().expect("one record appended"))
    }

    /// Appends `items` (kind, host, body) of one run in order, in one write transaction: one
    /// commit (one fsync on SQLite) for all of them. Either all are written or none.
    pub fn append_many(
        &mut self,
        run_id: &str,
        items: &[(&str, &str, Value)],
    ) -> Result<Vec<Record>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let bodies: Vec<String> = items
            .iter()
            .map(|(_, _, body)| {
                let mut body = body.clone();
                self.scrubber.scrub(&mut body);
                canonical_json(&body)
            })
            .collect();
        let out = self.backend.write(Lock::Chain, |sql| {
            let head = sql.query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", &[])?;
            let (mut seq, mut prev_hash) = match head.into_iter().next() {
                Some(mut row) => {
                    let hash = row.pop().unwrap_or(Val::Null).text();
                    (row[0].int(), hash)
                }
                None => (0, GENESIS.to_string()),
            };
            let mut written = Vec::with_capacity(items.len());
            for ((kind, host, _), text) in items.iter().zip(bodies) {
                seq += 1;
                let mut rec = Record {
                    seq,
                    run_id: run_id.to_string(),
                    kind: kind.to_string(),
                    host: host.to_string(),
                    at: time::now(),
                    body: text,
                    prev_hash,
                    hash: String::new(),
                };
                rec.hash = rec.compute_hash(seq);
                sql.exec(
                    &format!(
                        "INSERT INTO audit ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                    ),
                    &[
                        Val::Int(rec.seq),
                        Val::from(rec.run_id.as_str()),
                        Val::from(rec.kind.as_str()),
                        Val::from(rec.host.as_str()),
                        Val::from(rec.at.as_str()),
                        Val::from(rec.body.as_str()),
                        Val::from(rec.prev_hash.as_str()),
                        Val::from(rec.hash.as_str()),
                    ],
                )?;
                prev_hash = rec.hash.clone();
                written.push(rec);
            }
            Ok::<_, String>(written)
        });
        match out {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) | Err(e) => Err(self.backend_err(e)),
        }
    }

    /// Records in chain order.
    pub fn records(&mut self, filter: &RecordFilter<'_>) -> Result<Vec<Record>> {
        let mut sql = format!("SELECT {COLUMNS} FROM audit");
        let mut params = Vec::new();
        let mut conds = Vec::new();
        if !filter.kinds.is_empty() {
            let marks: Vec<String> = filter
                .kinds
                .iter()
                .map(|k| {
                    params.push(Val::from(*k));
                    format!("${}", params.len())
                })
                .collect();
            conds.push(format!("kind IN ({})", marks.join(", ")));
        }
        if let Some(run) = filter.run_id {
            params.push(Val::from(run));
            conds.push(format!("run_id = ${}", params.len()));
        }
        if !conds.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conds.join(" AND "));
        }
        sql.push_str(" ORDER BY seq");
        let rows = self.backend.read().query(&sql, &params);
        let rows = rows.map_err(|e| self.backend_err(e))?;
        Ok(rows.into_iter().map(to_record).collect())
    }

    /// Walks the whole chain (see [`verify_records`]).
    pub fn verify(&mut self) -> Result<VerifyReport> {
        let records = self.records(&RecordFilter::default())?;
        let live: HashSet<String> = self
            .leases()?
            .into_iter()
            .filter(|l| l.expires > time::now())
            .map(|l| l.run_id)
            .collect();
        Ok(verify_records(&records, &live))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: usize) -> Vec<Record> {
        let mut out: Vec<Record> = Vec::new();
        for i in 0..n {
            let seq = i as i64 + 1;
            let run = format!("r{}", i / 3);
            let kind = match i % 3 {
                0 => kind::RUN_START,
                1 => kind::HOST_RESULT,
                _ => kind::RUN_END,
            };
            let mut r = Record {
                seq,
                run_id: run,
                kind: kind.into(),
                host: String::new(),
                at: time::format(seq * 1000),
                body: format!("{{\"n\":{i}}}"),
                prev_hash: out.last().map_or(GENESIS.into(), |p| p.hash.clone()),
                hash: String::new(),
            };
            r.hash = r.compute_hash(seq);
            out.push(r);
        }
        out
    }

    fn problems(records: &[Record]) -> Vec<Problem> {
        verify_records(records, &HashSet::new()).problems
    }

    #[test]
    fn an_intact_chain_verifies() {
        let c = chain(9);
        let rep = verify_records(&c, &HashSet::new());
        assert!(rep.ok(), "{:?}", rep.problems);
        assert_eq!(rep.runs, 3);
        assert_eq!(rep.head.unwrap().0, 9);
    }

    #[test]
    fn the_encoding_is_length_prefixed() {
        let mut a = chain(1).remove(0);
        let mut b = a.clone();
        a.run_id = "ab".into();
        a.kind = "c".into();
        b.run_id = "a".into();
        b.kind = "bc".into();
        assert_ne!(a.compute_hash(1), b.compute_hash(1));
    }

    #[test]
    fn an_edit_is_named() {
        let mut c = chain(6);
        c[3].body = "{\"n\":42}".into();
        assert_eq!(
            problems(&c),
            [Problem::Edited {
                seq: 4,
                run_id: "r1".into()
            }]
        );
    }

    #[test]
    fn a_deletion_is_named() {
        let mut c = chain(9);
        c.remove(4);
        assert_eq!(
            problems(&c),
            [Problem::Deleted {
                first: 5,
                last: 5,
                seq: 6,
                run_id: "r1".into()
            }]
        );
    }

    #[test]
    fn a_deleted_run_start_is_named() {
        let mut c = chain(6);
        c.remove(3);
        let p = problems(&c);
        assert!(p.contains(&Problem::NoStart {
            seq: 5,
            run_id: "r1".into()
        }));
        assert_eq!(p[0].seq(), 5);
    }

    #[test]
    fn a_swap_is_named_as_a_reordering() {
        let mut c = chain(9);
        c.swap(4, 5);
        c[4].seq = 5;
        c[5].seq = 6;
        let p = problems(&c);
        assert_eq!(
            p[0],
            Problem::Reordered {
                seq: 5,
                run_id: "r1".into(),
                written_as: 6
            }
        );
        assert!(p.contains(&Problem::Reordered {
            seq: 6,
            run_id: "r1".into(),
            written_as: 5
        }));
    }

    #[test]
    fn renumbering_after_a_deletion_shows_as_unlinked() {
        let mut c = chain(9);
        c.remove(0);
        for r in &mut c {
            r.seq -= 1;
        }
        let p = problems(&c);
        assert_eq!(
            p,
            [
                Problem::Reordered {
                    seq: 1,
                    run_id: "r0".into(),
                    written_as: 2
                },
                Problem::NoStart {
                    seq: 1,
                    run_id: "r0".into()
                }
            ]
        );
    }

    #[test]
    fn a_missing_end_says_both_causes_unless_the_run_is_live() {
        let c = chain(8);
        let p = problems(&c);
        assert_eq!(
            p,
            [Problem::Unended {
                seq: 7,
                run_id: "r2".into()
            }]
        );
        assert!(p[0].to_string().contains("deleted"));
        assert!(p[0].to_string().contains("interrupted"));
        let live: HashSet<String> = ["r2".to_string()].into();
        let rep = verify_records(&c, &live);
        assert!(rep.ok());
        assert_eq!(rep.running, ["r2"]);
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let v: Value =
            serde_json::from_str(r#"{"b":1,"a":{"d":[1,{"z":0,"y":1}],"c":"x"}}"#).unwrap();
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":"x","d":[1,{"y":1,"z":0}]},"b":1}"#
        );
    }
}
