use super::*;

fn request(body: Value) -> ChatRequest {
    serde_json::from_value(body).unwrap()
}

fn climate_tools() -> Value {
    json!([{"type": "function", "function": {
        "name": "climate-set_temperature", "description": "Set the temperature",
        "parameters": {"type": "object", "properties": {
            "zone": {"type": ["string", "null"], "enum": ["driver", "passenger"]},
            "temperature": {"type": "number", "minimum": 16, "maximum": 18}},
            "required": ["temperature"]}}}])
}

#[test]
fn tools_make_a_grammar_of_calls_or_a_plain_reply() {
    let r =
        request(json!({"messages": [{"role": "user", "content": "hi"}], "tools": climate_tools()}));
    let p = r.prepare().unwrap();
    let g = p.grammar.unwrap();
    assert!(g.starts_with("root ::= call | reply\n"), "{g}");
    assert!(
        g.contains("t0-a0 ::= (\"\\\"driver\\\"\" | \"\\\"passenger\\\"\") | \"null\""),
        "{g}"
    );
    // Required: no null; small range spelled out, longest first.
    assert!(
        g.contains("t0-a1 ::= (\"18\" | \"17\" | \"16\") (\".\" [0-9] [0-9]?)?\n"),
        "{g}"
    );
    assert!(
        p.prompt.contains("<tools>\n{\"type\":\"function\""),
        "{}",
        p.prompt
    );
    assert!(p
        .prompt
        .ends_with("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"));
}

#[test]
fn no_tools_means_no_grammar_and_tool_choice_none_means_reply_only() {
    let r = request(json!({"messages": [{"role": "user", "content": "hi"}]}));
    assert_eq!(r.prepare().unwrap().grammar, None);
    let r = request(
        json!({"messages": [{"role": "user", "content": "hi"}], "tools": climate_tools(), "tool_choice": "none"}),
    );
    let p = r.prepare().unwrap();
    assert!(p.grammar.unwrap().starts_with("root ::= reply\n"));
    assert!(p.prompt.contains("<tools>"), "the prefix stays the same");
    let r = request(
        json!({"messages": [{"role": "user", "content": "hi"}], "tools": climate_tools(), "tool_choice": "required"}),
    );
    assert!(r
        .prepare()
        .unwrap()
        .grammar
        .unwrap()
        .starts_with("root ::= call\n"));
}

#[test]
fn allowed_tools_keep_every_tool_in_the_prompt_and_only_the_allowed_in_the_grammar() {
    let mut tools = climate_tools();
    tools.as_array_mut().unwrap().push(json!({"type": "function", "function": {
        "name": "media-mute", "description": "Mute", "parameters": {"type": "object", "properties": {}}}}));
    let allowed = |mode: &str, names: &[&str]| {
        let tools: Vec<Value> = names
            .iter()
            .map(|n| json!({"type": "function", "function": {"name": n}}))
            .collect();
        json!({"type": "allowed_tools", "allowed_tools": {"mode": mode, "tools": tools}})
    };
    let all = request(json!({"messages": [{"role": "user", "content": "hi"}], "tools": tools}))
        .prepare()
        .unwrap();
    let r = request(
        json!({"messages": [{"role": "user", "content": "hi"}], "tools": tools,
        "tool_choice": allowed("auto", &["media-mute"])}),
    );
    let p = r.prepare().unwrap();
    assert_eq!(p.prompt, all.prompt, "the prefix stays the same");
    let g = p.grammar.unwrap();
    assert!(g.starts_with("root ::= call | reply\n"), "{g}");
    assert!(
        g.contains("media-mute") && !g.contains("climate-set_temperature"),
        "{g}"
    );
    let r = request(
        json!({"messages": [{"role": "user", "content": "hi"}], "tools": tools,
        "tool_choice": allowed("required", &["media-mute", "climate-set_temperature"])}),
    );
    let g = r.prepare().unwrap().grammar.unwrap();
    assert!(g.starts_with("root ::= call\n"), "{g}");
    assert!(
        g.contains("media-mute") && g.contains("climate-set_temperature"),
        "{g}"
    );
    // A tool that is not offered, an empty list or an unknown mode is refused.
    for bad in [
        allowed("auto", &["login1-PowerOff"]),
        allowed("auto", &[]),
        allowed("sometimes", &["media-mute"]),
    ] {
        let r = request(
            json!({"messages": [{"role": "user", "content": "x"}], "tools": tools,
            "tool_choice": bad}),
        );
        assert!(matches!(
            r.prepare().unwrap_err(),
            RequestError::ToolChoice(_)
        ));
    }
}

