//! Sentence templates: `(set|change) [the] temperature to {temperature} [degrees]`.
//!
//! `(a|b)` is a choice, `[a|b]` an optional choice, `{name}` a slot whose type has the same
//! name, `{name:type}` a slot of another type. Templates expand into plain sequences once, at
//! load time; matching then never parses anything.

use crate::text::{tokenize, tokenize_with, Lexicon, NumberWords};

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    pub source: String,
    seq: Vec<Node>,
}

/// A slot reference inside a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotRef {
    pub name: String,
    pub type_name: String,
}

#[derive(Debug, Clone)]
enum Node {
    Word(String),
    Slot(SlotRef),
    Choice {
        alts: Vec<Vec<Node>>,
        optional: bool,
    },
}

/// One expansion of a template: literal tokens and slots in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Element {
    Literal(String),
    Slot(SlotRef),
}

/// Why a template could not be parsed, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{problem} (fix: {fix})")]
pub struct TemplateError {
    pub problem: String,
    pub fix: String,
}

fn err(problem: impl Into<String>, fix: impl Into<String>) -> TemplateError {
    TemplateError {
        problem: problem.into(),
        fix: fix.into(),
    }
}

/// More expansions than this from one template is almost certainly a mistake.
pub const MAX_EXPANSIONS: usize = 4096;

impl Template {
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let chars: Vec<char> = source.chars().collect();
        let mut pos = 0;
        let seq = parse_seq(&chars, &mut pos, None)?;
        if pos != chars.len() {
            return Err(err(
                format!("unexpected '{}' at column {}", chars[pos], pos + 1),
                "balance every '(' with ')' and every '[' with ']'",
            ));
        }
        if seq.is_empty() {
            return Err(err("the sentence is empty", "write at least one word"));
        }
        if !has_literal(&seq) {
            return Err(err(
                "the sentence has no fixed word, so it would match anything",
                "add the words that introduce the slot, e.g. \"navigate to {place}\"",
            ));
        }
        Ok(Template {
            source: source.to_string(),
            seq,
        })
    }

    /// Every slot the template mentions, in order of first appearance.
    pub fn slots(&self) -> Vec<SlotRef> {
        let mut out = Vec::new();
        collect_slots(&self.seq, &mut out);
        out
    }

    /// Every fixed word the template may say, normalised as speech is.
    pub fn words(&self) -> Vec<String> {
        let mut out = Vec::new();
        collect_words(&self.seq, true, &mut out);
        out
    }

    /// The fixed words every expansion says one of: outside optional parts ("open" and
    /// "trunk" of "(open|pop) [the] (trunk|boot)", not "the").
    pub fn required_words(&self) -> Vec<String> {
        let mut out = Vec::new();
        collect_words(&self.seq, false, &mut out);
        out
    }

    /// All plain sequences the template stands for, numbers read in English words.
    pub fn expand(&self) -> Result<Vec<Vec<Element>>, TemplateError> {
        self.expand_with(&Lexicon::english().numbers)
    }

    /// All plain sequences the template stands for, numbers read in the words of `numbers`
    /// (the profile's language), as the driver's words are.
    pub fn expand_with(&self, numbers: &NumberWords) -> Result<Vec<Vec<Element>>, TemplateError> {
        expand_seq(&self.seq, numbers)
    }
}

fn has_literal(seq: &[Node]) -> bool {
    seq.iter().any(|n| match n {
        Node::Word(_) => true,
        Node::Slot(_) => false,
        Node::Choice { alts, optional } => !optional && alts.iter().all(|a| has_literal(a)),
    })
}

/// The words of `seq`, with those of optional parts where `optional`.
fn collect_words(seq: &[Node], optional: bool, out: &mut Vec<String>) {
    for node in seq {
        match node {
            Node::Word(w) => out.extend(tokenize(w).into_iter().map(|t| t.norm)),
            Node::Slot(_) => {}
            Node::Choice { optional: true, .. } if !optional => {}
            Node::Choice { alts, .. } => alts.iter().for_each(|a| collect_words(a, optional, out)),
        }
    }
}

fn collect_slots(seq: &[Node], out: &mut Vec<SlotRef>) {
    for node in seq {
        match node {
            Node::Word(_) => {}
            Node::Slot(s) => {
                if !out.contains(s) {
                    out.push(s.clone());
                }
            }
            Node::Choice { alts, .. } => alts.iter().for_each(|a| collect_slots(a, out)),
        }
    }
}

fn expand_seq(seq: &[Node], numbers: &NumberWords) -> Result<Vec<Vec<Element>>, TemplateError> {
    let mut acc: Vec<Vec<Element>> = vec![Vec::new()];
    for node in seq {
        let options: Vec<Vec<Element>> = match node {
            Node::Word(w) => vec![tokenize_with(w, numbers)
                .into_iter()
                .map(|t| Element::Literal(t.norm))
                .collect()],
            Node::Slot(s) => vec![vec![Element::Slot(s.clone())]],
            Node::Choice { alts, optional } => {
                let mut opts = Vec::new();
                if *optional {
                    opts.push(Vec::new());
                }
                for alt in alts {
                    opts.extend(expand_seq(alt, numbers)?);
                }
                opts
            }
        };
        if acc.len() * options.len() > MAX_EXPANSIONS {
            return Err(err(
                format!("the sentence expands to more than {MAX_EXPANSIONS} variants"),
                "split it into several sentences or use fewer optional groups",
            ));
        }
        acc = acc
            .iter()
            .flat_map(|prefix| {
                options.iter().map(move |opt| {
                    let mut v = prefix.clone();
                    v.extend(opt.iter().cloned());
                    v
                })
            })
            .collect();
    }
    Ok(acc)
}

