//! `systemd_service` (alias `systemd`), `sysvinit` and `service`: ansible-core 2.19's service
//! modules.
//!
//! `service` runs the module for the host's service manager the way ansible-core's action
//! plugin picks it (`use`, then `ansible_facts.service_mgr`, then the host's own): `systemd`
//! hosts get `systemd_service`, hosts whose init is a plain `/etc/init.d` runner (the raw lab
//! hosts) get `sysvinit`; others are refused.
//!
//! Each call observes with the tool itself (`systemctl show` / `is-enabled`, `service NAME
//! status`), decides what to do from that with pure functions ([`systemd_actions`],
//! [`sysv_started`]) and only then runs the actions: check mode stops before them and reports
//! the same `changed`. Only `scope: system` is supported.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;
use tend_proto::{Value, Vars};

use crate::journal::{Restore, UndoStep};
use crate::process::{self, Ran};
use crate::{Action, Args, ModuleCtx, ModuleError, ModuleOutput, ModuleResult};

pub struct Systemd;
pub struct SysvInit;
pub struct Service;

pub const SYSTEMD_PARAMS: &[&str] = &[
    "name",
    "service",
    "unit",
    "state",
    "enabled",
    "force",
    "masked",
    "daemon_reload",
    "daemon-reload",
    "daemon_reexec",
    "daemon-reexec",
    "scope",
    "no_block",
];

pub const SYSV_PARAMS: &[&str] = &[
    "name",
    "service",
    "state",
    "enabled",
    "sleep",
    "pattern",
    "arguments",
    "args",
    "runlevels",
    "daemonize",
];

pub const SERVICE_PARAMS: &[&str] = &[
    "name",
    "state",
    "enabled",
    "sleep",
    "pattern",
    "runlevel",
    "arguments",
    "args",
    "use",
];

const STATES: &[&str] = &["reloaded", "restarted", "started", "stopped"];

fn env(ctx: &ModuleCtx) -> Vec<(String, String)> {
    let mut e = ctx.environment.to_vec();
    e.push(("LANG".into(), "C.UTF-8".into()));
    e.push(("LC_ALL".into(), "C.UTF-8".into()));
    e
}

// ---- systemd ----------------------------------------------------------------------------------

/// `systemctl show` output as ansible-core parses it: `Key=value` lines; only `Exec*` values
/// in braces may span lines.
pub fn parse_systemctl_show(text: &str) -> BTreeMap<String, String> {
    let mut parsed = BTreeMap::new();
    let mut multi: Vec<&str> = Vec::new();
    let mut key: Option<String> = None;
    for line in text.split('\n') {
        match &key {
            None => {
                if let Some((k, v)) = line.split_once('=') {
                    if k.starts_with("Exec")
                        && v.trim_start().starts_with('{')
                        && !v.trim_end().ends_with('}')
                    {
                        multi.push(v);
                        key = Some(k.to_string());
                        continue;
                    }
                    parsed.insert(k.to_string(), v.trim().to_string());
                }
            }
            Some(k) => {
                multi.push(line);
                if line.trim_end().ends_with('}') {
                    parsed.insert(k.clone(), multi.join("\n").trim().to_string());
                    multi.clear();
                    key = None;
                }
            }
        }
    }
    parsed
}

fn request_was_ignored(out: &str) -> bool {
    !out.contains('=') && (out.contains("ignoring request") || out.contains("ignoring command"))
}

/// What `systemd_service` found about a unit before acting.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnitObservation {
    pub found: bool,
    pub status: BTreeMap<String, String>,
    /// `systemctl is-enabled` stdout (trimmed) and exit code.
    pub is_enabled: Option<(String, i32)>,
    /// An init script exists for the name (`/etc/init.d/NAME`).
    pub is_initd: bool,
    /// The init script is linked into a runlevel (`/etc/rc?.d/S??NAME`).
    pub sysv_enabled: bool,
}

/// What `systemd_service` wants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnitDesired {
    pub state: Option<String>,
    pub enabled: Option<bool>,
    pub masked: Option<bool>,
}

