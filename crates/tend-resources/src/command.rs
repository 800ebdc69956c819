//! `command` and `shell`: run a program and report its output. `command` splits its string with
//! shell-like quoting ([`shlex_split`], the one place tend parses such quoting) and runs the
//! program directly; `shell` hands the string to `/bin/sh -c` (or `executable`).

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command as Process, Stdio};
use std::time::Instant;

use tend_proto::{Value, Vars};

use crate::fsutil;
use crate::{Action, Args, ModuleCtx, ModuleError, ModuleOutput, ModuleResult};

pub struct Command;
pub struct Shell;

pub const PARAMS: &[&str] = &[
    "_raw_params",
    "_uses_shell",
    "cmd",
    "argv",
    "chdir",
    "executable",
    "expand_argument_vars",
    "creates",
    "removes",
    "stdin",
    "stdin_add_newline",
    "strip_empty_ends",
];

/// Splits a string into words like Python's `shlex.split` (POSIX mode, no comments): blanks
/// separate words, `'…'` is literal, `"…"` allows `\"` and `\\`, a backslash outside quotes
/// escapes the next character.
pub fn shlex_split(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => cur.push(ch),
                        None => return Err("No closing quotation".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(ch @ ('"' | '\\')) => cur.push(ch),
                            Some(ch) => {
                                cur.push('\\');
                                cur.push(ch);
                            }
                            None => return Err("No closing quotation".into()),
                        },
                        Some(ch) => cur.push(ch),
                        None => return Err("No closing quotation".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(ch) => cur.push(ch),
                    None => return Err("No escaped character".into()),
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// Python's `str(timedelta)`: `0:00:00.003456` (no fraction when it is zero).
pub fn timedelta_str(micros: u128) -> String {
    let secs = micros / 1_000_000;
    let frac = micros % 1_000_000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let mut s = String::new();
    if days > 0 {
        s.push_str(&format!("{days} day{}, ", if days == 1 { "" } else { "s" }));
    }
    s.push_str(&format!(
        "{}:{:02}:{:02}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    ));
    if frac > 0 {
        s.push_str(&format!(".{frac:06}"));
    }
    s
}

/// Python's `str.splitlines()` for the common separators.
pub fn split_lines(s: &str) -> Vec<Value> {
    s.lines()
        .map(|l| Value::String(l.trim_end_matches('\r').to_string()))
        .collect()
}

fn env_lookup<'a>(ctx: &'a ModuleCtx) -> impl Fn(&str) -> Option<String> + 'a {
    move |k: &str| {
        ctx.environment
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var(k).ok())
    }
}

fn glob_matches(pattern: &str) -> bool {
    match glob::glob(pattern) {
        Ok(mut paths) => paths.any(|p| p.is_ok()),
        Err(_) => Path::new(pattern).exists(),
    }
}

/// Runs the module; `shell` selects `/bin/sh -c`.
pub fn run_command(args: &Args, ctx: &ModuleCtx, shell: bool) -> ModuleResult {
    let raw = args.str("_raw_params")?.filter(|s| !s.is_empty());
    let cmd = args.str("cmd")?;
    let argv = args.list("argv")?.filter(|l| !l.is_empty());
    let given = [raw.is_some(), cmd.is_some(), argv.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if given > 1 {
        return Err(ModuleError::new(
            "parameters are mutually exclusive: _raw_params|cmd|argv",
        ));
    }
    if given == 0 {
        return Err(ModuleError::new(
            "one of the following is required: _raw_params, cmd, argv",
        ));
    }
    let shell = shell || args.bool_or("_uses_shell", false)?;
    let text = raw.or(cmd);
    let expand = args.bool_or("expand_argument_vars", true)?;
    let lookup = env_lookup(ctx);

    let mut fields = Vars::new();
    for k in ["stdout", "stderr"] {
        fields.insert(k.into(), "".into());
    }
    fields.insert("rc".into(), Value::Null);
    fields.insert("start".into(), Value::Null);
    fields.insert("end".into(), Value::Null);
    fields.insert("delta".into(), Value::Null);

    // The program and its arguments, and the `cmd` result field.
    let (program, cmd_field): (Vec<String>, Value) = if shell {
        let Some(text) = text.clone().or_else(|| argv.as_ref().map(|a| a.join(" "))) else {
            return Err(ModuleError::new("no command given"));
        };
        let exe = args.str("executable")?.unwrap_or_else(|| "/bin/sh".into());
        (vec![exe, "-c".into(), text.clone()], Value::String(text))
    } else {
        let words = match (&text, &argv) {
            (Some(t), _) => shlex_split(t).map_err(ModuleError::new)?,
            (None, Some(a)) => a.clone(),
            _ => Vec::new(),
        };
        let cmd_field = Value::from(words.clone());
        let words = if expand {
            words
                .iter()
                .map(|w| fsutil::expand_user(&fsutil::expand_vars(w, &lookup)))
                .collect()
        } else {
            words
        };
        (words, cmd_field)
    };
    fields.insert("cmd".into(), cmd_field);
    if program.is_empty() {
        return Err(ModuleError {
            msg: "no command given".into(),
            fields,
        });
    }

    let chdir = args.str("chdir")?.map(|c| fsutil::path_arg(&c));
    if let Some(dir) = &chdir {
        if !dir.is_dir() {
            return Err(ModuleError {
                msg: "Unable to change directory before execution.".into(),
                fields,
            });
        }
    }
    let base = chdir
        .clone()
        .unwrap_or_else(|| std::env::current_dir().unwrap_or_else(|_| "/".into()));
    let verb = if ctx.check { "Would" } else { "Did" };
    let creates = args.str("creates")?;
    let removes = args.str("removes")?;
    let abs = |p: &str| base.join(fsutil::path_arg(p)).display().to_string();
    let mut skip_msg = None;
    if let Some(c) = &creates {
        if glob_matches(&abs(c)) {
            skip_msg = Some((
                format!("{verb} not run command since '{c}' exists"),
                format!("skipped, since {c} exists"),
            ));
        }
    }
    if skip_msg.is_none() {
        if let Some(r) = &removes {
            if !glob_matches(&abs(r)) {
                skip_msg = Some((
                    format!("{verb} not run command since '{r}' does not exist"),
                    format!("skipped, since {r} does not exist"),
                ));
            }
        }
    }
    if let Some((msg, stdout)) = skip_msg {
        fields.insert("rc".into(), 0.into());
        fields.insert("stdout_lines".into(), split_lines(&stdout).into());
        fields.insert("stdout".into(), stdout.into());
        fields.insert("stderr_lines".into(), Value::Array(Vec::new()));
        return Ok(ModuleOutput {
            msg: Some(msg),
            fields,
            ..Default::default()
        });
    }
    if ctx.check {
        fields.insert("rc".into(), 0.into());
        let none = creates.is_none() && removes.is_none();
        return Ok(ModuleOutput {
            changed: !none,
            skipped: none,
            msg: Some("Command would have run if not in check mode".into()),
            fields,
            ..Default::default()
        });
    }

    let mut stdin = args.str("stdin")?;
    if let Some(s) = &mut stdin {
        if args.bool_or("stdin_add_newline", true)? {
            s.push('\n');
        }
    }
    let mut proc = Process::new(&program[0]);
    proc.args(&program[1..])
        .envs(ctx.environment.iter().map(|(k, v)| (k, v)))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = &chdir {
        proc.current_dir(dir);
    }
    let (start_s, start_us) = fsutil::now();
    let started = Instant::now();
    let mut child = match proc.spawn() {
        Ok(c) => c,
        Err(e) => {
            fields.insert("rc".into(), 2.into());
            let msg = match e.raw_os_error() {
                Some(n) => format!("[Errno {n}] {}: b'{}'", strip_os_suffix(&e), program[0]),
                None => e.to_string(),
            };
            return Err(ModuleError { msg, fields });
        }
    };
    let feeder = match (child.stdin.take(), stdin) {
        (Some(mut w), Some(data)) => Some(std::thread::spawn(move || {
            let _ = w.write_all(data.as_bytes());
        })),
        _ => None,
    };
    let reader = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out_t = reader(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err_t = reader(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let status = child
        .wait()
        .map_err(|e| ModuleError::new(format!("cannot wait for {}: {e}", program[0])))?;
    let stdout = out_t.join().unwrap_or_default();
    let stderr = err_t.join().unwrap_or_default();
    if let Some(f) = feeder {
        let _ = f.join();
    }
    let elapsed = started.elapsed().as_micros();
    let (end_s, end_us) = fsutil::now();
    let rc = match status.code() {
        Some(c) => c,
        None => {
            use std::os::unix::process::ExitStatusExt;
            -status.signal().unwrap_or(0)
        }
    };
    let strip = args.bool_or("strip_empty_ends", true)?;
    let text = |b: &[u8]| {
        let s = String::from_utf8_lossy(b).into_owned();
        if strip {
            s.trim_end_matches(['\r', '\n']).to_string()
        } else {
            s
        }
    };
    let (stdout, stderr) = (text(&stdout), text(&stderr));
    fields.insert("rc".into(), rc.into());
    fields.insert(
        "start".into(),
        fsutil::datetime_str(start_s, start_us).into(),
    );
    fields.insert("end".into(), fsutil::datetime_str(end_s, end_us).into());
    fields.insert("delta".into(), timedelta_str(elapsed).into());
    fields.insert("stdout_lines".into(), split_lines(&stdout).into());
    fields.insert("stderr_lines".into(), split_lines(&stderr).into());
    fields.insert("stdout".into(), stdout.into());
    fields.insert("stderr".into(), stderr.into());
    if rc != 0 {
        return Ok(ModuleOutput {
            changed: true,
            failed: true,
            msg: Some("non-zero return code".into()),
            fields,
            ..Default::default()
        });
    }
    Ok(ModuleOutput {
        changed: true,
        msg: Some(String::new()),
        fields,
        ..Default::default()
    })
}

/// `No such file or directory (os error 2)` → `No such file or directory`.
fn strip_os_suffix(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

impl Action for Command {
    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }

    fn run(&self, args: &Args, ctx: &ModuleCtx) -> ModuleResult {
        run_command(args, ctx, false)
    }
}

impl Action for Shell {
    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }

    fn run(&self, args: &Args, ctx: &ModuleCtx) -> ModuleResult {
        run_command(args, ctx, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use serde_json::json;

    #[test]
    fn shlex_like_python() {
        assert_eq!(
            shlex_split(r#"echo 'a b' "c \"d\" \x" e\ f"#).unwrap(),
            vec!["echo", "a b", r#"c "d" \x"#, "e f"]
        );
        assert_eq!(shlex_split("  a   b ").unwrap(), vec!["a", "b"]);
        assert_eq!(shlex_split("a ''").unwrap(), vec!["a", ""]);
        assert_eq!(shlex_split("a 'b").unwrap_err(), "No closing quotation");
    }

    #[test]
    fn timedelta_like_python() {
        assert_eq!(timedelta_str(3456), "0:00:00.003456");
        assert_eq!(timedelta_str(1_000_000), "0:00:01");
        assert_eq!(timedelta_str(90_061_000_001), "1 day, 1:01:01.000001");
    }

    #[test]
    fn command_runs_without_shell() {
        let out = run("command", json!({"_raw_params": "echo 'a  b' $HOME ; ls"}));
        assert!(out.changed && !out.failed);
        let home = std::env::var("HOME").unwrap();
        assert_eq!(out.fields["stdout"], json!(format!("a  b {home} ; ls")));
        assert_eq!(
            out.fields["cmd"],
            json!(["echo", "a  b", "$HOME", ";", "ls"])
        );
        assert_eq!(out.fields["rc"], json!(0));
        assert!(out.fields["delta"].as_str().unwrap().starts_with("0:00:0"));
    }

    #[test]
    fn shell_stdin_rc_and_creates() {
        let t = tempfile::tempdir().unwrap();
        let out = run(
            "shell",
            json!({"cmd": "cat; echo err >&2; exit 3", "stdin": "in", "chdir": t.path()}),
        );
        assert!(out.failed && out.changed);
        assert_eq!(out.msg.as_deref(), Some("non-zero return code"));
        assert_eq!(out.fields["stdout"], json!("in"));
        assert_eq!(out.fields["stderr_lines"], json!(["err"]));
        assert_eq!(out.fields["rc"], json!(3));
        assert_eq!(out.fields["cmd"], json!("cat; echo err >&2; exit 3"));

        let args = json!({"cmd": "touch made", "chdir": t.path(), "creates": "mad*"});
        let out = run("shell", args.clone());
        assert!(out.changed);
        let out = run("shell", args);
        assert!(!out.changed);
        assert_eq!(
            out.msg.as_deref(),
            Some("Did not run command since 'mad*' exists")
        );
        assert_eq!(out.fields["rc"], json!(0));

        let out = run_check("command", json!({"argv": ["touch", t.path().join("x")]}));
        assert!(out.skipped && !out.changed);
        assert!(!t.path().join("x").exists());
        let e = run_err("command", json!({"_raw_params": "/no/such/prog"}));
        assert_eq!(e, "[Errno 2] No such file or directory: b'/no/such/prog'");
        let e = run_err("command", json!({"cmd": "a", "argv": ["b"]}));
        assert_eq!(e, "parameters are mutually exclusive: _raw_params|cmd|argv");
    }
}
