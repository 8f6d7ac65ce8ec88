//! OpenAI chat-completion requests: parsing, ChatML prompt rendering (Qwen's tool-call
//! format), the GBNF grammar that constrains output to "a call of an offered tool, or a plain
//! reply", and reading a finished output back into content or a tool call.

use serde::Deserialize;
use serde_json::{json, Value};
use std::fmt::Write;

#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    #[serde(default)]
    pub model: Option<String>,
    pub messages: Vec<Message>,
    #[serde(default)]
    pub tools: Vec<Tool>,
    #[serde(default)]
    pub tool_choice: Option<Value>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default, alias = "max_completion_tokens")]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub temperature: Option<f32>,
}

#[derive(Debug, Deserialize)]
pub struct Message {
    pub role: String,
    #[serde(default)]
    pub content: Option<Value>,
    #[serde(default)]
    pub tool_calls: Vec<Value>,
}

#[derive(Debug, Deserialize)]
pub struct Tool {
    #[serde(rename = "type")]
    pub kind: String,
    pub function: Function,
}

#[derive(Debug, Deserialize)]
pub struct Function {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub parameters: Value,
}

/// A request the worker can serve, checked once at the edge.
#[derive(Debug)]
pub struct Prepared {
    pub prompt: String,
    pub grammar: Option<String>,
    /// What the output must start with ([`forced_start`]): evaluated with the prompt in one
    /// batch instead of generated token by token.
    pub forced: String,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RequestError {
    #[error("'messages' is empty")]
    NoMessages,
    #[error("message {0} has role '{1}'; expected system, user, assistant or tool")]
    Role(usize, String),
    #[error("message {0} has content that is neither a string nor a list of text parts")]
    Content(usize),
    #[error("tool {0} has type '{1}'; only \"function\" tools are supported")]
    ToolType(usize, String),
    #[error("tool name '{0}' must be 1 to 64 letters, digits, '_' or '-'")]
    ToolName(String),
    #[error("tool_choice {0} is not \"auto\", \"none\", \"required\", a named function that is offered, or allowed_tools (mode \"auto\" or \"required\") naming offered functions")]
    ToolChoice(String),
}

enum Choice<'a> {
    Auto,
    None,
    Required,
    Named(&'a str),
    /// OpenAI's `allowed_tools`: every tool stays in the prompt (so a cached prefix holds)
    /// but only these may be called; `required` as in [`Choice::Required`].
    Allowed {
        names: Vec<&'a str>,
        required: bool,
    },
}

const TOOL_OPEN: &str = "<tool_call>";

impl ChatRequest {
    pub fn prepare(&self) -> Result<Prepared, RequestError> {
        if self.messages.is_empty() {
            return Err(RequestError::NoMessages);
        }
        for (i, t) in self.tools.iter().enumerate() {
            if t.kind != "function" {
                return Err(RequestError::ToolType(i, t.kind.clone()));
            }
            let n = &t.function.name;
            if n.is_empty()
                || n.len() > 64
                || !n
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(RequestError::ToolName(n.clone()));
            }
        }
        let choice = self.choice()?;
        // With tool_choice "none" the tools stay in the prompt (so a client's cached prefix
        // stays valid); the grammar then allows only a reply.
        let tools_offered = !self.tools.is_empty();
        let mut prompt = String::new();
        let mut rest = &self.messages[..];
        let system = match self.messages[0].role.as_str() {
            "system" => {
                rest = &self.messages[1..];
                text_of(0, &self.messages[0])?
            }
            _ => String::new(),
        };
        prompt.push_str("<|im_start|>system\n");
        prompt.push_str(&system);
        if tools_offered {
            prompt.push_str(
                "\n\n# Tools\n\nYou may call one of these functions when the request asks for it.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>",
            );
            for t in &self.tools {
                let f = &t.function;
                let sig = json!({"type": "function", "function": {
                    "name": f.name, "description": f.description, "parameters": f.parameters}});
                let _ = write!(prompt, "\n{sig}");
            }
            prompt.push_str("\n</tools>\n\nFor a function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>\nOtherwise answer in plain words.");
        }
        prompt.push_str("<|im_end|>\n");
        for (i, m) in rest.iter().enumerate() {
            let index = i + self.messages.len() - rest.len();
            let role = m.role.as_str();
            match role {
                "user" | "system" => {
                    let _ = write!(
                        prompt,
                        "<|im_start|>{role}\n{}<|im_end|>\n",
                        text_of(index, m)?
                    );
                }
                "assistant" => {
                    let mut body = text_of(index, m)?;
                    for call in &m.tool_calls {
                        let f = &call["function"];
                        let args: Value = f["arguments"]
                            .as_str()
                            .and_then(|s| serde_json::from_str(s).ok())
                            .unwrap_or_else(|| f["arguments"].clone());
                        let _ = write!(
                            body,
                            "\n{TOOL_OPEN}\n{}\n</tool_call>",
                            json!({"name": f["name"], "arguments": args})
                        );
                    }
                    let _ = write!(prompt, "<|im_start|>assistant\n{}<|im_end|>\n", body.trim());
                }
                "tool" => {
                    let _ = write!(
                        prompt,
                        "<|im_start|>user\n<tool_response>\n{}\n</tool_response><|im_end|>\n",
                        text_of(index, m)?
                    );
                }
                other => return Err(RequestError::Role(index, other.into())),
            }
        }
        prompt.push_str("<|im_start|>assistant\n");
        let grammar = tools_offered.then(|| grammar(&self.tools, &choice));
        let forced = if tools_offered {
            forced_start(&self.tools, &choice)
        } else {
            String::new()
        };
        Ok(Prepared {
            prompt,
            grammar,
            forced,
        })
    }

