//! Pure tests of the webhook body and signature.

use super::payload::{body, signature, verify};
use crate::alert::notice::NoticeKind;
use crate::alert::sink::SinkConfig;
use crate::alert::templates::{ALL_KINDS, Templates, sample_notice};

#[test]
fn signature_matches_rfc_4231_test_case_2() {
    assert_eq!(
        signature(b"Jefe", b"what do ya want for nothing?"),
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    assert!(verify(
        b"Jefe",
        b"what do ya want for nothing?",
        &signature(b"Jefe", b"what do ya want for nothing?")
    ));
    assert!(!verify(
        b"Jefe",
        b"what do ya want for something?",
        &signature(b"Jefe", b"what do ya want for nothing?")
    ));
    assert!(!verify(b"Jefe", b"x", "sha256=zz"));
}

#[test]
fn body_is_json_for_every_kind() {
    let t = Templates::embedded().expect("templates");
    for kind in ALL_KINDS {
        let b = body(&t, &sample_notice(kind)).expect("body");
        let v: serde_json::Value = serde_json::from_slice(&b).expect("JSON");
        assert_eq!(v["schema"], "envdrift.notice/v1");
        assert_eq!(v["kind"], kind.as_str());
    }
}

#[test]
fn secret_is_required_and_url_checked() {
    let t = Templates::embedded().expect("templates");
    let cfg: SinkConfig =
        serde_saphyr::from_str("{type: webhook, name: w, url: 'https://hooks.example.com/x'}")
            .expect("config");
    let e = cfg.build(&t).expect_err("no secret").to_string();
    assert!(e.starts_with("sink `w`: secret_env: required"), "{e}");
    let _ = NoticeKind::Drift;
}
