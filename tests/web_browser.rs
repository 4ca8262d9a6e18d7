//! The web page in a real browser: Debian's headless Chromium driven through its
//! chromedriver (WebDriver, started here on an OS-chosen loopback port) by fantoccini.
//!
//! Scenario: the overview of the demo daemon, a link to an environment, a link to a drift;
//! the side-by-side diff and the patch are visible and the copy button works; the
//! Acknowledge form changes the drift's state. Screenshots go to the test's temp dir (and,
//! when `ENVDRIFT_SCREENSHOTS` names a directory, there too: that is how the images in docs/
//! are made). Chromium runs with the background-networking features off and a host
//! resolver that resolves nothing but 127.0.0.1, so no request leaves the machine.

#[path = "common/api.rs"]
mod common_api;
#[path = "common/web.rs"]
mod common_web;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::actions::{InputSource as _, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a loopback port of the OS's choosing; killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_driver() -> Driver {
    for bin in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(bin).exists(),
            "{bin} is missing: apt-get install chromium chromium-driver (.ci/run does)"
        );
    }
    let mut child = Command::new(CHROMEDRIVER)
        .args(["--port=0", "--allowed-ips=127.0.0.1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting chromedriver");
    let out = child.stdout.take().expect("chromedriver's stdout");
    // It says which port it took ("… started successfully on port 36855."); then it is ready.
    let mut port = None;
    for line in BufReader::new(out).lines() {
        let Ok(line) = line else { break };
        if let Some(rest) = line.split("started successfully on port ").nth(1) {
            port = rest.trim_end_matches('.').trim().parse().ok();
            break;
        }
    }
    let port = port.expect("chromedriver did not say its port");
    Driver { child, port }
}

fn save(dir: &Path, name: &str, png: &[u8]) -> PathBuf {
    assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    let p = dir.join(name);
    std::fs::write(&p, png).unwrap();
    // The two images of docs/ (web.md, the README).
    let for_docs = name == "web-overview.png" || name == "web-drift.png";
    if let Ok(out) = std::env::var("ENVDRIFT_SCREENSHOTS")
        && for_docs
    {
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(Path::new(&out).join(name), png).unwrap();
    }
    p
}

/// What the accessibility pass finds wrong on the page in the browser: a form control
/// without a label (`<label for>`, a wrapping label, `aria-label` or `aria-labelledby`), a
/// button without a name, an image without `alt`, an SVG without a `<title>` or
/// `aria-label` (unless `aria-hidden`).
const A11Y: &str = r#"
const problems = [];
const named = (el) => (el.getAttribute('aria-label') || '').trim() !== '' ||
  (el.getAttribute('aria-labelledby') || '').split(/\s+/).some((id) => id && document.getElementById(id));
for (const el of document.querySelectorAll('input, select, textarea')) {
  const type = (el.getAttribute('type') || '').toLowerCase();
  if (['hidden', 'submit', 'button', 'reset'].includes(type)) continue;
  if ((el.labels && el.labels.length > 0) || named(el)) continue;
  problems.push('unlabelled ' + el.tagName.toLowerCase() + ' ' + (el.name || el.id || el.outerHTML.slice(0, 80)));
}
for (const el of document.querySelectorAll('button, input[type=submit]')) {
  const text = (el.textContent || el.value || '').trim();
  if (text === '' && !named(el)) problems.push('button without a name: ' + el.outerHTML.slice(0, 80));
}
for (const el of document.querySelectorAll('img')) {
  if (!el.hasAttribute('alt')) problems.push('img without alt: ' + el.outerHTML.slice(0, 80));
}
for (const el of document.querySelectorAll('svg')) {
  if (el.closest('[aria-hidden=true]')) continue;
  const title = el.querySelector(':scope > title');
  if ((title && title.textContent.trim() !== '') || named(el)) continue;
  problems.push('svg without a title: ' + (el.getAttribute('class') || el.outerHTML.slice(0, 80)));
}
return problems;
"#;

