//! Building the variable scope of one task, in ansible-core's precedence order.

use minijinja::Value as JValue;
use tend_lang::template::{to_jinja_ser, Layer};
use tend_proto::{Value, Vars};

/// A layer built once and reused.
pub(crate) fn layer(vars: &Vars, templated: bool) -> Layer {
    Layer {
        vars: to_jinja_ser(vars),
        templated,
    }
}

/// A set of variables that changes as the host runs (`set_fact`, `register`, `include_vars`).
/// Values are kept converted, so registering one variable costs that variable only.
#[derive(Default, Clone)]
pub(crate) struct DynVars {
    map: indexmap::IndexMap<String, JValue>,
    json: Vars,
}

impl DynVars {
    pub fn set(&mut self, k: &str, v: Value) {
        self.map.insert(k.to_string(), to_jinja_ser(&v));
        self.json.insert(k.to_string(), v);
    }

    pub fn extend(&mut self, vars: Vars) {
        for (k, v) in vars {
            self.set(&k, v);
        }
    }

    pub fn layer(&self, templated: bool) -> Layer {
        Layer {
            vars: JValue::from(
                self.map
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<std::collections::BTreeMap<String, JValue>>(),
            ),
            templated,
        }
    }

    pub fn to_json(&self) -> Vars {
        self.json.clone()
    }

    pub fn clear(&mut self) {
        self.map.clear();
        self.json.clear();
    }
}
