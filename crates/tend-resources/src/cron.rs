//! `cron`: named entries (`#Ansible: NAME` marker lines) and variables in a user's crontab
//! (read with `crontab -l`, installed with `crontab -` on stdin) or in a file under
//! `/etc/cron.d` (written atomically), with ansible-core's editing rules — including its
//! quirks, so that a crontab edited by both ends up the same.

use std::path::{Path, PathBuf};

use regex::Regex;
use tend_proto::{Value, Vars};

use crate::accounts;
use crate::fsutil::{self, Attrs, Mode};
use crate::{Args, Change, ChangeKind, ModuleCtx, ModuleError, Resource};

pub struct Cron;

pub const PARAMS: &[&str] = &[
    "name",
    "user",
    "job",
    "value",
    "cron_file",
    "state",
    "backup",
    "minute",
    "hour",
    "day",
    "dom",
    "month",
    "weekday",
    "dow",
    "special_time",
    "disabled",
    "env",
    "insertafter",
    "insertbefore",
];

const MARK: &str = "#Ansible: ";

#[derive(Clone, Debug)]
pub struct Desired {
    pub name: String,
    pub user: Option<String>,
    pub job: Option<String>,
    /// `cron_file` as given, and the file it names.
    pub cron_file: Option<(String, PathBuf)>,
    pub present: bool,
    pub backup: bool,
    pub minute: String,
    pub hour: String,
    pub day: String,
    pub month: String,
    pub weekday: String,
    pub special_time: Option<String>,
    pub disabled: bool,
    pub env: bool,
    pub insertafter: Option<String>,
    pub insertbefore: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// The crontab as read (the header lines `crontab -l` may print left out).
    pub existing: String,
    pub lines: Vec<String>,
    pub file_exists: bool,
    /// Set by `apply` when `backup` kept a copy.
    pub backup_file: Option<String>,
}

/// What the edit comes to.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The new lines and whether ansible-core calls it a change.
    Lines(Vec<String>, bool),
    /// The job was the last thing in a `cron_file`: the file goes.
    RemoveFile,
}

fn current_user() -> String {
    // SAFETY-free: the effective uid from /proc, its name from /etc/passwd.
    let uid = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap_or(0);
    fsutil::user_name(uid)
}

impl Desired {
    pub fn from_args(args: &Args) -> Result<Desired, ModuleError> {
        let name = args.req_str("name")?;
        if args.has("insertafter") && args.has("insertbefore") {
            return Err(ModuleError::new(
                "parameters are mutually exclusive: insertafter|insertbefore",
            ));
        }
        let state = args
            .choice("state", &["present", "absent"])?
            .unwrap_or_else(|| "present".into());
        let cron_file = match args.str("cron_file")? {
            Some(f) if !f.is_empty() => {
                let f = fsutil::path_arg(&f).to_string_lossy().into_owned();
                if f == "/etc/crontab" {
                    return Err(ModuleError::new(
                        "Will not manage /etc/crontab via cron_file, see documentation.",
                    ));
                }
                let path = if f.starts_with('/') {
                    PathBuf::from(&f)
                } else {
                    Path::new("/etc/cron.d").join(&f)
                };
                Some((f, path))
            }
            _ => None,
        };
        let field = |names: &[&str]| -> Result<String, ModuleError> {
            Ok(args.str_any(names)?.unwrap_or_else(|| "*".into()))
        };
        Ok(Desired {
            name,
            user: args.str("user")?,
            job: args.str_any(&["job", "value"])?,
            cron_file,
            present: state == "present",
            backup: args.bool_or("backup", false)?,
            minute: field(&["minute"])?,
            hour: field(&["hour"])?,
            day: field(&["day", "dom"])?,
            month: field(&["month"])?,
            weekday: field(&["weekday", "dow"])?,
            special_time: args.choice(
                "special_time",
                &[
                    "reboot", "yearly", "annually", "monthly", "weekly", "daily", "hourly",
                ],
            )?,
            disabled: args.bool_or("disabled", false)?,
            env: args.bool_or("env", false)?,
            insertafter: args.str("insertafter")?,
            insertbefore: args.str("insertbefore")?,
        })
    }

