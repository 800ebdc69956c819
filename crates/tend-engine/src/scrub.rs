//! Secrets never shown: every value decrypted from a vault is masked in every event before a
//! consumer (the printer, the JSON output, the history, the drift report) sees it.
//!
//! The secrets are what [`tend_lang::vault`] revealed: each string of a vault-encrypted vars
//! file, each `!vault` value, each decrypted `copy`/`template` source (whole and by line).
//! Values shorter than [`tend_lang::vault::MIN_MASKED_LEN`] are not masked. One Aho-Corasick
//! automaton (leftmost-longest: a secret that contains another is masked whole) matches them
//! all; it is rebuilt only when a new secret was revealed during the run.

use std::path::{Path, PathBuf};

use aho_corasick::{AhoCorasick, MatchKind};
use serde_json::Value;
use tend_proto::Event;

/// What a secret is replaced with (the history store's marker too).
pub const MASK: &str = "********";

/// Masks revealed vault secrets in events.
#[derive(Default)]
pub struct EventScrubber {
    generation: Option<u64>,
    matcher: Option<AhoCorasick>,
}

impl EventScrubber {
    pub fn new() -> Self {
        Self::default()
    }

    fn refresh(&mut self) {
        let g = tend_lang::vault::generation();
        if self.generation == Some(g) {
            return;
        }
        self.generation = Some(g);
        let secrets = tend_lang::vault::revealed();
        self.matcher = if secrets.is_empty() {
            None
        } else {
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&secrets)
                .ok()
        };
    }

    /// `text` with every secret masked, if it held one.
    pub fn text(&mut self, text: &str) -> Option<String> {
        self.refresh();
        let m = self.matcher.as_ref()?;
        m.is_match(text)
            .then(|| m.replace_all(text, &vec![MASK; m.patterns_len()]))
    }

    /// The event with every secret masked, or `None` when it holds none (the common case
    /// costs one pass over its strings, and nothing at all when no vault was decrypted).
    pub fn event(&mut self, e: &Event) -> Option<Event> {
        self.refresh();
        let m = self.matcher.as_ref()?;
        let mut v = serde_json::to_value(e).ok()?;
        if !scrub_value(m, &mut v) {
            return None;
        }
        serde_json::from_value(v).ok()
    }
}

fn scrub_value(m: &AhoCorasick, v: &mut Value) -> bool {
    let mask = |s: &str| m.replace_all(s, &vec![MASK; m.patterns_len()]);
    match v {
        Value::String(s) if m.is_match(s.as_str()) => {
            *s = mask(s);
            true
        }
        Value::Array(a) => a.iter_mut().fold(false, |c, x| scrub_value(m, x) | c),
        Value::Object(o) => {
            let mut changed = false;
            if o.keys().any(|k| m.is_match(k.as_str())) {
                let entries: Vec<(String, Value)> = std::mem::take(o).into_iter().collect();
                for (k, x) in entries {
                    let k = if m.is_match(k.as_str()) { mask(&k) } else { k };
                    o.insert(k, x);
                }
                changed = true;
            }
            o.values_mut().fold(changed, |c, x| scrub_value(m, x) | c)
        }
        _ => false,
    }
}

/// Files above this size are not looked into ahead of the run.
const MAX_AHEAD: u64 = 16 << 20;

/// Decrypts, before the run, the vault-encrypted files under the directories shipped to hosts
/// (whole encrypted files, and YAML files with `!vault` values), so their secrets are known
/// to the scrubber and to remote agents before any task reads them. Files that do not decrypt
/// are left for the task that reads them to report (a file no task reads is no error, as in
/// ansible-core). Hidden directories (`.git`, `.tend`) are skipped.
pub fn decrypt_ahead(roots: &[PathBuf]) {
    for root in roots {
        walk(root, 0);
    }
}

fn walk(dir: &Path, depth: usize) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in rd.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let Ok(ft) = entry.file_type() else { continue };
        let path = entry.path();
        if ft.is_dir() && depth < 20 {
            walk(&path, depth + 1);
        } else if ft.is_file() && entry.metadata().is_ok_and(|m| m.len() <= MAX_AHEAD) {
            look_into(&path);
        }
    }
}

fn look_into(path: &Path) {
    let Ok(data) = std::fs::read(path) else {
        return;
    };
    if tend_lang::vault::is_encrypted(&data) {
        let _ = tend_lang::vault::decrypt_file(data, path);
        return;
    }
    let yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yml" | "yaml" | "json") | None
    );
    let marker = tend_lang::vault::HEADER.as_bytes();
    if yaml && data.windows(marker.len()).any(|w| w == marker) {
        if let Ok(text) = std::str::from_utf8(&data) {
            let _ = tend_lang::yaml::parse(&path.to_string_lossy(), text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_in_strings_and_keys_longest_first() {
        tend_lang::vault::reveal("scrub-test-secret");
        tend_lang::vault::reveal("scrub-test-secret-longer");
        let mut s = EventScrubber::new();
        let e = Event::Warning {
            host: Some("h".into()),
            msg: "a scrub-test-secret-longer and scrub-test-secret".into(),
        };
        let Some(Event::Warning { msg, .. }) = s.event(&e) else {
            panic!("not masked")
        };
        assert_eq!(msg, "a ******** and ********");
        let clean = Event::Warning {
            host: None,
            msg: "nothing here".into(),
        };
        assert!(s.event(&clean).is_none());
        let mut v = serde_json::json!({"scrub-test-secret": ["x scrub-test-secret"]});
        let m = s.matcher.clone().unwrap();
        assert!(scrub_value(&m, &mut v));
        assert_eq!(v, serde_json::json!({"********": ["x ********"]}));
    }
}
