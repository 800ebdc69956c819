//! `git`: a checkout of a repository at a version, as ansible-core's `git` module keeps it.
//!
//! Like ansible-core, it runs the host's `git` (argument vectors, the C locale,
//! `GIT_TERMINAL_PROMPT=0` and ssh's `BatchMode=yes` so nothing ever waits for input) and
//! follows the same steps: clone when `dest` has no repository, otherwise check for local
//! modifications, fix the remote's URL, fetch, and switch to `version` (a branch, a tag or a
//! commit). Check mode asks the remote (`git ls-remote`) what `version` is and changes
//! nothing. Result fields: `before`, `after`, `remote_url_changed`, and `msg` when local
//! modifications were reset.
//!
//! An action, not a resource: what the remote has is only known by fetching, which changes
//! the host, so there is no pure observation to diff against.

use std::path::{Path, PathBuf};

use tend_proto::{Value, Vars};

use crate::process::{Output, Runner};
use crate::{fsutil, Action, Args, ModuleCtx, ModuleError, ModuleOutput, ModuleResult};

pub struct Git;

pub const PARAMS: &[&str] = &[
    "repo",
    "name",
    "dest",
    "version",
    "remote",
    "force",
    "depth",
    "clone",
    "update",
    "accept_hostkey",
    "accept_newhostkey",
    "key_file",
    "ssh_opts",
    "executable",
    "recursive",
    "single_branch",
    "umask",
    "track_submodules",
    "bare",
    "refspec",
    "reference",
    "verify_commit",
    "gpg_allowlist",
    "gpg_whitelist",
    "archive",
    "archive_prefix",
    "separate_git_dir",
];

/// Arguments ansible-core has that tend refuses unless they keep their default.
const REFUSED: &[(&str, &str)] = &[
    ("bare", "bare repositories"),
    ("refspec", "refspec"),
    ("reference", "reference repositories"),
    ("verify_commit", "GPG verification (verify_commit)"),
    ("gpg_allowlist", "GPG verification (gpg_allowlist)"),
    ("gpg_whitelist", "GPG verification (gpg_whitelist)"),
    ("archive", "archives (archive)"),
    ("archive_prefix", "archives (archive_prefix)"),
    ("separate_git_dir", "separate_git_dir"),
    ("track_submodules", "track_submodules"),
];

struct Params {
    repo: String,
    dest: Option<PathBuf>,
    version: String,
    remote: String,
    force: bool,
    depth: Option<i64>,
    clone: bool,
    update: bool,
    recursive: bool,
    single_branch: bool,
}

/// One call's `git`: the program, its environment, the checkout.
struct Git_<'a> {
    git: String,
    run: Runner,
    p: &'a Params,
    warnings: Vec<String>,
}

impl Action for Git {
    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }

    fn run(&self, args: &Args, ctx: &ModuleCtx) -> ModuleResult {
        let p = params(args)?;
        let git = args.str("executable")?.unwrap_or_else(|| "git".into());
        let mut ssh_opts = args.str("ssh_opts")?.unwrap_or_default();
        let accept = args.bool_or("accept_hostkey", false)?;
        let accept_new = args.bool_or("accept_newhostkey", false)?;
        if accept && accept_new {
            return Err(ModuleError::new(
                "parameters are mutually exclusive: accept_hostkey|accept_newhostkey",
            ));
        }
        for (on, opt) in [
            (accept, "StrictHostKeyChecking=no"),
            (accept_new, "StrictHostKeyChecking=accept-new"),
        ] {
            if on && !ssh_opts.contains("StrictHostKeyChecking=") {
                ssh_opts.push_str(&format!(" -o {opt}"));
            }
        }
        if !ssh_opts.contains("BatchMode=yes") {
            ssh_opts.push_str(" -o BatchMode=yes");
        }
        if let Some(key) = args.str("key_file")? {
            let key = fsutil::path_arg(&key).display().to_string();
            // GIT_SSH_COMMAND is run by a shell: the key's path is quoted.
            ssh_opts.push_str(&format!(" -i {} -o IdentitiesOnly=yes", sh_quote(&key)));
        }
        let ssh = std::env::var("GIT_SSH")
            .or_else(|_| std::env::var("GIT_SSH_COMMAND"))
            .unwrap_or_else(|_| "ssh".into());
        if args.has("umask") {
            return Err(ModuleError::new(
                "tend's git module does not support umask yet; remove it (files get the \
                 agent's umask)",
            ));
        }
        let run = Runner::new(ctx)
            .with_env("GIT_TERMINAL_PROMPT", "0")
            .with_env("GIT_SSH_COMMAND", &format!("{ssh}{ssh_opts}"));
        let mut g = Git_ {
            git,
            run,
            p: &p,
            warnings: Vec::new(),
        };
        let out = g.main(ctx);
        match out {
            Ok(mut o) => {
                if !g.warnings.is_empty() {
                    o.fields.insert(
                        "warnings".into(),
                        Value::from(std::mem::take(&mut g.warnings)),
                    );
                }
                Ok(o)
            }
            Err(e) => Err(e),
        }
    }
}

