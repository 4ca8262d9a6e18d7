//! Git push webhooks on the daemon's side (`POST /api/v1/hooks/git`, `src/api/hooks.rs`):
//! which environments a push changed, and making them read their desired side at once.
//!
//! A push names its repository by several URLs (https, ssh, the web page) and a ref. An
//! environment matches when its desired side is a `type: git` source whose `repo` is the
//! same repository once normalised ([`repo_key`]: scheme, user, port, `.git`, trailing
//! slash and the case of the host set aside; `git@host:path` = `ssh://git@host/path`) and
//! whose `ref` is the pushed branch or tag (`main`, `refs/heads/main`; a commit SHA never
//! matches: a push does not move it).
//!
//! - A watched environment (watch mode) is woken: its task reads the desired side again
//!   (a fetch and render) and, when it changed, evaluates the environment, exactly as on
//!   its `desired_interval`.
//! - Another environment gets a scan queued ([`Daemon::trigger_scan`]), which reads both
//!   sides.
//!
//! Scheduled comparisons compare live sides, which a push does not change: they are not
//! triggered.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::Serialize;
use tokio::sync::Notify;

use super::{Daemon, Target, Triggered};
use crate::config::{Config, SourceConfig};
use crate::store::StoreError;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HookLabels {
    pub provider: String,
    pub result: String,
}

/// The daemon's webhook state: one wake-up per watched environment's desired side.
#[derive(Default)]
pub struct HookState {
    wake: BTreeMap<String, Arc<Notify>>,
    received: OnceLock<Family<HookLabels, Counter>>,
}

impl HookState {
    pub(crate) fn new(cfg: &Config) -> HookState {
        HookState {
            wake: cfg
                .environments
                .iter()
                .filter(|(_, e)| super::watch::watched(e))
                .map(|(n, _)| (n.clone(), Arc::new(Notify::new())))
                .collect(),
            received: OnceLock::new(),
        }
    }

    /// The wake-up of a watched environment's desired side.
    pub(crate) fn desired_wake(&self, env: &str) -> Option<Arc<Notify>> {
        self.wake.get(env).cloned()
    }
}

/// One environment a push triggered (the API's answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushTriggered {
    pub environment: String,
    /// `watch`: its watch task reads the desired side again; `scan`: a scan was queued.
    pub how: &'static str,
    /// The queued scan (`how: scan`; null for `watch`).
    pub scan_id: Option<i64>,
}

/// A repository URL or local path reduced to `host/path` for comparison: no scheme, user,
/// port, `.git` suffix or trailing slash, the host in lower case; `git@host:path` and
/// `ssh://git@host/path` are the same; a local path or `file://` URL is `/path`.
pub fn repo_key(url: &str) -> String {
    let u = url.trim();
    let (host, path) = if let Some((_, rest)) = u.split_once("://") {
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = match host.rsplit_once(':') {
            // `[::1]:22` keeps its brackets; a port after the last `:` goes.
            Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
            _ => host,
        };
        (host.to_ascii_lowercase(), path.to_string())
    } else if let Some((before, path)) = u.split_once(':')
        && !before.is_empty()
        && !before.contains('/')
    {
        // scp-like `user@host:path` (and `host:path`).
        let host = before.rsplit_once('@').map_or(before, |(_, h)| h);
        (host.to_ascii_lowercase(), path.to_string())
    } else {
        (String::new(), u.to_string())
    };
    let mut p = path.trim_matches('/');
    while let Some(s) = p.strip_suffix(".git").or_else(|| p.strip_suffix('/')) {
        p = s.trim_end_matches('/');
    }
    format!("{host}/{p}")
}

/// Whether a source's `ref` follows the pushed ref (`refs/heads/main`, `refs/tags/v1`).
pub fn ref_matches(source_ref: &str, pushed: &str) -> bool {
    let r = source_ref.trim();
    r == pushed
        || pushed.strip_prefix("refs/heads/") == Some(r)
        || pushed.strip_prefix("refs/tags/") == Some(r)
}

/// The environments whose desired Git source is `urls`' repository at `reference`.
pub fn matching(cfg: &Config, base: &Path, urls: &[String], reference: &str) -> Vec<String> {
    let keys: Vec<String> = urls.iter().map(|u| repo_key(u)).collect();
    cfg.environments
        .iter()
        .filter(|(_, e)| {
            let SourceConfig::Git(g) = &e.desired else {
                return false;
            };
            // A relative local path is relative to the config file, as in `spec`.
            let repo = if !g.repo.contains("://")
                && !g.repo.contains('@')
                && !Path::new(&g.repo).is_absolute()
            {
                base.join(&g.repo).display().to_string()
            } else {
                g.repo.clone()
            };
            let k = repo_key(&repo);
            keys.contains(&k) && ref_matches(&g.reference, reference)
        })
        .map(|(n, _)| n.clone())
        .collect()
}

