//! Turning a play into one [`Program`] per host, and checking a play before anything runs.

use std::path::Path;

use serde_json::json;
use tend_lang::playbook::{load_vars_file, Play};
use tend_lang::template::OMIT;
use tend_lang::{Diag, Layer, Scope, Templar};
use tend_proto::{PlayInfo, Program, ProgramVars, Task, TaskKind, Value, Vars, PROTOCOL_VERSION};

use crate::Prepared;

/// Checks what can be checked statically: every module is one tend runs, every notified
/// handler exists.
pub(crate) fn check_play(play: &Play, supported: &[&str], errors: &mut Vec<Diag>) {
    let has_include_role = contains(&play.tasks, &|t| {
        matches!(t.kind, TaskKind::IncludeRole { .. })
    });
    let mut handler_names: Vec<String> = Vec::new();
    for h in &play.handlers {
        if let Some(n) = &h.task.name {
            handler_names.push(n.clone());
            if let Some(r) = h.task.role.and_then(|r| play.roles.get(r)) {
                handler_names.push(format!("{} : {n}", r.name));
            }
        }
        handler_names.extend(h.listen.iter().cloned());
    }
    let templar = Templar::new();
    let mut visit = |t: &Task| {
        check_templates(&templar, t, errors);
        if let TaskKind::Module(m) = &t.kind {
            if !supported.contains(&m.name.as_str()) {
                errors.push(
                    Diag::new(
                        m.loc.clone(),
                        format!("module `{}` is not supported by tend", m.name),
                    )
                    .with_hint(format!(
                        "tend supports these modules: {}",
                        supported.join(", ")
                    )),
                );
            } else if let Some(entry) = tend_resources::lookup(&m.name) {
                // Argument names are known before anything runs; values may be templates.
                if m.args_template.is_none() {
                    let args = tend_resources::Args::new(m.args.clone());
                    if let Err(e) = args.check_known(&m.name, entry.params) {
                        errors.push(Diag::new(m.loc.clone(), e.0).with_hint(format!(
                            "see `{}` in docs/supported.md for its arguments",
                            m.name
                        )));
                    }
                }
            }
        }
        if !has_include_role {
            for n in &t.notify {
                if !handler_names.contains(n) && !Templar::is_template(n) {
                    errors.push(
                        Diag::new(t.loc.clone(), format!("the handler '{n}' notified here is not defined in this play"))
                            .with_hint("define it under `handlers:` (or in a role's handlers/main.yml), or add `listen: \"…\"` to a handler"),
                    );
                }
            }
        }
    };
    walk(&play.tasks, &mut visit);
    walk(&play.health, &mut visit);
    for h in &play.handlers {
        walk(std::slice::from_ref(&h.task), &mut visit);
    }
    // A gate's hosts never meet in lockstep: a failed health task already stops the rollout.
    walk(&play.health, &mut |t: &Task| {
        if t.any_errors_fatal.is_some() {
            errors.push(
                Diag::new(
                    t.loc.clone(),
                    "`any_errors_fatal` has no effect in `health:` tasks",
                )
                .with_hint("a health task that fails already stops the rollout; remove it"),
            );
        }
    });
}

/// Template syntax is checked before anything runs, so a typo in the last task does not leave
/// a host half-configured.
fn check_templates(templar: &Templar, t: &Task, errors: &mut Vec<Diag>) {
    let mut report = |what: &str, e: tend_lang::TemplateError| {
        errors.push(
            Diag::new(t.loc.clone(), format!("{e} (in {what})")).with_hint(
                "fix the Jinja2 syntax; `{{ … }}` holds an expression, `{% … %}` a statement",
            ),
        );
    };
    if let Some(n) = &t.name {
        if let Err(e) = templar.check_template(n) {
            report("the task name", e);
        }
    }
    if let TaskKind::Module(m) = &t.kind {
        for (k, v) in &m.args {
            if let Err(e) = templar.check_value(v) {
                report(&format!("argument `{k}` of `{}`", m.name), e);
            }
        }
    }
    let conds = t
        .when
        .iter()
        .map(|c| ("when", c))
        .chain(t.changed_when.iter().flatten().map(|c| ("changed_when", c)))
        .chain(t.failed_when.iter().flatten().map(|c| ("failed_when", c)))
        .chain(t.until.iter().map(|c| ("until", c)));
    for (what, c) in conds {
        if let Err(e) = templar.check_condition(c) {
            report(&format!("`{what}`"), e);
        }
    }
    for (k, v) in &t.vars {
        if let Err(e) = templar.check_value(v) {
            report(&format!("variable `{k}`"), e);
        }
    }
}

