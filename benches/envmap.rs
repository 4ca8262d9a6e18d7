//! Micro-benchmark of `compare` value mapping (issue 12, item 8): one ConfigMap whose value
//! is 16 KB, 64 KB and 1 MB of host names, mapped with `*.staging.example.com` →
//! `*.example.com` through [`Mapping::map_snapshot`]. Bounded: three sizes, 3 runs each.
//!
//! Run: `cargo bench --bench envmap` (Markdown table on stdout; docs/performance.md).

use std::time::{Duration, Instant};

use envdrift::diff::envmap::{Mapping, MappingConfig, ValueRewrite};
use envdrift::model::{Object, Origin, ResourceKey, Snapshot};
use serde_json::json;

fn snapshot(value: &str) -> Snapshot {
    let mut snap = Snapshot::default();
    snap.objects.insert(
        ResourceKey {
            group: String::new(),
            kind: "ConfigMap".into(),
            namespace: Some("shop".into()),
            name: "hosts".into(),
        },
        Object::new(
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "hosts", "namespace": "shop"},
                   "data": {"hosts": value}}),
            Origin::Live {
                resource_version: None,
            },
        ),
    );
    snap
}

fn main() {
    let mapping = Mapping::new(&MappingConfig {
        values: vec![ValueRewrite {
            from: "*.staging.example.com".into(),
            to: "*.example.com".into(),
        }],
        ..MappingConfig::default()
    })
    .expect("valid mapping");
    println!("| value size | median of 3 |\n| --- | --- |");
    for (label, size) in [("16 KB", 16 << 10), ("64 KB", 64 << 10), ("1 MB", 1 << 20)] {
        let unit = "api-gateway-0.shop.staging.example.com,";
        let value = unit.repeat(size / unit.len() + 1);
        let mut runs: Vec<Duration> = (0..3)
            .map(|_| {
                let snap = snapshot(&value);
                let t = Instant::now();
                let out = mapping.map_snapshot(snap, "staging");
                let d = t.elapsed();
                assert_eq!(out.objects.len(), 1);
                d
            })
            .collect();
        runs.sort();
        println!("| {label} | {:.2} ms |", runs[1].as_secs_f64() * 1000.0);
    }
}
