//! The built-in plugins through the real wasm boundary, and config
//! validation against them.

use std::sync::atomic::Ordering;

use llmgate::balance::StatsTable;
use llmgate::config::{self, Runtime};
use llmgate::plugins::{
    AuthPlacement, CallContext, Candidate, Limits, Origin, PickContext, PluginRegistry, SseEvent,
    World,
};

/// Compiling the components takes a while; the tests share one registry.
fn registry() -> &'static PluginRegistry {
    static REGISTRY: std::sync::OnceLock<PluginRegistry> = std::sync::OnceLock::new();
    REGISTRY.get_or_init(|| {
        PluginRegistry::load_builtin(Limits::default()).expect("built-in plugins load")
    })
}

fn ctx(stream: bool) -> CallContext {
    CallContext {
        upstream_model: "gpt-4o-mini".into(),
        stream,
        options: "{}".into(),
        unix_time: 1_700_000_000,
    }
}

#[test]
fn built_in_plugins_load_with_their_worlds() {
    let r = registry();
    let listed: Vec<(&str, World, &Origin)> = r
        .infos()
        .iter()
        .map(|i| (i.name.as_str(), i.world, &i.origin))
        .collect();
    assert_eq!(
        listed,
        [
            ("anthropic", World::Provider, &Origin::BuiltIn),
            ("gemini", World::Provider, &Origin::BuiltIn),
            ("least-latency", World::Balancer, &Origin::BuiltIn),
            ("openai", World::Provider, &Origin::BuiltIn),
            ("priority", World::Balancer, &Origin::BuiltIn),
            ("responses", World::Provider, &Origin::BuiltIn),
            ("round-robin", World::Balancer, &Origin::BuiltIn),
            ("weighted", World::Balancer, &Origin::BuiltIn),
        ]
    );
    assert_eq!(r.adapter("openai").unwrap().dialect(), "openai");
    // Embeddings: the optional second export, on the adapters that have one.
    let embeds: Vec<&str> = r
        .infos()
        .iter()
        .filter(|i| i.embeddings)
        .map(|i| i.name.as_str())
        .collect();
    assert_eq!(embeds, ["gemini", "openai"]);
}

