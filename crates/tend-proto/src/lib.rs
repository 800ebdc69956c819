//! The types both ends of a tend run share.
//!
//! The controller compiles a play into one [`Program`] per host; the agent (in process for local
//! hosts, `tend agent` on remote ones) runs it and answers with a stream of [`Event`]s. Everything
//! here is plain data with a stable serde form so that it can cross a pipe.

mod event;
mod loc;
mod plan;
mod program;
pub mod wire;

pub use event::{Event, HostStats, PlayBatch, ResultStatus, TaskResult};
pub use loc::Loc;
pub use plan::{change_key, PlanAction, PlanGuard, PlannedChange};
pub use program::{
    Become, Handler, HostState, LoopControl, LoopSpec, Module, PlayInfo, Program, ProgramVars,
    RoleInfo, RunOptions, Secret, Task, TaskKind, Undo, PROTOCOL_VERSION,
};

/// Data as tend moves it around: variables, module arguments, registered results.
pub type Value = serde_json::Value;
/// An ordered mapping of variable names to values.
pub type Vars = serde_json::Map<String, Value>;
