//! Jinja2 templating with Ansible's meaning, on minijinja.
//!
//! - A string is a template when it contains `{{`, `{%` or `{#`.
//! - A string that is exactly one `{{ expression }}` evaluates to the expression's native value
//!   (a list stays a list), as in ansible-core 2.19; anything else renders to text.
//! - Variables are looked up through a [`Scope`]: layers of variables in precedence order. Values
//!   in *templated* layers (what the user wrote in vars files, play vars …) are rendered when they
//!   are read, like Ansible's lazy templating; values in data layers (facts, registered results,
//!   command output) are never rendered, so data can never inject a template.
//! - An undefined variable is an error that names it.

mod check;
mod filters;
mod lookup;
mod pyrepr;
mod scope;
mod tests;

use std::sync::Arc;

use minijinja::{Environment, ErrorKind, UndefinedBehavior, Value as JValue};
use tend_proto::Value;

pub use scope::{Layer, Scope};

/// The placeholder `omit` evaluates to; arguments equal to it are dropped.
pub const OMIT: &str = "__omit_place_holder__tend";

/// A templating error, already worded for the user (the caller adds file and task).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

/// The templating engine. Cheap to clone; build one per process.
#[derive(Clone)]
pub struct Templar {
    env: Arc<Environment<'static>>,
}

impl Default for Templar {
    fn default() -> Self {
        Self::new()
    }
}