/// The decisions, in order: mask/unmask, enable/disable, start/stop/restart/reload.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnitPlan {
    pub mask: Option<&'static str>,
    /// (action, whether it was enabled before).
    pub enable: Option<(&'static str, bool)>,
    pub enabled_before: Option<bool>,
    pub state: Option<&'static str>,
}

impl UnitPlan {
    pub fn changed(&self) -> bool {
        self.mask.is_some() || self.enable.is_some() || self.state.is_some()
    }
}

fn is_running(status: &BTreeMap<String, String>) -> bool {
    matches!(
        status.get("ActiveState").map(String::as_str),
        Some("active" | "activating")
    )
}

/// Pure: ansible-core's decisions for `systemd_service` from what was observed.
pub fn systemd_actions(d: &UnitDesired, o: &UnitObservation) -> UnitPlan {
    let mut plan = UnitPlan::default();
    if let Some(want) = d.masked {
        let masked = o.is_enabled.as_ref().is_some_and(|(s, _)| s == "masked");
        if masked != want {
            plan.mask = Some(if want { "mask" } else { "unmask" });
        }
    }
    if let Some(want) = d.enabled {
        let enabled = match &o.is_enabled {
            Some((out, 0)) => !matches!(out.as_str(), "enabled-runtime" | "indirect" | "alias"),
            Some((out, 1)) => o.is_initd && !out.ends_with("disabled") && o.sysv_enabled,
            _ => false,
        };
        plan.enabled_before = Some(enabled);
        if enabled != want {
            plan.enable = Some((if want { "enable" } else { "disable" }, enabled));
        }
    }
    if let Some(state) = &d.state {
        if o.status.contains_key("ActiveState") {
            let running = is_running(&o.status);
            plan.state = match state.as_str() {
                "started" if !running => Some("start"),
                "stopped"
                    if running
                        || o.status.get("ActiveState").map(String::as_str)
                            == Some("deactivating") =>
                {
                    Some("stop")
                }
                "restarted" | "reloaded" if !running => Some("start"),
                "restarted" => Some("restart"),
                "reloaded" => Some("reload"),
                _ => None,
            };
        }
    }
    plan
}

fn systemctl_argv(systemctl: &str, no_block: bool, force: bool) -> Vec<String> {
    let mut v = vec![systemctl.to_string()];
    if no_block {
        v.push("--no-block".into());
    }
    if force {
        v.push("--force".into());
    }
    v
}

fn with(base: &[String], more: &[&str]) -> Vec<String> {
    let mut v = base.to_vec();
    v.extend(more.iter().map(|s| s.to_string()));
    v
}

fn initd_script(name: &str) -> String {
    if name.starts_with('/') {
        name.to_string()
    } else {
        format!("/etc/init.d/{name}")
    }
}

/// `/etc/rc?.d/S??NAME` exists (ansible-core's `sysv_is_enabled`), in one runlevel or any.
fn sysv_is_enabled(name: &str, runlevel: Option<&str>) -> bool {
    let base = if Path::new("/etc/rc0.d").is_dir() {
        "/etc"
    } else {
        "/etc/init.d"
    };
    let levels: Vec<String> = match runlevel {
        Some(r) => vec![r.to_string()],
        None => "0123456S".chars().map(|c| c.to_string()).collect(),
    };
    levels.iter().any(|rl| {
        std::fs::read_dir(format!("{base}/rc{rl}.d"))
            .map(|rd| {
                rd.flatten().any(|e| {
                    let f = e.file_name();
                    let f = f.to_string_lossy();
                    f.len() == name.len() + 3 && f.starts_with('S') && f.ends_with(name)
                })
            })
            .unwrap_or(false)
    })
}

fn missing(name: &str) -> ModuleError {
    ModuleError::new(format!("Could not find the requested service {name}: host"))
}

