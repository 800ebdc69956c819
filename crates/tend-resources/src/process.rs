//! Running a system tool (apt-get, dpkg, systemctl …) for a module: an argument vector, never a
//! shell string; the task's `environment:` first, then the module's own variables on top.

use std::process::{Command, Stdio};

use crate::ModuleError;

/// What a finished tool printed and returned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ran {
    /// The exit code; a tool killed by a signal reports `-signal`.
    pub rc: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn ok(&self) -> bool {
        self.rc == 0
    }
}

/// Runs `argv` to the end with stdin closed. `env` is applied in order (later wins). A tool
/// that cannot be started is an error naming it.
pub fn run(argv: &[String], env: &[(String, String)]) -> Result<Ran, ModuleError> {
    let (prog, rest) = argv
        .split_first()
        .ok_or_else(|| ModuleError::new("no command given"))?;
    let out = Command::new(prog)
        .args(rest)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| ModuleError::new(format!("cannot run {prog}: {e}")))?;
    let rc = match out.status.code() {
        Some(c) => c,
        None => {
            use std::os::unix::process::ExitStatusExt;
            -out.status.signal().unwrap_or(0)
        }
    };
    Ok(Ran {
        rc,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// `argv` as one line for messages (ansible-core shows the command it ran).
pub fn display(argv: &[String]) -> String {
    argv.join(" ")
}

/// The first of `names` found in the usual system directories (ansible-core's
/// `get_bin_path`), as an absolute path.
pub fn find_bin(name: &str) -> Option<String> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .filter(|d| !d.is_empty())
        .chain([
            "/usr/local/sbin",
            "/usr/local/bin",
            "/usr/sbin",
            "/usr/bin",
            "/sbin",
            "/bin",
        ])
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| crate::fsutil::access(p, libc::X_OK) && p.is_file());
    found.map(|p| p.display().to_string())
}

/// Strings to an argv.
pub fn argv<I, S>(items: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    items.into_iter().map(Into::into).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_argv_with_env() {
        let r = run(
            &argv(["/bin/sh", "-c", "echo \"$A\"; echo e >&2; exit 3"]),
            &[("A".into(), "x y".into())],
        )
        .unwrap();
        assert_eq!(r.rc, 3);
        assert_eq!(r.stdout, "x y\n");
        assert_eq!(r.stderr, "e\n");
        assert!(run(&argv(["/no/such/tool"]), &[])
            .unwrap_err()
            .msg
            .starts_with("cannot run /no/such/tool"));
        assert!(find_bin("sh").is_some());
        assert!(find_bin("no-such-tool-here").is_none());
    }
}
