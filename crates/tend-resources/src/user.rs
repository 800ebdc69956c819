//! `user`: a local account as ansible-core's Linux `user` module manages it — `useradd`,
//! `usermod` and `userdel` with argument vectors — plus its home directory and an SSH key.
//!
//! One deliberate difference in means, not in end state: a password hash is never put in a
//! command line (ansible-core passes it to `useradd -p`/`usermod -p`); tend gives it to
//! `chpasswd -e` on stdin, which writes the same shadow field.

use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tend_proto::{Value, Vars};

use crate::accounts::{self, Accounts, PasswdEntry};
use crate::group::run_tool;
use crate::{fsutil, Args, Change, ChangeKind, ModuleCtx, ModuleError, Resource};

pub struct User;

pub const PARAMS: &[&str] = &[
    "name",
    "user",
    "state",
    "uid",
    "non_unique",
    "group",
    "groups",
    "append",
    "comment",
    "home",
    "shell",
    "password",
    "update_password",
    "password_lock",
    "expires",
    "system",
    "create_home",
    "createhome",
    "move_home",
    "skeleton",
    "umask",
    "uid_min",
    "uid_max",
    "force",
    "remove",
    "generate_ssh_key",
    "ssh_key_bits",
    "ssh_key_type",
    "ssh_key_file",
    "ssh_key_comment",
    "ssh_key_passphrase",
    "local",
    "seuser",
    "login_class",
    "hidden",
    "profile",
    "authorization",
    "role",
    "password_expire_max",
    "password_expire_min",
    "password_expire_warn",
    "password_expire_account_disable",
];

/// Arguments ansible-core accepts that tend refuses, and why.
const REFUSED: &[(&str, &str)] = &[
    ("seuser", "SELinux users are not supported by tend"),
    ("login_class", "login classes exist on BSD only"),
    ("hidden", "hidden users exist on macOS only"),
    ("profile", "profiles exist on Solaris/illumos only"),
    (
        "authorization",
        "authorizations exist on Solaris/illumos only",
    ),
    ("role", "roles exist on Solaris/illumos only"),
    (
        "password_expire_max",
        "password ageing is not supported by tend yet",
    ),
    (
        "password_expire_min",
        "password ageing is not supported by tend yet",
    ),
    (
        "password_expire_warn",
        "password ageing is not supported by tend yet",
    ),
    (
        "password_expire_account_disable",
        "password ageing is not supported by tend yet",
    ),
];

/// What the play declares.
#[derive(Clone, Debug)]
pub struct Desired {
    pub name: String,
    pub present: bool,
    pub uid: Option<i64>,
    pub non_unique: bool,
    pub group: Option<String>,
    /// `groups` as given (names or gids).
    pub groups: Option<Vec<String>>,
    pub append: bool,
    pub comment: Option<String>,
    pub home: Option<String>,
    pub shell: Option<String>,
    pub password: Option<String>,
    pub update_always: bool,
    pub password_lock: Option<bool>,
    /// `expires` in seconds since the epoch.
    pub expires: Option<f64>,
    pub system: bool,
    pub create_home: bool,
    pub move_home: bool,
    pub skeleton: Option<String>,
    pub umask: Option<String>,
    pub uid_min: Option<i64>,
    pub uid_max: Option<i64>,
    pub force: bool,
    pub remove: bool,
    pub ssh: Option<SshKey>,
}

#[derive(Clone, Debug)]
pub struct SshKey {
    pub bits: i64,
    pub kind: String,
    pub file: String,
    pub comment: String,
    pub passphrase: Option<String>,
}

/// The generated key as found on the host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyObs {
    pub path: String,
    pub dir_exists: bool,
    pub private_exists: bool,
    pub public_exists: bool,
    /// `ssh-keygen -l` of the private key ("" when there is none).
    pub fingerprint: String,
    pub public: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub entry: Option<PasswdEntry>,
    /// The password field: `/etc/shadow`'s when passwd holds a placeholder (`x`).
    pub password: String,
    /// Days since the epoch; -1 when unset.
    pub expire: i64,
    /// Groups that list the user as a member.
    pub memberships: Vec<String>,
    pub accounts: Accounts,
    /// Whether the home the user will have exists (`home`, or the current one).
    pub home_exists: bool,
    /// Whether the parent of a declared `home` is missing (ansible-core then makes the home
    /// itself, with `/etc/skel` and login.defs' UMASK).
    pub home_parent_missing: bool,
    pub key: Option<KeyObs>,
    /// A problem ansible-core reports only when it gets to it (a group that does not exist).
    pub problem: Option<String>,
    /// Set by `apply`: what the tools printed, and whether a forced key was regenerated.
    pub stdout: String,
    pub stderr: String,
    pub key_regenerated: bool,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

