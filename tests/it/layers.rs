//! The house's rules, checked on the source: the library's folders are layers, and a module
//! imports only from its own folder or from a folder below it; and no two modules (files)
//! import each other, directly or round a circle. `cargo test --test it layers::` prints the
//! module graph's edges that break either rule.
//!
//! An import is any `crate::a::b` path in code (comments and test modules left out), and
//! `super::x` resolved to the file it names. A `mod.rs` that re-exports its children
//! (`pub use child::Thing`) imports them, so a child reaches a sibling by its own path, never
//! through its parent.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The library's folders, lowest first: each may import only from those before it.
const LAYERS: &[&str] = &[
    "text",
    "runtime",
    "profile",
    "act",
    "hear",
    "speak",
    "asr",
    "understand",
    "listening",
    "daemon",
];

/// A module of the library: its path from the crate root (`understand::brain::prompt`).
type Module = Vec<String>;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`.
fn rs_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(rs_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

/// Every library module (the binaries under `src/bin`, `main.rs` and `cli/` are not the
/// library) and its file, test modules left out.
fn modules() -> BTreeMap<Module, PathBuf> {
    let root = src();
    let files = rs_files(&root);
    let mut out = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&root).unwrap();
        let parts: Vec<String> = rel
            .with_extension("")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if matches!(parts[0].as_str(), "bin" | "main" | "cli" | "lib") {
            continue;
        }
        if parts.last().is_some_and(|p| p == "tests") {
            continue;
        }
        let mut module = parts;
        if module.last().is_some_and(|p| p == "mod") {
            module.pop();
        }
        out.insert(module, f);
    }
    out
}

/// The code of a file without comments, string literals and `#[cfg(test)] mod tests { … }`.
fn code(text: &str) -> String {
    without_comments(text, false)
}

/// The code of a file without comments and its test module; string literals are kept where
/// `strings`, else each becomes `""`.
fn without_comments(text: &str, strings: bool) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '"' => {
                out.push('"');
                let mut escaped = false;
                for c in chars.by_ref() {
                    if strings || c == '"' && !escaped {
                        out.push(c);
                    }
                    if escaped {
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        break;
                    }
                }
            }
            _ => out.push(c),
        }
    }
    match out.find("#[cfg(test)]\nmod tests {") {
        Some(i) => out[..i].to_string(),
        None => out,
    }
}

/// The paths a file's code names: `crate::a::b::c` and `super::x::y`, each as its segments
/// from the crate root, including every name of a `use crate::{a, b::c}` group.
fn paths(module: &Module, is_mod_rs: bool, code: &str) -> Vec<Module> {
    let mut out = Vec::new();
    // The module `super` means: the parent of this file's module.
    let parent: Module = if is_mod_rs || module.len() > 1 {
        module[..module.len() - 1].to_vec()
    } else {
        Vec::new()
    };
    let bytes: Vec<char> = code.chars().collect();
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let mut i = 0;
    while i < bytes.len() {
        let rest: String = bytes[i..bytes.len().min(i + 7)].iter().collect();
        let starts_word = i == 0 || !(word(bytes[i - 1]) || bytes[i - 1] == ':');
        let base = if starts_word && rest.starts_with("crate::") {
            Some((Vec::new(), i + 7))
        } else if starts_word && rest.starts_with("super::") {
            Some((parent.clone(), i + 7))
        } else {
            None
        };
        let Some((base, mut j)) = base else {
            i += 1;
            continue;
        };
        let mut path = base;
        loop {
            if bytes.get(j) == Some(&'{') {
                // A group: each member is a path from here.
                let end = (j..bytes.len())
                    .find(|&k| bytes[k] == '}')
                    .unwrap_or(bytes.len());
                let group: String = bytes[j + 1..end].iter().collect();
                for member in group.split(',') {
                    let mut p = path.clone();
                    p.extend(
                        member
                            .trim()
                            .split("::")
                            .map(|s| s.split_whitespace().next().unwrap_or("").to_string())
                            .filter(|s| !s.is_empty() && s != "self" && s != "*"),
                    );
                    out.push(p);
                }
                path.clear();
                j = end;
                break;
            }
            let start = j;
            while j < bytes.len() && word(bytes[j]) {
                j += 1;
            }
            if start == j {
                break;
            }
            path.push(bytes[start..j].iter().collect());
            if bytes.get(j) == Some(&':') && bytes.get(j + 1) == Some(&':') {
                j += 2;
            } else {
                break;
            }
        }
        if !path.is_empty() {
            out.push(path);
        }
        i = j.max(i + 1);
    }
    out
}

