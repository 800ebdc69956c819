//! System differential test: every case under `tests/differential/system/` that has a golden
//! (`golden.json`, recorded with ansible-core on fresh lab hosts) runs with tend on a fresh lab
//! of its own (a systemd lab when the case has a `systemd` file, else a raw one; `hosts`
//! hosts), as root over SSH, twice; the judge (`record.py --system --tool tend`) compares exit
//! codes, recaps and what `snapshot_system.py` observes on each host (files anywhere, users,
//! groups, crontabs, packages, units, command output). Known differences are listed with
//! tend's message in `tests/differential/xfail-system.txt`. Record goldens with
//! `python3 tests/differential/record.py --system [CASE]` (see tests/differential/README.md).
//!
//! Needs root, as every lab does (CI runs as root): without it the test says so and passes,
//! since these cases change system state (packages, users, services) and must never run on
//! the machine itself, only inside lab hosts.

use std::path::{Path, PathBuf};
use std::process::Command;

use tend_lab::Lab;

struct Case {
    name: String,
    hosts: usize,
    systemd: bool,
}

fn cases(dir: &Path) -> Vec<Case> {
    let mut out: Vec<Case> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.join("site.yml").is_file() && p.join("golden.json").is_file())
                .map(|p| Case {
                    name: p.file_name().unwrap().to_string_lossy().into_owned(),
                    hosts: std::fs::read_to_string(p.join("hosts"))
                        .ok()
                        .map(|t| t.trim().parse().expect("`hosts` holds a number"))
                        .unwrap_or(1),
                    systemd: p.join("systemd").exists(),
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[test]
#[allow(clippy::print_stderr)]
fn system_differential_against_ansible_core() {
    if !rustix::process::geteuid().is_root() {
        eprintln!(
            "note: skipping the system differential suite: it starts lab hosts (network \
             namespaces, mounts, cgroups) and needs root; run it as root, as CI does"
        );
        return;
    }
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = workspace.join("tests/differential/record.py");
    let cases = cases(&workspace.join("tests/differential/system"));
    let mut failures = Vec::new();
    let mut summary = Vec::new();
    for case in &cases {
        let mut lab = Lab::builder()
            .hosts(case.hosts)
            .systemd(case.systemd)
            .start()
            .unwrap_or_else(|e| panic!("{}: starting its lab: {e}", case.name));
        let output = Command::new("python3")
            .arg(&script)
            .args([
                "--system",
                "--tool",
                "tend",
                "--bin",
                env!("CARGO_BIN_EXE_tend"),
            ])
            .arg("--lab")
            .arg(lab.state_dir())
            .arg(&case.name)
            .current_dir(&workspace)
            .output()
            .unwrap_or_else(|err| panic!("cannot run python3 {}: {err}", script.display()));
        let stopped = lab.stop();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let verdict = stdout
            .lines()
            .find(|l| {
                ["PASS ", "FAIL ", "XFAIL ", "XPASS "]
                    .iter()
                    .any(|p| l.starts_with(p))
            })
            .unwrap_or("(no verdict)")
            .to_string();
        summary.push(verdict);
        if !output.status.success() {
            failures.push(format!(
                "{} ({})\n--- stdout ---\n{stdout}\n--- stderr ---\n{}",
                case.name,
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        stopped.unwrap_or_else(|e| panic!("{}: stopping its lab: {e}", case.name));
    }
    eprintln!(
        "system differential, {} cases:\n  {}",
        cases.len(),
        summary.join("\n  ")
    );
    assert!(
        failures.is_empty(),
        "system differential cases failed:\n{}",
        failures.join("\n")
    );
}
