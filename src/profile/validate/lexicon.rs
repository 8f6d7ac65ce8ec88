//! The profile's language: the shipped lexicon of `[profile] language`, or the OEM's own file
//! named by `[profile] lexicon`.

use super::Validator;
use crate::profile::error::line_of;
use crate::profile::raw::RawMeta;
use crate::text::lexicon::{Lexicon, LexiconError, SHIPPED};
use std::path::Path;

/// The fix for a language Cabin ships no lexicon of.
fn supported() -> String {
    let names: Vec<String> = SHIPPED.iter().map(|(l, _)| format!("\"{l}\"")).collect();
    format!(
        "use language = {}, or name a lexicon file of your own with lexicon = \"path.toml\" in [profile] (see docs/profiles.md)",
        names.join(", ")
    )
}

impl Validator<'_> {
    /// The lexicon the profile reads sentences by; English (with an error recorded) where
    /// it names none Cabin can use, so the rest of the profile is still checked.
    pub(super) fn language(&mut self, meta: &RawMeta) -> Lexicon {
        let fallback = || Lexicon::english().clone();
        let language = meta.language.get_ref();
        let Some(file) = &meta.lexicon else {
            return match Lexicon::shipped(language) {
                Some(l) => l,
                None => {
                    self.error(
                        Some(meta.language.span()),
                        "profile.language",
                        format!("Cabin ships no lexicon for language '{language}'"),
                        &supported(),
                    );
                    fallback()
                }
            };
        };
        // Relative to the profile's folder, as the profile is moved with its lexicon.
        let path = Path::new(self.file)
            .parent()
            .unwrap_or(Path::new(""))
            .join(file.get_ref());
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                self.error(
                    Some(file.span()),
                    "profile.lexicon",
                    format!("cannot read {}: {e}", path.display()),
                    "check the path (relative to the profile's folder) and its permissions",
                );
                return fallback();
            }
        };
        match Lexicon::parse(&text) {
            Ok(l) => l,
            Err(LexiconError {
                field,
                problem,
                span,
            }) => {
                let line = span.map_or(String::new(), |s| format!(":{}", line_of(&text, s.start)));
                self.error(
                    Some(file.span()),
                    "profile.lexicon",
                    format!("{}{line}: {field}: {problem}", path.display()),
                    "give every section and key of lexicons/en.toml, each word lower-case",
                );
                fallback()
            }
        }
    }
}
