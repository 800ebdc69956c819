//! `authorized_key` (`ansible.posix.authorized_key`): SSH public keys in a user's
//! `authorized_keys`, with ansible.posix's parsing, ordering and output format (including the
//! blank after a key without a comment), `exclusive`, `key_options`, `comment`, and its modes:
//! `~/.ssh` 0700 and the file 0600, owned by the user.

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use regex::Regex;
use tend_proto::{Value, Vars};

use crate::accounts::{Accounts, PasswdEntry};
use crate::fsutil::{self, Attrs};
use crate::{Args, Change, ChangeKind, ModuleCtx, ModuleError, Resource};

pub struct AuthorizedKey;

pub const PARAMS: &[&str] = &[
    "user",
    "key",
    "path",
    "manage_dir",
    "state",
    "key_options",
    "exclusive",
    "comment",
    "validate_certs",
    "follow",
];

const KEY_TYPES: &[&str] = &[
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "webauthn-sk-ecdsa-sha2-nistp256@openssh.com",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com",
    "ecdsa-sha2-nistp521",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com",
    "sk-ssh-ed25519@openssh.com",
    "sk-ssh-ed25519-cert-v01@openssh.com",
    "ssh-ed25519",
    "ssh-ed25519-cert-v01@openssh.com",
    "ssh-dss",
    "ssh-rsa",
    "ssh-xmss@openssh.com",
    "ssh-xmss-cert-v01@openssh.com",
    "rsa-sha2-256",
    "rsa-sha2-512",
    "ssh-rsa-cert-v01@openssh.com",
    "rsa-sha2-256-cert-v01@openssh.com",
    "rsa-sha2-512-cert-v01@openssh.com",
    "ssh-dss-cert-v01@openssh.com",
];

/// Key options in order, a name possibly repeated; `None` for a flag (`no-pty`).
pub type Options = Vec<(String, Option<String>)>;

/// One line of an authorized_keys file as ansible.posix sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyLine {
    /// The key material, or the whole line for one kept as it is (comment, blank, invalid).
    pub key: String,
    /// The key type; `None` for a line kept as it is.
    pub kind: Option<String>,
    pub options: Options,
    pub comment: String,
    pub rank: usize,
}

impl KeyLine {
    fn raw(line: &str, rank: usize) -> KeyLine {
        KeyLine {
            key: line.to_string(),
            kind: None,
            options: Vec::new(),
            comment: String::new(),
            rank,
        }
    }

    /// What "the same key" compares: everything but the rank; options as a map of lists.
    fn same_as(&self, other: &KeyLine) -> bool {
        fn map(o: &Options) -> std::collections::BTreeMap<&str, Vec<&Option<String>>> {
            let mut m = std::collections::BTreeMap::new();
            for (k, v) in o {
                m.entry(k.as_str()).or_insert_with(Vec::new).push(v);
            }
            m
        }
        self.key == other.key
            && self.kind == other.kind
            && map(&self.options) == map(&other.options)
            && self.comment == other.comment
    }

    fn render(&self) -> String {
        let Some(kind) = &self.kind else {
            return self.key.clone();
        };
        let mut opts = String::new();
        if !self.options.is_empty() {
            let parts: Vec<String> = self
                .options
                .iter()
                .map(|(k, v)| match v {
                    None => k.clone(),
                    Some(v) => format!("{k}={v}"),
                })
                .collect();
            opts = parts.join(",") + " ";
        }
        format!("{opts}{kind} {} {}\n", self.key, self.comment)
    }
}