fn params(args: &Args) -> Result<Params, ModuleError> {
    for (k, what) in REFUSED {
        let set = match args.raw(k) {
            None => false,
            Some(Value::Array(a)) => !a.is_empty(),
            Some(Value::String(s))
                if crate::args::to_bool(k, &Value::String(s.clone())).is_ok() =>
            {
                args.bool_or(k, false)?
            }
            Some(Value::Bool(b)) => *b,
            Some(_) => true,
        };
        if set {
            return Err(ModuleError::new(format!(
                "tend's git module does not support {what} yet; remove '{k}' or run this task \
                 with ansible"
            )));
        }
    }
    let repo = args
        .str_any(&["repo", "name"])?
        .ok_or_else(|| ModuleError::new("missing required arguments: repo"))?;
    // Depth and friends need a URL: a plain path becomes file://, as in ansible-core.
    let expanded = fsutil::expand_user(&repo);
    let repo = if expanded.starts_with('/') {
        format!("file://{expanded}")
    } else {
        repo
    };
    let dest = args.str("dest")?.filter(|d| !d.is_empty()).map(|d| {
        let p = fsutil::path_arg(&d);
        let abs = if p.is_absolute() {
            p
        } else {
            std::env::current_dir().unwrap_or_default().join(p)
        };
        tend_lang::ctlfs::normalize(&abs).unwrap_or(abs)
    });
    let depth = args.int("depth")?.filter(|d| *d != 0);
    let p = Params {
        repo,
        dest,
        version: args.str("version")?.unwrap_or_else(|| "HEAD".into()),
        remote: args.str("remote")?.unwrap_or_else(|| "origin".into()),
        force: args.bool_or("force", false)?,
        depth,
        clone: args.bool_or("clone", true)?,
        update: args.bool_or("update", true)?,
        recursive: args.bool_or("recursive", true)?,
        single_branch: args.bool_or("single_branch", false)?,
    };
    if p.dest.is_none() && p.clone {
        return Err(ModuleError::new(
            "the destination directory must be specified unless clone=no",
        ));
    }
    Ok(p)
}

/// The repository directory of a checkout (`dest/.git`, or where a `.git` file points).
fn repo_path(dest: &Path) -> Result<PathBuf, ModuleError> {
    let dotgit = dest.join(".git");
    if dotgit.is_file() {
        let bad = || {
            ModuleError::new(
                "Current repo does not have a valid reference to a separate Git dir or it \
                 refers to the invalid path",
            )
        };
        let text = std::fs::read_to_string(&dotgit).map_err(|_| bad())?;
        let gitdir = text.trim_end().strip_prefix("gitdir: ").ok_or_else(bad)?;
        let p = dest.join(gitdir);
        if !p.is_dir() {
            return Err(bad());
        }
        return Ok(p);
    }
    Ok(dotgit)
}

