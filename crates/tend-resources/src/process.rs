//! Running a system tool (apt-get, dpkg, systemctl …) for a module: an argument vector, never a
//! shell string; the task's `environment:` first, then the module's own variables on top.
//! [`Runner`] is the same for modules that read a tool's output (`git`, `tar`, `unzip`): the C
//! locale, and [`Output`] keeps the argv for `cmd` result fields.

use std::path::Path;
use std::process::{Command, Stdio};

use tend_proto::Vars;

use crate::{ModuleCtx, ModuleError};

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
    run_in(argv, env, None)
}

/// [`run`] in the directory `cwd` (the agent's own when `None`).
pub fn run_in(
    argv: &[String],
    env: &[(String, String)],
    cwd: Option<&Path>,
) -> Result<Ran, ModuleError> {
    let (prog, rest) = argv
        .split_first()
        .ok_or_else(|| ModuleError::new("no command given"))?;
    execute(prog, rest, env, cwd, None)
        .map_err(|e| ModuleError::new(format!("cannot run {prog}: {e}")))
}

/// The one way modules start a program: `prog` with `args` (no shell), `env` applied in order,
/// `input` written to its stdin (stdin closed when `None`: nothing ever waits for a terminal),
/// waited for. The error is the spawn's, for the caller to word.
pub fn execute<K: AsRef<str>, V: AsRef<str>>(
    prog: &str,
    args: &[String],
    env: &[(K, V)],
    cwd: Option<&Path>,
    input: Option<&[u8]>,
) -> std::io::Result<Ran> {
    use std::io::Write;
    let mut c = Command::new(prog);
    c.args(args)
        .envs(env.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(d) = cwd {
        c.current_dir(d);
    }
    let mut child = c.spawn()?;
    if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
        // A program that exits early closes its end: its exit status says what happened.
        let _ = stdin.write_all(data);
    }
    let out = child.wait_with_output()?;
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

/// What a program did.
#[derive(Clone, Debug, Default)]
pub struct Output {
    pub rc: i32,
    pub stdout: String,
    pub stderr: String,
    /// The argument vector, for result fields (`cmd`).
    pub argv: Vec<String>,
}

impl Output {
    pub fn ok(&self) -> bool {
        self.rc == 0
    }

    /// ansible-core's `run_command(..., check_rc=True)` failure: the message is stderr, and
    /// `cmd`, `rc`, `stdout`, `stderr` are result fields.
    pub fn failure(&self) -> ModuleError {
        self.failure_with(self.stderr.trim_end().to_string())
    }

    /// A failure with the given message and the command's fields.
    pub fn failure_with(&self, msg: impl Into<String>) -> ModuleError {
        let mut e = ModuleError::new(msg);
        e.fields = self.fields();
        e
    }

    pub fn fields(&self) -> Vars {
        let mut v = Vars::new();
        v.insert("cmd".into(), self.argv.join(" ").into());
        v.insert("rc".into(), self.rc.into());
        v.insert("stdout".into(), self.stdout.clone().into());
        v.insert("stderr".into(), self.stderr.clone().into());
        v
    }
}

/// How to run programs for one module call.
#[derive(Clone, Debug, Default)]
pub struct Runner {
    /// Extra environment (the task's `environment:`, then the module's own).
    pub env: Vec<(String, String)>,
}

impl Runner {
    pub fn new(ctx: &ModuleCtx) -> Self {
        Runner {
            env: ctx.environment.to_vec(),
        }
    }

    pub fn with_env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_string(), v.to_string()));
        self
    }

    /// Runs `argv` in `cwd` (the agent's directory if `None`) with the C locale and this
    /// runner's environment, and waits for it.
    pub fn run<S: AsRef<str>>(
        &self,
        argv: &[S],
        cwd: Option<&Path>,
    ) -> Result<Output, ModuleError> {
        let argv: Vec<String> = argv.iter().map(|s| s.as_ref().to_string()).collect();
        let mut env: Vec<(String, String)> =
            ["LANG", "LC_ALL", "LC_MESSAGES", "LC_CTYPE", "LANGUAGE"]
                .iter()
                .map(|k| (k.to_string(), "C".to_string()))
                .collect();
        env.extend(self.env.iter().cloned());
        let r = run_in(&argv, &env, cwd)?;
        Ok(Output {
            rc: r.rc,
            stdout: r.stdout,
            stderr: r.stderr,
            argv,
        })
    }

    /// Runs `argv`; a non-zero exit is the module's failure (stderr as the message).
    pub fn check<S: AsRef<str>>(
        &self,
        argv: &[S],
        cwd: Option<&Path>,
    ) -> Result<Output, ModuleError> {
        let o = self.run(argv, cwd)?;
        if o.ok() {
            Ok(o)
        } else {
            Err(o.failure())
        }
    }
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
