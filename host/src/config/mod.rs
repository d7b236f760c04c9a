//! Configuration: the TOML schema ([`schema`]), `${VAR}` secrets
//! ([`secrets`]), and validation into the runtime form the request path
//! reads ([`runtime`]).

mod runtime;
pub mod schema;
pub mod secrets;

use std::path::Path;

pub use runtime::{
    Capabilities, Capture, ClientKey, ErrorRule, Model, Provider, Route, Routing, Runtime,
    key_fingerprint,
};
pub use schema::ConfigFile;

/// A configuration problem, naming the entry it is about.
#[derive(Debug, thiserror::Error)]
#[error("{at}: {message}")]
pub struct ConfigError {
    /// Where: `providers[openai].keys[1]`, `models[smart].routes[0]`, a file path...
    pub at: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// An error about the entry `at`.
    pub fn new(at: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            at: at.into(),
            message: message.into(),
        }
    }
}

/// Where a data file named `path` in config goes: absolute paths as they
/// are, relative ones under `$LLMGATE_DATA_DIR` when set, else in
/// `config_dir`.
pub fn data_path(path: &str, config_dir: &Path) -> std::path::PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        return path.to_path_buf();
    }
    match std::env::var_os("LLMGATE_DATA_DIR") {
        Some(dir) if !dir.is_empty() => Path::new(&dir).join(path),
        _ => config_dir.join(path),
    }
}

/// Reads and parses a config file and resolves its `${VAR}` references from
/// the process environment.
pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(path.display().to_string(), e.to_string()))?;
    parse(&text, &|name| std::env::var(name).ok())
        .map_err(|e| ConfigError::new(format!("{}: {}", path.display(), e.at), e.message))
}

/// Parses config text, resolving `${VAR}` with `lookup`.
pub fn parse(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<ConfigFile, ConfigError> {
    let mut file: ConfigFile = toml::from_str(text).map_err(|e| {
        let at = e
            .span()
            .map(|span| format!("line {}", text[..span.start].matches('\n').count() + 1))
            .unwrap_or_else(|| "config".into());
        ConfigError::new(at, e.message().to_string())
    })?;
    expand_secrets(&mut file, lookup)?;
    env_overrides(&mut file, lookup);
    Ok(file)
}

/// Container-style overrides: `LLMGATE_LISTEN` replaces `server.listen`;
/// `LLMGATE_TOKEN` is one client key (named `token`) and the admin token in
/// one, as llmio's `TOKEN` is, so a container needs one secret to start.
fn env_overrides(file: &mut ConfigFile, lookup: &dyn Fn(&str) -> Option<String>) {
    if let Some(listen) = lookup("LLMGATE_LISTEN").filter(|v| !v.is_empty()) {
        file.server.listen = listen;
    }
    if let Some(token) = lookup("LLMGATE_TOKEN").filter(|v| !v.is_empty()) {
        if !file.server.api_keys.iter().any(|k| k.key() == token) {
            file.server.api_keys.push(schema::ClientKeyConfig::Named {
                name: "token".into(),
                key: token.clone(),
            });
        }
        file.server.admin_token = Some(token);
    }
}

/// Resolves `${VAR}` in every string that may hold a secret or an address.
fn expand_secrets(
    file: &mut ConfigFile,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    let server = &mut file.server;
    server.listen = secrets::expand(&server.listen, "server.listen", lookup)?;
    for (i, key) in server.api_keys.iter_mut().enumerate() {
        let expanded = secrets::expand(key.key(), &format!("server.api_keys[{i}]"), lookup)?;
        *key.key_mut() = expanded;
    }
    if let Some(token) = &mut server.admin_token {
        *token = secrets::expand(token, "server.admin_token", lookup)?;
    }
    file.storage.path = secrets::expand(&file.storage.path, "storage.path", lookup)?;
    for p in &mut file.providers {
        let at = format!("providers[{}]", p.name);
        p.base_url = secrets::expand(&p.base_url, &format!("{at}.base_url"), lookup)?;
        for (i, key) in p.keys.iter_mut().enumerate() {
            *key = secrets::expand(key, &format!("{at}.keys[{i}]"), lookup)?;
        }
        expand_table(&mut p.options, &format!("{at}.options"), lookup)?;
        for (name, value) in p.headers.iter_mut() {
            *value = secrets::expand(value, &format!("{at}.headers.{name}"), lookup)?;
        }
        if let Some(proxy) = &mut p.proxy {
            *proxy = secrets::expand(proxy, &format!("{at}.proxy"), lookup)?;
        }
    }
    Ok(())
}

fn expand_table(
    table: &mut toml::Table,
    at: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    for (key, value) in table.iter_mut() {
        expand_value(value, &format!("{at}.{key}"), lookup)?;
    }
    Ok(())
}

fn expand_value(
    value: &mut toml::Value,
    at: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    match value {
        toml::Value::String(s) => *s = secrets::expand(s, at, lookup)?,
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_value(item, &format!("{at}[{i}]"), lookup)?;
            }
        }
        toml::Value::Table(t) => expand_table(t, at, lookup)?,
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "OPENAI_KEY").then(|| "sk-test".to_string())
    }

    #[test]
    fn unknown_keys_are_errors_with_a_line() {
        let err = parse("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 1\n", &env).unwrap_err();
        assert_eq!(err.at, "line 3");
        assert!(err.message.contains("unknown field `lisen`"), "{err}");
    }

    #[test]
    fn environment_overrides_listen_and_token() {
        let env = |name: &str| match name {
            "LLMGATE_LISTEN" => Some("0.0.0.0:8080".to_string()),
            "LLMGATE_TOKEN" => Some("tok".to_string()),
            _ => None,
        };
        let file = parse("[server]\nlisten = \"127.0.0.1:1\"\n", &env).unwrap();
        assert_eq!(file.server.listen, "0.0.0.0:8080");
        assert_eq!(file.server.admin_token.as_deref(), Some("tok"));
        assert_eq!(file.server.api_keys.len(), 1);
        assert_eq!(file.server.api_keys[0].key(), "tok");
    }

    #[test]
    fn secrets_resolve_and_missing_ones_name_the_entry() {
        let text = r#"
            [[providers]]
            name = "openai"
            adapter = "openai"
            base_url = "https://api.openai.com/v1"
            keys = ["${OPENAI_KEY}", "${OPENAI_KEY_2}"]
        "#;
        let err = parse(text, &env).unwrap_err();
        assert_eq!(
            err.to_string(),
            "providers[openai].keys[1]: environment variable OPENAI_KEY_2 is not set"
        );
        let ok = parse(&text.replace(", \"${OPENAI_KEY_2}\"", ""), &env).unwrap();
        assert_eq!(ok.providers[0].keys, ["sk-test"]);
    }
}
