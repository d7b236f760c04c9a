//! Building pieces of the canonical form (OpenAI Chat Completions): stream
//! chunks, usage objects, finish reasons. Translating adapters produce these.

use serde_json::{Value, json};

use crate::types::Usage;

/// The OpenAI `usage` object for `u`; `prompt_tokens` includes cached tokens.
pub fn usage_json(u: &Usage) -> Value {
    let mut v = json!({
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens + u.output_tokens,
    });
    if let Some(cached) = u.cached_input_tokens {
        v["prompt_tokens_details"] = json!({ "cached_tokens": cached });
    }
    if let Some(reasoning) = u.reasoning_tokens {
        v["completion_tokens_details"] = json!({ "reasoning_tokens": reasoning });
    }
    v
}

/// One `chat.completion.chunk` with a single choice.
pub fn chunk(
    id: &str,
    model: &str,
    created: u64,
    delta: Value,
    finish_reason: Option<&str>,
) -> Vec<u8> {
    let chunk = json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason }],
    });
    serde_json::to_vec(&chunk).expect("json! values serialize")
}

/// The final usage-only chunk (`choices: []`), as OpenAI sends it when
/// `stream_options.include_usage` is set. Translated streams always end
/// with one; the OpenAI ingress drops it for clients that did not ask.
pub fn usage_chunk(id: &str, model: &str, created: u64, usage: &Usage) -> Vec<u8> {
    let chunk = json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage_json(usage),
    });
    serde_json::to_vec(&chunk).expect("json! values serialize")
}

/// Text of an OpenAI message `content`: a string, or the text parts joined.
pub fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// Notes for the top-level fields of `obj` a translation does not carry:
/// everything not in `carried` (null values carry nothing and are skipped).
pub fn dropped_fields(obj: &Value, carried: &[&str]) -> Vec<String> {
    obj.as_object()
        .into_iter()
        .flatten()
        .filter(|(k, v)| !v.is_null() && !carried.contains(&k.as_str()))
        .map(|(k, _)| format!("dropped {k}"))
        .collect()
}

/// Splits a `data:` URL into (media type, base64 payload).
pub fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media = meta.strip_suffix(";base64")?;
    Some((media, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_object_has_details_only_when_known() {
        let u = Usage {
            input_tokens: 10,
            output_tokens: 5,
            cached_input_tokens: Some(4),
            reasoning_tokens: None,
        };
        assert_eq!(
            usage_json(&u),
            json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                   "prompt_tokens_details": {"cached_tokens": 4}})
        );
    }

    #[test]
    fn dropped_fields_are_the_uncarried_non_null_ones() {
        let obj = json!({"model": "m", "logprobs": true, "seed": null, "top_k": 3});
        assert_eq!(
            dropped_fields(&obj, &["model"]),
            ["dropped logprobs", "dropped top_k"]
        );
    }

    #[test]
    fn data_urls() {
        assert_eq!(
            parse_data_url("data:image/png;base64,AAA"),
            Some(("image/png", "AAA"))
        );
        assert_eq!(parse_data_url("https://x/y.png"), None);
    }
}
