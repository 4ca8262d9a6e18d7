//! The subcommands. Each comparing command builds one [`Job`] (see [`super::sources`]),
//! runs it through [`envdrift::run`] and renders the [`Outcome`](envdrift::run::Outcome).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};

use envdrift::config::Config;
use envdrift::report::Mode;
use envdrift::run::{self, Input, Job, Outcome, Overrides, RunError, Trust};
use envdrift::source::{self, Ctx, SourceSpec};

use super::args::{
    CompareArgs, DaemonArgs, DiffArgs, RenderArgs, ReportArgs, ReportFormat, ScanArgs, SnapshotArgs,
};
use super::output::{desired_path, emit, exit_code, needs_compared_keys, progress};
use super::sources::{
    CmpSource, compile, config_base, desired_spec, environment_side, live_spec, load_config,
    optional_config,
};

/// The store file a `store` command is about.
fn store_path(store: &super::StoreFile) -> Result<std::path::PathBuf> {
    match (&store.config, &store.file) {
        (_, Some(f)) => Ok(f.clone()),
        (Some(c), None) => {
            let cfg =
                load_config(c).ok_or_else(|| anyhow::anyhow!("{}: invalid config", c.display()))?;
            if let Some(envdrift::config::StoreConfig::Postgres(_)) = &cfg.store {
                anyhow::bail!(
                    "{}: the store is PostgreSQL; `envdrift store` works on SQLite files: \
                     use pg_dump and pg_restore (docs/store.md)",
                    c.display()
                );
            }
            Ok(cfg.data_dir_in(&config_base(c)).join("envdrift.db"))
        }
        (None, None) => Err(anyhow::anyhow!("give --config FILE or --file STORE")),
    }
}

pub(crate) fn cmd_store(cmd: super::StoreCmd) -> Result<u8> {
    use envdrift::store::maintenance;
    match cmd {
        super::StoreCmd::Check { store } => {
            let path = store_path(&store)?;
            let r = maintenance::check(&path)?;
            let show = |v: Option<i64>| v.map_or_else(|| "?".to_string(), |n| n.to_string());
            println!("store: {}", path.display());
            println!(
                "schema version: {}, store id: {}",
                show(r.schema_version),
                r.store_id.as_deref().unwrap_or("?")
            );
            println!(
                "scans: {}, open drifts: {}, pending alerts: {}",
                show(r.scans),
                show(r.open_drifts),
                show(r.pending_alerts)
            );
            if r.ok {
                println!("ok");
                Ok(0)
            } else {
                for p in &r.problems {
                    println!("problem: {p}");
                }
                println!(
                    "the store is damaged: restore a backup, or `envdrift store reset --yes` to start a new one"
                );
                Ok(2)
            }
        }
        super::StoreCmd::Backup { store, out } => {
            let path = store_path(&store)?;
            maintenance::backup(&path, &out)?;
            println!("backed up {} to {}", path.display(), out.display());
            Ok(0)
        }
        super::StoreCmd::Reset { store, yes } => {
            let path = store_path(&store)?;
            if !yes {
                anyhow::bail!(
                    "{}: resetting starts over with an empty store (history and the record of sent alerts are not used); run again with --yes",
                    path.display()
                );
            }
            let aside = maintenance::reset(&path, chrono::Utc::now())?;
            println!(
                "moved {} to {}; the next start creates a new store",
                path.display(),
                aside.display()
            );
            Ok(0)
        }
    }
}

pub(crate) fn cmd_config_check(file: &Path, strict: bool) -> Result<u8> {
    match Config::load(file) {
        Ok(cfg) => {
            let warnings = cfg.warnings(file);
            for w in &warnings {
                eprintln!("{}: {w}", if strict { "error" } else { "warning" });
            }
            if strict && !warnings.is_empty() {
                eprintln!(
                    "{}: {} problem(s) (--strict)",
                    file.display(),
                    warnings.len()
                );
                return Ok(2);
            }
            println!(
                "{}: ok ({} ignore rules, {} severity rules{})",
                file.display(),
                cfg.ignore.len(),
                cfg.severity_rules.len(),
                match warnings.len() {
                    0 => String::new(),
                    n => format!(", {n} warning(s)"),
                }
            );
            Ok(0)
        }
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!("{}: {} problem(s)", file.display(), problems.len());
            Ok(2)
        }
    }
}

