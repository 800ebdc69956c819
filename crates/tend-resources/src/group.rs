//! `group`: a local group, present with a gid or absent, through `groupadd`, `groupmod` and
//! `groupdel` (argument vectors), as ansible-core's Linux `group` module does.

use tend_proto::{Value, Vars};

use crate::accounts::{self, Accounts, GroupEntry};
use crate::{Args, Change, ChangeKind, ModuleCtx, ModuleError, Resource};

pub struct Group;

pub const PARAMS: &[&str] = &[
    "name",
    "state",
    "force",
    "gid",
    "system",
    "local",
    "non_unique",
    "gid_min",
    "gid_max",
];

#[derive(Clone, Debug)]
pub struct Desired {
    pub name: String,
    pub present: bool,
    pub gid: Option<i64>,
    pub system: bool,
    pub force: bool,
    pub non_unique: bool,
    pub gid_min: Option<i64>,
    pub gid_max: Option<i64>,
}

#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub entry: Option<GroupEntry>,
    /// What the tool printed (set by `apply`).
    pub stdout: String,
    pub stderr: String,
}

impl Desired {
    pub fn from_args(args: &Args) -> Result<Desired, ModuleError> {
        let name = args.req_str("name")?;
        let state = args
            .choice("state", &["absent", "present"])?
            .unwrap_or_else(|| "present".into());
        if args.bool_or("local", false)? {
            return Err(ModuleError::new(
                "tend's group module manages local groups with groupadd/groupmod/groupdel; \
                 local=true (libuser's lgroupadd) is not supported: remove it",
            ));
        }
        let gid = args.int("gid")?;
        let non_unique = args.bool_or("non_unique", false)?;
        if non_unique && gid.is_none() {
            return Err(ModuleError::new(
                "non_unique is True but all of the following are missing: gid",
            ));
        }
        Ok(Desired {
            name,
            present: state == "present",
            gid,
            system: args.bool_or("system", false)?,
            force: args.bool_or("force", false)?,
            non_unique,
            gid_min: args.int("gid_min")?,
            gid_max: args.int("gid_max")?,
        })
    }

    /// The `groupadd` command line.
    pub fn add_argv(&self, tool: &str) -> Vec<String> {
        let mut a = vec![tool.to_string()];
        if let Some(g) = self.gid {
            a.extend(["-g".into(), g.to_string()]);
            if self.non_unique {
                a.push("-o".into());
            }
        }
        if self.system {
            a.push("-r".into());
        }
        if let Some(m) = self.gid_min {
            a.extend(["-K".into(), format!("GID_MIN={m}")]);
        }
        if let Some(m) = self.gid_max {
            a.extend(["-K".into(), format!("GID_MAX={m}")]);
        }
        a.push(self.name.clone());
        a
    }

    /// The `groupmod` command line, or `None` when the group is as declared.
    pub fn mod_argv(&self, tool: &str, current: &GroupEntry) -> Option<Vec<String>> {
        let g = self.gid.filter(|g| *g != i64::from(current.gid))?;
        let mut a = vec![tool.to_string(), "-g".into(), g.to_string()];
        if self.non_unique {
            a.push("-o".into());
        }
        a.push(self.name.clone());
        Some(a)
    }

    pub fn del_argv(&self, tool: &str) -> Vec<String> {
        let mut a = vec![tool.to_string()];
        if self.force {
            a.push("-f".into());
        }
        a.push(self.name.clone());
        a
    }
}

fn observe_group(name: &str) -> Result<Option<GroupEntry>, ModuleError> {
    Ok(Accounts::read()?.group_by_name(name).cloned())
}

/// Runs an account tool; a non-zero exit fails the task with the tool's own message.
pub(crate) fn run_tool(
    argv: &[String],
    name: &str,
    input: Option<&[u8]>,
    with_rc: bool,
) -> Result<accounts::Output, ModuleError> {
    let out = accounts::run(argv, input)?;
    if out.rc != 0 {
        let mut e = ModuleError::new(out.stderr.clone());
        e.fields.insert("name".into(), Value::from(name));
        if with_rc {
            e.fields.insert("rc".into(), Value::from(out.rc));
        }
        return Err(e);
    }
    Ok(out)
}

