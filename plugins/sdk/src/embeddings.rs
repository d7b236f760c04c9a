//! Embeddings in the OpenAI and Gemini dialects. The canonical form is
//! OpenAI's: `{model, input: [text...], dimensions?}` in, `{object: "list",
//! data: [{object: "embedding", index, embedding: [f32...]}], model, usage}`
//! out. [`OpenAiEmbeddings`] and [`GeminiEmbeddings`] are what the built-in
//! `openai` and `gemini` adapters export.

use serde_json::{Value, json};

use crate::embed::{
    DecodedEmbed, EmbedContext, EmbedRequest, EmbedResponse, Embeddings, KeyPlacement,
};
use crate::json;
use crate::types::{Header, PluginError, Usage};

fn bad(message: impl Into<String>) -> PluginError {
    PluginError::bad_request(message)
}

fn parse(body: &[u8], what: &str) -> Result<Value, PluginError> {
    serde_json::from_slice(body).map_err(|e| bad(format!("{what}: {e}")))
}

fn json_header() -> Vec<Header> {
    vec![Header {
        name: "content-type".into(),
        value: "application/json".into(),
    }]
}

/// Note: the OpenAI client asked for base64 vectors (the `openai` SDKs do
/// by default), so floats from another dialect are packed for it.
const NOTE_BASE64: &str = "base64";

/// OpenAI's `/embeddings`, also the canonical form.
pub struct OpenAiEmbeddings;

impl Embeddings for OpenAiEmbeddings {
    fn build_embed_request(
        ctx: EmbedContext,
        body: Vec<u8>,
        _native: bool,
    ) -> Result<EmbedRequest, PluginError> {
        let body = json::set_member(&body, "model", &json::string_value(&ctx.upstream_model))
            .map_err(|e| bad(format!("request body: {e}")))?;
        Ok(EmbedRequest {
            method: "POST".into(),
            path_and_query: "/embeddings".into(),
            headers: json_header(),
            body,
            auth: KeyPlacement::Bearer,
        })
    }

    fn parse_embed_response(
        _ctx: EmbedContext,
        body: Vec<u8>,
        native: bool,
    ) -> Result<EmbedResponse, PluginError> {
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| PluginError::upstream(format!("unreadable upstream response: {e}")))?;
        let usage = v["usage"]["prompt_tokens"].as_u64().map(|n| Usage {
            input_tokens: n.min(u32::MAX.into()) as u32,
            output_tokens: 0,
            cached_input_tokens: None,
            reasoning_tokens: None,
        });
        // Canonical is this dialect, but a base64 answer (for a native
        // client that asked) is not what other dialects can read; the host
        // only asks for canonical when translating, and then the request
        // carried no encoding_format.
        Ok(EmbedResponse {
            body: (!native).then_some(body),
            usage,
        })
    }

    fn decode_embed_request(body: Vec<u8>) -> Result<DecodedEmbed, PluginError> {
        let mut req = parse(&body, "request body")?;
        let note = match req["encoding_format"].as_str() {
            Some("base64") => NOTE_BASE64,
            _ => "",
        };
        // Canonical vectors are floats; the encoder packs them if asked.
        if let Some(obj) = req.as_object_mut() {
            obj.remove("encoding_format");
            if let Some(text) = obj.get("input").and_then(Value::as_str) {
                let list = json!([text]);
                obj.insert("input".into(), list);
            }
        }
        if !req["input"]
            .as_array()
            .is_some_and(|items| items.iter().all(Value::is_string))
        {
            return Err(bad(
                "input must be a string or a list of strings (token arrays do not cross dialects)",
            ));
        }
        Ok(DecodedEmbed {
            canonical: serde_json::to_vec(&req).expect("values serialize"),
            note: note.into(),
        })
    }

    fn encode_embed_response(
        canonical: Vec<u8>,
        client_model: String,
        note: String,
    ) -> Result<Vec<u8>, PluginError> {
        let mut resp: Value = serde_json::from_slice(&canonical)
            .map_err(|e| PluginError::upstream(format!("canonical response: {e}")))?;
        resp["model"] = client_model.into();
        if note == NOTE_BASE64 {
            for item in resp["data"].as_array_mut().into_iter().flatten() {
                if let Some(floats) = item["embedding"].as_array() {
                    item["embedding"] = f32_base64(floats).into();
                }
            }
        }
        Ok(serde_json::to_vec(&resp).expect("values serialize"))
    }
}

