//! Re-running one test inside a Linux namespace, so that what it does cannot leave the
//! machine (a network namespace with only its own loopback) or runs without privileges
//! (a user namespace, where "root" has no power over the real network stack).
//!
//! A test calls [`rerun`] first: outside, it re-executes the same test binary for just
//! that test inside the namespace and reports the result; inside, it returns `false`
//! and the test does its real work.

use std::process::Command;

/// Set in the environment of the re-executed test.
const INSIDE: &str = "SOCKLAB_TEST_INSIDE";

/// Where a test should run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// A new user and network namespace (`unshare -rn`) whose only interface is its
    /// own loopback: no packet can reach any other machine.
    Network,
    /// A new user namespace only (`unshare -r`): same network, but the process has no
    /// privileges over it, as an ordinary user would.
    Unprivileged,
    /// As [`Isolation::Network`], in a mount namespace of its own too, where
    /// `/run/netns` is a fresh directory: the test may add further network namespaces
    /// (`ip netns add`) joined to its own by virtual links, a network of its own that
    /// nothing outside can reach.
    Networks,
}

/// Outside the namespace: runs `test` (its full path, as `cargo test` names it) again
/// inside it, asserts it passed, and returns `true` (the caller returns at once).
/// Inside: returns `false`.
pub fn rerun(isolation: Isolation, test: &str) -> bool {
    if std::env::var_os(INSIDE).is_some() {
        if matches!(isolation, Isolation::Network | Isolation::Networks) {
            assert_only_loopback();
        }
        return false;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let script = match isolation {
        Isolation::Network => r#"ip link set lo up && exec "$0" "$@""#,
        Isolation::Networks => {
            r#"ip link set lo up && mkdir -p /run/netns && mount -t tmpfs tmpfs /run/netns && exec "$0" "$@""#
        }
        Isolation::Unprivileged => r#"exec "$0" "$@""#,
    };
    let unshare_flags = match isolation {
        Isolation::Network => "-rn",
        Isolation::Networks => "-rnm",
        Isolation::Unprivileged => "-r",
    };
    let output = Command::new("unshare")
        .args([unshare_flags, "sh", "-c", script])
        .arg(&exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(INSIDE, "1")
        .output()
        .expect("unshare (util-linux) runs; namespaced tests need it");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{test} failed inside its namespace ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("1 passed"),
        "{test} did not run inside its namespace:\n{stdout}\n{stderr}"
    );
    true
}

/// Checks that this process sees no network interface but loopback.
fn assert_only_loopback() {
    let links = Command::new("ip")
        .args(["-o", "link"])
        .output()
        .expect("ip (iproute2) runs");
    let links = String::from_utf8_lossy(&links.stdout);
    let names: Vec<&str> = links
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(str::trim)
        .collect();
    assert_eq!(names, ["lo"], "a network namespace with loopback only");
}