/// Issue 25: what the grammar leaves no choice about is not generated.
#[test]
fn a_required_call_starts_with_what_the_grammar_forces() {
    let mut tools = climate_tools();
    tools
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "function", "function": {
        "name": "lights-off", "parameters": {"type": "object", "properties": {}}}}));
    let forced = |choice: Value| {
        request(
            json!({"messages": [{"role": "user", "content": "hi"}], "tools": tools,
                       "tool_choice": choice}),
        )
        .prepare()
        .unwrap()
        .forced
    };
    let allowed = |names: &[&str], mode: &str| {
        json!({"type": "allowed_tools", "allowed_tools": {"mode": mode, "tools":
            names.iter().map(|n| json!({"type": "function", "function": {"name": n}})).collect::<Vec<_>>()}})
    };
    assert_eq!(forced(json!("auto")), "");
    assert_eq!(forced(json!("none")), "");
    assert_eq!(
        forced(allowed(&["lights-off"], "auto")),
        "",
        "it may answer"
    );
    assert_eq!(forced(json!("required")), "<tool_call>\n{\"name\": \"");
    assert_eq!(
        forced(allowed(&["climate-set_temperature"], "required")),
        "<tool_call>\n{\"name\": \"climate-set_temperature\", \"arguments\": {\"zone\":"
    );
    let whole = forced(json!({"type": "function", "function": {"name": "lights-off"}}));
    assert_eq!(
        Output::parse(&whole),
        Output::ToolCall {
            name: "lights-off".into(),
            arguments: "{}".into()
        }
    );
    // Without a grammar nothing is forced.
    let r = request(json!({"messages": [{"role": "user", "content": "hi"}]}));
    assert_eq!(r.prepare().unwrap().forced, "");
}

