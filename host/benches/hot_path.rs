//! The hot pieces of a request, measured alone: adapter calls across the
//! wasm boundary at 1 KB and 64 KB, one stream-decoder push, one policy pick
//! over 8 candidates, and SSE framing. Run with `cargo bench -p llmgate`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use llmgate::plugins::{CallContext, Candidate, Limits, PickContext, PluginRegistry, SseEvent};
use llmgate::sse::SseFramer;

fn chat_body(prompt_bytes: usize) -> Vec<u8> {
    let filler: String = "The quick brown fox jumps over the lazy dog. "
        .repeat(prompt_bytes / 45 + 1)
        .chars()
        .take(prompt_bytes)
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "model": "smart",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": filler},
        ],
        "temperature": 0.2,
        "stream": false,
    }))
    .unwrap()
}

fn chat_response(content_bytes: usize) -> Vec<u8> {
    let content = "x".repeat(content_bytes);
    serde_json::to_vec(&serde_json::json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30},
    }))
    .unwrap()
}

const CHUNK: &str = r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}]}"#;

fn benches(c: &mut Criterion) {
    let registry = PluginRegistry::load_builtin(Limits::default()).unwrap();
    let openai = registry.adapter("openai").unwrap();
    let ctx = CallContext {
        upstream_model: "gpt-4o-mini".into(),
        stream: false,
        options: "{}".into(),
        unix_time: 1_700_000_000,
    };

    let mut group = c.benchmark_group("adapter");
    for size in [1024usize, 64 * 1024] {
        let body = chat_body(size);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::new("build_request", size), &body, |b, body| {
            b.iter(|| {
                openai
                    .build_request(&ctx, black_box(body), true)
                    .unwrap()
                    .unwrap()
            })
        });
        let response = chat_response(size);
        group.bench_with_input(
            BenchmarkId::new("parse_response", size),
            &response,
            |b, body| {
                b.iter(|| {
                    openai
                        .parse_response(&ctx, black_box(body), true)
                        .unwrap()
                        .unwrap()
                })
            },
        );
    }
    group.finish();

    let stream_ctx = CallContext {
        stream: true,
        ..ctx.clone()
    };
    let mut decoder = openai.stream_decoder(&stream_ctx, true, "").unwrap();
    let event = [SseEvent {
        event: None,
        data: CHUNK.into(),
    }];
    c.bench_function("decoder/push_one_event", |b| {
        b.iter(|| decoder.push(black_box(&event)).unwrap().unwrap())
    });

    let candidates: Vec<Candidate> = (0..8)
        .map(|i| Candidate {
            index: i,
            weight: 1 + i % 3,
            priority: 1 + i % 2,
            latency_ewma_us: 1000 * (i + 1),
            ttft_ewma_us: 100 * (i + 1),
            error_rate: 0.0,
            in_flight: i % 4,
            cooling_down: i == 7,
        })
        .collect();
    let mut seed = 0u64;
    for name in ["weighted", "priority", "round-robin", "least-latency"] {
        let policy = registry.policy(name).unwrap();
        c.bench_function(&format!("policy/{name}_pick_8"), |b| {
            b.iter(|| {
                seed += 1;
                let ctx = PickContext {
                    route: "smart".into(),
                    seed,
                    counter: seed,
                    options: "{}".into(),
                };
                policy.pick(&ctx, black_box(&candidates)).unwrap()
            })
        });
    }

    let wire: Vec<u8> = (0..64)
        .flat_map(|_| format!("data: {CHUNK}\n\n").into_bytes())
        .collect();
    let mut group = c.benchmark_group("sse");
    group.throughput(Throughput::Bytes(wire.len() as u64));
    group.bench_function("frame_64_events_in_1k_reads", |b| {
        b.iter(|| {
            let mut framer = SseFramer::new(1 << 20);
            let mut out = Vec::with_capacity(64);
            for piece in wire.chunks(1024) {
                framer.push(black_box(piece), &mut out).unwrap();
            }
            out
        })
    });
    group.finish();
}

criterion_group!(hot_path, benches);
criterion_main!(hot_path);
