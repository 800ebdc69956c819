//! The result of a template as ansible-core 2.19 computes it: Jinja yields output *nodes* (each
//! piece of literal text, each `{{ … }}` value), `None` values are dropped, and when exactly one
//! node is left it is the result with its native type (`{% if x %}{{ [1] }}{% endif %}` is a
//! list); otherwise the nodes are joined as text. No nodes at all is `None`.
//!
//! minijinja writes text and values straight into its output, so the rendering output here is a
//! writer that remembers which writes came from a value: the formatter marks the value it is
//! about to write, and the writer, if the write reaches it (it does not when minijinja captures
//! the output of a `{% set %}` block, a macro …), records a value node.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;

use minijinja::Value as JValue;

#[derive(Default)]
struct Nodes {
    text: Vec<u8>,
    /// One entry per node: `Some(value)` for a value, `None` for literal text.
    parts: Vec<Option<JValue>>,
    pending: Option<JValue>,
}

thread_local! {
    static ACTIVE: RefCell<Vec<Rc<RefCell<Nodes>>>> = const { RefCell::new(Vec::new()) };
}

struct NodeWriter(Rc<RefCell<Nodes>>);

impl io::Write for NodeWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    // minijinja calls `write_all` once per piece it writes, empty pieces included.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut n = self.0.borrow_mut();
        if let Some(v) = n.pending.take() {
            n.parts.push(Some(v));
        } else if !buf.is_empty() {
            n.parts.push(None);
        }
        n.text.extend_from_slice(buf);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Pops the collector even when rendering panics or returns early.
struct Active(Rc<RefCell<Nodes>>);

impl Drop for Active {
    fn drop(&mut self) {
        ACTIVE.with(|a| {
            let mut a = a.borrow_mut();
            if let Some(pos) = a.iter().rposition(|n| Rc::ptr_eq(n, &self.0)) {
                a.remove(pos);
            }
        });
    }
}

/// Renders a template, collecting its output nodes, and returns Ansible's result value.
pub fn render(tmpl: &minijinja::Template, ctx: JValue) -> Result<JValue, minijinja::Error> {
    let nodes = Rc::new(RefCell::new(Nodes::default()));
    ACTIVE.with(|a| a.borrow_mut().push(nodes.clone()));
    let guard = Active(nodes.clone());
    let res = tmpl
        .render_captured_to(ctx, NodeWriter(nodes.clone()))
        .map(drop);
    drop(guard);
    res?;
    let n = std::mem::take(&mut *nodes.borrow_mut());
    Ok(match n.parts.as_slice() {
        [] => JValue::from(()),
        [Some(v)] => v.clone(),
        _ => JValue::from(String::from_utf8_lossy(&n.text).into_owned()),
    })
}

/// Called by the formatter before it writes the text of `value`.
pub fn mark_value(value: &JValue) -> Option<impl FnOnce()> {
    let top = ACTIVE.with(|a| a.borrow().last().cloned())?;
    top.borrow_mut().pending = Some(value.clone());
    Some(move || top.borrow_mut().pending = None)
}
