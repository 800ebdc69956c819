//! The store against real backends: SQLite files in temporary directories and a real
//! PostgreSQL server (tests/setup.sh installs and starts one; the URL is TEND_TEST_POSTGRES,
//! default postgres://tend_test:tend_test@127.0.0.1:5432/tend_test). Each PostgreSQL test makes
//! its own database and drops it. Tampering is done with SQL, directly on the tables.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tend_proto::HostStats;
use tend_store::{
    HostResult, Problem, RunEnd, RunFilter, RunKind, RunStart, Store, StoreError, StoreSpec,
    TaskRecord,
};

const DEFAULT_PG: &str = "postgres://tend_test:tend_test@127.0.0.1:5432/tend_test";

/// One backend under test: a store spec, and raw access to its tables.
struct Backend {
    name: &'static str,
    spec: StoreSpec,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>, // (admin url, database)
}

impl Backend {
    fn sqlite() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let spec = StoreSpec::Sqlite(dir.path().join(".tend/history.db"));
        Backend {
            name: "sqlite",
            spec,
            _dir: Some(dir),
            pg: None,
        }
    }

    /// A fresh database on the test server; `None` (with a note) only when not root and no
    /// server answers.
    #[allow(clippy::print_stderr)] // the skip note
    fn postgres() -> Option<Backend> {
        static N: AtomicU32 = AtomicU32::new(0);
        let admin = std::env::var("TEND_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_PG.into());
        let mut client = match postgres::Client::connect(&admin, postgres::NoTls) {
            Ok(c) => c,
            Err(e) if !rustix_is_root() => {
                eprintln!("note: skipping PostgreSQL (not root, no server at TEND_TEST_POSTGRES): {e}");
                return None;
            }
            Err(e) => panic!(
                "PostgreSQL at {} does not answer ({e}): run tests/setup.sh (it installs and starts the server)",
                tend_store::redact_url(&admin)
            ),
        };
        let db = format!(
            "tend_t_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        client
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .unwrap();
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let url = format!("{base}/{db}");
        Some(Backend {
            name: "postgres",
            spec: StoreSpec::Postgres(url),
            _dir: None,
            pg: Some((admin, db)),
        })
    }

    fn open(&self) -> Store {
        Store::open(&self.spec).unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }

    /// Runs SQL on the tables, outside tend (the tamperer).
    fn tamper(&self, sql: &str) {
        match &self.spec {
            StoreSpec::Sqlite(p) => rusqlite::Connection::open(p)
                .unwrap()
                .execute_batch(sql)
                .unwrap(),
            StoreSpec::Postgres(url) => postgres::Client::connect(url, postgres::NoTls)
                .unwrap()
                .batch_execute(sql)
                .unwrap(),
        }
    }

    /// Everything the backend holds for the store, as text (for the secrets canary).
    fn dump(&self) -> String {
        match &self.spec {
            StoreSpec::Sqlite(p) => {
                // The file itself, with its WAL: what a person with the disk would see.
                let mut all = Vec::new();
                for entry in std::fs::read_dir(p.parent().unwrap()).unwrap() {
                    all.extend(std::fs::read(entry.unwrap().path()).unwrap());
                }
                String::from_utf8_lossy(&all).into_owned()
            }
            StoreSpec::Postgres(url) => {
                let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
                let mut out = String::new();
                for table in ["audit", "leases", "schema_version"] {
                    for row in c
                        .query(&format!("SELECT t::text FROM {table} t"), &[])
                        .unwrap()
                    {
                        out.push_str(row.get::<_, &str>(0));
                        out.push('\n');
                    }
                }
                out
            }
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some((admin, db)) = &self.pg {
            if let Ok(mut c) = postgres::Client::connect(admin, postgres::NoTls) {
                let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
            }
        }
    }
}

fn rustix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Runs `test` on a SQLite store and on a PostgreSQL store.
fn both(test: impl Fn(&Backend)) {
    let lite = Backend::sqlite();
    test(&lite);
    if let Some(pg) = Backend::postgres() {
        test(&pg);
    }
}

fn stats(ok: u32, changed: u32, failed: u32) -> HostStats {
    HostStats {
        ok,
        changed,
        failed,
        ..Default::default()
    }
}

fn start(kind: RunKind, hosts: &[&str], groups: &[(&str, &[&str])]) -> RunStart {
    RunStart {
        kind,
        argv: vec!["tend".into(), kind.as_str().into()],
        user: "alice".into(),
        controller: "ctl".into(),
        started: tend_store::time::now(),
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        groups: groups
            .iter()
            .map(|(h, g)| (h.to_string(), g.iter().map(|s| s.to_string()).collect()))
            .collect(),
        ..Default::default()
    }
}

/// A whole run: start, one host result per host, end. Returns the run id.
fn run(store: &mut Store, kind: RunKind, hosts: &[(&str, HostStats)]) -> String {
    let id = tend_store::new_run_id();
    let names: Vec<&str> = hosts.iter().map(|(h, _)| *h).collect();
    let groups: Vec<(&str, &[&str])> = names
        .iter()
        .map(|h| {
            let g: &[&str] = if h.starts_with("web") {
                &["web"]
            } else {
                &["db"]
            };
            (*h, g)
        })
        .collect();
    store.start_run(&id, &start(kind, &names, &groups)).unwrap();
    let mut per_host = BTreeMap::new();
    for (h, s) in hosts {
        store
            .record_host(
                &id,
                &HostResult {
                    host: h.to_string(),
                    play: "site".into(),
                    stats: *s,
                    tasks: vec![TaskRecord {
                        name: "motd".into(),
                        loc: "site.yml:4:7".into(),
                        status: if s.changed > 0 { "changed" } else { "ok" }.into(),
                        changed: s.changed > 0,
                        diffs: vec![
                            json!({"before": "a\n", "after": "b\n", "before_header": "/etc/motd"}),
                        ],
                        result: json!({"changed": s.changed > 0}),
                        ..Default::default()
                    }],
                },
            )
            .unwrap();
        per_host.insert(h.to_string(), *s);
    }
    store.end_run(&id, &RunEnd::new(per_host, 0)).unwrap();
    id
}

/// Two runs of three records each: seq 1..=6.
fn two_runs(b: &Backend) -> (Store, String, String) {
    let mut s = b.open();
    let r1 = run(&mut s, RunKind::Apply, &[("web1", stats(2, 1, 0))]);
    let r2 = run(&mut s, RunKind::Apply, &[("web1", stats(2, 0, 0))]);
    let rep = s.verify().unwrap();
    assert!(rep.ok(), "{}: {:?}", b.name, rep.problems);
    assert_eq!(rep.records, 6);
    (s, r1, r2)
}

#[test]
fn verify_names_an_edited_record() {
    both(|b| {
        let (mut s, _, r2) = two_runs(b);
        b.tamper("UPDATE audit SET body = replace(body, '\"changed\"', '\"ok\"') WHERE seq = 5");
        let rep = s.verify().unwrap();
        assert_eq!(
            rep.problems.first(),
            Some(&Problem::Edited {
                seq: 5,
                run_id: r2.clone()
            }),
            "{}: {:?}",
            b.name,
            rep.problems
        );
        assert!(rep.problems[0].to_string().contains(&r2));
    });
}

#[test]
fn verify_names_a_deleted_record() {
    both(|b| {
        let (mut s, r1, _) = two_runs(b);
        b.tamper("DELETE FROM audit WHERE seq = 2");
        let rep = s.verify().unwrap();
        assert_eq!(
            rep.problems,
            [Problem::Deleted {
                first: 2,
                last: 2,
                seq: 3,
                run_id: r1
            }],
            "{}",
            b.name
        );
    });
}

#[test]
fn verify_names_a_reordering() {
    both(|b| {
        let (mut s, _, r2) = two_runs(b);
        b.tamper(
            "UPDATE audit SET seq = -1 WHERE seq = 4;
             UPDATE audit SET seq = 4 WHERE seq = 5;
             UPDATE audit SET seq = 5 WHERE seq = -1;",
        );
        let rep = s.verify().unwrap();
        assert_eq!(
            rep.problems.first(),
            Some(&Problem::Reordered {
                seq: 4,
                run_id: r2.clone(),
                written_as: 5
            }),
            "{}: {:?}",
            b.name,
            rep.problems
        );
        assert!(rep.problems.contains(&Problem::Reordered {
            seq: 5,
            run_id: r2,
            written_as: 4
        }));
    });
}

#[test]
fn a_deleted_tail_shows_as_a_run_without_end() {
    both(|b| {
        let (mut s, _, r2) = two_runs(b);
        b.tamper("DELETE FROM audit WHERE seq = 6");
        let rep = s.verify().unwrap();
        assert_eq!(
            rep.problems,
            [Problem::Unended {
                seq: 4,
                run_id: r2.clone()
            }],
            "{}",
            b.name
        );
        let msg = rep.problems[0].to_string();
        assert!(
            msg.contains("deleted") && msg.contains("interrupted"),
            "{msg}"
        );
        // A run that still holds its lease is running, not a problem.
        s.acquire_lease(&["web1".into()], &r2, "alice", Duration::from_secs(60))
            .unwrap();
        let rep = s.verify().unwrap();
        assert!(rep.ok(), "{:?}", rep.problems);
        assert_eq!(rep.running, [r2]);
    });
}

#[test]
fn concurrent_writers_keep_one_chain() {
    both(|b| {
        b.open(); // create it once, so the writers race on appends
        std::thread::scope(|scope| {
            for t in 0..4 {
                let spec = b.spec.clone();
                scope.spawn(move || {
                    let mut s = Store::open(&spec).unwrap();
                    for i in 0..25 {
                        s.append(&format!("t{t}"), "host_result", "h", &json!({"i": i}))
                            .unwrap();
                    }
                });
            }
        });
        let mut s = b.open();
        let records = s.records(&Default::default()).unwrap();
        let seqs: Vec<i64> = records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, (1..=100).collect::<Vec<_>>(), "{}", b.name);
        let rep = s.verify().unwrap();
        // Only "no start" problems (these are bare records): the chain itself is whole.
        assert!(
            rep.problems
                .iter()
                .all(|p| matches!(p, Problem::NoStart { .. })),
            "{}: {:?}",
            b.name,
            rep.problems
        );
    });
}

#[test]
fn concurrent_opens_of_a_new_store_migrate_once() {
    both(|b| {
        std::thread::scope(|scope| {
            for _ in 0..3 {
                let spec = b.spec.clone();
                scope.spawn(move || Store::open(&spec).unwrap());
            }
        });
        assert!(b.dump().lines().count() >= 1);
        let text = b.dump();
        if b.name == "postgres" {
            let versions: Vec<&str> = text.lines().filter(|l| l.starts_with("(1,")).collect();
            assert_eq!(versions.len(), 1, "{text}");
        }
    });
}

#[test]
fn a_newer_schema_is_refused() {
    both(|b| {
        b.open();
        b.tamper("INSERT INTO schema_version (version, applied_at) VALUES (999, 'later')");
        match Store::open(&b.spec) {
            Err(e @ StoreError::TooNew { .. }) => {
                assert!(e.to_string().contains("999"), "{e}");
                assert!(e.hint().unwrap().contains("newer tend"));
            }
            Err(e) => panic!("{}: {e}", b.name),
            Ok(_) => panic!("{}: a newer schema was accepted", b.name),
        }
    });
}

#[test]
fn secrets_never_reach_the_store() {
    const CANARY: &str = "vault-canary-7f3a";
    both(|b| {
        let mut s = b.open();
        s.mark_secret(CANARY);
        let id = tend_store::new_run_id();
        let mut st = start(RunKind::Apply, &["web1"], &[]);
        st.argv.push(format!("db_password={CANARY}"));
        s.start_run(&id, &st).unwrap();
        s.record_host(
            &id,
            &HostResult {
                host: "web1".into(),
                play: "p".into(),
                stats: stats(1, 0, 0),
                tasks: vec![TaskRecord {
                    name: "debug".into(),
                    status: "ok".into(),
                    result: json!({"msg": format!("the password is {CANARY}"), CANARY: [CANARY]}),
                    diffs: vec![json!({"after": format!("pw={CANARY}\n")})],
                    ..Default::default()
                }],
            },
        )
        .unwrap();
        s.end_run(&id, &RunEnd::new(BTreeMap::new(), 0)).unwrap();
        drop(s);
        let dump = b.dump();
        assert!(
            !dump.contains(CANARY),
            "{}: the canary is in the store",
            b.name
        );
        assert!(dump.contains("the password is ********"), "{}", b.name);
    });
}

#[test]
fn leases_name_their_holder_and_unlock_wants_the_right_run() {
    both(|b| {
        let mut s = b.open();
        let hour = Duration::from_secs(3600);
        let web: Vec<String> = vec!["web1".into(), "web2".into()];
        s.acquire_lease(&web, "run-a", "alice", hour).unwrap();
        // The same run renews; another is refused, naming the holder.
        s.acquire_lease(&web, "run-a", "alice", hour).unwrap();
        let err = s
            .acquire_lease(&["db1".into(), "web2".into()], "run-b", "bob", hour)
            .unwrap_err();
        match &err {
            StoreError::Leased(h) => {
                assert_eq!(
                    (h.host.as_str(), h.run_id.as_str(), h.user.as_str()),
                    ("web2", "run-a", "alice")
                );
            }
            e => panic!("{}: {e}", b.name),
        }
        assert!(err.to_string().contains("run-a") && err.to_string().contains("alice"));
        // Nothing of run-b was taken.
        assert!(s.leases().unwrap().iter().all(|l| l.run_id == "run-a"));
        // Waiting gives up after the timeout.
        let t = Instant::now();
        let waited = s.acquire_lease_wait(
            &["web1".into()],
            "run-b",
            "bob",
            hour,
            Duration::from_millis(700),
        );
        assert!(matches!(waited, Err(StoreError::Leased(_))));
        assert!(t.elapsed() >= Duration::from_millis(700));
        // …and succeeds once the holder lets go while it waits.
        let spec = b.spec.clone();
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            Store::open(&spec).unwrap().release_leases("run-a").unwrap();
        });
        s.acquire_lease_wait(
            &["web1".into()],
            "run-b",
            "bob",
            hour,
            Duration::from_secs(10),
        )
        .unwrap();
        releaser.join().unwrap();
        // unlock refuses a wrong run id, naming the holder.
        match s.unlock("web1", "run-a", "carol") {
            Err(StoreError::Leased(h)) => assert_eq!(h.run_id, "run-b"),
            other => panic!("{}: {other:?}", b.name),
        }
        assert!(matches!(
            s.unlock("db9", "run-b", "carol"),
            Err(StoreError::NotLeased { .. })
        ));
        let l = s.unlock("web1", "run-b", "carol").unwrap();
        assert_eq!(l.user, "bob");
        assert!(s.leases().unwrap().is_empty());
        // The unlock is in the chain.
        let recs = s.records(&Default::default()).unwrap();
        assert_eq!(recs.last().unwrap().kind, "unlock");
        assert!(recs.last().unwrap().body.contains("carol"));
        // An expired lease is taken over.
        s.acquire_lease(&["web3".into()], "run-c", "c", Duration::from_millis(1))
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        s.acquire_lease(&["web3".into()], "run-d", "d", hour)
            .unwrap();
    });
}

