//! Pure tests of the desktop payload and of the notification handed to notify-rust.

use super::payload::{Urgency, payload, urgency};
use super::*;
use crate::alert::notice::NoticeKind;
use crate::alert::templates::{Templates, sample_notice};
use crate::model::Severity;

fn sink(yaml: &str) -> DesktopSink {
    let cfg: DesktopConfig = serde_saphyr::from_str(yaml).expect("config");
    DesktopSink::new(&cfg, &Templates::embedded().expect("templates")).expect("builds")
}

#[test]
fn urgency_follows_severity() {
    let mut n = sample_notice(NoticeKind::Drift);
    assert_eq!(urgency(&n), Urgency::Critical);
    n.severity = Severity::Medium;
    assert_eq!(urgency(&n), Urgency::Normal);
    n.severity = Severity::Low;
    assert_eq!(urgency(&n), Urgency::Low);
    assert_eq!(urgency(&sample_notice(NoticeKind::Resolved)), Urgency::Low);
    assert_eq!(
        urgency(&sample_notice(NoticeKind::ScanFailed)),
        Urgency::Critical
    );
}

#[test]
fn body_lists_drifts_highest_first() {
    let t = Templates::embedded().expect("templates");
    let p = payload(&t, &sample_notice(NoticeKind::Drift)).expect("payload");
    assert_eq!(p.summary, "production: 3 new drifts (1 critical)");
    assert_eq!(
        p.body,
        "CRITICAL Deployment shop/api: spec.template.spec.containers[name=api].securityContext.privileged\n\
         HIGH Deployment shop/web: spec.template.spec.containers[name=web].image\n\
         MEDIUM Secret shop/api-credentials: data.DATABASE_PASSWORD"
    );
}

#[test]
fn notification_carries_summary_body_urgency_and_timeout() {
    let s = sink("{name: d, timeout_secs: 0}");
    let n = s
        .notification(&sample_notice(NoticeKind::Drift))
        .expect("notification");
    assert_eq!(n.appname, "envdrift");
    assert_eq!(n.summary, "production: 3 new drifts (1 critical)");
    assert!(n.body.starts_with("CRITICAL Deployment shop/api"));
    assert!(
        n.hints
            .contains(&notify_rust::Hint::Urgency(notify_rust::Urgency::Critical))
    );
}