    fn choice(&self) -> Result<Choice<'_>, RequestError> {
        let bad =
            || RequestError::ToolChoice(self.tool_choice.clone().unwrap_or_default().to_string());
        match &self.tool_choice {
            None => Ok(Choice::Auto),
            Some(Value::String(s)) => match s.as_str() {
                "auto" => Ok(Choice::Auto),
                "none" => Ok(Choice::None),
                "required" => Ok(Choice::Required),
                _ => Err(bad()),
            },
            Some(v) if v["type"] == "allowed_tools" => {
                let allowed = &v["allowed_tools"];
                let required = match allowed["mode"].as_str() {
                    Some("auto") => false,
                    Some("required") => true,
                    _ => return Err(bad()),
                };
                let names = allowed["tools"]
                    .as_array()
                    .filter(|t| !t.is_empty())
                    .ok_or_else(bad)?
                    .iter()
                    .map(|t| t["function"]["name"].as_str().filter(|n| self.offers(n)))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(bad)?;
                Ok(Choice::Allowed { names, required })
            }
            Some(v) => {
                let name = v["function"]["name"].as_str().ok_or_else(bad)?;
                if self.offers(name) {
                    Ok(Choice::Named(name))
                } else {
                    Err(bad())
                }
            }
        }
    }

    fn offers(&self, name: &str) -> bool {
        self.tools.iter().any(|t| t.function.name == name)
    }
}

fn text_of(index: usize, m: &Message) -> Result<String, RequestError> {
    match &m.content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => parts
            .iter()
            .map(|p| p["text"].as_str().ok_or(RequestError::Content(index)))
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.join("")),
        Some(_) => Err(RequestError::Content(index)),
    }
}

/// GBNF for the answer: `<tool_call>` with one offered function and arguments that match its
/// schema (every property present, optional ones may be `null`), or a plain one-paragraph reply
/// with no markup, as it will be spoken.
fn grammar(tools: &[Tool], choice: &Choice) -> String {
    let mut g = String::new();
    let root = match choice {
        Choice::Auto
        | Choice::Allowed {
            required: false, ..
        } => "call | reply",
        Choice::Required | Choice::Named(_) | Choice::Allowed { required: true, .. } => "call",
        Choice::None => "reply",
    };
    let _ = writeln!(g, "root ::= {root}");
    // Spoken: one or two sentences, no markup. Not `<`, `{` or `[` first: a call must be a
    // real call, not JSON passed off as words.
    let _ = writeln!(g, "reply ::= [^<{{[\\n*#|.!? ] [^\\n*#|.!?]* [.!?] (\" \" [^\\n*#|.!? ] [^\\n*#|.!?]* [.!?])?");
    let offered = offered(tools, choice);
    let alternatives: Vec<String> = offered.iter().map(|(i, _)| format!("t{i}")).collect();
    let _ = writeln!(
        g,
        "call ::= \"<tool_call>\\n{{\\\"name\\\": \\\"\" ({}) \"}}\\n</tool_call>\"",
        alternatives.join(" | ")
    );
    for (i, t) in offered {
        let props = t.function.parameters["properties"].as_object();
        let required: Vec<&str> = t.function.parameters["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut parts = Vec::new();
        for (j, (name, schema)) in props.into_iter().flatten().enumerate() {
            let rule = format!("t{i}-a{j}");
            let nullable = !required.contains(&name.as_str());
            let _ = writeln!(
                g,
                "{rule} ::= {}{}",
                value_rule(schema),
                if nullable { " | \"null\"" } else { "" }
            );
            // The key as JSON spells it: a name may hold quotes or backslashes.
            let key = Value::String(name.clone());
            parts.push(format!("{} {rule}", literal(&format!("{key}: "))));
        }
        let args = if parts.is_empty() {
            String::new()
        } else {
            parts.join(&format!(" {} ", literal(", ")))
        };
        let _ = writeln!(
            g,
            "t{i} ::= {} {args} \"}}\"",
            literal(&format!("{}\", \"arguments\": {{", t.function.name))
        );
    }
    g
}

/// The tools `choice` lets the model call, with their index in `tools`.
fn offered<'t>(tools: &'t [Tool], choice: &Choice) -> Vec<(usize, &'t Tool)> {
    tools
        .iter()
        .enumerate()
        .filter(|(_, t)| match choice {
            Choice::Named(n) => t.function.name == *n,
            Choice::Allowed { names, .. } => names.contains(&t.function.name.as_str()),
            _ => true,
        })
        .collect()
}

