//! Property tests of adopt-into-Git edits: for random desired/live pairs, the desired
//! object written as YAML is edited by [`adopt_text`]; the edited text must parse, and when
//! every change was made as an edit (no notes), it must compare clean against live. The
//! editor must never panic, whatever the input.

use envdrift::diff::{Options, compare};
use envdrift::model::DriftType;
use envdrift::source::adopt::{adopt_text, to_block_yaml};
use envdrift::source::dump::{LoadOptions, load_text};
use proptest::prelude::*;
use serde_json::Value;

/// `indented`: sequences indented under their key (as people write them, and as
/// [`to_block_yaml`] emits) instead of serde-saphyr's indentless style.
fn check_adopt(
    desired: Value,
    live: Value,
    comment: bool,
    indented: bool,
) -> Result<(), TestCaseError> {
    let mut text = if indented {
        to_block_yaml(&desired)
    } else {
        serde_saphyr::to_string(&desired).unwrap()
    };
    if comment {
        // comments before, inside and after the document must survive
        text = format!(
            "# head\n{}",
            text.replace("\nspec:", "\n# about spec\nspec:")
        );
        text.push_str("# tail\n");
    }
    let opts = LoadOptions::default();
    let d = load_text(&text, "m.yaml", &opts);
    prop_assert!(d.errors.is_empty(), "{:?}\n{}", d.errors, text);
    let live_opts = LoadOptions {
        side: "live".into(),
        default_namespace: None,
        ..LoadOptions::default()
    };
    let l = load_text(&serde_json::to_string(&live).unwrap(), "live", &live_opts);
    let result = compare(&d, &l, &Options::default());
    for drift in result
        .drifts
        .iter()
        .filter(|x| x.drift_type == DriftType::Modified)
    {
        let Ok((new, notes)) = adopt_text(&text, 1, drift) else {
            continue;
        };
        let d2 = load_text(&new, "m.yaml", &opts);
        prop_assert!(
            d2.errors.is_empty(),
            "edited text does not parse: {:?}\n--- before\n{}\n--- after\n{}",
            d2.errors,
            text,
            new
        );
        if comment {
            prop_assert!(
                new.starts_with("# head\n") && new.contains("# tail\n"),
                "{}",
                new
            );
        }
        if notes.is_empty() {
            let again = compare(&d2, &l, &Options::default());
            let left: Vec<_> = again
                .drifts
                .iter()
                .filter(|x| x.drift_type == DriftType::Modified)
                .collect();
            prop_assert!(
                left.is_empty(),
                "still drifting: {:#?}\n--- before\n{}\n--- after\n{}",
                left,
                text,
                new
            );
        }
    }
    Ok(())
}

#[path = "common/objects.rs"]
mod objects;
use objects::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn random_custom_resources(ds in tree(), de in tree(), ls in tree(), le in tree(), c in any::<bool>(), i in any::<bool>()) {
        check_adopt(custom_resource(ds, de), custom_resource(ls, le), c, i)?;
    }

    #[test]
    fn random_deployments(d in deployment_strategy(), l in deployment_strategy(), c in any::<bool>(), i in any::<bool>()) {
        check_adopt(d, l, c, i)?;
    }
}
