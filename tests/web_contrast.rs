//! The web page's colours checked by a tool: web/style.css's colour variables, light
//! (`:root`) and dark (`@media (prefers-color-scheme: dark)`), parsed here, and the WCAG 2.x
//! contrast ratio of every text/background pair the page uses computed for each scheme:
//! at least 4.5:1 for text, 3:1 for large text and for UI components and graphics
//! (focus ring, form-control borders, chart series). Each pair names the CSS rule that uses
//! it, which must be in the stylesheet, so the list cannot drift away from the CSS.

use std::collections::BTreeMap;

const CSS: &str = include_str!("../web/style.css");

/// `--name: #rrggbb` declarations of one block.
fn vars(block: &str) -> BTreeMap<String, [u8; 3]> {
    let mut out = BTreeMap::new();
    for decl in block.split(';') {
        let Some((k, v)) = decl.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        let Some(name) = k.strip_prefix("--") else {
            continue;
        };
        let hex = v
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("--{name}: {v} is not #rrggbb"));
        assert_eq!(hex.len(), 6, "--{name}: {v} is not #rrggbb");
        let c = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).unwrap();
        out.insert(name.to_string(), [c(0), c(2), c(4)]);
    }
    out
}

/// The text between the `{` after `from` and its matching `}`.
fn block_after<'a>(css: &'a str, from: &str) -> &'a str {
    let start = css
        .find(from)
        .unwrap_or_else(|| panic!("no `{from}` in style.css"));
    let open = start + css[start..].find('{').unwrap();
    let mut depth = 0;
    for (i, ch) in css[open..].char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &css[open + 1..open + i];
                }
            }
            _ => {}
        }
    }
    panic!("unclosed block after `{from}`")
}

/// (light, dark) variables; dark inherits what it does not set.
fn schemes() -> (BTreeMap<String, [u8; 3]>, BTreeMap<String, [u8; 3]>) {
    let light = vars(block_after(CSS, ":root"));
    let media = block_after(CSS, "@media (prefers-color-scheme: dark)");
    let mut dark = light.clone();
    dark.extend(vars(block_after(media, ":root")));
    (light, dark)
}