/// Runs a job with a progress bar over its file sources.
fn run_with_progress(job: Job<'_>) -> Outcome {
    let specs: Vec<&SourceSpec> = [&job.from, &job.to]
        .into_iter()
        .filter_map(|i| match &i.source {
            run::Src::Spec(s) => Some(s),
            run::Src::Opened(_) => None,
        })
        .collect();
    let pb = progress(&specs, "comparing");
    let tick = |_: &Path| {
        if let Some(pb) = &pb {
            pb.inc(1);
        }
    };
    // A job of its own, borrowing the progress bar for its reads.
    let job = Job {
        on_file: Some(&tick),
        ..job
    };
    let out = run::run(&job);
    if let Some(pb) = &pb {
        pb.finish_and_clear();
    }
    out
}

/// A source that could not be opened at all is an error; anything else (unreadable files
/// included) is shown in the report.
fn check_opened(out: &Outcome) -> Result<()> {
    match &out.trust {
        Trust::Failed(e @ RunError::Source(_)) => Err(anyhow::anyhow!("{e}")),
        _ => Ok(()),
    }
}

/// A side without any object (and without errors that explain it) is almost always a wrong
/// path or scope: an error unless `--allow-empty`.
fn check_empty(out: &Outcome, allow_empty: bool) -> Option<u8> {
    if allow_empty {
        return None;
    }
    for side in [&out.from, &out.to] {
        if side.objects == 0 && side.meta.errors.is_empty() {
            let source = side
                .meta
                .source
                .as_ref()
                .map(|s| s.description.clone())
                .unwrap_or_default();
            eprintln!(
                "envdrift: error: {} ({source}): no Kubernetes objects found; check the path or scope, or pass --allow-empty",
                side.name
            );
            return Some(2);
        }
    }
    None
}

/// Manifests without a namespace land in the default namespace; when that is the only one
/// desired uses and live has nothing there, say how to fix it.
fn namespace_hint(out: &Outcome, default_ns: &str) {
    let only_default = out.from.namespaces.len() == 1 && out.from.namespaces.contains(default_ns);
    if only_default && out.to.objects > 0 && !out.to.namespaces.contains(default_ns) {
        eprintln!(
            "envdrift: hint: every namespaced desired object is in `{default_ns}` (manifests without metadata.namespace), but live has nothing there: pass --default-namespace NS"
        );
    }
}

fn print_stale(out: &Outcome) {
    if let Some(src) = &out.from.meta.source
        && let Some(reason) = &src.stale
    {
        eprintln!("envdrift: warning: {}: STALE: {reason}", src.description);
    }
}

pub(crate) fn cmd_diff(args: DiffArgs) -> Result<u8> {
    let Some(config) = optional_config(args.config.as_deref()) else {
        return Ok(2);
    };
    let mut compiled = compile(&config)?;
    if let Some(ns) = &args.default_namespace {
        Arc::make_mut(&mut compiled)
            .default_namespace
            .clone_from(ns);
    }
    let desired = args.inputs.apply(desired_spec(&args.desired, &args.git)?);
    let live = args.inputs.apply(live_spec(&args.live, &args.cluster)?);
    let desired_at = desired_path(&desired);
    let mut job = Job::new(
        Mode::DesiredVsLive,
        Input::spec("desired", desired),
        Input::spec("live", live),
        compiled,
    );
    job.overrides = Overrides {
        gitops_managers: args.gitops_managers.clone(),
        no_unmanaged: args.no_unmanaged,
        show_expected: false,
    };
    job.keep_compared = needs_compared_keys(&args.output);
    let default_ns = job.opts.default_namespace.clone();
    let out = run_with_progress(job);
    check_opened(&out)?;
    if let Some(code) = check_empty(&out, args.allow_empty) {
        return Ok(code);
    }
    print_stale(&out);
    namespace_hint(&out, &default_ns);
    let rep = out.report();
    emit(&rep, &args.output, desired_at)?;
    Ok(exit_code(&rep, args.output.fail_on))
}

