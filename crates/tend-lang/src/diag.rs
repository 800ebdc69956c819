//! Located diagnostics: what is wrong, where, and what to do next.

use std::fmt;

use tend_proto::Loc;

/// A problem in user input, located at the place the user wrote it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Diag {
    pub loc: Loc,
    pub msg: String,
    pub hint: Option<String>,
}

impl Diag {
    pub fn new(loc: Loc, msg: impl Into<String>) -> Self {
        Diag {
            loc,
            msg: msg.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The diagnostic with the offending source line and a caret under the column, reading the
    /// file only now (diagnostics are rare; sources are not kept around for them).
    pub fn render(&self) -> String {
        let mut out = format!("{}: {}", self.loc, self.msg);
        if self.loc.line > 0 {
            if let Ok(text) = crate::ctlfs::read_to_string(std::path::Path::new(&*self.loc.file)) {
                if let Some(line) = text.lines().nth(self.loc.line as usize - 1) {
                    let num = self.loc.line.to_string();
                    let pad = " ".repeat(num.len());
                    let caret_at = line
                        .chars()
                        .take(self.loc.col.saturating_sub(1) as usize)
                        .map(|c| if c == '\t' { '\t' } else { ' ' })
                        .collect::<String>();
                    out.push_str(&format!("\n{pad} |\n{num} | {line}\n{pad} | {caret_at}^"));
                }
            }
        }
        if let Some(h) = &self.hint {
            out.push_str(&format!("\nhint: {h}"));
        }
        out
    }
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.loc, self.msg)
    }
}

/// Several diagnostics at once: tend reports every problem it can find before giving up.
#[derive(Clone, Debug, Default, thiserror::Error)]
pub struct Diags(pub Vec<Diag>);

impl fmt::Display for Diags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl From<Diag> for Diags {
    fn from(d: Diag) -> Self {
        Diags(vec![d])
    }
}
