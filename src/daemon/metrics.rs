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
    pub api_requests: Family<ApiLabels, Counter>,
    pub open_drifts: Family<OpenLabels, Gauge>,
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
            "api_requests",
            "API requests by route and status",
            api_requests.clone(),
        );
        registry.register(
            "open_drifts",
            "Open drifts by target, severity and category",
            open_drifts.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            scans,
            scan_duration,
            deliveries,
            outbox_stalled,
            compare_cancelled,
            api_requests,
            open_drifts,
        }
    }
}

impl Metrics {
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
