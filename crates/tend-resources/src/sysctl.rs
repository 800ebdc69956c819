//! `sysctl` (`ansible.posix.sysctl`): a kernel parameter's entry in a sysctl file, and its
//! value in the running kernel, as ansible.posix's `sysctl` module keeps them.
//!
//! The decision is ansible's, step by step ([`plan`], pure): the file needs writing when the
//! key is missing (present), there (absent) or has another value; otherwise, with `reload`,
//! a running value that differs (compared word by word) is a change too; `sysctl_set`
//! compares the running value and sets it with `sysctl -w`. Then, in that order: the running
//! value is set, the file is rewritten the way ansible rewrites it (lines trimmed, `key=value`
//! without spaces, a repeated key kept once) through an atomic replace that keeps the file's
//! owner and mode, and `sysctl -p FILE` applies the whole file. The running value is read from
//! `/proc/sys` directly (`sysctl -e -n` only for what that cannot answer), and the tools'
//! own output is ansible's failure message (an unknown key: `Failed to reload sysctl: sysctl:
//! cannot stat /proc/sys/…: No such file or directory`). The result is `changed` only, and
//! there is no diff, as in ansible.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::process::Runner;
use crate::{fsutil, Action, Args, ModuleCtx, ModuleError, ModuleOutput, ModuleResult};

pub struct Sysctl;

const PARAMS: &[&str] = &[
    "name",
    "key",
    "value",
    "val",
    "state",
    "reload",
    "sysctl_set",
    "ignoreerrors",
    "sysctl_file",
];

/// The module's arguments, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    pub name: String,
    /// Normalised as ansible does: booleans are `1`/`0`, the rest trimmed; `""` when absent.
    pub value: String,
    pub present: bool,
    pub reload: bool,
    pub sysctl_set: bool,
    pub ignoreerrors: bool,
    pub file: PathBuf,
}

fn params(args: &Args) -> Result<Params, ModuleError> {
    let present = matches!(
        args.choice("state", &["present", "absent"])?.as_deref(),
        None | Some("present")
    );
    let name = args
        .str_any(&["name", "key"])?
        .ok_or_else(|| ModuleError::new("missing required arguments: name"))?;
    let raw_value = match args.first(&["value", "val"]) {
        None => None,
        Some((k, v)) => Some(crate::args::to_str(k, v)?),
    };
    if present && raw_value.is_none() {
        return Err(ModuleError::new(
            "state is present but all of the following are missing: value",
        ));
    }
    if name.is_empty() {
        return Err(ModuleError::new("name cannot be blank"));
    }
    if present && raw_value.as_deref() == Some("") {
        return Err(ModuleError::new("value cannot be blank"));
    }
    Ok(Params {
        name: name.trim().to_string(),
        value: parse_value(raw_value.as_deref()),
        present,
        reload: args.bool_or("reload", true)?,
        sysctl_set: args.bool_or("sysctl_set", false)?,
        ignoreerrors: args.bool_or("ignoreerrors", false)?,
        file: fsutil::path_arg(
            &args
                .str("sysctl_file")?
                .unwrap_or_else(|| "/etc/sysctl.conf".into()),
        ),
    })
}

/// ansible's `_parse_value`: Ansible booleans become `1`/`0`, anything else is trimmed.
pub fn parse_value(v: Option<&str>) -> String {
    let Some(v) = v else { return String::new() };
    match v.to_ascii_lowercase().as_str() {
        "y" | "yes" | "on" | "1" | "true" | "t" => "1".into(),
        "n" | "no" | "off" | "0" | "false" | "f" => "0".into(),
        _ => v.trim().to_string(),
    }
}

/// A sysctl file as ansible reads it: every line trimmed, and each key's value (the last
/// assignment of a repeated key).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfFile {
    pub lines: Vec<String>,
    pub values: HashMap<String, String>,
}

fn is_setting(line: &str) -> bool {
    let t = line.trim();
    !(t.is_empty() || t.starts_with('#') || t.starts_with(';') || !t.contains('='))
}

fn split_setting(line: &str) -> (String, String) {
    let (k, v) = line.trim().split_once('=').unwrap_or((line, ""));
    (k.trim().to_string(), v.trim().to_string())
}

