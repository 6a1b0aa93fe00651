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
    let packages = BROWSER_PACKAGES.join(" ");
    let is_root = Cmd::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|uid| uid.trim() == "0");
    if !is_root || cmd::which("apt-get").is_none() {
        bail!(
            "the browser tests need Chromium and ChromeDriver, which are not installed.\n\
             On Debian or Ubuntu: sudo apt-get install {packages}"
        );
    }
    cmd::step(&format!("installing {packages} for the browser tests"));
    Cmd::new("apt-get")
        .args(["update", "-q"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run()?;
    Cmd::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(BROWSER_PACKAGES)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run()
}