impl Desired {
    pub fn from_args(args: &Args) -> Result<Desired, ModuleError> {
        for (k, why) in REFUSED {
            if args.has(k) {
                return Err(ModuleError::new(format!(
                    "tend's user module does not support '{k}': {why}; remove it from the task"
                )));
            }
        }
        if args.bool_or("local", false)? {
            return Err(ModuleError::new(
                "tend's user module manages accounts with useradd/usermod/userdel; local=true \
                 (libuser's luseradd) is not supported: remove it",
            ));
        }
        let name = args
            .str_any(&["name", "user"])?
            .ok_or_else(|| ModuleError::new("missing required arguments: name"))?;
        let state = args
            .choice("state", &["absent", "present"])?
            .unwrap_or_else(|| "present".into());
        let update = args
            .choice("update_password", &["always", "on_create"])?
            .unwrap_or_else(|| "always".into());
        let create_home = match args.first(&["create_home", "createhome"]) {
            Some((k, v)) => crate::args::to_bool(k, v)?,
            None => true,
        };
        let ssh = if args.bool_or("generate_ssh_key", false)? {
            let kind = args.str("ssh_key_type")?.unwrap_or_else(|| "rsa".into());
            Some(SshKey {
                bits: args.int("ssh_key_bits")?.unwrap_or(0),
                file: args
                    .str("ssh_key_file")?
                    .map(|f| fsutil::path_arg(&f).to_string_lossy().into_owned())
                    .unwrap_or_else(|| format!(".ssh/id_{kind}")),
                kind,
                comment: args
                    .str("ssh_key_comment")?
                    .unwrap_or_else(|| format!("ansible-generated on {}", hostname())),
                passphrase: args.str("ssh_key_passphrase")?,
            })
        } else {
            None
        };
        let path = |k: &str| -> Result<Option<String>, ModuleError> {
            Ok(args
                .str(k)?
                .map(|s| fsutil::path_arg(&s).to_string_lossy().into_owned()))
        };
        Ok(Desired {
            name,
            present: state == "present",
            uid: args.int("uid")?,
            non_unique: args.bool_or("non_unique", false)?,
            group: args.str("group")?,
            groups: args.list("groups")?,
            append: args.bool_or("append", false)?,
            comment: args.str("comment")?,
            home: path("home")?,
            shell: path("shell")?,
            password: args.str("password")?,
            update_always: update == "always",
            password_lock: args.bool("password_lock")?,
            expires: args.float("expires")?,
            system: args.bool_or("system", false)?,
            create_home,
            move_home: args.bool_or("move_home", false)?,
            skeleton: args.str("skeleton")?,
            umask: args.str("umask")?,
            uid_min: args.int("uid_min")?,
            uid_max: args.int("uid_max")?,
            force: args.bool_or("force", false)?,
            remove: args.bool_or("remove", false)?,
            ssh,
        })
    }

    /// The path of the SSH key for a user whose home is `home`.
    fn key_path(&self, key: &SshKey, home: &str) -> String {
        if key.file.starts_with('/') {
            key.file.clone()
        } else {
            Path::new(home)
                .join(&key.file)
                .to_string_lossy()
                .into_owned()
        }
    }
}

/// `YYYY-MM-DD` of a day counted from the epoch (proleptic Gregorian, UTC).
pub fn date_of_day(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// What must run to get from the observed account to the declared one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// `useradd`, `usermod` or `userdel` with its arguments (tool name first, unresolved).
    pub command: Option<Vec<String>>,
    /// The shadow password field to write with `chpasswd -e`.
    pub password: Option<String>,
    /// The user's home must be made (it is missing and `create_home` is set).
    pub make_home: bool,
    /// ansible-core makes a home whose parent is missing itself before `useradd`.
    pub pre_make_home: Option<String>,
    pub keygen: bool,
    /// Fields that change, for the structured change (`password` masked).
    pub fields: Vec<(String, Value, Value)>,
}

/// The groups of `groups` that must exist; the first missing one is ansible-core's failure.
fn check_groups(d: &Desired, acc: &Accounts) -> Option<String> {
    if let Some(g) = &d.group {
        if acc.group(g).is_none() {
            return Some(format!("Group {g} does not exist"));
        }
    }
    for g in d.groups.iter().flatten() {
        if acc.group(g.trim()).is_none() {
            return Some(format!("Group {} does not exist", g.trim()));
        }
    }
    None
}

