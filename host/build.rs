//! Builds the built-in plugins (`plugins/<name>`, all but `sdk`) as
//! WebAssembly components and generates the table that embeds them in the
//! `llmgate` binary, so a plain `cargo build` gives a complete gateway.
//!
//! How: `src/plugin_build.rs`, shared with `llmgate plugin build`.
//!
//! The plugins get their own target dir so the nested cargo never waits on
//! the outer build's lock, and it is shared by debug and release host builds.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

#[path = "src/plugin_build.rs"]
#[allow(dead_code)]
mod plugin_build;

use plugin_build::WASM_TARGET;

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    println!("cargo:rerun-if-changed={}", root.join("plugins").display());
    println!("cargo:rerun-if-env-changed=LLMGATE_WASM_TOOLCHAIN");
    println!("cargo:rerun-if-changed=src/plugin_build.rs");

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
        let component = plugin_build::componentize(&module)
            .unwrap_or_else(|e| panic!("turning plugin `{name}` into a component: {e}"));
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

fn compile_plugins(root: &Path, target_dir: &Path, plugins: &[String]) {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let toolchain = plugin_build::pick_toolchain(&rustc).unwrap_or_else(|e| panic!("\n\n{e}\n\n"));
    let mut cmd = plugin_build::cargo_build(&cargo, toolchain);
    cmd.current_dir(root)
        .args(["--profile", "wasm-plugin"])
        .arg("--target-dir")
        .arg(target_dir);
    for name in plugins {
        cmd.args(["-p", &format!("llmgate-plugin-{name}")]);
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("running cargo for the wasm plugins: {e}"));
    if !status.success() {
        panic!("building the wasm plugins failed ({status}); see the cargo output above");
    }
}
