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

/// The version of binaryen (from the npm registry) whose `wasm-opt` shrinks the wasm.
/// Debian's binaryen is too old for this wasm; npm's works.
const BINARYEN: &str = "binaryen@132.0.0";
/// The wasm features rustc enables for wasm32-unknown-unknown, which wasm-opt must
/// keep.
const WASM_FEATURES: [&str; 6] = [
    "--enable-bulk-memory",
    "--enable-multivalue",
    "--enable-mutable-globals",
    "--enable-nontrapping-float-to-int",
    "--enable-reference-types",
    "--enable-sign-ext",
];

/// Builds the web app and returns the folder that holds it (`target/web`): the page,
/// and every file it loads under a name that carries its content's hash (so a browser
/// may cache it for good), each with a gzip copy the server sends to browsers that
/// accept it.
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
    let wasm = cmd::target_dir(root)
        .join(WASM_TARGET)
        .join(WASM_PROFILE)
        .join("socklab_web.wasm");
    let stage = cmd::target_dir(root).join("web-stage");
    let out = cmd::target_dir(root).join("web");
    for dir in [&stage, &out] {
        if dir.exists() {
            std::fs::remove_dir_all(dir)
                .with_context(|| format!("cannot clear {}", dir.display()))?;
        }
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }

    cmd::step("generating the JS bindings (wasm-bindgen)");
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&wasm)
        .web(true)?
        // The library, unlike the CLI, leaves out the default path of the .wasm file
        // unless told; without it `init()` fails in the browser.
        .omit_default_module_path(false)
        .typescript(false)
        .generate(&stage)
        .with_context(|| format!("wasm-bindgen failed on {}", wasm.display()))?;

    let bound = stage.join("socklab_web_bg.wasm");
    let raw_size = std::fs::metadata(&bound).map(|m| m.len()).unwrap_or(0);
    let wasm_bytes = optimize(root, &bound)?;

    // Name every file by its content, innermost first: the wasm, then the JS glue that
    // names it, then the boot script that names the glue, then the page.
    let wasm_name = write_hashed(&out, "socklab_web_bg", "wasm", &wasm_bytes)?;
    let glue = read_text(&stage.join("socklab_web.js"))?;
    let glue = replace_once(&glue, "'socklab_web_bg.wasm'", &format!("'{wasm_name}'"))?;
    let glue_name = write_hashed(&out, "socklab_web", "js", glue.as_bytes())?;
    let static_dir = root.join(STATIC_DIR);
    let boot = read_text(&static_dir.join("boot.js"))?;
    let boot = replace_once(&boot, "./socklab_web.js", &format!("./{glue_name}"))?;
    let boot_name = write_hashed(&out, "boot", "js", boot.as_bytes())?;
    let style = std::fs::read(static_dir.join("style.css")).context("web/static/style.css")?;
    let style_name = write_hashed(&out, "style", "css", &style)?;
    let page = read_text(&static_dir.join("index.html"))?;
    let page = replace_once(&page, "\"boot.js\"", &format!("\"{boot_name}\""))?;
    let page = replace_once(&page, "\"style.css\"", &format!("\"{style_name}\""))?;
    std::fs::write(out.join("index.html"), page)?;
    std::fs::copy(static_dir.join("favicon.svg"), out.join("favicon.svg"))
        .context("web/static/favicon.svg")?;
    let mut transfer = 0;
    for name in [
        "index.html",
        &boot_name,
        &glue_name,
        &wasm_name,
        &style_name,
        "favicon.svg",
    ] {
        transfer += gzip_copy(&out.join(name))?;
    }
    eprintln!(
        "    web app ready in {}: {} KiB of wasm ({} KiB before wasm-opt); the page's files are {} KiB gzipped",
        out.display(),
        wasm_bytes.len() / 1024,
        raw_size / 1024,
        transfer / 1024,
    );
    Ok(out)
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// `text` with `from` replaced by `to`, which must occur exactly once.
fn replace_once(text: &str, from: &str, to: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        text.matches(from).count() == 1,
        "expected exactly one {from:?} to rename"
    );
    Ok(text.replacen(from, to, 1))
}

/// Writes `bytes` as `stem-<hash>.ext` in `dir` and returns that name.
fn write_hashed(dir: &Path, stem: &str, ext: &str, bytes: &[u8]) -> anyhow::Result<String> {
    let name = format!("{stem}-{:016x}.{ext}", xxhash_rust::xxh3::xxh3_64(bytes));
    std::fs::write(dir.join(&name), bytes)
        .with_context(|| format!("cannot write {}", dir.join(&name).display()))?;
    Ok(name)
}

/// Writes `path.gz` (best compression) and returns its size.
fn gzip_copy(path: &Path) -> anyhow::Result<u64> {
    use std::io::Write as _;
    let bytes = std::fs::read(path)?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&bytes)?;
    let compressed = gz.finish()?;
    let mut name = path.as_os_str().to_owned();
    name.push(".gz");
    std::fs::write(&name, &compressed)?;
    Ok(compressed.len() as u64)
}

/// The wasm, shrunk by binaryen's `wasm-opt -Oz` when it can be had (npm installs it
/// into `target/tools` once); a result is kept per input, so an unchanged app is not
/// optimized again. Without npm, the wasm is served as rustc made it.
fn optimize(root: &Path, wasm: &Path) -> anyhow::Result<Vec<u8>> {
    let input = std::fs::read(wasm).with_context(|| format!("cannot read {}", wasm.display()))?;
    let tools = cmd::target_dir(root).join("tools");
    let cached = tools.join(format!(
        "opt-cache/{:016x}.wasm",
        xxhash_rust::xxh3::xxh3_64(&input)
    ));
    if let Ok(bytes) = std::fs::read(&cached) {
        return Ok(bytes);
    }
    let wasm_opt = tools.join("node_modules/.bin/wasm-opt");
    if !wasm_opt.is_file() {
        if cmd::which("npm").is_none() {
            eprintln!("    npm not found: serving the wasm without wasm-opt");
            return Ok(input);
        }
        cmd::step(&format!("installing wasm-opt ({BINARYEN}, npm)"));
        std::fs::create_dir_all(&tools)?;
        let installed = Cmd::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--no-save",
                "--prefix",
            ])
            .arg(&tools)
            .arg(BINARYEN)
            .run();
        if let Err(e) = installed {
            eprintln!("    cannot install wasm-opt ({e:#}): serving the wasm without it");
            return Ok(input);
        }
    }
    cmd::step("shrinking the wasm (wasm-opt -Oz)");
    let optimized = tools.join("optimized.wasm");
    Cmd::new(&wasm_opt)
        .arg("-Oz")
        .args(WASM_FEATURES)
        .arg(wasm)
        .arg("-o")
        .arg(&optimized)
        .run()?;
    let bytes = std::fs::read(&optimized)?;
    std::fs::create_dir_all(cached.parent().expect("a cache folder"))?;
    std::fs::write(&cached, &bytes)?;
    Ok(bytes)
}
