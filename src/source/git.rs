//! The desired state straight from a Git repository: `{repo, ref, path, renderer}`.
//!
//! Entry points: [`GitSpec::parse`] (the CLI syntax `git:REPO@REF[:PATH]`), [`sync`] (bare
//! clone or incremental fetch into a cache directory, then resolve the ref), [`read_files`]
//! (the files under a path in the tree at that commit; no worktree is ever checked out) and
//! [`crate::source::render::load_git`], which turns those files into a snapshot.
//!
//! The cache holds one bare repository per remote URL (without credentials) under
//! `CACHE/<slug>-<hash>`. Its remote refs are mirrored with `+refs/heads/*:refs/heads/*` and
//! `+refs/tags/*:refs/tags/*` (forced, so a force-push is followed; branches and tags deleted
//! on the remote are pruned after a successful fetch). When a fetch fails and the cache holds
//! an earlier fetch, the ref is resolved in the cache and the result is marked *stale* with
//! the reason ([`Synced::stale`]).
//!
//! Repositories: `https://` and `http://` (a token from a file or an environment variable,
//! sent as the password of `username`, default `x-access-token`), `ssh://` and scp-like
//! `user@host:path` (the `ssh` program with an optional key file), `file://` and local
//! paths (`git-upload-pack` must be installed, as for `git` itself).
//!
//! # Caveats
//! - Fetches are full (not shallow): an incremental fetch only transfers new objects, and a
//!   commit SHA that is not a branch tip can be resolved only with history.
//! - Two processes fetching into the same cache directory at once are not coordinated.
//! - The ssh transport is exercised with `file://` and local paths only in tests: no ssh
//!   server can be run on the test machines; the `core.sshCommand` it sets is unit-tested.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Errors of the Git source. Every message names the repository URL *without* credentials.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The `git:` source text could not be parsed.
    #[error("bad git source `{text}`: {reason} (syntax: git:REPO@REF[:PATH])")]
    BadSpec { text: String, reason: String },
    /// Reading the token file or variable failed.
    #[error("git credentials for {url}: {reason}")]
    Credentials { url: String, reason: String },
    /// The cache directory could not be created or opened.
    #[error("git cache {path} for {url}: {reason}")]
    Cache {
        path: PathBuf,
        url: String,
        reason: String,
    },
    /// Fetching failed and there is no earlier fetch to fall back on.
    #[error("fetching {url} (ref {reference}) failed: {reason}")]
    FetchFailed {
        url: String,
        reference: String,
        reason: String,
    },
    /// The ref is neither a branch, a tag nor a commit of the repository.
    #[error("ref `{reference}` not found in {url}{hint}")]
    RefNotFound {
        url: String,
        reference: String,
        /// ` (branches: main, release; tags: v1)`, or empty.
        hint: String,
    },
    /// The path is not a directory (or file) in the tree at the commit.
    #[error("path `{path}` not found in {url} at {commit} (ref {reference})")]
    PathNotFound {
        url: String,
        reference: String,
        commit: String,
        path: String,
    },
    /// Reading objects out of the cached repository failed.
    #[error("reading {url} at {commit}: {reason}")]
    Read {
        url: String,
        commit: String,
        reason: String,
    },
}

/// How to authenticate to the remote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitAuth {
    /// File holding an https token (first line, trimmed). Default: none.
    pub token_file: Option<PathBuf>,
    /// Environment variable holding an https token. Default: none.
    pub token_env: Option<String>,
    /// User name sent with the token. Default `x-access-token` (GitHub; GitLab and Gitea
    /// accept any name with a personal access token).
    pub username: Option<String>,
    /// Private key file for ssh remotes (`ssh -i KEY -o IdentitiesOnly=yes`). Default: the
    /// ssh program's own configuration.
    pub ssh_key: Option<PathBuf>,
    /// A password or token held in memory (from an Argo CD or Flux repository Secret), sent
    /// as the password of `username`; the token file and variable win. Never printed.
    pub password: Option<Hidden>,
    /// `known_hosts` file for ssh remotes (`-o UserKnownHostsFile=… -o
    /// StrictHostKeyChecking=yes`). Default: the ssh program's own.
    pub known_hosts: Option<PathBuf>,
}