#[test]
fn history_lists_filters_and_shows_runs() {
    both(|b| {
        let mut s = b.open();
        let a = run(
            &mut s,
            RunKind::Apply,
            &[("web1", stats(2, 1, 0)), ("db1", stats(1, 0, 0))],
        );
        let f = run(&mut s, RunKind::Apply, &[("db1", stats(0, 0, 1))]);
        let d = run(&mut s, RunKind::Drift, &[("web1", stats(1, 0, 0))]);
        let ids = |runs: Vec<tend_store::RunSummary>| -> Vec<String> {
            runs.into_iter().map(|r| r.run_id).collect()
        };
        assert_eq!(
            ids(s.runs(&RunFilter::default()).unwrap()),
            [a.clone(), f.clone(), d.clone()]
        );
        let by_host = RunFilter {
            host: Some("web1".into()),
            ..Default::default()
        };
        assert_eq!(ids(s.runs(&by_host).unwrap()), [a.clone(), d.clone()]);
        let failed = RunFilter {
            status: Some("failed".into()),
            ..Default::default()
        };
        assert_eq!(ids(s.runs(&failed).unwrap()), std::slice::from_ref(&f));
        let drift = RunFilter {
            kind: Some(RunKind::Drift),
            ..Default::default()
        };
        assert_eq!(ids(s.runs(&drift).unwrap()), std::slice::from_ref(&d));
        let future = RunFilter {
            since: tend_store::time::bound("2999-01-01"),
            ..Default::default()
        };
        assert!(s.runs(&future).unwrap().is_empty());
        let bad = RunFilter {
            status: Some("fine".into()),
            ..Default::default()
        };
        assert!(s.runs(&bad).unwrap_err().to_string().contains("succeeded"));

        let detail = s.run(&a).unwrap();
        assert_eq!(detail.hosts.len(), 2);
        assert_eq!(detail.hosts[0].tasks[0].diffs[0]["after"], "b\n");
        assert_eq!(detail.host_stats()["web1"].changed, 1);
        assert!(matches!(s.run("nope"), Err(StoreError::NoRun(_))));
        assert!(matches!(s.run("2"), Err(StoreError::AmbiguousRun { .. })));
    });
}

