//! A real SMTP server on loopback: Python's aiosmtpd (from `.tools/venv`, installed by
//! `.ci/run`) running `smtp_server.py`, which saves each message as a file. Stops on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct SmtpServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

/// One received message.
#[derive(Debug)]
pub struct Received {
    pub raw: String,
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub login: Option<String>,
    /// The session was encrypted (STARTTLS or implicit TLS).
    pub tls: bool,
}

/// How the test server secures its sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    Plain,
    /// STARTTLS required.
    Starttls,
    /// TLS from the first byte.
    Tls,
}

impl SmtpServer {
    /// Starts a plain server; with `auth`, AUTH with that user and password is required.
    pub fn start(auth: Option<(&str, &str)>) -> SmtpServer {
        SmtpServer::start_with(auth, Security::Plain)
    }

    /// Starts a server with STARTTLS or implicit TLS, serving the test certificate for
    /// `localhost` from tests/fixtures/tls.
    pub fn start_with(auth: Option<(&str, &str)>, security: Security) -> SmtpServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("smtp_server.py");
        let mut cmd = Command::new(super::venv_python());
        cmd.arg(&script).arg(dir.path());
        if let Some((u, p)) = auth {
            cmd.arg("--auth").arg(u).arg(p);
        }
        let tls = super::root().join("tests/fixtures/tls");
        match security {
            Security::Plain => {}
            Security::Starttls => {
                cmd.arg("--starttls");
            }
            Security::Tls => {
                cmd.arg("--tls");
            }
        }
        if security != Security::Plain {
            cmd.arg(tls.join("server.pem")).arg(tls.join("server.key"));
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start aiosmtpd");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read port");
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("smtp_server.py said {line:?}"));
        SmtpServer { port, dir, child }
    }

    /// Waits (up to 10 s) until `n` messages were saved, and returns them in order.
    pub fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let msgs = read_all(self.dir.path());
            if msgs.len() >= n || Instant::now() > deadline {
                return msgs;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn read_all(dir: &Path) -> Vec<Received> {
    let mut emls: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    emls.sort();
    emls.into_iter()
        .map(|p| {
            let meta: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(p.with_extension("json")).expect("envelope"),
            )
            .expect("envelope JSON");
            Received {
                raw: std::fs::read_to_string(&p).expect("message"),
                mail_from: meta["mail_from"].as_str().unwrap_or("").to_string(),
                rcpt_tos: meta["rcpt_tos"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
                login: meta["login"].as_str().map(str::to_string),
                tls: meta["tls"].as_bool().unwrap_or(false),
            }
        })
        .collect()
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed MIME message, enough to check envdrift's multipart/alternative mail.
#[derive(Debug)]
pub struct Parsed {
    pub headers: Vec<(String, String)>,
    /// (content type, decoded body) of each leaf part.
    pub parts: Vec<(String, String)>,
}

impl Parsed {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn split_headers(raw: &str) -> (Vec<(String, String)>, &str) {
    let raw_norm = raw;
    let (head, body) = raw_norm
        .split_once("\r\n\r\n")
        .or_else(|| raw_norm.split_once("\n\n"))
        .unwrap_or((raw_norm, ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    (headers, body)
}

fn decode(body: &str, encoding: &str) -> String {
    match encoding.to_ascii_lowercase().as_str() {
        "quoted-printable" => {
            let joined = body.replace("=\r\n", "").replace("=\n", "");
            let bytes = joined.as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'='
                    && i + 2 < bytes.len()
                    && let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
                {
                    out.push(b);
                    i += 3;
                    continue;
                }
                out.push(bytes[i]);
                i += 1;
            }
            String::from_utf8_lossy(&out).replace("\r\n", "\n")
        }
        "base64" => {
            use base64::Engine;
            let clean: String = body.split_whitespace().collect();
            String::from_utf8_lossy(
                &base64::engine::general_purpose::STANDARD
                    .decode(clean)
                    .expect("base64 part"),
            )
            .replace("\r\n", "\n")
        }
        _ => body.replace("\r\n", "\n"),
    }
}

/// Parses a message (top-level headers, then the leaves of a multipart tree).
pub fn parse(raw: &str) -> Parsed {
    let (headers, body) = split_headers(raw);
    let mut parts = Vec::new();
    collect(&headers, body, &mut parts);
    Parsed { headers, parts }
}

fn collect(headers: &[(String, String)], body: &str, parts: &mut Vec<(String, String)>) {
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let ct = get("Content-Type");
    if ct.to_ascii_lowercase().starts_with("multipart/") {
        let boundary = ct
            .split(';')
            .find_map(|p| p.trim().strip_prefix("boundary="))
            .expect("boundary")
            .trim_matches('"')
            .to_string();
        let delim = format!("--{boundary}");
        for chunk in body.split(&delim).skip(1) {
            if chunk.starts_with("--") {
                break;
            }
            let chunk = chunk.trim_start_matches(['\r', '\n']);
            let (h, b) = split_headers(chunk);
            collect(&h, b, parts);
        }
    } else {
        let mime = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        parts.push((mime, decode(body, &get("Content-Transfer-Encoding"))));
    }
}