/// ansible.posix's option splitting: commas outside quotes separate options.
pub fn parse_options(s: &str) -> Options {
    static RE: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
        Regex::new(r#"((?:[^,"']|"[^"]*"|'[^']*')+)"#).expect("static regex")
    });
    // Python's re.split with a group: non-matches and matches alternate; the first and last
    // non-matches are dropped.
    let mut pieces = Vec::new();
    let mut last = 0;
    for m in RE.find_iter(s) {
        pieces.push(&s[last..m.start()]);
        pieces.push(m.as_str());
        last = m.end();
    }
    pieces.push(&s[last..]);
    let mut out = Options::new();
    if pieces.len() < 2 {
        return out;
    }
    for part in &pieces[1..pieces.len() - 1] {
        if let Some((k, v)) = part.split_once('=') {
            out.push((k.to_string(), Some(v.to_string())));
        } else if *part != "," {
            out.push((part.to_string(), None));
        }
    }
    out
}

/// Parses one line. `None` for a line with no known key type (kept as it is by the caller).
pub fn parse_key(raw: &str, rank: usize) -> Option<KeyLine> {
    let raw = raw.replace(r"\#", "#");
    let parts: Vec<&str> = raw
        .split([' ', '\t', '\r', '\n'])
        .filter(|p| !p.is_empty())
        .collect();
    if parts.first() == Some(&"#") {
        return Some(KeyLine::raw(&raw, rank));
    }
    let ti = parts.iter().position(|p| KEY_TYPES.contains(p))?;
    let key = parts.get(ti + 1)?;
    let options = if ti > 0 {
        parse_options(&parts[..ti].join(" "))
    } else {
        Options::new()
    };
    Some(KeyLine {
        key: key.to_string(),
        kind: Some(parts[ti].to_string()),
        options,
        comment: parts[ti + 2..].join(" "),
        rank,
    })
}

/// A Python dict in insertion order: assigning an existing id keeps its place.
#[derive(Default)]
struct Keys(Vec<(String, KeyLine)>);

impl Keys {
    fn get(&self, id: &str) -> Option<&KeyLine> {
        self.0.iter().find(|(k, _)| k == id).map(|(_, v)| v)
    }
    fn set(&mut self, id: String, v: KeyLine) {
        match self.0.iter_mut().find(|(k, _)| *k == id) {
            Some(slot) => slot.1 = v,
            None => self.0.push((id, v)),
        }
    }
    fn remove(&mut self, id: &str) {
        self.0.retain(|(k, _)| k != id);
    }
}

fn parse_file(content: &str) -> Keys {
    let mut keys = Keys::default();
    for (rank, line) in content.split_inclusive('\n').enumerate() {
        match parse_key(line, rank) {
            Some(k) => {
                let id = k.key.clone();
                keys.set(id, k);
            }
            None => keys.set(line.to_string(), KeyLine::raw(line, rank)),
        }
    }
    keys
}

/// The declared keys, as the module compares them.
#[derive(Clone, Debug)]
pub struct Desired {
    pub user: String,
    /// `key` as given (for the result).
    pub key_arg: String,
    /// The key text (from `file://…` when given so).
    pub key_text: String,
    pub path: Option<String>,
    pub manage_dir: bool,
    pub present: bool,
    pub key_options: Option<String>,
    pub exclusive: bool,
    pub comment: Option<String>,
    pub validate_certs: bool,
    pub follow: bool,
    pub check: bool,
}

/// Pure: the new file content, or `None` when nothing must be written; or the failure.
pub fn enforce(d: &Desired, existing: &str) -> Result<Option<String>, String> {
    let new_keys: Vec<&str> = d
        .key_text
        .lines()
        .filter(|s| !s.is_empty() && !s.starts_with('#'))
        .collect();
    let mut keys = parse_file(existing);
    let max_rank = keys.0.len();
    let mut keep = Vec::new();
    let mut write = false;
    for (i, line) in new_keys.iter().enumerate() {
        let mut k = parse_key(line, i).ok_or_else(|| format!("invalid key specified: {line}"))?;
        if let Some(o) = &d.key_options {
            k.options = parse_options(o);
        }
        if let Some(c) = &d.comment {
            k.comment = c.clone();
        }
        let (matched, mismatched) = match keys.get(&k.key) {
            Some(e) if d.present && !k.same_as(e) => (false, true),
            Some(_) => (true, false),
            None => (false, false),
        };
        if d.present {
            keep.push(k.key.clone());
            if mismatched {
                keys.remove(&k.key);
                write = true;
            }
            if !matched {
                k.rank += max_rank;
                keys.set(k.key.clone(), k);
                write = true;
            }
        } else if matched {
            keys.remove(&k.key);
            write = true;
        }
    }
    if d.present && d.exclusive {
        let before = keys.0.len();
        keys.0.retain(|(id, _)| keep.contains(id));
        write |= keys.0.len() != before;
    }
    if !write {
        return Ok(None);
    }
    let mut lines: Vec<&KeyLine> = keys.0.iter().map(|(_, v)| v).collect();
    lines.sort_by_key(|k| k.rank);
    Ok(Some(lines.iter().map(|k| k.render()).collect()))
}

