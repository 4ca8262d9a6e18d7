//! Prometheus metrics (prometheus-client): open drifts by target/severity/category, scans
//! by outcome, scan duration, alert deliveries and failures, API requests by route and
//! status. Served as text by the API's `/metrics`.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScanLabels {
    pub target: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabels {
    pub target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabels {
    pub sink: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    pub sink: String,
    /// `sent`, `retry`, `failed`.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabels {
    pub route: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpenLabels {
    pub target: String,
    pub severity: String,
    pub category: String,
}

fn duration_histogram() -> Histogram {
    Histogram::new([0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0])
}

/// The metrics of one daemon.
pub struct Metrics {
    registry: Mutex<Registry>,
    pub scans: Family<ScanLabels, Counter>,
    pub scan_duration: Family<TargetLabels, Histogram, fn() -> Histogram>,
    pub deliveries: Family<DeliveryLabels, Counter>,
    pub outbox_stalled: Family<SinkLabels, Counter>,
    pub compare_cancelled: Counter,
    /// On-demand comparisons computed (not served from the outcome cache).
    pub compare_computed: Counter,
    pub api_requests: Family<ApiLabels, Counter>,
    pub open_drifts: Family<OpenLabels, Gauge>,
    /// Trends over the last 30 days, set by `web::trends::set_gauges` when `/metrics` is
    /// scraped.
    pub trend_mttr: Family<TargetLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub trend_in_sync: Family<TargetLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub trend_opened_7d: Family<TargetLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("envdrift");
        let scans = Family::<ScanLabels, Counter>::default();
        let scan_duration =
            Family::<TargetLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                duration_histogram,
            );
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        let outbox_stalled = Family::<SinkLabels, Counter>::default();
        let compare_cancelled = Counter::default();
        let compare_computed = Counter::default();
        let api_requests = Family::<ApiLabels, Counter>::default();
        let open_drifts = Family::<OpenLabels, Gauge>::default();
        registry.register(
            "scans",
            "Scans by target and outcome (ok, partial, failed)",
            scans.clone(),
        );
        registry.register(
            "scan_duration_seconds",
            "Scan duration by target",
            scan_duration.clone(),
        );
        registry.register(
            "alert_deliveries",
            "Alert delivery attempts by sink and result (sent, retry, failed)",
            deliveries.clone(),
        );
        registry.register(
            "outbox_stalled",
            "Delivery queue rounds that failed (store error or panic) and were restarted, by sink",
            outbox_stalled.clone(),
        );
        registry.register(
            "api_compare_cancelled",
            "On-demand comparisons stopped because their request ended (timeout or client gone)",
            compare_cancelled.clone(),
        );
        registry.register(
            "api_compare_computed",
            "On-demand comparisons computed; the others were served from the cache (unchanged sources and config)",
            compare_computed.clone(),
        );
        registry.register(
            "api_requests",
            "API requests by route and status",
            api_requests.clone(),
        );
        registry.register(
            "open_drifts",
            "Open drifts by target, severity and category",
            open_drifts.clone(),
        );
        let trend_mttr =
            Family::<TargetLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        let trend_in_sync =
            Family::<TargetLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        let trend_opened_7d = Family::<TargetLabels, Gauge>::default();
        registry.register(
            "trend_mean_time_to_resolve_seconds",
            "Mean time to resolve the drifts resolved in the last 30 days, by target (absent when none was)",
            trend_mttr.clone(),
        );
        registry.register(
            "trend_in_sync_ratio",
            "Share of the last 30 days (with a known state) each target was in sync, 0 to 1",
            trend_in_sync.clone(),
        );
        registry.register(
            "trend_drifts_opened_7d",
            "Drifts opened in the last 7 days, by target",
            trend_opened_7d.clone(),
        );
        Metrics {
            trend_mttr,
            trend_in_sync,
            trend_opened_7d,
            registry: Mutex::new(registry),
            scans,
            scan_duration,
            deliveries,
            outbox_stalled,
            compare_cancelled,
            compare_computed,
            api_requests,
            open_drifts,
        }
    }
}

impl Metrics {
    /// Registers a metric of another part of the daemon (watch mode's, `daemon::watch`).
    pub(crate) fn register(
        &self,
        name: &str,
        help: &str,
        metric: impl prometheus_client::registry::Metric,
    ) {
        self.registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .register(name, help, metric);
    }

    /// Sets the open-drift gauges from the store's open drift counts.
    pub(crate) fn set_open(&self, rows: &[crate::store::OpenCount]) {
        self.open_drifts.clear();
        for row in rows {
            for c in &row.categories {
                self.open_drifts
                    .get_or_create(&OpenLabels {
                        target: row.target.clone(),
                        severity: row.severity.as_str().to_string(),
                        category: c.clone(),
                    })
                    .inc();
            }
        }
    }

    /// The Prometheus text exposition.
    /// The metrics in the Prometheus text format 0.0.4 (what `promtool check metrics` and
    /// scrapers without OpenMetrics read): see [`to_prometheus_text`].
    pub fn encode_prometheus_text(&self) -> String {
        to_prometheus_text(&self.encode())
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        let reg = self
            .registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if prometheus_client::encoding::text::encode(&mut out, &reg).is_err() {
            out.clear();
        }
        out
    }
}

/// Converts OpenMetrics text to the Prometheus text format 0.0.4: a counter family `x` is
/// named `x_total` there (its HELP and TYPE must name the samples), `_created` samples,
/// `# UNIT` and `# EOF` do not exist. Other families are the same in both.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .filter(|(_, t)| *t == "counter")
        .map(|(name, _)| name)
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = line
            .strip_prefix("# HELP ")
            .map(|r| ("# HELP ", r))
            .or_else(|| line.strip_prefix("# TYPE ").map(|r| ("# TYPE ", r)));
        if let Some((tag, rest)) = meta {
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            if counters.contains(name) {
                out.push_str(&format!("{tag}{name}_total {tail}\n"));
                continue;
            }
        }
        let sample = line.split(['{', ' ']).next().unwrap_or("");
        if sample
            .strip_suffix("_created")
            .is_some_and(|base| counters.contains(base))
        {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod text_format_tests {
    use super::*;

    /// Every sample's family has HELP and TYPE under the name the sample uses (what
    /// `promtool check metrics` checks first).
    #[test]
    fn prometheus_text_names_every_family_by_its_samples() {
        let m = Metrics::default();
        m.scans
            .get_or_create(&ScanLabels {
                target: "prod".into(),
                outcome: "ok".into(),
            })
            .inc();
        m.deliveries
            .get_or_create(&DeliveryLabels {
                sink: "ops".into(),
                result: "sent".into(),
            })
            .inc();
        m.compare_cancelled.inc();
        let text = m.encode_prometheus_text();
        assert!(!text.contains("# EOF"), "{text}");
        let helped: std::collections::HashSet<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# HELP "))
            .filter_map(|r| r.split(' ').next())
            .collect();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let name = line.split(['{', ' ']).next().unwrap_or("");
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|b| helped.contains(b)))
                .unwrap_or(name);
            assert!(helped.contains(family), "no HELP for {name}:\n{text}");
        }
        assert!(
            text.contains("# TYPE envdrift_scans_total counter"),
            "{text}"
        );
        assert!(
            text.contains("envdrift_scans_total{target=\"prod\",outcome=\"ok\"} 1"),
            "{text}"
        );
    }
}
