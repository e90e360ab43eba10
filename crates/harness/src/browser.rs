//! A real browser for the web app's tests: Debian's `chromium`, headless, driven over
//! WebDriver by its `chromedriver` (both started here on free loopback ports and
//! stopped by PID on drop). The calls are blocking, like the rest of the harness, and
//! every wait polls with a deadline. When a test panics, the page's screenshot and
//! HTML are saved under `target/browser/<test>/`.
//!
//! Chromium is kept off the network: every host name but the loopback address resolves
//! to nothing, so a page can fetch only from the app under test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::{free_port, workspace_root};

/// How long a step waits for the page to show what it expects.
const PAGE_SHOWS_WITHIN: Duration = Duration::from_secs(20);

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "chromedriver";

/// A desktop window; [`Browser::resize`] takes others (a phone).
pub const DESKTOP: (u32, u32) = (1280, 900);

/// One browser window with its own profile (so its own cookies: one user).
pub struct Browser {
    runtime: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    base_url: String,
    /// Where a failing test leaves its screenshot and HTML.
    name: String,
    _profile: TempDir,
}

impl Browser {
    /// Opens a headless Chromium for `base_url` (the app, `http://127.0.0.1:<port>`).
    /// `name` names the failure artefacts (the test's name).
    pub fn open(name: &str, base_url: &str) -> Browser {
        let profile = tempfile::tempdir().expect("a temporary directory");
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot start {CHROMEDRIVER} ({err}): install Debian's chromium and \
                     chromium-driver (`cargo xtask setup` does)"
                )
            });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let mut browser = Browser {
            runtime,
            client: None,
            driver,
            base_url: base_url.trim_end_matches('/').to_owned(),
            name: name.to_owned(),
            _profile: profile,
        };
        let capabilities = capabilities(browser._profile.path());
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            let mut builder = ClientBuilder::new(HttpConnector::new());
            builder.capabilities(capabilities.clone());
            match browser.runtime.block_on(builder.connect(&url)) {
                Ok(client) => break client,
                // chromedriver is still starting.
                Err(_) if started.elapsed() < Duration::from_secs(30) => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(err) => panic!("no WebDriver session from {CHROMEDRIVER}: {err}"),
            }
        };
        browser.client = Some(client);
        browser.resize(DESKTOP);
        browser
    }

    fn client(&self) -> &Client {
        self.client
            .as_ref()
            .expect("the session is open until drop")
    }

    /// Opens `path` of the app.
    pub fn goto(&self, path: &str) {
        let url = format!("{}{path}", self.base_url);
        self.runtime
            .block_on(self.client().goto(&url))
            .unwrap_or_else(|err| panic!("opening {url}: {err}"));
    }

    /// The path (and query) the browser shows.
    pub fn path(&self) -> String {
        let url = self
            .runtime
            .block_on(self.client().current_url())
            .expect("the browser has a URL");
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// Waits until the browser shows `path`.
    pub fn wait_for_path(&self, path: &str) {
        self.wait(&format!("the address to be {path}"), || {
            (self.path() == path).then_some(())
        });
    }

    /// The visible text of the whole page.
    pub fn page_text(&self) -> String {
        self.find_now("body")
            .and_then(|body| self.runtime.block_on(body.text()).ok())
            .unwrap_or_default()
    }

    /// Waits until the page's visible text contains `text`.
    pub fn wait_for_text(&self, text: &str) {
        self.wait(&format!("the page to show {text:?}"), || {
            self.page_text().contains(text).then_some(())
        });
    }

    /// Waits until an element matches the CSS `selector`; its visible text.
    pub fn wait_for(&self, selector: &str) -> String {
        self.wait(&format!("an element {selector:?}"), || {
            let element = self.find_now(selector)?;
            self.runtime.block_on(element.text()).ok()
        })
    }

    /// Whether an element matches `selector` now.
    pub fn has(&self, selector: &str) -> bool {
        self.find_now(selector).is_some()
    }

    /// The value of the input `selector`.
    pub fn value(&self, selector: &str) -> String {
        let element = self.find(selector);
        self.runtime
            .block_on(element.prop("value"))
            .expect("an input has a value")
            .unwrap_or_default()
    }

    /// Types `text` into the input `selector`, replacing what it held, as a person
    /// does: select all, delete, type (so the page sees every `input` event, which
    /// WebDriver's "clear" does not send).
    pub fn fill(&self, selector: &str, text: &str) {
        const CONTROL: char = '\u{E009}';
        const RELEASE_MODIFIERS: char = '\u{E000}';
        const BACKSPACE: char = '\u{E003}';
        let element = self.find(selector);
        let keys = format!("{CONTROL}a{RELEASE_MODIFIERS}{BACKSPACE}{text}");
        self.runtime
            .block_on(async {
                element.click().await?;
                element.send_keys(&keys).await
            })
            .unwrap_or_else(|err| panic!("typing into {selector}: {err}"));
    }

    /// Clicks the element `selector`.
    pub fn click(&self, selector: &str) {
        let element = self.find(selector);
        self.runtime
            .block_on(element.click())
            .unwrap_or_else(|err| panic!("clicking {selector}: {err}"));
    }

    /// Clicks the link or button whose visible text is exactly `text`.
    pub fn click_text(&self, text: &str) {
        let xpath =
            format!("//a[normalize-space(.)={text:?}] | //button[normalize-space(.)={text:?}]",);
        let element = self.wait(&format!("a link or button {text:?}"), || {
            self.runtime
                .block_on(self.client().find(Locator::XPath(&xpath)))
                .ok()
        });
        self.runtime
            .block_on(element.click())
            .unwrap_or_else(|err| panic!("clicking {text:?}: {err}"));
    }

    /// Runs `script` in the page; its value.
    pub fn execute(&self, script: &str) -> Value {
        self.runtime
            .block_on(self.client().execute(script, vec![]))
            .unwrap_or_else(|err| panic!("running a script: {err}"))
    }

    /// Sets the window's size (`DESKTOP`, or a phone's `(390, 844)`).
    pub fn resize(&self, (width, height): (u32, u32)) {
        self.runtime
            .block_on(self.client().set_window_size(width, height))
            .unwrap_or_else(|err| panic!("resizing the window: {err}"));
    }

    /// Saves a PNG of the window at `path`.
    pub fn screenshot(&self, path: &Path) {
        let png = self
            .runtime
            .block_on(self.client().screenshot())
            .unwrap_or_else(|err| panic!("taking a screenshot: {err}"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("the screenshot's directory can be made");
        }
        std::fs::write(path, png).expect("the screenshot can be written");
    }

    /// Waits for the element and returns it.
    fn find(&self, selector: &str) -> Element {
        self.wait(&format!("an element {selector:?}"), || {
            self.find_now(selector)
        })
    }

    fn find_now(&self, selector: &str) -> Option<Element> {
        self.runtime
            .block_on(self.client().find(Locator::Css(selector)))
            .ok()
    }

    /// Polls `check` until it gives a value; panics after [`PAGE_SHOWS_WITHIN`].
    fn wait<T>(&self, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + PAGE_SHOWS_WITHIN;
        loop {
            if let Some(value) = check() {
                return value;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {PAGE_SHOWS_WITHIN:?} waiting for {what}; the page at {} \
                     shows:\n{}",
                    self.path(),
                    self.page_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Where a failing test's screenshot and HTML go.
    pub fn failure_dir(&self) -> PathBuf {
        workspace_root().join("target/browser").join(&self.name)
    }

    fn save_failure(&self) {
        let dir = self.failure_dir();
        let _ = std::fs::create_dir_all(&dir);
        let client = self.client();
        if let Ok(png) = self.runtime.block_on(client.screenshot()) {
            let _ = std::fs::write(dir.join("failure.png"), png);
        }
        if let Ok(html) = self.runtime.block_on(client.source()) {
            let _ = std::fs::write(dir.join("failure.html"), html);
        }
        eprintln!("the browser's screenshot and HTML are in {}", dir.display());
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if std::thread::panicking() && self.client.is_some() {
            self.save_failure();
        }
        if let Some(client) = self.client.take() {
            let _ = self.runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(10), client.close()).await
            });
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Headless Chromium, with a fresh profile, that reaches nothing but 127.0.0.1.
fn capabilities(profile: &Path) -> serde_json::Map<String, Value> {
    let args = [
        "--headless=new".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        "--disable-quic".to_owned(),
        "--no-first-run".to_owned(),
        "--no-default-browser-check".to_owned(),
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1".to_owned(),
        format!("--user-data-dir={}", profile.display()),
    ];
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
    });
    match capabilities {
        Value::Object(map) => map,
        _ => unreachable!("a JSON object literal"),
    }
}