/// WCAG 2.x relative luminance.
fn luminance(c: [u8; 3]) -> f64 {
    let lin = |v: u8| {
        let s = f64::from(v) / 255.0;
        if s <= 0.040_45 {
            s / 12.92
        } else {
            ((s + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * lin(c[0]) + 0.7152 * lin(c[1]) + 0.0722 * lin(c[2])
}

/// WCAG 2.x contrast ratio, 1 to 21.
fn ratio(a: [u8; 3], b: [u8; 3]) -> f64 {
    let (la, lb) = (luminance(a), luminance(b));
    let (hi, lo) = if la > lb { (la, lb) } else { (lb, la) };
    (hi + 0.05) / (lo + 0.05)
}

const TEXT: f64 = 4.5;
const UI: f64 = 3.0;

/// (what, foreground var, background var, minimum, a CSS rule that uses it).
const PAIRS: &[(&str, &str, &str, f64, &str)] = &[
    (
        "body text",
        "fg",
        "bg",
        TEXT,
        "body { margin: 0; background: var(--bg); color: var(--fg); }",
    ),
    (
        "text in panels, code, buttons",
        "fg",
        "panel",
        TEXT,
        "button { cursor: pointer; background: var(--panel); }",
    ),
    ("links", "link", "bg", TEXT, "a { color: var(--link); }"),
    (
        "links in the header",
        "link",
        "panel",
        TEXT,
        "background: var(--panel); }",
    ),
    (
        "muted text",
        "muted",
        "bg",
        TEXT,
        "footer { color: var(--muted);",
    ),
    (
        "muted text in the header",
        "muted",
        "panel",
        TEXT,
        ".who { display: flex; align-items: center; gap: 0.5rem; color: var(--muted); }",
    ),
    (
        "expected divergences (greyed)",
        "muted",
        "bg",
        TEXT,
        "tr.expected td, tr.expected th { color: var(--muted); }",
    ),
    (
        "expected values (greyed)",
        "muted",
        "panel",
        TEXT,
        "tr.expected pre { color: var(--muted); }",
    ),
    (
        "badge critical",
        "crit",
        "bg",
        TEXT,
        ".sev-critical { color: var(--crit); }",
    ),
    (
        "badge high",
        "high",
        "bg",
        TEXT,
        ".sev-high { color: var(--high); }",
    ),
    (
        "badge medium",
        "med",
        "bg",
        TEXT,
        ".sev-medium { color: var(--med); }",
    ),
    (
        "badge low",
        "low",
        "bg",
        TEXT,
        ".sev-low { color: var(--low); }",
    ),
    (
        "badge info",
        "info",
        "bg",
        TEXT,
        ".sev-info { color: var(--info); }",
    ),
    (
        "state in sync",
        "ok",
        "bg",
        TEXT,
        ".state-in-sync { color: var(--ok); }",
    ),
    (
        "state drifted",
        "bad",
        "bg",
        TEXT,
        ".state-drifted { color: var(--bad); }",
    ),
    (
        "state stale",
        "warn",
        "bg",
        TEXT,
        ".state-stale { color: var(--warn); }",
    ),
    ("errors", "bad", "bg", TEXT, ".error { color: var(--bad); }"),
    (
        "changed value",
        "fg",
        "chg-bg",
        TEXT,
        "pre.changed { background: var(--chg-bg); }",
    ),
    (
        "added value",
        "fg",
        "add-bg",
        TEXT,
        "pre.changed { background: var(--add-bg); }",
    ),
    (
        "removed value",
        "fg",
        "del-bg",
        TEXT,
        "pre.changed { background: var(--del-bg); }",
    ),
    (
        "chart labels",
        "muted",
        "bg",
        TEXT,
        "svg text { fill: var(--muted);",
    ),
    (
        "chart legend",
        "fg",
        "bg",
        TEXT,
        "svg .legend text { fill: var(--fg); }",
    ),
    (
        "focus ring",
        "focus",
        "bg",
        UI,
        "outline: 3px solid var(--focus);",
    ),
    (
        "focus ring on panels",
        "focus",
        "panel",
        UI,
        "outline: 3px solid var(--focus);",
    ),
    (
        "form-control borders",
        "control",
        "bg",
        UI,
        "border: 1px solid var(--control);",
    ),
    (
        "button borders",
        "control",
        "panel",
        UI,
        "border: 1px solid var(--control);",
    ),
    (
        "series 0",
        "s0",
        "bg",
        UI,
        "svg .series-0 { stroke: var(--s0);",
    ),
    (
        "series 1",
        "s1",
        "bg",
        UI,
        "svg .series-1 { stroke: var(--s1);",
    ),
    (
        "series 2",
        "s2",
        "bg",
        UI,
        "svg .series-2 { stroke: var(--s2);",
    ),
    (
        "series 3",
        "s3",
        "bg",
        UI,
        "svg .series-3 { stroke: var(--s3);",
    ),
    (
        "series 4",
        "s4",
        "bg",
        UI,
        "svg .series-4 { stroke: var(--s4);",
    ),
    (
        "series 5",
        "s5",
        "bg",
        UI,
        "svg .series-5 { stroke: var(--s5);",
    ),
    (
        "series 6",
        "s6",
        "bg",
        UI,
        "svg .series-6 { stroke: var(--s6);",
    ),
    (
        "series 7",
        "s7",
        "bg",
        UI,
        "svg .series-7 { stroke: var(--s7);",
    ),
];

#[test]
fn every_text_and_ui_colour_pair_meets_wcag_aa_in_light_and_dark() {
    let (light, dark) = schemes();
    let mut failures = Vec::new();
    let mut report = Vec::new();
    for (scheme, v) in [("light", &light), ("dark", &dark)] {
        for (what, fg, bg, min, rule) in PAIRS {
            assert!(
                CSS.contains(rule),
                "{what}: the rule `{rule}` is not in web/style.css"
            );
            let f = v
                .get(*fg)
                .unwrap_or_else(|| panic!("--{fg} not set ({scheme})"));
            let b = v
                .get(*bg)
                .unwrap_or_else(|| panic!("--{bg} not set ({scheme})"));
            let r = ratio(*f, *b);
            report.push(format!("{scheme:5} {what:32} --{fg} on --{bg}: {r:.2}:1"));
            if r < *min {
                failures.push(format!(
                    "{scheme}: {what} (--{fg} on --{bg}) is {r:.2}:1, needs {min}:1"
                ));
            }
        }
    }
    eprintln!("{}", report.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn greyed_text_is_not_faded_further() {
    // Opacity on text lowers its contrast below what the check above computed.
    assert!(
        !CSS.contains("opacity"),
        "style.css fades something with opacity: use a checked colour instead"
    );
}

#[test]
fn keyboard_focus_is_visible() {
    for control in ["a", "button", "select", "input"] {
        assert!(
            CSS.contains(&format!("{control}:focus-visible")),
            "no :focus-visible style for {control}"
        );
    }
}

#[test]
fn the_ratio_is_wcags() {
    // WCAG's own end points and a known pair.
    assert!((ratio([0, 0, 0], [255, 255, 255]) - 21.0).abs() < 1e-9);
    assert!((ratio([119, 119, 119], [255, 255, 255]) - 4.48).abs() < 0.01);
    assert!((ratio([10, 20, 30], [10, 20, 30]) - 1.0).abs() < 1e-9);
}
