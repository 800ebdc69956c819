//! `tend history`, `tend history show`, `tend audit verify`, `tend metrics`, `tend unlock`:
//! everything read back from the store, in the printer's style (banners of stars, `key=value`
//! counters); `--output json` for scripts.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{json, Value};
use tend_proto::HostStats;
use tend_store::{
    metrics, Metrics, RunDetail, RunFilter, RunKind, RunSummary, Store, StoreError, StoreSpec,
};

use crate::cli::{
    AuditArgs, AuditCommand, HistoryArgs, HistoryCommand, HistoryShowArgs, MetricsArgs,
    MetricsFormat, ReportFormat, StoreArgs, UnlockArgs,
};
use crate::printer::{banner, render_diff};
use crate::recorder::store_spec;

/// The store of the commands that run without a playbook (the history commands, `tend
/// rollback`, `tend compliance`): `--store`/`TEND_STORE`, else `.tend/history.db` in the
/// current directory — always named, so a recorder opening it treats it as asked for.
pub fn store_here(args: &StoreArgs) -> StoreArgs {
    let given = args.store.clone().filter(|s| !s.trim().is_empty());
    StoreArgs {
        store: Some(given.unwrap_or_else(|| STORE_HERE.into())),
    }
}

const STORE_HERE: &str = ".tend/history.db";

fn open(args: &StoreArgs) -> Result<Store, StoreError> {
    let spec = store_spec(&args.store, StoreSpec::Sqlite(PathBuf::from(STORE_HERE)));
    Store::open_existing(&spec)
}

pub fn report(e: &StoreError) -> ExitCode {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "error: {e}");
    if let Some(h) = e.hint() {
        let _ = writeln!(err, "hint: {h}");
    }
    ExitCode::from(1)
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

fn short(commit: &str) -> &str {
    commit.get(..10).unwrap_or(commit)
}

fn git_line(r: &RunSummary) -> String {
    match &r.start.git {
        None => "-".into(),
        Some(g) => {
            let mut s = g.commit.as_deref().map_or("(no commit)", short).to_string();
            match g.dirty {
                Some(true) => s.push_str(" (dirty)"),
                None => s.push_str(" (dirty?)"),
                Some(false) => {}
            }
            s
        }
    }
}

fn seconds(d: f64) -> String {
    if d < 60.0 {
        format!("{d:.1}s")
    } else if d < 3600.0 {
        format!("{}m{:02}s", (d / 60.0) as u64, (d % 60.0) as u64)
    } else {
        format!(
            "{}h{:02}m",
            (d / 3600.0) as u64,
            ((d % 3600.0) / 60.0) as u64
        )
    }
}

fn when(ts: &str) -> String {
    // 2025-01-02T03:04:05.006Z → 2025-01-02 03:04:05Z
    match ts.get(..19) {
        Some(s) => format!("{}Z", s.replacen('T', " ", 1)),
        None => ts.to_string(),
    }
}

fn kind_label(r: &RunSummary) -> String {
    // A compliance run always only reads: "(check)" would say nothing.
    if r.start.check && r.start.kind != RunKind::Compliance {
        format!("{} (check)", r.start.kind.as_str())
    } else {
        r.start.kind.as_str().to_string()
    }
}

fn totals(r: &RunSummary) -> HostStats {
    r.end.as_ref().map(|e| e.totals).unwrap_or_default()
}