/// Pure: the commands that turn `o` into `d`.
pub fn plan(d: &Desired, o: &Observed) -> Plan {
    let mut p = Plan::default();
    let field = |p: &mut Plan, k: &str, b: Value, a: Value| p.fields.push((k.into(), b, a));
    match (&o.entry, d.present) {
        (None, false) => {}
        (Some(_), false) => {
            let mut a = vec!["userdel".to_string()];
            if d.force {
                a.push("-f".into());
            }
            if d.remove {
                a.push("-r".into());
            }
            a.push(d.name.clone());
            p.command = Some(a);
        }
        (None, true) => {
            let mut a = vec!["useradd".to_string()];
            if let Some(u) = d.uid {
                a.extend(["-u".into(), u.to_string()]);
                if d.non_unique {
                    a.push("-o".into());
                }
                field(&mut p, "uid", Value::Null, u.into());
            }
            if let Some(g) = &d.group {
                a.extend(["-g".into(), g.clone()]);
                field(&mut p, "group", Value::Null, g.clone().into());
            } else if o.accounts.group_by_name(&d.name).is_some() {
                a.push("-N".into());
            }
            if let Some(gs) = d.groups.as_ref().filter(|g| !g.is_empty()) {
                a.extend(["-G".into(), gs.join(",")]);
                field(&mut p, "groups", Value::Null, gs.join(",").into());
            }
            if let Some(c) = &d.comment {
                a.extend(["-c".into(), c.clone()]);
                field(&mut p, "comment", Value::Null, c.clone().into());
            }
            if let Some(h) = &d.home {
                if d.create_home && o.home_parent_missing {
                    p.pre_make_home = Some(h.clone());
                }
                a.extend(["-d".into(), h.clone()]);
                field(&mut p, "home", Value::Null, h.clone().into());
            }
            if let Some(s) = &d.shell {
                a.extend(["-s".into(), s.clone()]);
                field(&mut p, "shell", Value::Null, s.clone().into());
            }
            if let Some(e) = d.expires {
                a.push("-e".into());
                a.push(if e < 0.0 {
                    String::new()
                } else {
                    date_of_day((e / 86_400.0).floor() as i64)
                });
            }
            if let Some(pw) = &d.password {
                let lock = if d.password_lock == Some(true) {
                    "!"
                } else {
                    ""
                };
                p.password = Some(format!("{lock}{pw}"));
                field(&mut p, "password", Value::Null, "(hidden)".into());
            }
            if d.create_home {
                a.push("-m".into());
                if let Some(k) = &d.skeleton {
                    a.extend(["-k".into(), k.clone()]);
                }
                if let Some(u) = &d.umask {
                    a.extend(["-K".into(), format!("UMASK={u}")]);
                }
            } else {
                a.push("-M".into());
            }
            if d.system {
                a.push("-r".into());
            }
            if let Some(m) = d.uid_min {
                a.extend(["-K".into(), format!("UID_MIN={m}")]);
            }
            if let Some(m) = d.uid_max {
                a.extend(["-K".into(), format!("UID_MAX={m}")]);
            }
            a.push(d.name.clone());
            p.command = Some(a);
            p.keygen = d.ssh.is_some();
        }
        (Some(cur), true) => {
            let mut a = vec!["usermod".to_string()];
            if let Some(u) = d.uid.filter(|u| *u != i64::from(cur.uid)) {
                a.extend(["-u".into(), u.to_string()]);
                if d.non_unique {
                    a.push("-o".into());
                }
                field(&mut p, "uid", cur.uid.into(), u.into());
            }
            if let Some(g) = d.group.as_ref().and_then(|g| o.accounts.group(g)) {
                if g.gid != cur.gid {
                    a.extend(["-g".into(), g.gid.to_string()]);
                    field(&mut p, "group", cur.gid.into(), g.gid.into());
                }
            }
            if let Some(gs) = &d.groups {
                let current = &o.memberships;
                let mut wanted: Vec<String> = gs
                    .iter()
                    .filter_map(|g| o.accounts.group(g.trim()).map(|e| e.name.clone()))
                    .collect();
                wanted.sort();
                wanted.dedup();
                let missing = wanted.iter().any(|g| !current.contains(g));
                let extra = current.iter().any(|g| !wanted.contains(g));
                let need = if gs.is_empty() {
                    !current.is_empty() && !d.append
                } else if d.append {
                    missing
                } else {
                    missing || extra
                };
                if need {
                    if d.append {
                        a.push("-a".into());
                    }
                    a.extend(["-G".into(), wanted.join(",")]);
                    field(
                        &mut p,
                        "groups",
                        current.join(",").into(),
                        wanted.join(",").into(),
                    );
                }
            }
            if let Some(c) = d.comment.as_ref().filter(|c| **c != cur.gecos) {
                a.extend(["-c".into(), c.clone()]);
                field(
                    &mut p,
                    "comment",
                    cur.gecos.clone().into(),
                    c.clone().into(),
                );
            }
            if let Some(h) = d.home.as_ref().filter(|h| **h != cur.home) {
                a.extend(["-d".into(), h.clone()]);
                if d.move_home {
                    a.push("-m".into());
                }
                field(&mut p, "home", cur.home.clone().into(), h.clone().into());
            }
            if let Some(s) = d.shell.as_ref().filter(|s| **s != cur.shell) {
                a.extend(["-s".into(), s.clone()]);
                field(&mut p, "shell", cur.shell.clone().into(), s.clone().into());
            }
            if let Some(e) = d.expires {
                let cur_days = o.expire;
                if e < 0.0 {
                    if cur_days >= 0 {
                        a.extend(["-e".into(), String::new()]);
                        field(&mut p, "expires", date_of_day(cur_days).into(), Value::Null);
                    }
                } else {
                    let days = (e / 86_400.0).floor() as i64;
                    if cur_days < 0 || cur_days != days {
                        a.extend(["-e".into(), date_of_day(days)]);
                        let before = if cur_days < 0 {
                            Value::Null
                        } else {
                            date_of_day(cur_days).into()
                        };
                        field(&mut p, "expires", before, date_of_day(days).into());
                    }
                }
            }
            let locked = o.password.starts_with('!');
            let mut lock_flag = None;
            if d.password_lock == Some(true) && !locked {
                lock_flag = Some("-L");
            } else if d.password_lock == Some(false) && locked {
                lock_flag = Some("-U");
            }
            let new_password = d.password.as_ref().filter(|pw| {
                d.update_always && o.password.trim_start_matches('!') != pw.trim_start_matches('!')
            });
            if let Some(pw) = new_password {
                let lock = if d.password_lock == Some(true) {
                    "!"
                } else {
                    ""
                };
                p.password = Some(format!("{lock}{pw}"));
                field(&mut p, "password", "(hidden)".into(), "(hidden)".into());
            } else if let Some(f) = lock_flag {
                a.push(f.into());
                field(&mut p, "password_lock", locked.into(), (f == "-L").into());
            }
            if a.len() > 1 {
                a.push(d.name.clone());
                p.command = Some(a);
            }
            p.make_home = d.create_home && !o.home_exists;
            if p.make_home {
                let home = d.home.clone().unwrap_or_else(|| cur.home.clone());
                field(&mut p, "home_directory", Value::Null, home.into());
            }
            if let (Some(_), Some(k)) = (&d.ssh, &o.key) {
                let exists = k.private_exists || k.public_exists;
                p.keygen = !k.dir_exists || !exists || (d.force && !o.key_regenerated);
                if p.keygen {
                    field(&mut p, "ssh_key", Value::Null, k.path.clone().into());
                }
            }
        }
    }
    p
}

