//! What the mock answers, independent of dialect: failures scripted by the
//! model name, and a reply planned from the conversation (echo, tool call,
//! or an answer to a tool result).

use std::time::Duration;

/// A failure chosen by the requested model name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// `fail-500`
    Server,
    /// `fail-429`: rate limited, `retry-after: 1`.
    RateLimited,
    /// `fail-quota`: out of quota / credit.
    Quota,
    /// `fail-400`: the request is invalid.
    BadRequest,
    /// `fail-529`: overloaded.
    Overloaded,
    /// `stall`: never answers.
    Stall,
}

/// How a stream breaks after its first delta, chosen by the model name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Break {
    /// `garbage`: a line that is not JSON.
    Garbage,
    /// `midstream-error`: the dialect's error event.
    Error,
    /// `cut`: the connection closes without the end marker.
    Cut,
    /// `stall-midstream`: silence, connection open.
    Stall,
}

/// Reads the scripted behaviour out of a model name.
pub fn failure(model: &str) -> Option<Failure> {
    [
        ("fail-500", Failure::Server),
        ("fail-429", Failure::RateLimited),
        ("fail-quota", Failure::Quota),
        ("fail-400", Failure::BadRequest),
        ("fail-529", Failure::Overloaded),
    ]
    .into_iter()
    .find(|(k, _)| model.contains(k))
    .map(|(_, f)| f)
    .or_else(|| {
        (model.contains("stall") && !model.contains("stall-midstream")).then_some(Failure::Stall)
    })
}

/// How the stream for `model` breaks, if it does.
pub fn stream_break(model: &str) -> Option<Break> {
    [
        ("garbage", Break::Garbage),
        ("midstream-error", Break::Error),
        ("cut", Break::Cut),
        ("stall-midstream", Break::Stall),
    ]
    .into_iter()
    .find(|(k, _)| model.contains(k))
    .map(|(_, b)| b)
}

/// A long time: a stalled answer stays stalled for any test's lifetime.
pub const FOREVER: Duration = Duration::from_secs(3600);

/// The dialect-neutral view of a request.
#[derive(Debug, Default)]
pub struct Conversation {
    /// Text of the last user message.
    pub last_user_text: String,
    /// Content of the last message, when it is a tool result.
    pub tool_result: Option<String>,
    /// Names of the tools the request declares.
    pub tools: Vec<String>,
    /// Words in all messages: the mock's token count.
    pub prompt_words: u64,
}

/// What the mock will say.
#[derive(Debug)]
pub enum Reply {
    /// Text, split into stream deltas.
    Text(Vec<String>),
    /// A call of `name` with JSON `arguments`, split into stream deltas.
    ToolCall {
        name: String,
        arguments: Vec<String>,
    },
}

impl Reply {
    /// Plans the reply: answer a tool result, call the first declared tool
    /// (unless the model name says `notools`, as agents' final answers do),
    /// or echo the user.
    pub fn plan(conv: &Conversation, chunks: usize, model: &str) -> Reply {
        if let Some(result) = &conv.tool_result {
            return Reply::Text(split(&format!("Tool said: {result}"), chunks));
        }
        if let Some(name) = conv.tools.first().filter(|_| !model.contains("notools")) {
            let arguments = serde_json::json!({ "query": conv.last_user_text }).to_string();
            return Reply::ToolCall {
                name: name.clone(),
                arguments: split(&arguments, chunks),
            };
        }
        Reply::Text(split(
            &format!("Hello from mock! You said: {}", conv.last_user_text),
            chunks,
        ))
    }

    /// Ends every text delta with a send-time placeholder (`--stamp`).
    pub fn stamp(&mut self) {
        if let Reply::Text(pieces) = self {
            for piece in pieces {
                piece.push_str(crate::stamp::PLACEHOLDER);
            }
        }
    }

    /// Output tokens: one per delta.
    pub fn tokens(&self) -> u64 {
        match self {
            Reply::Text(p) => p.len() as u64,
            Reply::ToolCall { arguments, .. } => arguments.len() as u64,
        }
    }

    /// The whole text (or arguments).
    pub fn joined(&self) -> String {
        match self {
            Reply::Text(p) => p.concat(),
            Reply::ToolCall { arguments, .. } => arguments.concat(),
        }
    }
}

/// Splits `text` into `n` pieces of about equal length (on char boundaries).
pub fn split(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let size = chars.len().div_ceil(n.max(1)).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_evenly_on_char_boundaries() {
        assert_eq!(split("abcdefgh", 4), ["ab", "cd", "ef", "gh"]);
        assert_eq!(split("héllo", 2).concat(), "héllo");
    }

    #[test]
    fn scripts_come_from_model_names() {
        assert_eq!(failure("mock-fail-quota"), Some(Failure::Quota));
        assert_eq!(failure("mock-stall"), Some(Failure::Stall));
        assert_eq!(failure("mock-stall-midstream"), None);
        assert_eq!(stream_break("mock-stall-midstream"), Some(Break::Stall));
        assert_eq!(failure("mock-small"), None);
    }

    #[test]
    fn replies_follow_the_conversation() {
        let mut conv = Conversation {
            last_user_text: "hi".into(),
            ..Default::default()
        };
        assert_eq!(
            Reply::plan(&conv, 1, "m").joined(),
            "Hello from mock! You said: hi"
        );
        conv.tools = vec!["lookup".into()];
        assert_eq!(Reply::plan(&conv, 3, "m").joined(), r#"{"query":"hi"}"#);
        conv.tool_result = Some("42".into());
        assert_eq!(Reply::plan(&conv, 2, "m").joined(), "Tool said: 42");
    }
}
