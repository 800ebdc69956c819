//! `-e/--extra-vars`: `k=v` pairs, a JSON or YAML mapping, or `@file`.

use std::path::Path;

use tend_lang::playbook::{kv::parse_kv, load_vars_file};
use tend_lang::{yaml, Diag};
use tend_proto::{Loc, Value, Vars};

/// Parses one `-e` argument and merges it into `into` (later arguments win).
pub fn parse_extra_vars(arg: &str, into: &mut Vars) -> Result<(), Diag> {
    let arg = arg.trim();
    let here = || Loc::new("<command line -e>", 0, 0);
    if let Some(file) = arg.strip_prefix('@') {
        let vars = load_vars_file(Path::new(file)).map_err(|d| {
            if d.loc.line == 0 {
                Diag::new(
                    here(),
                    format!("cannot read extra vars file {file}: {}", d.msg),
                )
                .with_hint("-e @FILE takes a YAML or JSON file of variables")
            } else {
                d
            }
        })?;
        into.extend(vars);
        return Ok(());
    }
    if arg.starts_with('{') || arg.starts_with('[') {
        let node = yaml::parse("<command line -e>", arg)?;
        return match node.to_value() {
            Value::Object(m) => {
                into.extend(m);
                Ok(())
            }
            _ => Err(Diag::new(
                here(),
                "extra vars given as JSON/YAML must be a mapping",
            )),
        };
    }
    if arg.is_empty() {
        return Ok(());
    }
    let vars = parse_kv(arg, false).map_err(|e| {
        Diag::new(here(), format!("invalid extra vars: {e}"))
            .with_hint("use -e key=value, -e '{\"key\": \"value\"}' or -e @file.yml")
    })?;
    into.extend(vars);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_forms() {
        let mut v = Vars::new();
        parse_extra_vars("a=1 b='x y'", &mut v).unwrap();
        parse_extra_vars(r#"{"c": [1, 2], "a": "2"}"#, &mut v).unwrap();
        assert_eq!(v["a"], "2");
        assert_eq!(v["b"], "x y");
        assert_eq!(v["c"], serde_json::json!([1, 2]));
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("e.yml");
        std::fs::write(&f, "d: true\n").unwrap();
        parse_extra_vars(&format!("@{}", f.display()), &mut v).unwrap();
        assert_eq!(v["d"], true);
        assert!(parse_extra_vars("@/nonexistent/x.yml", &mut v).is_err());
    }
}
