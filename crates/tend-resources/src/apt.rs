//! `apt` and `package` (on Debian hosts): ansible-core 2.19's apt module without python-apt.
//!
//! What is installed comes from the dpkg status database (read directly); what could be
//! installed from one `apt-cache policy` call for the whole list (skipped when every named
//! package is installed and no version or `latest` is asked for: an idempotent re-run starts
//! no process). [`plan_install`] and [`plan_remove`] are pure: they decide, from those
//! observations, the one `apt-get` transaction the task needs — the same decisions as
//! ansible-core's `package_status`/`install`/`remove`. Check mode runs that transaction with
//! `--simulate` (so a conflict fails there too) and reports the same `changed`; after a real
//! run the plan is made again from the new status and must be empty.
//!
//! apt-get never prompts (`DEBIAN_FRONTEND=noninteractive`) and waits for the dpkg lock
//! (`-o DPkg::Lock::Timeout=lock_timeout`) instead of failing on it.
//!
//! Not supported (refused): `state: build-dep`, `deb:` URLs (download with `get_url` first).
//! aptitude is never used (`upgrade: yes|safe|full` run apt-get as ansible-core does when
//! aptitude is absent, as on minimal Debian hosts).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tend_proto::{Value, Vars};

use crate::dpkg::{self, Policy, Status};
use crate::journal::{Restore, UndoStep};
use crate::process::{self, Ran};
use crate::{Action, Args, ModuleCtx, ModuleError, ModuleOutput, ModuleResult};

pub struct Apt;
pub struct Package;

/// apt's arguments; `package` takes the same and `use`.
macro_rules! apt_params {
    ($($extra:literal),*) => {
        &[
            "name",
            "pkg",
            "package",
            "state",
            "update_cache",
            "update-cache",
            "update_cache_retries",
            "update_cache_retry_max_delay",
            "cache_valid_time",
            "purge",
            "deb",
            "default_release",
            "default-release",
            "install_recommends",
            "install-recommends",
            "force",
            "upgrade",
            "dpkg_options",
            "autoremove",
            "autoclean",
            "fail_on_autoremove",
            "policy_rc_d",
            "only_upgrade",
            "force_apt_get",
            "clean",
            "allow_unauthenticated",
            "allow-unauthenticated",
            "allow_downgrade",
            "allow-downgrade",
            "allow_downgrades",
            "allow-downgrades",
            "allow_change_held_packages",
            "lock_timeout",
            "auto_install_module_deps",
            $($extra),*
        ]
    };
}

pub const PARAMS: &[&str] = apt_params!();

const PACKAGE_PARAMS: &[&str] = apt_params!("use");

const DPKG_OPTIONS: &str = "force-confdef,force-confold";
const APT_GET_ZERO: &str = "\n0 upgraded, 0 newly installed, 0 to remove";
const APT_LISTS_PATH: &str = "/var/lib/apt/lists";
const APT_UPDATE_SUCCESS_STAMP_PATH: &str = "/var/lib/apt/periodic/update-success-stamp";
const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";
/// The locale apt's output is read in (ansible-core's best parsable locale).
const LOCALE: &str = "C.UTF-8";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Present,
    Absent,
    Latest,
    Fixed,
}

/// The module's arguments, resolved (aliases, defaults, ansible-core's checks).
#[derive(Clone, Debug)]
pub struct AptArgs {
    pub packages: Option<Vec<String>>,
    pub state: State,
    pub update_cache: bool,
    pub update_cache_retries: i64,
    pub update_cache_retry_max_delay: i64,
    pub cache_valid_time: i64,
    pub purge: bool,
    pub deb: Option<String>,
    pub default_release: Option<String>,
    pub install_recommends: Option<bool>,
    pub force: bool,
    pub upgrade: Option<String>,
    pub dpkg_options: String,
    pub autoremove: bool,
    pub autoclean: bool,
    pub fail_on_autoremove: bool,
    pub policy_rc_d: Option<i64>,
    pub only_upgrade: bool,
    pub clean: bool,
    pub allow_unauthenticated: bool,
    pub allow_downgrade: bool,
    pub allow_change_held_packages: bool,
    pub lock_timeout: i64,
}

impl AptArgs {
    pub fn parse(a: &Args) -> Result<AptArgs, ModuleError> {
        let given = |names: &[&str]| names.iter().any(|n| a.has(n));
        let pkg_names = ["package", "pkg", "name"];
        let exclusive = [given(&["deb"]), given(&pkg_names), given(&["upgrade"])];
        if exclusive.iter().filter(|b| **b).count() > 1 {
            return Err(ModuleError::new(
                "parameters are mutually exclusive: deb|package|upgrade",
            ));
        }
        if !given(&[
            "autoremove",
            "deb",
            "update_cache",
            "update-cache",
            "upgrade",
        ]) && !given(&pkg_names)
        {
            return Err(ModuleError::new(
                "one of the following is required: autoremove, deb, package, update_cache, upgrade",
            ));
        }
        let packages = match a.first(&pkg_names) {
            None => None,
            Some((k, _)) => a.list(k)?,
        };
        let state = match a
            .choice(
                "state",
                &["absent", "build-dep", "fixed", "latest", "present"],
            )?
            .as_deref()
        {
            None | Some("present") => State::Present,
            Some("absent") => State::Absent,
            Some("latest") => State::Latest,
            Some("fixed") => State::Fixed,
            Some(_) => {
                return Err(ModuleError::new(
                    "tend's apt module does not support state=build-dep yet; install the \
                     build dependencies by name",
                ))
            }
        };
        let bool_any = |names: &[&str]| -> Result<Option<bool>, ModuleError> {
            match a.first(names) {
                None => Ok(None),
                Some((k, v)) => Ok(Some(crate::args::to_bool(k, v)?)),
            }
        };
        let upgrade = a
            .choice("upgrade", &["dist", "full", "no", "safe", "yes"])?
            .filter(|u| u != "no");
        let deb = a.str("deb")?.map(|d| crate::fsutil::expand_user(&d));
        if let Some(d) = &deb {
            if d.contains("://") {
                return Err(ModuleError::new(format!(
                    "tend's apt module installs local .deb files only; download {d} with \
                     get_url first and give its path as deb"
                )));
            }
        }
        Ok(AptArgs {
            packages,
            state,
            update_cache: bool_any(&["update_cache", "update-cache"])?.unwrap_or(false),
            update_cache_retries: a.int("update_cache_retries")?.unwrap_or(5),
            update_cache_retry_max_delay: a.int("update_cache_retry_max_delay")?.unwrap_or(12),
            cache_valid_time: a.int("cache_valid_time")?.unwrap_or(0),
            purge: a.bool_or("purge", false)?,
            deb,
            default_release: a.str_any(&["default_release", "default-release"])?,
            install_recommends: bool_any(&["install_recommends", "install-recommends"])?,
            force: a.bool_or("force", false)?,
            upgrade,
            dpkg_options: a
                .str("dpkg_options")?
                .unwrap_or_else(|| DPKG_OPTIONS.into()),
            autoremove: a.bool_or("autoremove", false)?,
            autoclean: a.bool_or("autoclean", false)?,
            fail_on_autoremove: a.bool_or("fail_on_autoremove", false)?,
            policy_rc_d: a.int("policy_rc_d")?,
            only_upgrade: a.bool_or("only_upgrade", false)?,
            clean: a.bool_or("clean", false)?,
            allow_unauthenticated: bool_any(&["allow_unauthenticated", "allow-unauthenticated"])?
                .unwrap_or(false),
            allow_downgrade: bool_any(&[
                "allow_downgrade",
                "allow-downgrade",
                "allow_downgrades",
                "allow-downgrades",
            ])?
            .unwrap_or(false),
            allow_change_held_packages: a.bool_or("allow_change_held_packages", false)?,
            lock_timeout: a.int("lock_timeout")?.unwrap_or(60),
        })
    }

