//! Syntax checks of templates before anything runs.

use tend_proto::Value;

use super::{single_expression, Templar, TemplateError};

impl Templar {
    /// Checks that every template inside `v` (strings with `{{`, `{%`, `{#`) parses.
    pub fn check_value(&self, v: &Value) -> Result<(), TemplateError> {
        match v {
            Value::String(s) => self.check_template(s),
            Value::Array(items) => items.iter().try_for_each(|i| self.check_value(i)),
            Value::Object(m) => m.iter().try_for_each(|(k, v)| {
                self.check_template(k)?;
                self.check_value(v)
            }),
            _ => Ok(()),
        }
    }

    /// Checks one template string.
    pub fn check_template(&self, s: &str) -> Result<(), TemplateError> {
        if !Self::is_template(s) {
            return Ok(());
        }
        // The same preparation rendering does: `#jinja2:` overrides, literal backslashes.
        let body = match super::source::split_overrides(s) {
            Ok((_, body)) => body,
            Err(e) => return Err(TemplateError(format!("template syntax error: {e}"))),
        };
        let body = super::source::escape_backslashes(body);
        if let Some(expr) = single_expression(&body) {
            if self.env.compile_expression(expr).is_ok() {
                return Ok(());
            }
        }
        self.env
            .template_from_str(&body)
            .map(|_| ())
            .map_err(syntax_error)
    }

    /// Checks a conditional (`when:` …): a bare expression or a `{{ }}` template.
    pub fn check_condition(&self, c: &Value) -> Result<(), TemplateError> {
        match c {
            Value::String(s) if Self::is_template(s) => self.check_template(s),
            Value::String(s) if !s.trim().is_empty() => self
                .env
                .compile_expression(s.trim())
                .map(|_| ())
                .map_err(syntax_error),
            _ => Ok(()),
        }
    }
}

fn syntax_error(e: minijinja::Error) -> TemplateError {
    let detail = e.detail().unwrap_or("invalid syntax");
    TemplateError(format!("template syntax error: {detail}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_syntax_errors_anywhere_in_a_value() {
        let t = Templar::new();
        assert!(t
            .check_value(&json!({"a": ["ok {{ x }}", {"b": "{{ x }"}]}))
            .is_err());
        assert!(t
            .check_value(&json!({"a": ["ok {{ x | default(1) }}", "{% if x %}y{% endif %}"]}))
            .is_ok());
        assert!(t.check_condition(&json!("x ==")).is_err());
        assert!(t.check_condition(&json!("x is defined and x > 1")).is_ok());
    }
}
