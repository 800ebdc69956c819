//! `hostname`: the host's name, as ansible-core's `hostname` module sets it on Debian.
//!
//! Two of ansible-core's strategies: `systemd` (also what `use: debian` means; `hostnamectl`,
//! the static name first, then the transient one), chosen by default when systemd runs the
//! host; otherwise Debian's file strategy (`/etc/hostname` is both the current and the
//! permanent name, as ansible-core reads it). Other `use` values are refused.

use std::path::Path;

use tend_proto::{Value, Vars};

use crate::process::Runner;
use crate::{fsutil, Action, Args, ModuleCtx, ModuleError, ModuleOutput, ModuleResult};

pub struct Hostname;

const FILE: &str = "/etc/hostname";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Strategy {
    Systemd,
    File,
}

fn systemd_managed() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

struct Host<'a> {
    strategy: Strategy,
    run: &'a Runner,
}

impl Host<'_> {
    fn ctl(&self, args: &[&str]) -> Result<String, ModuleError> {
        let mut argv = vec!["hostnamectl"];
        argv.extend_from_slice(args);
        let o = self.run.run(&argv, None)?;
        if !o.ok() {
            return Err(ModuleError::new(format!(
                "Command failed rc={}, out={}, err={}",
                o.rc, o.stdout, o.stderr
            )));
        }
        Ok(o.stdout.trim().to_string())
    }

    fn current(&self) -> Result<String, ModuleError> {
        match self.strategy {
            Strategy::Systemd => self.ctl(&["--transient", "status"]),
            Strategy::File => self.permanent(),
        }
    }

    fn permanent(&self) -> Result<String, ModuleError> {
        match self.strategy {
            Strategy::Systemd => self.ctl(&["--static", "status"]),
            Strategy::File => Ok(fsutil::read_if_exists(Path::new(FILE))?
                .map(|b| String::from_utf8_lossy(&b).trim().to_string())
                .unwrap_or_default()),
        }
    }

    fn set_current(&self, name: &str) -> Result<(), ModuleError> {
        match self.strategy {
            Strategy::Systemd => self.ctl(&["--transient", "set-hostname", name]).map(drop),
            Strategy::File => Ok(()),
        }
    }

    fn set_permanent(&self, name: &str) -> Result<(), ModuleError> {
        match self.strategy {
            Strategy::Systemd => self
                .ctl(&["--pretty", "--static", "set-hostname", name])
                .map(drop),
            Strategy::File => fsutil::atomic_write(
                Path::new(FILE),
                format!("{name}\n").as_bytes(),
                &fsutil::Attrs::default(),
                None,
                None,
            )
            .map_err(|e| ModuleError::new(format!("failed to update hostname: {}", e.msg))),
        }
    }
}

impl Action for Hostname {
    fn params(&self) -> &'static [&'static str] {
        &["name", "use"]
    }

    fn run(&self, args: &Args, ctx: &ModuleCtx) -> ModuleResult {
        let name = args.req_str("name")?;
        let strategy = match args.str("use")?.as_deref() {
            None if systemd_managed() => Strategy::Systemd,
            None => Strategy::File,
            Some("systemd" | "debian") => Strategy::Systemd,
            Some(other) => {
                return Err(ModuleError::new(format!(
                    "tend's hostname module supports use: systemd or debian (or none: \
                     systemd when it runs the host, /etc/hostname otherwise), not '{other}'"
                )))
            }
        };
        if strategy == Strategy::Systemd && name.len() > 64 {
            return Err(ModuleError::new(
                "name cannot be longer than 64 characters on systemd servers, try a shorter name",
            ));
        }
        let run = Runner::new(ctx);
        let h = Host {
            strategy,
            run: &run,
        };
        let current = h.current()?;
        let permanent = h.permanent()?;
        let mut changed = false;
        // systemd: the static name first, then the transient one; the file strategy has no
        // separate current name (setting it does nothing, as in ansible-core).
        let steps: [(bool, &str); 2] = match strategy {
            Strategy::Systemd => [(false, &permanent), (true, &current)],
            Strategy::File => [(true, &current), (false, &permanent)],
        };
        for (is_current, have) in steps {
            if have != name.as_str() {
                if !ctx.check {
                    if is_current {
                        h.set_current(&name)?;
                    } else {
                        h.set_permanent(&name)?;
                    }
                }
                changed = true;
            }
        }
        let before = if name != current {
            &current
        } else {
            &permanent
        };
        let mut facts = Vars::new();
        let short = name.split('.').next().unwrap_or(&name).to_string();
        let fqdn = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| name.clone());
        facts.insert("ansible_hostname".into(), short.into());
        facts.insert("ansible_nodename".into(), name.clone().into());
        facts.insert("ansible_fqdn".into(), fqdn.clone().into());
        facts.insert(
            "ansible_domain".into(),
            fqdn.split('.').skip(1).collect::<Vec<_>>().join(".").into(),
        );
        let mut out = ModuleOutput::ok();
        out.changed = changed;
        out.fields.insert("name".into(), name.clone().into());
        out.fields
            .insert("ansible_facts".into(), Value::Object(facts));
        if changed && ctx.diff {
            out.diffs.push(serde_json::json!({
                "before": format!("hostname = {before}\n"),
                "after": format!("hostname = {name}\n"),
            }));
        }
        Ok(out)
    }
}
