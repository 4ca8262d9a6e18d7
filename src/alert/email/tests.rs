//! Pure tests of the email payload and config validation (no network).

use super::payload::{message, parts};
use crate::alert::notice::NoticeKind;
use crate::alert::sink::SinkConfig;
use crate::alert::templates::{ALL_KINDS, Templates, sample_notice};

fn templates() -> Templates {
    Templates::embedded().expect("templates")
}

#[test]
fn every_kind_has_subject_text_and_html() {
    let t = templates();
    for kind in ALL_KINDS {
        let n = sample_notice(kind);
        let p = parts(&t, &n).expect("parts");
        assert_eq!(p.subject, format!("[envdrift] {}", n.title));
        assert!(p.text.contains(&n.title), "{kind:?}");
        assert!(p.html.starts_with("<!DOCTYPE html>"), "{kind:?}");
    }
}

#[test]
fn html_escapes_values() {
    let mut n = sample_notice(NoticeKind::Drift);
    n.drifts[0].changes[0].live = "<script>alert(1)</script>".into();
    let p = parts(&templates(), &n).expect("parts");
    assert!(!p.html.contains("<script>"));
    assert!(p.html.contains("&lt;script&gt;"));
    assert!(p.text.contains("<script>alert(1)</script>"));
}

#[test]
fn message_is_multipart_alternative_with_both_parts() {
    let n = sample_notice(NoticeKind::Drift);
    let p = parts(&templates(), &n).expect("parts");
    let from = "envdrift <envdrift@example.com>".parse().expect("from");
    let to = vec![
        "a@example.com".parse().expect("to"),
        "b@example.com".parse().expect("to"),
    ];
    let m = message(&from, &to, p, &n).expect("message");
    let raw = String::from_utf8(m.formatted()).expect("utf8");
    assert!(raw.contains("multipart/alternative"));
    assert!(raw.contains("text/plain"));
    assert!(raw.contains("text/html"));
    assert!(raw.contains("To: a@example.com, b@example.com"), "{raw}");
    assert!(raw.contains("Message-ID: <production-drift-20261126T112500Z.envdrift@example.com>"));
}

fn build(yaml: &str) -> Result<crate::alert::sink::Sink, String> {
    let cfg: SinkConfig = serde_saphyr::from_str(yaml).map_err(|e| e.to_string())?;
    cfg.build(&templates()).map_err(|e| e.to_string())
}

#[test]
fn config_errors_name_the_key() {
    let base = "type: email\nname: m\nhost: smtp.example.com\nfrom: envdrift@example.com\n";
    assert!(build(&format!("{base}to: [a@example.com]")).is_ok());
    let e = build(&format!("{base}to: []")).expect_err("no recipient");
    assert!(e.starts_with("sink `m`: to: at least one"), "{e}");
    let e = build(&format!("{base}to: [a@example.com, 'not an address']")).expect_err("bad");
    assert!(e.starts_with("sink `m`: to[1]:"), "{e}");
    let e = build(&format!("{base}to: [a@example.com]\nusername: u")).expect_err("no pw");
    assert!(e.starts_with("sink `m`: password_env:"), "{e}");
    let dir = tempfile::tempdir().expect("tempdir");
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "hunter2").expect("write");
    let e = build(&format!(
        "{base}to: [a@example.com]\nusername: u\npassword_file: '{}'\ntls: none",
        pw.display()
    ))
    .expect_err("clear password");
    assert!(
        e.starts_with("sink `m`: tls: `none` with a password"),
        "{e}"
    );
    let e = build(&format!("{base}to: [a@example.com]\ntls: ssl")).expect_err("bad tls");
    assert!(e.contains("ssl"), "{e}");
}

#[test]
fn emails_about_one_drift_name_its_thread() {
    let from: lettre::message::Mailbox = "envdrift <envdrift@example.com>".parse().expect("from");
    let to = vec!["a@example.com".parse().expect("to")];
    let one = sample_notice(NoticeKind::Escalated);
    let p = parts(&templates(), &one).expect("parts");
    let raw = String::from_utf8(message(&from, &to, p, &one).expect("message").formatted())
        .expect("utf-8");
    assert!(
        raw.contains("References: <drift-production-42.envdrift@example.com>"),
        "{raw}"
    );
    assert!(raw.contains("In-Reply-To: <drift-production-42.envdrift@example.com>"));
    let many = sample_notice(NoticeKind::Drift);
    let p = parts(&templates(), &many).expect("parts");
    let raw = String::from_utf8(message(&from, &to, p, &many).expect("message").formatted())
        .expect("utf-8");
    assert!(!raw.contains("References:"), "a digest has no one thread");
}
