//! Privilege escalation (`become`): which user a task's module runs as, and how to get there.
//!
//! Precedence, as in ansible-core 2.19 (its "connection variables override keywords" rule, and
//! `PlayContext.set_task_and_variable_override`), highest first:
//!
//! 1. variables: `ansible_become`, `ansible_become_method`, `ansible_become_user`,
//!    `ansible_become_flags`, `ansible_become_exe`, `ansible_become_password` /
//!    `ansible_become_pass` (and the method's own `ansible_sudo_*` / `ansible_su_*` names),
//!    from any variable level (inventory, play vars, `-e` …), templated;
//! 2. keywords: the task's, else the nearest block's, role's, import's, then the play's;
//! 3. the command line: `--become`, `--become-user`, `--become-method`, and `-K` for the
//!    password;
//! 4. defaults: no become, user `root`, method `sudo`, sudo flags `-H -S -n`, su flags none.
//!
//! So `ansible_become: true` in the inventory wins over `become: false` on a task, exactly
//! as it does in Ansible.

use std::sync::OnceLock;

use tend_lang::{Scope, Templar};
use tend_proto::{Become, Secret, Value};

/// How to escalate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Method {
    Sudo,
    Su,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Sudo => "sudo",
            Method::Su => "su",
        }
    }

    fn default_flags(self) -> &'static str {
        match self {
            Method::Sudo => "-H -S -n",
            Method::Su => "",
        }
    }
}

/// One way of becoming a user; a worker serves exactly one.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub(crate) struct Escalation {
    pub method: Method,
    pub user: String,
    /// As configured, split like a shell line when the command is built.
    pub flags: String,
    /// The `sudo`/`su` program.
    pub exe: String,
}

/// A task's escalation and the password to answer a prompt with, if any.
pub(crate) struct Resolved {
    pub escalation: Escalation,
    pub password: Option<Secret>,
}

/// Works out how a task's module runs: `Ok(None)` when in the agent itself (no become, or
/// the agent already is the become user).
pub(crate) fn resolve(
    templar: &Templar,
    scope: &Scope,
    keywords: &Become,
    cli: &Become,
    cli_password: Option<&Secret>,
) -> Result<Option<Resolved>, String> {
    resolve_for(templar, scope, keywords, cli, cli_password, true)
}

/// [`resolve`] for a module that runs on another host (`delegate_to`): whether its login user
/// already is the become user is for that host to tell ([`needs_worker`]).
pub(crate) fn resolve_delegated(
    templar: &Templar,
    scope: &Scope,
    keywords: &Become,
    cli: &Become,
    cli_password: Option<&Secret>,
) -> Result<Option<Resolved>, String> {
    resolve_for(templar, scope, keywords, cli, cli_password, false)
}

/// Whether this process must start a worker to become `esc.user`.
pub(crate) fn needs_worker(esc: &Escalation) -> bool {
    tend_resources::fsutil::resolve_user(&esc.user) != Some(own_uid())
}

