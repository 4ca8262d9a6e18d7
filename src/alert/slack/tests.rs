//! Pure tests of the Slack payload and config validation (no network).

use super::payload::{MAX_BLOCKS, message};
use crate::alert::notice::NoticeKind;
use crate::alert::sink::SinkConfig;
use crate::alert::templates::{ALL_KINDS, Templates, sample_notice};
use slack_morphism::prelude::SlackBlock;

fn templates() -> Templates {
    Templates::embedded().expect("templates")
}

#[test]
fn every_kind_makes_a_valid_message() {
    let t = templates();
    for kind in ALL_KINDS {
        let m = message(&t, &sample_notice(kind)).expect("message");
        let blocks = m.blocks.expect("blocks");
        assert!(!blocks.is_empty() && blocks.len() <= MAX_BLOCKS, "{kind:?}");
        assert!(matches!(blocks[0], SlackBlock::Header(_)), "{kind:?}");
        assert!(m.text.is_some_and(|t| !t.is_empty()));
    }
}

#[test]
fn drifts_are_grouped_by_severity_highest_first() {
    let m = message(&templates(), &sample_notice(NoticeKind::Drift)).expect("message");
    let json = serde_json::to_string(&m).expect("json");
    let crit = json.find("*CRITICAL*").expect("critical group");
    let high = json.find("*HIGH*").expect("high group");
    let med = json.find("*MEDIUM*").expect("medium group");
    assert!(crit < high && high < med);
    assert!(json.contains("kubectl-set"));
    assert!(json.contains("sha256:9f86d081884c7d65"));
}

#[test]
fn too_many_blocks_are_cut_to_slacks_limit() {
    let mut n = sample_notice(NoticeKind::Drift);
    let d = n.drifts[1].clone();
    for i in 0..60 {
        let mut d = d.clone();
        d.resource = format!("Deployment shop/web-{i}");
        n.drifts.push(d);
    }
    let m = message(&templates(), &n).expect("message");
    let blocks = m.blocks.expect("blocks");
    assert_eq!(blocks.len(), MAX_BLOCKS);
    let last = serde_json::to_string(&blocks[MAX_BLOCKS - 1]).expect("json");
    assert!(last.contains("more blocks left out"), "{last}");
}

#[test]
fn mrkdwn_control_characters_are_escaped() {
    let mut n = sample_notice(NoticeKind::Drift);
    n.drifts[0].changes[0].live = "<!channel> & co".into();
    let m = message(&templates(), &n).expect("message");
    let json = serde_json::to_string(&m).expect("json");
    assert!(json.contains("&lt;!channel&gt; &amp; co"), "{json}");
    assert!(!json.contains("<!channel>"));
}

#[test]
fn a_template_with_an_unknown_block_type_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("slack.json"),
        r#"{"text": "x", "blocks": [{"type": "sectoin", "text": {"type": "mrkdwn", "text": "x"}}]}"#,
    )
    .expect("write");
    let t = Templates::load(Some(dir.path())).expect("parses and renders");
    let err = message(&t, &sample_notice(NoticeKind::Drift)).expect_err("unknown block");
    assert!(
        err.to_string()
            .contains("`sectoin` is not a Block Kit block type"),
        "{err}"
    );
}

fn build(yaml: &str) -> Result<crate::alert::sink::Sink, String> {
    let cfg: SinkConfig = serde_saphyr::from_str(yaml).map_err(|e| e.to_string())?;
    cfg.build(&templates()).map_err(|e| e.to_string())
}