/// Gemini's `:embedContent` and `:batchEmbedContents`.
pub struct GeminiEmbeddings;

/// Notes: which Gemini method the client called, so the answer has its shape.
const NOTE_SINGLE: &str = "single";
const NOTE_BATCH: &str = "batch";

fn gemini_text(content: &Value) -> String {
    content["parts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["text"].as_str())
        .collect::<Vec<_>>()
        .join("")
}

impl Embeddings for GeminiEmbeddings {
    fn build_embed_request(
        ctx: EmbedContext,
        body: Vec<u8>,
        native: bool,
    ) -> Result<EmbedRequest, PluginError> {
        let model = &ctx.upstream_model;
        let mut req = parse(&body, "request body")?;
        let batch = !native || req["requests"].is_array();
        if native {
            // Each request of a batch names the model too.
            for r in req["requests"].as_array_mut().into_iter().flatten() {
                r["model"] = format!("models/{model}").into();
            }
        } else {
            let texts = req["input"]
                .as_array()
                .ok_or_else(|| bad("canonical embeddings request without input"))?;
            let requests: Vec<Value> = texts
                .iter()
                .map(|t| {
                    let mut r = json!({
                        "model": format!("models/{model}"),
                        "content": { "parts": [{ "text": t }] },
                    });
                    if let Some(d) = req["dimensions"].as_u64() {
                        r["outputDimensionality"] = d.into();
                    }
                    r
                })
                .collect();
            req = json!({ "requests": requests });
        }
        let method = if batch {
            "batchEmbedContents"
        } else {
            "embedContent"
        };
        Ok(EmbedRequest {
            method: "POST".into(),
            path_and_query: format!("/v1beta/models/{model}:{method}"),
            headers: json_header(),
            body: serde_json::to_vec(&req).expect("values serialize"),
            auth: KeyPlacement::Header("x-goog-api-key".into()),
        })
    }

    fn parse_embed_response(
        ctx: EmbedContext,
        body: Vec<u8>,
        native: bool,
    ) -> Result<EmbedResponse, PluginError> {
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| PluginError::upstream(format!("unreadable upstream response: {e}")))?;
        // Gemini reports no token usage for embeddings.
        if native {
            return Ok(EmbedResponse {
                body: None,
                usage: None,
            });
        }
        let vectors: Vec<&Value> = match v["embeddings"].as_array() {
            Some(list) => list.iter().map(|e| &e["values"]).collect(),
            None => vec![&v["embedding"]["values"]],
        };
        let data: Vec<Value> = vectors
            .into_iter()
            .enumerate()
            .map(|(i, values)| json!({ "object": "embedding", "index": i, "embedding": values }))
            .collect();
        let canonical = json!({
            "object": "list",
            "data": data,
            "model": ctx.upstream_model,
            "usage": { "prompt_tokens": 0, "total_tokens": 0 },
        });
        Ok(EmbedResponse {
            body: Some(serde_json::to_vec(&canonical).expect("values serialize")),
            usage: None,
        })
    }

    fn decode_embed_request(body: Vec<u8>) -> Result<DecodedEmbed, PluginError> {
        let req = parse(&body, "request body")?;
        let (texts, dims, note) = match req["requests"].as_array() {
            Some(requests) => (
                requests
                    .iter()
                    .map(|r| gemini_text(&r["content"]))
                    .collect::<Vec<_>>(),
                requests
                    .first()
                    .and_then(|r| r["outputDimensionality"].as_u64()),
                NOTE_BATCH,
            ),
            None if req["content"].is_object() => (
                vec![gemini_text(&req["content"])],
                req["outputDimensionality"].as_u64(),
                NOTE_SINGLE,
            ),
            None => {
                return Err(bad(
                    "expected `content` (embedContent) or `requests` (batchEmbedContents)",
                ));
            }
        };
        let mut canonical = json!({ "input": texts });
        if let Some(d) = dims {
            canonical["dimensions"] = d.into();
        }
        Ok(DecodedEmbed {
            canonical: serde_json::to_vec(&canonical).expect("values serialize"),
            note: note.into(),
        })
    }

    fn encode_embed_response(
        canonical: Vec<u8>,
        _client_model: String,
        note: String,
    ) -> Result<Vec<u8>, PluginError> {
        let resp: Value = serde_json::from_slice(&canonical)
            .map_err(|e| PluginError::upstream(format!("canonical response: {e}")))?;
        let mut vectors: Vec<(u64, Value)> = resp["data"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| {
                (
                    d["index"].as_u64().unwrap_or(0),
                    json!({ "values": d["embedding"] }),
                )
            })
            .collect();
        vectors.sort_by_key(|(i, _)| *i);
        let out = if note == NOTE_SINGLE {
            json!({ "embedding": vectors.into_iter().next().map(|(_, v)| v).unwrap_or(Value::Null) })
        } else {
            json!({ "embeddings": vectors.into_iter().map(|(_, v)| v).collect::<Vec<_>>() })
        };
        Ok(serde_json::to_vec(&out).expect("values serialize"))
    }
}

