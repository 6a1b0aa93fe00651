//! socklab's build glue, run as `cargo xtask <task>`. The logic lives here rather than in
//! shell scripts so that a fresh machine needs nothing but cargo.
//!
//! # Layout
//! - `main.rs`: the task menu.
//! - [`web`]: ensures the wasm32 target and builds the Yew app into `target/web`
//!   (wasm-bindgen runs as a library, so no CLI is installed).
//! - [`setup`]: installs what tests need from the system's package manager (Chromium
//!   and ChromeDriver for the browser tests).
//! - [`cmd`]: running commands with visible progress.

mod cmd;
mod setup;
mod web;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

const HELP: &str = "\
cargo xtask <task> [args]

Tasks:
  run [-- SERVER ARGS]   build the web app and the server, then run socklab
                         (for example: cargo xtask run -- --listen 127.0.0.1:8080)
  test                   check formatting and lints, build everything, run every test,
                         then every benchmark briefly (--smoke) to prove it works
                         (installs Chromium and ChromeDriver when missing and run as root)
  build-web              build only the web app into target/web
  bench [--smoke]        run the benchmarks (release build) and print their figures;
                         --smoke runs each briefly, only to check that it works
";

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let task = args.next().unwrap_or_default();
    let rest: Vec<String> = args.skip_while(|a| a == "--").collect();
    let root = workspace_root();
    match task.as_str() {
        "run" => run(&root, &rest),
        "test" => test(&root),
        "build-web" => web::build(&root).map(|_| ()),
        "bench" => bench(&root, &rest),
        "" | "help" | "-h" | "--help" => {
            print!("{HELP}");
            Ok(())
        }
        other => bail!("unknown task {other:?}\n\n{HELP}"),
    }
}

/// The workspace's top folder (this crate lives in `crates/xtask`).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/xtask is two levels below the workspace root")
        .to_path_buf()
}

fn run(root: &Path, server_args: &[String]) -> anyhow::Result<()> {
    let web_dir = web::build(root)?;
    build_server(root, "building the server")?;
    cmd::step("starting socklab");
    let binary = cmd::target_dir(root).join("release/socklab");
    cmd::Cmd::new(&binary)
        .arg("--web-dir")
        .arg(&web_dir)
        .args(server_args)
        .dir(root)
        .run()
        .context("socklab exited with an error")
}

/// Builds the release `socklab` binary (target/release/socklab).
fn build_server(root: &Path, step: &str) -> anyhow::Result<()> {
    cmd::step(step);
    cmd::cargo(root)
        .args([
            "build",
            "--release",
            "-p",
            "socklab-server",
            "--bin",
            "socklab",
        ])
        .run()
}

fn bench(root: &Path, args: &[String]) -> anyhow::Result<()> {
    // The timeline benchmark drives the real page; the load driver a real server process.
    let web_dir = web::build(root)?;
    build_server(root, "building the server (release) for the load driver")?;
    setup::ensure_browser()?;
    cmd::step("running the benchmarks (cargo bench, release build)");
    cmd::cargo(root)
        .args(["bench", "-p", "socklab-tests", "--"])
        .args(args)
        .env("SOCKLAB_WEB_DIR", &web_dir)
        .env("SOCKLAB_BIN", cmd::target_dir(root).join("release/socklab"))
        .run()
}

fn test(root: &Path) -> anyhow::Result<()> {
    web::ensure_wasm_target()?;
    setup::ensure_browser()?;
    setup::ensure_tshark()?;
    cmd::step("checking formatting (cargo fmt)");
    cmd::cargo(root)
        .args(["fmt", "--all", "--", "--check"])
        .run()?;
    cmd::step("linting native crates (cargo clippy)");
    cmd::cargo(root)
        .args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ])
        .run()?;
    cmd::step("linting the wasm crates (cargo clippy --target wasm32-unknown-unknown)");
    cmd::cargo(root)
        .args([
            "clippy",
            "-p",
            "socklab-web",
            "-p",
            "socklab-protocol",
            "--target",
            web::WASM_TARGET,
            "--",
            "-D",
            "warnings",
        ])
        .run()?;
    let web_dir = web::build(root)?;
    // `--workspace` includes the web app, compiled natively: its model and hex dump are
    // plain Rust and their unit tests run without a browser.
    cmd::step("running every test (cargo test --workspace)");
    let output = cmd::cargo(root)
        .args(["test", "--workspace"])
        .env("SOCKLAB_WEB_DIR", &web_dir)
        .env(
            "SOCKLAB_ARTIFACTS",
            cmd::target_dir(root).join("test-artifacts"),
        )
        .run_echoed()?;
    // The benchmarks run briefly, only to prove they still work; their figures are not
    // judged here.
    bench(root, &["--smoke".to_string()])?;
    let (passed, failed) = count_results(&output);
    println!("\ntests: {passed} passed, {failed} failed");
    Ok(())
}

/// Adds up the `test result:` lines cargo test prints, one per test binary.
fn count_results(output: &str) -> (u64, u64) {
    let mut totals = (0, 0);
    for line in output.lines().filter(|l| l.starts_with("test result:")) {
        let number_before = |word: &str| {
            line.split(';')
                .find(|part| part.trim_end().ends_with(word))
                .and_then(|part| part.split_whitespace().rev().nth(1))
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        };
        totals.0 += number_before("passed");
        totals.1 += number_before("failed");
    }
    totals
}

#[cfg(test)]
mod tests {
    use super::count_results;

    #[test]
    fn adds_up_every_test_binary() {
        let output = "running 3 tests\n\
            test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s\n\
            test result: FAILED. 7 passed; 2 failed; 1 ignored; 0 measured; 0 filtered out; finished in 1s\n\
            test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n";
        assert_eq!(count_results(output), (10, 2));
        assert_eq!(count_results(""), (0, 0));
    }
}
