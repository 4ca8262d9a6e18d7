//! Documentation that must match the code.

#[test]
fn readme_severity_table_matches_the_built_in_rules() {
    let readme = include_str!("../README.md");
    let start = readme
        .find("<!-- rules-table:start -->\n")
        .expect("start marker")
        + "<!-- rules-table:start -->\n".len();
    let end = readme.find("<!-- rules-table:end -->").expect("end marker");
    assert_eq!(
        &readme[start..end],
        envdrift::classify::rules_markdown(),
        "README table out of date: run `cargo run -- dev rules-table` and paste it between the markers"
    );
}

#[test]
fn json_schema_doc_names_every_top_level_key() {
    let doc = include_str!("../docs/json-schema.md");
    for key in [
        "schema",
        "summary",
        "drifts",
        "errors",
        "skipped",
        "unknown",
        "by_severity",
        "by_type",
        "suppressed",
        "patch_verified",
        "kubectl",
        "fingerprint",
        "manager",
        "cause",
        "category",
        "stale",
        "adopt",
    ] {
        assert!(
            doc.contains(&format!("`{key}`")),
            "docs/json-schema.md does not document `{key}`"
        );
    }
}