fn run_systemd(args: &Args, ctx: &ModuleCtx) -> ModuleResult {
    let unit = args.str_any(&["name", "service", "unit"])?;
    let state = args.choice("state", STATES)?;
    let enabled = args.bool("enabled")?;
    let masked = args.bool("masked")?;
    let bool_any = |names: &[&str]| -> Result<bool, ModuleError> {
        match args.first(names) {
            None => Ok(false),
            Some((k, v)) => Ok(crate::args::to_bool(k, v)?),
        }
    };
    let daemon_reload = bool_any(&["daemon_reload", "daemon-reload"])?;
    let daemon_reexec = bool_any(&["daemon_reexec", "daemon-reexec"])?;
    if state.is_none()
        && enabled.is_none()
        && masked.is_none()
        && !args.has("daemon_reload")
        && !args.has("daemon-reload")
        && !args.has("daemon_reexec")
        && !args.has("daemon-reexec")
    {
        return Err(ModuleError::new(
            "one of the following is required: state, enabled, masked, daemon_reload, \
             daemon_reexec",
        ));
    }
    for (k, given) in [
        ("state", state.is_some()),
        ("enabled", enabled.is_some()),
        ("masked", masked.is_some()),
    ] {
        if given && unit.is_none() {
            return Err(ModuleError::new(format!(
                "missing parameter(s) required by '{k}': name"
            )));
        }
    }
    let scope = args
        .choice("scope", &["system", "user", "global"])?
        .unwrap_or_else(|| "system".into());
    if scope != "system" {
        return Err(ModuleError::new(format!(
            "tend's systemd_service module supports scope=system only, not scope={scope}"
        )));
    }
    if let Some(u) = &unit {
        for g in ["*", "?", "["] {
            if u.contains(g) {
                return Err(ModuleError::new(format!(
                    "This module does not currently support using glob patterns, found '{g}' \
                     in service name: {u}"
                )));
            }
        }
    }
    let systemctl = process::find_bin("systemctl").ok_or_else(|| {
        ModuleError::new(format!(
            "Failed to find required executable \"systemctl\" in paths: {}",
            std::env::var("PATH").unwrap_or_default()
        ))
    })?;
    let env = env(ctx);
    let base = systemctl_argv(
        &systemctl,
        args.bool_or("no_block", false)?,
        args.bool_or("force", false)?,
    );
    let run = |argv: Vec<String>| process::run(&argv, &env);

    let mut out = ModuleOutput::ok()
        .field("name", unit.clone().map_or(Value::Null, Value::from))
        .field("status", json!({}));
    for (flag, verb) in [
        (daemon_reload, "daemon-reload"),
        (daemon_reexec, "daemon-reexec"),
    ] {
        if flag && !ctx.check {
            let r = run(with(&base, &[verb]))?;
            if !r.ok() {
                return Err(ModuleError::new(format!(
                    "failure {} during {verb}: {}",
                    r.rc, r.stderr
                )));
            }
        }
    }
    let Some(unit) = unit else {
        return Ok(out);
    };

    // Observe.
    let mut o = UnitObservation {
        is_initd: Path::new(&initd_script(&unit)).exists(),
        ..Default::default()
    };
    let mut is_systemd = false;
    let show = run(with(&base, &["show", &unit]))?;
    if show.ok() && !(request_was_ignored(&show.stdout) || request_was_ignored(&show.stderr)) {
        if !show.stdout.is_empty() {
            o.status = parse_systemctl_show(&show.stdout);
            let load = o.status.get("LoadState").map(String::as_str);
            is_systemd = load.is_some_and(|l| l != "not-found");
            if is_systemd && load != Some("masked") {
                if let Some(err) = o.status.get("LoadError") {
                    return Err(ModuleError::new(format!(
                        "Error loading unit file '{unit}': {err}"
                    )));
                }
            }
        }
    } else {
        let r = run(with(&base, &["is-enabled", &unit]))?;
        const VALID: &[&str] = &[
            "enabled",
            "enabled-runtime",
            "linked",
            "linked-runtime",
            "masked",
            "masked-runtime",
            "static",
            "indirect",
            "disabled",
            "generated",
            "transient",
        ];
        is_systemd =
            VALID.contains(&r.stdout.trim()) || run(with(&base, &["list-unit-files", &unit]))?.ok();
    }
    o.found = is_systemd || o.is_initd;
    if masked.is_some() || enabled.is_some() {
        let r = run(with(&base, &["is-enabled", &unit, "-l"]))?;
        o.is_enabled = Some((r.stdout.trim().to_string(), r.rc));
    }
    if enabled.is_some() {
        o.sysv_enabled = o.is_initd && sysv_is_enabled(&unit, None);
    }
    let d = UnitDesired {
        state: state.clone(),
        enabled,
        masked,
    };
    if (enabled.is_some() || state.is_some()) && !o.found {
        // ansible-core masks first (it may work on a missing unit), then fails.
        if masked.is_none() || systemd_actions(&d, &o).mask.is_none() {
            return Err(missing(&unit));
        }
    }
    if state.is_some() && o.found && !o.status.contains_key("ActiveState") {
        let mut e = ModuleError::new("Service is in unknown state");
        e.fields.insert("status".into(), status_value(&o.status));
        return Err(e);
    }
    let plan = systemd_actions(&d, &o);
    out = out.field("status", status_value(&o.status));

    // Act.
    if let Some(action) = plan.mask {
        if !ctx.check {
            let r = run(with(&base, &[action, &unit]))?;
            if !r.ok() {
                if !o.found {
                    return Err(missing(&unit));
                }
                return Err(ModuleError::new(format!(
                    "Failed to {action} the service ({unit}): {}",
                    r.stderr.trim()
                )));
            }
        }
    }
    if enabled.is_some() && !o.found {
        return Err(missing(&unit));
    }
    if let Some(before) = plan.enabled_before {
        out = out.field("enabled", before);
    }
    if let Some((action, before)) = plan.enable {
        if !ctx.check {
            let r = run(with(&base, &[action, &unit]))?;
            if !r.ok() {
                return Err(ModuleError::new(format!(
                    "Unable to {action} service {unit}: {}{}",
                    r.stdout, r.stderr
                )));
            }
        }
        out = out.field("enabled", !before);
    }
    if let Some(s) = &state {
        if !o.found {
            return Err(missing(&unit));
        }
        let shown = if s == "restarted" || s == "reloaded" {
            "started"
        } else {
            s.as_str()
        };
        out = out.field("state", shown);
        if let Some(action) = plan.state {
            if !ctx.check {
                let r = run(with(&base, &[action, &unit]))?;
                if !r.ok() {
                    return Err(ModuleError::new(format!(
                        "Unable to {action} service {unit}: {}",
                        r.stderr
                    )));
                }
            }
        }
    }
    out.changed = plan.changed();
    Ok(out)
}