/// The module graph: each module and the other modules it imports (the longest module
/// prefix of each path it names).
fn graph() -> BTreeMap<Module, BTreeSet<Module>> {
    let modules = modules();
    let mut graph = BTreeMap::new();
    for (module, file) in &modules {
        let text = std::fs::read_to_string(file).unwrap();
        let is_mod_rs = file.file_name().is_some_and(|f| f == "mod.rs");
        let mut deps = BTreeSet::new();
        for path in paths(module, is_mod_rs, &code(&text)) {
            let target = (1..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|p| modules.contains_key(p));
            if let Some(t) = target.filter(|t| t != module) {
                deps.insert(t);
            }
        }
        // A mod.rs that re-exports a child (`pub use child::X`) depends on it.
        if is_mod_rs {
            for line in code(&text).lines() {
                if let Some(rest) = line.trim().strip_prefix("pub use ") {
                    let child = rest.split("::").next().unwrap_or("").trim();
                    let mut p = module.clone();
                    p.push(child.to_string());
                    if modules.contains_key(&p) {
                        deps.insert(p);
                    }
                }
            }
        }
        graph.insert(module.clone(), deps);
    }
    graph
}

fn name(m: &Module) -> String {
    m.join("::")
}

#[test]
fn every_folder_is_a_layer() {
    let graph = graph();
    let tops: BTreeSet<&str> = graph.keys().map(|m| m[0].as_str()).collect();
    let unlisted: Vec<&&str> = tops.iter().filter(|t| !LAYERS.contains(t)).collect();
    assert!(
        unlisted.is_empty(),
        "folders missing from LAYERS in tests/it/layers.rs: {unlisted:?}"
    );
}