impl Resource for Group {
    type Desired = Desired;
    type Observed = Observed;

    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }

    fn desired(&self, args: &Args, _ctx: &ModuleCtx) -> Result<Desired, ModuleError> {
        Desired::from_args(args)
    }

    fn observe(&self, d: &Desired) -> Result<Observed, ModuleError> {
        Ok(Observed {
            entry: observe_group(&d.name)?,
            ..Default::default()
        })
    }

    fn diff(&self, d: &Desired, o: &Observed) -> Change {
        let subject = format!("group {}", d.name);
        match (&o.entry, d.present) {
            (Some(_), false) => Change::new(ChangeKind::Delete, subject),
            (None, true) => {
                let mut c = Change::new(ChangeKind::Create, subject);
                if let Some(g) = d.gid {
                    c = c.field("gid", Value::Null, g);
                }
                c
            }
            (Some(cur), true) => match d.mod_argv("groupmod", cur) {
                Some(_) => Change::none(subject).field("gid", cur.gid, d.gid),
                None => Change::none(subject),
            },
            (None, false) => Change::none(subject),
        }
    }

    fn apply(
        &self,
        d: &Desired,
        o: &Observed,
        _change: &Change,
        _ctx: &ModuleCtx,
    ) -> Result<Observed, ModuleError> {
        let out = match &o.entry {
            Some(_) if !d.present => run_tool(
                &d.del_argv(&accounts::bin_path("groupdel")?),
                &d.name,
                None,
                false,
            )?,
            None if d.present => run_tool(
                &d.add_argv(&accounts::bin_path("groupadd")?),
                &d.name,
                None,
                false,
            )?,
            Some(cur) => match d.mod_argv(&accounts::bin_path("groupmod")?, cur) {
                Some(argv) => run_tool(&argv, &d.name, None, false)?,
                None => accounts::Output::default(),
            },
            None => accounts::Output::default(),
        };
        Ok(Observed {
            entry: observe_group(&d.name)?,
            stdout: out.stdout,
            stderr: out.stderr,
        })
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
                "group",
                serde_json::json!({"name": d.name, "state": "absent"}),
            )])
        } else if d.present {
            Restore::Cannot(format!(
                "group {} existed before; tend restores groups it created, not changes to \
                 existing ones",
                d.name
            ))
        } else {
            Restore::Cannot(format!("group {} was removed", d.name))
        }))
    }

    fn result(&self, d: &Desired, o: &Observed, change: &Change) -> Vars {
        let mut r = Vars::new();
        // In check mode ansible-core answers an add or a removal with `changed` alone.
        let check_mode_answer = match change.kind {
            ChangeKind::Create => o.entry.is_none(),
            ChangeKind::Delete => o.entry.is_some(),
            _ => false,
        };
        if check_mode_answer {
            return r;
        }
        r.insert("name".into(), Value::from(d.name.clone()));
        r.insert(
            "state".into(),
            Value::from(if d.present { "present" } else { "absent" }),
        );
        if !o.stdout.is_empty() {
            r.insert("stdout".into(), Value::from(o.stdout.clone()));
        }
        if !o.stderr.is_empty() {
            r.insert("stderr".into(), Value::from(o.stderr.clone()));
        }
        if let Some(e) = &o.entry {
            r.insert("system".into(), Value::from(d.system));
            r.insert("gid".into(), Value::from(e.gid));
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn desired(v: serde_json::Value) -> Result<Desired, String> {
        Desired::from_args(&Args::new(v.as_object().unwrap().clone())).map_err(|e| e.msg)
    }

    #[test]
    fn groupadd_argv() {
        let d = desired(json!({"name": "web", "gid": 1500, "non_unique": true, "system": "yes"}))
            .unwrap();
        assert_eq!(
            d.add_argv("groupadd"),
            ["groupadd", "-g", "1500", "-o", "-r", "web"]
        );
        let d = desired(json!({"name": "web", "gid_min": 2000})).unwrap();
        assert_eq!(
            d.add_argv("groupadd"),
            ["groupadd", "-K", "GID_MIN=2000", "web"]
        );
    }

    #[test]
    fn groupmod_only_when_the_gid_differs() {
        let d = desired(json!({"name": "web", "gid": 1500})).unwrap();
        let cur = GroupEntry {
            name: "web".into(),
            gid: 1500,
            members: vec![],
        };
        assert_eq!(d.mod_argv("groupmod", &cur), None);
        let cur = GroupEntry { gid: 1400, ..cur };
        assert_eq!(
            d.mod_argv("groupmod", &cur).unwrap(),
            ["groupmod", "-g", "1500", "web"]
        );
        let o = Observed {
            entry: Some(cur),
            ..Default::default()
        };
        assert_eq!(Group.diff(&d, &o).kind, ChangeKind::Update);
    }

    #[test]
    fn absent_and_missing_is_no_change_and_force_deletes_with_f() {
        let d = desired(json!({"name": "web", "state": "absent", "force": true})).unwrap();
        assert!(Group.diff(&d, &Observed::default()).is_none());
        assert_eq!(d.del_argv("groupdel"), ["groupdel", "-f", "web"]);
    }

    #[test]
    fn refused_and_required_arguments() {
        assert!(desired(json!({"name": "g", "local": true}))
            .unwrap_err()
            .contains("not supported"));
        assert_eq!(
            desired(json!({"name": "g", "non_unique": true})).unwrap_err(),
            "non_unique is True but all of the following are missing: gid"
        );
        assert_eq!(
            desired(json!({"state": "present"})).unwrap_err(),
            "missing required arguments: name"
        );
    }
}
