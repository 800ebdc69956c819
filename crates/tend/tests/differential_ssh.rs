//! Differential test over SSH: every case under `tests/differential/cases/` runs on 5 real lab
//! hosts (tend-lab: own rootfs, netns and sshd each; strict host keys, root login with the
//! lab's key) and is compared with the golden ansible-core recorded over SSH on a lab
//! (`golden-ssh.json`: exit code, PLAY RECAP per host, the root tree on each host, on a first
//! run and on the idempotence re-run). Known differences are listed with tend's message in
//! `tests/differential/xfail-ssh.txt`. Re-record goldens on a lab with
//! `python3 tests/differential/record.py --lab PREFIX` (see tests/differential/README.md).
//!
//! Needs root, as every lab does (CI runs as root); fails saying so without it.

use std::path::PathBuf;
use std::process::Command;

use tend_lab::Lab;

const LAB_HOSTS: usize = 5;

#[test]
#[allow(clippy::print_stderr)]
fn differential_over_ssh_against_ansible_core() {
    assert!(
        rustix::process::geteuid().is_root(),
        "the SSH differential suite starts {LAB_HOSTS} lab hosts (network namespaces, mounts, \
         cgroups) and needs root: run it as root, as CI does"
    );
    let mut lab = Lab::start(LAB_HOSTS)
        .unwrap_or_else(|e| panic!("starting a lab of {LAB_HOSTS} hosts: {e}"));
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = workspace.join("tests/differential/record.py");
    let output = Command::new("python3")
        .arg(&script)
        .args(["--tool", "tend", "--bin", env!("CARGO_BIN_EXE_tend")])
        .arg("--lab")
        .arg(lab.state_dir())
        .current_dir(&workspace)
        .output()
        .unwrap_or_else(|err| panic!("cannot run python3 {}: {err}", script.display()));
    let stopped = lab.stop();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary = stdout
        .lines()
        .rev()
        .find(|l| l.contains("cases pass"))
        .unwrap_or("(no summary)");
    eprintln!("differential over SSH on {LAB_HOSTS} lab hosts: {summary}");
    assert!(
        output.status.success(),
        "differential suite over SSH failed ({})\n--- stdout ---\n{stdout}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
    );
    stopped.unwrap_or_else(|e| panic!("stopping the lab: {e}"));
}
