//! Installs what the tests need from the system's package manager.

use anyhow::bail;

use crate::cmd::{self, Cmd};

/// The Debian packages the browser tests drive.
const BROWSER_PACKAGES: [&str; 2] = ["chromium", "chromium-driver"];

/// Makes sure Chromium and ChromeDriver are installed: installs them with apt-get when
/// run as root, and otherwise stops with the command a person should run.
pub fn ensure_browser() -> anyhow::Result<()> {
    if cmd::which("chromium").is_some() && cmd::which("chromedriver").is_some() {
        return Ok(());
    }
    install(
        &BROWSER_PACKAGES,
        "the browser tests need Chromium and ChromeDriver",
    )
}

/// Makes sure tshark is installed (the capture tests read every exported file with
/// it), without making dumpcap setuid (the question its package asks).
pub fn ensure_tshark() -> anyhow::Result<()> {
    if cmd::which("tshark").is_some() {
        return Ok(());
    }
    if is_root() && cmd::which("debconf-set-selections").is_some() {
        Cmd::new("sh")
            .args([
                "-c",
                "echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections",
            ])
            .run()?;
    }
    install(
        &["tshark"],
        "the capture tests read exported files with tshark",
    )
}

fn is_root() -> bool {
    Cmd::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|uid| uid.trim() == "0")
}

/// Installs `packages` with apt-get when run as root; otherwise stops with the command
/// a person should run, saying `why` they are needed.
fn install(packages: &[&str], why: &str) -> anyhow::Result<()> {
    let list = packages.join(" ");
    if !is_root() || cmd::which("apt-get").is_none() {
        bail!("{why}, which is not installed.\nOn Debian or Ubuntu: sudo apt-get install {list}");
    }
    cmd::step(&format!("installing {list}: {why}"));
    Cmd::new("apt-get")
        .args(["update", "-q"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run()?;
    Cmd::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run()
}