#[test]
fn imports_only_run_down_the_layers() {
    let graph = graph();
    let rank = |m: &Module| LAYERS.iter().position(|l| *l == m[0]).unwrap_or(usize::MAX);
    let mut upward = Vec::new();
    for (module, deps) in &graph {
        for dep in deps {
            if dep[0] != module[0] && rank(dep) > rank(module) {
                upward.push(format!("{} -> {}", name(module), name(dep)));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that run up the layers:\n{}",
        upward.join("\n")
    );
    // The check sees the imports it is meant to: the daemon uses the dialog, the dialog the
    // vehicle, and the front end the wake word.
    for (from, to) in [
        ("daemon::event_loop", "understand"),
        ("understand::dialog", "act::vehicle"),
        ("hear::front_end", "hear::wake"),
    ] {
        let from: Module = from.split("::").map(String::from).collect();
        let to: Module = to.split("::").map(String::from).collect();
        assert!(
            graph[&from].contains(&to),
            "{} should import {}",
            name(&from),
            name(&to)
        );
    }
}

#[test]
fn no_module_imports_round_a_circle() {
    let graph = graph();
    // Depth-first search; a back edge closes a circle.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        m: &Module,
        graph: &BTreeMap<Module, BTreeSet<Module>>,
        marks: &mut BTreeMap<Module, Mark>,
        stack: &mut Vec<Module>,
        circles: &mut Vec<String>,
    ) {
        marks.insert(m.clone(), Mark::Open);
        stack.push(m.clone());
        for d in &graph[m] {
            match marks.get(d) {
                Some(Mark::Open) => {
                    let at = stack.iter().position(|s| s == d).unwrap();
                    let mut circle: Vec<String> = stack[at..].iter().map(name).collect();
                    circle.push(name(d));
                    circles.push(circle.join(" -> "));
                }
                Some(Mark::Done) => {}
                None => visit(d, graph, marks, stack, circles),
            }
        }
        stack.pop();
        marks.insert(m.clone(), Mark::Done);
    }
    let mut marks = BTreeMap::new();
    let mut circles = Vec::new();
    for m in graph.keys() {
        if !marks.contains_key(m) {
            visit(m, &graph, &mut marks, &mut Vec::new(), &mut circles);
        }
    }
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_parser_finds_paths_and_groups() {
    let module: Module = vec!["daemon".into(), "api".into()];
    let code = code(
        "use crate::daemon::events::{Event, State};\n// crate::speak::Voice\nlet s = \"crate::act\";\nsuper::policy::x();\n",
    );
    let found: Vec<String> = paths(&module, false, &code).iter().map(name).collect();
    assert_eq!(
        found,
        [
            "daemon::events::Event",
            "daemon::events::State",
            "daemon::policy::x"
        ]
    );
}

/// Strings the understanding code may compare words with: none is a word of a language.
/// Each is (file under `src/`, literal); "*" for a whole file.
const NOT_LANGUAGE: &[(&str, &str)] = &[
    // `--llm auto|off|<url>`, the cloud's URL scheme.
    ("understand/brain/start.rs", "auto"),
    ("understand/brain/start.rs", "off"),
    ("understand/brain/cloud.rs", "https"),
    // A reply's placeholder and the tool-choice mode of the OpenAI API.
    ("understand/brain/decide/mod.rs", "result"),
    ("understand/brain/decide/offer.rs", "required"),
    // Abbreviations that do not end a sentence of a reply: the reply's language, not the
    // driver's (a lexicon section once replies are localised).
    ("text/sentences.rs", "*"),
];

/// The code of a file with its string literals kept, comments and its test module left out.
fn code_with_strings(text: &str) -> String {
    without_comments(text, true)
}

/// The lower-case word literals that `code` tests words with, each with its line: in a list
/// (`&["yes", "yeah"]`), compared (`w == "too"`, `matches!(w, "oh" | "o")`, `Some("half")`,
/// `"ten" => 10`) or looked for (`ends_with("er")`). Values built from one (`"ok".into()`)
/// are replies, not tests.
fn word_tests(code: &str) -> Vec<(usize, String)> {
    let is_word = |lit: &str| {
        lit.chars().next().is_some_and(char::is_alphabetic)
            && lit
                .chars()
                .all(|c| c.is_alphabetic() || c == ' ' || c == '\'')
            && !lit.chars().any(char::is_uppercase)
    };
    // The innermost bracket open before `at`, and what comes before it.
    let opener = |at: usize| {
        let mut depth = 0i32;
        for (i, c) in code[..at].char_indices().rev() {
            match c {
                ')' | ']' | '}' => depth += 1,
                '(' | '[' | '{' if depth > 0 => depth -= 1,
                '(' | '[' | '{' => return Some((c, code[..i].trim_end().chars().last())),
                _ => {}
            }
        }
        None
    };
    let mut out = Vec::new();
    let mut rest = code;
    let mut offset = 0;
    while let Some(start) = rest.find('"') {
        let body_start = start + 1;
        let mut end = body_start;
        let mut escaped = false;
        for (i, c) in rest[body_start..].char_indices() {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                end = body_start + i;
                break;
            }
        }
        let lit = &rest[body_start..end];
        let (at, after_at) = (offset + start, offset + end + 1);
        rest = &rest[end + 1..];
        offset = after_at;
        if !is_word(lit) {
            continue;
        }
        let before = code[..at].trim_end();
        let after = code[after_at..].trim_start();
        if [".into()", ".to_string()", ".to_owned()"]
            .iter()
            .any(|b| after.starts_with(b))
        {
            continue;
        }
        // `|` between two patterns (`"oh" | "o"`), not a closure's (`|_| "it stopped"`).
        let alternative = before
            .strip_suffix('|')
            .is_some_and(|b| b.trim_end().ends_with('"'));
        let compared = ["==", "!=", "Some(", "matches!("]
            .iter()
            .any(|b| before.ends_with(b))
            || alternative
            || ["==", "=>", "|"].iter().any(|a| after.starts_with(a));
        let looked_for = [
            "contains(",
            "ends_with(",
            "starts_with(",
            "strip_suffix(",
            "strip_prefix(",
        ]
        .iter()
        .any(|b| before.ends_with(b));
        // An array of strings, not an index into JSON (`m["content"]`).
        let listed = (before.ends_with('[') || before.ends_with(','))
            && (after.starts_with(',') || after.starts_with(']'))
            && opener(at).is_some_and(|(bracket, prev)| {
                bracket == '['
                    && !prev
                        .is_some_and(|p| p.is_alphanumeric() || p == '_' || p == ']' || p == ')')
            });
        if compared || looked_for || listed {
            out.push((code[..at].matches('\n').count() + 1, lit.to_string()));
        }
    }
    out
}

/// Natural-language words live in `lexicons/*.toml`, one file per language; the code that
/// reads the driver's words (`understand/`, `text/`) takes them from the profile's lexicon,
/// never from a list or comparison of its own, or another language could not be added as data.
#[test]
fn no_word_lists_in_the_code() {
    let root = src();
    let mut found = Vec::new();
    for (module, file) in modules() {
        if !matches!(module[0].as_str(), "understand" | "text") {
            continue;
        }
        let rel = file
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(&file).unwrap();
        for (line, lit) in word_tests(&code_with_strings(&text)) {
            let allowed = NOT_LANGUAGE
                .iter()
                .any(|(f, l)| *f == rel && (*l == "*" || *l == lit));
            if !allowed {
                found.push(format!("src/{rel}:{line}: \"{lit}\""));
            }
        }
    }
    assert!(
        found.is_empty(),
        "words of a language in the code (move them to a lexicons/*.toml section, or add a \
         string that is no word to NOT_LANGUAGE):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_word_scan_finds_lists_and_comparisons() {
    let code = code_with_strings(concat!(
        "const YES: &[&str] = &[\"yes\", \"do it\"];\n",
        "if w == \"too\" || matches!(x, \"oh\" | \"o\") {}\n",
        "let v = m[\"content\"]; let r = Some(\"it failed\".into()); f(\"auto\", 2);\n",
        "x.map_err(|_| \"the thread has stopped\")?;\n",
        "// \"comment\"\n",
        "match w { \"ten\" => 10, _ => 0 }; w.ends_with(\"er\");\n",
    ));
    let found: Vec<String> = word_tests(&code).into_iter().map(|(_, w)| w).collect();
    assert_eq!(found, ["yes", "do it", "too", "oh", "o", "ten", "er"]);
}

/// A file of the understanding layer holds one part of a decision that a reader can take in
/// whole: past 600 lines, the part is split where the data splits (the brain's rules, what
/// the local model is offered, the dialog's effects).
#[test]
fn no_file_of_the_understanding_layer_passes_600_lines() {
    let long: Vec<String> = rs_files(&src().join("understand"))
        .into_iter()
        .filter_map(|p| {
            let lines = std::fs::read_to_string(&p).unwrap().lines().count();
            (lines > 600).then(|| format!("{}: {lines} lines", p.display()))
        })
        .collect();
    assert!(long.is_empty(), "split these files:\n{}", long.join("\n"));
}