/// `delegate_to` naming a host the inventory does not have (when it is not a template): tend
/// makes no implicit hosts, so this is refused before anything runs. A templated one that
/// renders to such a host fails its task with the same words.
pub(crate) fn check_delegates(
    play: &Play,
    inventory: &tend_lang::inventory::Inventory,
    errors: &mut Vec<Diag>,
) {
    let mut visit = |t: &Task| {
        let Some(to) = &t.delegate_to else { return };
        let local = matches!(to.as_str(), "localhost" | "127.0.0.1" | "::1");
        if local || Templar::is_template(to) || inventory.host(to).is_some() {
            return;
        }
        errors.push(
            Diag::new(t.loc.clone(), crate::peers::not_in_inventory(to)).with_hint(
                "tend reaches only inventory hosts; `tend inventory -i INVENTORY --list` shows them",
            ),
        );
    };
    walk(&play.tasks, &mut visit);
    for h in &play.handlers {
        walk(std::slice::from_ref(&h.task), &mut visit);
    }
}

fn walk(tasks: &[Task], f: &mut dyn FnMut(&Task)) {
    for t in tasks {
        f(t);
        if let TaskKind::Block {
            block,
            rescue,
            always,
        } = &t.kind
        {
            walk(block, f);
            walk(rescue, f);
            walk(always, f);
        }
    }
}

fn contains(tasks: &[Task], pred: &dyn Fn(&Task) -> bool) -> bool {
    let mut found = false;
    walk(tasks, &mut |t| found |= pred(t));
    found
}

/// Builds the Program of `host` for play number `play`, whose hosts are `play_hosts`.
pub fn compile(
    prep: &Prepared,
    play_idx: usize,
    host: &str,
    play_hosts: &[String],
) -> Result<Program, Diag> {
    let hosts = PlayHosts {
        all: play_hosts,
        active: play_hosts,
        batch: play_hosts,
        gate: false,
    };
    compile_for(prep, play_idx, host, &hosts)
}

/// Who is in the play, for the magic variables.
pub(crate) struct PlayHosts<'a> {
    /// `ansible_play_hosts_all`: every host of the play, in its order.
    pub all: &'a [String],
    /// `ansible_play_hosts`: those of `all` that have not failed.
    pub active: &'a [String],
    /// `ansible_play_batch` (and `play_hosts`): the batch's hosts that have not failed.
    pub batch: &'a [String],
    /// The program is the play's health gate (`health:` tasks, no fact gathering, not
    /// lockstep) rather than the play itself.
    pub gate: bool,
}

