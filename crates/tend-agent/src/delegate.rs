//! Delegation (`delegate_to`): a task of one host whose module runs on another inventory host.
//!
//! The delegating host's agent renders everything with its own variables (ansible-core's
//! meaning: the task's variables are the delegating host's) and sends the module call — the
//! same request its become worker takes ([`crate::worker`]) — to the controller as a [`Call`]
//! ([`crate::Rendezvous::delegate`]). The controller runs it in-process for a local delegate,
//! or on an SSH delegate's agent in a session that serves calls ([`Served`]), and sends the
//! [`Reply`] back.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tend_lang::Templar;
use tend_proto::{Secret, Value};
use tend_resources::ModuleOutput;

use crate::privilege::{self, Escalation};
use crate::worker::spawn::Worker;
use crate::worker::{self, ModuleRequest, Request, Response, WireOutput};

/// One module call for another host.
#[derive(Serialize, Deserialize)]
pub struct Call {
    /// The inventory host the module runs on.
    pub delegate: String,
    /// The host whose task it is.
    pub from: String,
    pub(crate) module: ModuleRequest,
    /// The task's become, resolved with the delegating host's variables; the delegate decides
    /// whether its login user already is that user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) escalation: Option<Escalation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) password: Option<Secret>,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("delegate", &self.delegate)
            .field("from", &self.from)
            .field("module", &self.module.name)
            .finish_non_exhaustive()
    }
}

impl Call {
    /// The module's name (for messages).
    pub fn module(&self) -> &str {
        &self.module.name
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    pub fn from_value(v: Value) -> Result<Call, String> {
        serde_json::from_value(v).map_err(|e| format!("bad delegated call: {e}"))
    }
}

/// What became of a [`Call`].
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Reply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) output: Option<WireOutput>,
    /// The call could not be made or the module failed to run (the task fails with it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The delegate could not be reached: the task is UNREACHABLE, as in ansible-core.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unreachable: bool,
}

impl Reply {
    pub fn error(msg: impl Into<String>) -> Reply {
        Reply {
            error: Some(msg.into()),
            ..Default::default()
        }
    }

    pub fn unreachable(msg: impl Into<String>) -> Reply {
        Reply {
            error: Some(msg.into()),
            unreachable: true,
            ..Default::default()
        }
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    pub fn from_value(v: Value) -> Reply {
        serde_json::from_value(v).unwrap_or_else(|e| Reply::error(format!("bad reply: {e}")))
    }

    /// The module's output, or the error to fail the task with (`true`: unreachable).
    pub(crate) fn into_output(self) -> Result<ModuleOutput, (String, bool)> {
        match (self.output, self.error) {
            (Some(o), None) => Ok(o.into()),
            (_, Some(e)) => Err((e, self.unreachable)),
            (None, None) => Err(("the delegate answered nothing".into(), false)),
        }
    }
}

/// Runs delegated calls on the machine it lives on: in this process, or in a become worker
/// (one per way of becoming a user, started on first use and kept while this lives).
#[derive(Default)]
pub struct Served {
    templar: Templar,
    workers: Mutex<HashMap<Escalation, Worker>>,
}

impl Served {
    pub fn new() -> Self {
        Served::default()
    }

    pub fn call(&self, call: Call) -> Reply {
        let Call {
            module,
            escalation,
            password,
            ..
        } = call;
        let req = Request::Module(Box::new(module));
        let response = match escalation.filter(privilege::needs_worker) {
            None => worker::answer(req, &self.templar),
            Some(esc) => {
                // Calls that need the same worker take turns; others do not wait for them.
                let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
                let worker = match workers.entry(esc.clone()) {
                    std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => {
                        match Worker::start(&esc, password.as_ref()) {
                            Ok(w) => v.insert(w),
                            Err(e) => return Reply::error(e),
                        }
                    }
                };
                match worker.call(&req) {
                    Ok(r) => r,
                    Err(e) => {
                        workers.remove(&esc);
                        return Reply::error(e);
                    }
                }
            }
        };
        match response {
            Response::Output(o) => Reply {
                output: Some(o),
                ..Default::default()
            },
            Response::Error(e) => Reply::error(e),
            Response::Facts(_) | Response::Journal(_) => {
                Reply::error("the worker answered a module call with something else")
            }
        }
    }
}
