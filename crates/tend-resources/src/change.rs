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