pub(crate) fn compile_for(
    prep: &Prepared,
    play_idx: usize,
    host: &str,
    hosts: &PlayHosts,
) -> Result<Program, Diag> {
    let play = &prep.playbook.plays[play_idx];
    let inv = &prep.inventory;
    let mut role_defaults = Vars::new();
    let mut role_vars = Vars::new();
    for r in &play.roles {
        role_defaults.extend(r.defaults.clone());
        role_vars.extend(r.vars.clone());
    }
    let inventory = inv.host_vars(host, Some(&prep.playbook_vars));

    let mut magic = inv.host_magic_vars(host);
    magic.insert("groups".into(), Value::Object(inv.groups_dict()));
    let dir = prep.playbook.dir.to_string_lossy().to_string();
    magic.insert("playbook_dir".into(), Value::String(dir.clone()));
    magic.insert("omit".into(), Value::String(OMIT.into()));
    let list = |h: &[String]| Value::Array(h.iter().cloned().map(Value::String).collect());
    magic.insert("ansible_play_hosts".into(), list(hosts.active));
    magic.insert("ansible_play_hosts_all".into(), list(hosts.all));
    magic.insert("ansible_play_batch".into(), list(hosts.batch));
    magic.insert("play_hosts".into(), list(hosts.batch));
    magic.insert("ansible_play_name".into(), Value::String(play.name.clone()));
    magic.insert(
        "ansible_version".into(),
        json!({"full": "2.19.14", "major": 2, "minor": 19, "revision": 14, "string": "2.19.14"}),
    );
    let o = &prep.settings.options;
    magic.insert(
        "ansible_run_tags".into(),
        json!(if o.tags.is_empty() {
            vec!["all".to_string()]
        } else {
            o.tags.clone()
        }),
    );
    magic.insert("ansible_skip_tags".into(), json!(o.skip_tags));
    magic.insert("ansible_forks".into(), json!(prep.settings.forks));
    magic.insert(
        "tend_version".into(),
        Value::String(env!("CARGO_PKG_VERSION").into()),
    );

    // vars_files are read on the controller, their names rendered with what is known here.
    let mut vars_files = Vars::new();
    if !play.vars_files.is_empty() {
        let t = Templar::new();
        let scope = Scope::new(
            &t,
            vec![
                Layer::from_map(&inventory, true),
                Layer::from_map(&play.vars, true),
                Layer::from_map(&prep.settings.extra_vars, true),
                Layer::from_map(&magic, false),
            ],
        );
        for (entry, loc) in &play.vars_files {
            let candidates: Vec<Value> = match entry {
                Value::Array(a) => a.clone(),
                other => vec![other.clone()],
            };
            let mut loaded = false;
            let mut tried = Vec::new();
            for c in &candidates {
                let name = match c {
                    Value::String(s) => t.render_str(s, &scope).map_err(|e| {
                        Diag::new(loc.clone(), format!("cannot render vars_files entry: {e}"))
                    })?,
                    other => other.to_string(),
                };
                let path = resolve(&play.dir, &name);
                if path.is_file() {
                    vars_files.extend(load_vars_file(&path)?);
                    loaded = true;
                    break;
                }
                tried.push(path.display().to_string());
            }
            if !loaded {
                return Err(Diag::new(
                    loc.clone(),
                    format!("vars file not found: {}", tried.join(", ")),
                )
                .with_hint("vars_files paths are relative to the playbook's directory"));
            }
        }
    }

    Ok(Program {
        version: PROTOCOL_VERSION,
        host: host.to_string(),
        play: PlayInfo {
            name: play.name.clone(),
            loc: play.loc.clone(),
            gather_facts: play.gather_facts && !hosts.gate,
            roles_paths: tend_lang::playbook::Loader::new(&prep.playbook.dir)
                .roles_paths
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect(),
            playbook_dir: dir,
            force_handlers: play.force_handlers,
            connection: play.connection.clone(),
            index: play_idx,
            lockstep: !hosts.gate && lockstep(play),
            ..Default::default()
        },
        vars: ProgramVars {
            role_defaults,
            inventory,
            play_vars: play.vars.clone(),
            vars_files,
            role_vars,
            extra_vars: prep.settings.extra_vars.clone(),
            magic,
            host_state: Default::default(),
        },
        roles: play.roles.clone(),
        tasks: if hosts.gate {
            play.health.clone()
        } else {
            play.tasks.clone()
        },
        handlers: play.handlers.clone(),
        options: if hosts.gate {
            // A gate checks; what its tasks do (a `command` probe) is not the release's change,
            // so it is not journaled, and a failed gate's rollback does not name it.
            tend_proto::RunOptions {
                run_id: None,
                ..prep.settings.options.clone()
            }
        } else {
            prep.settings.options.clone()
        },
        become_password: prep.settings.become_password.clone(),
        guard: prep
            .settings
            .guards
            .as_ref()
            .map(|g| g.get(host).cloned().unwrap_or_default()),
        vault: if prep.ssh_targets.contains_key(host) {
            prep.vault_known.clone()
        } else {
            Default::default()
        },
        undo: prep.settings.undo.clone(),
    })
}

fn resolve(dir: &Path, name: &str) -> std::path::PathBuf {
    let p = Path::new(name);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

/// Whether the play's hosts meet after every step: `any_errors_fatal` (on the play or on any
/// task, block, role task or handler it loaded) or `max_fail_percentage`.
pub(crate) fn lockstep(play: &Play) -> bool {
    fn any(tasks: &[tend_proto::Task]) -> bool {
        tasks.iter().any(|t| {
            t.any_errors_fatal.is_some()
                || match &t.kind {
                    TaskKind::Block {
                        block,
                        rescue,
                        always,
                    } => any(block) || any(rescue) || any(always),
                    _ => false,
                }
        })
    }
    play.rollout.any_errors_fatal
        || play.rollout.max_fail_percentage.is_some()
        || any(&play.tasks)
        || play
            .handlers
            .iter()
            .any(|h| any(std::slice::from_ref(&h.task)))
}
