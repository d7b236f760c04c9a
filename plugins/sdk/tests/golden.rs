//! Golden tests for every translation: `tests/golden/<dialect>/<direction>/<case>.in.*`
//! goes through the translation and must equal `<case>.out.json` exactly.
//! Streams are also fed one event (or chunk) at a time and must give the same
//! output as fed all at once.
//!
//! `UPDATE_GOLDEN=1 cargo test -p llmgate-plugin-sdk --test golden` writes
//! the outputs; review every changed file before committing it.

use std::path::{Path, PathBuf};

use llmgate_plugin_sdk::adapter::{CallContext, Decoded};
use llmgate_plugin_sdk::anthropic::{egress, ingress};
use llmgate_plugin_sdk::gemini;
use llmgate_plugin_sdk::types::SseEvent;
use serde_json::{Value, json};

fn ctx(stream: bool) -> CallContext {
    CallContext {
        upstream_model: "claude-sonnet-4-5".into(),
        stream,
        options: "{}".into(),
        unix_time: 1_700_000_000,
    }
}

/// Runs `translate` on every `*.in.<ext>` in `dir` and compares with `*.out.json`.
fn check(dir: &str, ext: &str, translate: impl Fn(&[u8]) -> Value) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(dir);
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(&format!(".in.{ext}")))
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no cases in {}", dir.display());
    for input in cases {
        let expected_path = PathBuf::from(
            input
                .to_string_lossy()
                .replace(&format!(".in.{ext}"), ".out.json"),
        );
        let actual = translate(&std::fs::read(&input).unwrap());
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(
                &expected_path,
                serde_json::to_string_pretty(&actual).unwrap() + "\n",
            )
            .unwrap();
            continue;
        }
        let expected: Value = serde_json::from_slice(
            &std::fs::read(&expected_path)
                .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display())),
        )
        .unwrap();
        assert_eq!(
            actual,
            expected,
            "{} differs from {}:\n{}",
            input.display(),
            expected_path.display(),
            serde_json::to_string_pretty(&actual).unwrap()
        );
    }
}

/// A minimal SSE parser for fixtures (the host's framer is tested on its own).
fn parse_sse(text: &[u8]) -> Vec<SseEvent> {
    String::from_utf8_lossy(text)
        .split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut event = None;
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = Some(v.trim().to_string());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push(v.trim_start().to_string());
                }
            }
            SseEvent {
                event,
                data: data.join("\n"),
            }
        })
        .collect()
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("output is JSON")
}

fn events_value(events: &[SseEvent]) -> Value {
    Value::Array(
        events
            .iter()
            .map(|e| json!({ "event": e.event, "data": serde_json::from_str::<Value>(&e.data).unwrap() }))
            .collect(),
    )
}

/// Runs a stream decoder over `events`, all at once and one by one (which
/// must agree), returning the canonical chunks and the final usage.
fn decode_stream(
    events: Vec<SseEvent>,
    new: impl Fn() -> Box<dyn FnMut(Option<Vec<SseEvent>>) -> Decoded>,
) -> Value {
    let run = |batches: Vec<Vec<SseEvent>>| {
        let mut decoder = new();
        let mut chunks = Vec::new();
        for batch in batches {
            chunks.extend(decoder(Some(batch)).chunks);
        }
        let last = decoder(None);
        chunks.extend(last.chunks);
        let u = last.usage.unwrap();
        json!({
            "chunks": chunks.iter().map(|c| json_of(c)).collect::<Vec<_>>(),
            "usage": [u.input_tokens, u.output_tokens, u.cached_input_tokens],
        })
    };
    let whole = run(vec![events.clone()]);
    let one_by_one = run(events.into_iter().map(|e| vec![e]).collect());
    assert_eq!(whole, one_by_one, "batching must not change the output");
    whole
}

/// Runs a stream encoder over canonical `chunks`, all at once and one by
/// one (which must agree), returning the client events.
fn encode_stream(
    input: &[u8],
    new: impl Fn() -> Box<dyn FnMut(Option<Vec<Vec<u8>>>) -> Vec<SseEvent>>,
) -> Value {
    let chunks: Vec<Value> = serde_json::from_slice(input).unwrap();
    let bytes: Vec<Vec<u8>> = chunks
        .iter()
        .map(|c| serde_json::to_vec(c).unwrap())
        .collect();
    let run = |batches: Vec<Vec<Vec<u8>>>| {
        let mut encoder = new();
        let mut events = Vec::new();
        for batch in batches {
            events.extend(encoder(Some(batch)));
        }
        events.extend(encoder(None));
        events_value(&events)
    };
    let whole = run(vec![bytes.clone()]);
    assert_eq!(
        whole,
        run(bytes.into_iter().map(|c| vec![c]).collect()),
        "batching must not change the output"
    );
    whole
}

#[test]
fn anthropic_egress_request() {
    check("anthropic/egress_request", "json", |input| {
        let canonical: Value = serde_json::from_slice(input).unwrap();
        let options = egress::Options::parse("{}").unwrap();
        let stream = canonical["stream"] == true;
        let mut notes = Vec::new();
        let request = egress::translate_request(
            &canonical,
            "claude-sonnet-4-5",
            stream,
            &options,
            &mut notes,
        )
        .unwrap();
        json!({ "request": request, "notes": notes })
    });
}

