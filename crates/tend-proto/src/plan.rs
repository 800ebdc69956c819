//! What plans carry between the agent and the controller: each planned resource's change, and
//! under `tend apply PLAN` what the plan expects on a host.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Value;

/// What a planned resource will do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanAction {
    Create,
    Update,
    Delete,
    /// An action module that does not predict its result (`command`, `shell` …): it will run,
    /// and what it does is known only then. Not guarded.
    Run,
}

/// One resource's change as observed on a host (in a plan, or while applying one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedChange {
    /// Unique per host and stable between plan and apply: see [`change_key`].
    pub key: String,
    pub module: String,
    pub action: PlanAction,
    /// What the change is about (a path, a user name …); the task name for `run` actions and
    /// for `no_log` tasks.
    pub subject: String,
    /// Ansible-shaped diff records (`{before, after, before_header, after_header}`): field
    /// records have mappings on both sides, content records strings. Empty when censored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diffs: Vec<Value>,
    /// sha256 of the change the agent computed from what it observed (none for `run`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The task has `no_log`: what changes is not shown.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub censored: bool,
    /// Under `tend apply PLAN`: the change differs from the planned one (or the plan has none
    /// here), so the resource was not touched.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub changed_since_plan: bool,
    /// The task's module arguments, rendered (what policies judge besides the diff: a new
    /// file's `mode` and `owner` show only here). Not part of the digest; none when censored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<crate::Vars>,
}

/// The key of a planned resource on a host: the play's number, the task's location, how often
/// the host reached that location in the play (includes and looped includes run a location
/// several times), and the loop item's index.
pub fn change_key(play: usize, loc: &str, occurrence: usize, item: Option<usize>) -> String {
    match item {
        Some(i) => format!("{play}:{loc}#{occurrence}[{i}]"),
        None => format!("{play}:{loc}#{occurrence}"),
    }
}

/// Under `tend apply PLAN`: the changes the plan holds for one host, by key (`None`: a `run`
/// action). A resource whose change now has another digest, or whose key is missing here
/// while it would change something, is not touched.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PlanGuard {
    pub expected: BTreeMap<String, Option<String>>,
    /// Keys the controller found unchanged since the plan when it planned the host again just
    /// before applying (`tend apply PLAN` does): those apply as planned without comparing
    /// digests again, because by the time the run reaches them its own earlier tasks may have
    /// changed what they observe (a package that brings a config file, a second `lineinfile`
    /// on one file). An empty digest in `expected` matches nothing: that key was found changed.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub approved: std::collections::BTreeSet<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_play_location_occurrence_and_item() {
        assert_eq!(change_key(0, "site.yml:4:7", 1, None), "0:site.yml:4:7#1");
        assert_eq!(change_key(2, "t.yml:9:3", 3, Some(0)), "2:t.yml:9:3#3[0]");
        assert_ne!(
            change_key(0, "a.yml:1:1", 1, Some(1)),
            change_key(0, "a.yml:1:1", 2, Some(1))
        );
    }
}