fn status_value(status: &BTreeMap<String, String>) -> Value {
    Value::Object(
        status
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

impl Action for Systemd {
    fn params(&self) -> &'static [&'static str] {
        SYSTEMD_PARAMS
    }

    fn run(&self, args: &Args, ctx: &ModuleCtx) -> ModuleResult {
        run_systemd(args, ctx)
    }

    fn restore(
        &self,
        args: &Args,
        ctx: &ModuleCtx,
    ) -> Result<Option<(String, Restore)>, ModuleError> {
        restore_unit(args, ctx)
    }
}

/// What a `systemd_service` task replaces: whether the unit was active, enabled, masked —
/// put back with `systemd state=started|stopped enabled=… masked=…`. A unit that did not
/// exist has nothing to put back (the package that brings it is journaled on its own).
fn restore_unit(args: &Args, ctx: &ModuleCtx) -> Result<Option<(String, Restore)>, ModuleError> {
    let Some(unit) = args.str_any(&["name", "service", "unit"])? else {
        return Ok(None);
    };
    let Some(systemctl) = process::find_bin("systemctl") else {
        return Ok(None);
    };
    let r = process::run(
        &process::argv([
            systemctl.as_str(),
            "show",
            "--property=LoadState,ActiveState,UnitFileState",
            "--",
            unit.as_str(),
        ]),
        &env(ctx),
    )?;
    let show = parse_systemctl_show(&r.stdout);
    let state = args.str("state")?;
    Ok(Some((
        unit.clone(),
        unit_restore(&unit, &show, state.as_deref()),
    )))
}

/// Pure: the undo of a unit from what `systemctl show` said about it before, `state` being
/// the state the task asked for. A unit the run restarted or reloaded while it was running
/// (a handler, typically, after its configuration changed) is restarted or reloaded again by
/// the rollback — after the files it reads are put back (units are restored last), so that it
/// runs what was restored; a unit merely started or stopped is put back in its old state.
pub fn unit_restore(unit: &str, show: &BTreeMap<String, String>, state: Option<&str>) -> Restore {
    let get = |k: &str| show.get(k).map(String::as_str).unwrap_or("");
    if get("LoadState") == "not-found" || show.is_empty() {
        return Restore::Steps(Vec::new());
    }
    let mut want = json!({"name": unit});
    let active = matches!(get("ActiveState"), "active" | "activating" | "reloading");
    want["state"] = Value::from(match (active, state) {
        (true, Some(again @ ("restarted" | "reloaded"))) => again,
        (true, _) => "started",
        (false, _) => "stopped",
    });
    match get("UnitFileState") {
        "enabled" | "enabled-runtime" => {
            want["enabled"] = Value::Bool(true);
            want["masked"] = Value::Bool(false);
        }
        "disabled" => {
            want["enabled"] = Value::Bool(false);
            want["masked"] = Value::Bool(false);
        }
        "masked" | "masked-runtime" => want["masked"] = Value::Bool(true),
        _ => {}
    }
    Restore::Steps(vec![UndoStep::new("systemd", want)])
}

// ---- sysvinit ---------------------------------------------------------------------------------

/// Pure: ansible-core's reading of `service NAME status` (or `script status`): `Some(true)`
/// running, `Some(false)` stopped, `None` when it cannot tell.
pub fn sysv_started(name: &str, r: &Ran) -> Option<bool> {
    if name == "iptables" && r.stdout.contains("ACCEPT") {
        return Some(true);
    }
    if r.stdout.matches('\n').count() <= 1 {
        let clean = r.stdout.to_lowercase().replace(&name.to_lowercase(), "");
        for stopped in [
            "stop",
            "is dead ",
            "dead but ",
            "could not access pid file",
            "inactive",
        ] {
            if clean.contains(stopped) {
                return Some(false);
            }
        }
        for started in ["run", "start", "active"] {
            if clean.contains(started) && !clean.contains("not ") {
                return Some(true);
            }
        }
    }
    if [1, 2, 3, 4, 69].contains(&r.rc) {
        return Some(false);
    }
    if r.rc == 0 {
        return Some(true);
    }
    None
}

fn run_sysvinit(args: &Args, ctx: &ModuleCtx) -> ModuleResult {
    let name = args
        .str_any(&["name", "service"])?
        .ok_or_else(|| ModuleError::new("missing required arguments: name"))?;
    let state = args.choice("state", STATES)?;
    let enabled = args.bool("enabled")?;
    if state.is_none() && enabled.is_none() {
        return Err(ModuleError::new(
            "one of the following is required: state, enabled",
        ));
    }
    if args.has("pattern") {
        return Err(ModuleError::new(
            "tend's sysvinit module does not support pattern yet",
        ));
    }
    if args.bool_or("daemonize", false)? {
        return Err(ModuleError::new(
            "tend's sysvinit module does not support daemonize yet",
        ));
    }
    let sleep = args.int("sleep")?.unwrap_or(1).max(0) as u64;
    let arguments = args.str_any(&["arguments", "args"])?;
    let runlevels = args.list("runlevels")?;
    let script = initd_script(&name);
    if !Path::new(&script).exists() {
        return Err(ModuleError::new(format!(
            "Could not find the requested service {name}: "
        )));
    }
    let env = env(ctx);

    // Observe.
    let enabled_now: Vec<(String, bool)> = match &runlevels {
        Some(rls) => rls
            .iter()
            .map(|rl| (rl.clone(), sysv_is_enabled(&name, Some(rl))))
            .collect(),
        None => vec![(String::new(), sysv_is_enabled(&name, None))],
    };
    let status_argv = match process::find_bin("service") {
        Some(s) => vec![s, name.clone(), "status".into()],
        None => vec![script.clone(), "status".into()],
    };
    let st = process::run(&status_argv, &env)?;
    let is_started = sysv_started(&name, &st).unwrap_or(false);

    let mut changed = false;
    let mut en = json!({"changed": false, "rc": null, "stdout": null, "stderr": null});
    if let Some(want) = enabled {
        if enabled_now.iter().any(|(_, e)| *e != want) {
            changed = true;
            en["changed"] = json!(true);
        }
        if let Some(rls) = &runlevels {
            en["runlevels"] = json!(rls);
        }
        if changed && !ctx.check {
            let r =
                match process::find_bin("update-rc.d") {
                    Some(u) => {
                        let mut argv = vec![u, name.clone()];
                        match (&runlevels, want) {
                            (Some(rls), true) => {
                                argv.push("enable".into());
                                argv.extend(rls.iter().cloned());
                            }
                            (Some(rls), false) => {
                                argv.push("disable".into());
                                argv.extend(rls.iter().cloned());
                            }
                            (None, true) => argv.push("defaults".into()),
                            (None, false) => argv.push("disable".into()),
                        }
                        process::run(&argv, &env)?
                    }
                    None => return Err(ModuleError::new(
                        "tend's sysvinit module needs update-rc.d to enable or disable services",
                    )),
                };
            en["rc"] = json!(r.rc);
            en["stdout"] = json!(r.stdout);
            en["stderr"] = json!(r.stderr);
            if r.stderr.contains("illegal runlevel specified") {
                let mut e = ModuleError::new(format!(
                    "Illegal runlevel specified for enable operation on service {name}"
                ));
                e.fields.insert("name".into(), name.clone().into());
                e.fields.insert("changed".into(), true.into());
                e.fields.insert("status".into(), json!({"enabled": en}));
                return Err(e);
            }
        }
    }
    let state_key = state.clone().unwrap_or_else(|| "null".into());
    let mut st_rec = json!({"changed": false, "rc": null, "stdout": null, "stderr": null});
    if let Some(s) = &state {
        let action = s.trim_end_matches("ed").trim_end_matches('p');
        let action = match s.as_str() {
            "stopped" => "stop",
            "started" => "start",
            "restarted" => "restart",
            _ => action,
        };
        let runme = |doit: &str| -> Result<Ran, ModuleError> {
            let mut argv = vec![script.clone(), doit.to_string()];
            if let Some(a) = &arguments {
                argv.extend(a.split_whitespace().map(str::to_string));
            }
            let r = process::run(&argv, &env)?;
            if !r.ok() {
                let mut e = ModuleError::new(format!("Failed to {action} service: {name}"));
                e.fields.insert("rc".into(), r.rc.into());
                e.fields.insert("stdout".into(), r.stdout.into());
                e.fields.insert("stderr".into(), r.stderr.into());
                return Err(e);
            }
            Ok(r)
        };
        let act = action == "restart"
            || is_started != (action == "start")
            || is_started == (action == "stop");
        if act {
            changed = true;
            st_rec["changed"] = json!(true);
            if !ctx.check {
                let mut last = Ran::default();
                if action == "restart" {
                    for doit in ["stop", "start"] {
                        last = runme(doit)?;
                        if sleep > 0 {
                            std::thread::sleep(std::time::Duration::from_secs(sleep));
                        }
                    }
                } else {
                    last = runme(action)?;
                }
                st_rec["rc"] = json!(last.rc);
                st_rec["stdout"] = json!(last.stdout);
                st_rec["stderr"] = json!(last.stderr);
            }
        }
    }
    let mut status = Vars::new();
    status.insert("enabled".into(), en);
    status.insert(state_key, st_rec);
    let mut out = ModuleOutput::ok()
        .field("name", name)
        .field("status", Value::Object(status));
    out.changed = changed;
    Ok(out)
}

impl Action for SysvInit {
    fn params(&self) -> &'static [&'static str] {
        SYSV_PARAMS
    }

    fn run(&self, args: &Args, ctx: &ModuleCtx) -> ModuleResult {
        run_sysvinit(args, ctx)
    }
}

