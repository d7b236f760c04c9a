//! The `llmgate` command: parses the command line and calls the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use llmgate::plugins::{Limits, Origin, PluginRegistry};

#[derive(Parser)]
#[command(
    name = "llmgate",
    version,
    about = "An LLM gateway with WebAssembly provider adapters and policies"
)]
struct Cli {
    /// Log output format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// The TOML config file.
        #[arg(long, short, env = "LLMGATE_CONFIG")]
        config: PathBuf,
    },
    /// Validate a config file and print the resolved routes.
    Check {
        /// The TOML config file.
        #[arg(long, short, env = "LLMGATE_CONFIG")]
        config: PathBuf,
    },
    /// List the loaded plugins.
    Plugins,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Serve { config } => serve(config),
        Command::Check { config } => check(config),
        Command::Plugins => list_plugins(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go straight to stderr, one `write` per line. A background writer
/// thread was measured to cost more: on a busy core, handing every request's
/// record to another thread is a context switch, dearer than the write.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn serve(config: PathBuf) -> anyhow::Result<()> {
    let gateway = llmgate::load(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(llmgate::serve(gateway, shutdown_signal()))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn check(config: PathBuf) -> anyhow::Result<()> {
    let gateway = llmgate::load(&config)?;
    let runtime = gateway.runtime.load();
    println!("config {} is valid", config.display());
    println!("listen: {}", runtime.listen);
    println!(
        "client keys: {}",
        if runtime.api_keys.is_empty() {
            "none (open)".to_string()
        } else {
            runtime.api_keys.len().to_string()
        }
    );
    for p in &runtime.providers {
        println!(
            "provider {}: adapter {} ({}), {} , {} key(s)",
            p.name,
            p.adapter.name(),
            p.adapter.dialect(),
            p.base_url,
            p.keys.len()
        );
    }
    for m in &runtime.models {
        let aliases = if m.aliases.is_empty() {
            String::new()
        } else {
            format!(" (aliases: {})", m.aliases.join(", "))
        };
        println!("model {}{} policy {}", m.name, aliases, m.policy.name());
        for r in &m.routes {
            println!(
                "  -> {} / {}  weight {} priority {}",
                r.provider.name, r.upstream_model, r.weight, r.priority
            );
        }
    }
    for w in &runtime.warnings {
        println!("warning: {w}");
    }
    Ok(())
}

fn list_plugins() -> anyhow::Result<()> {
    let registry = PluginRegistry::load_builtin(Limits::default())?;
    println!(
        "{:<16} {:<9} {:<9} {:>8}  description",
        "name", "world", "origin", "size"
    );
    for info in registry.infos() {
        let origin = match &info.origin {
            Origin::BuiltIn => "built-in".to_string(),
            Origin::File(path) => path.display().to_string(),
        };
        let description = match (&info.dialect, &info.description) {
            (Some(dialect), Some(text)) => format!("{text} [dialect {dialect}]"),
            _ => String::new(),
        };
        println!(
            "{:<16} {:<9} {:<9} {:>7}K  {}",
            info.name,
            info.world.as_str(),
            origin,
            info.size / 1024,
            description
        );
    }
    Ok(())
}
