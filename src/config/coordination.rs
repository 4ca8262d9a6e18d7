//! The `daemon` section: how several daemon replicas split the work (issue 17).
//!
//! ```yaml
//! daemon:
//!   coordination:
//!     type: kubernetes
//!     in_cluster: true          # or kubeconfig/context
//!     namespace: envdrift       # where the Leases live
//!     identity: envdrift-0      # default: $POD_NAME, else the host name
//!     lease_duration: 15s
//! ```
//!
//! Without `coordination` the daemon is the only replica and owns every target.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The `daemon` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonSection {
    /// How replicas split the targets. Default: none (one replica owns everything).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordination: Option<CoordinationConfig>,
}

impl DaemonSection {
    /// Nothing set (the section is left out when the config is written back).
    pub fn is_default(&self) -> bool {
        self == &DaemonSection::default()
    }
}

/// `daemon.coordination`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum CoordinationConfig {
    /// `coordination.k8s.io/v1` Leases in one namespace.
    Kubernetes(KubeCoordination),
    /// Rows with expiry in the shared PostgreSQL store (`store.type: postgres`), for
    /// setups without a cluster (dir, dump, git sources).
    Store(StoreCoordination),
}

/// `daemon.coordination` with `type: store`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreCoordination {
    /// This replica's name in the targets table. Default: `$POD_NAME`, else the host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// How long a claim holds without renewal (renewed every third of it). Default: `15s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_duration: Option<String>,
}

impl StoreCoordination {
    fn as_kube(&self) -> KubeCoordination {
        KubeCoordination {
            identity: self.identity.clone(),
            lease_duration: self.lease_duration.clone(),
            ..KubeCoordination::default()
        }
    }

    /// The lease duration (as [`KubeCoordination::lease_duration`]).
    ///
    /// # Errors
    /// An unparsable, sub-second or huge value.
    pub fn lease_duration(&self) -> Result<Duration, String> {
        self.as_kube().lease_duration()
    }

    /// The identity (as [`KubeCoordination::identity`]).
    pub fn identity(&self) -> Option<String> {
        self.as_kube().identity()
    }

    /// Problems as `(key under daemon.coordination, message)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        self.as_kube().problems()
    }
}

/// `daemon.coordination` with `type: kubernetes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeCoordination {
    /// Kubeconfig file (relative to the config file). Default: KUBECONFIG, else ~/.kube/config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<PathBuf>,
    /// Context in the kubeconfig. Default: its current context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Use the pod's service account. Default: false.
    #[serde(default)]
    pub in_cluster: bool,
    /// Namespace of the Leases. Default: the pod's namespace in-cluster, else `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// This replica's name in the Leases. Default: `$POD_NAME`, else the host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// How long a Lease holds without renewal (renewed every third of it). Default: `15s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_duration: Option<String>,
}

/// Default `lease_duration`.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);

impl KubeCoordination {
    /// The lease duration, or the problem with `lease_duration` (whole seconds, at least 1 s:
    /// `leaseDurationSeconds` is an integer).
    ///
    /// # Errors
    /// An unparsable, sub-second or huge value.
    pub fn lease_duration(&self) -> Result<Duration, String> {
        let Some(s) = &self.lease_duration else {
            return Ok(DEFAULT_LEASE_DURATION);
        };
        let d = crate::config::parse_duration(s)?;
        if d < Duration::from_secs(1) || d.subsec_nanos() != 0 {
            return Err(format!("`{s}`: a whole number of seconds, at least 1s"));
        }
        if d > Duration::from_secs(3600) {
            return Err(format!("`{s}`: at most 1h"));
        }
        Ok(d)
    }

    /// The identity: `identity`, else `$POD_NAME`, else the host name.
    pub fn identity(&self) -> Option<String> {
        let non_empty = |s: String| {
            let s = s.trim().to_string();
            (!s.is_empty()).then_some(s)
        };
        self.identity
            .clone()
            .and_then(non_empty)
            .or_else(|| std::env::var("POD_NAME").ok().and_then(non_empty))
            .or_else(|| std::env::var("HOSTNAME").ok().and_then(non_empty))
            .or_else(|| {
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .and_then(non_empty)
            })
    }

    /// Problems as `(key under daemon.coordination, message)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Err(e) = self.lease_duration() {
            out.push(("lease_duration".into(), e));
        }
        if self.in_cluster && (self.kubeconfig.is_some() || self.context.is_some()) {
            out.push((
                "in_cluster".into(),
                "`in_cluster: true` uses the pod's service account: drop `kubeconfig`/`context`"
                    .into(),
            ));
        }
        if let Some(ns) = &self.namespace
            && !crate::config::is_dns_label(ns)
        {
            out.push((
                "namespace".into(),
                format!("`{ns}` is not a namespace name (lowercase letters, digits and `-`)"),
            ));
        }
        if self.identity().is_none() {
            out.push((
                "identity".into(),
                "no identity: set it, or POD_NAME (the chart does) or HOSTNAME".into(),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_duration_is_whole_seconds_with_a_default() {
        let mut k = KubeCoordination::default();
        assert_eq!(k.lease_duration().unwrap(), Duration::from_secs(15));
        k.lease_duration = Some("3s".into());
        assert_eq!(k.lease_duration().unwrap(), Duration::from_secs(3));
        for bad in ["500ms", "0s", "2h", "soon"] {
            k.lease_duration = Some(bad.into());
            assert!(k.lease_duration().is_err(), "{bad}");
        }
    }
}
