//! The `api.hooks` section: the secret of `POST /api/v1/hooks/git` (`src/api/hooks.rs`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The `api.hooks` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HooksConfig {
    /// `POST /api/v1/hooks/git`: Git push webhooks (GitHub, GitLab, Gitea). Off without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitHookConfig>,
}

/// The secret of the Git push webhooks: from an environment variable or a file, never
/// inline.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitHookConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
}

impl GitHookConfig {
    /// Reads the secret (a file relative to `base`).
    ///
    /// # Errors
    /// Text naming the config key and the variable or file (never the value).
    pub fn secret(&self, base: &Path) -> Result<Vec<u8>, String> {
        let key = "api.hooks.git";
        let value = match (&self.secret_env, &self.secret_file) {
            (Some(var), None) => std::env::var(var)
                .map_err(|_| format!("{key}.secret_env: environment variable {var} is not set"))?,
            (None, Some(file)) => {
                let p = if file.is_absolute() {
                    file.clone()
                } else {
                    base.join(file)
                };
                std::fs::read_to_string(&p)
                    .map_err(|e| format!("{key}.secret_file: cannot read {}: {e}", p.display()))?
            }
            _ => {
                return Err(format!(
                    "{key}: set exactly one of secret_env or secret_file"
                ));
            }
        };
        let v = value.trim();
        if v.is_empty() {
            return Err(format!("{key}: the secret is empty"));
        }
        Ok(v.as_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_comes_from_a_variable_or_a_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s"), "  abc\n").unwrap();
        let g = GitHookConfig {
            secret_env: None,
            secret_file: Some("s".into()),
        };
        assert_eq!(g.secret(dir.path()).unwrap(), b"abc");
        let g = GitHookConfig {
            secret_env: Some("ENVDRIFT_TEST_SURELY_UNSET_VAR".into()),
            secret_file: None,
        };
        let e = g.secret(dir.path()).unwrap_err();
        assert!(
            e.contains("api.hooks.git.secret_env") && e.contains("ENVDRIFT_TEST_SURELY_UNSET_VAR"),
            "{e}"
        );
        let e = GitHookConfig::default().secret(dir.path()).unwrap_err();
        assert!(e.contains("exactly one"), "{e}");
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        let g = GitHookConfig {
            secret_env: None,
            secret_file: Some("empty".into()),
        };
        assert!(g.secret(dir.path()).unwrap_err().contains("empty"));
    }
}
