//! Jinja2 templating with Ansible's meaning, on minijinja.
//!
//! - A string is a template when it contains `{{`, `{%` or `{#`.
//! - A template whose output is exactly one value (after `None` values are dropped) evaluates to
//!   that value with its native type (a list stays a list), as in ansible-core 2.19; anything else
//!   renders to text (see [`nodes`]).
//! - Backslashes in string literals inside `{{ … }}` of playbook strings are literal (ansible-core's
//!   `escape_backslashes`); statements, conditionals and template files use Jinja's escapes.
//! - Variables are looked up through a [`Scope`]: layers of variables in precedence order. Values
//!   in *templated* layers (what the user wrote in vars files, play vars …) are rendered when they
//!   are read, like Ansible's lazy templating; values in data layers (facts, registered results,
//!   command output) are never rendered, so data can never inject a template.
//! - An undefined variable is an error that names it.

mod check;
mod filters;
mod lookup;
mod nodes;
mod pyrepr;
mod scope;
pub mod source;
mod tests;

use std::sync::Arc;

use minijinja::{Environment, ErrorKind, UndefinedBehavior, Value as JValue};
use tend_proto::Value;

pub use scope::{Layer, OtherHosts, Scope};

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
    /// Where `hostvars[other]` comes from (the controller), cached for this templar's life.
    others: Option<Arc<scope::OthersCache>>,
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
        if let Ok(syntax) = TextOptions::default().syntax() {
            env.set_syntax(syntax);
        }
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.set_recursion_limit(500);
        // tend words its own errors; minijinja's debug info would look every variable up again.
        env.set_debug(false);
        env.set_formatter(pyrepr::format);
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        filters::register(&mut env);
        tests::register(&mut env);
        lookup::register(&mut env);
        Templar {
            env: Arc::new(env),
            others: None,
        }
    }

    /// The same engine, reading other hosts' `hostvars` from `source` on first use (each host
    /// once: the answers are kept as long as this templar and its clones live).
    pub fn with_other_hosts(&self, source: Arc<dyn OtherHosts>) -> Templar {
        Templar {
            env: self.env.clone(),
            others: Some(Arc::new(scope::OthersCache::new(source))),
        }
    }

    pub fn env(&self) -> &Environment<'static> {
        &self.env
    }

    /// Whether `s` contains template syntax.
    pub fn is_template(s: &str) -> bool {
        s.contains("{{") || s.contains("{%") || s.contains("{#")
    }

    /// Renders a playbook string. A template whose output is a single value keeps its native type.
    pub fn render_str_value(&self, s: &str, scope: &Scope) -> Result<JValue, TemplateError> {
        if !Self::is_template(s) && !s.starts_with(source::OVERRIDE_MARK) {
            return Ok(JValue::from(s));
        }
        self.render_text("<string>", s, scope, &TextOptions::default())
    }

    /// Renders template text with the given options; the result is a native value (see
    /// [`nodes`]).
    pub fn render_text(
        &self,
        name: &str,
        text: &str,
        scope: &Scope,
        opts: &TextOptions,
    ) -> Result<JValue, TemplateError> {
        let v = render_text_in(&self.env, name, text, scope.as_value(), opts)
            .map_err(|e| self.explain(e, text, scope))?;
        scope.take_error().map_or(Ok(()), Err)?;
        Ok(v)
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

    /// Evaluates a conditional (`when`, `changed_when`, `failed_when`, `until`, `assert`) as
    /// ansible-core 2.19 does: a string holding an expression, whose result must be a boolean.
    /// A string that is entirely a template (`"{{ x == 1 }}"`) is rendered first; a string result
    /// is then evaluated as the expression.
    pub fn eval_condition(&self, cond: &Value, scope: &Scope) -> Result<bool, TemplateError> {
        let expr = match cond {
            Value::Bool(b) => return Ok(*b),
            Value::Null => return Ok(false),
            Value::String(s) => s.trim(),
            _ => {
                return Err(TemplateError(
                    "Conditional expressions must be strings.".into(),
                ))
            }
        };
        if expr.is_empty() {
            return Err(TemplateError(
                "Empty conditional expressions are not allowed.".into(),
            ));
        }
        let v = if source::is_possibly_all_template(expr) {
            let v = self.render_str_value(expr, scope)?;
            match v.as_str() {
                Some(inner) => self.eval_expr(inner.trim(), scope)?,
                None => v,
            }
        } else {
            self.eval_expr(expr, scope)?
        };
        if v.kind() == minijinja::value::ValueKind::Bool {
            return Ok(v.is_true());
        }
        Err(TemplateError(format!(
            "Conditional result ({}) was derived from value of type '{}'. \
             Conditionals must have a boolean result.",
            if v.is_true() { "True" } else { "False" },
            py_type_name(&v)
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

    /// Renders a whole template file's text (the `template` module, `lookup('template')`) with
    /// Ansible's defaults for files, to text.
    pub fn render_template_text(
        &self,
        name: &str,
        text: &str,
        scope: &Scope,
    ) -> Result<String, TemplateError> {
        let v = self.render_text(name, text, scope, &TextOptions::file())?;
        Ok(pyrepr::to_text(&v))
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
                if msg.contains(filters::MANDATORY_UNNAMED) {
                    if let Some(name) = self.undefined_mandatory_operand(source, scope) {
                        msg = msg.replace(
                            filters::MANDATORY_UNNAMED,
                            &format!(
                                "Mandatory variable {} not defined.",
                                pyrepr::repr(&JValue::from(name))
                            ),
                        );
                    }
                }
                TemplateError(msg)
            }
        }
    }

    /// The name ansible-core gives an undefined value that reached `mandatory` (minijinja's
    /// undefined values do not carry it): the last part of the operand `x`, `a.b` or `a['b']`
    /// of the first `… | mandatory` in the source whose operand is undefined.
    fn undefined_mandatory_operand(&self, source: &str, scope: &Scope) -> Option<String> {
        let b = source.as_bytes();
        let mut from = 0;
        while let Some(p) = source[from..].find("mandatory") {
            let at = from + p;
            from = at + "mandatory".len();
            let after = source[from..].trim_start();
            if after.starts_with('(')
                || b.get(from)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
            {
                continue;
            }
            let before = source[..at].trim_end();
            let Some(before) = before.strip_suffix('|') else {
                continue;
            };
            let end = before.trim_end().len();
            let (start, last) = operand_chain(&before[..end])?;
            let chain = &before[start..end];
            let undefined = self
                .env
                .compile_expression(chain)
                .ok()
                .and_then(|e| e.eval(scope.as_value()).ok())
                .is_some_and(|v| v.is_undefined());
            scope.take_error();
            if undefined {
                return Some(last);
            }
        }
        None
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

use source::single_expression;

/// The start of the variable reference (`x`, `a.b`, `a['b']`, `a[0]`) that ends `s`, and its last
/// part's name.
fn operand_chain(s: &str) -> Option<(usize, String)> {
    let b = s.as_bytes();
    let mut i = b.len();
    let mut last: Option<String> = None;
    loop {
        if i > 0 && b[i - 1] == b']' {
            let mut depth = 0;
            let mut j = i;
            while j > 0 {
                j -= 1;
                match b[j] {
                    b']' => depth += 1,
                    b'[' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
            }
            if depth != 0 {
                return None;
            }
            if last.is_none() {
                let inner = s[j + 1..i - 1].trim();
                last = Some(inner.trim_matches(|c| c == '\'' || c == '"').to_string());
            }
            i = j;
            continue;
        }
        let end = i;
        while i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_') {
            i -= 1;
        }
        if i == end || b[i].is_ascii_digit() {
            return None;
        }
        if last.is_none() {
            last = Some(s[i..end].to_string());
        }
        if i > 0 && b[i - 1] == b'.' {
            i -= 1;
            continue;
        }
        return last.map(|l| (i, l));
    }
}

/// Python's name for the type of a value, as Ansible's messages print it.
pub fn py_type_name(v: &JValue) -> &'static str {
    use minijinja::value::ValueKind;
    match v.kind() {
        ValueKind::Undefined => "AnsibleUndefined",
        ValueKind::None => "NoneType",
        ValueKind::Bool => "bool",
        ValueKind::Number if v.is_integer() => "int",
        ValueKind::Number => "float",
        ValueKind::String => "str",
        ValueKind::Bytes => "bytes",
        ValueKind::Seq | ValueKind::Iterable => "list",
        ValueKind::Map => "dict",
        _ => "object",
    }
}

/// How template text is read and rendered: ansible-core's template overrides (the `template`
/// module's arguments, a `#jinja2:` first line) and whether backslashes are escaped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextOptions {
    /// Backslashes in string literals inside `{{ … }}` are literal (playbook strings).
    pub escape_backslashes: bool,
    pub trim_blocks: bool,
    pub lstrip_blocks: bool,
    pub block: (String, String),
    pub variable: (String, String),
    pub comment: (String, String),
    pub newline_sequence: String,
    pub keep_trailing_newline: bool,
}

impl Default for TextOptions {
    /// ansible-core's defaults for playbook strings.
    fn default() -> Self {
        TextOptions {
            escape_backslashes: true,
            trim_blocks: true,
            lstrip_blocks: false,
            block: ("{%".into(), "%}".into()),
            variable: ("{{".into(), "}}".into()),
            comment: ("{#".into(), "#}".into()),
            newline_sequence: "\n".into(),
            keep_trailing_newline: false,
        }
    }
}

impl TextOptions {
    /// ansible-core's defaults for template files (no backslash escaping).
    pub fn file() -> Self {
        TextOptions {
            escape_backslashes: false,
            ..Self::default()
        }
    }

    fn default_delimiters(&self) -> bool {
        let d = Self::default();
        self.block == d.block && self.variable == d.variable && self.comment == d.comment
    }

    fn default_syntax(&self) -> bool {
        self.default_delimiters()
            && self.trim_blocks
            && !self.lstrip_blocks
            && !self.keep_trailing_newline
    }

    fn syntax(&self) -> Result<minijinja::syntax::SyntaxConfig, minijinja::Error> {
        minijinja::syntax::SyntaxConfig::builder()
            .block_delimiters(self.block.0.clone(), self.block.1.clone())
            .variable_delimiters(self.variable.0.clone(), self.variable.1.clone())
            .comment_delimiters(self.comment.0.clone(), self.comment.1.clone())
            .trim_blocks(self.trim_blocks)
            .lstrip_blocks(self.lstrip_blocks)
            .keep_trailing_newline(self.keep_trailing_newline)
            .build()
    }

    fn apply(&mut self, o: &source::Overrides) -> Result<(), String> {
        use source::OverrideValue::{Bool, Str};
        for (key, value) in &o.pairs {
            match (key.as_str(), value) {
                ("trim_blocks", Bool(b)) => self.trim_blocks = *b,
                ("lstrip_blocks", Bool(b)) => self.lstrip_blocks = *b,
                ("keep_trailing_newline", Bool(b)) => self.keep_trailing_newline = *b,
                ("block_start_string", Str(s)) => self.block.0 = s.clone(),
                ("block_end_string", Str(s)) => self.block.1 = s.clone(),
                ("variable_start_string", Str(s)) => self.variable.0 = s.clone(),
                ("variable_end_string", Str(s)) => self.variable.1 = s.clone(),
                ("comment_start_string", Str(s)) => self.comment.0 = s.clone(),
                ("comment_end_string", Str(s)) => self.comment.1 = s.clone(),
                ("newline_sequence", Str(s)) if ["\n", "\r", "\r\n"].contains(&s.as_str()) => {
                    self.newline_sequence = s.clone()
                }
                (key, _) => return Err(format!("unsupported #jinja2: override {key}")),
            }
        }
        Ok(())
    }
}

/// Renders template text in `env` as ansible-core's templar does: a `#jinja2:` first line
/// changes the options, Jinja drops one trailing newline of the source and ansible-core puts
/// back the newlines a text result lost, a single output value keeps its type.
pub(crate) fn render_text_in(
    env: &Environment<'_>,
    name: &str,
    text: &str,
    ctx: JValue,
    opts: &TextOptions,
) -> Result<JValue, minijinja::Error> {
    let syntax_error = |m: String| minijinja::Error::new(ErrorKind::SyntaxError, m);
    let (overrides, body) = source::split_overrides(text).map_err(syntax_error)?;
    let mut opts = std::borrow::Cow::Borrowed(opts);
    if let Some(o) = &overrides {
        opts.to_mut().apply(o).map_err(syntax_error)?;
    }
    // Jinja reads every newline of the source as `\n`.
    let body = if body.contains('\r') {
        std::borrow::Cow::Owned(body.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        std::borrow::Cow::Borrowed(body)
    };
    let src = if opts.escape_backslashes && opts.default_delimiters() {
        source::escape_backslashes(&body)
    } else {
        std::borrow::Cow::Borrowed(body.as_ref())
    };
    let custom;
    let env = if opts.default_syntax() {
        env
    } else {
        let mut e = env.clone();
        e.set_syntax(opts.syntax()?);
        custom = e;
        &custom
    };
    let tmpl = env.template_from_named_str(name, &src)?;
    let v = nodes::render(&tmpl, ctx)?;
    let Some(out) = v.as_str() else {
        return Ok(v);
    };
    let mut out = if opts.newline_sequence != "\n" {
        out.replace('\n', &opts.newline_sequence)
    } else {
        out.to_string()
    };
    let want = source::trailing_newlines(text);
    let have = source::trailing_newlines(&out);
    if want > have {
        out.push_str(&opts.newline_sequence.repeat(want - have));
    }
    Ok(JValue::from(out))
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

/// A template value as text: strings as they are, everything else as Python's `str()`.
pub fn to_text(v: &JValue) -> String {
    pyrepr::to_text(v)
}

/// Python's `json.dumps(v)` with its default settings (what ansible-core writes for a `copy`
/// `content` that is a dict or a list).
pub fn py_json_dumps(v: &Value) -> String {
    filters::pydump::json_dumps(&to_jinja(v), &filters::pydump::JsonOpts::new(None, false))
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
        assert_eq!(t.render_str("{{ b }} {{ n }}", &s).unwrap(), "True ");
        // ansible-core 2.19 drops `None` values from text: alone, the template is `None`.
        assert_eq!(t.render_value(&json!("{{ n }}"), &s).unwrap(), json!(null));
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
    fn one_value_keeps_its_type_even_with_braces_inside() {
        let t = Templar::new();
        let s = scope(json!({"x": {"c": 2}}), false);
        assert_eq!(
            t.render_value(&json!("{{ {'a': {'b': 1}} | combine(x) }}"), &s)
                .unwrap(),
            json!({"a": {"b": 1}, "c": 2})
        );
        assert_eq!(
            t.render_value(&json!("{% if true %}{{ [1, 2] }}{% endif %}"), &s)
                .unwrap(),
            json!([1, 2])
        );
        assert_eq!(
            t.render_value(&json!("{{ 1 }}{{ none }}"), &s).unwrap(),
            json!(1)
        );
        assert_eq!(
            t.render_value(&json!("{{ '' }}{{ 5 }}"), &s).unwrap(),
            json!("5")
        );
        // A string that looks like a dict stays a string.
        assert_eq!(
            t.render_value(&json!("{{ '{\"a\": 1}' }}"), &s).unwrap(),
            json!("{\"a\": 1}")
        );
        // Values captured by a block are not output nodes.
        assert_eq!(
            t.render_value(&json!("{% set y %}{{ [3] }}{% endset %}{{ y }}"), &s)
                .unwrap(),
            json!("[3]")
        );
    }

    #[test]
    fn trailing_newlines_follow_ansible() {
        let t = Templar::new();
        let s = scope(json!({"n": 80, "b": false}), false);
        // Jinja drops the last newline: one value is left, and keeps its type.
        assert_eq!(t.render_value(&json!("{{ n }}\n"), &s).unwrap(), json!(80));
        assert_eq!(
            t.render_value(&json!("{{ b }}\n"), &s).unwrap(),
            json!(false)
        );
        // Text gets back the newlines it lost.
        assert_eq!(
            t.render_value(&json!("{{ 'x' }}\n"), &s).unwrap(),
            json!("x\n")
        );
        assert_eq!(
            t.render_value(&json!("{{ n }}\n\n"), &s).unwrap(),
            json!("80\n\n")
        );
        assert_eq!(
            t.render_value(&json!("{% if true %}a{% endif %}\n"), &s)
                .unwrap(),
            json!("a\n")
        );
    }

    #[test]
    fn backslashes_in_expression_strings_are_literal() {
        let t = Templar::new();
        let s = scope(json!({"x": "a1b"}), false);
        // YAML "{{ x | regex_replace('(1)', '<\\1>') }}" reaches tend with one backslash.
        assert_eq!(
            t.render_str(r"{{ x | regex_replace('(1)', '<\1>') }}", &s)
                .unwrap(),
            "a<1>b"
        );
        assert_eq!(t.render_str(r"{{ 'a\nb' }}", &s).unwrap(), r"a\nb");
        assert_eq!(t.render_str(r"{{ 'c\'d' }}", &s).unwrap(), r"c\'d");
        // Statements keep Jinja's escapes.
        assert_eq!(
            t.render_str(r"{% set y = 'a\nb' %}{{ y }}", &s).unwrap(),
            "a\nb"
        );
        // So do conditionals.
        assert!(t.eval_condition(&json!(r"x is match('a\d')"), &s).unwrap());
        assert!(t.eval_condition(&json!(r"x is match('\x61')"), &s).unwrap());
    }

    #[test]
    fn override_header_changes_the_syntax() {
        let t = Templar::new();
        let s = scope(json!({}), false);
        let text = "#jinja2: lstrip_blocks: True, trim_blocks: False\nitems:\n    {% for i in [1, 2] %}\n  - {{ i }}\n    {% endfor %}\ndone";
        assert_eq!(
            t.render_template_text("x.j2", text, &s).unwrap(),
            "items:\n\n  - 1\n\n  - 2\n\ndone"
        );
    }

    #[test]
    fn mandatory_names_the_variable() {
        let t = Templar::new();
        let s = scope(json!({"d": {"a": 1}}), false);
        let e = t.render_str("{{ nope | mandatory }}", &s).unwrap_err();
        assert!(
            e.0.contains("Mandatory variable 'nope' not defined."),
            "{}",
            e.0
        );
        let e = t.render_str("{{ d.zz | mandatory }}", &s).unwrap_err();
        assert!(
            e.0.contains("Mandatory variable 'zz' not defined."),
            "{}",
            e.0
        );
        let e = t.render_str("{{ d['k'] | mandatory }}", &s).unwrap_err();
        assert!(
            e.0.contains("Mandatory variable 'k' not defined."),
            "{}",
            e.0
        );
        let e = t
            .render_str("{{ d.a | mandatory }}{{ nope | mandatory('m') }}", &s)
            .unwrap_err();
        assert!(e.0.ends_with('m'), "{}", e.0);
    }

    #[test]
    fn conditions() {
        let t = Templar::new();
        let s = scope(json!({"x": 3, "s": "yes"}), false);
        assert!(t.eval_condition(&json!("x > 2"), &s).unwrap());
        assert!(!t.eval_condition(&json!("{{ x < 2 }}"), &s).unwrap());
        assert!(t.eval_condition(&json!("s | bool"), &s).unwrap());
        // A non-boolean result is an error in ansible-core 2.19.
        assert!(t.eval_condition(&json!("s"), &s).is_err());
        assert!(t.eval_condition(&json!("{{ x > 2 }}"), &s).unwrap());
        assert!(t.eval_condition(&json!(""), &s).is_err());
        assert!(t.eval_condition(&json!(1), &s).is_err());
        assert!(t.eval_condition(&json!("y is not defined"), &s).unwrap());
        assert!(t.eval_condition(&json!("y is undefined"), &s).unwrap());
        assert!(t.eval_condition(&json!(true), &s).unwrap());
    }
}
