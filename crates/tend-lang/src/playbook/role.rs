//! Roles: finding them, their defaults, vars, dependencies, tasks and handlers.

use std::path::{Path, PathBuf};

use tend_proto::{Loc, RoleInfo, Task, TaskKind, Vars};

use super::task::{self, TaskParser};
use super::{load_vars_file, Loader, RoleScope};
use crate::ctlfs;
use crate::diag::Diag;
use crate::yaml::{self, Node, NodeValue};

/// Keys of a role entry (in `roles:` or `dependencies:`) that are keywords, not parameters.
const ROLE_KEYWORDS: &[&str] = &[
    "role",
    "name",
    "when",
    "tags",
    "vars",
    "become",
    "become_user",
    "become_method",
    "become_flags",
    "become_exe",
    "ignore_errors",
    "environment",
    "no_log",
    "check_mode",
    "diff",
];

/// Expands the `roles:` section of a play into tasks.
pub(super) fn roles_section(
    loader: &Loader,
    scope: &mut RoleScope,
    node: &Node,
    errors: &mut Vec<Diag>,
) -> Vec<Task> {
    let Some(items) = node.as_seq() else {
        if !node.is_null() {
            errors.push(Diag::new(node.loc.clone(), "`roles` must be a list"));
        }
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        match role_entry(loader, scope, item, 0, errors) {
            Ok(Some(t)) => out.push(t),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    out
}

/// One role reference: `- web`, or `- role: web\n  port: 80\n  when: …\n  tags: …`.
fn role_entry(
    loader: &Loader,
    scope: &mut RoleScope,
    item: &Node,
    depth: usize,
    errors: &mut Vec<Diag>,
) -> Result<Option<Task>, Diag> {
    let mut wrapper = Task::new(TaskKind::Meta(String::new()), item.loc.clone());
    wrapper.implicit = true;
    let mut params = Vars::new();
    let name = match &item.value {
        NodeValue::Str(s) => s.clone(),
        NodeValue::Map(entries) => {
            let mut name = None;
            for (k, v) in entries {
                let key = k.as_str().unwrap_or_default();
                match key {
                    "role" | "name" => name = Some(task::scalar(v)?),
                    "when" => wrapper.when = task::conditions(v),
                    "tags" => wrapper.tags = task::tag_list(v)?,
                    "vars" => params.extend(task::mapping(v, "vars")?),
                    "ignore_errors" => wrapper.ignore_errors = Some(v.to_value()),
                    "environment" => wrapper.environment = Some(v.to_value()),
                    "no_log" => wrapper.no_log = Some(v.to_value()),
                    "check_mode" => wrapper.check_mode = Some(v.to_value()),
                    "diff" => wrapper.diff = Some(v.to_value()),
                    _ if task::become_keyword(&mut wrapper.become_, key, v)? => {}
                    _ => {
                        params.insert(key.to_string(), v.to_value());
                    }
                }
            }
            name.ok_or_else(|| {
                Diag::new(
                    item.loc.clone(),
                    "a role entry needs `role:` (the role's name)",
                )
            })?
        }
        _ => {
            return Err(Diag::new(
                item.loc.clone(),
                "a role entry must be a name or a mapping",
            ))
        }
    };
    debug_assert!(ROLE_KEYWORDS.contains(&"role"));
    if scope.ran.iter().any(|(n, p)| *n == name && *p == params) {
        return Ok(None);
    }
    scope.ran.push((name.clone(), params.clone()));
    let tasks = loader.role_tasks(scope, &name, params, None, &item.loc, depth + 1, errors)?;
    wrapper.kind = TaskKind::Block {
        block: tasks,
        rescue: Vec::new(),
        always: Vec::new(),
    };
    Ok(Some(wrapper))
}

impl Loader {
    /// Where a role lives: `roles/<name>` beside the playbook, `ANSIBLE_ROLES_PATH`, the playbook
    /// directory, or a path.
    pub fn find_role(&self, name: &str) -> Option<PathBuf> {
        let p = Path::new(name);
        if p.is_absolute() {
            return ctlfs::is_dir(p).then(|| p.to_path_buf());
        }
        let short = name.rsplit('.').next().unwrap_or(name);
        self.roles_paths
            .iter()
            .flat_map(|dir| [dir.join(name), dir.join(short)])
            .find(|c| {
                ["tasks", "meta", "defaults", "handlers", "vars"]
                    .iter()
                    .any(|sub| ctlfs::is_dir(&c.join(sub)))
            })
    }

    /// Loads a role (and, first, its dependencies) and returns the tasks to run, registering
    /// the role and its handlers in `scope`.
    #[allow(clippy::too_many_arguments)]
    pub fn role_tasks(
        &self,
        scope: &mut RoleScope,
        name: &str,
        params: Vars,
        tasks_from: Option<&str>,
        loc: &Loc,
        depth: usize,
        errors: &mut Vec<Diag>,
    ) -> Result<Vec<Task>, Diag> {
        if depth > 30 {
            return Err(Diag::new(
                loc.clone(),
                format!("role dependencies nest too deep at `{name}` (a dependency cycle?)"),
            ));
        }
        let dir = self.find_role(name).ok_or_else(|| {
            let searched: Vec<String> = self
                .roles_paths
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            Diag::new(loc.clone(), format!("the role '{name}' was not found"))
                .with_hint(format!("searched: {}", searched.join(", ")))
        })?;
        let mut out = Vec::new();

        // Dependencies run first.
        if let Some(meta) = main_file(&dir.join("meta"), "main") {
            let text = ctlfs::read_to_string(&meta).map_err(|e| {
                Diag::new(loc.clone(), format!("cannot read {}: {e}", meta.display()))
            })?;
            let node = yaml::parse(&meta.to_string_lossy(), &text)?;
            if let Some(deps) = node.get("dependencies").and_then(Node::as_seq) {
                for dep in deps {
                    match role_entry(self, scope, dep, depth, errors) {
                        Ok(Some(t)) => out.push(t),
                        Ok(None) => {}
                        Err(e) => errors.push(e),
                    }
                }
            }
        }

        let info = RoleInfo {
            name: name.rsplit('/').next().unwrap_or(name).to_string(),
            path: dir.to_string_lossy().to_string(),
            defaults: vars_dir(&dir.join("defaults"), "main")?,
            vars: vars_dir(&dir.join("vars"), "main")?,
            params,
        };
        let idx = scope.roles.len();
        scope.roles.push(info);

        let tasks_dir = dir.join("tasks");
        let tasks_file = tasks_from.unwrap_or("main");
        match main_file(&tasks_dir, tasks_file) {
            Some(path) => {
                let text = ctlfs::read_to_string(&path).map_err(|e| {
                    Diag::new(loc.clone(), format!("cannot read {}: {e}", path.display()))
                })?;
                let node = yaml::parse(&path.to_string_lossy(), &text)?;
                let mut p = TaskParser {
                    loader: self,
                    roles: scope,
                    base_dir: &tasks_dir,
                    role: Some(idx),
                    depth,
                };
                out.extend(p.tasks(&node, errors));
            }
            None if tasks_from.is_some() => {
                return Err(Diag::new(
                    loc.clone(),
                    format!("role '{name}' has no tasks file '{tasks_file}'"),
                )
                .with_hint(format!("looked in {}", tasks_dir.display())));
            }
            None => {}
        }
        if let Some(path) = main_file(&dir.join("handlers"), "main") {
            let text = ctlfs::read_to_string(&path).map_err(|e| {
                Diag::new(loc.clone(), format!("cannot read {}: {e}", path.display()))
            })?;
            let node = yaml::parse(&path.to_string_lossy(), &text)?;
            let hdir = dir.join("handlers");
            let mut p = TaskParser {
                loader: self,
                roles: scope,
                base_dir: &hdir,
                role: Some(idx),
                depth,
            };
            let hs = task::handlers(&mut p, &node, errors);
            scope.handlers.extend(hs);
        }
        Ok(out)
    }
}

/// `dir/name.yml`, `.yaml`, `.json` or `dir/name` itself.
pub(super) fn main_file(dir: &Path, name: &str) -> Option<PathBuf> {
    let base = dir.join(name);
    if Path::new(name).extension().is_some() && ctlfs::is_file(&base) {
        return Some(base);
    }
    ["yml", "yaml", "json"]
        .iter()
        .map(|ext| dir.join(format!("{name}.{ext}")))
        .chain(std::iter::once(base))
        .find(|p| ctlfs::is_file(p))
}

/// Vars of a role's `defaults/` or `vars/`: `main.yml`, or every file of a `main/` directory.
fn vars_dir(dir: &Path, name: &str) -> Result<Vars, Diag> {
    if let Some(f) = main_file(dir, name) {
        return load_vars_file(&f);
    }
    let sub = dir.join(name);
    let mut out = Vars::new();
    if ctlfs::is_dir(&sub) {
        let files = ctlfs::read_dir(&sub).unwrap_or_default();
        for f in files.into_iter().filter(|f| ctlfs::is_file(f)) {
            out.extend(load_vars_file(&f)?);
        }
    }
    Ok(out)
}

/// Loads a role at run time for `include_role`, returning its index in `scope` and its tasks.
pub fn include_role(
    loader: &Loader,
    scope: &mut RoleScope,
    name: &str,
    params: Vars,
    tasks_from: Option<&str>,
    loc: &Loc,
) -> Result<(usize, Vec<Task>), crate::Diags> {
    let mut errors = Vec::new();
    let before = scope.roles.len();
    let tasks = loader.role_tasks(scope, name, params, tasks_from, loc, 1, &mut errors)?;
    if !errors.is_empty() {
        return Err(crate::Diags(errors));
    }
    let idx = scope.roles.len().saturating_sub(1).max(before);
    Ok((idx, tasks))
}