// ---- service ----------------------------------------------------------------------------------

/// The service manager `service` delegates to.
fn service_backend(args: &Args, ctx: &ModuleCtx) -> Result<String, ModuleError> {
    if let Some(u) = args
        .str("use")?
        .map(|u| u.to_lowercase())
        .filter(|u| u != "auto")
    {
        return Ok(u);
    }
    let facts = ctx.scope.lookup_json("ansible_facts").ok().flatten();
    if let Some(m) = facts
        .as_ref()
        .and_then(|f| f.get("service_mgr"))
        .and_then(Value::as_str)
    {
        return Ok(m.to_string());
    }
    Ok(crate::facts::service_mgr())
}

impl Action for Service {
    fn params(&self) -> &'static [&'static str] {
        SERVICE_PARAMS
    }

    fn run(&self, args: &Args, ctx: &ModuleCtx) -> ModuleResult {
        let backend = service_backend(args, ctx)?;
        let mut rest: Vars = args.0.clone();
        rest.remove("use");
        match backend.as_str() {
            "systemd" | "ansible.builtin.systemd" | "ansible.legacy.systemd" => {
                // ansible-core drops the arguments systemd does not use (with a warning).
                for k in ["pattern", "runlevel", "sleep", "arguments", "args"] {
                    rest.remove(k);
                }
                run_systemd(&Args::new(rest), ctx)
            }
            "sysvinit" | "ansible.builtin.sysvinit" | "ansible.legacy.sysvinit" => {
                if rest.contains_key("runlevel") {
                    return Err(ModuleError::new(
                        "Unsupported parameters for (sysvinit) module: runlevel. Supported \
                         parameters include: arguments, daemonize, enabled, name, pattern, \
                         runlevels, sleep, state.",
                    ));
                }
                run_sysvinit(&Args::new(rest), ctx)
            }
            other => Err(ModuleError::new(format!(
                "tend's service module supports systemd and sysvinit hosts; this host's \
                 service manager is {other}"
            ))),
        }
    }

    fn restore(
        &self,
        args: &Args,
        ctx: &ModuleCtx,
    ) -> Result<Option<(String, Restore)>, ModuleError> {
        match service_backend(args, ctx)?.as_str() {
            "systemd" | "ansible.builtin.systemd" | "ansible.legacy.systemd" => {
                restore_unit(args, ctx)
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_is_restored_to_what_systemctl_showed() {
        let show = |text: &str| parse_systemctl_show(text);
        let Restore::Steps(s) = unit_restore(
            "nginx",
            &show("LoadState=loaded\nActiveState=inactive\nUnitFileState=enabled\n"),
            Some("started"),
        ) else {
            panic!()
        };
        assert_eq!(
            Value::Object(s[0].args.clone()),
            json!({"name": "nginx", "state": "stopped", "enabled": true, "masked": false})
        );
        let Restore::Steps(s) = unit_restore(
            "redis",
            &show("LoadState=loaded\nActiveState=active\nUnitFileState=disabled\n"),
            None,
        ) else {
            panic!()
        };
        assert_eq!(s[0].args["state"], "started");
        assert_eq!(s[0].args["enabled"], false);
        // Restarted by the run (a handler): restarted again, to read the restored files.
        let Restore::Steps(s) = unit_restore(
            "app",
            &show("LoadState=loaded\nActiveState=active\nUnitFileState=enabled\n"),
            Some("restarted"),
        ) else {
            panic!()
        };
        assert_eq!(s[0].args["state"], "restarted");
        // Restarted while it was stopped: it was stopped, so it stops again.
        let Restore::Steps(s) = unit_restore(
            "app",
            &show("LoadState=loaded\nActiveState=inactive\nUnitFileState=enabled\n"),
            Some("restarted"),
        ) else {
            panic!()
        };
        assert_eq!(s[0].args["state"], "stopped");
        assert_eq!(
            unit_restore(
                "gone",
                &show("LoadState=not-found\nActiveState=inactive\n"),
                None
            ),
            Restore::Steps(Vec::new())
        );
    }

    #[test]
    fn show_output_like_ansible() {
        let text = "Type=simple\nExecStart={ path=/usr/sbin/nginx ; argv[]=/usr/sbin/nginx -g daemon on; ; ignore_errors=no }\n\
ExecReload={ path=/bin/kill ;\n argv[]=/bin/kill -HUP $MAINPID }\nDescription={weird\nActiveState=active\nEmpty=\n";
        let s = parse_systemctl_show(text);
        assert_eq!(s["Type"], "simple");
        assert!(s["ExecStart"].starts_with("{ path=/usr/sbin/nginx"));
        assert_eq!(
            s["ExecReload"],
            "{ path=/bin/kill ;\n argv[]=/bin/kill -HUP $MAINPID }"
        );
        assert_eq!(s["Description"], "{weird");
        assert_eq!(s["ActiveState"], "active");
        assert_eq!(s["Empty"], "");
    }

    fn obs(active: &str, is_enabled: &str, rc: i32) -> UnitObservation {
        let mut status = BTreeMap::new();
        status.insert("ActiveState".to_string(), active.to_string());
        status.insert("LoadState".to_string(), "loaded".to_string());
        UnitObservation {
            found: true,
            status,
            is_enabled: Some((is_enabled.into(), rc)),
            is_initd: false,
            sysv_enabled: false,
        }
    }

    fn want(state: Option<&str>, enabled: Option<bool>, masked: Option<bool>) -> UnitDesired {
        UnitDesired {
            state: state.map(str::to_string),
            enabled,
            masked,
        }
    }

    #[test]
    fn systemd_decisions() {
        let p = systemd_actions(
            &want(Some("started"), Some(true), None),
            &obs("inactive", "disabled", 1),
        );
        assert_eq!(p.state, Some("start"));
        assert_eq!(p.enable, Some(("enable", false)));
        let p = systemd_actions(
            &want(Some("started"), Some(true), None),
            &obs("active", "enabled", 0),
        );
        assert!(!p.changed());
        // restarted/reloaded always act; on a stopped unit they start it.
        let p = systemd_actions(&want(Some("restarted"), None, None), &obs("active", "", 0));
        assert_eq!(p.state, Some("restart"));
        let p = systemd_actions(&want(Some("reloaded"), None, None), &obs("failed", "", 0));
        assert_eq!(p.state, Some("start"));
        let p = systemd_actions(
            &want(Some("stopped"), None, None),
            &obs("deactivating", "", 0),
        );
        assert_eq!(p.state, Some("stop"));
        // enabled-runtime counts as not enabled; masked is read from is-enabled.
        let p = systemd_actions(
            &want(None, Some(true), None),
            &obs("active", "enabled-runtime", 0),
        );
        assert_eq!(p.enable, Some(("enable", false)));
        let p = systemd_actions(&want(None, None, Some(true)), &obs("inactive", "masked", 1));
        assert!(!p.changed());
        let p = systemd_actions(
            &want(None, None, Some(false)),
            &obs("inactive", "masked", 1),
        );
        assert_eq!(p.mask, Some("unmask"));
        // An init script linked into a runlevel is enabled when systemd says rc=1.
        let mut o = obs("active", "", 1);
        o.is_initd = true;
        o.sysv_enabled = true;
        assert!(!systemd_actions(&want(None, Some(true), None), &o).changed());
    }

    #[test]
    fn sysv_status_reading() {
        let r = |out: &str, rc| Ran {
            rc,
            stdout: out.into(),
            stderr: String::new(),
        };
        assert_eq!(
            sysv_started("cron", &r("cron is running.\n", 0)),
            Some(true)
        );
        assert_eq!(
            sysv_started("cron", &r("cron is not running ... failed!\n", 3)),
            Some(false)
        );
        assert_eq!(sysv_started("ssh", &r("sshd is stopped\n", 3)), Some(false));
        assert_eq!(sysv_started("x", &r("a\nb\nc\n", 3)), Some(false));
        assert_eq!(sysv_started("x", &r("a\nb\nc\n", 0)), Some(true));
        assert_eq!(sysv_started("x", &r("a\nb\nc\n", 7)), None);
    }
}
