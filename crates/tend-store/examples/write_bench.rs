//! How fast host results reach the history: one transaction (one fsync) per host result, as
//! tend wrote them before, against batches of up to 256 in one transaction, as the recorder's
//! writer thread commits them when hosts finish together.
//!
//! `cargo run --release -p tend-store --example write_bench [N] [postgres://…]` (N host
//! results, default 5000; a SQLite file in a temporary directory unless a URL is given).

use std::time::Instant;

use serde_json::json;
use tend_proto::HostStats;
use tend_store::{HostResult, RunStart, Store, StoreSpec, TaskRecord};

fn results(n: usize) -> Vec<HostResult> {
    (0..n)
        .map(|i| HostResult {
            host: format!("web{i:05}"),
            play: "site".into(),
            stats: HostStats {
                ok: 3,
                changed: 1,
                ..Default::default()
            },
            tasks: (0..3)
                .map(|t| TaskRecord {
                    name: format!("task {t}"),
                    loc: format!("site.yml:{}:7", 4 + t * 3),
                    status: if t == 0 { "changed" } else { "ok" }.into(),
                    changed: t == 0,
                    diffs: if t == 0 {
                        vec![json!({"before": "old\n", "after": "new\n", "before_header": "/etc/motd"})]
                    } else {
                        Vec::new()
                    },
                    result: json!({"changed": t == 0, "msg": "done"}),
                    ..Default::default()
                })
                .collect(),
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().map_or(Ok(5000), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let spec = |name: &str| match args.get(1) {
        Some(url) => StoreSpec::parse(url),
        None => StoreSpec::Sqlite(dir.path().join(name)),
    };
    let rs = results(n);
    let mut out = std::io::stdout().lock();
    for (label, batch) in [("one per transaction", 1usize), ("batches of 256", 256)] {
        let mut store = Store::open(&spec(&format!("b{batch}.db")))?;
        let id = tend_store::new_run_id();
        store.start_run(&id, &RunStart::default())?;
        let t = Instant::now();
        for chunk in rs.chunks(batch) {
            store.record_hosts(&id, chunk)?;
        }
        let secs = t.elapsed().as_secs_f64();
        std::io::Write::write_all(
            &mut out,
            format!(
                "{label:>20}: {n} host results in {secs:.2} s ({:.0}/s)\n",
                n as f64 / secs
            )
            .as_bytes(),
        )?;
    }
    Ok(())
}
