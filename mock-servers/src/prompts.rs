//! The mock's prompts (`greet`, `summarize`, `plain`) and its completions
//! (`completion/complete` for `greet`'s arguments and the `mock://items/{id}` template).

use rmcp::{
    ErrorData as McpError,
    model::{
        CompleteRequestParams, CompleteResult, CompletionInfo, GetPromptResult, JsonObject, Prompt,
        PromptArgument, PromptMessage, Reference, Role,
    },
};
use serde_json::{Value, json};

use crate::resources::ITEM_TEMPLATE;

/// The values `greet`'s `style` accepts (and completes to), in completion order.
pub const GREET_STYLES: [&str; 3] = ["formal", "casual", "pirate"];
/// What `greet`'s `name` completes to, in order.
pub const GREET_NAMES: [&str; 3] = ["alice", "bob", "carol"];
/// What the `id` of `mock://items/{id}` completes to, in order.
pub const ITEM_IDS: [&str; 3] = ["abc", "abd", "xyz"];

/// Every prompt, in list order.
pub fn list() -> Vec<Prompt> {
    vec![
        Prompt::new(
            "greet",
            Some("Greet someone"),
            Some(vec![
                PromptArgument::new("name")
                    .with_description("Who to greet")
                    .with_required(true),
                PromptArgument::new("style")
                    .with_description("formal, casual or pirate")
                    .with_required(false),
            ]),
        ),
        Prompt::new(
            "summarize",
            Some("Ask for a summary of a topic"),
            Some(vec![
                PromptArgument::new("topic")
                    .with_description("What to summarize")
                    .with_required(true),
            ]),
        ),
        Prompt::new("plain", Some("A prompt without arguments"), None::<Vec<_>>),
    ]
}

/// `prompts/get`: one user message per prompt; errors name the prompt or the argument.
pub fn get(name: &str, arguments: Option<&JsonObject>) -> Result<GetPromptResult, McpError> {
    let text = match name {
        "greet" => {
            let who = required(arguments, name, "name")?;
            match optional(arguments, name, "style")? {
                None => format!("Hello, {who}!"),
                Some("casual") => format!("Hi {who}!"),
                Some("formal") => format!("Good day, {who}."),
                Some("pirate") => format!("Ahoy, {who}!"),
                Some(other) => {
                    return Err(McpError::invalid_params(
                        format!(
                            "prompt greet: argument style must be one of formal, casual, \
                             pirate (got {other:?})"
                        ),
                        Some(json!({ "argument": "style" })),
                    ));
                }
            }
        }
        "summarize" => format!("Summarize {}.", required(arguments, name, "topic")?),
        "plain" => "plain prompt".to_string(),
        _ => {
            return Err(McpError::invalid_params(
                format!("unknown prompt {name:?}"),
                Some(json!({ "prompt": name })),
            ));
        }
    };
    Ok(GetPromptResult::new(vec![PromptMessage::new_text(
        Role::User,
        text,
    )]))
}

fn optional<'a>(
    arguments: Option<&'a JsonObject>,
    prompt: &str,
    argument: &str,
) -> Result<Option<&'a str>, McpError> {
    match arguments.and_then(|a| a.get(argument)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(McpError::invalid_params(
            format!("prompt {prompt}: argument {argument} must be a string"),
            Some(json!({ "argument": argument })),
        )),
    }
}

fn required<'a>(
    arguments: Option<&'a JsonObject>,
    prompt: &str,
    argument: &str,
) -> Result<&'a str, McpError> {
    optional(arguments, prompt, argument)?.ok_or_else(|| {
        McpError::invalid_params(
            format!("prompt {prompt}: missing required argument {argument}"),
            Some(json!({ "argument": argument })),
        )
    })
}

/// `completion/complete`: the candidates for the argument that start with the typed prefix.
pub fn complete(request: &CompleteRequestParams) -> CompleteResult {
    let candidates: &[&str] = match (&request.r#ref, request.argument.name.as_str()) {
        (Reference::Prompt(p), "style") if p.name == "greet" => &GREET_STYLES,
        (Reference::Prompt(p), "name") if p.name == "greet" => &GREET_NAMES,
        (Reference::Resource(r), "id") if r.uri == ITEM_TEMPLATE => &ITEM_IDS,
        _ => &[],
    };
    let prefix = request.argument.value.as_str();
    let values: Vec<String> = candidates
        .iter()
        .filter(|c| c.starts_with(prefix))
        .map(|c| c.to_string())
        .collect();
    let completion = CompletionInfo::with_all_values(values).unwrap_or_default();
    CompleteResult::new(completion)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::ArgumentInfo;

    fn args(v: Value) -> JsonObject {
        serde_json::from_value(v).unwrap()
    }

    fn text(r: &GetPromptResult) -> String {
        serde_json::to_value(&r.messages[0]).unwrap()["content"]["text"]
            .as_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn greet_styles() {
        let cases = [
            (json!({ "name": "Ann" }), "Hello, Ann!"),
            (json!({ "name": "Ann", "style": "casual" }), "Hi Ann!"),
            (
                json!({ "name": "Ann", "style": "formal" }),
                "Good day, Ann.",
            ),
            (json!({ "name": "Ann", "style": "pirate" }), "Ahoy, Ann!"),
        ];
        for (a, expected) in cases {
            assert_eq!(text(&get("greet", Some(&args(a))).unwrap()), expected);
        }
        let e = get("greet", None).unwrap_err();
        assert!(e.message.contains("name"), "{}", e.message);
        let e = get("greet", Some(&args(json!({ "name": "A", "style": "x" })))).unwrap_err();
        assert!(e.message.contains("style"), "{}", e.message);
    }

    #[test]
    fn completions() {
        let c = |r: Reference, name: &str, value: &str| {
            complete(&CompleteRequestParams::new(
                r,
                ArgumentInfo::new(name, value),
            ))
            .completion
        };
        assert_eq!(
            c(Reference::for_prompt("greet"), "style", "").values,
            GREET_STYLES
        );
        let ab = c(Reference::for_resource(ITEM_TEMPLATE), "id", "ab");
        assert_eq!(ab.values, ["abc", "abd"]);
        assert_eq!((ab.total, ab.has_more), (Some(2), Some(false)));
        assert!(c(Reference::for_prompt("plain"), "x", "").values.is_empty());
    }
}
