//! Alert sinks against real local servers: a Slack Web API stand-in, aiosmtpd, a webhook
//! receiver that verifies the HMAC, and a notification server on a private D-Bus session bus
//! (all on loopback, see crates/testkit). Rendered messages are pinned with insta.

use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use envdrift::alert::notice::{Notice, NoticeKind};
use envdrift::alert::templates::{self, ALL_KINDS, Templates, sample_notice};
use envdrift::alert::{DeliveryError, Sink, SinkConfig};
use envdrift_testkit::Reply;
use envdrift_testkit::slack::SlackServer;
use envdrift_testkit::smtp::{Security, SmtpServer, parse};
use envdrift_testkit::webhook::WebhookServer;

const TOKEN: &str = "xoxb-1111-2222-TESTTOKENvalue";
const HOOK_PATH: &str = "/services/T0ENV/B0DRIFT/HOOKSECRETpart";
const SMTP_PASSWORD: &str = "pw-Sup3rSecret";
const HMAC_SECRET: &str = "whsec-TopSecretSigningKey";

fn templates() -> Templates {
    Templates::embedded().expect("embedded templates")
}

/// Writes `value` to a file in `dir` and returns its path (secrets come from files here:
/// setting environment variables in a multi-threaded test process is not sound).
fn secret_file(dir: &tempfile::TempDir, name: &str, value: &str) -> String {
    let path = dir.path().join(name);
    let mut f = std::fs::File::create(&path).expect("create");
    writeln!(f, "{value}").expect("write");
    path.display().to_string()
}

fn build(yaml: &str) -> Sink {
    let cfg: SinkConfig = serde_saphyr::from_str(yaml).expect("sink config");
    cfg.build(&templates()).expect("sink builds")
}

fn drift() -> Notice {
    sample_notice(NoticeKind::Drift)
}

fn assert_no_secret(text: &str) {
    for s in [
        TOKEN,
        "HOOKSECRETpart",
        SMTP_PASSWORD,
        HMAC_SECRET,
        "wrong-password",
    ] {
        assert!(!text.contains(s), "a secret leaked: {text}");
    }
}

/// A tracing subscriber that captures everything into a string, for the current thread.
fn capture_logs() -> (tracing::subscriber::DefaultGuard, Arc<Mutex<Vec<u8>>>) {
    #[derive(Clone)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Arc::new(Mutex::new(Vec::new()));
    let writer = Buf(buf.clone());
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (tracing::subscriber::set_default(subscriber), buf)
}

fn logs(buf: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&buf.lock().expect("lock")).into_owned()
}

// ---------------------------------------------------------------- Slack

async fn slack_bot(server: &SlackServer, token: &str, dir: &tempfile::TempDir) -> Sink {
    let tok = secret_file(dir, "slack-token", token);
    build(&format!(
        "{{type: slack, name: ops-slack, channel: C0ALERTS, token_file: '{tok}', api_url: '{}'}}",
        server.api_url()
    ))
}