fn resolve_for(
    templar: &Templar,
    scope: &Scope,
    keywords: &Become,
    cli: &Become,
    cli_password: Option<&Secret>,
    here: bool,
) -> Result<Option<Resolved>, String> {
    let setting = |vars: &[&str], kw: &Option<Value>, cl: &Option<Value>, what: &str| {
        first_var(scope, vars)?
            .map(Ok)
            .or_else(|| {
                kw.as_ref()
                    .or(cl.as_ref())
                    .map(|v| render(templar, scope, v, what))
            })
            .transpose()
            .map(|v| v.filter(|v| !v.is_null()))
    };
    let enabled = match setting(
        &["ansible_become"],
        &keywords.enabled,
        &cli.enabled,
        "become",
    )? {
        None => false,
        Some(v) => boolean(&v).ok_or_else(|| {
            format!(
                "the value {} given to `become` is not a valid boolean",
                shown(&v)
            )
        })?,
    };
    if !enabled {
        return Ok(None);
    }
    let method = match setting(
        &["ansible_become_method"],
        &keywords.method,
        &cli.method,
        "become_method",
    )? {
        None => Method::Sudo,
        Some(v) => {
            let s = text(&v);
            match s.strip_prefix("ansible.builtin.").unwrap_or(&s) {
                "sudo" => Method::Sudo,
                "su" => Method::Su,
                other => {
                    return Err(format!(
                        "become_method `{other}` is not supported by tend (it escalates with \
                         `sudo` or `su`)"
                    ))
                }
            }
        }
    };
    let m = method.name();
    let var = |what: &str| {
        [
            format!("ansible_become_{what}"),
            format!("ansible_{m}_{what}"),
        ]
    };
    let names = |v: &[String; 2]| [v[0].clone(), v[1].clone()];
    let user_vars = names(&var("user"));
    let user = setting(
        &[&user_vars[0], &user_vars[1]],
        &keywords.user,
        &cli.user,
        "become_user",
    )?
    .map(|v| text(&v))
    .filter(|u| !u.is_empty())
    .unwrap_or_else(|| "root".into());
    if here && tend_resources::fsutil::resolve_user(&user) == Some(own_uid()) {
        return Ok(None);
    }
    let flag_vars = names(&var("flags"));
    let flags = setting(
        &[&flag_vars[0], &flag_vars[1]],
        &keywords.flags,
        &None,
        "become_flags",
    )?
    .map(|v| text(&v))
    .unwrap_or_else(|| method.default_flags().into());
    let exe_vars = names(&var("exe"));
    let exe = setting(
        &[&exe_vars[0], &exe_vars[1]],
        &keywords.exe,
        &None,
        "become_exe",
    )?
    .map(|v| text(&v))
    .filter(|e| !e.is_empty())
    .unwrap_or_else(|| m.into());
    let pass_vars = [
        "ansible_become_password".to_string(),
        "ansible_become_pass".to_string(),
        format!("ansible_{m}_pass"),
    ];
    let password = match first_var(
        scope,
        &pass_vars.iter().map(String::as_str).collect::<Vec<_>>(),
    )? {
        Some(Value::Null) | None => cli_password.cloned(),
        Some(v) => Some(Secret::new(text(&v))),
    };
    Ok(Some(Resolved {
        escalation: Escalation {
            method,
            user,
            flags,
            exe,
        },
        password,
    }))
}

/// The first of these variables that is defined, rendered.
fn first_var(scope: &Scope, names: &[&str]) -> Result<Option<Value>, String> {
    for n in names {
        match scope.lookup_json(n) {
            Ok(Some(v)) => return Ok(Some(v)),
            Ok(None) => {}
            // Never echo the value: it may be the password.
            Err(e) => return Err(format!("cannot render `{n}`: {}", e.0)),
        }
    }
    Ok(None)
}

fn render(templar: &Templar, scope: &Scope, v: &Value, what: &str) -> Result<Value, String> {
    templar
        .render_value(v, scope)
        .map_err(|e| format!("cannot render `{what}`: {}", e.0))
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.trim().to_string(),
        other => other.to_string(),
    }
}

fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => format!("'{s}'"),
        other => other.to_string(),
    }
}

/// ansible-core's `boolean()`.
fn boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_f64().and_then(|f| match f {
            1.0 => Some(true),
            0.0 => Some(false),
            _ => None,
        }),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "y" | "yes" | "on" | "1" | "true" | "t" => Some(true),
            "n" | "no" | "off" | "0" | "false" | "f" | "" => Some(false),
            _ => None,
        },
        Value::Null => Some(false),
        _ => None,
    }
}

