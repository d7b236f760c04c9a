//! Builds the built-in plugins (`plugins/<name>`, all but `sdk`) as
//! WebAssembly components and generates the table that embeds them in the
//! `llmgate` binary, so a plain `cargo build` gives a complete gateway.
//!
//! Toolchain, in order of preference:
//! 1. the compiling toolchain's own `wasm32-unknown-unknown` target (what
//!    `rustup target add wasm32-unknown-unknown` installs);
//! 2. Debian's `rustc-web` + `rust-web-src` (`/usr/bin/rustc`), building std
//!    from source with `-Zbuild-std` (for machines where rustup cannot
//!    download targets; see README "Building").
//!
//! The plugins get their own target dir so the nested cargo never waits on
//! the outer build's lock, and it is shared by debug and release host builds.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const WASM_TARGET: &str = "wasm32-unknown-unknown";
const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
const DEBIAN_STD_SRC: &str = "/usr/lib/rustlib/src/rust/library";

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    println!("cargo:rerun-if-changed={}", root.join("plugins").display());
    println!("cargo:rerun-if-env-changed=LLMGATE_WASM_TOOLCHAIN");

    let plugins = builtin_plugin_names(&root.join("plugins"));
    let target_dir = plugin_target_dir(&out_dir);
    compile_plugins(&root, &target_dir, &plugins);

    let mut table = String::from(
        "/// Built-in plugin components: (name, component bytes).\n\
         pub const BUILTIN_PLUGINS: &[(&str, &[u8])] = &[\n",
    );
    for name in &plugins {
        let module_path = target_dir
            .join(WASM_TARGET)
            .join("wasm-plugin")
            .join(format!("llmgate_plugin_{}.wasm", name.replace('-', "_")));
        let module = fs::read(&module_path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", module_path.display()));
        let component = wit_component::ComponentEncoder::default()
            .module(&module)
            .and_then(|encoder| encoder.validate(true).encode())
            .unwrap_or_else(|e| panic!("turning plugin `{name}` into a component: {e:#}"));
        let component_path = out_dir.join(format!("{name}.wasm"));
        fs::write(&component_path, component).unwrap();
        table.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            component_path.display().to_string()
        ));
    }
    table.push_str("];\n");
    fs::write(out_dir.join("builtin_plugins.rs"), table).unwrap();
}

/// Every directory under `plugins/` with a Cargo.toml, except the SDK.
fn builtin_plugin_names(plugins_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(plugins_dir)
        .expect("plugins/ directory")
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().join("Cargo.toml").is_file())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name != "sdk")
        .collect();
    names.sort();
    names
}

/// `<target>/wasm-plugins`, next to the outer build's profile directories.
fn plugin_target_dir(out_dir: &Path) -> PathBuf {
    // OUT_DIR is <target>/[<triple>/]<profile>/build/<pkg>-<hash>/out.
    let build_dir = out_dir
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "build"))
        .expect("OUT_DIR lies under a build/ directory");
    build_dir
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("wasm-plugins")
}

enum Toolchain {
    /// The compiling toolchain has the wasm target installed.
    Installed,
    /// Debian's rustc with std built from source.
    Debian,
}

fn pick_toolchain() -> Toolchain {
    match env::var("LLMGATE_WASM_TOOLCHAIN").as_deref() {
        Ok("installed") => return Toolchain::Installed,
        Ok("debian") => return Toolchain::Debian,
        _ => {}
    }
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
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
        return Toolchain::Installed;
    }
    if Path::new(DEBIAN_RUSTC).is_file() && Path::new(DEBIAN_STD_SRC).is_dir() {
        return Toolchain::Debian;
    }
    panic!(
        "\n\nllmgate embeds its plugins as WebAssembly components, and no way to build them was found.\n\
         Either install the target:   rustup target add {WASM_TARGET}\n\
         or, where rustup cannot download (Debian 12 with bookworm-backports or newer):\n\
         \x20   apt-get install -y rustc-web cargo-web rust-web-src lld\n\
         (.ci/run and scripts/setup do this for you.)\n\n"
    );
}

fn compile_plugins(root: &Path, target_dir: &Path, plugins: &[String]) {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--profile", "wasm-plugin", "--target", WASM_TARGET])
        .arg("--target-dir")
        .arg(target_dir);
    for name in plugins {
        cmd.args(["-p", &format!("llmgate-plugin-{name}")]);
    }
    // The outer build's settings are for the host target, not for wasm.
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
    match pick_toolchain() {
        Toolchain::Installed => {}
        Toolchain::Debian => {
            cmd.env("RUSTC", DEBIAN_RUSTC)
                .env("RUSTDOC", "/usr/bin/rustdoc")
                // Lets the stable toolchain accept -Zbuild-std.
                .env("RUSTC_BOOTSTRAP", "1")
                .arg("-Zbuild-std=std,panic_abort");
        }
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("running cargo for the wasm plugins: {e}"));
    if !status.success() {
        panic!("building the wasm plugins failed ({status}); see the cargo output above");
    }
}