#[tokio::test]
async fn slack_bot_posts_block_kit_message_with_bearer_token() {
    let server = SlackServer::start(TOKEN, HOOK_PATH).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = slack_bot(&server, TOKEN, &dir).await;
    sink.deliver(&drift()).await.expect("delivered");
    let got = server.accepted();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "/api/chat.postMessage");
    assert_eq!(
        got[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let body = got[0].json();
    assert_eq!(body["channel"], "C0ALERTS");
    insta::assert_json_snapshot!("slack_chat_post_message_drift", body);
    sink.health().await.expect("auth.test passes");
}

#[tokio::test]
async fn slack_every_notice_kind_is_accepted_by_the_stand_in() {
    let server = SlackServer::start(TOKEN, HOOK_PATH).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = slack_bot(&server, TOKEN, &dir).await;
    for kind in ALL_KINDS {
        sink.deliver(&sample_notice(kind))
            .await
            .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
    }
    // Acknowledged / silenced show on the drift's own message, which a sink without the
    // daemon's store has none of: nothing is posted for them (src/alert/slack/sink.rs).
    let posting: Vec<_> = ALL_KINDS
        .iter()
        .filter(|k| {
            !matches!(
                k,
                envdrift::alert::notice::NoticeKind::Acknowledged
                    | envdrift::alert::notice::NoticeKind::Silenced
            )
        })
        .collect();
    let got = server.accepted();
    assert_eq!(got.len(), posting.len());
    for (kind, rec) in posting.into_iter().zip(&got) {
        let mut v = rec.json();
        v.as_object_mut().expect("object").remove("channel");
        insta::assert_json_snapshot!(format!("slack_{}", kind.as_str()), v);
    }
}

#[tokio::test]
async fn slack_429_is_retryable_and_honours_retry_after() {
    let server = SlackServer::start(TOKEN, HOOK_PATH).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = slack_bot(&server, TOKEN, &dir).await;
    server.queue(&[Reply::RateLimited(7)]);
    let err = sink.deliver(&drift()).await.expect_err("rate limited");
    assert!(err.retryable, "{err}");
    assert_eq!(err.retry_after, Some(Duration::from_secs(7)));
    assert_eq!(err.sink, "ops-slack");
    assert_eq!(server.accepted().len(), 0);
    sink.deliver(&drift()).await.expect("next try goes through");
    assert_eq!(server.accepted().len(), 1);
}

#[tokio::test]
async fn slack_5xx_is_retryable_other_4xx_is_not() {
    let server = SlackServer::start(TOKEN, HOOK_PATH).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = slack_bot(&server, TOKEN, &dir).await;
    server.queue(&[
        Reply::ServerError,
        Reply::Unavailable,
        Reply::BadRequest,
        Reply::Forbidden,
    ]);
    for (want_retry, status) in [(true, "500"), (true, "503"), (false, "400"), (false, "403")] {
        let err = sink.deliver(&drift()).await.expect_err("fails");
        assert_eq!(err.retryable, want_retry, "{err}");
        assert!(err.message.contains(status), "{err}");
        assert_eq!(err.retry_after, None);
    }
    assert_eq!(server.requests(), 4);
}

#[tokio::test]
async fn slack_bad_token_is_not_retried_and_never_shown() {
    let server = SlackServer::start(TOKEN, HOOK_PATH).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = slack_bot(&server, "xoxb-wrong-password", &dir).await;
    let (_guard, buf) = capture_logs();
    let err = sink.deliver(&drift()).await.expect_err("invalid_auth");
    assert!(!err.retryable);
    assert_eq!(
        err.to_string(),
        "ops-slack: Slack API error `invalid_auth` (check the bot token)"
    );
    let health = sink.health().await.expect_err("auth.test fails");
    assert!(health.message.contains("invalid_auth"));
    let log = logs(&buf);
    assert!(log.contains("delivery failed"), "{log}");
    assert_no_secret(&log);
    assert_no_secret(&err.to_string());
    assert_no_secret(&format!("{sink:?} {err:?} {health:?}"));
    assert!(!log.contains("xoxb-wrong"), "{log}");
}

#[tokio::test]
async fn slack_incoming_webhook() {
    let server = SlackServer::start(TOKEN, HOOK_PATH).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let hook = secret_file(&dir, "hook", &server.webhook_url());
    let sink = build(&format!(
        "{{type: slack, name: team-hook, webhook_url_file: '{hook}'}}"
    ));
    sink.deliver(&drift()).await.expect("delivered");
    let got = server.accepted();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, HOOK_PATH);
    assert_eq!(got[0].header("authorization"), None);
    assert!(
        got[0].json()["blocks"]
            .as_array()
            .is_some_and(|b| b.len() > 3)
    );

    // A revoked webhook (404) is not retried, and its secret URL is not in the error.
    let wrong = secret_file(
        &dir,
        "hook2",
        &format!(
            "http://{}/services/T0ENV/B0DRIFT/HOOKSECRETpartOLD",
            server.addr
        ),
    );
    let sink = build(&format!(
        "{{type: slack, name: team-hook, webhook_url_file: '{wrong}'}}"
    ));
    let (_guard, buf) = capture_logs();
    let err = sink.deliver(&drift()).await.expect_err("404");
    assert!(!err.retryable, "{err}");
    assert!(err.message.contains("404"), "{err}");
    assert_no_secret(&err.to_string());
    assert_no_secret(&logs(&buf));
}

