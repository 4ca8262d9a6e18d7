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