/// The accessibility pass on the current page ([`A11Y`]), then keyboard focus: Tab moves
/// focus to an element whose outline is visible (the `:focus-visible` style applies).
async fn check_accessible(c: &Client, page: &str) {
    let found = c.execute(A11Y, Vec::new()).await.unwrap();
    let problems: Vec<String> = serde_json::from_value(found).unwrap();
    assert!(problems.is_empty(), "{page}: {problems:#?}");
    let tab = KeyActions::new("keyboard".into())
        .then(KeyAction::Down {
            value: Key::Tab.into(),
        })
        .then(KeyAction::Up {
            value: Key::Tab.into(),
        });
    c.perform_actions(tab).await.unwrap();
    let focus = c
        .execute(
            "const el = document.activeElement; const s = getComputedStyle(el); \
             return {tag: el.tagName, visible: el.matches(':focus-visible'), \
             outline: s.outlineStyle, width: parseFloat(s.outlineWidth) || 0};",
            Vec::new(),
        )
        .await
        .unwrap();
    assert_ne!(focus["tag"], "BODY", "{page}: Tab focused nothing: {focus}");
    assert_eq!(focus["visible"], true, "{page}: {focus}");
    assert!(
        focus["outline"] != "none" && focus["width"].as_f64().unwrap_or(0.0) >= 2.0,
        "{page}: the focused element shows no outline: {focus}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overview_to_drift_to_acknowledged_in_chromium() {
    let srv = common_web::start("").await;
    let driver = start_driver();
    let profile = tempfile::tempdir().unwrap();
    let shots = tempfile::tempdir().unwrap();
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--no-proxy-server",
                // Nothing but 127.0.0.1 resolves: no request can leave the machine.
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--window-size=1280,900",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        },
    });
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .build();
    let c = ClientBuilder::new(connector)
        .capabilities(caps.as_object().unwrap().clone())
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a Chromium session");
    let base = format!("http://{}", srv.addr);
    let wait = Duration::from_secs(20);

    // The overview: every target with its state.
    c.goto(&format!("{base}/")).await.unwrap();
    let h1 = c.find(Locator::Css("h1")).await.unwrap();
    assert_eq!(h1.text().await.unwrap(), "Overview");
    let rows = c
        .find_all(Locator::Css("table.targets tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    assert!(
        c.find(Locator::Css("svg.sparkline"))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap()
    );
    save(
        shots.path(),
        "web-overview.png",
        &c.screenshot().await.unwrap(),
    );
    check_accessible(&c, "/").await;

    // A link to production, then to its first drift.
    c.find(Locator::Css("a[href='/environments/production']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .at_most(wait)
        .for_element(Locator::Css("table.drifts"))
        .await
        .unwrap();
    check_accessible(&c, "/environments/production").await;
    let link = c
        .find(Locator::Css("table.drifts tbody td a[href^='/drifts/']"))
        .await
        .unwrap();
    let href = link.attr("href").await.unwrap().unwrap();
    link.click().await.unwrap();
    c.wait()
        .at_most(wait)
        .for_element(Locator::Css("#diff"))
        .await
        .unwrap();
    assert!(c.current_url().await.unwrap().path().ends_with(&href));
    check_accessible(&c, &href).await;

    // Side by side: both sides of a change are displayed, next to each other.
    let desired = c.find(Locator::Css(".change .side.desired")).await.unwrap();
    let live = c.find(Locator::Css(".change .side.live")).await.unwrap();
    assert!(desired.is_displayed().await.unwrap() && live.is_displayed().await.unwrap());
    let (dx, dy, dw, _) = desired.rectangle().await.unwrap();
    let (lx, ly, _, _) = live.rectangle().await.unwrap();
    assert!(
        lx >= dx + dw - 1.0 && (ly - dy).abs() < 1.0,
        "not side by side"
    );
    let pointer = c.find(Locator::Css(".change code.pointer")).await.unwrap();
    assert!(pointer.text().await.unwrap().starts_with('/'));
    // Tall enough for the fix, the forms and the history.
    c.set_window_size(1280, 1900).await.unwrap();
    save(
        shots.path(),
        "web-drift.png",
        &c.screenshot().await.unwrap(),
    );

    // The fix, and its copy button (shown by the script).
    let fix = c
        .find(Locator::Css("pre#fix-patch, pre#fix-kubectl"))
        .await
        .unwrap();
    assert!(fix.is_displayed().await.unwrap());
    assert!(!fix.text().await.unwrap().is_empty());
    let copy = c.find(Locator::Css("button.copy")).await.unwrap();
    assert!(copy.is_displayed().await.unwrap(), "copy.js did not run");
    copy.click().await.unwrap();
    // It says "Copied", or "Selected: press Ctrl+C" where the clipboard is not allowed.
    let copied = c
        .wait()
        .at_most(wait)
        .for_element(Locator::XPath(
            "//button[contains(@class,'copy')][text()!='Copy']",
        ))
        .await;
    assert!(copied.is_ok(), "the copy button did not react");

    // Acknowledge through the form; the page and the store say so.
    let status = c.find(Locator::Id("drift-status")).await.unwrap();
    assert!(!status.text().await.unwrap().contains("acknowledged"));
    c.find(Locator::Id("ack-note"))
        .await
        .unwrap()
        .send_keys("looking into it")
        .await
        .unwrap();
    c.find(Locator::Id("ack-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let flash = c
        .wait()
        .at_most(wait)
        .for_element(Locator::Css("p.flash"))
        .await
        .unwrap();
    assert_eq!(flash.text().await.unwrap(), "Acknowledged.");
    let status = c.find(Locator::Id("drift-status")).await.unwrap();
    assert!(
        status
            .text()
            .await
            .unwrap()
            .contains("acknowledged by loopback: looking into it"),
        "{}",
        status.text().await.unwrap()
    );
    let history = c.find(Locator::Id("history")).await.unwrap();
    assert!(history.text().await.unwrap().contains("acknowledged"));
    let id: i64 = href.trim_start_matches("/drifts/").parse().unwrap();
    let (d, _) = srv.daemon.store.drift(id).unwrap();
    assert_eq!(d.acked_by.as_deref(), Some("loopback: looking into it"));
    save(
        shots.path(),
        "web-drift-acknowledged.png",
        &c.screenshot().await.unwrap(),
    );
    // The other pages pass the accessibility check too.
    for page in ["/trends", "/comparisons/staging-vs-production"] {
        c.goto(&format!("{base}{page}")).await.unwrap();
        check_accessible(&c, page).await;
    }
    // The pass finds what it looks for (a page made to fail it).
    c.goto("data:text/html,<input name=q><button></button><img src=x><svg></svg><label>ok <select name=s></select></label>")
        .await
        .unwrap();
    let found: Vec<String> =
        serde_json::from_value(c.execute(A11Y, Vec::new()).await.unwrap()).unwrap();
    assert_eq!(found.len(), 4, "{found:#?}");
    c.close().await.unwrap();
    for f in [
        "web-overview.png",
        "web-drift.png",
        "web-drift-acknowledged.png",
    ] {
        assert!(shots.path().join(f).metadata().unwrap().len() > 1000, "{f}");
    }
    drop(driver);
}
