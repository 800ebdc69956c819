//! `service_facts`: `ansible_facts.services` (name → `{name, state, status, source}`) as
//! ansible-core gathers it on Linux: init scripts from `service --status-all`, and on systemd
//! hosts every service unit from `systemctl list-units` and `list-unit-files` — the units
//! that are not loaded asked about in one `systemctl show` call, not one per unit.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;
use tend_proto::{Value, Vars};

use crate::process;
use crate::{Action, Args, ModuleCtx, ModuleOutput, ModuleResult};

pub struct ServiceFacts;

/// `service --status-all` lines: `[ + ]  name`.
pub fn parse_status_all(text: &str, out: &mut Vars) {
    for line in text.lines() {
        let t = line.trim_start();
        let Some(rest) = t.strip_prefix("[ ") else {
            continue;
        };
        let mut chars = rest.chars();
        let state = match chars.next() {
            Some('+') => "running",
            Some('-') => "stopped",
            _ => continue,
        };
        let rest = chars.as_str();
        let Some(name) = rest.strip_prefix(" ]") else {
            continue;
        };
        let name = name.trim();
        if name.is_empty() || !rest[2..].starts_with(char::is_whitespace) {
            continue;
        }
        out.insert(
            name.to_string(),
            json!({"name": name, "state": state, "source": "sysv"}),
        );
    }
}

const BAD_STATES: &[&str] = &["not-found", "masked", "failed"];

/// `systemctl list-units --type service --all --plain` lines.
pub fn parse_list_units(text: &str, out: &mut Vars) {
    for line in text.lines().filter(|l| l.contains(".service")) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 4 {
            continue;
        }
        let head = &fields[..fields.len() - 1];
        let status = BAD_STATES
            .iter()
            .find(|b| head.contains(b))
            .copied()
            .unwrap_or(fields[2]);
        let state = if fields[3] == "running" {
            "running"
        } else {
            "stopped"
        };
        out.insert(
            fields[0].to_string(),
            json!({"name": fields[0], "state": state, "status": status, "source": "systemd"}),
        );
    }
}

/// `systemctl list-unit-files --type service --all` lines: (name, status).
pub fn parse_unit_files(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| l.contains(".service"))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.to_string()))
        })
        .collect()
}

/// `systemctl show -p Id,ActiveState A B …`: blocks separated by blank lines → Id → state.
pub fn parse_show_states(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for block in text.split("\n\n") {
        let mut id = None;
        let mut state = None;
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("Id=") {
                id = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("ActiveState=") {
                state = Some(v.trim().to_string());
            }
        }
        if let (Some(i), Some(s)) = (id, state) {
            out.insert(i, s);
        }
    }
    out
}

fn systemd_managed() -> bool {
    process::find_bin("systemctl").is_some()
        && ([
            "/run/systemd/system/",
            "/dev/.run/systemd/",
            "/dev/.systemd/",
        ]
        .iter()
        .any(|c| Path::new(c).exists())
            || std::fs::read_to_string("/proc/1/comm").is_ok_and(|c| c.trim() == "systemd"))
}

