//! The Ansible dialect tend reads.

pub mod ctlfs;
pub mod diag;
pub mod inventory;
pub mod playbook;
pub mod vault;
pub mod yaml;

pub use diag::{Diag, Diags};
pub mod template;

pub use template::{Layer, Scope, Templar, TemplateError};