impl Daemon {
    /// A verified push of `reference` to the repository at `urls`: wakes the matching
    /// watched environments' desired side and queues scans of the other matching
    /// environments. Returns what was triggered.
    ///
    /// # Errors
    /// [`StoreError`] when a scan cannot be queued.
    pub fn git_pushed(
        self: &Arc<Self>,
        urls: &[String],
        reference: &str,
    ) -> Result<Vec<PushTriggered>, StoreError> {
        let mut out = Vec::new();
        for env in matching(&self.cfg, &self.base, urls, reference) {
            if let Some(w) = self.hooks.desired_wake(&env) {
                w.notify_one();
                out.push(PushTriggered {
                    environment: env,
                    how: "watch",
                    scan_id: None,
                });
                continue;
            }
            match self.trigger_scan(&Target::Environment(env.clone()))? {
                Triggered::Queued(id) | Triggered::AlreadyQueued(id) => out.push(PushTriggered {
                    environment: env,
                    how: "scan",
                    scan_id: Some(id),
                }),
                Triggered::QueueFull => {
                    tracing::warn!(env = %env, "Git push: too many scans waiting; the environment is read on its interval");
                }
            }
        }
        Ok(out)
    }

    /// Counts a webhook request (`envdrift_git_hooks_received_total{provider, result}`).
    pub(crate) fn count_git_hook(&self, provider: &str, result: &str) {
        let family = self.hooks.received.get_or_init(|| {
            let f = Family::<HookLabels, Counter>::default();
            self.metrics.register(
                "git_hooks_received",
                "Git push webhooks received, by provider and result (triggered, unmatched, ping, ignored, unauthorized, bad_request, error)",
                f.clone(),
            );
            f
        });
        family
            .get_or_create(&HookLabels {
                provider: provider.to_string(),
                result: result.to_string(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_repository_under_its_many_urls() {
        let want = "github.com/acme/shop";
        for u in [
            "https://github.com/acme/shop.git",
            "https://github.com/acme/shop",
            "https://github.com/acme/shop/",
            "https://GitHub.com/acme/shop.git/",
            "http://github.com/acme/shop",
            "https://bot:tok@github.com/acme/shop.git",
            "git@github.com:acme/shop.git",
            "ssh://git@github.com/acme/shop.git",
            "ssh://git@github.com:22/acme/shop",
            "git://github.com/acme/shop.git",
        ] {
            assert_eq!(repo_key(u), want, "{u}");
        }
        assert_ne!(repo_key("https://github.com/acme/shop2"), want);
        assert_ne!(repo_key("https://github.com/Acme/shop"), want);
        assert_ne!(repo_key("https://gitlab.com/acme/shop"), want);
        assert_eq!(
            repo_key("ssh://git@gitlab.example.com:2222/group/sub/proj.git"),
            repo_key("https://gitlab.example.com/group/sub/proj")
        );
        assert_eq!(repo_key("/srv/git/shop.git"), "/srv/git/shop");
        assert_eq!(repo_key("file:///srv/git/shop.git"), "/srv/git/shop");
        assert_eq!(repo_key("file:///srv/git/shop/"), "/srv/git/shop");
    }

    #[test]
    fn branches_and_tags_match_but_commits_do_not() {
        assert!(ref_matches("main", "refs/heads/main"));
        assert!(ref_matches("refs/heads/main", "refs/heads/main"));
        assert!(ref_matches("release/v2", "refs/heads/release/v2"));
        assert!(ref_matches("v1.2", "refs/tags/v1.2"));
        assert!(!ref_matches("main", "refs/heads/main2"));
        assert!(!ref_matches("main", "refs/heads/feature/main"));
        assert!(!ref_matches("0123abcd", "refs/heads/main"));
    }

    #[test]
    fn environments_match_by_repository_and_ref() {
        let cfg: Config = serde_saphyr::from_str(
            "environments:\n  prod:\n    desired: {type: git, repo: 'git@github.com:acme/shop.git', ref: main, path: prod}\n    live: {type: dump, path: live}\n  stage:\n    desired: {type: git, repo: 'https://github.com/acme/shop', ref: stage}\n    live: {type: dump, path: live}\n  other:\n    desired: {type: git, repo: 'https://github.com/acme/other', ref: main}\n    live: {type: dump, path: live}\n  local:\n    desired: {type: git, repo: 'repos/shop.git', ref: main}\n    live: {type: dump, path: live}\n  files:\n    desired: {type: dir, path: prod}\n    live: {type: dump, path: live}\n",
        )
        .unwrap();
        let base = Path::new("/etc/envdrift");
        let urls = vec![
            "https://github.com/acme/shop.git".to_string(),
            "git@github.com:acme/shop.git".to_string(),
        ];
        assert_eq!(matching(&cfg, base, &urls, "refs/heads/main"), ["prod"]);
        assert_eq!(matching(&cfg, base, &urls, "refs/heads/stage"), ["stage"]);
        assert!(matching(&cfg, base, &urls, "refs/heads/dev").is_empty());
        let local = vec!["file:///etc/envdrift/repos/shop.git".to_string()];
        assert_eq!(matching(&cfg, base, &local, "refs/heads/main"), ["local"]);
    }
}