#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// The authorized_keys path (`keyfile` in the result).
    pub keyfile: String,
    pub user: Option<PasswdEntry>,
    pub content: String,
}

fn realpath(p: &str) -> String {
    std::fs::canonicalize(p)
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_else(|_| p.to_string())
}

impl Desired {
    pub fn from_args(args: &Args, check: bool) -> Result<Desired, ModuleError> {
        let user = args.req_str("user")?;
        let key_arg = args.req_str("key")?;
        let key_text = if key_arg.starts_with("http") {
            return Err(ModuleError::new(format!(
                "tend's authorized_key does not fetch keys from URLs ({key_arg}); fetch the \
                 keys with get_url or a lookup and pass their text as `key`"
            )));
        } else if key_arg.starts_with("file") {
            let path = key_arg
                .strip_prefix("file://")
                .or_else(|| key_arg.strip_prefix("file:"))
                .unwrap_or("");
            let p = Path::new(path);
            if !p.exists() {
                return Err(ModuleError::new(format!(
                    "Path to a key file not found: {path}"
                )));
            }
            if !p.is_file() {
                return Err(ModuleError::new(format!(
                    "Path to a key is a directory and must be a file: {path}"
                )));
            }
            std::fs::read_to_string(p)
                .map_err(|e| ModuleError::new(format!("Failed to read key file {path} : {e}")))?
        } else {
            key_arg.clone()
        };
        let state = args
            .choice("state", &["absent", "present"])?
            .unwrap_or_else(|| "present".into());
        Ok(Desired {
            user,
            key_arg,
            key_text,
            path: args
                .str("path")?
                .map(|p| fsutil::path_arg(&p).to_string_lossy().into_owned()),
            manage_dir: args.bool_or("manage_dir", true)?,
            present: state == "present",
            key_options: args.str("key_options")?,
            exclusive: args.bool_or("exclusive", false)?,
            comment: args.str("comment")?,
            validate_certs: args.bool_or("validate_certs", true)?,
            follow: args.bool_or("follow", false)?,
            check,
        })
    }
}

fn lookup_failed(user: &str) -> ModuleError {
    ModuleError::new(format!(
        "Failed to lookup user {user}: \"getpwnam(): name not found: '{user}'\""
    ))
}

/// Creates `~/.ssh` and the file as ansible.posix does before writing: modes 0700 and 0600,
/// owned by the user.
fn prepare(d: &Desired, keyfile: &Path, u: &PasswdEntry) -> Result<(), ModuleError> {
    let chown = |p: &Path| {
        if d.follow {
            std::os::unix::fs::chown(p, Some(u.uid), Some(u.gid))
        } else {
            std::os::unix::fs::lchown(p, Some(u.uid), Some(u.gid))
        }
    };
    let sshdir = match &d.path {
        Some(p) => Path::new(p)
            .parent()
            .unwrap_or(Path::new("/"))
            .to_path_buf(),
        None => Path::new(&u.home).join(".ssh"),
    };
    if d.manage_dir {
        if !sshdir.exists() {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&sshdir)
                .map_err(|e| {
                    ModuleError::new(format!(
                        "Failed to create directory {} : {e}",
                        sshdir.display()
                    ))
                })?;
        }
        chown(&sshdir).map_err(|e| ModuleError::io("chown failed:", &sshdir, e))?;
        std::fs::set_permissions(&sshdir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| ModuleError::io("chmod failed:", &sshdir, e))?;
    }
    if !keyfile.exists() {
        if let Some(parent) = keyfile.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| ModuleError::io("cannot create", parent, e))?;
        }
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true).mode(0o600);
        if !d.follow {
            o.custom_flags(libc::O_NOFOLLOW);
        }
        o.open(keyfile).map_err(|e| {
            ModuleError::new(format!("File open failed {} : {e}", keyfile.display()))
        })?;
    }
    let _ = chown(keyfile);
    let _ = std::fs::set_permissions(keyfile, std::fs::Permissions::from_mode(0o600));
    Ok(())
}

