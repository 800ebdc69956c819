//! The system tools the lab drives (ip, nsenter, unshare, mount, ssh-keygen, tar, zstd,
//! debootstrap): argument vectors in, checked output out. Nothing goes through a shell
//! except the two fixed scripts in `host.rs`, which take their values as arguments.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::error::{LabError, Result};

/// PATH for every process the lab starts: the controller's and the hosts' tools live there.
pub(crate) const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Tools a running lab needs on the controller.
pub(crate) const LAB_TOOLS: &[&str] = &[
    "ip",
    "nsenter",
    "unshare",
    "mount",
    "umount",
    "pivot_root",
    "ssh-keygen",
    "sh",
];

/// More tools for systemd-mode labs.
pub(crate) const SYSTEMD_TOOLS: &[&str] = &["systemd-nspawn"];

/// A command with a clean environment, as the lab runs every tool.
pub(crate) fn command(program: &str) -> Command {
    let mut c = Command::new(program);
    c.env_clear().env("PATH", PATH).env("LC_ALL", "C");
    c
}

/// Is `tool` on the lab's PATH?
pub(crate) fn exists(tool: &str) -> bool {
    PATH.split(':')
        .any(|dir| Path::new(dir).join(tool).is_file())
}

/// Fail with a hint to run the setup when one of `tools` is missing.
pub(crate) fn require(tools: &[&str]) -> Result<()> {
    for t in tools {
        if !exists(t) {
            return Err(LabError::MissingTool {
                tool: (*t).to_string(),
            });
        }
    }
    Ok(())
}

/// Run to completion, feeding `stdin`; a non-zero exit is an error carrying stderr's tail.
pub(crate) fn run(
    cmd: &mut Command,
    stdin: Option<&[u8]>,
    what: &str,
    hint: &str,
) -> Result<Output> {
    let out = output(cmd, stdin, what)?;
    if !out.status.success() {
        return Err(failed(what, &out, hint));
    }
    Ok(out)
}

/// Run to completion, feeding `stdin`; the exit status is the caller's to judge.
pub(crate) fn output(cmd: &mut Command, stdin: Option<&[u8]>, what: &str) -> Result<Output> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| spawn_error(&program, what, e))?;
    if let Some(input) = stdin {
        if let Some(mut pipe) = child.stdin.take() {
            // A command that exits without reading its input is judged by its status.
            let _ = pipe.write_all(input);
        }
    }
    child
        .wait_with_output()
        .map_err(|e| spawn_error(&program, what, e))
}

pub(crate) fn spawn_error(program: &str, what: &str, e: std::io::Error) -> LabError {
    if e.kind() == std::io::ErrorKind::NotFound {
        LabError::MissingTool {
            tool: program.to_string(),
        }
    } else {
        LabError::Command {
            what: what.to_string(),
            status: format!("could not start {program}: {e}"),
            stderr: String::new(),
            hint: "check that the machine has free processes and memory".to_string(),
        }
    }
}

pub(crate) fn failed(what: &str, out: &Output, hint: &str) -> LabError {
    LabError::Command {
        what: what.to_string(),
        status: out.status.to_string(),
        stderr: tail(&String::from_utf8_lossy(&out.stderr), 12),
        hint: hint.to_string(),
    }
}

/// The last `lines` lines of `text`, each on its own line after a leading newline ("" if empty).
pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = all.len().saturating_sub(lines);
    all[start..].iter().map(|l| format!("\n  {l}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_last_non_empty_lines_indented() {
        assert_eq!(tail("a\n\nb\nc\n", 2), "\n  b\n  c");
        assert_eq!(tail("", 3), "");
    }

    #[test]
    fn a_missing_program_is_a_missing_tool() {
        let err = output(&mut command("tend-lab-no-such-tool"), None, "x").unwrap_err();
        assert!(
            matches!(err, LabError::MissingTool { ref tool } if tool == "tend-lab-no-such-tool")
        );
    }
}
