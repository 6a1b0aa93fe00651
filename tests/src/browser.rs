//! A real headless Chromium driven through ChromeDriver (WebDriver), cleaned up even
//! when the test fails.

use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

use crate::WAIT;

/// How often a wait re-checks the page.
const POLL: Duration = Duration::from_millis(50);

/// The Chromium flags that make it run headless as root on a machine with no network
/// but loopback, without reaching out to anything.
const CHROMIUM_FLAGS: [&str; 11] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,800",
    "--hide-scrollbars",
];

/// How many browsers the tests of one process run at once. Each Chromium takes most
/// of a core while a page loads; with every browser test of a binary at once on two
/// cores, pages took longer than the tests' deadlines.
const AT_ONCE: usize = 3;
static BROWSERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(AT_ONCE);

/// ChromeDriver and its Chromium. Call [`Browser::close`] at the end; dropping it
/// without closing still kills both.
pub struct Browser {
    client: Option<Client>,
    driver: Child,
    profile: PathBuf,
    /// This browser's place among the [`AT_ONCE`], given back when it shuts down (a
    /// test may keep the shut browser itself).
    turn: std::sync::Mutex<Option<tokio::sync::SemaphorePermit<'static>>>,
}

fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// How many times a WebDriver session is asked for before a test gives up.
const SESSION_TRIES: u32 = 3;

impl Browser {
    /// Starts ChromeDriver on a free port and opens a headless Chromium session.
    pub async fn start() -> Self {
        let missing = "browser tests need Debian's `chromium` and `chromium-driver` packages \
                       (`cargo xtask test` installs them when run as root; otherwise: sudo apt-get install chromium chromium-driver)";
        let chromedriver = find("chromedriver").expect(missing);
        let chromium = find("chromium").expect(missing);
        let turn = BROWSERS
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let profile =
            std::env::temp_dir().join(format!("socklab-chromium-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&profile).expect("a profile folder");
        // Its own process group, so that cleanup can end Chromium with it.
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
        let mut browser = Browser {
            client: None,
            driver,
            profile,
            turn: std::sync::Mutex::new(Some(turn)),
        };
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not start listening"
            );
            tokio::time::sleep(POLL).await;
        }
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", browser.profile.display()));
        let capabilities = serde_json::json!({
            "goog:chromeOptions": { "binary": chromium, "args": args }
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object")
        };
        // ChromeDriver can accept connections a moment before it serves them (on a busy
        // machine the first request is sometimes reset): a few tries, then give up.
        let mut tries = 0;
        let client = loop {
            tries += 1;
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(client) => break client,
                Err(e) if tries < SESSION_TRIES => {
                    eprintln!("WebDriver session, try {tries}: {e}; trying again");
                    tokio::time::sleep(POLL * 5).await;
                }
                Err(e) => panic!("a WebDriver session with headless Chromium: {e:?}"),
            }
        };
        browser.client = Some(client);
        browser
    }

    /// The WebDriver client.
    pub fn client(&self) -> &Client {
        self.client
            .as_ref()
            .expect("the session is open until close")
    }

    /// Ends the WebDriver session, then ChromeDriver and Chromium.
    pub async fn close(self) {
        self.shutdown().await;
    }

    /// Like [`Browser::close`], for a browser that is borrowed: ends the WebDriver
    /// session and kills ChromeDriver and Chromium. The browser is unusable afterwards.
    pub async fn shutdown(&self) {
        if let Some(client) = &self.client {
            let _ = client.clone().close().await;
        }
        self.kill();
        self.turn.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    fn kill(&self) {
        // ChromeDriver leads its own process group, which Chromium joined: end them all.
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = std::fs::remove_dir_all(&self.profile);
    }

    /// Opens the page at `url` and waits until it is connected to its server.
    pub async fn open(&self, url: &str) {
        self.client().goto(url).await.expect("the page loads");
        self.wait_text("#conn-status", |t| t == "connected").await;
    }

    /// Waits until the element matching `css` exists and its text satisfies `check`;
    /// returns the text.
    pub async fn wait_text(&self, css: &str, check: impl Fn(&str) -> bool) -> String {
        self.wait_text_for(css, check, WAIT).await
    }

    /// [`Browser::wait_text`] with a deadline of its own (for long runs).
    pub async fn wait_text_for(
        &self,
        css: &str,
        check: impl Fn(&str) -> bool,
        wait: std::time::Duration,
    ) -> String {
        let deadline = Instant::now() + wait;
        let mut last = String::new();
        loop {
            if let Ok(element) = self.client().find(Locator::Css(css)).await
                && let Ok(text) = element.text().await
            {
                if check(&text) {
                    return text;
                }
                last = text;
            }
            assert!(
                Instant::now() < deadline,
                "{css} never showed the expected text; last seen: {last:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the element matching `css` has attribute `name` satisfying `check`.
    pub async fn wait_attr(&self, css: &str, name: &str, check: impl Fn(&str) -> bool) -> String {
        self.wait_attr_for(css, name, check, WAIT).await
    }

    /// [`Browser::wait_attr`] with a deadline of its own (for long runs).
    pub async fn wait_attr_for(
        &self,
        css: &str,
        name: &str,
        check: impl Fn(&str) -> bool,
        wait: std::time::Duration,
    ) -> String {
        let deadline = Instant::now() + wait;
        let mut last = None;
        loop {
            if let Ok(element) = self.client().find(Locator::Css(css)).await
                && let Ok(Some(value)) = element.attr(name).await
            {
                if check(&value) {
                    return value;
                }
                last = Some(value);
            }
            assert!(
                Instant::now() < deadline,
                "{css} never had the expected {name}; last seen: {last:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until exactly `n` elements match `css`.
    pub async fn wait_count(&self, css: &str, n: usize) -> Vec<fantoccini::elements::Element> {
        let deadline = Instant::now() + WAIT;
        loop {
            let found = self
                .client()
                .find_all(Locator::Css(css))
                .await
                .unwrap_or_default();
            if found.len() == n {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} elements matching {css}, found {}",
                found.len()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Replaces the value of the field matching `css` with `text` and tells the page,
    /// as typing and leaving the field would (`input`, then `change`). Done in one step
    /// so that a re-render of the page in between cannot mix old and new text.
    pub async fn fill(&self, css: &str, text: &str) {
        let script = "const el = document.querySelector(arguments[0]);
            el.value = arguments[1];
            el.dispatchEvent(new Event('input', { bubbles: true }));
            el.dispatchEvent(new Event('change', { bubbles: true }));";
        self.client()
            .execute(script, vec![css.into(), text.into()])
            .await
            .unwrap_or_else(|e| panic!("fill {css}: {e}"));
    }

    /// Scrolls the first element matching `css` to the middle of its scroll area, so a
    /// click reaches it rather than a sticky header.
    pub async fn scroll_to(&self, css: &str) {
        let script = "document.querySelector(arguments[0]).scrollIntoView({block: 'center'})";
        self.client()
            .execute(script, vec![serde_json::Value::String(css.into())])
            .await
            .unwrap_or_else(|e| panic!("scroll to {css}: {e}"));
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) {
        self.client()
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Types `keys` into the element matching `css` as a person at the keyboard would
    /// (WebDriver's key codes: `\u{E007}` is Enter).
    pub async fn press(&self, css: &str, keys: &str) {
        self.client()
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .send_keys(keys)
            .await
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Saves a screenshot of the page as `name` in the artifacts folder; returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client().screenshot().await.expect("a screenshot");
        let path = crate::artifacts_dir().join(name);
        std::fs::write(&path, png).expect("write the screenshot");
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.kill();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
