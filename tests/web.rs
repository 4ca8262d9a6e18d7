//! The web page against a running demo daemon on a loopback port: every page's HTML pinned
//! with insta (times, durations, random tokens and paths redacted), filters and sorting,
//! the login with session cookies and roles, CSRF and cross-site refusal, acknowledge and
//! silence through the forms, `/api/v1/trends` and the trend gauges, and no Secret value or
//! token in any page.

#[path = "common/api.rs"]
mod common_api;
#[path = "common/web.rs"]
mod common_web;

use common_web::{OPERATE, READ, Resp, TOKENS, get, request, start};
use envdrift::daemon::Target;
use serde_json::Value;

/// Volatile parts of a page: times, durations, random tokens, the checkout's path, dates
/// on the chart axes, and the weekly chart (its number of weeks depends on the weekday;
/// its structure is tested in src/web/svg.rs).
fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    let root = env!("CARGO_MANIFEST_DIR");
    s.add_filter(&regex::escape(root), "[repo]");
    s.add_filter(
        r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})",
        "[time]",
    );
    s.add_filter(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC", "[time]");
    s.add_filter(r"\b[0-9a-f]{64}\b", "[token]");
    s.add_filter(r"\b\d+ ms\b|\b\d+(\.\d+)? s\b", "[duration]");
    s.add_filter(r">\d{2}-\d{2}<", ">[day]<");
    s.add_filter(r" on \d{2}-\d{2}<", " on [day]<");
    s.add_filter(
        r"(?s)<figcaption>Drifts opened per week</figcaption><svg.*?</svg>",
        "<figcaption>Drifts opened per week</figcaption>[weekly chart]",
    );
    s
}

fn snap(name: &str, r: &Resp) {
    assert_eq!(r.status, 200, "{name}: {}", r.body);
    settings().bind(|| insta::assert_snapshot!(name, r.body));
}

/// A drift of `target` with field changes and a patch (the first by id).
fn a_drift(srv: &common_web::Server, target: &str) -> i64 {
    srv.daemon
        .store
        .open_drifts(target)
        .unwrap()
        .into_iter()
        .find(|d| {
            d.body["changes"].as_array().is_some_and(|c| !c.is_empty())
                && !d.body["patch"].is_null()
        })
        .map(|d| d.id)
        .expect("a drift with changes and a patch")
}

