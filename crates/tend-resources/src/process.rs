//! Running a host program for a module (`git`, `tar`, `unzip`, `sysctl`, `hostnamectl`): an
//! argument vector, never a shell string; no standard input (nothing may wait for a prompt);
//! the C locale, so the output the module reads is the same everywhere; the task's
//! `environment:` on top.

use std::path::Path;
use std::process::{Command, Stdio};

use tend_proto::Vars;

use crate::{ModuleCtx, ModuleError};

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

    /// Runs `argv` in `cwd` (the agent's directory if `None`) and waits for it.
    pub fn run<S: AsRef<str>>(
        &self,
        argv: &[S],
        cwd: Option<&Path>,
    ) -> Result<Output, ModuleError> {
        let argv: Vec<String> = argv.iter().map(|s| s.as_ref().to_string()).collect();
        let Some((prog, rest)) = argv.split_first() else {
            return Err(ModuleError::new("no command given"));
        };
        let mut c = Command::new(prog);
        c.args(rest)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for k in ["LANG", "LC_ALL", "LC_MESSAGES", "LC_CTYPE", "LANGUAGE"] {
            c.env(k, "C");
        }
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(d) = cwd {
            c.current_dir(d);
        }
        let out = c.output().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ModuleError::new(format!(
                    "Failed to find required executable \"{prog}\" in paths: {}",
                    std::env::var("PATH").unwrap_or_default()
                ))
            } else {
                ModuleError::new(format!("cannot run {prog}: {e}"))
            }
        })?;
        Ok(Output {
            rc: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
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
