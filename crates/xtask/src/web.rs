//! Builds the Yew app into a folder the server can serve.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::cmd::{self, Cmd};

/// The target the web app compiles to.
pub const WASM_TARGET: &str = "wasm32-unknown-unknown";
/// The cargo profile for the web app (small wasm; see the workspace Cargo.toml).
const WASM_PROFILE: &str = "wasm-release";
/// Files copied as they are from `web/static` into the output folder.
const STATIC_DIR: &str = "web/static";

/// Makes sure the wasm32 target is installed (rustup adds it if missing).
pub fn ensure_wasm_target() -> anyhow::Result<()> {
    let installed = Cmd::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .unwrap_or_default();
    if installed.lines().any(|l| l.trim() == WASM_TARGET) {
        return Ok(());
    }
    cmd::step(&format!("adding the {WASM_TARGET} target (rustup)"));
    Cmd::new("rustup")
        .args(["target", "add", WASM_TARGET])
        .run()
        .context("the web app needs the wasm32 target; install rustup or add the target by hand")
}

/// Builds the web app and returns the folder that holds it (`target/web`).
pub fn build(root: &Path) -> anyhow::Result<PathBuf> {
    ensure_wasm_target()?;
    cmd::step("building the web app (Yew → wasm32)");
    cmd::cargo(root)
        .args([
            "build",
            "-p",
            "socklab-web",
            "--lib",
            "--target",
            WASM_TARGET,
            "--profile",
            WASM_PROFILE,
        ])
        .run()?;
    let wasm = root
        .join("target")
        .join(WASM_TARGET)
        .join(WASM_PROFILE)
        .join("socklab_web.wasm");
    let out = root.join("target/web");
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;

    cmd::step("generating the JS bindings (wasm-bindgen)");
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&wasm)
        .web(true)?
        // The library, unlike the CLI, leaves out the default path of the .wasm file
        // unless told; without it `init()` fails in the browser.
        .omit_default_module_path(false)
        .typescript(false)
        .generate(&out)
        .with_context(|| format!("wasm-bindgen failed on {}", wasm.display()))?;

    let static_dir = root.join(STATIC_DIR);
    for entry in std::fs::read_dir(&static_dir)
        .with_context(|| format!("cannot read {}", static_dir.display()))?
    {
        let path = entry?.path();
        if path.is_file() {
            let name = path.file_name().expect("a file has a name");
            std::fs::copy(&path, out.join(name))
                .with_context(|| format!("cannot copy {}", path.display()))?;
        }
    }
    let size = std::fs::metadata(out.join("socklab_web_bg.wasm"))
        .map(|m| m.len())
        .unwrap_or(0);
    eprintln!(
        "    web app ready in {} ({} KiB of wasm)",
        out.display(),
        size / 1024
    );
    Ok(out)
}