    /// ansible-core's checks, in its order, after the crontab was read.
    fn validate(&self) -> Result<(), String> {
        let times = [
            &self.minute,
            &self.hour,
            &self.day,
            &self.month,
            &self.weekday,
        ];
        if self.special_time.is_some() && times.iter().any(|t| t.as_str() != "*") {
            return Err("You must specify time and date fields or special time.".into());
        }
        if self.present {
            if self.cron_file.is_some() && self.user.is_none() {
                return Err(
                    "To use cron_file=... parameter you must specify user=... as well".into(),
                );
            }
            if self.job.is_none() {
                return Err("You must specify 'job' to install a new cron job or variable".into());
            }
            if (self.insertafter.is_some() || self.insertbefore.is_some()) && !self.env {
                return Err(
                    "Insertafter and insertbefore parameters are valid only with env=yes".into(),
                );
            }
        }
        if self.env && self.name.contains(' ') {
            return Err("Invalid name for environment variable".into());
        }
        Ok(())
    }

    /// The job line as ansible-core writes it.
    pub fn job_line(&self) -> String {
        let job = self
            .job
            .as_deref()
            .unwrap_or("None")
            .trim_matches(['\r', '\n']);
        let prefix = if self.disabled { "#" } else { "" };
        let user = match (&self.cron_file, &self.user) {
            (Some(_), Some(u)) => format!("{u} "),
            (Some(_), None) => "None ".into(),
            _ => String::new(),
        };
        match &self.special_time {
            Some(s) => format!("{prefix}@{s} {user}{job}"),
            None => format!(
                "{prefix}{} {} {} {} {} {user}{job}",
                self.minute, self.hour, self.day, self.month, self.weekday
            ),
        }
    }

    fn header(&self) -> String {
        match (&self.cron_file, &self.user) {
            (Some((_, p)), _) => p.display().to_string(),
            (None, Some(u)) => format!("crontab for user \"{u}\""),
            (None, None) => "crontab".into(),
        }
    }

    /// `crontab [-u USER]`: `-u` only for another user than the one running, as ansible-core.
    fn crontab_argv(&self, last: &str) -> Result<Vec<String>, ModuleError> {
        let mut a = vec![accounts::bin_path("crontab")?];
        if let Some(u) = &self.user {
            if *u != current_user() {
                a.extend(["-u".into(), u.clone()]);
            }
        }
        a.push(last.into());
        Ok(a)
    }
}

fn env_re(name: &str) -> Regex {
    Regex::new(&format!("^{name}="))
        .unwrap_or_else(|_| Regex::new(&format!("^{}=", regex::escape(name))).expect("escaped"))
}

/// ansible-core's `find_job`: by marker, else by the exact job line (then the marker is put
/// in front of it, which is a change). Returns (header found, job line, marker inserted).
fn find_job(lines: &mut Vec<String>, name: &str, job: Option<&str>) -> Option<(String, bool)> {
    let mut comment: Option<String> = None;
    for l in lines.iter() {
        if let Some(c) = &comment {
            if c == name {
                return Some((l.clone(), false));
            }
            comment = None;
        } else if l.starts_with(MARK) {
            comment = Some(l.replace(MARK, ""));
        }
    }
    let job = job?;
    let mark = format!("{MARK}{name}");
    for i in 0..lines.len() {
        if lines[i] != job {
            continue;
        }
        // Python's lines[i - 1] is the last line when i is 0.
        let prev = if i == 0 { lines.len() - 1 } else { i - 1 };
        if !lines[prev].starts_with(MARK) {
            lines.insert(i, mark);
            return Some((job.to_string(), true));
        } else if !name.is_empty() && lines[prev] == format!("{MARK}None") {
            lines[prev] = mark;
            return Some((job.to_string(), true));
        }
    }
    None
}

