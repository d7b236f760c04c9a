//! Building a plugin crate into a WebAssembly component: used by
//! `host/build.rs` for the built-in plugins and by `llmgate plugin build`
//! for anyone else's. Plain std plus `wit-component`, so both can include it.
//!
//! Toolchain, in order of preference:
//! 1. the toolchain's own `wasm32-unknown-unknown` target (what
//!    `rustup target add wasm32-unknown-unknown` installs);
//! 2. Debian's `rustc-web` + `rust-web-src` (`/usr/bin/rustc`), building std
//!    from source with `-Zbuild-std`, for machines where rustup cannot
//!    download targets.
//!
//! `LLMGATE_WASM_TOOLCHAIN=installed|debian` forces one.

use std::path::Path;
use std::process::Command;

/// The target plugins are compiled for; `wit-component` makes the result a
/// component.
pub const WASM_TARGET: &str = "wasm32-unknown-unknown";
const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
const DEBIAN_STD_SRC: &str = "/usr/lib/rustlib/src/rust/library";

/// How wasm code gets compiled here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toolchain {
    /// The compiling toolchain has the wasm target installed.
    Installed,
    /// Debian's rustc with std built from source.
    Debian,
}

/// Picks the toolchain; `rustc` is the compiler to ask for its sysroot.
pub fn pick_toolchain(rustc: &str) -> Result<Toolchain, String> {
    match std::env::var("LLMGATE_WASM_TOOLCHAIN").as_deref() {
        Ok("installed") => return Ok(Toolchain::Installed),
        Ok("debian") => return Ok(Toolchain::Debian),
        _ => {}
    }
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if let Some(sysroot) = sysroot
        && Path::new(&sysroot)
            .join("lib/rustlib")
            .join(WASM_TARGET)
            .is_dir()
    {
        return Ok(Toolchain::Installed);
    }
    if Path::new(DEBIAN_RUSTC).is_file() && Path::new(DEBIAN_STD_SRC).is_dir() {
        return Ok(Toolchain::Debian);
    }
    Err(format!(
        "llmgate plugins are WebAssembly components, and no way to build them was found.\n\
         Either install the target:   rustup target add {WASM_TARGET}\n\
         or, where rustup cannot download (Debian 12 with bookworm-backports or newer):\n\
         \x20   apt-get install -y rustc-web cargo-web rust-web-src lld\n\
         (.ci/run and scripts/setup do this for you.)"
    ))
}

/// `cargo build --target wasm32-unknown-unknown` for `toolchain`, with the
/// calling build's host-only settings removed. Callers add the packages,
/// profile and target dir.
pub fn cargo_build(cargo: &str, toolchain: Toolchain) -> Command {
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--target", WASM_TARGET]);
    // An outer build's settings are for the host target, not for wasm.
    for var in [
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_LLVM_COV",
        "LLVM_PROFILE_FILE",
    ] {
        cmd.env_remove(var);
    }
    if toolchain == Toolchain::Debian {
        cmd.env("RUSTC", DEBIAN_RUSTC)
            .env("RUSTDOC", "/usr/bin/rustdoc")
            // Lets the stable toolchain accept -Zbuild-std.
            .env("RUSTC_BOOTSTRAP", "1")
            .arg("-Zbuild-std=std,panic_abort");
    }
    cmd
}

/// Wraps a core wasm module built with `wit-bindgen` (which embeds its WIT
/// world) into a component.
pub fn componentize(module: &[u8]) -> Result<Vec<u8>, String> {
    wit_component::ComponentEncoder::default()
        .module(module)
        .and_then(|encoder| encoder.validate(true).encode())
        .map_err(|e| format!("{e:#}"))
}