#[tokio::test]
async fn slack_unreachable_is_retryable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let dir = tempfile::tempdir().expect("tempdir");
    let tok = secret_file(&dir, "t", TOKEN);
    let sink = build(&format!(
        "{{type: slack, name: s, channel: C1, token_file: '{tok}', api_url: 'http://127.0.0.1:{port}/api'}}"
    ));
    let err = sink.deliver(&drift()).await.expect_err("refused");
    assert!(err.retryable, "{err}");
    assert!(err.message.starts_with("cannot reach Slack"), "{err}");
    assert_no_secret(&err.to_string());
}

// ---------------------------------------------------------------- Email

fn email_sink(port: u16, to: &[&str], auth: Option<&str>, dir: &tempfile::TempDir) -> Sink {
    let mut yaml = format!(
        "type: email\nname: ops-mail\nhost: 127.0.0.1\nport: {port}\ntls: none\nfrom: 'envdrift <envdrift@example.com>'\nto: [{}]\n",
        to.join(", ")
    );
    if let Some(pw) = auth {
        let f = secret_file(dir, "smtp-password", pw);
        yaml.push_str(&format!("username: envdrift\npassword_file: '{f}'\n"));
    }
    build(&yaml)
}

#[tokio::test]
async fn email_is_multipart_html_and_text_to_every_recipient() {
    let smtp = SmtpServer::start(None);
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = email_sink(
        smtp.port,
        &["platform@example.com", "oncall@example.com"],
        None,
        &dir,
    );
    sink.health().await.expect("SMTP reachable");
    sink.deliver(&drift()).await.expect("delivered");
    let got = smtp.wait_for(1);
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m.mail_from, "envdrift@example.com");
    assert_eq!(m.rcpt_tos, ["platform@example.com", "oncall@example.com"]);
    let parsed = parse(&m.raw);
    assert_eq!(
        parsed.header("Subject"),
        Some("[envdrift] production: 3 new drifts (1 critical)")
    );
    assert_eq!(
        parsed.header("From"),
        Some("envdrift <envdrift@example.com>")
    );
    assert_eq!(
        parsed.header("To"),
        Some("platform@example.com, oncall@example.com")
    );
    assert!(
        parsed
            .header("Content-Type")
            .is_some_and(|c| c.starts_with("multipart/alternative")),
        "{:?}",
        parsed.headers
    );
    let types: Vec<_> = parsed.parts.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types, ["text/plain", "text/html"]);
    let text = &parsed.parts[0].1;
    let html = &parsed.parts[1].1;
    assert!(text.contains("sha256:9f86d081884c7d65"));
    assert!(html.contains("kubectl-set"));
    insta::assert_snapshot!("email_drift_text", text);
    insta::assert_snapshot!("email_drift_html", html);
}

#[tokio::test]
async fn email_authenticates_and_a_wrong_password_is_permanent_and_hidden() {
    let smtp = SmtpServer::start(Some(("envdrift", SMTP_PASSWORD)));
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = email_sink(
        smtp.port,
        &["platform@example.com"],
        Some(SMTP_PASSWORD),
        &dir,
    );
    sink.deliver(&drift()).await.expect("delivered");
    let got = smtp.wait_for(1);
    assert_eq!(got[0].login.as_deref(), Some("envdrift"));

    let dir2 = tempfile::tempdir().expect("tempdir");
    let bad = email_sink(
        smtp.port,
        &["platform@example.com"],
        Some("wrong-password"),
        &dir2,
    );
    let (_guard, buf) = capture_logs();
    let err = bad.deliver(&drift()).await.expect_err("auth refused");
    assert!(!err.retryable, "{err}");
    assert_no_secret(&err.to_string());
    assert_no_secret(&logs(&buf));
    assert_no_secret(&format!("{bad:?}"));
}

