//! The `store` block: where the daemon keeps its state (docs/store.md).
//!
//! ```yaml
//! store: {type: sqlite}                 # the default: data_dir/envdrift.db
//! store:
//!   type: postgres
//!   url_env: ENVDRIFT_DATABASE_URL       # or url_file: /run/secrets/dsn, or url: postgres://…
//!   ca_file: /etc/ssl/db-ca.pem          # optional, for sslmode=verify-ca/verify-full
//! ```
//!
//! The URL holds the database password: it is never logged nor shown; errors name the
//! store as `postgres://user@host:port/db`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The `store` block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum StoreConfig {
    /// SQLite in `data_dir/envdrift.db` (one daemon process).
    Sqlite,
    /// PostgreSQL, shared by every replica.
    Postgres(PostgresStoreConfig),
}

/// A PostgreSQL store: its URL from exactly one of `url`, `url_env`, `url_file`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresStoreConfig {
    /// `postgres://user:password@host:port/db?sslmode=…` inline (prefer `url_env` or
    /// `url_file`: the password is then not in the config file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// An environment variable holding the URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_env: Option<String>,
    /// A file holding the URL (relative to the config file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_file: Option<PathBuf>,
    /// PEM certificate authorities for the server's certificate (relative to the config
    /// file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for PostgresStoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStoreConfig")
            .field("url", &self.url.as_ref().map(|_| "(secret)"))
            .field("url_env", &self.url_env)
            .field("url_file", &self.url_file)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl PostgresStoreConfig {
    /// The key and text of a problem of the block itself (not of the secret's value).
    pub fn problem(&self) -> Option<(&'static str, String)> {
        let given = [
            self.url.is_some(),
            self.url_env.is_some(),
            self.url_file.is_some(),
        ]
        .iter()
        .filter(|g| **g)
        .count();
        if given != 1 {
            return Some((
                "store.url",
                "set exactly one of url, url_env or url_file".into(),
            ));
        }
        if let Some(u) = &self.url
            && !(u.starts_with("postgres://") || u.starts_with("postgresql://"))
        {
            return Some((
                "store.url",
                "expected a postgres:// or postgresql:// URL".into(),
            ));
        }
        None
    }

    /// Where the store is: the URL read from where it is configured (a secret), and
    /// `ca_file` resolved against `base` (the config file's directory).
    ///
    /// # Errors
    /// Text naming the key and the variable or file, never the URL.
    pub fn target(&self, base: &Path) -> Result<(String, Option<PathBuf>), String> {
        if let Some((key, e)) = self.problem() {
            return Err(format!("{key}: {e}"));
        }
        let abs = |p: &PathBuf| {
            if p.is_absolute() {
                p.clone()
            } else {
                base.join(p)
            }
        };
        let url = match (&self.url, &self.url_env, &self.url_file) {
            (Some(u), _, _) => u.clone(),
            (_, Some(var), _) => match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => v.trim().to_string(),
                _ => {
                    return Err(format!(
                        "store.url_env: environment variable {var} is not set"
                    ));
                }
            },
            (_, _, Some(file)) => {
                let p = abs(file);
                match std::fs::read_to_string(&p) {
                    Ok(v) if !v.trim().is_empty() => v.trim().to_string(),
                    Ok(_) => return Err(format!("store.url_file: {} is empty", p.display())),
                    Err(e) => {
                        return Err(format!("store.url_file: cannot read {}: {e}", p.display()));
                    }
                }
            }
            _ => return Err("store.url: set exactly one of url, url_env or url_file".into()),
        };
        Ok((url, self.ca_file.as_ref().map(abs)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> StoreConfig {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn both_types_parse_and_the_url_comes_from_exactly_one_place() {
        assert_eq!(parse("type: sqlite"), StoreConfig::Sqlite);
        let StoreConfig::Postgres(p) = parse("type: postgres\nurl_file: dsn\nca_file: ca.pem")
        else {
            panic!()
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dsn"), "postgres://u:pw-in-file@h/db\n").unwrap();
        let (url, ca_file) = p.target(dir.path()).unwrap();
        assert_eq!(url, "postgres://u:pw-in-file@h/db");
        assert_eq!(ca_file, Some(dir.path().join("ca.pem")));
        let both = PostgresStoreConfig {
            url: Some("postgres://u:hunter2@h/db".into()),
            url_env: Some("X".into()),
            ..Default::default()
        };
        assert_eq!(both.problem().unwrap().0, "store.url");
        assert!(!format!("{both:?}").contains("hunter2"));
        let unset = PostgresStoreConfig {
            url_env: Some("ENVDRIFT_TEST_UNSET_DSN_VAR".into()),
            ..Default::default()
        };
        assert_eq!(
            unset.target(dir.path()).unwrap_err(),
            "store.url_env: environment variable ENVDRIFT_TEST_UNSET_DSN_VAR is not set"
        );
        assert!(
            serde_saphyr::from_str::<StoreConfig>("type: postgres\nurl: x\npassword: y").is_err()
        );
    }
}
