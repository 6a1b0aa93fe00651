//! Running commands so that a person sees what is happening.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

/// Announces a step of a task.
pub fn step(what: &str) {
    eprintln!("\n==> {what}");
}

/// A command to run with inherited output.
pub struct Cmd {
    inner: Command,
    shown: String,
}

impl Cmd {
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        let program = program.as_ref();
        Cmd {
            inner: Command::new(program),
            shown: program.to_string_lossy().into_owned(),
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.shown.push(' ');
        self.shown.push_str(&arg.as_ref().to_string_lossy());
        self.inner.arg(arg);
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Self {
        for a in args {
            self = self.arg(a);
        }
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Self {
        self.inner.env(key, value);
        self
    }

    pub fn dir(mut self, dir: &Path) -> Self {
        self.inner.current_dir(dir);
        self
    }

    /// Runs the command, failing unless it exits successfully.
    pub fn run(mut self) -> anyhow::Result<()> {
        eprintln!("    $ {}", self.shown);
        let status = self
            .inner
            .status()
            .with_context(|| format!("cannot start `{}`", self.shown))?;
        if !status.success() {
            bail!("`{}` failed ({status})", self.shown);
        }
        Ok(())
    }

    /// Runs the command, echoing its standard output line by line as it comes, and
    /// returns that output; fails unless the command exits successfully.
    pub fn run_echoed(mut self) -> anyhow::Result<String> {
        use std::io::{BufRead as _, BufReader, Write as _};
        eprintln!("    $ {}", self.shown);
        let mut child = self
            .inner
            .stdout(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start `{}`", self.shown))?;
        let mut captured = String::new();
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut out = std::io::stdout().lock();
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            writeln!(out, "{line}")?;
            captured.push_str(&line);
            captured.push('\n');
        }
        let status = child.wait()?;
        if !status.success() {
            bail!("`{}` failed ({status})", self.shown);
        }
        Ok(captured)
    }

    /// Runs the command and returns its standard output.
    pub fn output(mut self) -> anyhow::Result<String> {
        let out = self
            .inner
            .output()
            .with_context(|| format!("cannot start `{}`", self.shown))?;
        if !out.status.success() {
            bail!(
                "`{}` failed ({}): {}",
                self.shown,
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// The cargo that runs this xtask, in the workspace's folder.
pub fn cargo(root: &Path) -> Cmd {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    Cmd::new(cargo).dir(root)
}

/// Cargo's target folder: `$CARGO_TARGET_DIR` when set (relative to the workspace),
/// else `target` in the workspace.
pub fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// Finds a program on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}
