//! Web sessions across real daemon processes: a login on process A is accepted by process B
//! (another replica with the same tokens) and by A after a restart, because the session is a
//! signed cookie keyed by the token itself (src/web/auth.rs), kept in no process. Neither
//! the cookie nor any process's log holds the token.

#[path = "common/api.rs"]
mod common_api;
#[path = "common/web.rs"]
mod common_web;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common_web::{OPERATE, READ, get, request};

/// A daemon process: its API address and everything it logged.
struct Proc {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `envdrift daemon` on `cfg` and waits (bounded) for its "API listening" line.
fn spawn(cfg: &Path) -> Proc {
    let bin = envdrift_testkit::envdrift_bin(env!("CARGO_BIN_EXE_envdrift"));
    let mut child = Command::new(bin)
        .args(["daemon", "--config"])
        .arg(cfg)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = mpsc::channel();
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("API listening")
                && let Some(at) = line.find("addr=")
            {
                let addr: String = line[at + 5..]
                    .chars()
                    .take_while(|c| !c.is_whitespace())
                    .filter(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                    .collect();
                let _ = tx.send(addr);
            }
            sink.lock().unwrap().push_str(&line);
            sink.lock().unwrap().push('\n');
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("no `API listening` line: {}", log.lock().unwrap()));
    Proc {
        child,
        addr: addr.parse().unwrap(),
        log,
    }
}

fn config(dir: &Path, state: &str) -> std::path::PathBuf {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo");
    let cfg = dir.join(format!("{state}.yaml"));
    std::fs::write(
        &cfg,
        format!(
            "data_dir: {state}\nlisten: 127.0.0.1:0\nenvironments:\n  production:\n    desired: {{type: dir, path: {}}}\n    live: {{type: dump, path: {}}}\n    interval: 1h\napi:\n  tokens:\n    - {{name: ci, role: read, token_file: read.token}}\n    - {{name: oncall, role: operate, token_file: operate.token}}\n",
            demo.join("git/production").display(),
            demo.join("live/production").display()
        ),
    )
    .unwrap();
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_on_one_daemon_process_works_on_another_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("read.token"), READ).unwrap();
    std::fs::write(dir.path().join("operate.token"), OPERATE).unwrap();
    let (cfg_a, cfg_b) = (config(dir.path(), "state-a"), config(dir.path(), "state-b"));
    let a = spawn(&cfg_a);
    let b = spawn(&cfg_b);

    let r = request(
        a.addr,
        "POST",
        "/login",
        &[],
        Some(&format!("token={OPERATE}&next=%2F")),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let cookie = r.cookie("envdrift_session").unwrap();
    assert!(!cookie.contains(OPERATE));
    let on_a = get(a.addr, "/", Some(&cookie)).await;
    assert_eq!(on_a.status, 200);
    // Process B never saw the login.
    let on_b = get(b.addr, "/", Some(&cookie)).await;
    assert_eq!(on_b.status, 200, "{}", on_b.body);
    assert!(on_b.body.contains("oncall"));
    assert_eq!(on_b.csrf(), on_a.csrf(), "the same CSRF token on both");
    // Without the cookie: the login page.
    assert_eq!(get(b.addr, "/", None).await.status, 303);

    // A restarts: the session is still good.
    let log_a = a.log.lock().unwrap().clone();
    drop(a);
    let a2 = spawn(&cfg_a);
    assert_eq!(get(a2.addr, "/", Some(&cookie)).await.status, 200);

    // No process logged a token or the cookie (the login is logged by token name).
    let logs = [
        log_a,
        b.log.lock().unwrap().clone(),
        a2.log.lock().unwrap().clone(),
    ];
    assert!(logs[0].contains("web login"), "{}", logs[0]);
    let value = cookie.split_once('=').unwrap().1;
    for log in &logs {
        assert!(!log.contains(OPERATE) && !log.contains(READ), "{log}");
        assert!(!log.contains(value), "{log}");
    }
}