#[tokio::test]
async fn email_4xx_is_retryable_5xx_is_not() {
    let smtp = SmtpServer::start(None);
    let dir = tempfile::tempdir().expect("tempdir");
    let busy = email_sink(smtp.port, &["transient@example.com"], None, &dir);
    let err = busy.deliver(&drift()).await.expect_err("451");
    assert!(err.retryable, "{err}");
    assert!(err.message.contains("451"), "{err}");
    let gone = email_sink(smtp.port, &["reject@example.com"], None, &dir);
    let err = gone.deliver(&drift()).await.expect_err("550");
    assert!(!err.retryable, "{err}");
    assert!(err.message.contains("550"), "{err}");
    assert!(smtp.wait_for(0).is_empty());
}

fn tls_email_sink(port: u16, tls: &str, ca: bool) -> Sink {
    let ca_file = envdrift_testkit::root().join("tests/fixtures/tls/ca.pem");
    let mut yaml = format!(
        "type: email\nname: tls-mail\nhost: 127.0.0.1\nport: {port}\ntls: {tls}\nfrom: envdrift@example.com\nto: [platform@example.com]\n"
    );
    if ca {
        yaml.push_str(&format!("ca_file: '{}'\n", ca_file.display()));
    }
    build(&yaml)
}

#[tokio::test]
async fn email_over_starttls_and_implicit_tls_with_a_private_ca() {
    for (security, tls) in [(Security::Starttls, "starttls"), (Security::Tls, "tls")] {
        let smtp = SmtpServer::start_with(None, security);
        let sink = tls_email_sink(smtp.port, tls, true);
        sink.health().await.unwrap_or_else(|e| panic!("{tls}: {e}"));
        sink.deliver(&drift())
            .await
            .unwrap_or_else(|e| panic!("{tls}: {e}"));
        let got = smtp.wait_for(1);
        assert_eq!(got.len(), 1, "{tls}");
        assert!(got[0].tls, "{tls}: the session was not encrypted");

        // Without the private CA the certificate is not trusted: no mail goes out in clear.
        let untrusted = tls_email_sink(smtp.port, tls, false);
        let err = untrusted
            .deliver(&drift())
            .await
            .expect_err("untrusted certificate");
        assert!(
            err.message.to_lowercase().contains("certificate"),
            "{tls}: {err}"
        );
        assert_eq!(smtp.wait_for(1).len(), 1);
    }
    // STARTTLS is required: a server that does not offer it gets nothing.
    let plain = SmtpServer::start(None);
    let sink = tls_email_sink(plain.port, "starttls", true);
    sink.deliver(&drift())
        .await
        .expect_err("no STARTTLS offered");
    assert!(plain.wait_for(0).is_empty());
}

#[tokio::test]
async fn email_unreachable_is_retryable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = email_sink(port, &["a@example.com"], None, &dir);
    let err = sink.deliver(&drift()).await.expect_err("refused");
    assert!(err.retryable, "{err}");
    assert!(sink.health().await.expect_err("refused").retryable);
}

// ---------------------------------------------------------------- Webhook

fn webhook_sink(url: &str, secret: &str, dir: &tempfile::TempDir) -> Sink {
    let f = secret_file(dir, "hmac", secret);
    build(&format!(
        "{{type: webhook, name: bridge, url: '{url}', secret_file: '{f}', headers: {{x-team: platform}}}}"
    ))
}

#[tokio::test]
async fn webhook_posts_signed_json() {
    let server = WebhookServer::start(HMAC_SECRET).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = webhook_sink(&server.url(), HMAC_SECRET, &dir);
    sink.health().await.expect("reachable");
    sink.deliver(&drift()).await.expect("delivered");
    let got = server.accepted();
    assert_eq!(got.len(), 1);
    assert_eq!(server.bad_signatures(), 0);
    assert_eq!(
        got[0].header("x-envdrift-notice-id"),
        Some("production-drift-20261126T112500Z")
    );
    assert_eq!(got[0].header("x-team"), Some("platform"));
    assert!(
        got[0]
            .header("x-envdrift-signature")
            .is_some_and(|s| s.starts_with("sha256="))
    );
    insta::assert_json_snapshot!("webhook_drift", got[0].json());
}

