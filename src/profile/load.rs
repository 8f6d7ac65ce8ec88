//! Loading a profile: read the file (or the embedded default), parse it, validate it.

use crate::profile::error::{line_of, LoadError, ProfileError};
use crate::profile::raw::RawProfile;
use crate::profile::validate::Validator;
use crate::profile::{Profile, DEFAULT_PROFILE_NAME, DEFAULT_PROFILE_TOML};
use std::path::Path;

impl Profile {
    /// Loads and validates a profile file.
    pub fn load(path: &Path) -> Result<Profile, LoadError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
            file: file.clone(),
            source,
        })?;
        Profile::parse(&text, &file)
    }

    /// The profile compiled into the binary.
    pub fn embedded_default() -> Profile {
        Profile::parse(DEFAULT_PROFILE_TOML, DEFAULT_PROFILE_NAME)
            .expect("the embedded default profile is validated by the test suite")
    }

    /// Loads `path` if given, else the embedded default.
    pub fn load_or_default(path: Option<&Path>) -> Result<Profile, LoadError> {
        match path {
            Some(p) => Profile::load(p),
            None => Ok(Profile::embedded_default()),
        }
    }

    /// Parses and validates profile text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Profile, LoadError> {
        let raw: RawProfile = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            LoadError::Invalid(vec![ProfileError {
                file: file.to_string(),
                line,
                field: "syntax".into(),
                problem: e.message().trim().to_string(),
                fix: syntax_fix(e.message()),
            }])
        })?;
        Validator {
            file,
            text,
            errors: Vec::new(),
            lexicon: crate::text::Lexicon::english().clone(),
        }
        .profile(raw)
    }
}

fn syntax_fix(message: &str) -> String {
    if message.contains("missing field") {
        "add the missing field (see profiles/default.toml for a complete example)".into()
    } else if message.contains("unknown field") {
        "check the spelling; the message lists the fields allowed here".into()
    } else if message.contains("unknown variant") {
        "use one of the values the message lists".into()
    } else if message.contains("invalid type") {
        "give the value the type the message asks for".into()
    } else {
        "fix the TOML syntax at that line".into()
    }
}
