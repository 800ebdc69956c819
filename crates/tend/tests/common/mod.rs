//! Helpers the run-level test files share (each `tests/*.rs` is its own crate; this module is
//! included with `mod common;`).

use std::process::Output;

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