#[tokio::test]
async fn every_page_renders() {
    let srv = start("").await;
    let overview = get(srv.addr, "/", None).await;
    snap("overview", &overview);
    for (state, name) in [("drifted", "production"), ("drifted", "staging")] {
        assert!(
            overview
                .body
                .contains(&format!("href=\"/environments/{name}\"")),
            "{name}"
        );
        assert!(overview.body.contains(&format!("state-{state}")));
    }
    assert!(
        overview
            .body
            .contains("href=\"/comparisons/staging-vs-production\"")
    );
    // One sparkline per target.
    assert_eq!(overview.body.matches("<svg class=\"sparkline\"").count(), 3);

    snap(
        "environment_production",
        &get(srv.addr, "/environments/production", None).await,
    );
    let id = a_drift(&srv, "production");
    snap(
        "drift",
        &get(srv.addr, &format!("/drifts/{id}"), None).await,
    );
    snap(
        "comparison",
        &get(srv.addr, "/comparisons/staging-vs-production", None).await,
    );
    snap("trends", &get(srv.addr, "/trends", None).await);

    let css = get(srv.addr, "/static/style.css", None).await;
    assert_eq!(css.status, 200);
    assert!(css.body.contains("prefers-color-scheme: dark"));
    assert!(css.header("content-type").unwrap().starts_with("text/css"));
    let js = get(srv.addr, "/static/copy.js", None).await;
    assert!(js.body.contains("clipboard"));
    assert_eq!(get(srv.addr, "/static/nope.js", None).await.status, 404);
    // Every page has the security headers.
    assert!(
        overview
            .header("content-security-policy")
            .unwrap()
            .contains("script-src 'self'")
    );
    assert_eq!(
        overview.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
}

#[tokio::test]
async fn the_drift_page_shows_both_sides_the_fix_and_the_history() {
    let srv = start("").await;
    let id = a_drift(&srv, "production");
    let (d, _) = srv.daemon.store.drift(id).unwrap();
    let r = get(srv.addr, &format!("/drifts/{id}"), None).await;
    assert_eq!(r.status, 200);
    let body = &r.body;
    for c in d.body["changes"].as_array().unwrap() {
        let path = c["path"].as_str().unwrap();
        assert!(
            body.contains(&format!("<code class=\"pointer\">{path}</code>")),
            "{path}"
        );
    }
    assert!(body.contains("Desired (Git)") && body.contains("Live (cluster)"));
    assert!(body.contains("id=\"fix-patch\""), "no RFC 6902 patch");
    assert!(body.contains("data-copy=\"fix-patch\" hidden"));
    assert!(body.contains("<strong>opened</strong>"));
    assert!(body.contains("action=\"/drifts/") && body.contains("/ack\""));
    // Unknown ids and routes.
    assert_eq!(get(srv.addr, "/drifts/999999", None).await.status, 404);
    assert_eq!(get(srv.addr, "/drifts/abc", None).await.status, 404);
    assert_eq!(get(srv.addr, "/environments/nope", None).await.status, 404);
    // A comparison's name under /environments goes to its page.
    let r = get(srv.addr, "/environments/staging-vs-production", None).await;
    assert_eq!(
        (r.status, r.header("location").as_deref()),
        (303, Some("/comparisons/staging-vs-production"))
    );
}

#[tokio::test]
async fn filters_and_sorting() {
    let srv = start("").await;
    let all = srv.daemon.store.open_drifts("production").unwrap();
    let count = |r: &Resp| r.body.matches("<td class=\"id\">").count();
    let r = get(srv.addr, "/environments/production", None).await;
    assert_eq!(count(&r), all.len());
    // At least high.
    let high = all
        .iter()
        .filter(|d| d.severity >= envdrift::model::Severity::High)
        .count();
    let r = get(srv.addr, "/environments/production?severity=high", None).await;
    assert_eq!(count(&r), high, "{}", r.body);
    // By kind.
    let deployments = all
        .iter()
        .filter(|d| d.body["resource"]["kind"] == "Deployment")
        .count();
    assert!(deployments > 0);
    let r = get(srv.addr, "/environments/production?kind=Deployment", None).await;
    assert_eq!(count(&r), deployments);
    assert!(r.body.contains("Clear filters"));
    // Sorted by resource, ascending: the rows' resources in order.
    let r = get(
        srv.addr,
        "/environments/production?sort=resource&order=asc",
        None,
    )
    .await;
    let mut expected: Vec<String> = all.iter().map(|d| d.resource.clone()).collect();
    expected.sort();
    let shown: Vec<String> = r
        .body
        .split("<td class=\"resource\"><a href=\"/drifts/")
        .skip(1)
        .filter_map(|cell| cell.split_once('>'))
        .filter_map(|(_, rest)| rest.split('<').next())
        .map(|s| s.replace("&amp;", "&"))
        .collect();
    assert_eq!(shown, expected, "{}", r.body);
    assert!(r.body.contains("aria-sort=\"ascending\""));
    // Bad parameters name themselves.
    let r = get(srv.addr, "/environments/production?severity=loud", None).await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("severity"), "{}", r.body);
    let r = get(srv.addr, "/environments/production?sort=colour", None).await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("choose from"), "{}", r.body);
    let r = get(srv.addr, "/environments/production?bogus=1", None).await;
    assert_eq!(r.status, 400);
}

/// Posts a form (with the page's cookie) and returns the response.
async fn post(srv: &common_web::Server, path: &str, cookie: &str, form: &str) -> Resp {
    request(
        srv.addr,
        "POST",
        path,
        &[format!("Cookie: {cookie}")],
        Some(form),
    )
    .await
}