#[test]
fn config_errors_name_the_key() {
    // SAFETY-free: only reads variables that are surely unset.
    let err = build("{type: slack, name: s, channel: '#a', token_env: ENVDRIFT_TEST_UNSET_TOKEN}")
        .expect_err("unset");
    assert_eq!(
        err,
        "sink `s`: token_env: environment variable `ENVDRIFT_TEST_UNSET_TOKEN` is not set"
    );
    let err = build("{type: slack, name: s}").expect_err("nothing");
    assert!(
        err.starts_with("sink `s`: token_env: set a bot token"),
        "{err}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let tok = dir.path().join("token");
    std::fs::write(&tok, "xoxb-test\n").expect("write");
    let err = build(&format!(
        "{{type: slack, name: s, token_file: '{}'}}",
        tok.display()
    ))
    .expect_err("no channel");
    assert!(err.starts_with("sink `s`: channel: required"), "{err}");
    let err = build(&format!(
        "{{type: slack, name: s, channel: C1, token_file: '{}', api_url: 'http://example.com/api'}}",
        tok.display()
    ))
    .expect_err("plain http");
    assert!(err.starts_with("sink `s`: api_url: plain http"), "{err}");
    let ok = build(&format!(
        "{{type: slack, name: s, channel: C1, token_file: '{}'}}",
        tok.display()
    ))
    .expect("builds");
    assert!(!format!("{ok:?}").contains("xoxb-test"));
}

#[test]
fn webhook_url_is_never_echoed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("hook");
    std::fs::write(&f, "http://hooks.example.com/services/T/B/SECRETPART").expect("write");
    let err = build(&format!(
        "{{type: slack, name: s, webhook_url_file: '{}'}}",
        f.display()
    ))
    .expect_err("plain http to a remote host");
    assert!(err.starts_with("sink `s`: webhook_url_file:"), "{err}");
    assert!(!err.contains("SECRETPART"), "{err}");
}

mod cards {
    use super::super::message::{Card, Status, action_reply, card, reply};
    use crate::alert::notice::{DriftEvent, NoticeKind};
    use crate::alert::templates::sample_notice;
    use slack_morphism::SlackMessageContent;
    use slack_morphism::prelude::SlackBlock;

    const AT: &str = "2026-11-26T11:25:00Z";

    fn states() -> Vec<(&'static str, DriftEvent, Status)> {
        vec![
            ("opened", DriftEvent::Opened, Status::Open),
            ("changed", DriftEvent::Changed, Status::Open),
            ("escalated", DriftEvent::Escalated, Status::Open),
            ("reopened", DriftEvent::Reopened, Status::Open),
            ("reminder", DriftEvent::Reminder, Status::Open),
            (
                "resolved",
                DriftEvent::Resolved,
                Status::Resolved { at: AT.into() },
            ),
            (
                "acknowledged",
                DriftEvent::Changed,
                Status::Acknowledged {
                    by: "U0ALICE".into(),
                },
            ),
            (
                "silenced",
                DriftEvent::Changed,
                Status::Silenced {
                    by: "U0ALICE".into(),
                    until: "2026-11-27T11:25:00.000Z".into(),
                },
            ),
        ]
    }

    #[test]
    fn every_card_state_is_pinned_and_valid_block_kit() {
        let n = sample_notice(NoticeKind::Escalated);
        let d = &n.drifts[0];
        for (name, event, status) in states() {
            let open = status == Status::Open;
            let v = card(&Card {
                env: "production",
                drift: d,
                event,
                status,
                public_url: Some("https://envdrift.example.com/"),
                at: AT,
            });
            let content: SlackMessageContent =
                serde_json::from_value(v.clone()).expect("slack-morphism reads it");
            let blocks = content.blocks.expect("blocks");
            assert!(blocks.len() <= 8, "{name}");
            assert!(
                !blocks.iter().any(|b| matches!(b, SlackBlock::Unknown(_))),
                "{name}"
            );
            let text = v.to_string();
            assert_eq!(text.contains("envdrift_ack"), open, "{name}: {text}");
            assert!(
                text.contains("https://envdrift.example.com/drifts/42"),
                "{name}"
            );
            insta::assert_json_snapshot!(format!("card_{name}"), v);
        }
    }

    #[test]
    fn a_new_drift_is_never_titled_changed_and_back() {
        let n = sample_notice(NoticeKind::Drift);
        let title = |event| {
            card(&Card {
                env: "production",
                drift: &n.drifts[0],
                event,
                status: Status::Open,
                public_url: None,
                at: AT,
            })["blocks"][0]["text"]["text"]
                .as_str()
                .unwrap_or("")
                .to_string()
        };
        assert!(title(DriftEvent::Opened).starts_with("New drift:"));
        assert!(title(DriftEvent::Changed).starts_with("Drift changed:"));
        // No public_url: no link button, the other buttons stay.
        let v = card(&Card {
            env: "production",
            drift: &n.drifts[0],
            event: DriftEvent::Opened,
            status: Status::Open,
            public_url: None,
            at: AT,
        });
        let s = v.to_string();
        assert!(!s.contains("envdrift_open") && s.contains("envdrift_silence"));
    }