#[test]
fn openai_adapter_builds_requests_inside_wasm() {
    let r = registry();
    let openai = r.adapter("openai").unwrap();
    let req = openai
        .build_request(&ctx(true), br#"{"model":"smart","stream":true}"#, true)
        .unwrap()
        .unwrap();
    assert_eq!(req.path_and_query, "/chat/completions");
    assert_eq!(req.auth, AuthPlacement::Bearer);
    assert_eq!(
        std::str::from_utf8(&req.body).unwrap(),
        r#"{"stream_options":{"include_usage":true},"model":"gpt-4o-mini","stream":true}"#
    );
    let refused = openai.build_request(&ctx(false), b"[]", true).unwrap();
    assert!(refused.is_err(), "a non-object body is the client's error");
}

#[test]
fn stream_sessions_reuse_instances_and_free_their_resources() {
    // Its own registry: other tests' calls must not count here.
    let r = PluginRegistry::load_builtin(Limits::default()).unwrap();
    let openai = r.adapter("openai").unwrap();
    let before = openai.stats().calls.load(Ordering::Relaxed);
    for _ in 0..200 {
        let mut decoder = openai.stream_decoder(&ctx(true), true, "").unwrap();
        let out = decoder
            .push(&[SseEvent {
                event: None,
                data: "[DONE]".into(),
            }])
            .unwrap()
            .unwrap();
        assert!(out.done);
        assert!(decoder.finish().unwrap().is_ok());
    }
    let calls = openai.stats().calls.load(Ordering::Relaxed) - before;
    assert_eq!(calls, 600);
    assert_eq!(openai.stats().traps.load(Ordering::Relaxed), 0);
}

#[test]
fn weighted_policy_returns_every_candidate_once() {
    let r = registry();
    let weighted = r.policy("weighted").unwrap();
    let candidates: Vec<Candidate> = (0..8)
        .map(|i| Candidate {
            index: i,
            weight: i + 1,
            priority: 1,
            latency_ewma_us: 0,
            ttft_ewma_us: 0,
            error_rate: 0.0,
            in_flight: 0,
            cooling_down: false,
        })
        .collect();
    for seed in 0..50 {
        let ctx = PickContext {
            route: "m".into(),
            seed,
            counter: seed,
            options: "{}".into(),
        };
        let mut order = weighted.pick(&ctx, &candidates).unwrap();
        order.sort();
        assert_eq!(order, (0..8).collect::<Vec<u32>>());
    }
}

fn compile_error(text: &str) -> String {
    let file = config::parse(text, &|_| None).expect("parses");
    match Runtime::compile(&file, registry(), &StatsTable::default()) {
        Ok(_) => panic!("config should not compile"),
        Err(e) => e.to_string(),
    }
}

const PROVIDER: &str = r#"
[[providers]]
name = "p"
adapter = "openai"
base_url = "http://127.0.0.1:1/v1"
"#;

#[test]
fn config_errors_name_the_entry() {
    assert_eq!(
        compile_error(&format!(
            "{PROVIDER}\n[[models]]\nname = \"m\"\nroutes = [{{ provider = \"nope\", model = \"x\" }}]\n"
        )),
        "models[m].routes[0].provider: no provider named 'nope'"
    );
    assert_eq!(
        compile_error(&format!(
            "{}keys = [\"sk-ok\", \"sk-from-a-file\\n\"]\n",
            PROVIDER.trim_start()
        )),
        "providers[p].keys[1]: holds characters an HTTP header cannot carry (a trailing newline?)"
    );
    assert_eq!(
        compile_error(&PROVIDER.replace("adapter = \"openai\"", "adapter = \"acme\"")),
        "providers[p].adapter: no adapter plugin named 'acme' (loaded: anthropic, gemini, openai, responses)"
    );
    assert_eq!(
        compile_error(&format!(
            "{PROVIDER}\n[[models]]\nname = \"m\"\npolicy = \"fastest\"\nroutes = [{{ provider = \"p\", model = \"x\" }}]\n"
        )),
        "models[m].policy: no policy plugin named 'fastest' (loaded: least-latency, priority, round-robin, weighted)"
    );
    assert_eq!(
        compile_error(&format!(
            "{PROVIDER}\n[[models]]\nname = \"m\"\npolicy_options = {{ speed = 1 }}\nroutes = [{{ provider = \"p\", model = \"x\" }}]\n"
        )),
        "models[m].policy_options: weighted takes no options (got: speed)"
    );
    assert_eq!(
        compile_error(&format!(
            "{PROVIDER}\n[[models]]\nname = \"m\"\nroutes = [{{ provider = \"p\", model = \"x\" }}]\n\
             [[models]]\nname = \"n\"\naliases = [\"m\"]\nroutes = [{{ provider = \"p\", model = \"y\" }}]\n"
        )),
        "models[n]: the name 'm' is already used by another model or alias"
    );
    assert_eq!(
        compile_error(&format!(
            "{PROVIDER}\noptions = {{ stream_usage = \"yes\" }}\n"
        )),
        "providers[p].options: adapter options: invalid type: string \"yes\", expected a boolean at line 1 column 21"
    );
    assert_eq!(
        compile_error(&PROVIDER.replace("http://127.0.0.1:1/v1", "ftp://x")),
        "providers[p].base_url: must be an http or https URL"
    );
    assert_eq!(
        compile_error(&format!(
            "{PROVIDER}\n[[models]]\nname = \"a\"\nfallback = [\"b\"]\nroutes = [{{ provider = \"p\", model = \"x\" }}]\n\
             [[models]]\nname = \"b\"\nfallback = [\"a\"]\nroutes = [{{ provider = \"p\", model = \"y\" }}]\n"
        )),
        "models[a].fallback: fallbacks form a cycle: a -> b -> a"
    );
    assert_eq!(
        compile_error(&format!(
            "{PROVIDER}\n[[models]]\nname = \"a\"\nfallback = [\"zz\"]\nroutes = [{{ provider = \"p\", model = \"x\" }}]\n"
        )),
        "models[a].fallback[0]: no model or alias named 'zz'"
    );
    assert_eq!(
        compile_error(&format!(
            "{PROVIDER}\n[[error_rules]]\nstatus = \"6xx\"\nkind = \"auth\"\n"
        )),
        "error_rules[0].status: '6xx' is not a status class like 5xx"
    );
    assert_eq!(
        compile_error(&format!(
            "{PROVIDER}\n[[error_rules]]\nbody_contains = \"billing\"\nkind = \"broke\"\n"
        )),
        "error_rules[0].kind: 'broke' is not an error kind"
    );
}

#[test]
fn fallback_chains_are_depth_first_without_repeats() {
    let text = format!(
        "{PROVIDER}\n\
         [[models]]\nname = \"a\"\nfallback = [\"b\", \"c\"]\nroutes = [{{ provider = \"p\", model = \"1\" }}]\n\
         [[models]]\nname = \"b\"\nfallback = [\"d\"]\nroutes = [{{ provider = \"p\", model = \"2\" }}]\n\
         [[models]]\nname = \"c\"\nfallback = [\"d\"]\nroutes = [{{ provider = \"p\", model = \"3\" }}]\n\
         [[models]]\nname = \"d\"\nroutes = [{{ provider = \"p\", model = \"4\" }}]\n"
    );
    let file = config::parse(&text, &|_| None).unwrap();
    let runtime = Runtime::compile(&file, registry(), &StatsTable::default()).unwrap();
    let chain: Vec<String> = runtime
        .fallback_chain(runtime.model("a").unwrap())
        .iter()
        .map(|m| m.name.clone())
        .collect();
    assert_eq!(chain, ["a", "b", "d", "c"]);
}

#[test]
fn plain_http_providers_without_a_proxy_are_sent_to_directly() {
    let provider = |name: &str, url: &str, extra: &str| {
        format!(
            "[[providers]]\nname = \"{name}\"\nadapter = \"openai\"\nbase_url = \"{url}\"\nkeys = [\"k\"]\n{extra}\n\
             [[models]]\nname = \"{name}\"\nroutes = [{{ provider = \"{name}\", model = \"m\" }}]\n"
        )
    };
    let text = [
        provider("plain", "http://10.0.0.5:8000/v1", "proxy = \"\""),
        provider("tls", "https://api.example.com/v1", ""),
        provider(
            "proxied",
            "http://10.0.0.5:8000/v1",
            "proxy = \"http://127.0.0.1:3128\"",
        ),
    ]
    .concat();
    let file = config::parse(&text, &|_| None).unwrap();
    let runtime = Runtime::compile(&file, registry(), &StatsTable::default()).unwrap();
    let direct: Vec<(&str, bool)> = runtime
        .providers
        .iter()
        .map(|p| (p.name.as_str(), p.http.is_direct()))
        .collect();
    assert_eq!(
        direct,
        [("plain", true), ("tls", false), ("proxied", false)]
    );
}

#[test]
fn upstream_requests_carry_the_key_and_operator_headers_where_the_adapter_left_room() {
    let text = "[[providers]]\nname = \"p\"\nadapter = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1/\"\n\
                keys = [\"sk-1\"]\nheaders = { \"X-Title\" = \"llmgate\", \"Content-Type\" = \"text/plain\" }\n\
                [[models]]\nname = \"m\"\nroutes = [{ provider = \"p\", model = \"x\" }]\n";
    let file = config::parse(text, &|_| None).unwrap();
    let runtime = Runtime::compile(&file, registry(), &StatsTable::default()).unwrap();
    let p = &runtime.providers[0];
    let header = |name: &str, value: &str| llmgate::plugins::Header {
        name: name.into(),
        value: value.into(),
    };
    let request = llmgate::upstream::build_request(
        p,
        Some("sk-1"),
        "POST",
        "/chat/completions",
        vec![header("content-type", "application/json")],
        b"{}".to_vec(),
        &AuthPlacement::Bearer,
    )
    .unwrap();
    assert_eq!(request.uri(), "http://127.0.0.1:9/v1/chat/completions");
    let headers = request.headers();
    assert_eq!(headers["authorization"], "Bearer sk-1");
    assert!(headers["authorization"].is_sensitive());
    assert_eq!(
        headers["content-type"], "application/json",
        "the adapter's header wins"
    );
    assert_eq!(headers["x-title"], "llmgate");

    let in_query = llmgate::upstream::build_request(
        p,
        Some("a b&c"),
        "POST",
        "/models/x:streamGenerateContent?alt=sse",
        Vec::new(),
        Vec::new(),
        &AuthPlacement::Query("key".into()),
    )
    .unwrap();
    assert_eq!(
        in_query.uri(),
        "http://127.0.0.1:9/v1/models/x:streamGenerateContent?alt=sse&key=a%20b%26c"
    );
    let bad = llmgate::upstream::build_request(
        p,
        None,
        "POST",
        "/x",
        vec![header("bad name", "v")],
        Vec::new(),
        &AuthPlacement::None,
    );
    assert!(bad.unwrap_err().to_string().contains("invalid header name"));
}