/// The branch a HEAD-like file names (`ref: refs/heads/main` → `main`), as ansible-core's
/// `head_splitter` reads it.
pub fn head_branch_of(line: &str, remote: &str) -> String {
    let line = line.replacen(&format!("refs/remotes/{remote}"), "", 1);
    let last = line.split(' ').next_back().unwrap_or("");
    let last = last.splitn(3, '/').last().unwrap_or("");
    last.trim_end_matches('\n').trim_end().to_string()
}

/// A word for the shell that runs `GIT_SSH_COMMAND`.
fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:@,".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\"'\"'"))
}

/// ansible-core's `unfrackgitpath`: a URL or path with `~` and `$VARS` expanded, made absolute
/// and normalised (so `file:///a//b` and `file:///a/b` are the same remote).
fn unfrack(s: &str) -> String {
    let e = fsutil::path_arg(s);
    let abs = if e.is_absolute() {
        e
    } else {
        std::env::current_dir().unwrap_or_default().join(e)
    };
    let canon = std::fs::canonicalize(&abs).unwrap_or(abs);
    tend_lang::ctlfs::normalize(&canon)
        .unwrap_or(canon)
        .display()
        .to_string()
}

impl Git_<'_> {
    fn git<S: AsRef<str>>(&self, args: &[S], cwd: Option<&Path>) -> Result<Output, ModuleError> {
        let mut argv = vec![self.git.clone()];
        argv.extend(args.iter().map(|a| a.as_ref().to_string()));
        self.run.run(&argv, cwd)
    }

    fn git_ok<S: AsRef<str>>(&self, args: &[S], cwd: Option<&Path>) -> Result<Output, ModuleError> {
        let o = self.git(args, cwd)?;
        if o.ok() {
            Ok(o)
        } else {
            Err(o.failure())
        }
    }

    fn dest(&self) -> &Path {
        self.p.dest.as_deref().unwrap_or(Path::new("."))
    }

    /// `git rev-parse HEAD` in the checkout.
    fn version_of(&self, dest: &Path) -> Result<String, ModuleError> {
        Ok(self
            .git(&["rev-parse", "HEAD"], Some(dest))?
            .stdout
            .trim_end_matches('\n')
            .to_string())
    }

    fn ls_remote(&self, remote: &str, kind: &str, pattern: &str) -> Result<Output, ModuleError> {
        let cwd = self.p.dest.as_deref().filter(|d| d.is_dir());
        self.git_ok(&["ls-remote", remote, kind, pattern], cwd)
    }

    fn is_remote_branch(&self, remote: &str, version: &str) -> Result<bool, ModuleError> {
        let o = self.ls_remote(remote, "-h", &format!("refs/heads/{version}"))?;
        Ok(o.stdout.contains(version))
    }

    fn is_remote_tag(&self, remote: &str, version: &str) -> Result<bool, ModuleError> {
        let o = self.ls_remote(remote, "-t", &format!("refs/tags/{version}"))?;
        Ok(o.stdout.contains(version))
    }

    fn branches(&self, dest: &Path) -> Result<Vec<String>, ModuleError> {
        let o = self.git(&["branch", "--no-color", "-a"], Some(dest))?;
        if !o.ok() {
            return Err(o.failure_with(format!(
                "Could not determine branch data - received {}",
                o.stdout
            )));
        }
        Ok(o.stdout
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect())
    }

    fn is_local_branch(&self, dest: &Path, branch: &str) -> Result<bool, ModuleError> {
        let b = self.branches(dest)?;
        Ok(b.iter().any(|l| l == branch || *l == format!("* {branch}")))
    }

    /// The branch HEAD is on, or, when detached, the remote's HEAD branch.
    fn head_branch(&self, dest: &Path) -> Result<String, ModuleError> {
        let repo = repo_path(dest)?;
        let detached = self.branches(dest)?.iter().any(|b| {
            b.starts_with("* ")
                && (b.contains("no branch")
                    || b.contains("detached from")
                    || b.contains("detached at"))
        });
        let file = if detached {
            repo.join("refs/remotes").join(&self.p.remote).join("HEAD")
        } else {
            repo.join("HEAD")
        };
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let line = text.lines().next().unwrap_or("");
        Ok(head_branch_of(line, &self.p.remote))
    }

    /// What `version` is on `remote` (a URL when cloning, the remote's name otherwise).
    fn remote_head(&self, remote: &str) -> Result<String, ModuleError> {
        let version = &self.p.version;
        let cloning = remote == self.p.repo;
        let (kind, pattern, tag) = if version == "HEAD" {
            if cloning {
                ("-h", "HEAD".to_string(), false)
            } else {
                let b = self.head_branch(self.dest())?;
                ("-h", format!("refs/heads/{b}"), false)
            }
        } else if self.is_remote_branch(remote, version)? {
            ("-h", format!("refs/heads/{version}"), false)
        } else if self.is_remote_tag(remote, version)? {
            ("-t", format!("refs/tags/{version}*"), true)
        } else {
            return Ok(version.clone());
        };
        let o = self.ls_remote(remote, kind, &pattern)?;
        if o.stdout.is_empty() {
            return Err(
                o.failure_with(format!("Could not determine remote revision for {version}"))
            );
        }
        let mut line = o.stdout.as_str();
        if tag {
            for l in o.stdout.split('\n') {
                if l.ends_with(&format!("{version}^{{}}")) {
                    line = l;
                    break;
                } else if l.ends_with(version.as_str()) {
                    line = l;
                }
            }
        }
        Ok(line.split_whitespace().next().unwrap_or("").to_string())
    }

    fn remote_url(&self, dest: &Path) -> Result<Option<String>, ModuleError> {
        let o = self.git(&["ls-remote", "--get-url", &self.p.remote], Some(dest))?;
        Ok(o.ok().then(|| o.stdout.trim_end_matches('\n').to_string()))
    }

    /// Points the remote at `repo`; whether it had another URL.
    fn set_remote_url(&self, dest: &Path) -> Result<bool, ModuleError> {
        let url = self.remote_url(dest)?;
        if let Some(u) = &url {
            if *u == self.p.repo || unfrack(u) == unfrack(&self.p.repo) {
                return Ok(false);
            }
        }
        let o = self.git(
            &["remote", "set-url", &self.p.remote, &self.p.repo],
            Some(dest),
        )?;
        if !o.ok() {
            return Err(o.failure_with(format!(
                "Failed to set a new url {} for {}: {} {}",
                self.p.repo, self.p.remote, o.stdout, o.stderr
            )));
        }
        Ok(url.is_some())
    }

    fn has_local_mods(&self, dest: &Path) -> Result<bool, ModuleError> {
        let o = self.git(&["status", "--porcelain"], Some(dest))?;
        Ok(o.stdout.lines().any(|l| !l.starts_with("??")))
    }

    fn clone(&mut self, dest: &Path) -> Result<(), ModuleError> {
        let p = self.p;
        if let Some(parent) = dest.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let mut argv: Vec<String> = vec!["clone".into(), "--origin".into(), p.remote.clone()];
        let branch_or_tag = self.is_remote_branch(&p.repo, &p.version)?
            || self.is_remote_tag(&p.repo, &p.version)?;
        if let Some(depth) = p.depth {
            if p.version == "HEAD" {
                argv.extend(["--depth".into(), depth.to_string()]);
            } else if branch_or_tag {
                argv.extend([
                    "--depth".into(),
                    depth.to_string(),
                    "--branch".into(),
                    p.version.clone(),
                ]);
            } else {
                self.warnings.push(
                    "Ignoring depth argument. Shallow clones are only available for HEAD, \
                     branches, tags or in combination with refspec."
                        .into(),
                );
            }
        }
        if p.single_branch {
            argv.push("--single-branch".into());
            if branch_or_tag {
                argv.extend(["--branch".into(), p.version.clone()]);
            }
        }
        argv.push(p.repo.clone());
        argv.push(dest.display().to_string());
        self.git_ok(&argv, dest.parent().filter(|d| d.is_dir()))?;
        Ok(())
    }

    fn fetch(&self, dest: &Path) -> Result<(), ModuleError> {
        let p = self.p;
        self.set_remote_url(dest)?;
        let mut argv: Vec<String> = vec!["fetch".into()];
        let mut refspecs: Vec<String> = Vec::new();
        if let Some(depth) = p.depth {
            let current = self.head_branch(dest)?;
            if p.version == "HEAD" {
                refspecs.push(current.clone());
            } else if self.is_remote_branch(&p.repo, &p.version)? {
                if current != p.version {
                    refspecs.push(format!("+refs/heads/{0}:refs/heads/{0}", p.version));
                }
                refspecs.push(format!(
                    "+refs/heads/{0}:refs/remotes/{1}/{0}",
                    p.version, p.remote
                ));
            } else if self.is_remote_tag(&p.repo, &p.version)? {
                refspecs.push(format!("+refs/tags/{0}:refs/tags/{0}", p.version));
            }
            if !refspecs.is_empty() {
                argv.extend(["--depth".into(), depth.to_string()]);
            }
        }
        if p.depth.is_none() || refspecs.is_empty() {
            argv.push("--tags".into());
        }
        if p.force {
            argv.push("--force".into());
        }
        argv.push(p.remote.clone());
        argv.extend(refspecs);
        let o = self.git(&argv, Some(dest))?;
        if !o.ok() {
            return Err(o.failure_with(format!(
                "Failed to download remote objects and refs: {} {}",
                o.stdout, o.stderr
            )));
        }
        Ok(())
    }

    fn switch_version(&self, dest: &Path) -> Result<(), ModuleError> {
        let p = self.p;
        let (remote, version) = (&p.remote, &p.version);
        let checkout_failed =
            |o: &Output, what: &str| o.failure_with(format!("Failed to checkout {what}"));
        let last: Vec<String> = if version == "HEAD" {
            let branch = self.head_branch(dest)?;
            let o = self.git(&["checkout", "--force", &branch], Some(dest))?;
            if !o.ok() {
                return Err(checkout_failed(&o, &format!("branch {branch}")));
            }
            vec![
                "reset".into(),
                "--hard".into(),
                format!("{remote}/{branch}"),
                "--".into(),
            ]
        } else if self.is_remote_branch(remote, version)? {
            if let (Some(depth), false) = (p.depth, self.is_local_branch(dest, version)?) {
                let o = self.git(
                    &[
                        "fetch".to_string(),
                        format!("--depth={depth}"),
                        remote.clone(),
                        format!("+refs/heads/{version}:refs/heads/{version}"),
                        format!("+refs/heads/{version}:refs/remotes/{remote}/{version}"),
                    ],
                    Some(dest),
                )?;
                if !o.ok() {
                    return Err(
                        o.failure_with(format!("Failed to fetch branch from remote: {version}"))
                    );
                }
            }
            if !self.is_local_branch(dest, version)? {
                vec![
                    "checkout".into(),
                    "--track".into(),
                    "-b".into(),
                    version.clone(),
                    format!("{remote}/{version}"),
                ]
            } else {
                let o = self.git(&["checkout", "--force", version], Some(dest))?;
                if !o.ok() {
                    return Err(checkout_failed(&o, &format!("branch {version}")));
                }
                vec![
                    "reset".into(),
                    "--hard".into(),
                    format!("{remote}/{version}"),
                ]
            }
        } else {
            vec!["checkout".into(), "--force".into(), version.clone()]
        };
        let o = self.git(&last, Some(dest))?;
        if !o.ok() {
            return Err(checkout_failed(&o, version));
        }
        Ok(())
    }

    fn refuse_submodules(&self, dest: &Path) -> Result<(), ModuleError> {
        if self.p.recursive && dest.join(".gitmodules").exists() {
            return Err(ModuleError::new(format!(
                "{} has submodules, which tend's git module does not update yet; set \
                 'recursive: no' to leave them alone",
                dest.display()
            )));
        }
        Ok(())
    }

    fn main(&mut self, ctx: &ModuleCtx) -> ModuleResult {
        let p = self.p;
        let mut fields = Vars::new();
        fields.insert("before".into(), Value::Null);
        let mut out = ModuleOutput::ok();
        let dest = p.dest.clone();
        let has_repo = match &dest {
            Some(d) => repo_path(d)?.join("config").exists(),
            None => false,
        };
        let diff_new = |after: &str| {
            Value::from(serde_json::json!({"prepared": format!(">> Newly checked out {after}")}))
        };
        if !has_repo {
            if ctx.check || !p.clone {
                let head = self.remote_head(&p.repo)?;
                fields.insert("after".into(), head.clone().into());
                out.changed = true;
                if ctx.diff {
                    out.diffs.push(diff_new(&head));
                }
                out.fields = fields;
                return Ok(out);
            }
            let d = dest.clone().unwrap_or_default();
            self.clone(&d)?;
        } else if !p.update {
            let d = dest.clone().unwrap_or_default();
            let v = self.version_of(&d)?;
            fields.insert("before".into(), v.clone().into());
            fields.insert("after".into(), v.into());
            out.fields = fields;
            return Ok(out);
        }
        let d = dest.clone().unwrap_or_default();
        let mut local_mods = false;
        let mut remote_url_changed = false;
        if has_repo {
            local_mods = self.has_local_mods(&d)?;
            let before = self.version_of(&d)?;
            fields.insert("before".into(), before.clone().into());
            if local_mods {
                if !p.force {
                    let mut e = ModuleError::new(format!(
                        "Local modifications exist in the destination: {} (force=no).",
                        d.display()
                    ));
                    e.fields = fields;
                    return Err(e);
                }
                if !ctx.check {
                    self.git_ok(&["reset", "--hard", "HEAD"], Some(&d))?;
                    out.changed = true;
                    out.msg = Some(format!(
                        "Local modifications exist in the destination: {}",
                        d.display()
                    ));
                }
            }
            if ctx.check {
                let url = self.remote_url(&d)?;
                remote_url_changed = url.as_ref().is_some_and(|u| {
                    !u.is_empty() && *u != p.repo && unfrack(u) != unfrack(&p.repo)
                });
                fields.insert("remote_url_changed".into(), remote_url_changed.into());
                let head = self.remote_head(&p.remote)?;
                out.changed = before != head || remote_url_changed;
                fields.insert("after".into(), head.into());
                out.fields = fields;
                return Ok(out);
            }
            remote_url_changed = self.set_remote_url(&d)?;
            fields.insert("remote_url_changed".into(), remote_url_changed.into());
            self.fetch(&d)?;
        }
        self.switch_version(&d)?;
        self.refuse_submodules(&d)?;
        let after = self.version_of(&d)?;
        let before = fields
            .get("before")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        fields.insert("after".into(), after.clone().into());
        if before.as_deref() != Some(after.as_str()) || local_mods || remote_url_changed {
            out.changed = true;
            if ctx.diff {
                match &before {
                    None => out.diffs.push(diff_new(&after)),
                    Some(b) => {
                        let o = self.git(&["diff", b, &after], Some(&d))?;
                        let text = if o.ok() && !o.stdout.is_empty() {
                            o.stdout
                        } else if o.ok() {
                            format!(">> No visual differences between {b} and {after}")
                        } else {
                            format!(
                                ">> Failed to get proper diff between {b} and {after}:\n>> {}",
                                o.stderr
                            )
                        };
                        out.diffs
                            .push(Value::from(serde_json::json!({ "prepared": text })));
                    }
                }
            }
        }
        out.fields = fields;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use serde_json::json;
    use std::process::Command;

    fn sh(dir: &Path, args: &[&str]) -> String {
        let o = Command::new("git")
            .args(["-c", "user.email=t@example.com", "-c", "user.name=t"])
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// A repository with `main` (two commits), an annotated tag `v1` on the first, a
    /// lightweight tag `v2` and a branch `dev` one commit ahead. Returns (v1, main, dev).
    fn upstream(dir: &Path) -> (String, String, String) {
        std::fs::create_dir_all(dir).unwrap();
        sh(dir, &["init", "-q", "-b", "main"]);
        std::fs::write(dir.join("app.txt"), "one\n").unwrap();
        sh(dir, &["add", "."]);
        sh(dir, &["commit", "-q", "-m", "one"]);
        sh(dir, &["tag", "-a", "v1", "-m", "v1"]);
        let v1 = sh(dir, &["rev-parse", "HEAD"]);
        std::fs::write(dir.join("app.txt"), "two\n").unwrap();
        sh(dir, &["commit", "-q", "-am", "two"]);
        sh(dir, &["tag", "v2"]);
        let main = sh(dir, &["rev-parse", "HEAD"]);
        sh(dir, &["checkout", "-q", "-b", "dev"]);
        std::fs::write(dir.join("app.txt"), "dev\n").unwrap();
        sh(dir, &["commit", "-q", "-am", "dev"]);
        let dev = sh(dir, &["rev-parse", "HEAD"]);
        sh(dir, &["checkout", "-q", "main"]);
        (v1, main, dev)
    }

    #[test]
    fn clone_tag_then_branch_then_head_converge() {
        let t = tempfile::tempdir().unwrap();
        let up = t.path().join("up");
        let (v1, main, dev) = upstream(&up);
        let dest = t.path().join("srv/app");
        let a = |version: &str| json!({"repo": up, "dest": dest, "version": version});

        // Check mode predicts the clone and creates nothing.
        let o = run_check("git", a("v1"));
        assert!(o.changed);
        assert_eq!(o.fields["after"], json!(v1));
        assert!(!t.path().join("srv").exists());

        let o = run("git", a("v1"));
        assert!(o.changed);
        assert_eq!(o.fields["before"], Value::Null);
        assert_eq!(o.fields["after"], json!(v1));
        assert_eq!(
            std::fs::read_to_string(dest.join("app.txt")).unwrap(),
            "one\n"
        );
        let o = run("git", a("v1"));
        assert!(!o.changed, "{o:?}");
        assert_eq!(o.fields["remote_url_changed"], json!(false));
        assert!(!run_check("git", a("v1")).changed);

        // To a branch: check mode predicts, the run does it, the re-run is quiet.
        let o = run_check("git", a("dev"));
        assert!(o.changed);
        assert_eq!(o.fields["after"], json!(dev));
        let o = run("git", a("dev"));
        assert!(o.changed);
        assert_eq!(o.fields["before"], json!(v1));
        assert_eq!(o.fields["after"], json!(dev));
        assert!(!run("git", a("dev")).changed);
        assert!(!run_check("git", a("dev")).changed);

        // A lightweight tag, a commit, and back to HEAD (main).
        assert_eq!(run("git", a("v2")).fields["after"], json!(main));
        assert!(!run("git", a(&main)).changed);
        let o = run("git", a("HEAD"));
        assert_eq!(o.fields["after"], json!(main));
        assert!(!run("git", a("HEAD")).changed);

        // Upstream moves: check mode sees it, the run follows.
        std::fs::write(up.join("app.txt"), "three\n").unwrap();
        sh(&up, &["commit", "-q", "-am", "three"]);
        let three = sh(&up, &["rev-parse", "HEAD"]);
        let o = run_check("git", a("HEAD"));
        assert!(o.changed);
        assert_eq!(o.fields["after"], json!(three));
        assert_eq!(
            std::fs::read_to_string(dest.join("app.txt")).unwrap(),
            "two\n"
        );
        assert_eq!(run("git", a("HEAD")).fields["after"], json!(three));
    }

    #[test]
    fn local_modifications_fail_unless_forced() {
        let t = tempfile::tempdir().unwrap();
        let up = t.path().join("up");
        upstream(&up);
        let dest = t.path().join("co");
        let url = format!("file://{}", up.display());
        run("git", json!({"repo": url, "dest": dest}));
        std::fs::write(dest.join("app.txt"), "edited\n").unwrap();
        let e = run_err("git", json!({"repo": url, "dest": dest}));
        assert_eq!(
            e,
            format!(
                "Local modifications exist in the destination: {} (force=no).",
                dest.display()
            )
        );
        // Untracked files are not modifications.
        std::fs::write(dest.join("new.txt"), "x").unwrap();
        let o = run("git", json!({"repo": url, "dest": dest, "force": true}));
        assert!(o.changed);
        assert_eq!(
            o.msg.as_deref(),
            Some(
                format!(
                    "Local modifications exist in the destination: {}",
                    dest.display()
                )
                .as_str()
            )
        );
        assert_eq!(
            std::fs::read_to_string(dest.join("app.txt")).unwrap(),
            "two\n"
        );
        assert!(!run("git", json!({"repo": url, "dest": dest})).changed);
    }

    #[test]
    fn a_missing_ref_fails_clearly_and_unsupported_arguments_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let up = t.path().join("up");
        upstream(&up);
        let dest = t.path().join("co");
        let e = run_err(
            "git",
            json!({"repo": up, "dest": dest, "version": "nosuch"}),
        );
        assert_eq!(e, "Failed to checkout nosuch");
        let e = run_err("git", json!({"repo": up, "dest": dest, "bare": true}));
        assert!(e.contains("does not support bare repositories"), "{e}");
        let e = run_err("git", json!({"repo": up}));
        assert_eq!(
            e,
            "the destination directory must be specified unless clone=no"
        );
        // A remote that is not there: git's own message, nothing waits for input.
        let e = run_err(
            "git",
            json!({"repo": t.path().join("nope"), "dest": t.path().join("x")}),
        );
        assert!(
            e.contains("does not appear to be a git repository") || e.contains("not found"),
            "{e}"
        );
    }

    #[test]
    fn shallow_clone_and_remote_url_change() {
        let t = tempfile::tempdir().unwrap();
        let up = t.path().join("up");
        let (_, main, dev) = upstream(&up);
        let dest = t.path().join("co");
        let url = format!("file://{}", up.display());
        let o = run("git", json!({"repo": url, "dest": dest, "depth": 1}));
        assert_eq!(o.fields["after"], json!(main));
        assert_eq!(sh(&dest, &["rev-list", "--count", "HEAD"]), "1");
        let o = run(
            "git",
            json!({"repo": url, "dest": dest, "depth": 1, "version": "dev"}),
        );
        assert_eq!(o.fields["after"], json!(dev));
        assert!(
            !run(
                "git",
                json!({"repo": url, "dest": dest, "depth": 1, "version": "dev"})
            )
            .changed
        );
        // The same repository under another URL: the remote is repointed, and that is a change.
        let moved = t.path().join("moved");
        std::fs::rename(&up, &moved).unwrap();
        let o = run(
            "git",
            json!({"repo": moved, "dest": dest, "depth": 1, "version": "dev"}),
        );
        assert!(o.changed);
        assert_eq!(o.fields["remote_url_changed"], json!(true));
        assert!(
            !run(
                "git",
                json!({"repo": moved, "dest": dest, "depth": 1, "version": "dev"})
            )
            .changed
        );
    }

    #[test]
    fn head_files_name_their_branch() {
        assert_eq!(head_branch_of("ref: refs/heads/main\n", "origin"), "main");
        assert_eq!(
            head_branch_of("ref: refs/heads/feature/x\n", "origin"),
            "feature/x"
        );
        assert_eq!(
            head_branch_of("ref: refs/remotes/origin/trunk\n", "origin"),
            "trunk"
        );
    }

    #[test]
    fn unfrack_treats_equivalent_paths_alike() {
        assert_eq!(unfrack("/tmp//a/./b"), unfrack("/tmp/a/b"));
        assert_ne!(unfrack("/tmp/a"), unfrack("/tmp/b"));
    }
}
