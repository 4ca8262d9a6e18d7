//! One place that maps command-line arguments to sources and [`Job`]s: `--desired`,
//! `--live`, `--from`/`--to`, the config file and its environments.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};

use envdrift::config::{Compiled, Config};
use envdrift::source::dump::FileLimits;
use envdrift::source::render::{HelmOptions, KustomizeCommand, RenderOptions, Renderer};
use envdrift::source::{ClusterSource, FilesKind, GitSource, RenderedDir, SourceSpec, git, kube};

use super::args::{ClusterArgs, GitArgs};

impl GitArgs {
    /// The Git source of `spec` with these options.
    pub(crate) fn source(&self, spec: git::GitSpec) -> Result<SourceSpec> {
        let (auth, sync, render) = self.parts()?;
        Ok(SourceSpec::Git(Box::new(GitSource {
            spec,
            auth,
            sync,
            render,
        })))
    }

    /// `--renderer kustomize|helm` given for local paths: the directory rendered; `None`
    /// without `--renderer` or with `plain` (files read as manifests).
    pub(crate) fn local(&self, paths: &[PathBuf]) -> Result<Option<SourceSpec>> {
        let (_, _, render) = self.parts()?;
        match render.renderer {
            None | Some(Renderer::Plain) => Ok(None),
            Some(renderer) => match paths {
                [dir] => Ok(Some(SourceSpec::Rendered(Box::new(RenderedDir {
                    dir: dir.clone(),
                    renderer,
                    render,
                })))),
                _ => anyhow::bail!(
                    "--renderer {}: give one directory (a chart or a kustomization)",
                    renderer.as_str()
                ),
            },
        }
    }

    fn parts(&self) -> Result<(git::GitAuth, git::SyncOptions, RenderOptions)> {
        let renderer = match &self.renderer {
            Some(r) => Some(r.parse().map_err(anyhow::Error::msg)?),
            None => None,
        };
        let kustomize = match self.kustomize_command.as_str() {
            "auto" => KustomizeCommand::Auto,
            "kustomize" => KustomizeCommand::Kustomize,
            "kubectl" => KustomizeCommand::Kubectl,
            o => anyhow::bail!(
                "unknown --kustomize-command `{o}` (choose from: auto, kustomize, kubectl)"
            ),
        };
        let auth = git::GitAuth {
            token_file: self.git_token_file.clone(),
            token_env: self.git_token_env.clone(),
            username: self.git_username.clone(),
            ssh_key: self.git_ssh_key.clone(),
            ..git::GitAuth::default()
        };
        let mut sync = git::SyncOptions::default();
        if let Some(d) = &self.git_cache {
            sync.cache_dir.clone_from(d);
        }
        let render = RenderOptions {
            renderer,
            kustomize,
            helm: HelmOptions {
                release: self.helm_release.clone(),
                namespace: self.helm_namespace.clone(),
                values: self.helm_values.clone(),
                set: self.helm_set.clone(),
            },
            timeout: std::time::Duration::from_secs(self.render_timeout.max(1)),
            extra_path: Vec::new(),
            hooks: envdrift::source::render::RenderHooks::default(),
        };
        Ok((auth, sync, render))
    }
}

impl ClusterArgs {
    pub(crate) fn options(&self, env: &str) -> kube::KubeOptions {
        kube::KubeOptions {
            env: env.to_string(),
            namespaces: self.namespaces.clone(),
            namespace_selector: self.namespace_selector.clone(),
            include: self.include_kinds.clone(),
            exclude: self.exclude_kinds.clone(),
            cluster_scoped: !self.no_cluster_scoped,
            request_timeout: std::time::Duration::from_secs(self.request_timeout.max(1)),
            ..Default::default()
        }
    }

    pub(crate) fn target(&self, context: Option<String>, in_cluster: bool) -> kube::ClusterTarget {
        kube::ClusterTarget {
            kubeconfig: self.kubeconfig.clone(),
            context,
            in_cluster,
        }
    }
}

/// `--desired`: files and directories of manifests, or one `git:` source.
pub(crate) fn desired_spec(values: &[String], git_args: &GitArgs) -> Result<SourceSpec> {
    let git: Vec<&String> = values.iter().filter(|v| v.starts_with("git:")).collect();
    match git.as_slice() {
        [] => {
            let paths: Vec<PathBuf> = values.iter().map(PathBuf::from).collect();
            Ok(match git_args.local(&paths)? {
                Some(rendered) => rendered,
                None => SourceSpec::Files {
                    paths,
                    kind: FilesKind::Manifests,
                    limits: FileLimits::default(),
                },
            })
        }
        [one] if values.len() == 1 => git_args.source(git::GitSpec::parse(one)?),
        _ => anyhow::bail!(
            "--desired takes either one git: source or files and directories, not both"
        ),
    }
}

