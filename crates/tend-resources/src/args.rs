//! Module arguments with Ansible's type coercions (`"yes"` is a boolean, `"a,b"` is a list,
//! `0644` and `"0644"` are modes) and ansible-core's wording for wrong ones.

use tend_proto::{Value, Vars};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ArgError(pub String);

/// Rendered arguments of one module call.
#[derive(Clone, Debug, Default)]
pub struct Args(pub Vars);

impl Args {
    pub fn new(vars: Vars) -> Self {
        Args(vars)
    }

    pub fn raw(&self, k: &str) -> Option<&Value> {
        self.0.get(k).filter(|v| !v.is_null())
    }

    pub fn has(&self, k: &str) -> bool {
        self.raw(k).is_some()
    }

    /// Refuses arguments the module does not know, as ansible-core does.
    pub fn check_known(&self, module: &str, known: &[&str]) -> Result<(), ArgError> {
        let mut unknown: Vec<&str> = self
            .0
            .keys()
            .map(String::as_str)
            .filter(|k| !known.contains(k) && !k.starts_with('_'))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        unknown.sort();
        let mut supported: Vec<&str> = known.to_vec();
        supported.sort();
        Err(ArgError(format!(
            "Unsupported parameters for ({module}) module: {}. Supported parameters include: {}.",
            unknown.join(", "),
            supported.join(", ")
        )))
    }

    /// The first of `names` that is set (a parameter and its aliases).
    pub fn first<'a>(&'a self, names: &[&str]) -> Option<(&'a str, &'a Value)> {
        names
            .iter()
            .find_map(|n| self.0.get_key_value(*n).filter(|(_, v)| !v.is_null()))
            .map(|(k, v)| (k.as_str(), v))
    }

    pub fn str(&self, k: &str) -> Result<Option<String>, ArgError> {
        match self.raw(k) {
            None => Ok(None),
            Some(v) => to_str(k, v).map(Some),
        }
    }

    pub fn str_any(&self, names: &[&str]) -> Result<Option<String>, ArgError> {
        match self.first(names) {
            None => Ok(None),
            Some((k, v)) => to_str(k, v).map(Some),
        }
    }

    pub fn req_str(&self, k: &str) -> Result<String, ArgError> {
        self.str(k)?
            .ok_or_else(|| ArgError(format!("missing required arguments: {k}")))
    }

    pub fn bool(&self, k: &str) -> Result<Option<bool>, ArgError> {
        match self.raw(k) {
            None => Ok(None),
            Some(v) => to_bool(k, v).map(Some),
        }
    }

    pub fn bool_or(&self, k: &str, default: bool) -> Result<bool, ArgError> {
        Ok(self.bool(k)?.unwrap_or(default))
    }

    pub fn int(&self, k: &str) -> Result<Option<i64>, ArgError> {
        match self.raw(k) {
            None => Ok(None),
            Some(v) => to_int(k, v).map(Some),
        }
    }

    pub fn float(&self, k: &str) -> Result<Option<f64>, ArgError> {
        match self.raw(k) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| {
                ArgError(format!(
                    "argument '{k}' is of type str and we were unable to convert to float: \
                     could not convert string to float: '{s}'"
                ))
            }),
            Some(v) => Err(type_error(k, v, "float")),
        }
    }

    /// A list argument: a YAML list, or a comma-separated string.
    pub fn list(&self, k: &str) -> Result<Option<Vec<String>>, ArgError> {
        match self.raw(k) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| to_str(k, i))
                .collect::<Result<_, _>>()
                .map(Some),
            Some(Value::String(s)) => Ok(Some(
                s.split(',')
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty())
                    .collect(),
            )),
            Some(v) => Ok(Some(vec![to_str(k, v)?])),
        }
    }

    /// One of a fixed set of choices.
    pub fn choice(&self, k: &str, choices: &[&str]) -> Result<Option<String>, ArgError> {
        let Some(v) = self.str(k)? else {
            return Ok(None);
        };
        if choices.contains(&v.as_str()) {
            Ok(Some(v))
        } else {
            Err(ArgError(format!(
                "value of {k} must be one of: {}, got: {v}",
                choices.join(", ")
            )))
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

fn type_error(k: &str, v: &Value, want: &str) -> ArgError {
    ArgError(format!(
        "argument '{k}' is of type {} and we were unable to convert to {want}",
        type_name(v)
    ))
}

pub fn to_str(k: &str, v: &Value) -> Result<String, ArgError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(if *b { "True".into() } else { "False".into() }),
        Value::Number(n) => Ok(n.to_string()),
        Value::Null => Ok(String::new()),
        other => Err(type_error(k, other, "str")),
    }
}

pub fn to_bool(k: &str, v: &Value) -> Result<bool, ArgError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) if n.as_i64() == Some(1) => Ok(true),
        Value::Number(n) if n.as_i64() == Some(0) => Ok(false),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "yes" | "on" | "1" | "true" | "y" | "t" => Ok(true),
            "no" | "off" | "0" | "false" | "n" | "f" | "" => Ok(false),
            _ => Err(ArgError(format!(
                "argument '{k}' is of type str and we were unable to convert to bool: \
                 The value '{s}' is not a valid boolean.  Valid booleans include: \
                 'yes', 'on', '1', 'true', 'no', 'off', '0', 'false'"
            ))),
        },
        other => Err(type_error(k, other, "bool")),
    }
}

pub fn to_int(k: &str, v: &Value) -> Result<i64, ArgError> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .ok_or_else(|| type_error(k, v, "int")),
        Value::String(s) => s.trim().parse().map_err(|_| {
            ArgError(format!(
                "argument '{k}' is of type str and we were unable to convert to int: \
                 \"{s}\" cannot be converted to an int"
            ))
        }),
        Value::Bool(b) => Ok(*b as i64),
        other => Err(type_error(k, other, "int")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(v: Value) -> Args {
        Args(v.as_object().unwrap().clone())
    }

    #[test]
    fn ansible_booleans() {
        let a = args(json!({"a": "yes", "b": "off", "c": 1, "d": "maybe"}));
        assert_eq!(a.bool("a").unwrap(), Some(true));
        assert_eq!(a.bool("b").unwrap(), Some(false));
        assert_eq!(a.bool("c").unwrap(), Some(true));
        assert!(a.bool("d").unwrap_err().0.contains("not a valid boolean"));
    }

    #[test]
    fn lists_from_comma_strings() {
        let a = args(json!({"l": "a, b,c", "m": ["x", 1]}));
        assert_eq!(a.list("l").unwrap().unwrap(), vec!["a", "b", "c"]);
        assert_eq!(a.list("m").unwrap().unwrap(), vec!["x", "1"]);
    }

    #[test]
    fn unknown_arguments_are_named() {
        let a = args(json!({"path": "/x", "colour": "red"}));
        let e = a.check_known("file", &["path", "state"]).unwrap_err();
        assert_eq!(
            e.0,
            "Unsupported parameters for (file) module: colour. Supported parameters include: path, state."
        );
    }
}