impl Action for ServiceFacts {
    fn params(&self) -> &'static [&'static str] {
        &[]
    }

    fn run(&self, _args: &Args, ctx: &ModuleCtx) -> ModuleResult {
        let mut env = ctx.environment.to_vec();
        env.push(("LANG".into(), "C.UTF-8".into()));
        env.push(("LC_ALL".into(), "C.UTF-8".into()));
        let mut services = Vars::new();
        let chkconfig = process::find_bin("chkconfig");
        let rc_status = process::find_bin("rc-status");
        if let (Some(service), None, None) = (process::find_bin("service"), &chkconfig, &rc_status)
        {
            let r = process::run(&[service, "--status-all".into()], &env)?;
            if r.rc != 4 || Path::new("/etc/init.d").exists() {
                parse_status_all(&r.stdout, &mut services);
            }
        }
        if systemd_managed() {
            let systemctl = process::find_bin("systemctl").unwrap_or_else(|| "systemctl".into());
            let mut units = Vars::new();
            let r = process::run(
                &process::argv([
                    systemctl.as_str(),
                    "list-units",
                    "--no-pager",
                    "--type",
                    "service",
                    "--all",
                    "--plain",
                ]),
                &env,
            )?;
            if r.ok() {
                parse_list_units(&r.stdout, &mut units);
            }
            let r = process::run(
                &process::argv([
                    systemctl.as_str(),
                    "list-unit-files",
                    "--no-pager",
                    "--type",
                    "service",
                    "--all",
                ]),
                &env,
            )?;
            if r.ok() {
                let files = parse_unit_files(&r.stdout);
                let unknown: Vec<&str> = files
                    .iter()
                    .filter(|(n, _)| !units.contains_key(n))
                    .map(|(n, _)| n.as_str())
                    .collect();
                let states = if unknown.is_empty() {
                    BTreeMap::new()
                } else {
                    let mut argv =
                        process::argv([systemctl.as_str(), "show", "--property=Id,ActiveState"]);
                    argv.extend(unknown.iter().map(|s| s.to_string()));
                    parse_show_states(&process::run(&argv, &env)?.stdout)
                };
                for (name, status) in files {
                    match units.get_mut(&name) {
                        None => {
                            let state = states
                                .get(&name)
                                .cloned()
                                .unwrap_or_else(|| "unknown".into());
                            units.insert(
                                name.clone(),
                                json!({"name": name, "state": state, "status": status,
                                       "source": "systemd"}),
                            );
                        }
                        Some(u) => {
                            let bad = u["status"]
                                .as_str()
                                .is_some_and(|s| BAD_STATES.contains(&s));
                            if !bad {
                                u["status"] = Value::String(status);
                            }
                        }
                    }
                }
            }
            services.extend(units);
        }
        if services.is_empty() {
            return Ok(ModuleOutput {
                skipped: true,
                msg: Some(
                    "Failed to find any services. This can be due to privileges or some other \
                     configuration issue."
                        .into(),
                ),
                ..Default::default()
            });
        }
        let mut facts = Vars::new();
        facts.insert("services".into(), Value::Object(services));
        Ok(ModuleOutput::ok().field("ansible_facts", Value::Object(facts)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysv_lines() {
        let mut s = Vars::new();
        parse_status_all(" [ + ]  cron\n [ - ]  hwclock.sh\n [ ? ]  odd\n", &mut s);
        assert_eq!(
            s["cron"],
            json!({"name": "cron", "state": "running", "source": "sysv"})
        );
        assert_eq!(s["hwclock.sh"]["state"], "stopped");
        assert!(!s.contains_key("odd"));
    }

    #[test]
    fn systemd_lines() {
        let mut s = Vars::new();
        parse_list_units(
            "cron.service      loaded    active   running Regular background program processing daemon\n\
nginx.service     loaded    failed   failed  A high performance web server\n\
gone.service      not-found inactive dead    gone.service\n",
            &mut s,
        );
        assert_eq!(
            s["cron.service"],
            json!({"name": "cron.service", "state": "running", "status": "active", "source": "systemd"})
        );
        assert_eq!(s["nginx.service"]["status"], "failed");
        assert_eq!(s["gone.service"]["status"], "not-found");
        assert_eq!(s["gone.service"]["state"], "stopped");
        let files = parse_unit_files(
            "UNIT FILE STATE PRESET\ncron.service enabled enabled\ngetty@.service enabled enabled\n",
        );
        assert_eq!(files[1], ("getty@.service".into(), "enabled".into()));
        let st = parse_show_states(
            "ActiveState=inactive\nId=a.service\n\nId=b.service\nActiveState=active\n",
        );
        assert_eq!(st["a.service"], "inactive");
        assert_eq!(st["b.service"], "active");
    }
}