#[tokio::test]
async fn webhook_retry_classification() {
    let server = WebhookServer::start(HMAC_SECRET).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = webhook_sink(&server.url(), HMAC_SECRET, &dir);
    server.queue(&[
        Reply::RateLimited(3),
        Reply::ServerError,
        Reply::Unavailable,
        Reply::BadRequest,
        Reply::Forbidden,
    ]);
    let expect: [(bool, Option<u64>, &str); 5] = [
        (true, Some(3), "429"),
        (true, None, "500"),
        (true, None, "503"),
        (false, None, "400"),
        (false, None, "403"),
    ];
    for (retry, after, status) in expect {
        let err: DeliveryError = sink.deliver(&drift()).await.expect_err("fails");
        assert_eq!(err.retryable, retry, "{err}");
        assert_eq!(err.retry_after, after.map(Duration::from_secs), "{err}");
        assert!(err.message.contains(status), "{err}");
    }
    sink.deliver(&drift()).await.expect("then it goes through");
    assert_eq!(server.accepted().len(), 1);
}

#[tokio::test]
async fn webhook_wrong_secret_is_refused_and_not_retried() {
    let server = WebhookServer::start(HMAC_SECRET).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = webhook_sink(&server.url(), "whsec-not-the-right-one", &dir);
    let (_guard, buf) = capture_logs();
    let err = sink.deliver(&drift()).await.expect_err("401");
    assert!(!err.retryable);
    assert_eq!(server.bad_signatures(), 1);
    assert_no_secret(&err.to_string());
    assert!(!logs(&buf).contains("whsec-not-the-right-one"));
    assert!(!format!("{sink:?}").contains("whsec"));
}

// ---------------------------------------------------------------- Routing across sinks

/// The outbox driver's loop in small: every sink gets what its route selects.
#[tokio::test]
async fn routes_split_one_notice_between_sinks() {
    let slack = SlackServer::start(TOKEN, HOOK_PATH).await;
    let hook = WebhookServer::start(HMAC_SECRET).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let tok = secret_file(&dir, "t", TOKEN);
    let key = secret_file(&dir, "k", HMAC_SECRET);
    let cfgs: Vec<SinkConfig> = serde_saphyr::from_str(&format!(
        "- {{type: slack, name: pager, channel: C1, token_file: '{tok}', api_url: '{}', route: {{min_severity: critical}}}}\n\
         - {{type: webhook, name: all, url: '{}', secret_file: '{key}'}}\n\
         - {{type: webhook, name: staging-only, url: '{}', secret_file: '{key}', route: {{environments: [staging]}}}}\n",
        slack.api_url(),
        hook.url(),
        hook.url(),
    ))
    .expect("sinks config");
    let sinks = envdrift::alert::build_sinks(&cfgs, &templates()).expect("sinks build");
    let notice = drift();
    let mut delivered = Vec::new();
    for sink in &sinks {
        if let Some(n) = sink.route().select(&notice) {
            sink.deliver(&n).await.expect("delivered");
            delivered.push(sink.name().to_string());
        }
    }
    assert_eq!(delivered, ["pager", "all"]);
    let to_slack = slack.accepted()[0].json().to_string();
    assert!(to_slack.contains("Deployment shop/api"));
    assert!(
        !to_slack.contains("Deployment shop/web"),
        "only critical drifts go to the pager"
    );
    let to_hook = hook.accepted()[0].json();
    assert_eq!(to_hook["counts"]["critical"], 1);
    assert_eq!(to_hook["counts"]["high"], 1);
    assert_eq!(to_hook["counts"]["medium"], 1);
}

// ---------------------------------------------------------------- Rendered messages

#[test]
fn rendered_email_text_for_every_kind() {
    let t = templates();
    for kind in ALL_KINDS {
        let text = t
            .render(templates::EMAIL_TEXT, &sample_notice(kind))
            .expect("renders");
        insta::assert_snapshot!(format!("email_text_{}", kind.as_str()), text);
    }
}

