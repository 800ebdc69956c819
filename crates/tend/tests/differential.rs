//! Differential test: every case under `tests/differential/cases/` is run by
//! tend and compared with the golden recorded from ansible-core (exit code,
//! PLAY RECAP counts and the end state of the root tree, on a first run and on
//! the idempotence re-run). Re-record goldens with
//! `python3 tests/differential/record.py`.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn differential_against_ansible_core() {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = workspace.join("tests/differential/record.py");
    let output = Command::new("python3")
        .arg(&script)
        .args(["--tool", "tend", "--bin", env!("CARGO_BIN_EXE_tend")])
        .current_dir(&workspace)
        .output()
        .unwrap_or_else(|err| panic!("cannot run python3 {}: {err}", script.display()));
    assert!(
        output.status.success(),
        "differential suite failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}