pub(crate) fn cmd_compare(args: CompareArgs) -> Result<u8> {
    let Some(config) = optional_config(args.config.as_deref()) else {
        return Ok(2);
    };
    let compiled = compile(&config)?;
    let from = CmpSource::parse(&args.from, "--from")?;
    let to = CmpSource::parse(&args.to, "--to")?;
    let from_name = args.from_name.clone().unwrap_or_else(|| from.name());
    let to_name = args.to_name.clone().unwrap_or_else(|| to.name());
    let from_spec = args
        .inputs
        .apply(from.spec(&from_name, &config, args.config.as_deref())?);
    let to_spec = args
        .inputs
        .apply(to.spec(&to_name, &config, args.config.as_deref())?);
    // A cluster on the `from` side has no file: its results point at the config file that
    // names the environment.
    let from_at =
        desired_path(&from_spec).or_else(|| args.config.as_ref().map(|c| c.display().to_string()));
    let mut job = Job::new(
        Mode::EnvVsEnv,
        Input::spec(from_name, from_spec),
        Input::spec(to_name, to_spec),
        compiled,
    );
    job.overrides = Overrides {
        gitops_managers: Vec::new(),
        no_unmanaged: args.no_unmanaged,
        show_expected: args.show_expected,
    };
    job.keep_compared = needs_compared_keys(&args.output);
    let out = run_with_progress(job);
    check_opened(&out)?;
    if let Some(code) = check_empty(&out, args.allow_empty) {
        return Ok(code);
    }
    let rep = out.report();
    emit(&rep, &args.output, from_at)?;
    Ok(exit_code(&rep, args.output.fail_on))
}

pub(crate) fn cmd_scan(args: ScanArgs) -> Result<u8> {
    let Some(cfg) = load_config(&args.config) else {
        return Ok(2);
    };
    if !cfg.environments.contains_key(&args.env) {
        let known: Vec<&str> = cfg.environments.keys().map(String::as_str).collect();
        anyhow::bail!(
            "--env {}: not in {} (configured: {})",
            args.env,
            args.config.display(),
            known.join(", ")
        );
    }
    let compiled = compile(&cfg)?;
    let desired = environment_side(&cfg, &args.config, &args.env, true, "desired")?;
    let live = environment_side(&cfg, &args.config, &args.env, false, &args.env)?;
    let desired_at = desired_path(&desired);
    let mut job = Job::new(
        Mode::DesiredVsLive,
        Input::spec("desired", desired),
        Input::spec(args.env.clone(), live),
        compiled,
    );
    job.keep_compared = needs_compared_keys(&args.output);
    let out = run_with_progress(job);
    if let Some(e) = out.failure() {
        eprintln!("envdrift: scan failed: {}: {e}", args.env);
        return Ok(2);
    }
    print_stale(&out);
    let mut rep = out.report();
    // A partial scan (unknown scopes) is not a clean one, even without input errors.
    if let Trust::Partial { reasons, .. } = &out.trust
        && rep.errors.is_empty()
    {
        rep.errors.push(envdrift::model::InputError {
            side: args.env.clone(),
            source: rep.right.source.clone(),
            line: None,
            column: None,
            message: reasons.join("; "),
        });
    }
    emit(&rep, &args.output, desired_at)?;
    Ok(exit_code(&rep, args.output.fail_on))
}