#[test]
fn metrics_from_history() {
    both(|b| {
        let mut s = b.open();
        // web1 is provisioned, drifts, is fixed; db1 fails once then succeeds without change.
        run(
            &mut s,
            RunKind::Apply,
            &[("web1", stats(3, 2, 0)), ("db1", stats(1, 0, 1))],
        );
        run(
            &mut s,
            RunKind::Drift,
            &[("web1", stats(2, 1, 0)), ("db1", stats(2, 0, 0))],
        );
        std::thread::sleep(Duration::from_millis(30));
        run(&mut s, RunKind::Fix, &[("web1", stats(2, 1, 0))]);
        run(&mut s, RunKind::Drift, &[("web1", stats(2, 0, 0))]);
        let m = s.metrics().unwrap();
        let t = &m.total;
        assert_eq!(t.runs, 4);
        assert_eq!(t.runs_succeeded, 3);
        assert_eq!(t.run_success_rate, Some(0.75));
        assert_eq!(t.deployments, 0, "the first apply failed on db1");
        assert_eq!(t.drift_checks, 3);
        assert_eq!(t.drift_detected, 1);
        assert_eq!((t.hosts_checked, t.hosts_compliant), (2, 2));
        assert_eq!(t.hosts_provisioned, 1);
        assert_eq!(t.drift_corrected, 1);
        assert!(t.mttr_seconds_avg.unwrap() > 0.0);
        let web = &m.groups["web"];
        assert_eq!(web.runs, 4);
        assert_eq!(web.runs_succeeded, 4, "web1 never failed");
        assert_eq!(web.deployments, 1, "the first apply deployed to web");
        let db = &m.groups["db"];
        assert_eq!((db.runs, db.runs_succeeded), (2, 1));
        assert_eq!(m.days.len(), 1);
        let text = tend_store::metrics::to_prometheus(&m);
        assert!(text.contains("tend_runs{group=\"web\"} 4\n"), "{text}");
    });
}