/// `tend history [--host H] [--status S] [--kind K] [--since D] [--until D]`.
pub fn history(args: HistoryArgs) -> ExitCode {
    if let Some(HistoryCommand::Show(show_args)) = args.command {
        return show(show_args);
    }
    let bound = |flag: &str, v: &Option<String>| -> Result<Option<String>, StoreError> {
        v.as_deref()
            .map(|s| {
                tend_store::time::bound(s).ok_or_else(|| {
                    StoreError::BadFilter(format!(
                        "{flag} {s}: use a date (2025-01-02), a UTC time (2025-01-02T10:00) or an age (12h, 7d)"
                    ))
                })
            })
            .transpose()
    };
    let filter = (|| -> Result<RunFilter, StoreError> {
        Ok(RunFilter {
            host: args.host.clone(),
            status: args.status.clone(),
            kind: args
                .kind
                .as_deref()
                .map(|k| {
                    RunKind::parse(k).ok_or_else(|| {
                        StoreError::BadFilter(format!(
                            "unknown kind `{k}`: use apply, plan, drift, rollback, fix or compliance"
                        ))
                    })
                })
                .transpose()?,
            since: bound("--since", &args.since)?,
            until: bound("--until", &args.until)?,
        })
    })();
    let runs = filter.and_then(|f| {
        f.check()?;
        open(&args.store)?.runs(&f)
    });
    let runs = match runs {
        Ok(r) => r,
        Err(e) => return report(&e),
    };
    if args.output == ReportFormat::Json {
        let list: Vec<Value> = runs.iter().map(summary_json).collect();
        crate::out(&pretty(&Value::Array(list)));
        return ExitCode::SUCCESS;
    }
    let mut text = String::new();
    text.push_str(&format!(
        "{:<23} {:<13} {:<12} {:<20} {:>8} {:>5}  {:<24} {:<18} COMMIT\n",
        "RUN", "KIND", "STATUS", "STARTED", "TOOK", "HOSTS", "RECAP", "USER"
    ));
    for r in &runs {
        let t = totals(r);
        text.push_str(&format!(
            "{:<23} {:<13} {:<12} {:<20} {:>8} {:>5}  {:<24} {:<18} {}\n",
            r.run_id,
            kind_label(r),
            r.status(),
            when(&r.start.started),
            r.duration().map(seconds).unwrap_or_else(|| "-".into()),
            r.start.hosts.len(),
            format!("changed={} failed={}", t.changed, t.failed + t.unreachable),
            format!("{}@{}", r.start.user, r.start.controller),
            git_line(r),
        ));
    }
    if runs.is_empty() {
        text.push_str("(no runs match)\n");
    }
    crate::out(&text);
    ExitCode::SUCCESS
}

fn summary_json(r: &RunSummary) -> Value {
    json!({
        "run_id": r.run_id,
        "status": r.status(),
        "kind": r.start.kind,
        "check": r.start.check,
        "started": r.start.started,
        "ended": r.end.as_ref().map(|e| e.ended.clone()),
        "duration_seconds": r.duration(),
        "user": r.start.user,
        "controller": r.start.controller,
        "argv": r.start.argv,
        "playbook": r.start.playbook,
        "git": r.start.git,
        "hosts": r.start.hosts,
        "totals": r.end.as_ref().map(|e| e.totals),
        "exit_code": r.end.as_ref().map(|e| e.exit_code),
        "rolls_back": r.start.rolls_back,
        "policy": r.end.as_ref().and_then(|e| e.policy.clone()),
    })
}

/// The policy findings of a run's record, one line each: `deny: MSG (host, task)`.
fn policy_lines(p: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(e) = p.get("error").and_then(Value::as_str) {
        out.push(format!("error: {e}"));
    }
    for kind in ["deny", "warn"] {
        for f in p.get(kind).and_then(Value::as_array).into_iter().flatten() {
            let msg = f.get("msg").and_then(Value::as_str).unwrap_or_default();
            let whence: Vec<&str> = ["host", "task"]
                .iter()
                .filter_map(|k| f.get(*k).and_then(Value::as_str))
                .collect();
            if whence.is_empty() {
                out.push(format!("{kind}: {msg}"));
            } else {
                out.push(format!("{kind}: {msg} ({})", whence.join(", ")));
            }
        }
    }
    out
}

fn stats_line(h: &str, s: &HostStats) -> String {
    format!(
        "{h:<26} : ok={:<4} changed={:<4} unreachable={:<4} failed={:<4} skipped={:<4} rescued={:<4} ignored={:<4}\n",
        s.ok, s.changed, s.unreachable, s.failed, s.skipped, s.rescued, s.ignored
    )
}

/// `tend history show RUN`.
fn show(args: HistoryShowArgs) -> ExitCode {
    let found = open(&args.store).and_then(|mut s| {
        let detail = s.run(&args.run)?;
        // The rollbacks of this run, if any (`tend rollback`).
        let rollbacks: Vec<RunSummary> = s
            .runs(&RunFilter {
                kind: Some(RunKind::Rollback),
                ..Default::default()
            })?
            .into_iter()
            .filter(|r| r.start.rolls_back.as_deref() == Some(detail.summary.run_id.as_str()))
            .collect();
        Ok((detail, rollbacks))
    });
    let (detail, rollbacks) = match found {
        Ok(d) => d,
        Err(e) => return report(&e),
    };
    if args.output == ReportFormat::Json {
        let mut v = summary_json(&detail.summary);
        v["host_results"] = serde_json::to_value(&detail.hosts).unwrap_or_default();
        v["host_totals"] = serde_json::to_value(detail.host_stats()).unwrap_or_default();
        v["unlocks"] = Value::Array(detail.unlocks.clone());
        v["rolled_back_by"] = rollbacks
            .iter()
            .map(|r| json!({"run_id": r.run_id, "status": r.status(), "started": r.start.started}))
            .collect();
        crate::out(&pretty(&v));
        return ExitCode::SUCCESS;
    }
    crate::out(&render_run(&detail, &rollbacks, args.verbose));
    ExitCode::SUCCESS
}

