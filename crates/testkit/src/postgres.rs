//! A private PostgreSQL server for tests: `initdb` into a temporary directory, `postgres`
//! listening on 127.0.0.1 on a free port (and a unix socket inside the directory), a
//! superuser with a password (SCRAM on TCP, so a DSN without the right password is refused),
//! [`Postgres::create_database`] for a fresh database per test.
//!
//! The binaries are Debian's (`/usr/lib/postgresql/*/bin`, highest version) or the first
//! `initdb` on PATH. `initdb` and `postgres` refuse to run as root: when the tests run as
//! root, the server runs as the Debian `postgres` user (`runuser -u postgres --`) in a
//! directory made theirs.
//!
//! Stopping: [`Drop`] stops the server (`pg_ctl -m fast stop`, bounded wait) and removes the
//! directory. A server kept in a static ([`Postgres::shared`], one per test binary) is never
//! dropped, so each server also has a watchdog process that holds a pipe from this process:
//! when the test process exits, however it exits, the pipe closes and the watchdog stops the
//! server and removes its directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail};

/// The superuser the tests connect as.
pub const USER: &str = "envdrift";

/// A running private PostgreSQL server.
pub struct Postgres {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    password: String,
    as_postgres: bool,
    watchdog: Option<Child>,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("dir", &self.dir)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// The directory of the PostgreSQL server binaries: Debian's versioned folder (highest
/// version) or the one `initdb` on PATH is in.
///
/// # Errors
/// When no `initdb` is found.
pub fn bin_dir() -> Result<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    found.sort();
    if let Some((_, bin)) = found.pop() {
        return Ok(bin);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
        .context(
            "no PostgreSQL server found (initdb in /usr/lib/postgresql/*/bin or on PATH); \
             install Debian's `postgresql` package (.ci/run does), or set \
             ENVDRIFT_TEST_NO_POSTGRES=1 to skip the PostgreSQL tests",
        )
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn id_of(flag: &str, user: &str) -> Result<u32> {
    let out = Command::new("id")
        .args([flag, user])
        .output()
        .context("running `id`")?;
    if !out.status.success() {
        bail!(
            "tests run as root, and PostgreSQL refuses root: the user `{user}` is needed \
             (Debian's postgresql package makes it)"
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .context("reading `id` output")
}

/// A random hex string from the OS-seeded hasher keys (no extra dependency).
fn random_hex() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut s = String::new();
    for i in 0..2u8 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u8(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        s.push_str(&format!("{:016x}", h.finish()));
    }
    s
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("picking a free port")?;
    Ok(l.local_addr()?.port())
}

impl Postgres {
    /// Starts a new server (a few seconds: initdb, then start).
    ///
    /// # Errors
    /// When the binaries are missing or initdb or the start fail (with their output).
    pub fn start() -> Result<Postgres> {
        Postgres::start_with(None)
    }

    /// Starts a server that also accepts TLS (`ssl=on`) with this PEM certificate and key;
    /// clients may still connect without TLS.
    ///
    /// # Errors
    /// As [`Postgres::start`].
    pub fn start_tls(cert_pem: &str, key_pem: &str) -> Result<Postgres> {
        Postgres::start_with(Some((cert_pem, key_pem)))
    }

    fn start_with(tls: Option<(&str, &str)>) -> Result<Postgres> {
        let bin = bin_dir()?;
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("envdrift-pg-")
            .tempdir()
            .context("making the server's directory")?
            .keep();
        let password = random_hex();
        let pwfile = dir.join("pw");
        std::fs::write(&pwfile, format!("{password}\n")).context("writing the password file")?;
        let mut owned = vec![dir.clone(), pwfile.clone()];
        let mut ssl = String::new();
        if let Some((cert, key)) = tls {
            use std::os::unix::fs::PermissionsExt;
            let (c, k) = (dir.join("server.crt"), dir.join("server.key"));
            std::fs::write(&c, cert).context("writing the server certificate")?;
            std::fs::write(&k, key).context("writing the server key")?;
            std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o600))?;
            ssl = format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                c.display(),
                k.display()
            );
            owned.extend([c, k]);
        }
        if as_postgres {
            let (uid, gid) = (id_of("-u", "postgres")?, id_of("-g", "postgres")?);
            for p in &owned {
                std::os::unix::fs::chown(p, Some(uid), Some(gid))
                    .with_context(|| format!("giving {} to the postgres user", p.display()))?;
            }
        }
        let mut pg = Postgres {
            dir,
            bin,
            port: 0,
            password,
            as_postgres,
            watchdog: None,
        };
        pg.watchdog = Some(pg.spawn_watchdog()?);
        let data = pg.dir.join("data");
        pg.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                USER.as_ref(),
                format!("--pwfile={}", pwfile.display()).as_ref(),
                "--auth-local=trust".as_ref(),
                "--auth-host=scram-sha-256".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--locale=C".as_ref(),
                "--no-sync".as_ref(),
            ],
        )?;
        let _ = std::fs::remove_file(&pwfile);
        // Another process may take the port between the pick and the start: retry.
        let mut last = None;
        for _ in 0..5 {
            let port = free_port()?;
            let opts = format!(
                "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off \
                 -c synchronous_commit=off -c full_page_writes=off -c max_connections=300{ssl}",
                pg.dir.display()
            );
            let log = pg.dir.join("server.log");
            match pg.run(
                "pg_ctl",
                &[
                    "-D".as_ref(),
                    data.as_os_str(),
                    "-l".as_ref(),
                    log.as_os_str(),
                    "-w".as_ref(),
                    "-t".as_ref(),
                    "60".as_ref(),
                    "-o".as_ref(),
                    opts.as_ref(),
                    "start".as_ref(),
                ],
            ) {
                Ok(()) => {
                    pg.port = port;
                    return Ok(pg);
                }
                Err(e) => {
                    let log = std::fs::read_to_string(&log).unwrap_or_default();
                    last = Some(e.context(log));
                }
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("the server did not start")))
    }

    /// One server per test binary, started on first use.
    ///
    /// # Errors
    /// The start's error (the same text for every caller).
    pub fn shared() -> Result<&'static Postgres, String> {
        static SERVER: OnceLock<Result<Postgres, String>> = OnceLock::new();
        SERVER
            .get_or_init(|| Postgres::start().map_err(|e| format!("{e:#}")))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The shared server, or `None` (with a printed line) when `ENVDRIFT_TEST_NO_POSTGRES=1`.
    ///
    /// # Panics
    /// When the server cannot start and PostgreSQL tests are not switched off: a test that
    /// needs PostgreSQL fails rather than passing without it.
    pub fn shared_or_skip(test: &str) -> Option<&'static Postgres> {
        if std::env::var("ENVDRIFT_TEST_NO_POSTGRES").is_ok_and(|v| v == "1") {
            println!("{test}: PostgreSQL part skipped (ENVDRIFT_TEST_NO_POSTGRES=1)");
            return None;
        }
        match Postgres::shared() {
            Ok(pg) => Some(pg),
            Err(e) => panic!(
                "{test}: cannot start PostgreSQL ({e}); set ENVDRIFT_TEST_NO_POSTGRES=1 to skip"
            ),
        }
    }

    /// Creates a new, empty database; returns its DSN. Names are made unique per call.
    ///
    /// # Errors
    /// `createdb`'s output when it fails.
    pub fn create_database(&self, name: &str) -> Result<String> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let clean: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        let db = format!(
            "{clean}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let out = Command::new(self.bin.join("createdb"))
            .arg("-h")
            .arg(&self.dir)
            .args(["-p", &self.port.to_string(), "-U", USER, &db])
            .output()
            .context("running createdb")?;
        if !out.status.success() {
            bail!(
                "createdb {db}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(self.dsn(&db))
    }

    /// The DSN of database `db` over TCP with the password.
    pub fn dsn(&self, db: &str) -> String {
        format!(
            "postgres://{USER}:{}@127.0.0.1:{}/{db}?sslmode=disable",
            self.password, self.port
        )
    }

    /// The superuser's password (secret tests look for it in output).
    pub fn password(&self) -> &str {
        &self.password
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log file.
    pub fn log(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    fn command(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn run(&self, program: &str, args: &[&std::ffi::OsStr]) -> Result<()> {
        let out = self
            .command(program)
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {program}"))?;
        if !out.status.success() {
            bail!(
                "{program} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// A shell that waits for this process's end (its stdin closes) and then stops the
    /// server and removes the directory.
    fn spawn_watchdog(&self) -> Result<Child> {
        let pg_ctl = self.bin.join("pg_ctl");
        let data = self.dir.join("data");
        let stop = if self.as_postgres {
            format!(
                "runuser -u postgres -- {} -D {} -m fast -w -t 20 stop",
                pg_ctl.display(),
                data.display()
            )
        } else {
            format!(
                "{} -D {} -m fast -w -t 20 stop",
                pg_ctl.display(),
                data.display()
            )
        };
        let script = format!(
            "cat >/dev/null; [ -f {data}/postmaster.pid ] && {stop} >/dev/null 2>&1; rm -rf {dir}",
            data = data.display(),
            dir = self.dir.display()
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the server's watchdog")
    }

    fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Closing the watchdog's stdin makes it stop the server and remove the directory;
        // waiting for it bounds the stop (pg_ctl -t 20).
        if let Some(mut w) = self.watchdog.take() {
            drop(w.stdin.take());
            let _ = w.wait();
        } else {
            let _ = std::fs::remove_dir_all(self.dir());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_starts_makes_databases_and_stops_on_drop() {
        if std::env::var("ENVDRIFT_TEST_NO_POSTGRES").is_ok_and(|v| v == "1") {
            println!("skipped (ENVDRIFT_TEST_NO_POSTGRES=1)");
            return;
        }
        let pg = Postgres::start().unwrap();
        let dsn = pg.create_database("kit test").unwrap();
        assert!(dsn.contains(pg.password()), "{dsn}");
        assert!(dsn.contains("/kit_test_"), "{dsn}");
        let other = pg.create_database("kit test").unwrap();
        assert_ne!(dsn, other);
        let port = pg.port();
        std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let dir = pg.dir().to_path_buf();
        drop(pg);
        assert!(!dir.exists(), "the directory is removed");
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "the server is stopped"
        );
    }
}
