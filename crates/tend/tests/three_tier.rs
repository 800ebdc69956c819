//! examples/three-tier on five systemd lab hosts: Redis (h01), three app servers (h02–h04) and
//! nginx balancing them (h05), brought up from nothing in dependency order (`needs:`), then
//! rolled forward with a good release and a broken one. The broken release fails the health
//! gate on the first app server and is rolled back there while the load balancer keeps
//! answering from the other two — checked by requests through it during the whole rollout.
//!
//! Needs root (labs do); without it the test prints a note and passes.

mod common;
use common::{recap_line, text};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tend_lab::Lab;

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/three-tier")
}

/// `tend ARGS -i <lab inventory> -i inventory.ini` in the example's directory, recording to
/// `store` (never into the checkout).
fn tend(lab: &Lab, store: &Path, args: &[&str]) -> (Output, String) {
    let lab_inv = lab.inventory_path();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tend"))
        .args(args)
        .args(["-i", lab_inv.to_str().unwrap(), "-i", "inventory.ini"])
        .current_dir(example())
        .env("NO_COLOR", "1")
        .env("TEND_STORE", store)
        .output()
        .expect("start tend");
    let t = text(&out);
    (out, t)
}

/// `tend history ARGS` on `store`.
fn history(store: &Path, args: &[&str]) -> (Output, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tend"))
        .arg("history")
        .args(args)
        .env("NO_COLOR", "1")
        .env("TEND_STORE", store)
        .output()
        .expect("start tend");
    let t = text(&out);
    (out, t)
}

/// One `GET path` (HTTP/1.0, so the server closes): status and the value of header `X-Release`
/// and of `X-Served-By` (the load balancer's upstream), or the connection error.
fn get(addr: SocketAddr, path: &str) -> Result<(u16, String, String, String), String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(3)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    write!(s, "GET {path} HTTP/1.0\r\nHost: demo\r\n\r\n").map_err(|e| e.to_string())?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).map_err(|e| e.to_string())?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status line in {raw:?}"))?;
    let header = |name: &str| {
        head.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
            .unwrap_or_default()
    };
    Ok((
        status,
        header("X-Release"),
        header("X-Served-By"),
        body.to_string(),
    ))
}

/// The content of `path` on `host`.
fn cat(lab: &Lab, host: &str, path: &str) -> String {
    lab.run(host, &["cat", path]).unwrap_or_default()
}