/// The start of the output that [`grammar`] leaves no choice about: with a call required, its
/// opening; with one tool allowed, its name and first argument's key too (to its colon); with
/// one tool and no arguments, the whole call. Generating these tokens one at a time costs a
/// decode each (60 ms for the 1.5B on two cores) to learn nothing.
fn forced_start(tools: &[Tool], choice: &Choice) -> String {
    match choice {
        Choice::Required | Choice::Named(_) | Choice::Allowed { required: true, .. } => {}
        Choice::Auto
        | Choice::None
        | Choice::Allowed {
            required: false, ..
        } => return String::new(),
    }
    let mut forced = format!("{TOOL_OPEN}\n{{\"name\": \"");
    let [(_, tool)] = offered(tools, choice)[..] else {
        return forced;
    };
    let _ = write!(forced, "{}\", \"arguments\": {{", tool.function.name);
    match tool.function.parameters["properties"]
        .as_object()
        .and_then(|p| p.keys().next())
    {
        Some(first) => {
            // Not the space after the colon: alone, it is a token the model never sees there
            // (it writes ` "` or ` 2`), and after it the model chose other values.
            let _ = write!(forced, "{}:", Value::String(first.clone()));
        }
        None => forced.push_str("}}\n</tool_call>"),
    }
    forced
}

/// The GBNF for one JSON-schema value: enums, bounded integers and numbers (small ranges are
/// spelled out), strings, booleans; anything else as a short string.
fn value_rule(schema: &Value) -> String {
    if let Some(values) = schema["enum"].as_array() {
        let alts: Vec<String> = values.iter().map(|v| literal(&v.to_string())).collect();
        if !alts.is_empty() {
            return format!("({})", alts.join(" | "));
        }
    }
    let ty = match &schema["type"] {
        Value::String(s) => s.as_str(),
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .find(|s| *s != "null")
            .unwrap_or("string"),
        _ => "string",
    };
    let bounds = (schema["minimum"].as_f64(), schema["maximum"].as_f64());
    match ty {
        "boolean" => "(\"true\" | \"false\")".into(),
        "integer" | "number" => {
            let int_part = match bounds {
                (Some(lo), Some(hi)) if hi >= lo && hi - lo <= 200.0 => {
                    let alts: Vec<String> = (lo.ceil() as i64..=hi.floor() as i64)
                        .rev() // longest first: "100" before "10"
                        .map(|n| literal(&n.to_string()))
                        .collect();
                    format!("({})", alts.join(" | "))
                }
                _ => "\"-\"? [0-9] [0-9]{0,8}".into(),
            };
            if ty == "integer" {
                int_part
            } else {
                format!("{int_part} (\".\" [0-9] [0-9]?)?")
            }
        }
        _ => {
            let max = schema["maxLength"].as_u64().unwrap_or(60).clamp(1, 200);
            format!(
                "\"\\\"\" [^\"\\\\\\n] [^\"\\\\\\n]{{0,{}}} \"\\\"\"",
                max - 1
            )
        }
    }
}

/// A GBNF string literal.
fn literal(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A finished output: a tool call (name and arguments as a JSON string), or plain content.
#[derive(Debug, PartialEq)]
pub enum Output {
    Content(String),
    ToolCall { name: String, arguments: String },
}

impl Output {
    pub fn parse(text: &str) -> Output {
        let t = text.trim();
        if let Some(body) = t.strip_prefix(TOOL_OPEN) {
            let body = body.trim().trim_end_matches("</tool_call>").trim();
            if let Ok(v) = serde_json::from_str::<Value>(body) {
                if let Some(name) = v["name"].as_str() {
                    return Output::ToolCall {
                        name: name.into(),
                        arguments: v["arguments"].to_string(),
                    };
                }
            }
        }
        Output::Content(t.to_string())
    }

    /// Whether output that starts like this is (or may become) a tool call, so it must not be
    /// streamed out as content.
    pub fn may_be_call(prefix: &str) -> bool {
        let p = prefix.trim_start();
        p.is_empty() || TOOL_OPEN.starts_with(p) || p.starts_with(TOOL_OPEN)
    }
}

#[cfg(test)]
mod tests;