impl ConfFile {
    pub fn parse(text: &str) -> ConfFile {
        let mut c = ConfFile::default();
        for line in text.lines() {
            let line = line.trim().to_string();
            if is_setting(&line) {
                let (k, v) = split_setting(&line);
                c.values.insert(k, v);
            }
            c.lines.push(line);
        }
        c
    }

    /// The file's new text: the key set (or dropped) where it first appears, or appended; a
    /// repeated key kept once, with its first value; `key=value` without spaces.
    pub fn render(&self, p: &Params) -> String {
        let mut seen: Vec<String> = Vec::new();
        let mut out = String::new();
        for line in &self.lines {
            if !is_setting(line) {
                out.push_str(line.trim());
                out.push('\n');
                continue;
            }
            let (k, v) = split_setting(line);
            if seen.contains(&k) {
                continue;
            }
            if k == p.name {
                if p.present {
                    out.push_str(&format!("{k}={}\n", p.value));
                }
            } else {
                out.push_str(&format!("{k}={v}\n"));
            }
            seen.push(k);
        }
        if p.present && !seen.contains(&p.name) {
            out.push_str(&format!("{}={}\n", p.name, p.value));
        }
        out
    }
}

/// What the module will do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub changed: bool,
    pub write_file: bool,
    pub set_proc: bool,
}

/// ansible's `_values_is_equal`: the same words in the same order.
pub fn values_equal(a: Option<&str>, b: &str) -> bool {
    a.is_some_and(|a| a.split_whitespace().eq(b.split_whitespace()))
}

/// ansible's decision, from the key's value in the file and in the running kernel (`None`:
/// the kernel could not be asked).
pub fn plan(p: &Params, file_value: Option<&str>, proc_value: Option<&str>) -> Plan {
    let mut plan = Plan::default();
    match file_value {
        None if p.present => {
            plan.changed = true;
            plan.write_file = true;
        }
        None => {}
        // A key set to nothing counts as not there for `absent` (ansible's truthiness).
        Some(v) if !p.present && !v.is_empty() => {
            plan.changed = true;
            plan.write_file = true;
        }
        Some(v) if v != p.value => {
            plan.changed = true;
            plan.write_file = true;
        }
        Some(_) if p.reload && !values_equal(proc_value, &p.value) => plan.changed = true,
        Some(_) => {}
    }
    if p.sysctl_set && p.present {
        match proc_value {
            None => plan.changed = true,
            Some(v) if !values_equal(Some(v), &p.value) => {
                plan.changed = true;
                plan.set_proc = true;
            }
            Some(_) => {}
        }
    }
    plan
}

/// The `/proc/sys` path of a key, as procps makes it: `.` separates, unless the key's first
/// separator is a `/` (then `/` separates and a `.` is part of a name, `eth0.1`); otherwise
/// dots and slashes swap.
pub fn proc_path(key: &str) -> PathBuf {
    let swapped: String = match key.find(['.', '/']) {
        Some(i) if key.as_bytes()[i] == b'.' => key
            .chars()
            .map(|c| match c {
                '.' => '/',
                '/' => '.',
                c => c,
            })
            .collect(),
        _ => key.to_string(),
    };
    Path::new("/proc/sys").join(swapped)
}

/// The running value as `sysctl -e -n KEY` prints it: the file's content, nothing for a key
/// that does not exist or cannot be read by its owner. Directories (a whole subtree) and read
/// errors are left to `sysctl` itself; `None` when it fails.
fn running_value(run: &Runner, key: &str) -> Result<Option<String>, ModuleError> {
    let path = proc_path(key);
    match std::fs::metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Some(String::new())),
        Ok(m) if m.is_file() && m.permissions().mode() & 0o400 == 0 => {
            return Ok(Some(String::new()))
        }
        Ok(m) if m.is_file() => {
            if let Ok(s) = std::fs::read_to_string(&path) {
                return Ok(Some(s));
            }
        }
        _ => {}
    }
    let o = run.run(&[sysctl_bin().as_str(), "-e", "-n", key], None)?;
    Ok(o.ok().then_some(o.stdout))
}

fn sysctl_bin() -> String {
    crate::process::find_bin("sysctl").unwrap_or_else(|| "sysctl".into())
}