/// A secret string whose `Debug` shows `***`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Hidden(pub String);

impl std::fmt::Debug for Hidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// A Git desired source: repository, ref and path (the renderer is chosen separately).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSpec {
    /// URL or local path, as given (may carry credentials: never print it, use [`GitSpec::display_url`]).
    pub repo: String,
    /// Branch, tag, full ref name (`refs/…`) or commit SHA (full or at least 7 hex digits).
    pub reference: String,
    /// Directory (or file) inside the repository, `/`-separated, without leading `/`;
    /// empty for the repository root.
    pub path: String,
}

impl GitSpec {
    /// Parses `git:REPO@REF[:PATH]`.
    ///
    /// `REPO` is everything before the **last** `@` (so `git@host:org/repo.git` and
    /// `https://user@host/repo` work); after it comes `REF`, then optionally `:PATH` (a ref
    /// name cannot contain `:`). Consequently `REF` and `PATH` must not contain `@`.
    ///
    /// # Errors
    /// [`GitError::BadSpec`] when the prefix, the `@REF` part or the repository is missing.
    pub fn parse(text: &str) -> Result<GitSpec, GitError> {
        let shown = redact_url(text);
        let bad = |reason: &str| GitError::BadSpec {
            text: shown.clone(),
            reason: reason.to_string(),
        };
        let rest = text
            .strip_prefix("git:")
            .ok_or_else(|| bad("it must start with `git:`"))?;
        let at = rest
            .rfind('@')
            .ok_or_else(|| bad("the ref is missing: add @BRANCH, @TAG or @COMMIT"))?;
        let (repo, after) = (&rest[..at], &rest[at + 1..]);
        let (reference, path) = match after.split_once(':') {
            Some((r, p)) => (r, p),
            None => (after, ""),
        };
        if repo.is_empty() {
            return Err(bad("the repository is empty"));
        }
        // `https://user:token@host/repo` without `@REF`: the last `@` is the credentials'.
        if let Some(i) = repo.find("://")
            && !repo[i + 3..].contains('/')
        {
            return Err(bad(
                "the ref is missing (the last `@` belongs to the URL): add @BRANCH, @TAG or @COMMIT",
            ));
        }
        if reference.is_empty() {
            return Err(bad("the ref after `@` is empty"));
        }
        let path = normalize_repo_path(path).map_err(|r| bad(&r))?;
        Ok(GitSpec {
            repo: repo.to_string(),
            reference: reference.to_string(),
            path,
        })
    }

    /// The repository URL without credentials, for messages.
    pub(crate) fn display_url(&self) -> String {
        redact_url(&self.repo)
    }

    /// `git:URL@REF[:PATH]` without credentials.
    pub(crate) fn describe(&self) -> String {
        let mut s = format!("git:{}@{}", self.display_url(), self.reference);
        if !self.path.is_empty() {
            s.push(':');
            s.push_str(&self.path);
        }
        s
    }
}

/// `a//b/./c/` → `a/b/c`; refuses `..`.
fn normalize_repo_path(p: &str) -> Result<String, String> {
    let mut parts = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => return Err(format!("path `{p}` must not contain `..`")),
            s => parts.push(s),
        }
    }
    Ok(parts.join("/"))
}

/// The one URL redaction of envdrift (user info and credential query parameters), kept
/// here under its old path: see [`crate::redact::redact_url`].
pub(crate) use crate::redact::redact_url;

/// Splits credentials out of an http(s) URL: (URL without user info, user, password).
fn split_credentials(url: &str) -> (String, Option<String>, Option<String>) {
    if !url.starts_with("http://") && !url.starts_with("https://") {
        return (url.to_string(), None, None);
    }
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let after = &url[scheme_end..];
    let host_end = after.find('/').unwrap_or(after.len());
    let authority = &after[..host_end];
    let Some(at) = authority.rfind('@') else {
        return (url.to_string(), None, None);
    };
    let userinfo = &authority[..at];
    let clean = format!("{}{}", &url[..scheme_end], &after[at + 1..]);
    match userinfo.split_once(':') {
        Some((u, p)) => (clean, Some(u.to_string()), Some(p.to_string())),
        None => (clean, None, Some(userinfo.to_string())),
    }
}

