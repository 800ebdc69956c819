//! Helpers the run-level test files share (each `tests/*.rs` is its own crate; this module is
//! included with `mod common;`).

use std::path::Path;
use std::process::{Command, Output};

/// `tend ARGS` in `dir`, colours off.
#[allow(dead_code)]
pub fn tend_command(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tend"));
    c.args(args).current_dir(dir).env("NO_COLOR", "1");
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