use std::os::unix::fs::PermissionsExt;

impl Resource for AuthorizedKey {
    type Desired = Desired;
    type Observed = Observed;

    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }

    fn desired(&self, args: &Args, ctx: &ModuleCtx) -> Result<Desired, ModuleError> {
        Desired::from_args(args, ctx.check)
    }

    fn observe(&self, d: &Desired) -> Result<Observed, ModuleError> {
        let user = Accounts::read()?.user(&d.user).cloned();
        let keyfile = match (&d.path, &user) {
            (Some(p), _) if d.check => p.clone(),
            (_, None) if d.check => {
                return Err(ModuleError::new(
                    "Either user must exist or you must provide full path to key file in \
                     check mode",
                ))
            }
            (_, None) => return Err(lookup_failed(&d.user)),
            (Some(p), Some(_)) => p.clone(),
            (None, Some(u)) => Path::new(&u.home)
                .join(".ssh/authorized_keys")
                .to_string_lossy()
                .into_owned(),
        };
        let keyfile = if d.follow {
            realpath(&keyfile)
        } else {
            keyfile
        };
        let content = match std::fs::read(&keyfile) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(ModuleError::new(format!(
                    "Permission denied on file or path for authorized keys file: {keyfile}"
                )))
            }
            Err(e) => return Err(ModuleError::io("cannot read", Path::new(&keyfile), e)),
        };
        // A bad key fails the task in check mode too.
        enforce(d, &content).map_err(ModuleError::new)?;
        Ok(Observed {
            keyfile,
            user,
            content,
        })
    }

    fn diff(&self, d: &Desired, o: &Observed) -> Change {
        match enforce(d, &o.content) {
            Ok(Some(new)) => {
                let mut c = Change::new(ChangeKind::Update, o.keyfile.clone());
                c.content = Some((o.content.clone(), new));
                c.headers = Some((o.keyfile.clone(), o.keyfile.clone()));
                c
            }
            _ => Change::none(o.keyfile.clone()),
        }
    }

    fn apply(
        &self,
        d: &Desired,
        o: &Observed,
        _change: &Change,
        _ctx: &ModuleCtx,
    ) -> Result<Observed, ModuleError> {
        let u = o.user.clone().ok_or_else(|| lookup_failed(&d.user))?;
        let new = enforce(d, &o.content)
            .map_err(ModuleError::new)?
            .unwrap_or_default();
        let keyfile = PathBuf::from(&o.keyfile);
        prepare(d, &keyfile, &u)?;
        fsutil::atomic_write(&keyfile, new.as_bytes(), &Attrs::default(), None, None)?;
        let _ = std::os::unix::fs::chown(&keyfile, Some(u.uid), Some(u.gid));
        let _ = std::fs::set_permissions(&keyfile, std::fs::Permissions::from_mode(0o600));
        self.observe(d)
    }

    fn result(&self, d: &Desired, o: &Observed, _change: &Change) -> Vars {
        let opt = |v: &Option<String>| v.clone().map(Value::from).unwrap_or(Value::Null);
        let mut r = Vars::new();
        r.insert("user".into(), d.user.clone().into());
        r.insert("key".into(), d.key_arg.clone().into());
        r.insert("path".into(), opt(&d.path));
        r.insert("manage_dir".into(), d.manage_dir.into());
        r.insert(
            "state".into(),
            if d.present { "present" } else { "absent" }.into(),
        );
        r.insert("key_options".into(), opt(&d.key_options));
        r.insert("exclusive".into(), d.exclusive.into());
        r.insert("comment".into(), opt(&d.comment));
        r.insert("validate_certs".into(), d.validate_certs.into());
        r.insert("follow".into(), d.follow.into());
        r.insert("keyfile".into(), o.keyfile.clone().into());
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(key: &str, present: bool, exclusive: bool) -> Desired {
        Desired {
            user: "u".into(),
            key_arg: key.into(),
            key_text: key.into(),
            path: None,
            manage_dir: true,
            present,
            key_options: None,
            exclusive,
            comment: None,
            validate_certs: true,
            follow: false,
            check: false,
        }
    }

    const A: &str = "ssh-ed25519 AAAAC3Nza-a alice@x";
    const B: &str = "ssh-rsa AAAAB3Nza-b";

    #[test]
    fn keys_are_appended_and_a_key_without_comment_keeps_the_blank() {
        let out = enforce(&d(A, true, false), "").unwrap().unwrap();
        assert_eq!(out, format!("{A}\n"));
        let out = enforce(&d(B, true, false), &out).unwrap().unwrap();
        assert_eq!(out, format!("{A}\n{B} \n"));
        // Present again: nothing to write.
        assert_eq!(enforce(&d(B, true, false), &out).unwrap(), None);
        assert_eq!(enforce(&d(A, true, false), &out).unwrap(), None);
    }

    #[test]
    fn options_and_comments_make_a_key_different() {
        let mut want = d(A, true, false);
        want.key_options = Some(r#"no-pty,from="10.0.0.1,10.0.0.2""#.into());
        let out = enforce(&want, &format!("# keep me\n{A}\n"))
            .unwrap()
            .unwrap();
        assert_eq!(
            out,
            format!("# keep me\nno-pty,from=\"10.0.0.1,10.0.0.2\" {A}\n")
        );
        assert_eq!(enforce(&want, &out).unwrap(), None);
        let mut renamed = d(A, true, false);
        renamed.comment = Some("new comment".into());
        assert_eq!(
            enforce(&renamed, &format!("{A}\n")).unwrap().unwrap(),
            "ssh-ed25519 AAAAC3Nza-a new comment\n"
        );
    }

    #[test]
    fn exclusive_removes_everything_else_comments_too() {
        let existing = format!("# header\n{B}\n{A}\n");
        let out = enforce(&d(A, true, true), &existing).unwrap().unwrap();
        assert_eq!(out, format!("{A}\n"));
        assert_eq!(enforce(&d(A, true, true), &out).unwrap(), None);
    }

    #[test]
    fn absent_removes_by_key_material() {
        let existing = format!("{A}\n{B}\n");
        let out = enforce(&d("ssh-ed25519 AAAAC3Nza-a other", false, false), &existing)
            .unwrap()
            .unwrap();
        assert_eq!(out, format!("{B} \n"));
        assert_eq!(enforce(&d(A, false, false), &out).unwrap(), None);
    }

    #[test]
    fn several_keys_in_one_string_and_bad_keys() {
        let out = enforce(&d(&format!("{A}\n\n# c\n{B}"), true, false), "")
            .unwrap()
            .unwrap();
        assert_eq!(out, format!("{A}\n{B} \n"));
        assert_eq!(
            enforce(&d("not a key", true, false), "").unwrap_err(),
            "invalid key specified: not a key"
        );
    }

    #[test]
    fn option_splitting() {
        assert_eq!(
            parse_options(r#"a,b="x,y",c"#),
            vec![
                ("a".into(), None),
                ("b".into(), Some("\"x,y\"".into())),
                ("c".into(), None)
            ]
        );
        assert!(parse_options("").is_empty());
    }
}