/// `--live`: dumps, or a cluster (`cluster:CONTEXT`, `cluster:`, `in-cluster`).
pub(crate) fn live_spec(live: &[PathBuf], cluster: &ClusterArgs) -> Result<SourceSpec> {
    let first = live.first().and_then(|p| p.to_str());
    let named = match first {
        Some("in-cluster") => Some((None, true)),
        Some(f) => f
            .strip_prefix("cluster:")
            .map(|ctx| ((!ctx.is_empty()).then(|| ctx.to_string()), false)),
        None => None,
    };
    match named {
        Some((context, in_cluster)) => {
            if live.len() > 1 {
                anyhow::bail!("--live: a cluster cannot be combined with other live paths");
            }
            Ok(SourceSpec::Cluster(Box::new(ClusterSource {
                target: cluster.target(context, in_cluster),
                opts: cluster.options("live"),
            })))
        }
        None => Ok(SourceSpec::Files {
            paths: live.to_vec(),
            kind: FilesKind::Dump,
            limits: FileLimits::default(),
        }),
    }
}

/// A `--from`/`--to` source of `compare`.
pub(crate) enum CmpSource {
    Dump(PathBuf),
    /// An environment of --config: its live side, or (`git:`) its desired side.
    Env {
        name: String,
        desired: bool,
    },
}

impl CmpSource {
    pub(crate) fn parse(arg: &str, flag: &str) -> Result<CmpSource> {
        if let Some(p) = arg.strip_prefix("dump:") {
            return Ok(CmpSource::Dump(PathBuf::from(p)));
        }
        if let Some(e) = arg.strip_prefix("live:") {
            return Ok(CmpSource::Env {
                name: e.to_string(),
                desired: false,
            });
        }
        if let Some(e) = arg.strip_prefix("git:") {
            return Ok(CmpSource::Env {
                name: e.to_string(),
                desired: true,
            });
        }
        let p = PathBuf::from(arg);
        if !p.exists() {
            anyhow::bail!(
                "{flag} {arg}: no such file or directory (sources: dump:PATH, a path, live:ENV or git:ENV with --config)"
            );
        }
        Ok(CmpSource::Dump(p))
    }

    /// The name in messages: a dump's last path component, `git:ENV`, `ENV`.
    pub(crate) fn name(&self) -> String {
        match self {
            CmpSource::Dump(p) => p
                .file_name()
                .and_then(|n| n.to_str())
                .map(|n| {
                    n.trim_end_matches(".yaml")
                        .trim_end_matches(".json")
                        .to_string()
                })
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| p.display().to_string()),
            CmpSource::Env {
                name,
                desired: true,
            } => format!("git:{name}"),
            CmpSource::Env { name, .. } => name.clone(),
        }
    }

    /// The source spec; environments come from `config` (read from `config_path`).
    pub(crate) fn spec(
        &self,
        label: &str,
        config: &Config,
        config_path: Option<&Path>,
    ) -> Result<SourceSpec> {
        match self {
            CmpSource::Dump(p) => Ok(SourceSpec::Files {
                paths: vec![p.clone()],
                kind: FilesKind::Dump,
                limits: FileLimits::default(),
            }),
            CmpSource::Env { name, desired } => {
                let Some(cfg_path) = config_path else {
                    anyhow::bail!(
                        "live:ENV and git:ENV sources name environments of a config file: add --config FILE"
                    );
                };
                environment_side(config, cfg_path, name, *desired, label)
            }
        }
    }
}

/// The desired (`desired = true`) or live source of an environment of a config file.
pub(crate) fn environment_side(
    config: &Config,
    cfg_path: &Path,
    env: &str,
    desired: bool,
    label: &str,
) -> Result<SourceSpec> {
    let Some(e) = config.environments.get(env) else {
        let known: Vec<&str> = config.environments.keys().map(String::as_str).collect();
        anyhow::bail!(
            "{label}: unknown environment `{env}` in {} (configured: {})",
            cfg_path.display(),
            known.join(", ")
        );
    };
    let base = config_base(cfg_path);
    let side = if desired { &e.desired } else { &e.live };
    Ok(side.spec(&base, &config.data_dir_in(&base), label)?)
}

/// The config of `--config` when given (else the defaults); `None` when it is invalid
/// (its problems were printed).
pub(crate) fn optional_config(path: Option<&Path>) -> Option<Config> {
    match path {
        Some(p) => load_config(p),
        None => Some(Config::default()),
    }
}

/// Loads a config file, printing every problem; `None` when it is invalid.
pub(crate) fn load_config(path: &Path) -> Option<Config> {
    match Config::load(path) {
        Ok(c) => Some(c),
        Err(problems) => {
            for p in &problems {
                eprintln!("envdrift: config: {p}");
            }
            None
        }
    }
}

/// Compiles a loaded config's rules.
pub(crate) fn compile(config: &Config) -> Result<Arc<Compiled>> {
    Ok(Arc::new(config.compile().context("config")?))
}

/// The directory relative paths of a config file are resolved against.
pub(crate) fn config_base(path: &Path) -> PathBuf {
    path.parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."))
}
