//! Variable lookup through precedence layers, with lazy templating of user-written values.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use minijinja::value::{Enumerator, Object, ObjectRepr};
use minijinja::Value as JValue;
use tend_proto::Value;

use super::{Templar, TemplateError};

/// One layer of variables.
#[derive(Clone, Debug)]
pub struct Layer {
    /// A map value.
    pub vars: JValue,
    /// Whether strings in this layer are templates to render when read.
    pub templated: bool,
}

impl Layer {
    pub fn from_json(vars: &Value, templated: bool) -> Self {
        Layer {
            vars: super::to_jinja_ser(vars),
            templated,
        }
    }

    pub fn from_map(vars: &tend_proto::Vars, templated: bool) -> Self {
        Layer {
            vars: super::to_jinja_ser(vars),
            templated,
        }
    }
}

/// The variables visible to one template evaluation: layers, highest precedence last.
#[derive(Clone)]
pub struct Scope(Arc<Inner>);

struct Inner {
    layers: Vec<Layer>,
    templar: Templar,
    error: Mutex<Option<TemplateError>>,
    depth: AtomicUsize,
}

/// How deep lazily templated variables may refer to each other before tend calls it a loop.
const MAX_LAZY_DEPTH: usize = 64;

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("layers", &self.0.layers.len())
            .finish()
    }
}

impl Scope {
    pub fn new(templar: &Templar, layers: Vec<Layer>) -> Self {
        Scope(Arc::new(Inner {
            layers,
            templar: templar.clone(),
            error: Mutex::new(None),
            depth: AtomicUsize::new(0),
        }))
    }

    /// A new scope with more layers on top of this one's.
    pub fn with_layers(&self, more: impl IntoIterator<Item = Layer>) -> Scope {
        let mut layers = self.0.layers.clone();
        layers.extend(more);
        Scope::new(&self.0.templar, layers)
    }

    pub fn layers(&self) -> &[Layer] {
        &self.0.layers
    }

    pub fn as_value(&self) -> JValue {
        JValue::from_object(self.clone())
    }

    pub(super) fn take_error(&self) -> Option<TemplateError> {
        self.0.error.lock().ok()?.take()
    }

    fn set_error(&self, e: TemplateError) {
        if let Ok(mut slot) = self.0.error.lock() {
            if slot.is_none() {
                *slot = Some(e);
            }
        }
    }

    /// Looks a variable up, rendering it if it came from a templated layer.
    pub fn lookup(&self, key: &str) -> Option<JValue> {
        if key == "vars" {
            return Some(JValue::from_object(VarsView(self.clone())));
        }
        if key == "hostvars" {
            return Some(JValue::from_object(HostVars(self.clone())));
        }
        for layer in self.0.layers.iter().rev() {
            let Ok(v) = layer.vars.get_attr(key) else {
                continue;
            };
            if v.is_undefined() {
                continue;
            }
            if !layer.templated || !contains_template(&v) {
                return Some(v);
            }
            return self.render_lazy(key, &v);
        }
        None
    }

    /// Looks a variable up as plain data.
    pub fn lookup_json(&self, key: &str) -> Result<Option<Value>, TemplateError> {
        match self.lookup(key) {
            None => Ok(None),
            Some(v) => {
                if let Some(e) = self.take_error() {
                    return Err(e);
                }
                super::to_json(&v).map(Some)
            }
        }
    }

    fn render_lazy(&self, key: &str, v: &JValue) -> Option<JValue> {
        // Once rendering has failed the whole template fails; rendering more variables would
        // only repeat work (minijinja looks variables up again to describe errors).
        if self.0.error.lock().is_ok_and(|e| e.is_some()) {
            return None;
        }
        let depth = self.0.depth.fetch_add(1, Ordering::SeqCst);
        let result = if depth >= MAX_LAZY_DEPTH {
            Err(TemplateError(format!(
                "recursive loop detected in template: variable '{key}' refers to itself"
            )))
        } else {
            self.render_nested(v)
        };
        self.0.depth.fetch_sub(1, Ordering::SeqCst);
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                let e = if e.0.contains("while templating") {
                    e
                } else {
                    TemplateError(format!("{} (while templating variable '{key}')", e.0))
                };
                self.set_error(e);
                None
            }
        }
    }

    fn render_nested(&self, v: &JValue) -> Result<JValue, TemplateError> {
        let json = super::to_json(v)?;
        let rendered = self.0.templar.render_value(&json, self)?;
        Ok(super::to_jinja(&rendered))
    }

    /// All variable names visible in this scope.
    pub fn keys(&self) -> Vec<JValue> {
        let mut seen = std::collections::BTreeSet::new();
        for layer in &self.0.layers {
            if let Ok(iter) = layer.vars.try_iter() {
                for k in iter {
                    if let Some(s) = k.as_str() {
                        seen.insert(s.to_string());
                    }
                }
            }
        }
        seen.into_iter().map(JValue::from).collect()
    }
}