fn render_run(d: &RunDetail, rollbacks: &[RunSummary], verbose: bool) -> String {
    let r = &d.summary;
    let mut text = banner(&format!("RUN [{}]", r.run_id));
    let status = match &r.end {
        Some(e) => format!("{} (exit {})", e.status.as_str(), e.exit_code),
        None => "unfinished: no end recorded (still running, interrupted, or its end was deleted)"
            .into(),
    };
    let mut field = |k: &str, v: String| text.push_str(&format!("{k:<11}{v}\n"));
    field("kind:", kind_label(r));
    field("status:", status);
    field("started:", when(&r.start.started));
    if let Some(e) = &r.end {
        field(
            "ended:",
            format!(
                "{} ({})",
                when(&e.ended),
                r.duration().map(seconds).unwrap_or_default()
            ),
        );
        if let Some(err) = &e.error {
            field("error:", err.clone());
        }
        if let Some(p) = &e.policy {
            if let Some(hosts) = p.get("hosts").and_then(Value::as_object) {
                let count = |w: &str| hosts.values().filter(|v| v.as_str() == Some(w)).count();
                field(
                    "verdicts:",
                    format!(
                        "{} of {} hosts compliant, {} non-compliant, {} not judged (error)",
                        count("compliant"),
                        hosts.len(),
                        count("non_compliant"),
                        count("error")
                    ),
                );
            }
            for line in policy_lines(p) {
                field("policy:", line);
            }
        }
    }
    field("by:", format!("{} on {}", r.start.user, r.start.controller));
    field("command:", r.start.argv.join(" "));
    if let Some(g) = &r.start.git {
        let mut s = g.commit.clone().unwrap_or_else(|| "(no commit)".into());
        if let Some(b) = &g.branch {
            s.push_str(&format!(" on {b}"));
        }
        s.push_str(match g.dirty {
            Some(true) => ", with uncommitted changes",
            Some(false) => ", clean",
            None => ", dirty or not: unknown",
        });
        field("git:", s);
    }
    field("hosts:", r.start.hosts.join(", "));
    if let Some(of) = &r.start.rolls_back {
        field("undoes:", format!("run {of}"));
    }
    for rb in rollbacks {
        field(
            "undone by:",
            format!(
                "run {} ({}, {})",
                rb.run_id,
                rb.status(),
                when(&rb.start.started)
            ),
        );
    }

    for h in &d.hosts {
        text.push_str(&banner(&format!("HOST [{}] PLAY [{}]", h.host, h.play)));
        let mut quiet = 0usize;
        for t in &h.tasks {
            let shown = verbose || t.changed || t.status == "failed" || t.status == "unreachable";
            if !shown {
                quiet += 1;
                continue;
            }
            let word = match t.status.as_str() {
                "failed" if t.ignored => "failed (ignored)",
                "failed" => "fatal",
                "unreachable" => "unreachable",
                "changed" => "changed",
                "skipped" => "skipping",
                _ => "ok",
            };
            text.push_str(&format!("{word}: {} ({})\n", t.name, t.loc));
            if t.status == "failed" || t.status == "unreachable" {
                if let Some(msg) = t.result.get("msg").and_then(Value::as_str) {
                    text.push_str(&format!("    msg: {msg}\n"));
                }
            }
            for diff in &t.diffs {
                text.push_str(&render_diff(diff));
            }
        }
        if quiet > 0 {
            text.push_str(&format!(
                "({quiet} task(s) changed nothing; -v lists them)\n"
            ));
        }
    }
    for u in &d.unlocks {
        text.push_str(&format!(
            "unlocked by hand: {} by {}\n",
            u.get("host").and_then(Value::as_str).unwrap_or("?"),
            u.get("by").and_then(Value::as_str).unwrap_or("?")
        ));
    }
    text.push_str(&banner("RUN RECAP"));
    for (h, s) in d.host_stats() {
        text.push_str(&stats_line(&h, &s));
    }
    text.push('\n');
    text
}