#[test]
fn anthropic_egress_response() {
    check("anthropic/egress_response", "json", |input| {
        let parsed = egress::parse_response(&ctx(false), input, false).unwrap();
        json_of(&parsed.body.unwrap())
    });
}

#[test]
fn anthropic_egress_stream() {
    check("anthropic/egress_stream", "sse", |input| {
        decode_stream(parse_sse(input), || {
            let mut d = egress::Decoder::new(&ctx(true), false);
            Box::new(move |batch| match batch {
                Some(events) => d.push(events).unwrap(),
                None => d.finish().unwrap(),
            })
        })
    });
}

#[test]
fn anthropic_ingress_request() {
    check("anthropic/ingress_request", "json", |input| {
        let decoded = ingress::decode_request(input).unwrap();
        json!({ "canonical": json_of(&decoded.canonical), "notes": decoded.translation_notes })
    });
}

#[test]
fn anthropic_ingress_response() {
    check("anthropic/ingress_response", "json", |input| {
        json_of(&ingress::encode_response(input, "claude-sonnet-4-5").unwrap())
    });
}

#[test]
fn anthropic_ingress_stream() {
    check("anthropic/ingress_stream", "json", |input| {
        encode_stream(input, || {
            let e = ingress::Encoder::new("claude-sonnet-4-5");
            Box::new(move |batch| match batch {
                Some(chunks) => e.push(chunks).unwrap(),
                None => e.finish(),
            })
        })
    });
}

#[test]
fn gemini_egress_request() {
    check("gemini/egress_request", "json", |input| {
        let mut notes = Vec::new();
        let request =
            gemini::egress::translate_request(&serde_json::from_slice(input).unwrap(), &mut notes)
                .unwrap();
        json!({ "request": request, "notes": notes })
    });
}

#[test]
fn gemini_egress_response() {
    check("gemini/egress_response", "json", |input| {
        json_of(
            &gemini::egress::parse_response(&ctx(false), input, false)
                .unwrap()
                .body
                .unwrap(),
        )
    });
}

#[test]
fn gemini_egress_stream() {
    check("gemini/egress_stream", "sse", |input| {
        decode_stream(parse_sse(input), || {
            let mut d = gemini::egress::Decoder::new(&ctx(true), false);
            Box::new(move |batch| match batch {
                Some(events) => d.push(events).unwrap(),
                None => d.finish().unwrap(),
            })
        })
    });
}

#[test]
fn gemini_ingress_request() {
    check("gemini/ingress_request", "json", |input| {
        let decoded = gemini::ingress::decode_request(input).unwrap();
        json!({ "canonical": json_of(&decoded.canonical), "notes": decoded.translation_notes })
    });
}

#[test]
fn gemini_ingress_response() {
    check("gemini/ingress_response", "json", |input| {
        json_of(&gemini::ingress::encode_response(input, "gemini-2.5-flash").unwrap())
    });
}

#[test]
fn gemini_ingress_stream() {
    check("gemini/ingress_stream", "json", |input| {
        encode_stream(input, || {
            let e = gemini::ingress::Encoder::new("gemini-2.5-flash");
            Box::new(move |batch| match batch {
                Some(chunks) => e.push(chunks).unwrap(),
                None => e.finish(),
            })
        })
    });
}

#[test]
fn responses_ingress_request() {
    check("responses/ingress_request", "json", |input| {
        let decoded = llmgate_plugin_sdk::responses::ingress::decode_request(input).unwrap();
        json!({ "canonical": json_of(&decoded.canonical), "notes": decoded.translation_notes })
    });
}

#[test]
fn responses_ingress_response() {
    check("responses/ingress_response", "json", |input| {
        json_of(&llmgate_plugin_sdk::responses::ingress::encode_response(input, "smart").unwrap())
    });
}

#[test]
fn responses_ingress_stream() {
    check("responses/ingress_stream", "json", |input| {
        encode_stream(input, || {
            let e = llmgate_plugin_sdk::responses::ingress::Encoder::new("smart");
            Box::new(move |batch| match batch {
                Some(chunks) => e.push(chunks).unwrap(),
                None => e.finish(),
            })
        })
    });
}

#[test]
fn responses_refuse_server_side_state_by_name() {
    use llmgate_plugin_sdk::responses::ingress::decode_request;
    let err = decode_request(br#"{"model":"m","input":"hi","previous_response_id":"resp_1"}"#)
        .unwrap_err();
    assert!(
        err.message.contains("previous_response_id"),
        "{}",
        err.message
    );
    let err = decode_request(br#"{"model":"m","input":"hi","store":true}"#).unwrap_err();
    assert!(err.message.contains("store"), "{}", err.message);
    let err = decode_request(br#"{"model":"m","input":[{"type":"item_reference","id":"x"}]}"#)
        .unwrap_err();
    assert!(err.message.contains("item_reference"), "{}", err.message);
}