fn contains_template(v: &JValue) -> bool {
    if let Some(s) = v.as_str() {
        return Templar::is_template(s);
    }
    match v.kind() {
        minijinja::value::ValueKind::Seq | minijinja::value::ValueKind::Map => {
            if let Ok(iter) = v.try_iter() {
                for item in iter {
                    if v.kind() == minijinja::value::ValueKind::Map {
                        if let Ok(x) = v.get_item(&item) {
                            if contains_template(&x) {
                                return true;
                            }
                        }
                    } else if contains_template(&item) {
                        return true;
                    }
                }
            }
            false
        }
        _ => false,
    }
}

impl Object for Scope {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &JValue) -> Option<JValue> {
        self.lookup(key.as_str()?)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.keys())
    }
}

/// Where `hostvars` of hosts other than the running one come from: the controller, asked on
/// demand (a fleet's every host to every host would grow with the square of the fleet).
pub trait OtherHosts: Send + Sync {
    /// `hostvars[host]`: its inventory variables, facts, `set_fact` and registered values as
    /// the controller knows them; `None` for a host not in the inventory.
    fn hostvars(&self, host: &str) -> Option<Value>;
}

/// One answer per host for the life of a templar (one program run).
pub(super) struct OthersCache {
    source: Arc<dyn OtherHosts>,
    seen: Mutex<std::collections::HashMap<String, Option<JValue>>>,
}

impl OthersCache {
    pub(super) fn new(source: Arc<dyn OtherHosts>) -> Self {
        OthersCache {
            source,
            seen: Mutex::new(Default::default()),
        }
    }

    fn get(&self, host: &str) -> Option<JValue> {
        if let Some(v) = self.seen.lock().ok()?.get(host) {
            return v.clone();
        }
        let v = self.source.hostvars(host).map(|v| super::to_jinja_ser(&v));
        if let Ok(mut seen) = self.seen.lock() {
            seen.insert(host.to_string(), v.clone());
        }
        v
    }
}

/// The `hostvars` magic variable: this host's own variables as they are now (facts, registered
/// values …), and the other hosts' as the controller knows them ([`OtherHosts`]).
#[derive(Debug)]
struct HostVars(Scope);

impl Object for HostVars {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &JValue) -> Option<JValue> {
        let host = key.as_str()?;
        let me = self.0.lookup("inventory_hostname");
        if me.as_ref().and_then(|m| m.as_str()) == Some(host) {
            return Some(JValue::from_object(VarsView(self.0.clone())));
        }
        self.0 .0.templar.others.as_ref()?.get(host)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        // Every inventory host, as `groups.all` names them.
        let mut names: Vec<JValue> = Vec::new();
        let all = self
            .0
            .lookup("groups")
            .and_then(|g| g.get_attr("all").ok())
            .filter(|a| !a.is_undefined());
        if let Some(iter) = all.as_ref().and_then(|a| a.try_iter().ok()) {
            names.extend(iter);
        }
        if names.is_empty() {
            if let Some(me) = self.0.lookup("inventory_hostname") {
                names.push(me);
            }
        }
        Enumerator::Values(names)
    }
}

/// The `vars` magic variable: every variable by name, rendered on read.
#[derive(Debug)]
struct VarsView(Scope);

impl Object for VarsView {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &JValue) -> Option<JValue> {
        let k = key.as_str()?;
        if k == "vars" {
            return None;
        }
        self.0.lookup(k)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.0.keys())
    }
}