#[tokio::test]
async fn open_access_forms_need_the_csrf_cookie() {
    let srv = start("").await;
    let id = a_drift(&srv, "production");
    let page = get(srv.addr, &format!("/drifts/{id}"), None).await;
    let cookie = page.cookie("envdrift_csrf").expect("a CSRF cookie");
    let set = page.header("set-cookie").unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let csrf = page.csrf().unwrap();
    assert_eq!(cookie, format!("envdrift_csrf={csrf}"));
    // Without the cookie (a form on another site): refused.
    let r = request(
        srv.addr,
        "POST",
        &format!("/drifts/{id}/ack"),
        &[],
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    // With the cookie but another token: refused.
    let r = post(&srv, &format!("/drifts/{id}/ack"), &cookie, "csrf=00").await;
    assert_eq!(r.status, 403);
    // From another origin: refused.
    let r = request(
        srv.addr,
        "POST",
        &format!("/drifts/{id}/ack"),
        &[
            format!("Cookie: {cookie}"),
            "Origin: https://evil.example".into(),
        ],
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("cross-site"), "{}", r.body);
    assert!(srv.daemon.store.drift(id).unwrap().0.acked_at.is_none());
    // The page's own form: acknowledged, and the page says so.
    let r = request(
        srv.addr,
        "POST",
        &format!("/drifts/{id}/ack"),
        &[
            format!("Cookie: {cookie}"),
            format!("Origin: http://{}", srv.addr),
        ],
        Some(&format!("csrf={csrf}&note=on+it+%3Cb%3E")),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let (d, _) = srv.daemon.store.drift(id).unwrap();
    assert_eq!(d.acked_by.as_deref(), Some("loopback: on it <b>"));
    let page = get(
        srv.addr,
        r.header("location").unwrap().as_str(),
        Some(&cookie),
    )
    .await;
    assert!(page.body.contains("Acknowledged."));
    assert!(
        page.body
            .contains("acknowledged by loopback: on it &lt;b&gt;")
    );
    assert!(page.body.contains("<strong>acknowledged</strong>"));
    // Silence for a day.
    let r = post(
        &srv,
        &format!("/drifts/{id}/silence"),
        &cookie,
        &format!("csrf={csrf}&for=24h&reason=maintenance"),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let (d, _) = srv.daemon.store.drift(id).unwrap();
    assert_eq!(
        d.silence_reason.as_deref(),
        Some("maintenance (by loopback)")
    );
    let until = chrono::DateTime::parse_from_rfc3339(d.silenced_until.as_deref().unwrap()).unwrap();
    let left = until.signed_duration_since(chrono::Utc::now());
    assert!(left > chrono::Duration::hours(23) && left <= chrono::Duration::hours(24));
    let r = post(
        &srv,
        &format!("/drifts/{id}/silence"),
        &cookie,
        &format!("csrf={csrf}&for=forever"),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("choose from: 1h"), "{}", r.body);
}

#[tokio::test]
async fn with_tokens_pages_need_a_login_and_roles_hold() {
    let srv = start(TOKENS).await;
    // Not logged in: to the login form, back to the page afterwards.
    let r = get(srv.addr, "/trends", None).await;
    assert_eq!(
        (r.status, r.header("location").as_deref()),
        (303, Some("/login?next=%2Ftrends"))
    );
    let login = get(srv.addr, "/login?next=%2Ftrends", None).await;
    snap("login", &login);
    // A wrong token.
    let r = request(
        srv.addr,
        "POST",
        "/login",
        &[],
        Some("token=nope&next=%2Ftrends"),
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(r.body.contains("unknown token"));
    assert!(r.cookie("envdrift_session").is_none());
    // The read token: a session cookie, HttpOnly and SameSite=Strict.
    let form = format!("token={READ}&next=%2Ftrends");
    let r = request(srv.addr, "POST", "/login", &[], Some(&form)).await;
    assert_eq!(
        (r.status, r.header("location").as_deref()),
        (303, Some("/trends"))
    );
    let set = r.header("set-cookie").unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains(READ));
    let read = r.cookie("envdrift_session").unwrap();
    let id = a_drift(&srv, "production");
    let page = get(srv.addr, &format!("/drifts/{id}"), Some(&read)).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("ci <span class=\"role\">(read)</span>"));
    assert!(
        !page.body.contains("/ack\""),
        "a read session sees no ack form"
    );
    // The read session cannot acknowledge, even with its CSRF token.
    let csrf = page.csrf().unwrap();
    let r = post(
        &srv,
        &format!("/drifts/{id}/ack"),
        &read,
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("role read"), "{}", r.body);
    // Bearer tokens do not open pages, cookies do not open the API.
    let r = request(
        srv.addr,
        "GET",
        "/",
        &[format!("Authorization: Bearer {OPERATE}")],
        None,
    )
    .await;
    assert_eq!(r.status, 303);
    let r = get(srv.addr, "/api/v1/trends", Some(&read)).await;
    assert_eq!(r.status, 401);

    // The operate token acknowledges.
    let r = request(
        srv.addr,
        "POST",
        "/login",
        &[],
        Some(&format!("token={OPERATE}&next=https://evil.example/")),
    )
    .await;
    assert_eq!(
        r.header("location").as_deref(),
        Some("/"),
        "never to another site"
    );
    let op = r.cookie("envdrift_session").unwrap();
    let page = get(srv.addr, &format!("/drifts/{id}"), Some(&op)).await;
    let csrf = page.csrf().unwrap();
    // Another session's CSRF token does not do.
    let other = get(srv.addr, "/", Some(&read)).await.csrf().unwrap();
    assert_ne!(other, csrf);
    let r = post(
        &srv,
        &format!("/drifts/{id}/ack"),
        &op,
        &format!("csrf={other}"),
    )
    .await;
    assert_eq!(r.status, 403);
    let r = post(
        &srv,
        &format!("/drifts/{id}/ack"),
        &op,
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let (d, _) = srv.daemon.store.drift(id).unwrap();
    assert_eq!(d.acked_by.as_deref(), Some("oncall"));
    // Logging out clears the cookie in the browser (sessions are stateless signed cookies:
    // a copy of one stays valid until it expires, docs/web.md).
    let r = post(&srv, "/logout", &op, &format!("csrf={csrf}")).await;
    assert_eq!(r.status, 303);
    let cleared = r.header("set-cookie").unwrap();
    assert!(
        cleared.starts_with("envdrift_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    assert_eq!(get(srv.addr, "/", None).await.status, 303);
}

#[tokio::test]
async fn trends_as_json_and_gauges() {
    let srv = start("").await;
    let r = get(srv.addr, "/api/v1/trends?days=7", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["days"], 7);
    let targets = v["targets"].as_array().unwrap();
    let mut names: Vec<&str> = targets.iter().filter_map(|t| t["name"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["production", "staging", "staging-vs-production"]);
    for t in targets {
        let open = srv
            .daemon
            .store
            .open_drifts(t["name"].as_str().unwrap())
            .unwrap()
            .len();
        let per_day = t["open_per_day"].as_array().unwrap();
        assert_eq!(per_day.len(), 7);
        // Today's count is what is open now; the days before the first scan had none.
        assert_eq!(per_day[6]["open"], open);
        assert_eq!(per_day[0]["open"], 0);
        assert_eq!(t["opened"], open);
        assert_eq!(t["resolved"], 0);
        assert!(t["mttr_seconds"].is_null());
    }
    assert_eq!(
        get(srv.addr, "/api/v1/trends?days=0", None).await.status,
        400
    );
    assert_eq!(
        get(srv.addr, "/api/v1/trends?weeks=2", None).await.status,
        400
    );

    // The gauges, after one more scan (so some time in the window has a known state).
    srv.daemon
        .scan(&Target::Environment("production".into()))
        .await
        .unwrap();
    let m = get(srv.addr, "/metrics", None).await;
    assert!(
        m.body
            .contains("envdrift_trend_drifts_opened_7d{target=\"production\"}"),
        "{}",
        m.body
    );
    assert!(m.body.contains("# TYPE envdrift_trend_in_sync_ratio gauge"));
    assert!(
        m.body
            .contains("envdrift_trend_in_sync_ratio{target=\"production\"} 0")
    );
}

/// Sessions are signed cookies keyed by the token itself, kept nowhere: a login on one daemon
/// works on a second daemon with the same config (another replica, or the same one after a
/// restart), its CSRF token too; a tampered cookie, or one whose token was removed from the
/// config, gets the login page. Neither the cookie nor the page holds the token.
#[tokio::test]
async fn a_session_from_one_daemon_works_on_another_with_the_same_config() {
    let a = start(TOKENS).await;
    let b = start(TOKENS).await;
    let r = request(
        a.addr,
        "POST",
        "/login",
        &[],
        Some(&format!("token={OPERATE}&next=%2F")),
    )
    .await;
    assert_eq!(r.status, 303);
    let set = r.header("set-cookie").unwrap();
    assert!(set.contains("Max-Age=43200"), "12 h by default: {set}");
    let op = r.cookie("envdrift_session").unwrap();
    assert!(!op.contains(OPERATE) && !set.contains(OPERATE), "{set}");
    let page_a = get(a.addr, "/", Some(&op)).await;
    let page_b = get(b.addr, "/", Some(&op)).await;
    assert_eq!((page_a.status, page_b.status), (200, 200));
    assert!(page_b.body.contains("oncall"), "{}", page_b.body);
    assert!(!page_b.body.contains(OPERATE));
    // The CSRF token is derived the same way on both: B takes a form rendered by A.
    let csrf = page_a.csrf().unwrap();
    assert_eq!(page_b.csrf().as_deref(), Some(csrf.as_str()));
    let id = a_drift(&b, "production");
    let r = post(
        &b,
        &format!("/drifts/{id}/ack"),
        &op,
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(
        b.daemon.store.drift(id).unwrap().0.acked_by.as_deref(),
        Some("oncall")
    );

    // Tampered (one character of the signature, or the role raised): the login page.
    let (name, value) = op.split_once('=').unwrap();
    let mut bad = value.to_string();
    let last = bad.pop().unwrap();
    bad.push(if last == '0' { '1' } else { '0' });
    let r = get(b.addr, "/", Some(&format!("{name}={bad}"))).await;
    assert_eq!(
        (r.status, r.header("location").as_deref()),
        (303, Some("/login?next=%2F"))
    );
    let login = request(
        a.addr,
        "POST",
        "/login",
        &[],
        Some(&format!("token={READ}&next=%2F")),
    )
    .await;
    let read = login.cookie("envdrift_session").unwrap();
    assert_eq!(get(b.addr, "/", Some(&read)).await.status, 200);
    let raised = read.replacen(".read.", ".operate.", 1);
    assert_ne!(raised, read);
    assert_eq!(get(b.addr, "/", Some(&raised)).await.status, 303);

    // The operate token removed from the config: its cookie no longer opens a page; the
    // read token's still does.
    let c = start("api:\n  tokens:\n    - {name: ci, role: read, token_file: read.token}\n").await;
    assert_eq!(get(c.addr, "/", Some(&op)).await.status, 303);
    assert_eq!(get(c.addr, "/", Some(&read)).await.status, 200);
}

/// The comparison matrix lists every resource that is not equal, from the last full scan:
/// the demo's expected-divergence rule (`Namespace` `/metadata/labels/environment`) makes the
/// namespace fully expected — no drift, so only the matrix shows it — and its row is greyed
/// with that rule; a resource with some expected fields names the rule too. Pages beyond
/// the last are empty, a bad page number is 400.
#[tokio::test]
async fn the_comparison_matrix_greys_fully_expected_resources_with_their_rule() {
    let srv = start("").await;
    let r = get(srv.addr, "/comparisons/staging-vs-production", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let row = |resource: &str| -> String {
        let at = r
            .body
            .find(&format!("{resource}</"))
            .unwrap_or_else(|| panic!("no row for {resource}"));
        let start = r.body[..at].rfind("<tr").unwrap();
        let end = at + r.body[at..].find("</tr>").unwrap();
        r.body[start..end].to_string()
    };
    let ns = row("Namespace shop-prod");
    assert!(
        ns.starts_with("<tr class=\"res-expected expected\">"),
        "{ns}"
    );
    assert!(
        ns.contains("compare.expected.rules[0]: the namespace says which environment it is"),
        "{ns}"
    );
    assert!(
        !ns.contains("/drifts/"),
        "a fully expected resource has no drift: {ns}"
    );
    let store_drifts = srv
        .daemon
        .store
        .open_drifts("staging-vs-production")
        .unwrap();
    assert!(
        store_drifts
            .iter()
            .all(|d| d.resource != "Namespace shop-prod"),
        "no drift for it"
    );
    let api = row("Deployment shop-prod/api");
    assert!(api.contains("differs: 3 fields (1 expected)"), "{api}");
    assert!(api.contains("built-in"), "{api}");
    assert!(row("Service shop-prod/web").contains("only in staging"));
    assert!(row("ConfigMap shop-prod/debug-flags").contains("only in production"));
    // A rescan (its unchanged files' results reused) keeps the matrix as it was.
    let before = srv
        .daemon
        .store
        .matrix("staging-vs-production", 0, 100)
        .unwrap();
    assert_eq!(before.len(), 9);
    let t = srv.daemon.target("staging-vs-production").unwrap();
    srv.daemon.scan(&t).await.unwrap();
    assert_eq!(
        srv.daemon
            .store
            .matrix("staging-vs-production", 0, 100)
            .unwrap(),
        before
    );
    // Paging.
    let r2 = get(srv.addr, "/comparisons/staging-vs-production?page=2", None).await;
    assert_eq!(r2.status, 200);
    assert!(
        r2.body.contains("No resource differs on this page."),
        "{}",
        r2.body
    );
    let bad = get(srv.addr, "/comparisons/staging-vs-production?page=0", None).await;
    assert_eq!(bad.status, 400);
}
