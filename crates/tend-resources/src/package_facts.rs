//! `package_facts`: the installed packages as `ansible_facts.packages` (name → list of
//! `{name, version, arch, category, origin, source: apt}`), read from the dpkg status
//! database without starting a process.
//!
//! Known difference: `origin` (the repository's Origin, which python-apt reads from apt's
//! lists) is always empty.

use serde_json::json;
use tend_proto::{Value, Vars};

use crate::dpkg::Status;
use crate::{Action, Args, ModuleCtx, ModuleError, ModuleOutput, ModuleResult};

pub struct PackageFacts;

/// Every installed package, keyed as python-apt's cache keys them (foreign architectures as
/// `name:arch`).
pub fn packages(status: &Status, native_arch: &str) -> Vars {
    let mut out = Vars::new();
    for p in status.all_installed() {
        let key = if p.arch == native_arch || p.arch == "all" || p.arch.is_empty() {
            p.name.clone()
        } else {
            format!("{}:{}", p.name, p.arch)
        };
        let entry = json!({
            "name": key,
            "version": p.version,
            "arch": p.arch,
            "category": p.section,
            "origin": "",
            "source": "apt",
        });
        match out.get_mut(&key) {
            Some(Value::Array(list)) => list.push(entry),
            _ => {
                out.insert(key, Value::Array(vec![entry]));
            }
        }
    }
    out
}

/// dpkg's architecture name for this machine.
fn native_arch() -> String {
    let machine = std::env::consts::ARCH;
    match machine {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "i386",
        "arm" => "armhf",
        "powerpc64" => "ppc64el",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
    .to_string()
}

impl Action for PackageFacts {
    fn params(&self) -> &'static [&'static str] {
        &["manager", "strategy"]
    }

    fn run(&self, args: &Args, _ctx: &ModuleCtx) -> ModuleResult {
        let managers = args.list("manager")?.unwrap_or_else(|| vec!["auto".into()]);
        args.choice("strategy", &["first", "all"])?;
        let managers: Vec<String> = managers.iter().map(|m| m.to_lowercase()).collect();
        if let Some(other) = managers.iter().find(|m| *m != "auto" && *m != "apt") {
            return Err(ModuleError::new(format!(
                "tend's package_facts supports the apt package manager only, not {other}"
            )));
        }
        if !std::path::Path::new(crate::dpkg::STATUS_PATH).exists() {
            return Err(ModuleError::new(format!(
                "Could not detect a supported package manager from the following list: {:?}, \
                 or the required Python library is not installed. Check warnings for details.",
                managers
            )));
        }
        let status = Status::read().map_err(|e| {
            ModuleError::io(
                "cannot read",
                std::path::Path::new(crate::dpkg::STATUS_PATH),
                e,
            )
        })?;
        let mut facts = Vars::new();
        facts.insert(
            "packages".into(),
            Value::Object(packages(&status, &native_arch())),
        );
        Ok(ModuleOutput::ok().field("ansible_facts", Value::Object(facts)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_like_python_apt() {
        let s = Status::parse(
            "Package: tree\nStatus: install ok installed\nSection: utils\nArchitecture: amd64\nVersion: 2.1\n\n\
Package: libc6\nStatus: install ok installed\nArchitecture: i386\nVersion: 2.36\n\n\
Package: gone\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1\n",
        );
        let p = packages(&s, "amd64");
        assert_eq!(
            p["tree"],
            json!([{"name": "tree", "version": "2.1", "arch": "amd64", "category": "utils",
                    "origin": "", "source": "apt"}])
        );
        assert!(p.contains_key("libc6:i386"));
        assert!(!p.contains_key("gone"));
    }

    #[test]
    fn reads_this_host_when_it_is_debian() {
        if !std::path::Path::new(crate::dpkg::STATUS_PATH).exists() {
            return;
        }
        let out = crate::testutil::run("package_facts", json!({}));
        let pk = &out.fields["ansible_facts"]["packages"];
        assert!(pk.as_object().is_some_and(|m| !m.is_empty()));
        let e = crate::testutil::run_err("package_facts", json!({"manager": "rpm"}));
        assert!(e.contains("apt package manager only"), "{e}");
    }
}