/// The agent's effective uid.
pub(crate) fn own_uid() -> u32 {
    static UID: OnceLock<u32> = OnceLock::new();
    *UID.get_or_init(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .and_then(|r| r.split_whitespace().nth(1).map(str::to_string))
            })
            .and_then(|n| n.parse().ok())
            .unwrap_or(u32::MAX)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tend_lang::Layer;

    fn scope(t: &Templar, vars: Value) -> Scope {
        Scope::new(t, vec![Layer::from_json(&vars, true)])
    }

    fn kw(enabled: Value, user: &str) -> Become {
        Become {
            enabled: Some(enabled),
            user: Some(user.into()),
            ..Default::default()
        }
    }

    #[test]
    fn variables_win_over_keywords_and_keywords_over_the_command_line() {
        let t = Templar::new();
        let cli = Become {
            enabled: Some(json!(true)),
            user: Some("daemon".into()),
            ..Default::default()
        };
        // The command line alone.
        let r = resolve(&t, &scope(&t, json!({})), &Become::default(), &cli, None)
            .unwrap()
            .unwrap();
        assert_eq!(r.escalation.user, "daemon");
        // A keyword over the command line.
        let r = resolve(
            &t,
            &scope(&t, json!({})),
            &kw(json!(true), "nobody"),
            &cli,
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.escalation.user, "nobody");
        assert_eq!(r.escalation.method, Method::Sudo);
        assert_eq!(r.escalation.flags, "-H -S -n");
        // A variable over the keyword, in both directions of `become`.
        let s = scope(
            &t,
            json!({"ansible_become_user": "{{ who }}", "who": "bin"}),
        );
        let r = resolve(&t, &s, &kw(json!(true), "nobody"), &cli, None)
            .unwrap()
            .unwrap();
        assert_eq!(r.escalation.user, "bin");
        let s = scope(&t, json!({"ansible_become": "yes"}));
        let r = resolve(
            &t,
            &s,
            &kw(json!(false), "nobody"),
            &Become::default(),
            None,
        )
        .unwrap();
        assert!(r.is_some(), "ansible_become: yes wins over become: false");
        let s = scope(&t, json!({"ansible_become": false}));
        assert!(resolve(&t, &s, &kw(json!(true), "nobody"), &cli, None)
            .unwrap()
            .is_none());
    }

    #[test]
    fn the_password_comes_from_variables_before_the_prompt() {
        let t = Templar::new();
        let asked = Secret::new("typed");
        let k = kw(json!(true), "nobody");
        let r = resolve(
            &t,
            &scope(&t, json!({})),
            &k,
            &Become::default(),
            Some(&asked),
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.password.as_ref().map(Secret::expose), Some("typed"));
        let s = scope(
            &t,
            json!({"ansible_become_pass": "{{ vault_pw }}", "vault_pw": "v"}),
        );
        let r = resolve(&t, &s, &k, &Become::default(), Some(&asked))
            .unwrap()
            .unwrap();
        assert_eq!(r.password.as_ref().map(Secret::expose), Some("v"));
    }

    #[test]
    fn becoming_oneself_needs_no_worker_and_bad_values_are_refused() {
        let t = Templar::new();
        let me = own_uid().to_string();
        let none = resolve(
            &t,
            &scope(&t, json!({})),
            &kw(json!(true), &me),
            &Become::default(),
            None,
        );
        assert!(none.unwrap().is_none());
        let off = resolve(
            &t,
            &scope(&t, json!({})),
            &Become::default(),
            &Become::default(),
            None,
        );
        assert!(off.unwrap().is_none());
        let Err(e) = resolve(
            &t,
            &scope(&t, json!({})),
            &kw(json!("maybe"), "x"),
            &Become::default(),
            None,
        ) else {
            panic!("`become: maybe` must be refused");
        };
        assert!(e.contains("'maybe'"), "{e}");
        let s = scope(&t, json!({"ansible_become_method": "doas"}));
        let Err(e) = resolve(&t, &s, &kw(json!(true), "x"), &Become::default(), None) else {
            panic!("doas must be refused");
        };
        assert!(e.contains("doas"), "{e}");
    }
}
