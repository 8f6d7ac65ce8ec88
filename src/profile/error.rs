//! What a broken profile gets: each problem with its line and fix.

use std::fmt;

/// One problem in a profile: where, what, and how to fix it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileError {
    pub file: String,
    pub line: Option<usize>,
    pub field: String,
    pub problem: String,
    pub fix: String,
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: ", self.file, line)?,
            None => write!(f, "{}: ", self.file)?,
        }
        write!(f, "{}: {}\n  fix: {}", self.field, self.problem, self.fix)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read profile {file}: {source} (fix: check the path and permissions)")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render_errors(.0))]
    Invalid(Vec<ProfileError>),
}

fn render_errors(errors: &[ProfileError]) -> String {
    let mut s = format!(
        "profile has {} problem{}:",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    );
    for e in errors {
        s.push('\n');
        s.push_str(&e.to_string());
    }
    s
}

pub(super) fn line_of(text: &str, byte: usize) -> usize {
    text[..byte.min(text.len())].matches('\n').count() + 1
}