/// Floats as OpenAI's base64 form: little-endian f32s, standard alphabet.
pub fn f32_base64(floats: &[Value]) -> String {
    let bytes: Vec<u8> = floats
        .iter()
        .flat_map(|f| (f.as_f64().unwrap_or(0.0) as f32).to_le_bytes())
        .collect();
    base64(&bytes)
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> EmbedContext {
        EmbedContext {
            upstream_model: "text-embedding-004".into(),
            options: "{}".into(),
        }
    }

    #[test]
    fn base64_matches_the_standard_encoding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        // 1.0f32 little-endian is 00 00 80 3f.
        assert_eq!(f32_base64(&[json!(1.0)]), "AACAPw==");
    }

    #[test]
    fn openai_client_to_gemini_backend_and_back() {
        let decoded = OpenAiEmbeddings::decode_embed_request(
            br#"{"model":"emb","input":"hello","encoding_format":"base64","dimensions":2}"#
                .to_vec(),
        )
        .unwrap();
        assert_eq!(decoded.note, "base64");
        let request =
            GeminiEmbeddings::build_embed_request(ctx(), decoded.canonical, false).unwrap();
        assert_eq!(
            request.path_and_query,
            "/v1beta/models/text-embedding-004:batchEmbedContents"
        );
        let sent: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(
            sent,
            json!({"requests": [{"model": "models/text-embedding-004",
                "content": {"parts": [{"text": "hello"}]}, "outputDimensionality": 2}]})
        );
        let answer = br#"{"embeddings":[{"values":[1.0,0.5]}]}"#.to_vec();
        let parsed = GeminiEmbeddings::parse_embed_response(ctx(), answer, false).unwrap();
        let out = OpenAiEmbeddings::encode_embed_response(
            parsed.body.unwrap(),
            "emb".into(),
            decoded.note,
        )
        .unwrap();
        let out: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(out["model"], "emb");
        assert_eq!(
            out["data"][0]["embedding"],
            f32_base64(&[json!(1.0), json!(0.5)])
        );
    }

    #[test]
    fn gemini_client_to_openai_backend_and_back() {
        let decoded = GeminiEmbeddings::decode_embed_request(
            br#"{"content":{"parts":[{"text":"a"},{"text":"b"}]}}"#.to_vec(),
        )
        .unwrap();
        assert_eq!(decoded.note, "single");
        let request = OpenAiEmbeddings::build_embed_request(
            EmbedContext {
                upstream_model: "text-embedding-3-small".into(),
                options: "{}".into(),
            },
            decoded.canonical,
            false,
        )
        .unwrap();
        let sent: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(
            sent,
            json!({"model": "text-embedding-3-small", "input": ["ab"]})
        );
        let answer = br#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.25]}],"model":"x","usage":{"prompt_tokens":3,"total_tokens":3}}"#.to_vec();
        let parsed = OpenAiEmbeddings::parse_embed_response(ctx(), answer, false).unwrap();
        assert_eq!(parsed.usage.unwrap().input_tokens, 3);
        let out =
            GeminiEmbeddings::encode_embed_response(parsed.body.unwrap(), "m".into(), decoded.note)
                .unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&out).unwrap(),
            json!({"embedding": {"values": [0.25]}})
        );
    }
}
