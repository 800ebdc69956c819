//! What judging one host costs `tend compliance`: `Policies::evaluate` of the policies in a
//! directory (default `examples/compliance/compliance`) on a synthetic host document the size
//! of a plain lab host's (332 file records under /etc, 330 packages), N times (default 200).
//!
//!     cargo run --release -p tend-policy --example judge_bench [-- DIR [N]]
//!
//! Prints the mean per host. See docs/benchmarks.md, "Compliance".

use std::path::PathBuf;
use std::time::Instant;

use serde_json::{json, Map};

#[allow(clippy::print_stdout)]
fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/compliance/compliance")
    });
    let n: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let mut files = Map::new();
    for i in 0..332 {
        let path = format!("/etc/dir{}/file{i}", i % 20);
        files.insert(
            path.clone(),
            json!({"path": path, "exists": true, "type": "file", "mode": "0644",
                   "owner": "root", "group": "root", "uid": 0, "gid": 0, "size": 1234,
                   "world_writable": false, "group_writable": false, "setuid": false,
                   "setgid": false}),
        );
    }
    let mut packages = Map::new();
    for i in 0..330 {
        packages.insert(
            format!("pkg{i}"),
            json!([{"name": format!("pkg{i}"), "version": "1.2.3-4", "arch": "amd64",
                    "source": "apt", "category": "admin", "origin": ""}]),
        );
    }
    let input = json!({
        "format_version": 1, "kind": "compliance", "run_id": "bench", "tend_version": "bench",
        "host": {"name": "h01", "groups": [], "vars": {}, "incomplete": [],
                 "facts": {"distribution": "Debian", "distribution_major_version": "12",
                           "service_mgr": "sysvinit"},
                 "packages": packages, "services": {}, "files": files},
    });
    let mut policies = tend_policy::Policies::load(&[dir]).expect("the policies load");
    let start = Instant::now();
    let mut findings = 0;
    for _ in 0..n {
        let v = policies.evaluate(&input).expect("the policies evaluate");
        findings += v.deny.len() + v.warn.len();
    }
    let per_host = start.elapsed() / n;
    println!(
        "{n} evaluations, {per_host:?} per host ({} findings each)",
        findings / n as usize
    );
}