    #[test]
    fn long_values_stay_within_slacks_limits() {
        let mut n = sample_notice(NoticeKind::Drift);
        let d = &mut n.drifts[0];
        let c = d.changes[0].clone();
        for i in 0..40 {
            let mut c = c.clone();
            c.field = format!("data.KEY_{i}");
            c.live = "x".repeat(500);
            d.changes.push(c);
        }
        d.resource = format!("Deployment shop/{}", "w".repeat(300));
        let v = card(&Card {
            env: "production",
            drift: d,
            event: DriftEvent::Changed,
            status: Status::Open,
            public_url: None,
            at: AT,
        });
        for b in v["blocks"].as_array().expect("blocks") {
            if let Some(t) = b["text"]["text"].as_str() {
                let max = if b["type"] == "header" { 150 } else { 3000 };
                assert!(t.chars().count() <= max, "{}", b["type"]);
            }
        }
        assert!(v.to_string().contains("more changes"));
    }

    #[test]
    fn thread_replies_are_pinned() {
        let n = sample_notice(NoticeKind::Escalated);
        let d = &n.drifts[0];
        let mut out = String::new();
        for e in [
            DriftEvent::Opened,
            DriftEvent::Changed,
            DriftEvent::Escalated,
            DriftEvent::Reopened,
            DriftEvent::Reminder,
            DriftEvent::Resolved,
        ] {
            out.push_str(&format!("{}: {}\n", e.as_str(), reply(e, d)));
        }
        for (name, _, status) in states().into_iter().skip(6) {
            out.push_str(&format!("{name}: {}\n", action_reply(&status)));
        }
        insta::assert_snapshot!("thread_replies", out);
    }
}

#[test]
fn signing_secret_needs_a_bot_token_and_is_never_shown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hook = dir.path().join("hook");
    std::fs::write(&hook, "https://hooks.slack.com/services/T/B/X").expect("write");
    let secret = dir.path().join("signing");
    std::fs::write(&secret, "SIGNINGsecretVALUE\n").expect("write");
    let err = build(&format!(
        "{{type: slack, name: s, webhook_url_file: '{}', signing_secret_file: '{}'}}",
        hook.display(),
        secret.display()
    ))
    .expect_err("webhook with buttons");
    assert!(
        err.starts_with("sink `s`: signing_secret_file: the buttons need a bot token"),
        "{err}"
    );
    let tok = dir.path().join("token");
    std::fs::write(&tok, "xoxb-test\n").expect("write");
    let ok = build(&format!(
        "{{type: slack, name: s, channel: C1, token_file: '{}', signing_secret_file: '{}', public_url: 'https://envdrift.example.com/'}}",
        tok.display(),
        secret.display()
    ))
    .expect("builds");
    let shown = format!("{ok:?}");
    assert!(!shown.contains("SIGNINGsecretVALUE") && !shown.contains("xoxb-test"));
    let crate::alert::Sink::Slack(s) = &ok else {
        panic!("a Slack sink")
    };
    assert!(s.interactive());
    let err = build(&format!(
        "{{type: slack, name: s, channel: C1, token_file: '{}', public_url: 'http://envdrift.example.com'}}",
        tok.display()
    ))
    .expect_err("plain http public_url");
    assert!(err.starts_with("sink `s`: public_url: plain http"), "{err}");
}

#[test]
fn a_digest_of_changed_drifts_is_not_titled_new() {
    let mut n = sample_notice(NoticeKind::Drift);
    for d in &mut n.drifts {
        d.event = Some(crate::alert::notice::DriftEvent::Changed);
    }
    let json = serde_json::to_string(&message(&templates(), &n).expect("message")).expect("json");
    assert!(json.contains("*Drift changed*"), "{json}");
    assert!(!json.contains("New drift"), "{json}");
    assert!(json.contains("— *changed*"), "{json}");
}