pub(crate) fn cmd_render(args: RenderArgs) -> Result<u8> {
    let (spec, default_ns) = if let (Some(cfg_path), Some(env)) = (&args.config, &args.env) {
        let Some(cfg) = load_config(cfg_path) else {
            return Ok(2);
        };
        if !cfg.environments.contains_key(env) {
            let known: Vec<&str> = cfg.environments.keys().map(String::as_str).collect();
            anyhow::bail!(
                "--env {env}: not in {} (configured: {})",
                cfg_path.display(),
                known.join(", ")
            );
        }
        let ns = args
            .default_namespace
            .clone()
            .or_else(|| cfg.default_namespace.clone());
        (environment_side(&cfg, cfg_path, env, true, "desired")?, ns)
    } else {
        (
            desired_spec(&args.desired, &args.git)?,
            args.default_namespace.clone(),
        )
    };
    let spec = args.inputs.apply(spec);
    let default_ns = default_ns.unwrap_or_else(|| "default".to_string());
    let ctx = Ctx {
        side: "desired",
        default_namespace: &default_ns,
        cluster_scoped_kinds: &[],
        caches: None,
        on_file: &|_| {},
    };
    let loaded = source::open(&spec, &ctx)?;
    if let Some(src) = &loaded.snapshot.source
        && let Some(reason) = &src.stale
    {
        eprintln!("envdrift: warning: {}: STALE: {reason}", src.description);
    }
    let snap = loaded.snapshot;
    let mut text = String::new();
    for obj in snap.objects.values() {
        text.push_str("---\n");
        text.push_str(&format!("# {}\n", obj.origin));
        let yaml = serde_saphyr::to_string(&obj.value).context("rendering YAML")?;
        text.push_str(&yaml);
        if !yaml.ends_with('\n') {
            text.push('\n');
        }
    }
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).context("writing objects")?;
    out.flush().context("writing objects")?;
    for e in &snap.errors {
        eprintln!("envdrift: {e}");
    }
    Ok(if snap.errors.is_empty() { 0 } else { 2 })
}

pub(crate) fn cmd_snapshot(args: SnapshotArgs) -> Result<u8> {
    let target = args.cluster.target(args.context.clone(), args.in_cluster);
    let live = envdrift::source::kube::snapshot_blocking(&target, &args.cluster.options("live"))
        .context("reading the cluster")?;
    let files = envdrift::source::dump::write_dump(&live.snapshot, &args.output)
        .with_context(|| format!("writing the dump to {}", args.output.display()))?;
    for u in &live.snapshot.unknown {
        let kind = if u.group.is_empty() {
            u.kind.clone()
        } else {
            format!("{}.{}", u.kind, u.group)
        };
        match &u.namespace {
            Some(ns) => eprintln!("envdrift: unknown: {kind} in {ns}: {}", u.reason),
            None => eprintln!("envdrift: unknown: {kind}: {}", u.reason),
        }
    }
    println!(
        "wrote {} objects ({} types, {} unknown) in {files} files to {}",
        live.snapshot.objects.len(),
        live.stats.types,
        live.snapshot.unknown.len(),
        args.output.display()
    );
    Ok(0)
}

/// `dev parse`: reads both sides only (the baseline the diff benchmark is measured against).
pub(crate) fn cmd_dev_parse(
    desired: &[std::path::PathBuf],
    live: &[std::path::PathBuf],
    max_file_bytes: u64,
) -> Result<u8> {
    let read = |paths: &[std::path::PathBuf], side: &str, kind| {
        let spec = SourceSpec::Files {
            paths: paths.to_vec(),
            kind,
            limits: source::dump::FileLimits {
                max_file_bytes,
                ..source::dump::FileLimits::default()
            },
        };
        let ctx = Ctx {
            side,
            default_namespace: "default",
            cluster_scoped_kinds: &[],
            caches: None,
            on_file: &|_| {},
        };
        source::open(&spec, &ctx)
    };
    let d = read(desired, "desired", source::FilesKind::Manifests)?;
    let l = read(live, "live", source::FilesKind::Dump)?;
    println!(
        "parsed {} desired and {} live objects ({} errors)",
        d.objects,
        l.objects,
        d.snapshot.errors.len() + l.snapshot.errors.len()
    );
    Ok(0)
}