/// `tend audit verify`: exit 0 when the chain is whole, 1 when something is wrong.
pub fn audit(args: AuditArgs) -> ExitCode {
    let AuditCommand::Verify(args) = args.command;
    let mut store = match open(&args.store) {
        Ok(s) => s,
        Err(e) => return report(&e),
    };
    let rep = match store.verify() {
        Ok(r) => r,
        Err(e) => return report(&e),
    };
    if args.output == ReportFormat::Json {
        let mut v = serde_json::to_value(&rep).unwrap_or_default();
        v["ok"] = Value::Bool(rep.ok());
        v["store"] = Value::String(store.location().to_string());
        v["messages"] = rep.problems.iter().map(|p| p.to_string()).collect();
        crate::out(&pretty(&v));
    } else {
        let mut text = format!(
            "audit chain of {}: {} records, {} runs\n",
            store.location(),
            rep.records,
            rep.runs
        );
        if let Some((seq, hash)) = &rep.head {
            text.push_str(&format!(
                "head: record {seq} {hash}\n(keep this hash elsewhere: deleting the newest records is only visible against it)\n"
            ));
        }
        for run in &rep.running {
            text.push_str(&format!(
                "running: {run} holds a lease and has no end yet\n"
            ));
        }
        if rep.ok() {
            text.push_str("ok: every record matches its hash and follows the one before\n");
        }
        crate::out(&text);
        if let Some(first) = rep.problems.first() {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "error: {first}");
            for p in &rep.problems[1..] {
                let _ = writeln!(err, "  and: {p}");
            }
            let _ = writeln!(
                err,
                "hint: the store was changed outside tend; compare with a backup or the PostgreSQL/file-system audit logs"
            );
        }
    }
    if rep.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{:.1}%", v * 100.0))
}

fn avg(v: Option<f64>) -> String {
    v.map_or("-".into(), seconds)
}

/// `tend metrics [--output json|prometheus]`.
pub fn metrics_cmd(args: MetricsArgs) -> ExitCode {
    let m: Metrics = match open(&args.store).and_then(|mut s| s.metrics()) {
        Ok(m) => m,
        Err(e) => return report(&e),
    };
    match args.output {
        MetricsFormat::Json => crate::out(&pretty(&metrics::to_json(&m))),
        MetricsFormat::Prometheus => crate::out(&metrics::to_prometheus(&m)),
        MetricsFormat::Human => {
            let mut text = format!(
                "{:<20} {:>5} {:>8} {:>7} {:>7} {:>10} {:>7} {:>8} {:>8}\n",
                "",
                "RUNS",
                "SUCCESS",
                "DEPLOYS",
                "DRIFTED",
                "COMPLIANT",
                "POLICY",
                "PROVISN",
                "MTTR"
            );
            let mut row = |name: String, b: &tend_store::Bucket| {
                text.push_str(&format!(
                    "{:<20} {:>5} {:>8} {:>7} {:>7} {:>10} {:>7} {:>8} {:>8}\n",
                    name,
                    b.runs,
                    pct(b.run_success_rate),
                    b.deployments,
                    format!("{}/{}", b.drift_detected, b.drift_checks),
                    pct(b.compliance_rate),
                    pct(b.policy_compliance_rate),
                    avg(b.provisioning_seconds_avg),
                    avg(b.mttr_seconds_avg),
                ));
            };
            row("total".into(), &m.total);
            for (d, b) in &m.days {
                row(d.clone(), b);
            }
            for (g, b) in &m.groups {
                row(format!("group {g}"), b);
            }
            crate::out(&text);
        }
    }
    ExitCode::SUCCESS
}

/// `tend unlock HOST --run RUN`.
pub fn unlock(args: UnlockArgs) -> ExitCode {
    let user = crate::recorder::user();
    match open(&args.store).and_then(|mut s| s.unlock(&args.host, &args.run, &user)) {
        Ok(l) => {
            crate::out(&format!(
                "unlocked: {} (run {} of {} since {})\n",
                l.host,
                l.run_id,
                l.user,
                when(&l.since)
            ));
            ExitCode::SUCCESS
        }
        Err(StoreError::Leased(h)) => {
            let _ = writeln!(
                std::io::stderr(),
                "error: {} is held by run {} of {} since {}, not by run {}\nhint: tend unlock {} --run {} releases it, if that run is dead",
                h.host,
                h.run_id,
                h.user,
                when(&h.since),
                args.run,
                h.host,
                h.run_id
            );
            ExitCode::from(1)
        }
        Err(e) => report(&e),
    }
}
