//! What a resource's `diff` returns: a structured change.

use serde::{Deserialize, Serialize};
use serde_json::json;
use tend_proto::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Nothing to do.
    None,
    Create,
    Update,
    Delete,
}

/// One attribute that differs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    pub field: String,
    pub before: Value,
    pub after: Value,
}

/// The difference between what is on the host and what is declared.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub kind: ChangeKind,
    /// What the change is about, e.g. the path (used as diff header).
    pub subject: String,
    pub fields: Vec<FieldChange>,
    /// Text content before and after, when content changes (for unified diffs).
    pub content: Option<(String, String)>,
    /// Headers of the content diff when they are not `subject` (ansible-core's
    /// `before_header`/`after_header`, e.g. `dest` and the source file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<(String, String)>,
    /// Changes to further things the same task manages (the files of a recursive copy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<Change>,
}

impl Change {
    pub fn none(subject: impl Into<String>) -> Self {
        Change {
            kind: ChangeKind::None,
            subject: subject.into(),
            fields: Vec::new(),
            content: None,
            headers: None,
            children: Vec::new(),
        }
    }

    pub fn new(kind: ChangeKind, subject: impl Into<String>) -> Self {
        Change {
            kind,
            ..Change::none(subject)
        }
    }

    pub fn is_none(&self) -> bool {
        self.kind == ChangeKind::None
    }

    pub fn field(mut self, field: &str, before: impl Into<Value>, after: impl Into<Value>) -> Self {
        self.fields.push(FieldChange {
            field: field.into(),
            before: before.into(),
            after: after.into(),
        });
        if self.kind == ChangeKind::None {
            self.kind = ChangeKind::Update;
        }
        self
    }

    /// Adds a field change only if the values differ.
    pub fn field_if(self, field: &str, before: impl Into<Value>, after: impl Into<Value>) -> Self {
        let (b, a) = (before.into(), after.into());
        if b == a {
            self
        } else {
            self.field(field, b, a)
        }
    }

    pub fn with_content(mut self, before: String, after: String) -> Self {
        if before != after {
            if self.kind == ChangeKind::None {
                self.kind = ChangeKind::Update;
            }
            self.content = Some((before, after));
        }
        self
    }

    /// A content change with explicit diff headers, recorded only if the content differs.
    pub fn with_content_headers(
        mut self,
        before: String,
        after: String,
        headers: (String, String),
    ) -> Self {
        if before != after {
            self = self.with_content(before, after);
            self.headers = Some(headers);
        }
        self
    }

    /// Adds a change to a further thing; a non-empty child makes this change an update.
    pub fn child(mut self, c: Change) -> Self {
        if !c.is_none() {
            if self.kind == ChangeKind::None {
                self.kind = ChangeKind::Update;
            }
            self.children.push(c);
        }
        self
    }

    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = self
            .fields
            .iter()
            .map(|f| format!("{}: {} -> {}", f.field, f.before, f.after))
            .collect();
        if self.content.is_some() {
            parts.push("content".into());
        }
        for c in &self.children {
            parts.push(c.summary());
        }
        format!("{:?} {} [{}]", self.kind, self.subject, parts.join(", "))
    }

    /// The change as ansible-core's `diff` records.
    pub fn diff_records(&self) -> Vec<Value> {
        let mut out = Vec::new();
        if !self.fields.is_empty() {
            let mut before = serde_json::Map::new();
            let mut after = serde_json::Map::new();
            before.insert("path".into(), Value::String(self.subject.clone()));
            after.insert("path".into(), Value::String(self.subject.clone()));
            for f in &self.fields {
                before.insert(f.field.clone(), f.before.clone());
                after.insert(f.field.clone(), f.after.clone());
            }
            out.push(json!({"before": before, "after": after}));
        }
        if let Some((b, a)) = &self.content {
            let (bh, ah) = self
                .headers
                .clone()
                .unwrap_or_else(|| (self.subject.clone(), self.subject.clone()));
            let mut rec = serde_json::Map::new();
            rec.insert("before".into(), Value::String(b.clone()));
            rec.insert("after".into(), Value::String(a.clone()));
            // ansible-core leaves out the header of a side that did not exist.
            if !bh.is_empty() {
                rec.insert("before_header".into(), Value::String(bh));
            }
            if !ah.is_empty() {
                rec.insert("after_header".into(), Value::String(ah));
            }
            out.push(Value::Object(rec));
        }
        for c in &self.children {
            out.extend(c.diff_records());
        }
        out
    }
}

impl Change {
    /// sha256 (hex) of the change's canonical form: JSON with object keys sorted and no
    /// whitespace, behind a version tag. The desired state is fixed by the plan's input
    /// digests, so two equal digests mean the host was observed in the same state.
    pub fn digest(&self) -> String {
        let v = serde_json::to_value(self).unwrap_or(Value::Null);
        digest_value("tend-change-v1", &v)
    }
}

/// sha256 (hex) of `tag` and the canonical JSON of `v` (object keys sorted, no whitespace).
pub fn digest_value(tag: &str, v: &Value) -> String {
    use sha2::{Digest, Sha256};
    let mut text = String::new();
    canonical(v, &mut text);
    let mut h = Sha256::new();
    h.update(tag.as_bytes());
    h.update(b"\n");
    h.update(text.as_bytes());
    hex::encode(h.finalize())
}

fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_stable_and_changes_with_what_was_observed() {
        let a = Change::new(ChangeKind::Update, "/etc/motd")
            .field("mode", "0644", "0600")
            .with_content("old\n".into(), "new\n".into());
        let again = Change::new(ChangeKind::Update, "/etc/motd")
            .field("mode", "0644", "0600")
            .with_content("old\n".into(), "new\n".into());
        assert_eq!(a.digest(), again.digest());
        assert_eq!(a.digest().len(), 64);
        // Another observed mode, or other observed content: another digest.
        let mode = Change::new(ChangeKind::Update, "/etc/motd")
            .field("mode", "0640", "0600")
            .with_content("old\n".into(), "new\n".into());
        let content = Change::new(ChangeKind::Update, "/etc/motd")
            .field("mode", "0644", "0600")
            .with_content("edited\n".into(), "new\n".into());
        assert_ne!(a.digest(), mode.digest());
        assert_ne!(a.digest(), content.digest());
        assert_ne!(
            a.digest(),
            Change::new(ChangeKind::Create, "/etc/motd").digest()
        );
    }

    #[test]
    fn the_digest_does_not_depend_on_key_order() {
        let v1: Value =
            serde_json::from_str(r#"{"a": 1, "b": {"x": [1, {"q": 2, "p": 3}]}}"#).unwrap();
        let v2: Value =
            serde_json::from_str(r#"{"b": {"x": [1, {"p": 3, "q": 2}]}, "a": 1}"#).unwrap();
        assert_eq!(digest_value("t", &v1), digest_value("t", &v2));
        assert_ne!(digest_value("t", &v1), digest_value("u", &v1));
        // Array order is meaning.
        let v3: Value =
            serde_json::from_str(r#"{"a": 1, "b": {"x": [{"q": 2, "p": 3}, 1]}}"#).unwrap();
        assert_ne!(digest_value("t", &v1), digest_value("t", &v3));
    }
}