fn keygen_path(d: &Desired, home: &str) -> Option<String> {
    d.ssh.as_ref().map(|k| d.key_path(k, home))
}

fn observe_key(path: &str) -> KeyObs {
    let p = Path::new(path);
    let private_exists = p.exists();
    let public = format!("{path}.pub");
    let fingerprint = if private_exists {
        accounts::run(
            &crate::process::argv(["ssh-keygen", "-l", "-f", path]),
            None,
        )
        .ok()
        .map(|o| {
            if o.rc == 0 {
                o.stdout.trim().to_string()
            } else {
                o.stderr.trim().to_string()
            }
        })
        .unwrap_or_default()
    } else {
        String::new()
    };
    KeyObs {
        path: path.to_string(),
        dir_exists: p.parent().is_some_and(Path::exists),
        private_exists,
        public_exists: Path::new(&public).exists(),
        fingerprint,
        public: std::fs::read_to_string(&public)
            .ok()
            .map(|s| s.trim().to_string()),
    }
}

fn observe_user(d: &Desired) -> Result<Observed, ModuleError> {
    let acc = Accounts::read()?;
    let entry = acc.user(&d.name).cloned();
    let mut o = Observed {
        expire: -1,
        ..Default::default()
    };
    if let Some(e) = &entry {
        o.password = e.passwd.clone();
        if let Some(s) = accounts::shadow(&d.name)? {
            if e.passwd.chars().count() <= 1 {
                o.password = s.passwd;
            }
            o.expire = s.expire.unwrap_or(-1);
        }
        o.memberships = acc.memberships(&d.name);
        let home = d.home.clone().unwrap_or_else(|| e.home.clone());
        o.home_exists = Path::new(&home).exists();
        if let Some(path) = keygen_path(d, &home) {
            o.key = Some(observe_key(&path));
        }
    }
    if let Some(h) = &d.home {
        o.home_parent_missing = !Path::new(h).parent().is_some_and(Path::is_dir);
    }
    o.problem = check_groups(d, &acc);
    o.entry = entry;
    o.accounts = acc;
    Ok(o)
}