/// ansible-core's `_update_job`: the marker and the line after it are replaced by `with`.
fn update_job(lines: &[String], name: &str, with: Option<&str>) -> Vec<String> {
    let mark = format!("{MARK}{name}");
    let mut out = Vec::new();
    let mut comment: Option<&String> = None;
    for l in lines {
        if let Some(c) = comment.take() {
            if let Some(job) = with {
                out.push(c.clone());
                out.push(job.to_string());
            }
        } else if *l == mark {
            comment = Some(l);
        } else {
            out.push(l.clone());
        }
    }
    out
}

/// Pure: the edit ansible-core makes to `lines` (a crontab read as `existing`).
pub fn edit(d: &Desired, existing: &str, lines: &[String]) -> Result<Outcome, String> {
    d.validate()?;
    let mut lines = lines.to_vec();
    let mut changed = false;
    if d.env {
        let job = d.job.as_deref().unwrap_or("None");
        let decl = format!("{}=\"{job}\"", d.name);
        let re = env_re(&d.name);
        let old = lines.iter().position(|l| re.is_match(l));
        if d.present {
            match old {
                None => {
                    let other = d.insertafter.as_ref().or(d.insertbefore.as_ref());
                    match other {
                        None => lines.insert(0, decl),
                        Some(o) => {
                            let ore = env_re(o);
                            let at = lines
                                .iter()
                                .position(|l| ore.is_match(l))
                                .ok_or_else(|| format!("Variable named '{o}' not found."))?;
                            let at = if d.insertafter.is_some() { at + 1 } else { at };
                            lines.insert(at, decl);
                        }
                    }
                    changed = true;
                }
                Some(i) if lines[i] != decl => {
                    lines = lines
                        .into_iter()
                        .map(|l| if re.is_match(&l) { decl.clone() } else { l })
                        .collect();
                    changed = true;
                }
                Some(_) => {}
            }
        } else if old.is_some() {
            lines.retain(|l| !re.is_match(l));
            changed = true;
        }
    } else if d.present {
        let job = d.job_line();
        match find_job(&mut lines, &d.name, Some(&job)) {
            None => {
                lines.push(format!("{MARK}{}", d.name));
                lines.push(job);
                changed = true;
            }
            Some((old, inserted)) => {
                if old != job || inserted {
                    lines = update_job(&lines, &d.name, Some(&job));
                    changed = true;
                }
            }
        }
    } else if find_job(&mut lines, &d.name, None).is_some() {
        lines = update_job(&lines, &d.name, None);
        changed = true;
        if d.cron_file.is_some() && lines.iter().all(|l| l.trim().is_empty()) {
            return Ok(Outcome::RemoveFile);
        }
    }
    if !changed && !existing.is_empty() && !existing.ends_with(['\r', '\n']) {
        changed = true;
    }
    Ok(Outcome::Lines(lines, changed))
}

/// The crontab text ansible-core writes.
pub fn render(lines: &[String]) -> String {
    let s = lines.join("\n");
    if s.is_empty() {
        s
    } else {
        format!("{}\n", s.trim_end_matches(['\r', '\n']))
    }
}

/// Drops the header lines an old `crontab -l` prints ("DO NOT EDIT …", "(… installed on …)",
/// "(… version …)") among its first three lines, as ansible-core does.
pub fn strip_header(out: &str) -> (String, Vec<String>) {
    static RES: std::sync::LazyLock<[Regex; 3]> = std::sync::LazyLock::new(|| {
        [
            Regex::new(r"^# DO NOT EDIT THIS FILE - edit the master and reinstall\.")
                .expect("static"),
            Regex::new(r"^# \(/tmp/.*installed on.*\)").expect("static"),
            Regex::new(r"^# \(.*version.*\)").expect("static"),
        ]
    });
    let mut existing = out.to_string();
    let mut lines = Vec::new();
    for (i, l) in py_splitlines(out).into_iter().enumerate() {
        if i > 2 || !RES.iter().any(|r| r.is_match(&l)) {
            lines.push(l);
        } else if let Some(at) = existing.find(l.as_str()) {
            let mut end = at + l.len();
            if existing[end..].starts_with(['\r', '\n']) {
                end += 1;
            }
            existing.replace_range(at..end, "");
        }
    }
    (existing, lines)
}