/// The daemon of a config; `with_sinks: false` builds no sink (printing a report needs
/// no sink secrets).
fn open_daemon(
    path: &Path,
    cfg: Config,
    with_sinks: bool,
) -> Result<Arc<envdrift::daemon::Daemon>> {
    let base = config_base(path);
    let data_dir = cfg.data_dir_in(&base);
    let store = match &cfg.store {
        Some(envdrift::config::StoreConfig::Postgres(p)) => {
            let (url, ca_file) = p.target(&base).map_err(anyhow::Error::msg)?;
            envdrift::store::Store::open_postgres(&envdrift::store::PostgresTarget {
                url,
                ca_file,
            })?
        }
        _ => envdrift::store::Store::open(&data_dir.join("envdrift.db"))?,
    };
    let alerts = if with_sinks {
        cfg.alerts.clone()
    } else {
        envdrift::config::AlertsConfig::default()
    };
    let deliver = Arc::new(
        envdrift::daemon::SinkSet::from_config(&alerts, &base).map_err(anyhow::Error::msg)?,
    );
    let daemon = envdrift::daemon::Daemon::new(cfg, base, Arc::new(store), deliver)?;
    Ok(Arc::new(daemon))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub(crate) fn cmd_daemon(args: DaemonArgs) -> Result<u8> {
    let Some(cfg) = load_config(&args.config) else {
        return Ok(2);
    };
    let listen = cfg
        .listen
        .clone()
        .unwrap_or_else(|| "127.0.0.1:8080".to_string());
    let api_cfg = cfg.api.clone();
    let addr: std::net::SocketAddr = listen
        .parse()
        .with_context(|| format!("listen: `{listen}` is not an address:port"))?;
    if !args.once && !addr.ip().is_loopback() && api_cfg.tokens.is_empty() {
        anyhow::bail!("{}", envdrift::api::ApiError::OpenOnNetwork { addr });
    }
    let base = config_base(&args.config);
    let daemon = open_daemon(&args.config, cfg, true)?;
    let rt = runtime()?;
    rt.block_on(async move {
        if args.once {
            let once = daemon.run_once_detailed(args.fail_on.threshold()).await?;
            let text = once_summary(&daemon, &once)?;
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(text.as_bytes()).context("writing the summary")?;
            stdout.flush().context("writing the summary")?;
            return Ok(once.code);
        }
        // The listener first: a taken port is an error now, before any scan starts.
        let listener = envdrift::api::bind(&api_cfg, addr).await?;
        let state = Arc::new(envdrift::api::ApiState::new(Arc::clone(&daemon), &api_cfg, &base)?);
        let (tx, rx) = tokio::sync::watch::channel(false);
        let api_rx = rx.clone();
        let coordination = envdrift::daemon::shard::start(&daemon, rx.clone()).await?;
        let api = tokio::spawn(async move {
            envdrift::api::serve_on(state, &api_cfg, listener, &base, api_rx, None).await
        });
        tokio::spawn(async move {
            wait_for_signal().await;
            let _ = tx.send(true);
        });
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            listen = %addr,
            store = %daemon.store.path().display(),
            targets = daemon.targets().len(),
            "daemon started"
        );
        for t in daemon.targets() {
            tracing::info!(target_name = t.name(), kind = %t.kind(), every = %humantime::format_duration(daemon.interval(&t)), "scheduled");
        }
        daemon.run(rx).await;
        if let Some(c) = coordination {
            let _ = c.await;
        }
        match api.await {
            Ok(Err(e)) => Err(anyhow::Error::new(e)),
            _ => Ok(0),
        }
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub(crate) fn cmd_report(args: ReportArgs) -> Result<u8> {
    let Some(cfg) = load_config(&args.config) else {
        return Ok(2);
    };
    let selected: Vec<envdrift::config::ReportConfig> = match &args.name {
        Some(n) => match cfg.reports.iter().find(|r| &r.name == n) {
            Some(r) => vec![r.clone()],
            None => anyhow::bail!("--name {n}: no such report in {}", args.config.display()),
        },
        None => cfg.reports.clone(),
    };
    let daemon = open_daemon(&args.config, cfg, args.send)?;
    if args.send {
        if selected.is_empty() {
            anyhow::bail!("--send: {} configures no reports", args.config.display());
        }
        let rt = runtime()?;
        return rt.block_on(async move {
            for r in &selected {
                let n = daemon.send_report(r)?;
                println!("report {}: queued for {n} sink(s)", r.name);
            }
            daemon
                .drain_outbox(std::time::Duration::from_secs(60))
                .await?;
            Ok(0)
        });
    }
    let (title, sections) =
        daemon.build_report(selected.first().filter(|_| args.name.is_some()))?;
    let text = match args.format {
        ReportFormat::Text => envdrift::daemon::report::render_text(&title, &sections),
        ReportFormat::Markdown => envdrift::daemon::report::render_markdown(&title, &sections),
        ReportFormat::Json => {
            let mut s = serde_json::to_string_pretty(&envdrift::daemon::report::render_json(
                &title, &sections,
            ))?;
            s.push('\n');
            s
        }
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .context("writing the report")?;
    Ok(0)
}

/// What `daemon --once` prints on stdout: per target its scan and every open drift (new in
/// this run, changed in it, or already known to the store) with attribution and fix, then
/// one line per report sent.
fn once_summary(
    daemon: &envdrift::daemon::Daemon,
    once: &envdrift::daemon::OnceOutcome,
) -> Result<String> {
    use envdrift::report::{inline_value, truncate};
    use std::fmt::Write as _;
    let mut out = String::new();
    for scan in &once.scans {
        let rows = daemon.store.open_drifts(&scan.target)?;
        let _ = write!(
            out,
            "{}: scan {} in {} ms · {} open drift(s)",
            scan.target,
            scan.outcome,
            scan.duration_ms,
            rows.len()
        );
        if let Some(e) = &scan.error {
            let _ = write!(out, " · {}", truncate(e, 300));
        }
        out.push('\n');
        for row in &rows {
            let (_, events) = daemon.store.drift(row.id)?;
            let mark = events
                .iter()
                .filter(|e| e.scan_id == Some(scan.scan_id))
                .map(|e| match e.event.as_str() {
                    "opened" => "new",
                    "escalated" => "escalated",
                    _ => "changed",
                })
                .next_back()
                .unwrap_or("known");
            let b = &row.body;
            let _ = writeln!(
                out,
                "  {} {}  {} · {}  [{mark}]",
                row.severity.as_str().to_uppercase(),
                row.resource,
                b["type"].as_str().unwrap_or(&row.drift_type),
                b["cause"].as_str().unwrap_or("unknown"),
            );
            for c in b["changes"].as_array().into_iter().flatten() {
                let who = c["manager"]
                    .as_str()
                    .map(|m| format!(" · {m}"))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "    {} {}  {} → {}  [{} {}{who}]",
                    match c["op"].as_str() {
                        Some("added") => "+",
                        Some("removed") => "-",
                        _ => "~",
                    },
                    c["field"].as_str().unwrap_or_default(),
                    inline_value(&c["desired"], 60),
                    inline_value(&c["live"], 60),
                    c["category"].as_str().unwrap_or_default(),
                    c["severity"].as_str().unwrap_or_default(),
                );
            }
            if let Some(fix) = b["kubectl"].as_str() {
                let label = if b["patch_verified"].as_bool() == Some(true) {
                    "fix (verified):"
                } else if b["redacted"].as_bool() == Some(true) {
                    "fix (needs the value):"
                } else {
                    "fix:"
                };
                let _ = writeln!(out, "    {label} {}", truncate(fix, 4000));
            }
        }
    }
    for (name, sinks) in &once.reports {
        let _ = writeln!(out, "report {name}: sent to {sinks} sink(s)");
    }
    Ok(out)
}

/// `discover`: the GitOps objects of a cluster, and a ready config on stdout.
pub(crate) fn cmd_discover(args: &super::args::DiscoverArgs) -> Result<u8> {
    let (context, in_cluster) = match args.live.as_str() {
        "in-cluster" => (None, true),
        l => match l.strip_prefix("cluster:") {
            Some(c) => ((!c.is_empty()).then(|| c.to_string()), false),
            None => anyhow::bail!(
                "--live {l}: give a cluster (cluster:CONTEXT, cluster: for the current context, or in-cluster)"
            ),
        },
    };
    let kubeconfig = args
        .kubeconfig
        .as_ref()
        .map(|k| std::path::absolute(k).unwrap_or_else(|_| k.clone()));
    let target = envdrift::source::kube::ClusterTarget {
        kubeconfig: kubeconfig.clone(),
        context: context.clone(),
        in_cluster,
    };
    let found = envdrift::source::gitops::discover(
        &target,
        std::time::Duration::from_secs(args.request_timeout.max(1)),
    )
    .context("discovering GitOps objects")?;
    eprintln!(
        "envdrift: {}: {} GitOps object{} found",
        found.cluster,
        found.objects.len(),
        if found.objects.len() == 1 { "" } else { "s" }
    );
    print!(
        "{}",
        found.config(context.as_deref(), kubeconfig.as_deref(), in_cluster)
    );
    Ok(0)
}