/// ansible-core's `create_homedir`: a copy of the skeleton (links kept as links), or an
/// empty directory, given login.defs' UMASK as its mode.
fn create_homedir(path: &Path, skeleton: Option<&str>) -> Result<(), ModuleError> {
    if path.exists() {
        return Ok(());
    }
    let skel = Path::new(skeleton.unwrap_or("/etc/skel"));
    if skel.exists() && skel != Path::new("/dev/null") {
        copy_tree(skel, path)?;
    } else {
        std::fs::create_dir_all(path).map_err(|e| ModuleError::io("cannot create", path, e))?;
    }
    if let Ok(defs) = std::fs::read_to_string("/etc/login.defs") {
        for line in defs.lines() {
            let mut parts = line.split_whitespace();
            if parts.next() == Some("UMASK") {
                if let (Some(v), None) = (parts.next(), parts.next()) {
                    if let Ok(umask) = u32::from_str_radix(v, 8) {
                        std::fs::set_permissions(
                            path,
                            std::fs::Permissions::from_mode(0o777 & !umask),
                        )
                        .map_err(|e| ModuleError::io("chmod failed:", path, e))?;
                    }
                }
            }
        }
    }
    Ok(())
}

fn copy_tree(src: &Path, dst: &Path) -> Result<(), ModuleError> {
    std::fs::create_dir_all(dst).map_err(|e| ModuleError::io("cannot create", dst, e))?;
    let rd = std::fs::read_dir(src).map_err(|e| ModuleError::io("cannot read", src, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| ModuleError::io("cannot read", src, e))?;
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        let meta = std::fs::symlink_metadata(&from)
            .map_err(|e| ModuleError::io("cannot stat", &from, e))?;
        if meta.file_type().is_symlink() {
            let target =
                std::fs::read_link(&from).map_err(|e| ModuleError::io("cannot read", &from, e))?;
            symlink(target, &to).map_err(|e| ModuleError::io("cannot create", &to, e))?;
        } else if meta.is_dir() {
            copy_tree(&from, &to)?;
        } else {
            std::fs::copy(&from, &to).map_err(|e| ModuleError::io("cannot copy", &from, e))?;
        }
    }
    let mode = std::fs::metadata(src)
        .map_err(|e| ModuleError::io("cannot stat", src, e))?
        .mode();
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(mode & 0o7777))
        .map_err(|e| ModuleError::io("chmod failed:", dst, e))
}

/// `chown -R` without following links (links themselves are left alone).
fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<(), ModuleError> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .map_err(|e| ModuleError::io("chown failed:", path, e))?;
    if let Ok(rd) = std::fs::read_dir(path) {
        for entry in rd.flatten() {
            let p = entry.path();
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if m.is_dir() {
                chown_tree(&p, uid, gid)?;
            } else if !m.file_type().is_symlink() {
                std::os::unix::fs::chown(&p, Some(uid), Some(gid))
                    .map_err(|e| ModuleError::io("chown failed:", &p, e))?;
            }
        }
    }
    Ok(())
}

/// A small askpass program: ssh-keygen starts it for each passphrase prompt with its own
/// stdin, where tend writes the passphrase (twice). The passphrase never is in argv or env.
const ASKPASS: &str = "#!/bin/sh\nIFS= read -r p || exit 1\nprintf '%s\\n' \"$p\"\n";

fn ssh_keygen(
    d: &Desired,
    key: &SshKey,
    obs: &KeyObs,
    user: &PasswdEntry,
) -> Result<(), ModuleError> {
    let fail = |msg: String| {
        let mut e = ModuleError::new(msg);
        e.fields.insert("name".into(), Value::from(d.name.clone()));
        e.fields.insert("rc".into(), Value::from(1));
        e
    };
    let path = PathBuf::from(&obs.path);
    let dir = path.parent().unwrap_or(Path::new("/"));
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .map_err(|e| fail(format!("Failed to create {}: {e}", dir.display())))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| fail(format!("Failed to create {}: {e}", dir.display())))?;
        std::os::unix::fs::chown(dir, Some(user.uid), Some(user.gid))
            .map_err(|e| fail(format!("Failed to create {}: {e}", dir.display())))?;
    }
    let public = PathBuf::from(format!("{}.pub", obs.path));
    if d.force {
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(&public);
    }
    let mut argv = vec![
        accounts::bin_path("ssh-keygen")?,
        "-t".into(),
        key.kind.clone(),
    ];
    if key.bits > 0 {
        argv.extend(["-b".into(), key.bits.to_string()]);
    }
    argv.extend([
        "-C".into(),
        key.comment.clone(),
        "-f".into(),
        obs.path.clone(),
    ]);
    let out = match &key.passphrase {
        None => {
            argv.extend(["-N".into(), String::new()]);
            accounts::run(&argv, None)?
        }
        Some(pass) => {
            let tmp = tempdir_for_askpass()?;
            let askpass = tmp.join("askpass");
            std::fs::write(&askpass, ASKPASS)
                .and_then(|()| {
                    std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o700))
                })
                .map_err(|e| ModuleError::io("cannot write", &askpass, e))?;
            let input = format!("{pass}\n{pass}\n");
            let ask = askpass.to_string_lossy().into_owned();
            let r = accounts::run_env(
                &argv,
                Some(input.as_bytes()),
                &[("SSH_ASKPASS", &ask), ("SSH_ASKPASS_REQUIRE", "force")],
            );
            let _ = std::fs::remove_dir_all(&tmp);
            r?
        }
    };
    if out.rc != 0 {
        let mut e = fail(out.stderr);
        e.fields.insert("rc".into(), Value::from(out.rc));
        return Err(e);
    }
    for p in [&path, &public] {
        std::os::unix::fs::chown(p, Some(user.uid), Some(user.gid))
            .map_err(|e| ModuleError::io("chown failed:", p, e))?;
    }
    Ok(())
}