    /// `-o Dpkg::Options::=--X` for each dpkg option, then the lock timeout.
    fn dpkg_argv(&self) -> Vec<String> {
        let mut v = Vec::new();
        for o in self.dpkg_options.split(',') {
            v.push("-o".into());
            v.push(format!("Dpkg::Options::=--{o}"));
        }
        v.push("-o".into());
        v.push(format!("DPkg::Lock::Timeout={}", self.lock_timeout));
        v
    }
}

/// A package argument: `name`, `name=version` (fnmatch patterns allowed) or `name>=version`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    pub raw: String,
    pub name: String,
    pub cmp: Option<Cmp>,
    pub version: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ge,
}

impl Spec {
    pub fn parse(raw: &str) -> Spec {
        let (name, cmp, version) = match raw.find('=') {
            Some(i) if i > 0 && raw.as_bytes()[i - 1] == b'>' => {
                (&raw[..i - 1], Some(Cmp::Ge), Some(&raw[i + 1..]))
            }
            Some(i) => (&raw[..i], Some(Cmp::Eq), Some(&raw[i + 1..])),
            None => (raw, None, None),
        };
        Spec {
            raw: raw.to_string(),
            name: name.to_string(),
            cmp,
            version: version.map(str::to_string),
        }
    }
}

fn fnmatch(pattern: &str, s: &str) -> bool {
    match glob::Pattern::new(pattern) {
        Ok(p) => p.matches(s),
        Err(_) => pattern == s,
    }
}

fn has_wildcard(name: &str) -> bool {
    name.contains(['*', '?', '[', ']', '!'])
}

/// Why a plan cannot be made (ansible-core's messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// Fails the module outright.
    NoPackage(String),
    /// Fails with the cache fields.
    NoCandidate(String),
}

impl PlanError {
    pub fn message(&self) -> String {
        match self {
            PlanError::NoPackage(n) => format!("No package matching '{n}' is available"),
            PlanError::NoCandidate(s) => format!("no available installation candidate for {s}"),
        }
    }
}

/// What apt knows beyond the dpkg status: candidates and versions, reverse provides of the
/// virtual packages among the names.
#[derive(Clone, Debug, Default)]
pub struct Known {
    pub policy: BTreeMap<String, Policy>,
    pub providers: BTreeMap<String, Vec<String>>,
}

/// ansible-core's `package_status` for an install: (installed, installed version matches,
/// version to install — `Some("")` lets apt choose, as for virtual packages).
fn install_status(
    spec: &Spec,
    name: &str,
    status: &Status,
    known: &Known,
    depth: u8,
) -> Result<(bool, bool, Option<String>), PlanError> {
    let Some(pol) = known.policy.get(name) else {
        return Err(PlanError::NoPackage(name.to_string()));
    };
    if pol.is_virtual() {
        let providers = known.providers.get(name).cloned().unwrap_or_default();
        if providers.is_empty() {
            return Err(PlanError::NoPackage(name.to_string()));
        }
        if providers.len() == 1 && depth == 0 && known.policy.contains_key(&providers[0]) {
            let r = install_status(spec, &providers[0], status, known, 1)?;
            if r.0 {
                return Ok(r);
            }
        }
        return Ok((false, false, Some(String::new())));
    }
    let best = match (spec.cmp, &spec.version) {
        (Some(Cmp::Eq), Some(v)) => {
            let mut matching: Vec<&String> =
                pol.versions.iter().filter(|x| fnmatch(v, x)).collect();
            matching.sort_by(|a, b| dpkg::compare_versions(a, b));
            matching.last().map(|s| s.to_string())
        }
        _ => pol.candidate.clone(),
    };
    let Some(inst) = status.installed(name) else {
        return Ok((false, false, best));
    };
    let iv = &inst.version;
    let (matches, installable) = match (spec.cmp, &spec.version) {
        (Some(Cmp::Eq), Some(v)) => (
            fnmatch(v, iv),
            best.clone().filter(|b| b != iv && fnmatch(v, b)),
        ),
        (Some(Cmp::Ge), Some(v)) => (
            dpkg::compare_versions(iv, v).is_ge(),
            best.clone()
                .filter(|b| b != iv && dpkg::compare_versions(b, v).is_ge()),
        ),
        _ => (true, best.clone().filter(|b| b != iv)),
    };
    Ok((true, matches, installable))
}