/// Python's `str.splitlines()` for `\n`, `\r\n` and `\r`.
fn py_splitlines(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => out.push(std::mem::take(&mut cur)),
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push(std::mem::take(&mut cur));
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn read(d: &Desired) -> Result<Observed, ModuleError> {
    if let Some((_, path)) = &d.cron_file {
        return Ok(match std::fs::read(path) {
            Ok(b) => {
                let text = String::from_utf8_lossy(&b).into_owned();
                Observed {
                    lines: py_splitlines(&text),
                    existing: text,
                    file_exists: true,
                    backup_file: None,
                }
            }
            Err(_) => Observed::default(),
        });
    }
    let out = accounts::run(&d.crontab_argv("-l")?, None)?;
    // 1 can mean that there are no jobs.
    if out.rc != 0 && out.rc != 1 {
        return Err(ModuleError::new(format!(
            "Unable to read crontab: {}",
            out.stderr.trim()
        )));
    }
    let (existing, lines) = strip_header(&out.stdout);
    Ok(Observed {
        existing,
        lines,
        file_exists: false,
        backup_file: None,
    })
}

fn jobnames(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .filter(|l| l.starts_with(MARK))
        .map(|l| Value::from(l.replace(MARK, "")))
        .collect()
}

fn envnames(lines: &[String]) -> Vec<Value> {
    static RE: std::sync::LazyLock<Regex> =
        std::sync::LazyLock::new(|| Regex::new(r"^\S+=").expect("static"));
    lines
        .iter()
        .filter(|l| RE.is_match(l))
        .map(|l| Value::from(l.split('=').next().unwrap_or_default()))
        .collect()
}

/// A private temporary file named like Python's `mkstemp(prefix='crontab')`.
fn backup_copy(content: &str) -> Result<String, ModuleError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = std::env::temp_dir();
    for n in 0..100u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|t| t.subsec_nanos())
            .unwrap_or(0);
        let p = dir.join(format!("crontab{:x}{n}", nanos ^ std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&p)
        {
            Ok(mut f) => {
                f.write_all(content.as_bytes())
                    .map_err(|e| ModuleError::io("cannot write", &p, e))?;
                return Ok(p.to_string_lossy().into_owned());
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(ModuleError::io("cannot create", &p, e)),
        }
    }
    Err(ModuleError::new(
        "cannot create a backup file for the crontab",
    ))
}

