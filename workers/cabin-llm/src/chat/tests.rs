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
