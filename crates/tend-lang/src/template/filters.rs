//! The Ansible filters tend provides on top of minijinja's builtins.

use minijinja::Environment;

pub fn register(_env: &mut Environment<'static>) {}