#[test]
fn rendered_messages_show_secrets_only_as_hashes() {
    let t = templates();
    let n = drift();
    // Every template that shows field values (not the subject; the desktop body shows
    // field names only).
    for (name, _) in templates::EMBEDDED {
        if *name == templates::DESKTOP || *name == templates::EMAIL_SUBJECT {
            continue;
        }
        let out = t.render(name, &n).expect("renders");
        assert!(out.contains("DATABASE_PASSWORD"), "{name}");
        {
            assert!(out.contains("sha256:9f86d081884c7d65"), "{name}");
            assert!(out.contains("sha256:60303ae22b998861"), "{name}");
        }
    }
}

// ---------------------------------------------------------------- Desktop

/// Runs the desktop test inside `dbus-run-session`: a private session bus that lives as
/// long as the child test process.
#[test]
fn desktop_notifications_on_a_private_session_bus() {
    let runner = which("dbus-run-session").unwrap_or_else(|| {
        panic!("dbus-run-session is missing: run `.ci/run` or `apt-get install -y dbus-daemon`")
    });
    let out = std::process::Command::new(runner)
        .arg("--")
        .arg(std::env::current_exe().expect("test binary"))
        .args([
            "desktop_inside_private_bus",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .expect("run dbus-run-session");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("1 passed"), "{stdout}");
}

fn which(bin: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(bin))
            .find(|p| p.is_file())
    })
}

#[tokio::test]
#[ignore = "runs inside dbus-run-session, started by desktop_notifications_on_a_private_session_bus"]
async fn desktop_inside_private_bus() {
    assert!(
        std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some(),
        "must run under dbus-run-session"
    );
    let sink = build("{type: desktop, name: my-desktop}");

    // A bus but no notification server yet: clear errors, retried (the server may start
    // later, as here).
    let err = sink.health().await.expect_err("no server yet");
    assert!(err.retryable, "{err}");
    assert!(err.message.contains("no notification server"), "{err}");
    let err = sink.deliver(&drift()).await.expect_err("no server yet");
    assert!(err.retryable, "{err}");
    assert!(err.message.contains("session bus"), "{err}");

    let server = envdrift_testkit::dbus::NotificationServer::start().await;
    sink.health().await.expect("server on the bus");
    sink.deliver(&drift()).await.expect("shown");
    sink.deliver(&sample_notice(NoticeKind::Resolved))
        .await
        .expect("shown");
    let shown = server.shown();
    assert_eq!(shown.len(), 2);
    assert_eq!(shown[0].app_name, "envdrift");
    assert_eq!(shown[0].icon, "dialog-warning");
    assert_eq!(shown[0].summary, "production: 3 new drifts (1 critical)");
    assert!(
        shown[0].body.starts_with("CRITICAL Deployment shop/api"),
        "{}",
        shown[0].body
    );
    assert_eq!(shown[0].urgency, Some(2));
    assert_eq!(shown[0].expire_timeout, -1);
    assert_eq!(shown[1].summary, "production: 1 drift resolved");
    assert_eq!(shown[1].urgency, Some(0));
}

/// With no session bus at all (a server, a container), the desktop sink fails at once with a
/// non-retryable error that says what is missing.
#[test]
fn desktop_without_a_session_bus_fails_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "desktop_inside_no_bus",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            format!("unix:path={}/no-such-bus", dir.path().display()),
        )
        .output()
        .expect("run the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
#[ignore = "runs with a dead bus address, started by desktop_without_a_session_bus_fails_clearly"]
async fn desktop_inside_no_bus() {
    let sink = build("{type: desktop, name: my-desktop}");
    let err = sink.health().await.expect_err("no bus");
    assert!(!err.retryable, "{err}");
    assert!(err.message.starts_with("no D-Bus session bus"), "{err}");
    let err = sink.deliver(&drift()).await.expect_err("no bus");
    assert!(!err.retryable, "{err}");
    assert!(err.message.contains("no D-Bus session bus"), "{err}");
}