/// ansible's check of sysctl's stderr: some failures exit 0.
fn stderr_failed(err: &str) -> bool {
    err.lines().any(|l| {
        l.strip_prefix("sysctl: setting key \"")
            .is_some_and(|rest| {
                rest.split_once("\": ").is_some_and(|(k, why)| {
                    !k.contains('"') && matches!(why, "Invalid argument" | "Read-only file system")
                })
            })
    })
}

impl Action for Sysctl {
    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }

    fn run(&self, args: &Args, ctx: &ModuleCtx) -> ModuleResult {
        let p = params(args)?;
        let run = Runner::new(ctx);
        let proc_value = running_value(&run, &p.name)?;
        let conf = match fsutil::read_if_exists(&p.file) {
            Ok(Some(b)) if p.file.is_file() => ConfFile::parse(&String::from_utf8_lossy(&b)),
            Ok(_) => ConfFile::default(),
            Err(e) => {
                return Err(ModuleError::new(format!(
                    "Failed to open {}: {}",
                    p.file.display(),
                    e.msg
                )))
            }
        };
        let plan = plan(
            &p,
            conf.values.get(&p.name).map(String::as_str),
            proc_value.as_deref(),
        );
        if !ctx.check {
            let bin = sysctl_bin();
            if plan.set_proc {
                let mut argv = vec![bin.clone()];
                if p.ignoreerrors {
                    argv.push("-e".into());
                }
                argv.push("-w".into());
                argv.push(format!("{}={}", p.name, p.value));
                let o = run.run(&argv, None)?;
                if !o.ok() || stderr_failed(&o.stderr) {
                    return Err(ModuleError::new(format!(
                        "setting {} failed: {}{}",
                        p.name, o.stdout, o.stderr
                    )));
                }
            }
            if plan.write_file {
                // ansible replaces the file a link points to, keeping its owner and mode.
                let real = std::fs::canonicalize(&p.file).unwrap_or_else(|_| p.file.clone());
                fsutil::atomic_write(
                    &real,
                    conf.render(&p).as_bytes(),
                    &fsutil::Attrs::default(),
                    None,
                    None,
                )?;
            }
            if plan.changed && p.reload {
                let mut argv = vec![bin];
                if p.ignoreerrors {
                    argv.push("-e".into());
                }
                argv.push("-p".into());
                argv.push(p.file.display().to_string());
                let o = run.run(&argv, None)?;
                if !o.ok() || stderr_failed(&o.stderr) {
                    return Err(ModuleError::new(format!(
                        "Failed to reload sysctl: {}{}",
                        o.stdout, o.stderr
                    )));
                }
            }
        }
        let mut out = ModuleOutput::ok();
        out.changed = plan.changed;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use serde_json::json;

    fn p(value: &str, present: bool) -> Params {
        Params {
            name: "net.ipv4.ip_forward".into(),
            value: value.into(),
            present,
            reload: true,
            sysctl_set: false,
            ignoreerrors: false,
            file: "/etc/sysctl.conf".into(),
        }
    }

    #[test]
    fn values_are_normalised_like_ansible() {
        assert_eq!(parse_value(Some("yes")), "1");
        assert_eq!(parse_value(Some("False")), "0");
        assert_eq!(parse_value(Some(" 32768 60999 ")), "32768 60999");
        assert_eq!(parse_value(None), "");
        assert!(values_equal(Some("32768\t60999\n"), "32768 60999"));
        assert!(!values_equal(Some("32768\t60999\n"), "32768"));
        assert!(!values_equal(None, "1"));
    }

    #[test]
    fn the_file_is_rewritten_as_ansible_does() {
        let text = "# comment\n  net.ipv4.ip_forward = 0\nvm.x = 5 \nvm.x=6\n\nnot a setting\n";
        let c = ConfFile::parse(text);
        assert_eq!(c.values["net.ipv4.ip_forward"], "0");
        assert_eq!(
            c.values["vm.x"], "6",
            "the last assignment is the file's value"
        );
        assert_eq!(
            c.render(&p("1", true)),
            "# comment\nnet.ipv4.ip_forward=1\nvm.x=5\n\nnot a setting\n"
        );
        assert_eq!(
            c.render(&p("", false)),
            "# comment\nvm.x=5\n\nnot a setting\n"
        );
        assert_eq!(
            ConfFile::parse("").render(&p("1", true)),
            "net.ipv4.ip_forward=1\n"
        );
    }

    #[test]
    fn plans_follow_ansible() {
        let ch = |changed, write_file, set_proc| Plan {
            changed,
            write_file,
            set_proc,
        };
        // Missing from the file.
        assert_eq!(
            plan(&p("1", true), None, Some("0\n")),
            ch(true, true, false)
        );
        assert_eq!(
            plan(&p("", false), None, Some("0\n")),
            ch(false, false, false)
        );
        // In the file with another value, or to remove.
        assert_eq!(
            plan(&p("1", true), Some("0"), Some("1\n")),
            ch(true, true, false)
        );
        assert_eq!(plan(&p("", false), Some("0"), None), ch(true, true, false));
        // The file is right: the running value decides, with reload.
        assert_eq!(
            plan(&p("1", true), Some("1"), Some("1\n")),
            ch(false, false, false)
        );
        assert_eq!(
            plan(&p("1", true), Some("1"), Some("0\n")),
            ch(true, false, false)
        );
        let mut no_reload = p("1", true);
        no_reload.reload = false;
        assert_eq!(
            plan(&no_reload, Some("1"), Some("0\n")),
            ch(false, false, false)
        );
        // sysctl_set sets the running value.
        let mut set = no_reload.clone();
        set.sysctl_set = true;
        assert_eq!(plan(&set, Some("1"), Some("0\n")), ch(true, false, true));
        assert_eq!(plan(&set, Some("1"), None), ch(true, false, false));
    }

    #[test]
    fn keys_map_to_proc_paths_like_procps() {
        assert_eq!(
            proc_path("net.ipv4.ip_forward"),
            Path::new("/proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            proc_path("net.ipv4.conf.eth0/1.forwarding"),
            Path::new("/proc/sys/net/ipv4/conf/eth0.1/forwarding")
        );
        assert_eq!(
            proc_path("net/ipv4/conf/eth0.1/forwarding"),
            Path::new("/proc/sys/net/ipv4/conf/eth0.1/forwarding")
        );
    }

    #[test]
    fn stderr_failures() {
        assert!(stderr_failed(
            "sysctl: setting key \"net.ipv4.x\": Invalid argument\n"
        ));
        assert!(!stderr_failed(
            "sysctl: cannot stat /proc/sys/x: No such file\n"
        ));
    }

    #[test]
    fn bad_arguments_read_like_ansible() {
        assert_eq!(
            run_err("sysctl", json!({"name": "kernel.x"})),
            "state is present but all of the following are missing: value"
        );
        assert_eq!(
            run_err("sysctl", json!({"name": "", "value": "1"})),
            "name cannot be blank"
        );
        assert_eq!(
            run_err("sysctl", json!({"name": "kernel.x", "value": ""})),
            "value cannot be blank"
        );
        assert!(
            run_err("sysctl", json!({"name": "k", "value": 1, "state": "on"}))
                .starts_with("value of state must be one of: present, absent")
        );
    }

    /// Only the file, never the running kernel: `reload: false`, a key in a temporary file.
    #[test]
    fn file_only_converges_in_a_temp_dir() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("99-test.conf");
        std::fs::write(&f, "# mine\nkernel.tend_test = 2\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        let args = json!({"name": "kernel.tend_test", "value": 3, "sysctl_file": f,
                          "reload": false});
        assert!(run_check("sysctl", args.clone()).changed);
        assert_eq!(
            std::fs::read_to_string(&f).unwrap(),
            "# mine\nkernel.tend_test = 2\n"
        );
        assert!(run("sysctl", args.clone()).changed);
        assert_eq!(
            std::fs::read_to_string(&f).unwrap(),
            "# mine\nkernel.tend_test=3\n"
        );
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o7777,
            0o640
        );
        assert!(!run("sysctl", args).changed);
        let gone = json!({"name": "kernel.tend_test", "state": "absent", "sysctl_file": f,
                          "reload": false});
        assert!(run("sysctl", gone.clone()).changed);
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "# mine\n");
        assert!(!run("sysctl", gone).changed);
        assert_eq!(
            std::fs::read_dir(t.path()).unwrap().count(),
            1,
            "no temp left"
        );
    }
}