impl Resource for Cron {
    type Desired = Desired;
    type Observed = Observed;

    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }

    fn desired(&self, args: &Args, _ctx: &ModuleCtx) -> Result<Desired, ModuleError> {
        Desired::from_args(args)
    }

    fn observe(&self, d: &Desired) -> Result<Observed, ModuleError> {
        let o = read(d)?;
        edit(d, &o.existing, &o.lines).map_err(ModuleError::new)?;
        Ok(o)
    }

    fn diff(&self, d: &Desired, o: &Observed) -> Change {
        let before_header = d.header();
        match edit(d, &o.existing, &o.lines) {
            Ok(Outcome::RemoveFile) => {
                let mut c = Change::new(ChangeKind::Delete, before_header.clone());
                c.content = Some((o.existing.clone(), String::new()));
                c.headers = Some((before_header, "/dev/null".into()));
                c
            }
            Ok(Outcome::Lines(lines, true)) => {
                let mut c = Change::new(ChangeKind::Update, before_header.clone());
                c.content = Some((o.existing.clone(), render(&lines)));
                c.headers = Some((before_header.clone(), before_header));
                c
            }
            _ => Change::none(before_header),
        }
    }

    fn apply(
        &self,
        d: &Desired,
        o: &Observed,
        _change: &Change,
        _ctx: &ModuleCtx,
    ) -> Result<Observed, ModuleError> {
        let backup_file = if d.backup {
            Some(backup_copy(&render(&o.lines))?)
        } else {
            None
        };
        match edit(d, &o.existing, &o.lines).map_err(ModuleError::new)? {
            Outcome::RemoveFile => {
                if let Some((_, p)) = &d.cron_file {
                    let _ = std::fs::remove_file(p);
                }
            }
            Outcome::Lines(lines, _) => {
                let text = render(&lines);
                match &d.cron_file {
                    Some((_, p)) => {
                        // A new file is 0644 (ansible-core writes with umask 022); an
                        // existing one keeps its owner and mode.
                        let attrs = if o.file_exists {
                            Attrs::default()
                        } else {
                            Attrs {
                                mode: Some(Mode::Octal(0o644)),
                                ..Attrs::default()
                            }
                        };
                        fsutil::atomic_write(p, text.as_bytes(), &attrs, None, None)?;
                    }
                    None => {
                        let out = accounts::run(&d.crontab_argv("-")?, Some(text.as_bytes()))?;
                        if out.rc != 0 {
                            let mut e = ModuleError::new(format!(
                                "Failed to install new cronfile: {}",
                                d.header()
                            ));
                            e.fields.insert("stderr".into(), out.stderr.into());
                            e.fields.insert("stdout".into(), out.stdout.into());
                            e.fields.insert("rc".into(), out.rc.into());
                            return Err(e);
                        }
                    }
                }
            }
        }
        let mut now = read(d)?;
        now.backup_file = backup_file;
        Ok(now)
    }

    fn result(&self, d: &Desired, o: &Observed, change: &Change) -> Vars {
        let mut r = Vars::new();
        let given = d.cron_file.as_ref().map(|(f, _)| Value::from(f.clone()));
        if change.kind == ChangeKind::Delete {
            r.insert("cron_file".into(), given.unwrap_or(Value::Null));
            r.insert(
                "state".into(),
                if d.present { "present" } else { "absent" }.into(),
            );
            return r;
        }
        let lines = match edit(d, &o.existing, &o.lines) {
            Ok(Outcome::Lines(l, _)) => l,
            _ => o.lines.clone(),
        };
        r.insert("jobs".into(), Value::Array(jobnames(&lines)));
        r.insert("envs".into(), Value::Array(envnames(&lines)));
        if let Some(b) = &o.backup_file {
            r.insert("backup_file".into(), b.clone().into());
        }
        if let Some(f) = given {
            r.insert("cron_file".into(), f);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn desired(v: serde_json::Value) -> Desired {
        Desired::from_args(&Args::new(v.as_object().unwrap().clone())).unwrap()
    }

    fn run(d: &Desired, text: &str) -> (String, bool) {
        match edit(d, text, &py_splitlines(text)).unwrap() {
            Outcome::Lines(l, c) => (render(&l), c),
            Outcome::RemoveFile => ("<removed>".into(), true),
        }
    }

    #[test]
    fn a_named_job_is_added_then_kept() {
        let d = desired(json!({"name": "backup", "minute": "5", "hour": "2",
                               "job": "/usr/local/bin/backup"}));
        let (t, c) = run(&d, "");
        assert!(c);
        assert_eq!(t, "#Ansible: backup\n5 2 * * * /usr/local/bin/backup\n");
        assert_eq!(run(&d, &t), (t.clone(), false));
        // A changed schedule replaces the line under the marker.
        let d2 = desired(json!({"name": "backup", "minute": "7", "job": "/usr/local/bin/backup"}));
        assert_eq!(
            run(&d2, &t),
            (
                "#Ansible: backup\n7 * * * * /usr/local/bin/backup\n".into(),
                true
            )
        );
    }

    #[test]
    fn special_time_disabled_and_cron_file_lines() {
        let d = desired(json!({"name": "r", "special_time": "reboot", "job": "x",
                               "disabled": true}));
        assert_eq!(d.job_line(), "#@reboot x");
        let d = desired(json!({"name": "r", "hour": "1", "job": "x", "user": "app",
                               "cron_file": "app"}));
        assert_eq!(d.job_line(), "* 1 * * * app x");
        assert_eq!(
            d.cron_file.as_ref().unwrap().1,
            PathBuf::from("/etc/cron.d/app")
        );
        let bad = desired(json!({"name": "r", "special_time": "daily", "hour": "1", "job": "x"}));
        assert_eq!(
            edit(&bad, "", &[]).unwrap_err(),
            "You must specify time and date fields or special time."
        );
        let no_user = desired(json!({"name": "r", "job": "x", "cron_file": "app"}));
        assert_eq!(
            edit(&no_user, "", &[]).unwrap_err(),
            "To use cron_file=... parameter you must specify user=... as well"
        );
    }

    #[test]
    fn an_unmarked_identical_job_gets_its_marker() {
        let d = desired(json!({"name": "j", "job": "x"}));
        assert_eq!(
            run(&d, "MAILTO=a\n* * * * * x\n"),
            ("MAILTO=a\n#Ansible: j\n* * * * * x\n".into(), true)
        );
    }

    #[test]
    fn absent_removes_marker_and_job_and_an_empty_cron_file_goes() {
        let d = desired(json!({"name": "j", "state": "absent"}));
        assert_eq!(
            run(&d, "#Ansible: j\n* * * * * x\n#Ansible: k\n1 * * * * y\n"),
            ("#Ansible: k\n1 * * * * y\n".into(), true)
        );
        assert!(!run(&d, "#Ansible: k\n1 * * * * y\n").1);
        let d = desired(json!({"name": "j", "state": "absent", "cron_file": "app"}));
        assert_eq!(run(&d, "#Ansible: j\n* * * * * root x\n").0, "<removed>");
    }

    #[test]
    fn env_variables_insert_update_remove() {
        let d = desired(json!({"name": "PATH", "env": true, "job": "/bin"}));
        assert_eq!(
            run(&d, "#Ansible: j\nx\n").0,
            "PATH=\"/bin\"\n#Ansible: j\nx\n"
        );
        let d = desired(json!({"name": "MAILTO", "env": true, "job": "ops",
                               "insertafter": "PATH"}));
        assert_eq!(
            run(&d, "PATH=\"/bin\"\nx\n").0,
            "PATH=\"/bin\"\nMAILTO=\"ops\"\nx\n"
        );
        let bad = desired(json!({"name": "M", "env": true, "job": "o", "insertbefore": "NOPE"}));
        assert_eq!(
            edit(&bad, "", &[]).unwrap_err(),
            "Variable named 'NOPE' not found."
        );
        let d = desired(json!({"name": "PATH", "env": true, "state": "absent"}));
        assert_eq!(run(&d, "PATH=\"/bin\"\nx\n"), ("x\n".into(), true));
    }

    #[test]
    fn a_missing_final_newline_is_a_change_and_headers_are_stripped() {
        let d = desired(json!({"name": "j", "job": "x"}));
        assert!(run(&d, "#Ansible: j\n* * * * * x").1);
        let (existing, lines) = strip_header(
            "# DO NOT EDIT THIS FILE - edit the master and reinstall.\n\
             # (/tmp/crontab.X installed on Thu)\n# (Cron version V5.0)\nA=1\n",
        );
        assert_eq!(existing, "A=1\n");
        assert_eq!(lines, vec!["A=1"]);
    }

    #[test]
    fn result_names_jobs_and_envs() {
        let lines: Vec<String> = vec!["A=1".into(), "#Ansible: x".into(), "* * * * * y".into()];
        assert_eq!(jobnames(&lines), vec![Value::from("x")]);
        assert_eq!(envnames(&lines), vec![Value::from("A")]);
    }
}