fn tempdir_for_askpass() -> Result<PathBuf, ModuleError> {
    let base = std::env::temp_dir();
    for n in 0..100u32 {
        let p = base.join(format!("tend-askpass-{}-{n}", std::process::id()));
        match std::fs::DirBuilder::new().mode(0o700).create(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(ModuleError::io("cannot create", &p, e)),
        }
    }
    Err(ModuleError::new(
        "cannot create a temporary directory for ssh-keygen",
    ))
}

use std::os::unix::fs::DirBuilderExt;

impl Resource for User {
    type Desired = Desired;
    type Observed = Observed;

    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }

    fn desired(&self, args: &Args, _ctx: &ModuleCtx) -> Result<Desired, ModuleError> {
        Desired::from_args(args)
    }

    fn observe(&self, d: &Desired) -> Result<Observed, ModuleError> {
        let o = observe_user(d)?;
        // ansible-core checks groups of an existing user before anything (check mode too);
        // for a new user only when it runs useradd.
        if d.present && o.entry.is_some() {
            if let Some(p) = &o.problem {
                return Err(ModuleError::new(p.clone()));
            }
        }
        Ok(o)
    }

    fn diff(&self, d: &Desired, o: &Observed) -> Change {
        let p = plan(d, o);
        let subject = format!("user {}", d.name);
        let kind = match (&o.entry, d.present) {
            (Some(_), false) => ChangeKind::Delete,
            (None, true) => ChangeKind::Create,
            _ => ChangeKind::None,
        };
        let mut c = Change::new(kind, subject);
        // An existing user with anything to do is an update (even one without a field).
        let work = p.command.is_some() || p.password.is_some() || p.make_home || p.keygen;
        if kind == ChangeKind::None && work {
            c.kind = ChangeKind::Update;
        }
        for (k, b, a) in p.fields {
            c = c.field(&k, b, a);
        }
        c
    }

    fn apply(
        &self,
        d: &Desired,
        o: &Observed,
        _change: &Change,
        _ctx: &ModuleCtx,
    ) -> Result<Observed, ModuleError> {
        if let (None, true, Some(problem)) = (&o.entry, d.present, &o.problem) {
            return Err(ModuleError::new(problem.clone()));
        }
        let p = plan(d, o);
        let (mut stdout, mut stderr) = (String::new(), String::new());
        if let Some(h) = &p.pre_make_home {
            create_homedir(Path::new(h), d.skeleton.as_deref())?;
        }
        if let Some(cmd) = &p.command {
            let mut argv = cmd.clone();
            argv[0] = accounts::bin_path(&cmd[0])?;
            let out = run_tool(&argv, &d.name, None, true)?;
            stdout.push_str(&out.stdout);
            stderr.push_str(&out.stderr);
        }
        if let Some(pw) = &p.password {
            let argv = vec![accounts::bin_path("chpasswd")?, "-e".into()];
            let input = format!("{}:{pw}\n", d.name);
            let out = run_tool(&argv, &d.name, Some(input.as_bytes()), true)?;
            stdout.push_str(&out.stdout);
            stderr.push_str(&out.stderr);
        }
        let mut now = observe_user(d)?;
        if d.present {
            if let Some(u) = now.entry.clone() {
                if p.pre_make_home.is_some() {
                    chown_tree(Path::new(&u.home), u.uid, u.gid)?;
                }
                let home = d.home.clone().unwrap_or_else(|| u.home.clone());
                if d.create_home && !Path::new(&home).exists() {
                    create_homedir(Path::new(&home), d.skeleton.as_deref())?;
                    chown_tree(Path::new(&home), u.uid, u.gid)?;
                }
                if let (Some(key), Some(k)) = (&d.ssh, &now.key) {
                    if !Path::new(&home).exists() && !k.path.starts_with('/') {
                        let mut e = ModuleError::new(format!(
                            "User {} home directory does not exist",
                            d.name
                        ));
                        e.fields.insert("rc".into(), Value::from(1));
                        return Err(e);
                    }
                    let exists = k.private_exists || k.public_exists;
                    if !k.dir_exists || !exists || d.force {
                        ssh_keygen(d, key, k, &u)?;
                        now.key_regenerated = d.force;
                    }
                }
                let regenerated = now.key_regenerated;
                now = Observed {
                    key_regenerated: regenerated,
                    ..observe_user(d)?
                };
            }
        }
        now.stdout = stdout;
        now.stderr = stderr;
        Ok(now)
    }

    fn restore(
        &self,
        d: &Desired,
        o: &Observed,
        _change: &Change,
    ) -> Result<Option<crate::journal::Restore>, ModuleError> {
        use crate::journal::{Restore, UndoStep};
        Ok(Some(if d.present && o.entry.is_none() {
            Restore::Steps(vec![UndoStep::new(
                "user",
                serde_json::json!({"name": d.name, "state": "absent", "remove": !o.home_exists}),
            )])
        } else if d.present {
            Restore::Cannot(format!(
                "user {} existed before; tend restores accounts it created, not changes to \
                 existing ones",
                d.name
            ))
        } else {
            Restore::Cannot(format!("user {} was removed", d.name))
        }))
    }

    fn result(&self, d: &Desired, o: &Observed, change: &Change) -> Vars {
        let mut r = Vars::new();
        let check_mode_answer = match change.kind {
            ChangeKind::Create => o.entry.is_none(),
            ChangeKind::Delete => o.entry.is_some(),
            _ => false,
        };
        if check_mode_answer {
            return r;
        }
        let mut put = |k: &str, v: Value| {
            r.insert(k.into(), v);
        };
        put("name", d.name.clone().into());
        put("state", if d.present { "present" } else { "absent" }.into());
        match change.kind {
            ChangeKind::Delete => {
                put("force", d.force.into());
                put("remove", d.remove.into());
            }
            ChangeKind::Create => {
                put("system", d.system.into());
                put("create_home", d.create_home.into());
            }
            _ if d.present => {
                put("append", d.append.into());
                put("move_home", d.move_home.into());
            }
            _ => {}
        }
        if d.present && d.password.is_some() {
            put("password", "NOT_LOGGING_PASSWORD".into());
        }
        if !o.stdout.is_empty() {
            put("stdout", o.stdout.clone().into());
        }
        if !o.stderr.is_empty() {
            put("stderr", o.stderr.clone().into());
        }
        if let (Some(e), true) = (&o.entry, d.present) {
            put("uid", e.uid.into());
            put("group", e.gid.into());
            put("comment", e.gecos.clone().into());
            put("home", e.home.clone().into());
            put("shell", e.shell.clone().into());
            if let Some(gs) = &d.groups {
                put("groups", gs.join(",").into());
            }
            if let Some(k) = &o.key {
                put("ssh_fingerprint", k.fingerprint.clone().into());
                put("ssh_key_file", k.path.clone().into());
                put(
                    "ssh_public_key",
                    k.public.clone().map(Value::from).unwrap_or(Value::Null),
                );
            }
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

    fn accounts() -> Accounts {
        Accounts {
            users: accounts::parse_passwd(
                "root:x:0:0:root:/root:/bin/bash\nalice:x:1001:1001:Alice:/home/alice:/bin/sh\n",
            ),
            groups: accounts::parse_group(
                "root:x:0:\nalice:x:1001:\nweb:x:1500:alice\nops:x:1600:\nbob:x:1700:\n",
            ),
        }
    }

    fn existing(pw: &str) -> Observed {
        let acc = accounts();
        Observed {
            entry: acc.user("alice").cloned(),
            password: pw.into(),
            expire: -1,
            memberships: acc.memberships("alice"),
            accounts: acc,
            home_exists: true,
            ..Default::default()
        }
    }

    fn missing() -> Observed {
        Observed {
            accounts: accounts(),
            expire: -1,
            ..Default::default()
        }
    }

    #[test]
    fn useradd_argv_in_ansibles_order_and_the_hash_not_in_it() {
        let d = desired(json!({
            "name": "bob", "uid": 1700, "groups": ["web", "ops"], "shell": "/bin/bash",
            "comment": "Bob", "password": "$6$salt$hash", "system": true,
        }));
        let p = plan(&d, &missing());
        assert_eq!(
            p.command.unwrap(),
            [
                "useradd",
                "-u",
                "1700",
                "-N",
                "-G",
                "web,ops",
                "-c",
                "Bob",
                "-s",
                "/bin/bash",
                "-m",
                "-r",
                "bob"
            ]
        );
        assert_eq!(p.password.as_deref(), Some("$6$salt$hash"));
    }

    #[test]
    fn usermod_only_what_differs() {
        let d = desired(json!({"name": "alice", "shell": "/bin/sh", "comment": "Alice"}));
        let p = plan(&d, &existing("!"));
        assert_eq!(p.command, None);
        assert!(User.diff(&d, &existing("!")).is_none());
        let d = desired(
            json!({"name": "alice", "shell": "/bin/zsh", "groups": "ops",
                               "append": true}),
        );
        let p = plan(&d, &existing("!"));
        assert_eq!(
            p.command.unwrap(),
            ["usermod", "-a", "-G", "ops", "-s", "/bin/zsh", "alice"]
        );
    }

    #[test]
    fn groups_without_append_replace_and_with_append_only_add() {
        let d = desired(json!({"name": "alice", "groups": ["web"], "append": true}));
        assert_eq!(plan(&d, &existing("!")).command, None);
        let d = desired(json!({"name": "alice", "groups": ["ops"]}));
        assert_eq!(
            plan(&d, &existing("!")).command.unwrap(),
            ["usermod", "-G", "ops", "alice"]
        );
        let d = desired(json!({"name": "alice", "groups": []}));
        assert_eq!(
            plan(&d, &existing("!")).command.unwrap(),
            ["usermod", "-G", "", "alice"]
        );
    }

    #[test]
    fn password_update_and_lock() {
        let d = desired(json!({"name": "alice", "password": "$6$a$b"}));
        assert_eq!(plan(&d, &existing("$6$a$b")).password, None);
        // A locked account with the same hash stays as it is.
        assert_eq!(plan(&d, &existing("!$6$a$b")).password, None);
        assert_eq!(
            plan(&d, &existing("$6$old$x")).password.as_deref(),
            Some("$6$a$b")
        );
        let d = desired(json!({"name": "alice", "password": "$6$a$b",
                               "update_password": "on_create"}));
        assert_eq!(plan(&d, &existing("$6$old$x")).password, None);
        let d = desired(json!({"name": "alice", "password_lock": true}));
        assert_eq!(
            plan(&d, &existing("$6$a$b")).command.unwrap(),
            ["usermod", "-L", "alice"]
        );
        let d = desired(json!({"name": "alice", "password_lock": true, "password": "$6$n$n"}));
        let p = plan(&d, &existing("$6$a$b"));
        assert_eq!(p.command, None);
        assert_eq!(p.password.as_deref(), Some("!$6$n$n"));
    }

    #[test]
    fn removal_and_absent() {
        let d = desired(json!({"name": "alice", "state": "absent", "remove": true}));
        assert_eq!(
            plan(&d, &existing("!")).command.unwrap(),
            ["userdel", "-r", "alice"]
        );
        assert!(User.diff(&d, &missing()).is_none());
    }

    #[test]
    fn expiry_dates() {
        assert_eq!(date_of_day(0), "1970-01-01");
        assert_eq!(date_of_day(19_723), "2024-01-01");
        let d = desired(json!({"name": "alice", "expires": 1_704_067_200.0}));
        assert_eq!(
            plan(&d, &existing("!")).command.unwrap(),
            ["usermod", "-e", "2024-01-01", "alice"]
        );
        let mut o = existing("!");
        o.expire = 19_723;
        assert_eq!(plan(&d, &o).command, None);
        let d = desired(json!({"name": "alice", "expires": -1}));
        assert_eq!(
            plan(&d, &o).command.unwrap(),
            ["usermod", "-e", "", "alice"]
        );
    }

    #[test]
    fn missing_home_and_keys_are_changes() {
        let d = desired(json!({"name": "alice"}));
        let mut o = existing("!");
        o.home_exists = false;
        assert!(plan(&d, &o).make_home);
        let d = desired(json!({"name": "alice", "generate_ssh_key": true}));
        let mut o = existing("!");
        o.key = Some(KeyObs {
            path: "/home/alice/.ssh/id_rsa".into(),
            dir_exists: true,
            private_exists: true,
            ..Default::default()
        });
        assert!(!plan(&d, &o).keygen);
        o.key.as_mut().unwrap().private_exists = false;
        assert!(plan(&d, &o).keygen);
    }

    #[test]
    fn refused_arguments_name_themselves() {
        let e = Desired::from_args(&Args::new(
            json!({"name": "a", "login_class": "x"})
                .as_object()
                .unwrap()
                .clone(),
        ))
        .unwrap_err();
        assert!(e.msg.contains("'login_class'"), "{}", e.msg);
    }
}