impl Templar {
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .trim_blocks(true)
            .build()
        {
            env.set_syntax(syntax);
        }
        env.set_recursion_limit(500);
        env.set_formatter(pyrepr::format);
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        filters::register(&mut env);
        tests::register(&mut env);
        lookup::register(&mut env);
        Templar { env: Arc::new(env) }
    }

    pub fn env(&self) -> &Environment<'static> {
        &self.env
    }

    /// Whether `s` contains template syntax.
    pub fn is_template(s: &str) -> bool {
        s.contains("{{") || s.contains("{%") || s.contains("{#")
    }

    /// Renders a string. A lone `{{ expr }}` keeps the expression's native type.
    pub fn render_str_value(&self, s: &str, scope: &Scope) -> Result<JValue, TemplateError> {
        if !Self::is_template(s) {
            return Ok(JValue::from(s));
        }
        if let Some(expr) = single_expression(s) {
            let compiled = self
                .env
                .compile_expression(expr)
                .map_err(|e| self.explain(e, s, scope))?;
            let v = compiled
                .eval(scope.as_value())
                .map_err(|e| self.explain(e, s, scope))?;
            scope.take_error().map_or(Ok(()), Err)?;
            if v.is_undefined() {
                return Err(self.undefined_error(s, scope));
            }
            return Ok(v);
        }
        let out = self
            .env
            .render_str(s, scope.as_value())
            .map_err(|e| self.explain(e, s, scope))?;
        scope.take_error().map_or(Ok(()), Err)?;
        Ok(JValue::from(out))
    }

    /// Renders a string to text.
    pub fn render_str(&self, s: &str, scope: &Scope) -> Result<String, TemplateError> {
        let v = self.render_str_value(s, scope)?;
        Ok(pyrepr::to_text(&v))
    }

    /// Renders every string inside a value, recursively.
    pub fn render_value(&self, v: &Value, scope: &Scope) -> Result<Value, TemplateError> {
        match v {
            Value::String(s) if Self::is_template(s) => {
                let r = self.render_str_value(s, scope)?;
                to_json(&r)
            }
            Value::Array(items) => items
                .iter()
                .map(|i| self.render_value(i, scope))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            Value::Object(map) => {
                let mut out = serde_json::Map::with_capacity(map.len());
                for (k, v) in map {
                    let k = if Self::is_template(k) {
                        self.render_str(k, scope)?
                    } else {
                        k.clone()
                    };
                    out.insert(k, self.render_value(v, scope)?);
                }
                Ok(Value::Object(out))
            }
            other => Ok(other.clone()),
        }
    }

    /// Evaluates a conditional (`when`, `changed_when`, `failed_when`, `until`): a bare
    /// expression, a `{{ expression }}`, or a literal boolean.
    pub fn eval_condition(&self, cond: &Value, scope: &Scope) -> Result<bool, TemplateError> {
        // ansible-core 2.19: a conditional is a boolean or an expression string, and an
        // expression must yield a boolean.
        let expr = match cond {
            Value::Bool(b) => return Ok(*b),
            Value::String(s) if !s.trim().is_empty() => s.trim(),
            Value::Null | Value::String(_) => {
                return Err(TemplateError(
                    "Empty conditional expressions are not allowed.".into(),
                ))
            }
            _ => {
                return Err(TemplateError(
                    "Conditional expressions must be strings.".into(),
                ))
            }
        };
        let v = if let Some(inner) = single_expression(expr) {
            // `when: "{{ x }}"`: the template may yield an expression to evaluate, or a value.
            let v = self.eval_expr(inner, scope)?;
            match v.as_str() {
                Some(s) if v.kind() == minijinja::value::ValueKind::String => {
                    let s = s.trim().to_string();
                    if s.is_empty() {
                        return Err(TemplateError(
                            "Empty conditional expressions are not allowed.".into(),
                        ));
                    }
                    self.eval_expr(&s, scope)?
                }
                _ => v,
            }
        } else {
            self.eval_expr(expr, scope)?
        };
        if v.kind() == minijinja::value::ValueKind::Bool {
            return Ok(v.is_true());
        }
        Err(TemplateError(format!(
            "Conditional result ({}) was derived from value of type '{}'. Conditionals must have a boolean result.",
            if v.is_true() { "True" } else { "False" },
            python_type_name(&v)
        )))
    }

    /// Evaluates a bare Jinja expression.
    pub fn eval_expr(&self, expr: &str, scope: &Scope) -> Result<JValue, TemplateError> {
        let compiled = self
            .env
            .compile_expression(expr)
            .map_err(|e| self.explain(e, expr, scope))?;
        let v = compiled
            .eval(scope.as_value())
            .map_err(|e| self.explain(e, expr, scope))?;
        scope.take_error().map_or(Ok(()), Err)?;
        if v.is_undefined() {
            return Err(self.undefined_error(expr, scope));
        }
        Ok(v)
    }

    /// Renders a whole template file's text (the `template` module, `lookup('template')`).
    pub fn render_template_text(
        &self,
        name: &str,
        text: &str,
        scope: &Scope,
    ) -> Result<String, TemplateError> {
        let tmpl = self
            .env
            .template_from_named_str(name, text)
            .map_err(|e| self.explain(e, text, scope))?;
        let out = tmpl
            .render(scope.as_value())
            .map_err(|e| self.explain(e, text, scope))?;
        scope.take_error().map_or(Ok(()), Err)?;
        Ok(out)
    }

    fn explain(&self, e: minijinja::Error, source: &str, scope: &Scope) -> TemplateError {
        if let Some(inner) = scope.take_error() {
            return inner;
        }
        match e.kind() {
            ErrorKind::UndefinedError => self.undefined_error(source, scope),
            ErrorKind::SyntaxError => {
                let detail = e.detail().unwrap_or("invalid syntax");
                let line = e.line().unwrap_or(1);
                TemplateError(format!(
                    "template syntax error: {detail} (line {line} of the template)"
                ))
            }
            _ => {
                let mut msg = e
                    .detail()
                    .map(str::to_string)
                    .unwrap_or_else(|| e.to_string());
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    msg.push_str(&format!(": {s}"));
                    src = s.source();
                }
                TemplateError(msg)
            }
        }
    }

    /// Names the first variable (or attribute) the template uses that does not exist.
    fn undefined_error(&self, source: &str, scope: &Scope) -> TemplateError {
        let names = match single_expression(source) {
            Some(expr) => self
                .env
                .compile_expression(expr)
                .map(|e| e.undeclared_variables(true))
                .unwrap_or_default(),
            None => match self.env.template_from_str(source) {
                Ok(t) => t.undeclared_variables(true),
                Err(_) => match self.env.compile_expression(source) {
                    Ok(e) => e.undeclared_variables(true),
                    Err(_) => Default::default(),
                },
            },
        };
        let mut names: Vec<String> = names.into_iter().collect();
        names.sort();
        for name in names {
            let mut parts = name.split('.');
            let head = parts.next().unwrap_or_default();
            let Some(mut cur) = scope.lookup(head) else {
                return TemplateError(format!("'{head}' is undefined"));
            };
            let mut path = head.to_string();
            for attr in parts {
                match cur.get_attr(attr) {
                    Ok(v) if !v.is_undefined() => cur = v,
                    _ => {
                        if cur.kind() == minijinja::value::ValueKind::Map || cur.is_undefined() {
                            return TemplateError(format!("'{path}' has no attribute '{attr}'"));
                        }
                        break;
                    }
                }
                path.push('.');
                path.push_str(attr);
            }
        }
        TemplateError("an undefined value was used in the template".to_string())
    }
}

/// The expression inside a template that is exactly `{{ expr }}`, if it is one.
fn single_expression(s: &str) -> Option<&str> {
    let t = s.trim();
    let inner = t.strip_prefix("{{")?.strip_suffix("}}")?;
    if inner.contains("{{") || inner.contains("}}") || inner.contains("{%") {
        return None;
    }
    // Leading/trailing whitespace around the template is dropped only when there is none.
    if t.len() != s.len() {
        return None;
    }
    Some(inner.trim().trim_start_matches('-').trim_end_matches('-'))
}