#[test]
#[allow(clippy::print_stderr)]
fn three_tier_brought_up_in_order_then_a_broken_release_is_rolled_back_while_serving() {
    if !common::is_root() {
        eprintln!("note: skipped: lab hosts need root (run as root, as CI does)");
        return;
    }
    let lab = Lab::builder()
        .hosts(5)
        .systemd(true)
        .start()
        .expect("the lab starts (tests need root and tests/setup.sh)");
    let store_dir = tempfile::tempdir().unwrap();
    let store = store_dir.path().join("history.db");
    let ip = |h: &str| -> Ipv4Addr { lab.host(h).unwrap().ip };
    let lb = SocketAddr::from((ip("h05"), 80));

    // The order, before anything runs: db, then app, then lb.
    let (out, t) = tend(
        &lab,
        &store,
        &["apply", "site.yml", "--dry-run-orchestration"],
    );
    assert!(out.status.success(), "{t}");
    let at = |s: &str| t.find(s).unwrap_or_else(|| panic!("{s} missing: {t}"));
    assert!(at("STAGE 1") < at("[db]"), "{t}");
    assert!(
        at("[db]") < at("STAGE 2") && at("STAGE 2") < at("[app]"),
        "{t}"
    );
    assert!(
        at("[app]") < at("STAGE 3") && at("STAGE 3") < at("[lb]"),
        "{t}"
    );

    // Bring-up from nothing.
    let (out, t) = tend(&lab, &store, &["apply", "site.yml"]);
    assert!(out.status.success(), "bring-up: {t}");
    for h in ["h01", "h02", "h03", "h04", "h05"] {
        let r = recap_line(&t, h);
        assert!(
            r.contains("failed=0") && r.contains("unreachable=0"),
            "{h}: {t}"
        );
        assert!(
            !r.contains("changed=0 "),
            "{h} changed nothing on first apply: {t}"
        );
    }
    // The tiers came up in dependency order: each play starts after the one it needs ended.
    let first = |s: &str| t.find(s).unwrap_or_else(|| panic!("{s} missing: {t}"));
    assert!(first("PLAY [db]") < first("PLAY [app]"), "{t}");
    assert!(first("PLAY [app]") < first("PLAY [lb]"), "{t}");

    // Every app server answers through the load balancer, with release 1 — once nginx's
    // workers have taken the reload (`nginx -s reload` returns before they have).
    let mut ready = false;
    for _ in 0..50 {
        if matches!(get(lb, "/"), Ok((200, ref r, _, _)) if r == "1") {
            ready = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(ready, "the load balancer serves the app: {t}");
    let mut served = std::collections::BTreeSet::new();
    for _ in 0..12 {
        let (status, release, by, body) = get(lb, "/").expect("the load balancer answers");
        assert_eq!(status, 200, "{body}");
        assert_eq!(release, "1", "{body}");
        served.insert(by);
    }
    let apps: std::collections::BTreeSet<String> = ["h02", "h03", "h04"]
        .iter()
        .map(|h| format!("{}:8000", ip(h)))
        .collect();
    assert_eq!(served, apps, "round robin over the three app servers");

    // Idempotent: the second run changes nothing anywhere.
    let (out, t) = tend(&lab, &store, &["apply", "site.yml"]);
    assert!(out.status.success(), "{t}");
    for h in ["h01", "h02", "h03", "h04", "h05"] {
        assert!(recap_line(&t, h).contains("changed=0 "), "{h}: {t}");
    }

    // A good release rolls through, one server at a time.
    let (out, t) = tend(&lab, &store, &["apply", "release.yml", "-e", "release=2"]);
    assert!(out.status.success(), "release 2: {t}");
    assert_eq!(t.matches("PLAY [release]").count(), 3, "three batches: {t}");
    for h in ["h02", "h03", "h04"] {
        assert!(cat(&lab, h, "/etc/demo-app/app.conf").contains("release = 2"));
    }
    let before = |h: &str| cat(&lab, h, "/etc/demo-app/app.conf");
    let (conf2, conf3, conf4) = (before("h02"), before("h03"), before("h04"));

    // A broken release, with users on the load balancer the whole time.
    let stop = Arc::new(AtomicBool::new(false));
    let users = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                seen.push(get(lb, "/"));
                std::thread::sleep(Duration::from_millis(50));
            }
            seen
        })
    };
    let (out, t) = tend(&lab, &store, &["apply", "release.yml", "-e", "release=3"]);
    stop.store(true, Ordering::Relaxed);
    let seen = users.join().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "a failed gate fails the run: {t}"
    );
    assert!(t.contains("health gate"), "the gate is named: {t}");
    assert!(recap_line(&t, "h02").contains("failed=1"), "{t}");
    assert_eq!(recap_line(&t, "h03"), "", "h03 never ran: {t}");
    assert_eq!(recap_line(&t, "h04"), "", "h04 never ran: {t}");

    // h02 is back on release 2 (its configuration restored, the service healthy again); the
    // others were never touched.
    assert_eq!(cat(&lab, "h02", "/etc/demo-app/app.conf"), conf2, "{t}");
    assert_eq!(cat(&lab, "h03", "/etc/demo-app/app.conf"), conf3);
    assert_eq!(cat(&lab, "h04", "/etc/demo-app/app.conf"), conf4);
    let mut healthy = false;
    for _ in 0..50 {
        if let Ok((200, release, _, _)) = get(SocketAddr::from((ip("h02"), 8000)), "/health") {
            assert_eq!(release, "2");
            healthy = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        healthy,
        "h02 serves release 2 again after the rollback: {t}"
    );

    // The history has the failed release and, under it, the rollback's results with diffs.
    let (out, h) = history(&store, &["--output", "json"]);
    assert!(out.status.success(), "{h}");
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let last = &runs.as_array().unwrap().last().unwrap();
    assert_eq!(last["status"], "failed", "{runs}");
    let id = last["run_id"].as_str().unwrap().to_string();
    let (out, shown) = history(&store, &["show", &id]);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("rollback template[/etc/demo-app/app.conf]"),
        "{shown}"
    );
    assert!(shown.contains("rollback systemd[demo-app]"), "{shown}");

    // The users never saw the broken release or an error.
    assert!(seen.len() > 10, "requests kept going during the rollout");
    for r in &seen {
        match r {
            Ok((200, release, _, _)) => assert_eq!(release, "2", "{r:?}"),
            other => panic!("a user saw {other:?} during the rollout:\n{t}"),
        }
    }
}