#[test]
fn bad_requests_are_named() {
    let r = request(json!({"messages": []}));
    assert_eq!(r.prepare().unwrap_err(), RequestError::NoMessages);
    let r = request(json!({"messages": [{"role": "robot", "content": "x"}]}));
    assert_eq!(
        r.prepare().unwrap_err(),
        RequestError::Role(0, "robot".into())
    );
    let r = request(json!({"messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "function", "function": {"name": "login1.PowerOff"}}]}));
    assert_eq!(
        r.prepare().unwrap_err(),
        RequestError::ToolName("login1.PowerOff".into())
    );
    let r = request(
        json!({"messages": [{"role": "user", "content": "x"}], "tools": climate_tools(),
        "tool_choice": {"type": "function", "function": {"name": "other"}}}),
    );
    assert!(matches!(
        r.prepare().unwrap_err(),
        RequestError::ToolChoice(_)
    ));
}

#[test]
fn outputs_are_read_back() {
    assert_eq!(
        Output::parse("<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": 1}}\n</tool_call>"),
        Output::ToolCall {
            name: "a".into(),
            arguments: "{\"x\":1}".into()
        }
    );
    assert_eq!(
        Output::parse(" Hello there. "),
        Output::Content("Hello there.".into())
    );
    assert!(Output::may_be_call("<tool"));
    assert!(Output::may_be_call(""));
    assert!(!Output::may_be_call("Sure"));
}

/// Regression (found by the fuzzer below): a property name holding a quote made the grammar
/// force invalid JSON (`{"say "hi"": …}`), so no call with it could ever be read back.
#[test]
fn argument_keys_are_json_escaped() {
    let r = request(json!({"messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {
            "type": "object", "properties": {"say \"hi\"": {"type": "boolean"}},
            "required": ["say \"hi\""]}}}]}));
    let g = r.prepare().unwrap().grammar.unwrap();
    assert!(g.contains(r#""\"say \\\"hi\\\"\": " t0-a0"#), "{g}");
}

/// Fuzzing the request → prompt and grammar builder (`PROPTEST_CASES=100000 cargo test
/// --release -p cabin-llm fuzz_` for a long run): any request parses or is refused with a
/// reason, never a panic; every grammar line is a rule with balanced literals; and each
/// argument's key literal is the JSON spelling of its name, whatever the name holds.
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<String>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::from)),
            any::<bool>().prop_map(Value::from),
            Just(Value::Null),
        ]
    }

    fn schema() -> impl Strategy<Value = Value> {
        let ty = prop_oneof![
            Just(json!("string")),
            Just(json!("number")),
            Just(json!("integer")),
            Just(json!("boolean")),
            Just(json!(["integer", "null"])),
            Just(json!("object")),
            any::<String>().prop_map(Value::from),
            Just(json!(7)),
        ];
        (
            ty,
            proptest::option::of(proptest::collection::vec(scalar(), 0..5)),
            proptest::option::of(scalar()),
            proptest::option::of(scalar()),
            proptest::option::of(any::<u64>()),
        )
            .prop_map(|(ty, values, min, max, max_length)| {
                let mut s = json!({"type": ty});
                if let Some(v) = values {
                    s["enum"] = v.into();
                }
                if let Some(v) = min {
                    s["minimum"] = v;
                }
                if let Some(v) = max {
                    s["maximum"] = v;
                }
                if let Some(v) = max_length {
                    s["maxLength"] = v.into();
                }
                s
            })
    }

    fn tool() -> impl Strategy<Value = Value> {
        let name = prop_oneof!["[A-Za-z0-9_-]{1,64}", any::<String>(),];
        let properties = proptest::collection::btree_map(any::<String>(), schema(), 0..4);
        (name, properties, proptest::collection::vec(any::<String>(), 0..3)).prop_map(
            |(name, properties, mut required)| {
                required.extend(properties.keys().take(1).cloned());
                json!({"type": "function", "function": {"name": name, "description": "d",
                    "parameters": {"type": "object", "properties": properties, "required": required}}})
            },
        )
    }

    fn choice(names: Vec<String>) -> impl Strategy<Value = Option<Value>> {
        let first = names.first().cloned().unwrap_or_default();
        prop_oneof![
            Just(None),
            Just(Some(json!("auto"))),
            Just(Some(json!("none"))),
            Just(Some(json!("required"))),
            Just(Some(
                json!({"type": "function", "function": {"name": first}})
            )),
            Just(Some(
                json!({"type": "allowed_tools", "allowed_tools": {"mode": "required",
                "tools": names.iter().map(|n| json!({"type": "function", "function": {"name": n}})).collect::<Vec<_>>()}})
            )),
            any::<String>().prop_map(|s| Some(Value::from(s))),
        ]
    }

    fn request() -> impl Strategy<Value = Value> {
        let messages = proptest::collection::vec(
            (
                prop_oneof![
                    Just("system"),
                    Just("user"),
                    Just("assistant"),
                    Just("tool"),
                    Just("robot")
                ],
                prop_oneof![any::<String>().prop_map(Value::from), scalar()],
            ),
            0..4,
        );
        (messages, proptest::collection::vec(tool(), 0..3)).prop_flat_map(|(messages, tools)| {
            let names: Vec<String> = tools
                .iter()
                .filter_map(|t| t["function"]["name"].as_str().map(str::to_string))
                .collect();
            let messages: Vec<Value> = messages
                .into_iter()
                .map(|(role, content)| json!({"role": role, "content": content}))
                .collect();
            choice(names).prop_map(move |choice| {
                let mut r = json!({"messages": messages.clone(), "tools": tools.clone()});
                if let Some(c) = choice {
                    r["tool_choice"] = c;
                }
                r
            })
        })
    }

    /// The text a GBNF string literal stands for; None where it is not one.
    fn unescape(literal: &str) -> Option<String> {
        let body = literal.strip_prefix('"')?.strip_suffix('"')?;
        let mut out = String::new();
        let mut chars = body.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next()? {
                    'n' => out.push('\n'),
                    c => out.push(c),
                },
                '"' => return None,
                c => out.push(c),
            }
        }
        Some(out)
    }

    /// Each literal of a rule's body, as written.
    fn literals(body: &str) -> Option<Vec<&str>> {
        let mut out = Vec::new();
        let mut start = None;
        let mut escaped = false;
        let mut class = false;
        for (i, c) in body.char_indices() {
            match (start, c) {
                (Some(_), _) if escaped => escaped = false,
                (Some(_), '\\') => escaped = true,
                (Some(s), '"') => {
                    out.push(&body[s..=i]);
                    start = None;
                }
                (Some(_), _) => {}
                (None, '[') if !class => class = true,
                (None, '\\') if class => escaped = !escaped,
                (None, ']') if class && !escaped => class = false,
                (None, '"') if !class => start = Some(i),
                (None, _) => escaped = false,
            }
        }
        (start.is_none() && !class).then_some(out)
    }

    proptest! {
        #[test]
        fn fuzz_requests_are_prepared_or_refused_and_grammars_are_well_formed(body in request()) {
            let Ok(r) = serde_json::from_value::<ChatRequest>(body.clone()) else { return Ok(()) };
            let Ok(prepared) = r.prepare() else { return Ok(()) };
            let Some(g) = prepared.grammar else { return Ok(()) };
            for line in g.lines() {
                let (name, rule) = line.split_once(" ::= ").unwrap_or_else(|| panic!("not a rule: {line:?}"));
                prop_assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'), "{line:?}");
                let lits = literals(rule);
                prop_assert!(lits.is_some(), "unbalanced literal in {line:?}");
                for l in lits.unwrap() {
                    prop_assert!(unescape(l).is_some(), "{l:?} in {line:?}");
                }
            }
            // The key of each argument is its name as JSON spells it.
            for (i, t) in r.tools.iter().enumerate() {
                let Some(props) = t.function.parameters["properties"].as_object() else { continue };
                let Some(line) = g.lines().find(|l| l.starts_with(&format!("t{i} ::= "))) else { continue };
                let keys: Vec<String> = literals(line).unwrap().into_iter()
                    .filter_map(unescape)
                    .filter_map(|k| k.strip_suffix(": ").map(str::to_string))
                    .collect();
                for (key, name) in keys.iter().zip(props.keys()) {
                    let decoded = serde_json::from_str::<String>(key).ok();
                    prop_assert_eq!(decoded.as_ref(), Some(name), "{}", line);
                }
            }
        }

        #[test]
        fn fuzz_any_output_is_read_back_without_panic(text in any::<String>()) {
            let _ = Output::parse(&text);
            let _ = Output::may_be_call(&text);
        }
    }
}