/// Where the cache lives and how long network steps may take.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Cache directory holding one bare repository per remote. Default:
    /// `$XDG_CACHE_HOME/envdrift/git`, else `$HOME/.cache/envdrift/git`, else the temp dir.
    pub cache_dir: PathBuf,
    /// Connect timeout for http(s) remotes. Default 30 s.
    pub connect_timeout: Duration,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            cache_dir: default_cache_dir(),
            connect_timeout: Duration::from_secs(30),
        }
    }
}

/// The default cache directory (see [`SyncOptions::cache_dir`]).
pub(crate) fn default_cache_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("envdrift/git");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(h).join(".cache/envdrift/git");
    }
    std::env::temp_dir().join("envdrift-git-cache")
}

/// A repository fetched into the cache with its ref resolved.
pub struct Synced {
    /// The cached bare repository.
    pub repo: gix::Repository,
    /// The commit the ref resolved to (40 hex digits).
    pub commit: String,
    /// `Some(reason)` when the fetch failed and the commit is the one from the last fetch.
    pub stale: Option<String>,
    /// True when this call cloned (the cache was empty).
    pub cloned: bool,
    /// Time spent fetching (or trying to).
    pub fetch_time: Duration,
    /// The URL without credentials, for messages.
    pub url: String,
}

fn cache_path(opts: &SyncOptions, clean_url: &str) -> PathBuf {
    let hash: String = Sha256::digest(clean_url.as_bytes())[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // The name never carries the query (it may hold a token).
    let without_query = clean_url.split(['?', '#']).next().unwrap_or(clean_url);
    let slug: String = without_query
        .rsplit(['/', ':'])
        .find(|s| !s.is_empty())
        .unwrap_or("repo")
        .trim_end_matches(".git")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(40)
        .collect();
    opts.cache_dir.join(format!("{slug}-{hash}.git"))
}

/// True for `proto://…` and scp-like `user@host:path`.
fn is_url(repo: &str) -> bool {
    if repo.contains("://") {
        return true;
    }
    // scp-like: `host:path` with no `/` before the first `:` (and not a Windows drive).
    match repo.find(':') {
        Some(i) => !repo[..i].contains('/') && i > 1,
        None => false,
    }
}

/// The URL handed to gix: local paths made absolute, credentials removed.
fn fetch_url(spec: &GitSpec) -> Result<(String, Option<String>, Option<String>), GitError> {
    if is_url(&spec.repo) {
        return Ok(split_credentials(&spec.repo));
    }
    let p = Path::new(&spec.repo);
    let abs = std::path::absolute(p).map_err(|e| GitError::FetchFailed {
        url: spec.display_url(),
        reference: spec.reference.clone(),
        reason: format!("local path: {e}"),
    })?;
    Ok((abs.display().to_string(), None, None))
}

fn token(auth: &GitAuth, url: &str) -> Result<Option<String>, GitError> {
    let cred = |reason: String| GitError::Credentials {
        url: url.to_string(),
        reason,
    };
    if let Some(f) = &auth.token_file {
        let text = std::fs::read_to_string(f)
            .map_err(|e| cred(format!("token file {}: {e}", f.display())))?;
        let t = text.lines().next().unwrap_or("").trim().to_string();
        if t.is_empty() {
            return Err(cred(format!("token file {} is empty", f.display())));
        }
        return Ok(Some(t));
    }
    if let Some(var) = &auth.token_env {
        return match std::env::var(var) {
            Ok(t) if !t.trim().is_empty() => Ok(Some(t.trim().to_string())),
            _ => Err(cred(format!(
                "environment variable {var} is not set or empty"
            ))),
        };
    }
    Ok(auth.password.as_ref().map(|p| p.0.clone()))
}

/// `ssh -i KEY -o IdentitiesOnly=yes -o BatchMode=yes` (the key path single-quoted for
/// git's own command parsing).
pub(crate) fn ssh_command(key: &Path) -> String {
    let k = key.display().to_string().replace('\'', "'\\''");
    format!("ssh -i '{k}' -o IdentitiesOnly=yes -o BatchMode=yes")
}

/// ` -o UserKnownHostsFile='FILE' -o StrictHostKeyChecking=yes`: only the given hosts.
pub(crate) fn known_hosts_options(file: &Path) -> String {
    let f = file.display().to_string().replace('\'', "'\\''");
    format!(" -o UserKnownHostsFile='{f}' -o StrictHostKeyChecking=yes")
}

fn open_or_init(path: &Path, url: &str) -> Result<(gix::Repository, bool), GitError> {
    let err = |reason: String| GitError::Cache {
        path: path.to_path_buf(),
        url: url.to_string(),
        reason,
    };
    if path.join("HEAD").exists() {
        match gix::open_opts(path, gix::open::Options::isolated()) {
            Ok(repo) => return Ok((repo, false)),
            Err(e) => {
                // A damaged cache (an interrupted first clone, a full disk) is rebuilt.
                tracing::warn!(cache = %path.display(), %url, error = %chain(&e), "cache unreadable; cloning again");
                std::fs::remove_dir_all(path).map_err(|e| err(e.to_string()))?;
            }
        }
    }
    std::fs::create_dir_all(path).map_err(|e| err(e.to_string()))?;
    gix::init_bare(path).map_err(|e| err(chain(&e)))?;
    let repo = gix::open_opts(path, gix::open::Options::isolated()).map_err(|e| err(chain(&e)))?;
    Ok((repo, true))
}

/// Fetches `spec.repo` into the cache (cloning it the first time) and resolves the ref.
///
/// # Errors
/// [`GitError::FetchFailed`] when the remote cannot be fetched and there is no earlier
/// fetch; [`GitError::RefNotFound`] when the ref is not a branch, tag or commit; cache and
/// credential errors. A failed fetch *with* an earlier one is not an error: the result is
/// [`Synced::stale`].
pub fn sync(spec: &GitSpec, auth: &GitAuth, opts: &SyncOptions) -> Result<Synced, GitError> {
    let (url, url_user, url_password) = fetch_url(spec)?;
    let shown = redact_url(&url);
    let password = match token(auth, &shown)? {
        Some(t) => Some(t),
        None => url_password,
    };
    let username = auth
        .username
        .clone()
        .or(url_user)
        .unwrap_or_else(|| "x-access-token".to_string());
    let path = cache_path(opts, &url);
    let (mut repo, fresh) = open_or_init(&path, &shown)?;
    let had_fetch = !fresh && has_refs(&repo);
    let started = Instant::now();
    let fetched = fetch(
        &mut repo,
        &url,
        username,
        password.clone(),
        auth,
        opts.connect_timeout,
    );
    let fetch_time = started.elapsed();
    let clean = |s: String| {
        let s = crate::redact::scrub_url_secrets(&s.replace(url.as_str(), &shown), &url);
        match &password {
            Some(p) if !p.is_empty() => s.replace(p.as_str(), "***"),
            _ => s,
        }
    };
    let stale = match fetched {
        Ok(()) => {
            tracing::info!(url = %shown, ms = fetch_time.as_millis() as u64, cloned = !had_fetch, "fetched");
            None
        }
        Err(reason) => {
            let reason = clean(reason);
            if had_fetch {
                tracing::warn!(url = %shown, %reason, "fetch failed; using the last fetched commit");
                Some(format!(
                    "fetch failed, using the last fetched state: {reason}"
                ))
            } else {
                if fresh {
                    // Leave no empty cache behind: the next attempt starts clean.
                    let _ = std::fs::remove_dir_all(&path);
                }
                return Err(GitError::FetchFailed {
                    url: shown,
                    reference: spec.reference.clone(),
                    reason,
                });
            }
        }
    };
    let commit = match (resolve(&repo, &spec.reference, &shown), &stale) {
        (Ok(c), _) => c,
        // The fetch failed and the ref is not in the cached state either: the fetch
        // failure is the news.
        (Err(GitError::RefNotFound { hint, .. }), Some(reason)) => {
            return Err(GitError::FetchFailed {
                url: shown,
                reference: spec.reference.clone(),
                reason: format!("{reason}; the ref is not in the last fetched state{hint}"),
            });
        }
        (Err(e), _) => return Err(e),
    };
    Ok(Synced {
        repo,
        commit,
        stale,
        cloned: !had_fetch,
        fetch_time,
        url: shown,
    })
}

fn has_refs(repo: &gix::Repository) -> bool {
    repo.references()
        .ok()
        .and_then(|p| p.all().ok().map(|mut it| it.next().is_some()))
        .unwrap_or(false)
}

/// One fetch; the error is a credential-free, single-line reason.
fn fetch(
    repo: &mut gix::Repository,
    url: &str,
    username: String,
    password: Option<String>,
    auth: &GitAuth,
    connect_timeout: Duration,
) -> Result<(), String> {
    {
        let mut values = vec![format!(
            "gitoxide.http.connectTimeout={}",
            connect_timeout.as_millis()
        )];
        if let Some(key) = &auth.ssh_key {
            let mut cmd = ssh_command(key);
            if let Some(kh) = &auth.known_hosts {
                cmd.push_str(&known_hosts_options(kh));
            }
            values.push(format!("core.sshCommand={cmd}"));
        }
        let mut cfg = repo.config_snapshot_mut();
        cfg.append_config(values.iter().map(String::as_str), gix::config::Source::Api)
            .map_err(|e| format!("config: {e:#}"))?;
        cfg.commit().map_err(|e| format!("config: {e:#}"))?;
    }
    let remote = repo
        .remote_at(url)
        .map_err(|e| format!("{e:#}"))?
        .with_refspecs(
            ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"],
            gix::remote::Direction::Fetch,
        )
        .map_err(|e| format!("{e:#}"))?
        .with_fetch_tags(gix::remote::fetch::Tags::None);
    let connection = remote
        .connect(gix::remote::Direction::Fetch)
        .map_err(|e| chain(&e))?;
    let mut asked = false;
    let denied = if url.starts_with("http://") || url.starts_with("https://") {
        "authentication required: give a token (--git-token-file / --git-token-env)"
    } else {
        "permission denied by the server: check the ssh key (--git-ssh-key) and its access to the repository"
    };
    let connection = connection.with_credentials(move |action| match action {
        gix::credentials::helper::Action::Get(ctx) => {
            let Some(pw) = password.clone() else {
                return Err(gix::Error::from_error(NoCredentials(denied)));
            };
            if asked {
                // Asked again: the credentials were refused.
                return Err(gix::Error::from_error(CredentialsRefused));
            }
            asked = true;
            Ok(Some(gix::credentials::protocol::Outcome {
                identity: gix::sec::identity::Account {
                    username: username.clone(),
                    password: pw,
                    oauth_refresh_token: None,
                },
                next: ctx.into(),
            }))
        }
        _ => Ok(None),
    });
    let interrupt = AtomicBool::new(false);
    let outcome = connection
        .prepare_fetch(gix::progress::Discard, Default::default())
        .map_err(|e| chain(&e))?
        .receive(gix::progress::Discard, &interrupt)
        .map_err(|e| chain(&e))?;
    prune(repo, &outcome.ref_map);
    Ok(())
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct NoCredentials(&'static str);

#[derive(Debug, thiserror::Error)]
#[error("the credentials were refused")]
struct CredentialsRefused;

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An error and its causes on one line (`a: b: c`), repeated messages dropped.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let msg = one_line(&err.to_string());
        if !msg.is_empty() && !parts.iter().any(|p| p.contains(&msg)) {
            parts.push(msg);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// Deletes local branches and tags the remote no longer has (a deleted branch must not
/// keep resolving to its last commit).
fn prune(repo: &gix::Repository, map: &gix::remote::fetch::RefMap) {
    let remote: std::collections::HashSet<String> = map
        .remote_refs
        .iter()
        .map(|r| {
            let (name, _, _) = r.unpack();
            name.to_string()
        })
        .collect();
    let Ok(platform) = repo.references() else {
        return;
    };
    let Ok(all) = platform.all() else { return };
    let gone: Vec<gix::Reference<'_>> = all
        .filter_map(Result::ok)
        .filter(|r| {
            let n = r.name().as_bstr().to_string();
            (n.starts_with("refs/heads/") || n.starts_with("refs/tags/")) && !remote.contains(&n)
        })
        .collect();
    for r in gone {
        let name = r.name().as_bstr().to_string();
        match r.delete() {
            Ok(()) => tracing::debug!(%name, "pruned"),
            Err(e) => tracing::warn!(%name, error = %e, "could not prune"),
        }
    }
}

/// The repository's tags (names without `refs/tags/`), for semver ranges.
pub fn tags(synced: &Synced) -> Vec<String> {
    let Ok(platform) = synced.repo.references() else {
        return Vec::new();
    };
    let Ok(all) = platform.all() else {
        return Vec::new();
    };
    all.filter_map(Result::ok)
        .filter_map(|r| {
            r.name()
                .as_bstr()
                .to_string()
                .strip_prefix("refs/tags/")
                .map(str::to_string)
        })
        .collect()
}

/// Resolves a branch, tag, `refs/…` name, `HEAD` or commit SHA to a commit id.
fn resolve(repo: &gix::Repository, reference: &str, url: &str) -> Result<String, GitError> {
    let mut candidates = Vec::new();
    if reference == "HEAD" {
        // Argo CD's default `targetRevision`, the remote's default branch: the cache does
        // not record which that is, so `main`, else `master`.
        candidates.extend([
            "refs/heads/main".to_string(),
            "refs/heads/master".to_string(),
        ]);
    } else if reference.starts_with("refs/") {
        candidates.push(reference.to_string());
    } else {
        candidates.push(format!("refs/heads/{reference}"));
        candidates.push(format!("refs/tags/{reference}"));
    }
    for name in &candidates {
        if let Ok(Some(mut r)) = repo.try_find_reference(name.as_str())
            && let Ok(c) = r.peel_to_commit()
        {
            return Ok(c.id.to_string());
        }
    }
    let hex = reference.len() >= 7
        && reference.len() <= 40
        && reference.bytes().all(|b| b.is_ascii_hexdigit());
    if hex
        && let Ok(id) = repo.rev_parse_single(reference)
        && let Ok(obj) = id.object()
        && let Ok(c) = obj.peel_to_commit()
    {
        return Ok(c.id.to_string());
    }
    Err(GitError::RefNotFound {
        url: url.to_string(),
        reference: reference.to_string(),
        hint: available_refs(repo),
    })
}

fn available_refs(repo: &gix::Repository) -> String {
    let Ok(platform) = repo.references() else {
        return String::new();
    };
    let Ok(all) = platform.all() else {
        return String::new();
    };
    let (mut heads, mut tags) = (Vec::new(), Vec::new());
    for r in all.filter_map(Result::ok) {
        let n = r.name().as_bstr().to_string();
        if let Some(b) = n.strip_prefix("refs/heads/") {
            heads.push(b.to_string());
        } else if let Some(t) = n.strip_prefix("refs/tags/") {
            tags.push(t.to_string());
        }
    }
    let list = |v: &mut Vec<String>| {
        v.sort();
        let more = v.len().saturating_sub(10);
        v.truncate(10);
        let mut s = v.join(", ");
        if more > 0 {
            s.push_str(&format!(", … {more} more"));
        }
        s
    };
    match (heads.is_empty(), tags.is_empty()) {
        (true, true) => " (the repository has no branches or tags)".to_string(),
        (false, true) => format!(" (branches: {})", list(&mut heads)),
        (true, false) => format!(" (tags: {})", list(&mut tags)),
        (false, false) => format!(
            " (branches: {}; tags: {})",
            list(&mut heads),
            list(&mut tags)
        ),
    }
}

/// One file read from the tree at a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFile {
    /// Repository-relative path, `/`-separated.
    pub path: String,
    pub data: Vec<u8>,
    /// True for an executable blob.
    pub executable: bool,
}

/// Reads every file (blob) under `path` in the tree at `commit`, recursively, in path
/// order; `path` may also name a single file. Symlinks and submodules are skipped.
///
/// # Errors
/// [`GitError::PathNotFound`] when `path` is not in the tree; [`GitError::Read`] when an
/// object cannot be read.
pub(crate) fn read_files(
    synced: &Synced,
    reference: &str,
    path: &str,
) -> Result<Vec<TreeFile>, GitError> {
    let repo = &synced.repo;
    let read_err = |reason: String| GitError::Read {
        url: synced.url.clone(),
        commit: synced.commit.clone(),
        reason,
    };
    let id =
        gix::ObjectId::from_hex(synced.commit.as_bytes()).map_err(|e| read_err(e.to_string()))?;
    let tree = repo
        .find_commit(id)
        .and_then(|c| c.tree())
        .map_err(|e| read_err(format!("{e:#}")))?;
    let not_found = || GitError::PathNotFound {
        url: synced.url.clone(),
        reference: reference.to_string(),
        commit: synced.commit.clone(),
        path: path.to_string(),
    };
    let (root, prefix) = if path.is_empty() {
        (tree, String::new())
    } else {
        let entry = tree
            .lookup_entry_by_path(path)
            .map_err(|e| read_err(format!("{e:#}")))?
            .ok_or_else(not_found)?;
        let mode = entry.mode();
        if mode.is_blob() {
            let obj = entry.object().map_err(|e| read_err(format!("{e:#}")))?;
            return Ok(vec![TreeFile {
                path: path.to_string(),
                data: obj.data.clone(),
                executable: mode.is_executable(),
            }]);
        }
        if !mode.is_tree() {
            return Err(not_found());
        }
        let sub = entry
            .object()
            .and_then(gix::Object::peel_to_tree)
            .map_err(|e| read_err(format!("{e:#}")))?;
        (sub, format!("{path}/"))
    };
    let entries = root
        .traverse()
        .breadthfirst
        .files()
        .map_err(|e| read_err(format!("{e:#}")))?;
    let mut out = Vec::new();
    for e in entries {
        if !e.mode.is_blob() {
            continue;
        }
        let obj = repo
            .find_object(e.oid)
            .map_err(|err| read_err(format!("{}: {err:#}", e.filepath)))?;
        out.push(TreeFile {
            path: format!("{prefix}{}", e.filepath),
            data: obj.data.clone(),
            executable: e.mode.is_executable(),
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_syntax() {
        let s =
            GitSpec::parse("git:https://github.com/acme/deploy.git@main:overlays/prod").unwrap();
        assert_eq!(s.repo, "https://github.com/acme/deploy.git");
        assert_eq!(s.reference, "main");
        assert_eq!(s.path, "overlays/prod");
        let s = GitSpec::parse("git:git@github.com:acme/deploy.git@release/v2").unwrap();
        assert_eq!(s.repo, "git@github.com:acme/deploy.git");
        assert_eq!(s.reference, "release/v2");
        assert_eq!(s.path, "");
        let s = GitSpec::parse("git:./repo@0123abc:/apps//web/").unwrap();
        assert_eq!((s.repo.as_str(), s.path.as_str()), ("./repo", "apps/web"));
        for bad in [
            "git:repo",
            "repo@main",
            "git:@main",
            "git:repo@",
            "git:r@m:a/../b",
        ] {
            assert!(GitSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials_never_shown() {
        let text = "git:https://bot:s3cr3t@example.com/x.git@main";
        let s = GitSpec::parse(text).unwrap();
        assert_eq!(s.describe(), "git:https://bot:***@example.com/x.git@main");
        assert_eq!(
            redact_url("https://s3cr3t@example.com/x"),
            "https://***@example.com/x"
        );
        let e = GitSpec::parse("git:https://bot:s3cr3t@example.com/x.git").unwrap_err();
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
        let (clean, user, pw) = split_credentials("https://bot:s3cr3t@example.com/x.git");
        assert_eq!(clean, "https://example.com/x.git");
        assert_eq!(user.as_deref(), Some("bot"));
        assert_eq!(pw.as_deref(), Some("s3cr3t"));
    }

    #[test]
    fn url_kinds() {
        assert!(is_url("https://h/x"));
        assert!(is_url("git@github.com:a/b"));
        assert!(is_url("file:///tmp/x"));
        assert!(!is_url("/tmp/repo"));
        assert!(!is_url("./a:b/c"));
        assert_eq!(
            ssh_command(Path::new("/keys/it's")),
            "ssh -i '/keys/it'\\''s' -o IdentitiesOnly=yes -o BatchMode=yes"
        );
    }
}
