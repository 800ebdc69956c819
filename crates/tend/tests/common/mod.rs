//! Helpers the run-level test files share (each `tests/*.rs` is its own crate; this module is
//! included with `mod common;`).

use std::path::Path;
use std::process::{Command, Output};

/// `tend ARGS` in `dir`, colours off.
#[allow(dead_code)]
pub fn tend_command(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tend"));
    c.args(args).current_dir(dir).env("NO_COLOR", "1");
    // Tests run many tends on this machine at once: each its own host lock for local hosts.
    c.env("TEND_LOCK_DIR", dir);
    c
}

/// Runs `tend ARGS` in `dir` to the end, output captured.
#[allow(dead_code)]
pub fn run_tend(dir: &Path, args: &[&str]) -> Output {
    tend_command(dir, args).output().expect("start tend")
}

/// Lab tests need root; without it they print a note and pass.
#[allow(dead_code)]
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// Exit status, stdout and stderr of a run, for assertion messages and `contains` checks.
pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The PLAY RECAP line of `host` (the last one printed), or "" when there is none.
pub fn recap_line<'a>(out: &'a str, host: &str) -> &'a str {
    out.lines()
        .rev()
        .find(|l| l.starts_with(host) && l.contains(" : ok="))
        .unwrap_or("")
}

/// The slim agent (crates/tend-agentd) for the same profile as the tend under test, built now
/// if it is missing or stale (`cargo build -p tend-agentd` into the same target directory: a
/// no-op when it is fresh). Cargo does not give one package's tests another package's binary.
#[allow(dead_code)]
pub fn slim_agent() -> std::path::PathBuf {
    static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let tend = std::path::Path::new(env!("CARGO_BIN_EXE_tend"));
    let profile_dir = tend.parent().expect("target/<profile>/tend");
    let target_dir = profile_dir.parent().expect("target/<profile>");
    let profile = profile_dir.file_name().unwrap().to_string_lossy();
    let mut c = std::process::Command::new(option_env!("CARGO").unwrap_or("cargo"));
    c.args(["build", "--quiet", "-p", "tend-agentd"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CARGO_TARGET_DIR", target_dir);
    match &*profile {
        "debug" => {}
        "release" => {
            c.arg("--release");
        }
        other => {
            c.args(["--profile", other]);
        }
    }
    let out = c.output().expect("run cargo to build tend-agentd");
    assert!(
        out.status.success(),
        "cargo build -p tend-agentd failed:\n{}",
        text(&out)
    );
    let agent = profile_dir.join("tend-agentd");
    assert!(agent.is_file(), "{} was not built", agent.display());
    agent
}
