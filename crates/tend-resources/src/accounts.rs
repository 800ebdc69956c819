//! The local account databases (`/etc/passwd`, `/etc/group`, `/etc/shadow`) as the `user`,
//! `group`, `authorized_key` and `cron` modules read them, and how those modules run the
//! system's tools (`useradd`, `chpasswd`, `crontab` …) through [`crate::process::execute`]:
//! an argument vector, `LC_ALL=C`, and input (a password hash, a crontab) on stdin, never in
//! argv, never through a shell.

use std::path::Path;

use crate::ModuleError;

pub const PASSWD: &str = "/etc/passwd";
pub const GROUP: &str = "/etc/group";
pub const SHADOW: &str = "/etc/shadow";

/// One `/etc/passwd` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub passwd: String,
    pub uid: u32,
    pub gid: u32,
    pub gecos: String,
    pub home: String,
    pub shell: String,
}

/// One `/etc/group` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// One `/etc/shadow` line: the password field and the expiry day (`None` when empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShadowEntry {
    pub name: String,
    pub passwd: String,
    pub expire: Option<i64>,
}

/// Parses passwd text; malformed lines (and NIS `+`/`-` lines) are skipped, as getpwent does.
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.splitn(7, ':').collect();
            if f.len() != 7 || f[0].is_empty() || f[0].starts_with(['+', '-']) {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].into(),
                passwd: f[1].into(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                gecos: f[4].into(),
                home: f[5].into(),
                shell: f[6].into(),
            })
        })
        .collect()
}

pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.splitn(4, ':').collect();
            if f.len() != 4 || f[0].is_empty() || f[0].starts_with(['+', '-']) {
                return None;
            }
            Some(GroupEntry {
                name: f[0].into(),
                gid: f[2].parse().ok()?,
                members: f[3]
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect(),
            })
        })
        .collect()
}

pub fn parse_shadow(text: &str) -> Vec<ShadowEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 2 || f[0].is_empty() {
                return None;
            }
            Some(ShadowEntry {
                name: f[0].into(),
                passwd: f[1].into(),
                expire: f.get(7).and_then(|e| e.parse().ok()),
            })
        })
        .collect()
}

fn read_db(path: &str) -> Result<String, ModuleError> {
    match std::fs::read(path) {
        Ok(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(ModuleError::io("cannot read", Path::new(path), e)),
    }
}

/// The account databases of this host, read once per observation.
#[derive(Clone, Debug, Default)]
pub struct Accounts {
    pub users: Vec<PasswdEntry>,
    pub groups: Vec<GroupEntry>,
}

impl Accounts {
    pub fn read() -> Result<Accounts, ModuleError> {
        Ok(Accounts {
            users: parse_passwd(&read_db(PASSWD)?),
            groups: parse_group(&read_db(GROUP)?),
        })
    }

    /// The first entry of that name, as getpwnam answers.
    pub fn user(&self, name: &str) -> Option<&PasswdEntry> {
        self.users.iter().find(|u| u.name == name)
    }

    pub fn group_by_name(&self, name: &str) -> Option<&GroupEntry> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// A group given as a gid or a name: a number is tried as a gid first, then as a name,
    /// as ansible-core's `group_info` does.
    pub fn group(&self, spec: &str) -> Option<&GroupEntry> {
        spec.parse::<u32>()
            .ok()
            .and_then(|gid| self.groups.iter().find(|g| g.gid == gid))
            .or_else(|| self.group_by_name(spec))
    }

    /// The groups that list `user` as a member, in file order.
    pub fn memberships(&self, user: &str) -> Vec<String> {
        self.groups
            .iter()
            .filter(|g| g.members.iter().any(|m| m == user))
            .map(|g| g.name.clone())
            .collect()
    }
}

/// The shadow entry of `name`, if `/etc/shadow` is readable and has one.
pub fn shadow(name: &str) -> Result<Option<ShadowEntry>, ModuleError> {
    Ok(parse_shadow(&read_db(SHADOW)?)
        .into_iter()
        .find(|s| s.name == name))
}

/// What a finished command said.
pub use crate::process::Ran as Output;

/// Runs `argv` (no shell) with `LC_ALL=C`, `input` on its stdin, and waits for it. A program
/// that cannot be started is an error naming it; a non-zero exit is the caller's to judge.
pub fn run(argv: &[String], input: Option<&[u8]>) -> Result<Output, ModuleError> {
    run_env(argv, input, &[])
}

pub fn run_env(
    argv: &[String],
    input: Option<&[u8]>,
    env: &[(&str, &str)],
) -> Result<Output, ModuleError> {
    let (prog, args) = argv
        .split_first()
        .ok_or_else(|| ModuleError::new("empty command"))?;
    let env: Vec<(&str, &str)> = [("LC_ALL", "C")]
        .into_iter()
        .chain(env.iter().copied())
        .collect();
    crate::process::execute(prog, args, &env, None, input).map_err(|e| {
        ModuleError::new(format!(
            "Failed to find required executable \"{prog}\" ({e}); install the package that \
             provides it on the host"
        ))
    })
}

/// The absolute path of a required tool ([`crate::process::find_bin`]), or ansible-core's
/// failure for a missing one.
pub fn bin_path(name: &str) -> Result<String, ModuleError> {
    crate::process::find_bin(name).ok_or_else(|| {
        ModuleError::new(format!(
            "Failed to find required executable \"{name}\" in paths: {}",
            std::env::var("PATH").unwrap_or_default()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lines_parse_and_bad_ones_are_skipped() {
        let t = "root:x:0:0:root:/root:/bin/bash\n+nis\nbroken:x:zz:0::/:/bin/sh\n\
                 alice:x:1001:1001:Alice A,,,:/home/alice:/bin/zsh\n";
        let u = parse_passwd(t);
        assert_eq!(u.len(), 2);
        assert_eq!(u[1].name, "alice");
        assert_eq!(u[1].uid, 1001);
        assert_eq!(u[1].gecos, "Alice A,,,");
        assert_eq!(u[1].shell, "/bin/zsh");
    }

    #[test]
    fn group_members_and_lookup_by_gid_then_name() {
        let t = "root:x:0:\nweb:x:1500:alice,bob\n2000:x:1600:\n";
        let a = Accounts {
            users: Vec::new(),
            groups: parse_group(t),
        };
        assert_eq!(a.groups[1].members, vec!["alice", "bob"]);
        assert!(a.groups[0].members.is_empty());
        assert_eq!(a.group("1500").unwrap().name, "web");
        // A number that is no gid is tried as a name.
        assert_eq!(a.group("2000").unwrap().gid, 1600);
        assert_eq!(a.memberships("bob"), vec!["web"]);
        assert!(a.group("nope").is_none());
    }

    #[test]
    fn shadow_expiry_is_optional() {
        let s = parse_shadow("a:!:19000:0:99999:7:::\nb:$6$x$y:19000:0:99999:7::19500:\n");
        assert_eq!(s[0].expire, None);
        assert_eq!(s[1].expire, Some(19500));
        assert_eq!(s[1].passwd, "$6$x$y");
    }

    #[test]
    fn commands_get_stdin_and_report_status() {
        let o = run(
            &crate::process::argv(["sh", "-c", "cat; echo err >&2; exit 3"]),
            Some(b"in"),
        )
        .unwrap();
        assert_eq!(o.rc, 3);
        assert_eq!(o.stdout, "in");
        assert_eq!(o.stderr, "err\n");
        let e = run(&crate::process::argv(["/nonexistent/tool"]), None).unwrap_err();
        assert!(e.msg.contains("/nonexistent/tool"), "{}", e.msg);
    }
}