#[test]
fn a_new_sqlite_store_is_private() {
    let b = Backend::sqlite();
    b.open();
    let StoreSpec::Sqlite(p) = &b.spec else {
        unreachable!()
    };
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(p), 0o600);
    assert_eq!(mode(p.parent().unwrap()), 0o700);
    // The history commands never create one.
    let missing = StoreSpec::Sqlite(p.with_file_name("other.db"));
    assert!(matches!(
        Store::open_existing(&missing),
        Err(StoreError::Missing { .. })
    ));
}

#[test]
fn postgres_urls_never_show_their_password() {
    let spec = StoreSpec::parse("postgres://tend:s3cr3t@127.0.0.1:1/x");
    assert_eq!(spec.display(), "postgres://tend:***@127.0.0.1:1/x");
    let err = Store::open(&spec).err().expect("nothing listens on port 1");
    assert!(!err.to_string().contains("s3cr3t"), "{err}");
    assert!(err.to_string().contains("127.0.0.1"), "{err}");
}

/// Host results written in batches (one transaction each, as the recorder's writer does) form
/// the same verifiable chain, in the order given, with secrets masked; a concurrent writer
/// between two batches does not fork the chain.
#[test]
fn batched_host_results_keep_the_chain_and_mask_secrets() {
    const CANARY: &str = "batch-canary-51c0";
    both(|b| {
        let mut s = b.open();
        s.mark_secret(CANARY);
        let id = tend_store::new_run_id();
        let hosts: Vec<String> = (0..600).map(|i| format!("h{i:03}")).collect();
        let names: Vec<&str> = hosts.iter().map(String::as_str).collect();
        s.start_run(&id, &start(RunKind::Apply, &names, &[]))
            .unwrap();
        let results: Vec<HostResult> = hosts
            .iter()
            .map(|h| HostResult {
                host: h.clone(),
                play: "p".into(),
                stats: stats(1, 1, 0),
                tasks: vec![TaskRecord {
                    name: "t".into(),
                    status: "changed".into(),
                    result: json!({"msg": format!("{h} token {CANARY}")}),
                    ..Default::default()
                }],
            })
            .collect();
        let mut other = b.open();
        for (i, chunk) in results.chunks(256).enumerate() {
            let written = s.record_hosts(&id, chunk).unwrap();
            assert_eq!(written.len(), chunk.len());
            if i == 0 {
                run(&mut other, RunKind::Apply, &[("db1", stats(1, 0, 0))]);
            }
        }
        s.end_run(&id, &RunEnd::new(BTreeMap::new(), 0)).unwrap();
        let rep = s.verify().unwrap();
        assert!(rep.ok(), "{}: {:?}", b.name, rep.problems);
        assert_eq!(rep.records, 600 + 2 + 3, "{}", b.name);
        let detail = s.run(&id).unwrap();
        let order: Vec<&str> = detail.hosts.iter().map(|h| h.host.as_str()).collect();
        assert_eq!(order, names, "{}: results in the order given", b.name);
        drop(s);
        assert!(
            !b.dump().contains(CANARY),
            "{}: canary in the store",
            b.name
        );
    });
}

/// A lease that its run stops renewing expires after its TTL; while renewed it holds.
#[test]
fn a_lease_expires_once_its_run_stops_renewing_it() {
    both(|b| {
        let mut s = b.open();
        let mut other = b.open();
        let ttl = Duration::from_millis(600);
        let hosts = vec!["web1".to_string(), "web2".to_string()];
        s.acquire_lease(&hosts, "r1", "alice", ttl).unwrap();
        // Renewed three times, well past one TTL: still held.
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(300));
            assert_eq!(s.renew_leases("r1", ttl).unwrap(), 2, "{}", b.name);
        }
        match other.acquire_lease(&hosts[1..], "r2", "bob", ttl) {
            Err(StoreError::Leased(h)) => assert_eq!(h.run_id, "r1"),
            other => panic!("{}: {other:?}", b.name),
        }
        // r1 stops renewing (it died): after the TTL, r2 gets the hosts.
        std::thread::sleep(ttl + Duration::from_millis(100));
        other
            .acquire_lease(&hosts, "r2", "bob", Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{}: {e}", b.name));
        // r1 coming back renews nothing: its leases are gone.
        assert_eq!(s.renew_leases("r1", ttl).unwrap(), 0, "{}", b.name);
    });
}
