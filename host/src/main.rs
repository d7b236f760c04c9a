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

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// The TOML config file. Without one, `LLMGATE_TOKEN` must be set:
        /// the gateway starts with an empty config kept in its store
        /// (`$LLMGATE_DATA_DIR`, default `./data`), changed through the admin API.
        #[arg(long, short, env = "LLMGATE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Validate a config file and print the resolved routes.
    Check {
        /// The TOML config file.
        #[arg(long, short, env = "LLMGATE_CONFIG")]
        config: PathBuf,
    },
    /// List the loaded plugins: built-in ones, and with --config those in
    /// its `plugins.dir` (with load errors).
    Plugins {
        /// The TOML config file.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Work with one plugin component.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Print a component's world, exports and imports, and whether llmgate can load it.
    Inspect {
        /// The `.wasm` component.
        file: PathBuf,
    },
    /// Build a plugin crate into a component (`cargo build` for wasm, then
    /// `wit-component`), with the same toolchain the built-in plugins use.
    Build {
        /// The crate's directory (with its Cargo.toml).
        dir: PathBuf,
        /// Where to write the component; its file name is the plugin's name.
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// Cargo's target directory (default: cargo's own choice).
        #[arg(long)]
        target_dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Serve { config } => serve(config),
        Command::Check { config } => check(config),
        Command::Plugins { config } => list_plugins(config),
        Command::Plugin(PluginCommand::Inspect { file }) => inspect_plugin(&file),
        Command::Plugin(PluginCommand::Build {
            dir,
            out,
            target_dir,
        }) => build_plugin(&dir, out, target_dir),
    };
    llmgate::log_output::flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr through [`llmgate::log_output`]: info lines are
/// gathered and written ten times a second (not one `write` per request),
/// warnings and errors at once. The flusher is woken by a timer, never per
/// line: a wake-up per request would cost a context switch each.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    llmgate::log_output::start_flusher();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        llmgate::log_output::flush();
        default_hook(info);
    }));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(llmgate::log_output::LogOutput)
        .with_ansi(ansi);
    llmgate::log_output::set_plain_text(format == LogFormat::Text && !ansi);
    match format {
        LogFormat::Text => builder.fmt_fields(llmgate::log_output::PlainFields).init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn serve(config: Option<PathBuf>) -> anyhow::Result<()> {
    let source = match config {
        Some(path) => llmgate::ConfigSource::File(path),
        None if std::env::var("LLMGATE_TOKEN").is_ok_and(|t| !t.is_empty()) => {
            let source = llmgate::ConfigSource::store_from_env();
            tracing::info!(
                "no config file: starting with the configuration kept in {} \
                 (empty at first; change it with PUT /admin/api/config)",
                source.describe()
            );
            source
        }
        None => anyhow::bail!(
            "no config: pass --config FILE (or set LLMGATE_CONFIG), or set LLMGATE_TOKEN \
             to start with an empty configuration kept in the store"
        ),
    };
    let gateway = llmgate::load(source)?;
    // Request threads cut in on background bursts (the store's writer); see sched.rs.
    let short_slices = llmgate::sched::prefer_short_slices();
    tracing::debug!(
        short_slices,
        "asked the kernel for short slices on request threads"
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    tracing::info!(
        cores,
        "{} runtime",
        if cores == 1 {
            "current-thread"
        } else {
            "multi-thread"
        }
    );
    let runtime = runtime_for(cores)
        .enable_all()
        .on_thread_start(|| {
            llmgate::sched::prefer_short_slices();
        })
        .build()?;
    runtime.block_on(llmgate::serve(gateway, shutdown_signal()))
}

/// With one core to run on (taskset, a container's CPU quota), a
/// current-thread runtime: its tasks wake each other without cross-thread
/// hand-offs, which on one core cost a fifth of each request's CPU time
/// (measured at c=64: 84 -> 67 us per request, nginx 32). With more cores,
/// the multi-thread runtime, one worker per core.
fn runtime_for(cores: usize) -> tokio::runtime::Builder {
    if cores == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    }
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
    let runtime = llmgate::check(&config)?;
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

fn list_plugins(config: Option<PathBuf>) -> anyhow::Result<()> {
    let registry = match &config {
        Some(path) => {
            let source = llmgate::ConfigSource::File(path.clone());
            let text = std::fs::read_to_string(path)?;
            let file = llmgate::parse_config(&text, &source)?;
            llmgate::load_plugins(&file, &source.base_dir())?.0
        }
        None => PluginRegistry::load_builtin(Limits::default())?,
    };
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
    for error in registry.errors() {
        println!("not loaded: {}: {}", error.file.display(), error.message);
    }
    Ok(())
}

fn inspect_plugin(file: &std::path::Path) -> anyhow::Result<()> {
    let mut registry = PluginRegistry::empty(Limits::default())?;
    let report = registry.inspect(file)?;
    println!("file:    {}", file.display());
    println!("size:    {} bytes, sha256 {}", report.size, report.sha256);
    match &report.loaded {
        Ok(info) => {
            println!("world:   {} (llmgate:plugin@0.1.0)", info.world.as_str());
            if let (Some(dialect), Some(description)) = (&info.dialect, &info.description) {
                println!("dialect: {dialect}");
                println!("about:   {description}");
            }
            println!(
                "name:    {} (its file name; drop it into plugins.dir to use it)",
                file.file_stem()
                    .map(|s| s.to_string_lossy())
                    .unwrap_or_default()
            );
        }
        Err(why) => println!("loads:   no: {why}"),
    }
    println!("exports:");
    for export in &report.exports {
        println!("  {export}");
    }
    println!("imports:");
    for import in &report.imports {
        let note = if import.starts_with("wasi:") {
            "  [WASI: sandboxed, grants no files, network or environment]"
        } else {
            ""
        };
        println!("  {import}{note}");
    }
    if report.loaded.is_err() {
        anyhow::bail!("{} cannot be loaded as an llmgate plugin", file.display());
    }
    Ok(())
}

fn build_plugin(
    dir: &std::path::Path,
    out: Option<PathBuf>,
    target_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    use llmgate::plugin_build;
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let package: toml::Table = toml::from_str(&text)?;
    let name = package
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .context("Cargo.toml has no package.name")?
        .to_string();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let toolchain = plugin_build::pick_toolchain("rustc").map_err(|e| anyhow::anyhow!(e))?;
    let target_dir = match target_dir {
        Some(dir) => dir,
        None => cargo_target_dir(&cargo, &manifest)?,
    };
    let mut cmd = plugin_build::cargo_build(&cargo, toolchain);
    // Release, as small and fast as the built-in plugins (profile `wasm-plugin`).
    cmd.arg("--release")
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir)
        .env("CARGO_PROFILE_RELEASE_LTO", "true")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
        .env("CARGO_PROFILE_RELEASE_PANIC", "abort")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "true");
    let status = cmd.status().context("running cargo")?;
    if !status.success() {
        anyhow::bail!("cargo build for {} failed ({status})", dir.display());
    }
    let module_path = target_dir
        .join(plugin_build::WASM_TARGET)
        .join("release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    let module = std::fs::read(&module_path)
        .with_context(|| format!("reading {} (is the crate a cdylib?)", module_path.display()))?;
    let component = plugin_build::componentize(&module).map_err(|e| anyhow::anyhow!(e))?;
    let out = out.unwrap_or_else(|| {
        PathBuf::from(format!(
            "{}.wasm",
            name.strip_prefix("llmgate-plugin-").unwrap_or(&name)
        ))
    });
    std::fs::write(&out, &component).with_context(|| format!("writing {}", out.display()))?;
    println!("{} ({} bytes)", out.display(), component.len());
    Ok(())
}

/// The target directory cargo uses for the crate at `manifest`.
fn cargo_target_dir(cargo: &str, manifest: &std::path::Path) -> anyhow::Result<PathBuf> {
    let output = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--manifest-path",
        ])
        .arg(manifest)
        .output()?;
    if !output.status.success() {
        anyhow::bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    metadata["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .ok_or_else(|| anyhow::anyhow!("cargo metadata names no target directory"))
}