/// Parses a sequence until `close` (or the end when `close` is None). Stops before a `|`.
fn parse_seq(
    chars: &[char],
    pos: &mut usize,
    close: Option<char>,
) -> Result<Vec<Node>, TemplateError> {
    let mut seq = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, seq: &mut Vec<Node>| {
        if !word.trim().is_empty() {
            seq.push(Node::Word(word.trim().to_string()));
        }
        word.clear();
    };
    while *pos < chars.len() {
        let c = chars[*pos];
        match c {
            '(' | '[' => {
                flush(&mut word, &mut seq);
                *pos += 1;
                let end = if c == '(' { ')' } else { ']' };
                let alts = parse_alts(chars, pos, end)?;
                if c == '(' && alts.iter().any(Vec::is_empty) {
                    return Err(err(
                        "an empty alternative inside ( )",
                        "use [ ] for optional words, e.g. \"[the]\"",
                    ));
                }
                seq.push(Node::Choice {
                    alts,
                    optional: c == '[',
                });
            }
            ')' | ']' | '|' => {
                if close.is_none() {
                    return Err(err(
                        format!("'{c}' at column {} has no opening bracket", *pos + 1),
                        "remove it or add the matching '(' or '['",
                    ));
                }
                flush(&mut word, &mut seq);
                return Ok(seq);
            }
            '{' => {
                flush(&mut word, &mut seq);
                let start = *pos + 1;
                let Some(len) = chars[start..].iter().position(|&c| c == '}') else {
                    return Err(err(
                        format!("'{{' at column {} is never closed", *pos + 1),
                        "close the slot with '}'",
                    ));
                };
                let inner: String = chars[start..start + len].iter().collect();
                seq.push(Node::Slot(parse_slot_ref(&inner)?));
                *pos = start + len + 1;
                continue;
            }
            '}' => {
                return Err(err(
                    format!("'}}' at column {} has no opening '{{'", *pos + 1),
                    "remove it or open the slot with '{'",
                ))
            }
            _ => word.push(c),
        }
        *pos += 1;
    }
    if let Some(close) = close {
        return Err(err(
            format!("missing '{close}'"),
            format!("close every group with '{close}'"),
        ));
    }
    flush(&mut word, &mut seq);
    Ok(seq)
}

fn parse_alts(chars: &[char], pos: &mut usize, end: char) -> Result<Vec<Vec<Node>>, TemplateError> {
    let mut alts = Vec::new();
    loop {
        alts.push(parse_seq(chars, pos, Some(end))?);
        match chars.get(*pos) {
            Some('|') => *pos += 1,
            Some(&c) if c == end => return Ok(alts),
            Some(&c) => {
                return Err(err(
                    format!(
                        "'{c}' at column {} closes a group opened with the other bracket",
                        *pos + 1
                    ),
                    "pair '(' with ')' and '[' with ']'",
                ))
            }
            None => {
                return Err(err(
                    format!("missing '{end}'"),
                    format!("close the group with '{end}'"),
                ))
            }
        }
    }
}

fn parse_slot_ref(inner: &str) -> Result<SlotRef, TemplateError> {
    let (name, type_name) = match inner.split_once(':') {
        Some((n, t)) => (n.trim(), t.trim()),
        None => (inner.trim(), inner.trim()),
    };
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    if !valid(name) || !valid(type_name) {
        return Err(err(
            format!("slot '{{{inner}}}' is not a valid slot name"),
            "use lower-case letters, digits and '_', e.g. {zone} or {from_zone:zone}",
        ));
    }
    Ok(SlotRef {
        name: name.to_string(),
        type_name: type_name.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(e: &[Element]) -> String {
        e.iter()
            .map(|e| match e {
                Element::Literal(w) => w.clone(),
                Element::Slot(s) => format!("{{{}}}", s.name),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn expands_choices_and_options() {
        let t =
            Template::parse("(set|change) [the] temperature to {temperature} [degrees]").unwrap();
        let mut all: Vec<String> = t.expand().unwrap().iter().map(|e| render(e)).collect();
        all.sort();
        assert_eq!(all.len(), 8);
        assert!(all.contains(&"set the temperature to {temperature} degrees".to_string()));
        assert!(all.contains(&"change temperature to {temperature}".to_string()));
    }

    #[test]
    fn nested_groups_and_typed_slots() {
        let t = Template::parse("open [the] window [on the {seat:zone} (side|seat)]").unwrap();
        assert_eq!(t.expand().unwrap().len(), 6);
        assert_eq!(
            t.slots(),
            vec![SlotRef {
                name: "seat".into(),
                type_name: "zone".into()
            }]
        );
    }

    #[test]
    fn template_words_are_normalised_like_speech() {
        let t = Template::parse("What's the next one").unwrap();
        assert_eq!(render(&t.expand().unwrap()[0]), "whats the next 1");
    }

    #[test]
    fn malformed_templates_are_rejected_with_a_fix() {
        for bad in [
            "(set|change temperature",
            "set temperature]",
            "set {temperature",
            "set temperature}",
            "(set|) temperature",
            "set {Temp}",
            "{place}",
            "[navigate] {place}",
            "(open|close] window",
            "",
        ] {
            let e = Template::parse(bad).expect_err(bad);
            assert!(!e.fix.is_empty(), "{bad}: {e}");
        }
    }

    #[test]
    fn expansion_is_bounded() {
        let many = "[a|b|c] ".repeat(9) + "go";
        let e = Template::parse(&many).unwrap().expand().unwrap_err();
        assert!(e.problem.contains("more than"), "{e}");
    }
}