/// The `apt-get install` arguments for `specs` (ansible-core's `install`), empty when
/// nothing is to be done.
pub fn plan_install(
    specs: &[Spec],
    status: &Status,
    known: &Known,
    upgrade: bool,
    only_upgrade: bool,
) -> Result<Vec<String>, PlanError> {
    let mut out = Vec::new();
    for spec in specs {
        let (installed, version_ok, installable) =
            install_status(spec, &spec.name, status, known, 0)?;
        if !installed && only_upgrade {
            continue;
        }
        if !version_ok && installable.is_none() {
            return Err(PlanError::NoCandidate(spec.raw.clone()));
        }
        match installable {
            Some(v) if (!installed && !only_upgrade) || upgrade || !version_ok => {
                if !v.is_empty() {
                    out.push(format!("{}={v}", spec.name));
                } else if let Some(ver) = &spec.version {
                    out.push(format!("{}={ver}", spec.name));
                } else {
                    out.push(spec.name.clone());
                }
            }
            Some(_) if version_ok && spec.cmp == Some(Cmp::Eq) => {
                // ansible-core's legacy case: a wildcard version matching both the installed
                // and a newer version.
                out.push(format!(
                    "{}={}",
                    spec.name,
                    spec.version.as_deref().unwrap_or("")
                ));
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The `apt-get remove` arguments for `specs` (ansible-core's `remove`).
pub fn plan_remove(
    specs: &[Spec],
    status: &Status,
    purge: bool,
    has_files: &dyn Fn(&str, &str) -> bool,
) -> Vec<String> {
    let mut out = Vec::new();
    for spec in specs {
        let Some(any) = status.any(&spec.name) else {
            continue;
        };
        let version_ok = match status.installed(&spec.name) {
            None => false,
            Some(inst) => match (spec.cmp, &spec.version) {
                (Some(Cmp::Eq), Some(v)) => fnmatch(v, &inst.version),
                (Some(Cmp::Ge), Some(v)) => dpkg::compare_versions(&inst.version, v).is_ge(),
                _ => true,
            },
        };
        if version_ok || (purge && has_files(&spec.name, &any.arch)) {
            out.push(spec.raw.clone());
        }
    }
    out
}

/// Whether observing candidates can be skipped: every package is installed, by name only,
/// and only its presence is asked for.
fn needs_candidates(specs: &[Spec], status: &Status, state: State, only_upgrade: bool) -> bool {
    state != State::Present
        || only_upgrade
        || specs
            .iter()
            .any(|s| s.version.is_some() || status.installed(&s.name).is_none())
}

/// apt-get's environment: the task's, then never a prompt, and a parsable locale.
fn apt_env(ctx: &ModuleCtx) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = ctx.environment.to_vec();
    for (k, v) in [
        ("DEBIAN_FRONTEND", "noninteractive"),
        ("DEBIAN_PRIORITY", "critical"),
        ("LANG", LOCALE),
        ("LC_ALL", LOCALE),
        ("LC_MESSAGES", LOCALE),
        ("LC_CTYPE", LOCALE),
        ("LANGUAGE", LOCALE),
    ] {
        env.push((k.into(), v.into()));
    }
    env
}

fn bin(name: &str) -> Result<String, ModuleError> {
    process::find_bin(name).ok_or_else(|| {
        ModuleError::new(format!(
            "Failed to find required executable \"{name}\" in paths: {}",
            std::env::var("PATH").unwrap_or_default()
        ))
    })
}

/// One call of `apt-cache policy` for every name (and `apt-cache showpkg` for the virtual
/// ones among them).
fn observe_known(
    names: &BTreeSet<String>,
    default_release: Option<&str>,
    env: &[(String, String)],
) -> Result<Known, ModuleError> {
    let mut known = Known::default();
    if names.is_empty() {
        return Ok(known);
    }
    let mut argv = vec![bin("apt-cache")?];
    if let Some(r) = default_release {
        argv.push("-t".into());
        argv.push(r.into());
    }
    argv.push("policy".into());
    argv.extend(names.iter().cloned());
    let r = process::run(&argv, env)?;
    if !r.ok() {
        return Err(ModuleError::new(format!(
            "'{}' failed: {}",
            process::display(&argv),
            r.stderr.trim()
        )));
    }
    known.policy = dpkg::parse_policy(&r.stdout);
    let virtuals: Vec<String> = known
        .policy
        .iter()
        .filter(|(_, p)| p.is_virtual())
        .map(|(n, _)| n.clone())
        .collect();
    if !virtuals.is_empty() {
        let mut argv = vec![bin("apt-cache")?, "showpkg".into()];
        argv.extend(virtuals);
        let r = process::run(&argv, env)?;
        known.providers = dpkg::parse_reverse_provides(&r.stdout);
        // Providers must be known for the single-provider rule.
        let extra: BTreeSet<String> = known
            .providers
            .values()
            .filter(|p| p.len() == 1)
            .flatten()
            .filter(|p| !known.policy.contains_key(*p))
            .cloned()
            .collect();
        if !extra.is_empty() {
            let mut argv = vec![bin("apt-cache")?, "policy".into()];
            argv.extend(extra);
            let r = process::run(&argv, env)?;
            known.policy.extend(dpkg::parse_policy(&r.stdout));
        }
    }
    Ok(known)
}

/// Expands fnmatch patterns in package names against apt's package names (one
/// `apt-cache pkgnames` call, only when a pattern is given).
fn expand_patterns(raw: &[String], env: &[(String, String)]) -> Result<Vec<String>, ModuleError> {
    if !raw.iter().any(|p| has_wildcard(&Spec::parse(p).name)) {
        return Ok(raw.to_vec());
    }
    let r = process::run(&[bin("apt-cache")?, "pkgnames".into()], env)?;
    let mut all: Vec<&str> = r.stdout.lines().map(str::trim).collect();
    all.sort_unstable();
    let mut out = Vec::new();
    for p in raw {
        let name = Spec::parse(p).name;
        if !has_wildcard(&name) {
            out.push(p.clone());
            continue;
        }
        let multiarch = name.contains(':');
        let matches: Vec<&str> = all
            .iter()
            .copied()
            .filter(|n| (multiarch || !n.contains(':')) && fnmatch(&name, n))
            .collect();
        if matches.is_empty() {
            return Err(ModuleError::new(format!(
                "No package(s) matching '{name}' available"
            )));
        }
        out.extend(matches.into_iter().map(str::to_string));
    }
    Ok(out)
}

/// ansible-core's `parse_diff`: the part of apt-get's output between "Reading state
/// information..." and the "N upgraded" line.
fn parse_diff(out: &str) -> Value {
    let lines: Vec<&str> = out.lines().collect();
    let start = lines
        .iter()
        .position(|l| *l == "Resolving dependencies...")
        .or_else(|| {
            lines
                .iter()
                .position(|l| *l == "Reading state information...")
        })
        .map_or(0, |i| i + 1);
    let re = regex::Regex::new(r"^[0-9]+ (packages )?upgraded").expect("valid regex");
    let end = lines
        .iter()
        .position(|l| re.is_match(l))
        .map_or(lines.len(), |i| i + 1);
    let end = end.min(lines.len()).max(start);
    json!({"prepared": lines[start..end].join("\n")})
}

/// The apt cache's age stamp (ansible-core's `get_cache_mtime`), in whole seconds.
fn cache_mtime() -> i64 {
    let stamp = |p: &str| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs() as i64)
    };
    if Path::new(APT_UPDATE_SUCCESS_STAMP_PATH).exists() {
        stamp(APT_UPDATE_SUCCESS_STAMP_PATH).unwrap_or(0)
    } else {
        stamp(APT_LISTS_PATH).unwrap_or(0)
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Writes `/usr/sbin/policy-rc.d` exiting with the given code for the life of the guard,
/// restoring what was there.
struct PolicyRcD {
    backup: Option<Vec<u8>>,
    backup_mode: u32,
    active: bool,
}

impl PolicyRcD {
    fn enter(code: Option<i64>) -> Result<PolicyRcD, ModuleError> {
        let Some(code) = code else {
            return Ok(PolicyRcD {
                backup: None,
                backup_mode: 0,
                active: false,
            });
        };
        use std::os::unix::fs::PermissionsExt;
        let path = Path::new(POLICY_RC_D);
        let backup = std::fs::read(path).ok();
        let backup_mode = std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0o755);
        std::fs::write(path, format!("#!/bin/sh\nexit {code}\n"))
            .map_err(|_| ModuleError::new("Failed to create or chmod /usr/sbin/policy-rc.d"))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
            .map_err(|_| ModuleError::new("Failed to create or chmod /usr/sbin/policy-rc.d"))?;
        Ok(PolicyRcD {
            backup,
            backup_mode,
            active: true,
        })
    }
}

impl Drop for PolicyRcD {
    fn drop(&mut self) {
        if !self.active {
            return;
        }
        use std::os::unix::fs::PermissionsExt;
        match &self.backup {
            Some(data) => {
                let _ = std::fs::write(POLICY_RC_D, data);
                let _ = std::fs::set_permissions(
                    POLICY_RC_D,
                    std::fs::Permissions::from_mode(self.backup_mode),
                );
            }
            None => {
                let _ = std::fs::remove_file(POLICY_RC_D);
            }
        }
    }
}

/// One run of the module.
struct Run<'a> {
    p: AptArgs,
    ctx: &'a ModuleCtx<'a>,
    env: Vec<(String, String)>,
    apt_get: String,
}

impl Run<'_> {
    fn apt_get(&self, policy_rc_d: bool, argv: &[String]) -> Result<Ran, ModuleError> {
        let _guard = PolicyRcD::enter(if policy_rc_d {
            self.p.policy_rc_d
        } else {
            None
        })?;
        process::run(argv, &self.env)
    }

    fn check_arg(&self, argv: &mut Vec<String>) {
        if self.ctx.check {
            argv.push("--simulate".into());
        }
    }

    fn diff_of(&self, out: &str) -> Vec<Value> {
        if self.ctx.diff {
            vec![parse_diff(out)]
        } else {
            Vec::new()
        }
    }

    /// `apt-get update`, retried with backoff as ansible-core does.
    fn update_cache(&self) -> Result<(), ModuleError> {
        let mut argv = vec![self.apt_get.clone(), "update".into(), "-q".into()];
        argv.extend([
            "-o".into(),
            format!("DPkg::Lock::Timeout={}", self.p.lock_timeout),
        ]);
        let deadline = Instant::now() + Duration::from_secs(self.p.lock_timeout.max(0) as u64);
        let mut err = String::new();
        let retries = self.p.update_cache_retries.max(1);
        let mut retry = 0;
        while retry < retries {
            let r = process::run(&argv, &self.env)?;
            let failed_fetch = r.stdout.contains("Failed to fetch")
                || r.stderr.contains("Failed to fetch")
                || r.stderr.contains("Some index files failed to download");
            if r.ok() && !failed_fetch {
                return Ok(());
            }
            if r.stderr.contains("Could not get lock") && Instant::now() < deadline {
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
            err = r.stderr.trim().to_string();
            if err.is_empty() {
                err = r.stdout.trim().to_string();
            }
            let base = 2f64.powi(retry as i32);
            let max = self.p.update_cache_retry_max_delay as f64;
            let delay = if base > max { max } else { base };
            retry += 1;
            if retry < retries {
                std::thread::sleep(Duration::from_secs_f64(delay.max(0.0)));
            }
        }
        Err(ModuleError::new(format!(
            "Failed to update apt cache after {} retries: {}",
            self.p.update_cache_retries,
            if err.is_empty() {
                "unknown reason".into()
            } else {
                err
            }
        )))
    }

    fn upgrade(&self, mode: &str) -> ModuleResult {
        let mut argv = vec![self.apt_get.clone(), "-y".into()];
        argv.extend(self.p.dpkg_argv());
        if self.p.force {
            argv.push("--force-yes".into());
        }
        if self.p.fail_on_autoremove {
            argv.push("--no-remove".into());
        }
        if self.p.allow_unauthenticated {
            argv.push("--allow-unauthenticated".into());
        }
        if self.p.allow_downgrade {
            argv.push("--allow-downgrades".into());
        }
        self.check_arg(&mut argv);
        let command = if mode == "dist" || mode == "full" {
            vec!["dist-upgrade".to_string()]
        } else {
            vec!["upgrade".to_string(), "--with-new-pkgs".into()]
        };
        argv.extend(command.iter().cloned());
        if self.p.autoremove {
            argv.push("--auto-remove".into());
        }
        if let Some(r) = &self.p.default_release {
            argv.extend(["-t".into(), r.clone()]);
        }
        let r = self.apt_get(true, &argv)?;
        if !r.ok() {
            let mut e = ModuleError::new(format!(
                "'apt-get {}' failed: {}",
                command.join(" "),
                r.stderr
            ));
            e.fields.insert("stdout".into(), r.stdout.into());
            e.fields.insert("rc".into(), r.rc.into());
            return Err(e);
        }
        let changed = !r.stdout.contains(APT_GET_ZERO);
        let mut out = ModuleOutput::ok()
            .field("stdout", r.stdout.clone())
            .field("stderr", r.stderr);
        out.msg = Some(r.stdout.clone());
        out.changed = changed;
        if changed {
            out.diffs = self.diff_of(&r.stdout);
        }
        Ok(out)
    }

    fn cleanup(&self, operation: &str) -> ModuleResult {
        let mut argv = vec![self.apt_get.clone(), "-y".into()];
        argv.extend(self.p.dpkg_argv());
        if self.p.purge {
            argv.push("--purge".into());
        }
        if self.p.force {
            argv.push("--force-yes".into());
        }
        argv.push(operation.into());
        self.check_arg(&mut argv);
        let r = self.apt_get(true, &argv)?;
        if !r.ok() {
            let mut e = ModuleError::new(format!("'apt-get {operation}' failed: {}", r.stderr));
            e.fields.insert("stdout".into(), r.stdout.into());
            e.fields.insert("stderr".into(), r.stderr.into());
            e.fields.insert("rc".into(), r.rc.into());
            return Err(e);
        }
        let marker = if operation == "autoremove" {
            "The following packages will be REMOVED"
        } else {
            "Del "
        };
        let mut out = ModuleOutput::ok()
            .field("stdout", r.stdout.clone())
            .field("stderr", r.stderr);
        out.changed = r.stdout.contains(marker);
        out.diffs = self.diff_of(&r.stdout);
        Ok(out)
    }

    /// The `apt-get install` command for `pkgs`.
    fn install_argv(&self, pkgs: &[String], fixed: bool) -> Vec<String> {
        let mut argv = vec![self.apt_get.clone(), "-y".into()];
        argv.extend(self.p.dpkg_argv());
        if self.p.only_upgrade {
            argv.push("--only-upgrade".into());
        }
        if fixed {
            argv.push("--fix-broken".into());
        }
        if self.p.force {
            argv.push("--force-yes".into());
        }
        if self.p.autoremove {
            argv.push("--auto-remove".into());
        }
        if self.p.fail_on_autoremove {
            argv.push("--no-remove".into());
        }
        self.check_arg(&mut argv);
        argv.push("install".into());
        argv.extend(pkgs.iter().cloned());
        if let Some(r) = &self.p.default_release {
            argv.extend(["-t".into(), r.clone()]);
        }
        match self.p.install_recommends {
            Some(false) => argv.extend(["-o".into(), "APT::Install-Recommends=no".into()]),
            Some(true) => argv.extend(["-o".into(), "APT::Install-Recommends=yes".into()]),
            None => {}
        }
        if self.p.allow_unauthenticated {
            argv.push("--allow-unauthenticated".into());
        }
        if self.p.allow_downgrade {
            argv.push("--allow-downgrades".into());
        }
        if self.p.allow_change_held_packages {
            argv.push("--allow-change-held-packages".into());
        }
        argv
    }

    fn specs(&self, packages: &[String]) -> Result<Vec<Spec>, ModuleError> {
        Ok(expand_patterns(packages, &self.env)?
            .iter()
            .map(|p| Spec::parse(p))
            .collect())
    }

    fn install(&self, packages: &[String], cache: (bool, i64)) -> ModuleResult {
        let with_cache = |mut e: ModuleError| {
            e.fields.insert("cache_updated".into(), cache.0.into());
            e.fields.insert("cache_update_time".into(), cache.1.into());
            e
        };
        let specs = self.specs(packages)?;
        let status = read_status()?;
        let upgrade = self.p.state == State::Latest;
        let known = if needs_candidates(&specs, &status, self.p.state, self.p.only_upgrade) {
            let names: BTreeSet<String> = specs.iter().map(|s| s.name.clone()).collect();
            observe_known(&names, self.p.default_release.as_deref(), &self.env)?
        } else {
            Known {
                policy: specs
                    .iter()
                    .map(|s| (s.name.clone(), installed_policy(&status, &s.name)))
                    .collect(),
                providers: BTreeMap::new(),
            }
        };
        let pkgs = match plan_install(&specs, &status, &known, upgrade, self.p.only_upgrade) {
            Ok(p) => p,
            Err(e @ PlanError::NoPackage(_)) => return Err(ModuleError::new(e.message())),
            Err(e) => return Err(with_cache(ModuleError::new(e.message()))),
        };
        let mut out = ModuleOutput::ok();
        if !pkgs.is_empty() {
            let argv = self.install_argv(&pkgs, self.p.state == State::Fixed);
            let r = self.apt_get(true, &argv)?;
            if !r.ok() {
                let mut e = ModuleError::new(format!(
                    "'{}' failed: {}",
                    process::display(&argv),
                    r.stderr
                ));
                e.fields.insert("stdout".into(), r.stdout.into());
                e.fields.insert("stderr".into(), r.stderr.into());
                e.fields.insert("rc".into(), r.rc.into());
                return Err(with_cache(e));
            }
            out.changed = true;
            out.diffs = self.diff_of(&r.stdout);
            out = out.field("stdout", r.stdout).field("stderr", r.stderr);
        }
        if !self.ctx.check {
            let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
            mark_installed_manually(&names, &self.env)?;
            if !pkgs.is_empty() {
                // The contract: a second plan from what is now installed must be empty.
                let after = read_status()?;
                let residual = plan_install(&specs, &after, &known, upgrade, self.p.only_upgrade)
                    .unwrap_or_default();
                let real: Vec<&String> = residual
                    .iter()
                    .filter(|p| {
                        let n = Spec::parse(p).name;
                        known.policy.get(&n).is_some_and(|pol| !pol.is_virtual())
                    })
                    .collect();
                if !real.is_empty() && self.p.state != State::Fixed {
                    return Err(ModuleError::new(format!(
                        "bug in tend's apt module: after installing, apt still has to install {}; \
                         please report this",
                        real.iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
        }
        Ok(out
            .field("cache_updated", cache.0)
            .field("cache_update_time", cache.1))
    }

    fn remove(&self, packages: &[String]) -> ModuleResult {
        let specs = self.specs(packages)?;
        let status = read_status()?;
        let info = Path::new(dpkg::INFO_DIR);
        let has_files = |n: &str, arch: &str| dpkg::has_files(info, n, arch);
        let pkgs = plan_remove(&specs, &status, self.p.purge, &has_files);
        if pkgs.is_empty() {
            return Ok(ModuleOutput::ok());
        }
        let mut argv = vec![self.apt_get.clone(), "-q".into(), "-y".into()];
        argv.extend(self.p.dpkg_argv());
        if self.p.purge {
            argv.push("--purge".into());
        }
        if self.p.force {
            argv.push("--force-yes".into());
        }
        if self.p.autoremove {
            argv.push("--auto-remove".into());
        }
        self.check_arg(&mut argv);
        if self.p.allow_change_held_packages {
            argv.push("--allow-change-held-packages".into());
        }
        argv.push("remove".into());
        argv.extend(pkgs.iter().cloned());
        let r = self.apt_get(true, &argv)?;
        if !r.ok() {
            let quoted: Vec<String> = pkgs.iter().map(|p| format!("'{p}'")).collect();
            let mut e = ModuleError::new(format!(
                "'apt-get remove {}' failed: {}",
                quoted.join(" "),
                r.stderr
            ));
            e.fields.insert("stdout".into(), r.stdout.into());
            e.fields.insert("stderr".into(), r.stderr.into());
            e.fields.insert("rc".into(), r.rc.into());
            return Err(e);
        }
        if !self.ctx.check {
            let after = read_status()?;
            let residual = plan_remove(&specs, &after, self.p.purge, &has_files);
            if !residual.is_empty() {
                return Err(ModuleError::new(format!(
                    "bug in tend's apt module: after removing, {} is still on the host; please \
                     report this",
                    residual.join(", ")
                )));
            }
        }
        let mut out = ModuleOutput::ok();
        out.changed = true;
        out.diffs = self.diff_of(&r.stdout);
        Ok(out.field("stdout", r.stdout).field("stderr", r.stderr))
    }

    /// `deb:` — local .deb files, installed with their dependencies in one apt-get call.
    fn install_deb(&self, debs: &str) -> ModuleResult {
        let status = read_status()?;
        let dpkg_deb = bin("dpkg-deb")?;
        let mut todo: Vec<String> = Vec::new();
        for deb in debs.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            let path = absolute(deb);
            let argv = vec![
                dpkg_deb.clone(),
                "-f".into(),
                path.display().to_string(),
                "Package".into(),
                "Version".into(),
            ];
            let r = process::run(&argv, &self.env)?;
            if !r.ok() {
                return Err(ModuleError::new(format!(
                    "Unable to install package: {}",
                    r.stderr.trim()
                )));
            }
            let field = |k: &str| {
                r.stdout
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{k}: ")))
                    .map(str::trim)
                    .unwrap_or("")
                    .to_string()
            };
            let (name, version) = (field("Package"), field("Version"));
            if let Some(inst) = status.installed(&name) {
                match dpkg::compare_versions(&version, &inst.version) {
                    std::cmp::Ordering::Equal => continue,
                    std::cmp::Ordering::Less if !(self.p.force || self.p.allow_downgrade) => {
                        return Err(ModuleError::new("A later version is already installed"))
                    }
                    _ => {}
                }
            }
            todo.push(path.display().to_string());
        }
        if todo.is_empty() {
            return Ok(ModuleOutput::ok().field("stdout", "").field("stderr", ""));
        }
        let mut argv = self.install_argv(&todo, false);
        if self.p.force && !argv.contains(&"--allow-downgrades".to_string()) {
            argv.push("--allow-downgrades".into());
        }
        let r = self.apt_get(true, &argv)?;
        if !r.ok() {
            let mut e = ModuleError::new(format!("{} failed", process::display(&argv)));
            e.fields.insert("stdout".into(), r.stdout.into());
            e.fields.insert("stderr".into(), r.stderr.into());
            return Err(e);
        }
        let mut out = ModuleOutput::ok();
        out.changed = true;
        out.diffs = self.diff_of(&r.stdout);
        Ok(out.field("stdout", r.stdout).field("stderr", r.stderr))
    }
}

/// A policy for an installed package when apt was not asked (its only known version).
fn installed_policy(status: &Status, name: &str) -> Policy {
    let v = status.installed(name).map(|i| i.version.clone());
    Policy {
        installed: v.clone(),
        candidate: v.clone(),
        versions: v.into_iter().collect(),
    }
}

fn read_status() -> Result<Status, ModuleError> {
    Status::read().map_err(|e| ModuleError::io("cannot read", Path::new(dpkg::STATUS_PATH), e))
}

fn absolute(p: &str) -> PathBuf {
    let path = PathBuf::from(p);
    if path.is_absolute() {
        path
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| "/".into())
            .join(path)
    }
}

/// `apt-mark manual` for the named packages apt marked as automatically installed (one call,
/// none when there are none).
fn mark_installed_manually(names: &[String], env: &[(String, String)]) -> Result<(), ModuleError> {
    let text = std::fs::read_to_string(dpkg::EXTENDED_STATES_PATH).unwrap_or_default();
    let auto: BTreeSet<String> = dpkg::auto_installed(&text).into_iter().collect();
    let marked: Vec<String> = names
        .iter()
        .filter(|n| auto.contains(dpkg::split_arch(n).0))
        .cloned()
        .collect();
    if marked.is_empty() {
        return Ok(());
    }
    let Some(apt_mark) = process::find_bin("apt-mark") else {
        return Ok(());
    };
    let mut argv = vec![apt_mark, "manual".into()];
    argv.extend(marked);
    let r = process::run(&argv, env)?;
    if !r.ok() {
        let mut e = ModuleError::new(format!(
            "'{}' failed: {}",
            process::display(&argv),
            r.stderr
        ));
        e.fields.insert("stdout".into(), r.stdout.into());
        e.fields.insert("stderr".into(), r.stderr.into());
        e.fields.insert("rc".into(), r.rc.into());
        return Err(e);
    }
    Ok(())
}

/// The module, as ansible-core's `main` orders it.
pub fn run_apt(args: &Args, ctx: &ModuleCtx) -> ModuleResult {
    let p = AptArgs::parse(args)?;
    let run = Run {
        env: apt_env(ctx),
        apt_get: bin("apt-get")?,
        ctx,
        p,
    };
    let p = &run.p;
    let nothing_else =
        p.packages.as_ref().is_none_or(|l| l.is_empty()) && p.upgrade.is_none() && p.deb.is_none();

    if p.clean {
        let r = process::run(&[run.apt_get.clone(), "clean".into()], &run.env)?;
        if !r.ok() || !r.stderr.is_empty() {
            let mut e = ModuleError::new(if r.ok() {
                format!("apt-get clean failed: {}", r.stderr)
            } else {
                "apt-get clean failed".into()
            });
            e.fields.insert("stdout".into(), r.stdout.into());
            e.fields.insert("rc".into(), r.rc.into());
            return Err(e);
        }
        if nothing_else {
            let mut out = ModuleOutput::ok()
                .field("stdout", r.stdout.clone())
                .field("stderr", r.stderr);
            out.changed = true;
            out.msg = Some(r.stdout.clone());
            out.diffs = run.diff_of(&r.stdout);
            return Ok(out);
        }
    }

    let mut updated_cache = false;
    let mut update_time = cache_mtime();
    if p.update_cache || p.cache_valid_time != 0 {
        if update_time + p.cache_valid_time < now_secs() {
            if !ctx.check {
                run.update_cache()?;
            }
            let after = cache_mtime();
            updated_cache = ctx.check || after != update_time;
            update_time = after;
        }
        if nothing_else {
            let mut out = ModuleOutput::ok()
                .field("cache_updated", updated_cache)
                .field("cache_update_time", update_time);
            out.changed = updated_cache;
            return Ok(out);
        }
    }
    if let Some(mode) = &p.upgrade {
        return run.upgrade(mode);
    }
    if let Some(deb) = &p.deb {
        if p.state != State::Present {
            return Err(ModuleError::new("deb only supports state=present"));
        }
        return run.install_deb(deb);
    }
    let unfiltered = p.packages.clone().unwrap_or_default();
    let packages: Vec<String> = unfiltered
        .iter()
        .filter(|p| *p != "*")
        .map(|p| p.trim().to_string())
        .collect();
    let all_installed = unfiltered.iter().any(|p| p == "*");
    if p.state == State::Latest && all_installed {
        if !packages.is_empty() {
            return Err(ModuleError::new(
                "unable to install additional packages when upgrading all installed packages",
            ));
        }
        return run.upgrade("yes");
    }
    if let Some(bad) = packages.iter().find(|p| p.matches('=').count() > 1) {
        return Err(ModuleError::new(format!("invalid package spec: {bad}")));
    }
    if packages.is_empty() {
        if p.autoclean {
            return run.cleanup("autoclean");
        }
        if p.autoremove {
            return run.cleanup("autoremove");
        }
    }
    match p.state {
        State::Absent => run.remove(&packages),
        _ => run.install(&packages, (updated_cache, update_time)),
    }
}

impl Action for Apt {
    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }

    fn run(&self, args: &Args, ctx: &ModuleCtx) -> ModuleResult {
        run_apt(args, ctx)
    }

    fn restore(
        &self,
        args: &Args,
        _ctx: &ModuleCtx,
    ) -> Result<Option<(String, Restore)>, ModuleError> {
        restore_packages(args).map(Some)
    }
}

/// What an `apt` task replaces: each named package's installed version (put back with
/// `apt name=pkg=VERSION allow_downgrade=true`, which fails naming the version when the
/// repositories no longer have it), or its absence (put back by removing it). Upgrades of
/// everything, `.deb` files, autoremove and wildcards are not journaled: the rollback says so.
pub fn restore_packages(args: &Args) -> Result<(String, Restore), ModuleError> {
    let a = AptArgs::parse(args)?;
    let names: Vec<String> = a
        .packages
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|p| Spec::parse(p).name)
        .collect();
    let subject = if names.is_empty() {
        a.upgrade
            .clone()
            .map_or_else(|| "cache".to_string(), |u| format!("upgrade={u}"))
    } else {
        names.join(",")
    };
    let why = if a.upgrade.is_some() {
        Some("`upgrade` changes every package; tend does not journal what it replaced")
    } else if a.deb.is_some() {
        Some("packages installed from a .deb file are not journaled")
    } else if a.autoremove {
        Some("`autoremove` removes packages tend does not journal")
    } else if names.iter().any(|n| n.contains(['*', '?', '['])) {
        Some("package names with wildcards are not journaled")
    } else {
        None
    };
    if let Some(why) = why {
        return Ok((subject, Restore::Cannot(why.to_string())));
    }
    let status = crate::dpkg::Status::read()
        .map_err(|e| ModuleError::new(format!("cannot read the dpkg status database: {e}")))?;
    let mut versions = Vec::new();
    let mut absent = Vec::new();
    for n in &names {
        match status.installed(n).filter(|i| i.is_installed()) {
            Some(i) => versions.push(format!("{n}={}", i.version)),
            None => absent.push(n.clone()),
        }
    }
    let mut steps = Vec::new();
    if !absent.is_empty() {
        steps.push(UndoStep::new(
            "apt",
            json!({"name": absent, "state": "absent", "purge": a.purge}),
        ));
    }
    if !versions.is_empty() {
        steps.push(UndoStep::new(
            "apt",
            json!({"name": versions, "state": "present", "allow_downgrade": true}),
        ));
    }
    Ok((subject, Restore::Steps(steps)))
}

/// The package manager `package` delegates to: `use`, then `ansible_package_use`, then the
/// gathered `ansible_facts.pkg_mgr`, then the host's own.
fn package_backend(args: &Args, ctx: &ModuleCtx) -> Result<String, ModuleError> {
    if let Some(u) = args.str("use")?.filter(|u| u != "auto") {
        return Ok(u);
    }
    let var = |name: &str| ctx.scope.lookup_json(name).ok().flatten();
    if let Some(Value::String(u)) = var("ansible_package_use").filter(|u| u != "") {
        return Ok(u);
    }
    let facts_mgr = var("ansible_facts").and_then(|f| {
        f.get("pkg_mgr")
            .and_then(|m| m.as_str().map(str::to_string))
    });
    Ok(facts_mgr.unwrap_or_else(|| crate::facts::pkg_mgr().to_string()))
}

impl Action for Package {
    fn params(&self) -> &'static [&'static str] {
        PACKAGE_PARAMS
    }

    fn run(&self, args: &Args, ctx: &ModuleCtx) -> ModuleResult {
        let backend = package_backend(args, ctx)?;
        match backend.as_str() {
            "apt" | "ansible.builtin.apt" | "ansible.legacy.apt" => {
                let mut rest: Vars = args.0.clone();
                rest.remove("use");
                run_apt(&Args::new(rest), ctx)
            }
            "unknown" => Err(ModuleError::new(
                "Could not detect which package manager to use. Try gathering facts or setting \
                 the \"use\" option.",
            )),
            other => Err(ModuleError::new(format!(
                "tend's package module supports the apt package manager only; this host uses \
                 {other}"
            ))),
        }
    }

    fn restore(
        &self,
        args: &Args,
        ctx: &ModuleCtx,
    ) -> Result<Option<(String, Restore)>, ModuleError> {
        if !matches!(
            package_backend(args, ctx)?.as_str(),
            "apt" | "ansible.builtin.apt" | "ansible.legacy.apt"
        ) {
            return Ok(None);
        }
        let mut rest: Vars = args.0.clone();
        rest.remove("use");
        restore_packages(&Args::new(rest)).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> Status {
        Status::parse(
            "Package: tree\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.1.0-1\n\n\
Package: tend-demo\nStatus: install ok installed\nArchitecture: all\nVersion: 1.0\n\n\
Package: hello\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 2.10-3\n\n\
Package: exim4-daemon-light\nStatus: install ok installed\nArchitecture: amd64\n\
Version: 4.96\nProvides: mail-transport-agent\n",
        )
    }

    fn known() -> Known {
        let text = [
            "tree:",
            "  Installed: 2.1.0-1",
            "  Candidate: 2.1.0-1",
            "  Version table:",
            " *** 2.1.0-1 500",
            "        500 file:/srv/tend-lab-repo ./ Packages",
            "tend-demo:",
            "  Installed: 1.0",
            "  Candidate: 2.0",
            "  Version table:",
            "     2.0 500",
            "        500 file:/srv/tend-lab-repo ./ Packages",
            " *** 1.0 500",
            "        500 file:/srv/tend-lab-repo ./ Packages",
            "nginx:",
            "  Installed: (none)",
            "  Candidate: 1.22.1-9",
            "  Version table:",
            "     1.22.1-9 500",
            "        500 file:/srv/tend-lab-repo ./ Packages",
            "hello:",
            "  Installed: (none)",
            "  Candidate: 2.10-3",
            "  Version table:",
            "     2.10-3 500",
            "        500 file:/srv/tend-lab-repo ./ Packages",
            "mail-transport-agent:",
            "  Installed: (none)",
            "  Candidate: (none)",
            "  Version table:",
            "awk:",
            "  Installed: (none)",
            "  Candidate: (none)",
            "  Version table:",
            "ghost:",
            "  Installed: (none)",
            "  Candidate: (none)",
            "  Version table:",
        ]
        .join("\n");
        let mut providers = BTreeMap::new();
        providers.insert(
            "mail-transport-agent".to_string(),
            vec!["exim4-daemon-light".to_string()],
        );
        providers.insert(
            "awk".to_string(),
            vec!["mawk".to_string(), "gawk".to_string()],
        );
        providers.insert("ghost".to_string(), vec![]);
        let mut policy = dpkg::parse_policy(&text);
        policy.insert(
            "exim4-daemon-light".into(),
            installed_policy(&status(), "exim4-daemon-light"),
        );
        Known { policy, providers }
    }

    fn specs(list: &[&str]) -> Vec<Spec> {
        list.iter().map(|s| Spec::parse(s)).collect()
    }

    #[test]
    fn specs_split_like_ansible() {
        assert_eq!(Spec::parse("nginx").cmp, None);
        let s = Spec::parse("tend-demo=1.0*");
        assert_eq!(
            (s.name.as_str(), s.cmp, s.version.as_deref()),
            ("tend-demo", Some(Cmp::Eq), Some("1.0*"))
        );
        let s = Spec::parse("foo>=2.0");
        assert_eq!(
            (s.name.as_str(), s.cmp, s.version.as_deref()),
            ("foo", Some(Cmp::Ge), Some("2.0"))
        );
    }

    #[test]
    fn install_plans() {
        let (st, k) = (status(), known());
        let plan = |l: &[&str], upgrade| plan_install(&specs(l), &st, &k, upgrade, false);
        // Installed ones need nothing; missing ones are pinned to the candidate.
        assert_eq!(
            plan(&["tree", "nginx"], false).unwrap(),
            vec!["nginx=1.22.1-9"]
        );
        // latest upgrades, present does not.
        assert_eq!(plan(&["tend-demo"], false).unwrap(), Vec::<String>::new());
        assert_eq!(plan(&["tend-demo"], true).unwrap(), vec!["tend-demo=2.0"]);
        // A pinned version: installed and matching → nothing; another → that version.
        assert!(plan(&["tend-demo=1.0"], false).unwrap().is_empty());
        assert_eq!(
            plan(&["tend-demo=2.*"], false).unwrap(),
            vec!["tend-demo=2.0"]
        );
        assert_eq!(
            plan(&["tend-demo>=1.5"], false).unwrap(),
            vec!["tend-demo=2.0"]
        );
        assert_eq!(
            plan(&["tend-demo=3.0"], false).unwrap_err().message(),
            "no available installation candidate for tend-demo=3.0"
        );
        assert_eq!(
            plan(&["nosuch"], false).unwrap_err().message(),
            "No package matching 'nosuch' is available"
        );
        // Virtual packages: one installed provider counts; several → apt decides; none →
        // not available.
        assert!(plan(&["mail-transport-agent"], false).unwrap().is_empty());
        assert_eq!(plan(&["awk"], false).unwrap(), vec!["awk"]);
        assert_eq!(
            plan(&["ghost"], false).unwrap_err(),
            PlanError::NoPackage("ghost".into())
        );
        // only_upgrade skips what is not installed.
        assert!(plan_install(&specs(&["nginx"]), &st, &k, true, true)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn remove_plans() {
        let st = status();
        let files = |n: &str, _: &str| n == "hello";
        let plan = |l: &[&str], purge| plan_remove(&specs(l), &st, purge, &files);
        assert_eq!(plan(&["tree", "nginx", "nosuch"], false), vec!["tree"]);
        // Config files left: only a purge touches them.
        assert!(plan(&["hello"], false).is_empty());
        assert_eq!(plan(&["hello"], true), vec!["hello"]);
        assert!(plan(&["tend-demo=2.0"], false).is_empty());
        assert_eq!(plan(&["tend-demo=1.*"], false), vec!["tend-demo=1.*"]);
    }

    #[test]
    fn candidates_are_skipped_when_all_is_installed() {
        let st = status();
        assert!(!needs_candidates(
            &specs(&["tree", "tend-demo"]),
            &st,
            State::Present,
            false
        ));
        assert!(needs_candidates(
            &specs(&["tree", "nginx"]),
            &st,
            State::Present,
            false
        ));
        assert!(needs_candidates(
            &specs(&["tree"]),
            &st,
            State::Latest,
            false
        ));
        assert!(needs_candidates(
            &specs(&["tree=2*"]),
            &st,
            State::Present,
            false
        ));
    }

    #[test]
    fn diff_is_the_prepared_part() {
        let out = "Reading package lists...\nBuilding dependency tree...\nReading state information...\n\
The following NEW packages will be installed:\n  tree\n0 upgraded, 1 newly installed, 0 to remove and 0 not upgraded.\n\
Inst tree (2.1.0-1 Debian:12)\n";
        assert_eq!(
            parse_diff(out),
            json!({"prepared": "The following NEW packages will be installed:\n  tree\n0 upgraded, 1 newly installed, 0 to remove and 0 not upgraded."})
        );
    }

    #[test]
    fn arguments_are_checked_like_ansible() {
        let parse = |v: serde_json::Value| {
            AptArgs::parse(&Args::new(v.as_object().unwrap().clone())).map_err(|e| e.msg)
        };
        assert_eq!(
            parse(json!({"state": "present"})).unwrap_err(),
            "one of the following is required: autoremove, deb, package, update_cache, upgrade"
        );
        assert_eq!(
            parse(json!({"name": "x", "deb": "/x.deb"})).unwrap_err(),
            "parameters are mutually exclusive: deb|package|upgrade"
        );
        let a = parse(json!({"pkg": "a, b", "update-cache": "yes", "lock_timeout": 5})).unwrap();
        assert_eq!(a.packages.unwrap(), vec!["a", "b"]);
        assert!(a.update_cache);
        assert_eq!(a.lock_timeout, 5);
        assert!(parse(json!({"name": "x", "state": "build-dep"}))
            .unwrap_err()
            .contains("build-dep"));
        let a = parse(json!({"name": ["x"], "install_recommends": false})).unwrap();
        let run_argv = {
            let templar = tend_lang::Templar::new();
            let scope = tend_lang::Scope::new(&templar, vec![]);
            let ctx = ModuleCtx {
                check: true,
                diff: false,
                templar: &templar,
                scope: &scope,
                search_dirs: &[],
                environment: &[],
                plan: crate::PlanMode::Off,
                journal: None,
            };
            let r = Run {
                p: a,
                ctx: &ctx,
                env: vec![],
                apt_get: "/usr/bin/apt-get".into(),
            };
            r.install_argv(&["x=1".into()], false)
        };
        assert_eq!(
            run_argv.join(" "),
            "/usr/bin/apt-get -y -o Dpkg::Options::=--force-confdef -o \
             Dpkg::Options::=--force-confold -o DPkg::Lock::Timeout=60 --simulate install x=1 \
             -o APT::Install-Recommends=no"
        );
    }
}