fn python_type_name(v: &JValue) -> &'static str {
    use minijinja::value::ValueKind;
    match v.kind() {
        ValueKind::None | ValueKind::Undefined => "NoneType",
        ValueKind::Bool => "bool",
        ValueKind::Number => {
            if v.as_i64().is_some() {
                "int"
            } else {
                "float"
            }
        }
        ValueKind::String => "str",
        ValueKind::Seq | ValueKind::Iterable => "list",
        ValueKind::Map => "dict",
        _ => "object",
    }
}

#[allow(dead_code)]
fn truthy_text(s: &str) -> bool {
    !matches!(
        s.trim().to_ascii_lowercase().as_str(),
        "" | "false" | "no" | "0" | "none" | "off" | "n" | "f" | "0.0"
    )
}

/// Converts a template result back to plain data.
pub fn to_json(v: &JValue) -> Result<Value, TemplateError> {
    if v.is_undefined() {
        return Err(TemplateError("an undefined value was used".into()));
    }
    serde_json::to_value(v)
        .map_err(|e| TemplateError(format!("cannot convert template result: {e}")))
}

/// Converts anything serializable to a template value.
pub fn to_jinja_ser<T: serde::Serialize>(v: &T) -> JValue {
    JValue::from(minijinja::value::Serde(v))
}

/// Converts plain data to a template value.
pub fn to_jinja(v: &Value) -> JValue {
    JValue::from(minijinja::value::Serde(v))
}

/// Python's `repr()` of a template value (how Ansible shows loop items and nested values).
pub fn pyrepr_of(v: &JValue) -> String {
    pyrepr::repr(v)
}

#[cfg(test)]
mod unit {
    use super::*;
    use serde_json::json;

    fn scope(vars: Value, templated: bool) -> Scope {
        let t = Templar::new();
        Scope::new(&t, vec![Layer::from_json(&vars, templated)])
    }

    #[test]
    fn single_expression_keeps_native_type() {
        let t = Templar::new();
        let s = scope(json!({"xs": [1, 2]}), false);
        assert_eq!(
            t.render_value(&json!("{{ xs }}"), &s).unwrap(),
            json!([1, 2])
        );
        assert_eq!(
            t.render_value(&json!("n={{ xs }}"), &s).unwrap(),
            json!("n=[1, 2]")
        );
    }

    #[test]
    fn booleans_render_like_python() {
        let t = Templar::new();
        let s = scope(json!({"b": true, "n": null}), false);
        assert_eq!(t.render_str("{{ b }} {{ n }}", &s).unwrap(), "True None");
    }

    #[test]
    fn lazy_templated_layers_render_on_read() {
        let t = Templar::new();
        let s = scope(json!({"a": "{{ b }}-x", "b": "B"}), true);
        assert_eq!(t.render_str("{{ a }}", &s).unwrap(), "B-x");
    }

    #[test]
    fn data_layers_are_never_templated() {
        let t = Templar::new();
        let s = scope(json!({"out": "{{ 7 * 6 }}"}), false);
        assert_eq!(t.render_str("{{ out }}", &s).unwrap(), "{{ 7 * 6 }}");
    }

    #[test]
    fn undefined_variable_is_named() {
        let t = Templar::new();
        let s = scope(json!({"a": 1}), false);
        let e = t.render_str("x {{ nope }}", &s).unwrap_err();
        assert_eq!(e.0, "'nope' is undefined");
        let e = t
            .render_str("{{ a.b }}", &scope(json!({"a": {}}), false))
            .unwrap_err();
        assert_eq!(e.0, "'a' has no attribute 'b'");
    }

    #[test]
    fn undefined_inside_a_lazy_var_is_named() {
        let t = Templar::new();
        let s = scope(json!({"a": "{{ missing }}"}), true);
        let e = t.render_str("{{ a }}", &s).unwrap_err();
        assert!(e.0.contains("'missing' is undefined"), "{}", e.0);
    }

    #[test]
    fn self_reference_is_an_error_not_a_hang() {
        let t = Templar::new();
        let s = scope(json!({"a": "{{ a }}"}), true);
        assert!(t.render_str("{{ a }}", &s).is_err());
    }

    #[test]
    fn conditions() {
        let t = Templar::new();
        let s = scope(json!({"x": 3, "s": "yes"}), false);
        assert!(t.eval_condition(&json!("x > 2"), &s).unwrap());
        assert!(!t.eval_condition(&json!("{{ x < 2 }}"), &s).unwrap());
        assert!(t.eval_condition(&json!("s | bool"), &s).unwrap());
        assert!(t.eval_condition(&json!("y is not defined"), &s).unwrap());
        assert!(t.eval_condition(&json!("y is undefined"), &s).unwrap());
        assert!(t.eval_condition(&json!(true), &s).unwrap());
    }
}
