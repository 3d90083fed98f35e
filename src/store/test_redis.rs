//! A throwaway `redis-server` for tests and benchmarks (a test utility, not used in service).
//!
//! [`TestRedis::start`] runs its own `redis-server` on a free loopback port with its data in a
//! fresh temporary directory, nothing saved to disk, and waits until it answers `PING`; dropping
//! it kills the server and removes the directory. It never connects to a server it did not
//! start (the usual 127.0.0.1:6379 included). [`TestRedis::restart`] brings the server back on
//! the same port with no data, as a Redis that crashed without persistence would; with
//! [`TestRedis::stop`] and [`TestRedis::start_again`] a test can keep it down for a while, and
//! [`TestRedis::freeze`] makes it stop answering without closing connections.
//!
//! [`TestRedis::start_with`] sets a server up as a hospital would run it ([`TestRedisOptions`]):
//! a password, ACL users, a TLS port (certificates from [`TestCertificates`], made by the
//! `openssl` command), or as the replica of another test server. [`TestRedis::sentinel`] starts
//! `redis-server --sentinel` watching a test master, with the short failure detection a test
//! needs.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a fresh server may take to answer `PING`.
const STARTUP_DEADLINE: Duration = Duration::from_secs(10);

pub struct TestRedis {
    port: u16,
    dir: PathBuf,
    /// `None` while stopped.
    server: Option<Child>,
    options: TestRedisOptions,
    /// The TLS port, when the options ask for TLS.
    tls_port: Option<u16>,
    /// A Sentinel: the configuration file it runs from (and rewrites).
    sentinel_conf: Option<PathBuf>,
}

/// How a test server is set up beyond the defaults.
#[derive(Clone, Debug, Default)]
pub struct TestRedisOptions {
    /// `requirepass`: the `default` user's password.
    pub password: Option<String>,
    /// ACL rules, each a `--user` line such as `careline on >pw ~careline:* +@all`.
    pub acl_users: Vec<String>,
    /// Also serve TLS, on a port of its own, with these certificates (clients need no
    /// certificate of their own).
    pub tls: Option<TestCertificates>,
    /// Replicate the test master on this port (with `password` as `masterauth`).
    pub replica_of: Option<u16>,
}

/// How a test Sentinel is set up beyond the defaults.
#[derive(Clone, Debug, Default)]
pub struct TestSentinelOptions {
    /// What the Sentinel authenticates to the master and replicas with (`auth-pass`).
    pub master_password: Option<String>,
    /// What the Sentinel's own clients must give (`requirepass`).
    pub password: Option<String>,
    /// Also serve TLS on a port of its own, and reach the master over TLS (then the master's
    /// port given is its TLS port).
    pub tls: Option<TestCertificates>,
}

/// A test CA, a server certificate it signed (for `127.0.0.1` and `localhost`) and a second,
/// unrelated CA, as PEM files.
#[derive(Clone, Debug)]
pub struct TestCertificates {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// A CA that signed nothing here: trusting it alone must fail.
    pub other_ca: PathBuf,
}

impl TestCertificates {
    /// Make the certificates in `dir` with the `openssl` command.
    pub fn generate(dir: &Path) -> io::Result<TestCertificates> {
        let file = |name: &str| dir.join(name);
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        for (name, subject) in [
            ("ca", "/CN=careline test CA"),
            ("other_ca", "/CN=not our CA"),
        ] {
            openssl(
                Command::new("openssl")
                    .args(["req", "-x509", "-days", "2"])
                    .args(ec)
                    .arg("-keyout")
                    .arg(file(&format!("{name}.key")))
                    .arg("-out")
                    .arg(file(&format!("{name}.pem")))
                    .args(["-subj", subject]),
            )?;
        }
        openssl(
            Command::new("openssl")
                .arg("req")
                .args(ec)
                .arg("-keyout")
                .arg(file("server.key"))
                .arg("-out")
                .arg(file("server.csr"))
                .args(["-subj", "/CN=localhost"]),
        )?;
        std::fs::write(
            file("server.ext"),
            "subjectAltName = IP:127.0.0.1, DNS:localhost\n\
             basicConstraints = CA:FALSE\n\
             keyUsage = digitalSignature, keyEncipherment\n\
             extendedKeyUsage = serverAuth\n",
        )?;
        openssl(
            Command::new("openssl")
                .args(["x509", "-req", "-days", "2"])
                .arg("-in")
                .arg(file("server.csr"))
                .arg("-CA")
                .arg(file("ca.pem"))
                .arg("-CAkey")
                .arg(file("ca.key"))
                .arg("-CAcreateserial")
                .arg("-extfile")
                .arg(file("server.ext"))
                .arg("-out")
                .arg(file("server.pem")),
        )?;
        Ok(TestCertificates {
            ca: file("ca.pem"),
            server_cert: file("server.pem"),
            server_key: file("server.key"),
            other_ca: file("other_ca.pem"),
        })
    }
}

fn openssl(command: &mut Command) -> io::Result<()> {
    let output = match command.stdin(Stdio::null()).output() {
        Ok(output) => output,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the openssl command is not installed (Debian: apt-get install openssl)",
            ));
        }
        Err(error) => return Err(error),
    };
    if output.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "openssl failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )))
    }
}

impl TestRedis {
    /// Start a `redis-server` of our own on a free port.
    pub fn start() -> io::Result<TestRedis> {
        TestRedis::start_with(TestRedisOptions::default())
    }

    /// Start a `redis-server` of our own on a free port, set up as `options` say.
    pub fn start_with(options: TestRedisOptions) -> io::Result<TestRedis> {
        TestRedis::start_server(options, None)
    }

    /// Start a Sentinel of our own on a free port, watching the test master on `master_port`
    /// as `master_name`, with `quorum` Sentinels needed to agree that it is down. A master
    /// that does not answer for a second is down; a failover may be retried after three.
    pub fn sentinel(
        master_name: &str,
        master_port: u16,
        quorum: u32,
        options: TestSentinelOptions,
    ) -> io::Result<TestRedis> {
        let mut conf = format!(
            "sentinel monitor {master_name} 127.0.0.1 {master_port} {quorum}\n\
             sentinel down-after-milliseconds {master_name} 1000\n\
             sentinel failover-timeout {master_name} 3000\n\
             sentinel parallel-syncs {master_name} 1\n"
        );
        if let Some(password) = &options.master_password {
            conf.push_str(&format!("sentinel auth-pass {master_name} {password}\n"));
        }
        if let Some(password) = &options.password {
            conf.push_str(&format!("requirepass {password}\n"));
        }
        let server_options = TestRedisOptions {
            password: options.password,
            tls: options.tls,
            ..TestRedisOptions::default()
        };
        TestRedis::start_server(server_options, Some(conf))
    }

    fn start_server(options: TestRedisOptions, sentinel: Option<String>) -> io::Result<TestRedis> {
        let mut last_error = None;
        // Another process may take the free port between our probe and the server's bind.
        for _ in 0..5 {
            let dir = fresh_dir()?;
            let port = free_port()?;
            let tls_port = match options.tls {
                Some(_) => Some(free_port()?),
                None => None,
            };
            let sentinel_conf = match &sentinel {
                Some(monitor) => {
                    let conf = dir.join("sentinel.conf");
                    let mut text = format!(
                        "port {port}\nbind 127.0.0.1\ndir {}\nlogfile {}\n",
                        dir.display(),
                        dir.join("redis.log").display()
                    );
                    if let (Some(tls), Some(tls_port)) = (&options.tls, tls_port) {
                        text.push_str(&format!(
                            "tls-port {tls_port}\ntls-cert-file {}\ntls-key-file {}\n\
                             tls-ca-cert-file {}\ntls-auth-clients no\ntls-replication yes\n",
                            tls.server_cert.display(),
                            tls.server_key.display(),
                            tls.ca.display()
                        ));
                    }
                    text.push_str(monitor);
                    std::fs::write(&conf, text)?;
                    Some(conf)
                }
                None => None,
            };
            let mut redis = TestRedis {
                port,
                tls_port,
                dir,
                server: None,
                options: options.clone(),
                sentinel_conf,
            };
            match redis.start_again() {
                Ok(()) => return Ok(redis),
                Err(error) if error.kind() == io::ErrorKind::NotFound => return Err(error),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("redis-server did not start")))
    }

    /// `redis://127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// `rediss://127.0.0.1:TLS-PORT/`, when the server serves TLS.
    pub fn tls_url(&self) -> Option<String> {
        self.tls_port
            .map(|port| format!("rediss://127.0.0.1:{port}/"))
    }

    /// `127.0.0.1:PORT`, as Sentinels and `[store] sentinels` write it.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:TLS-PORT`, when the server serves TLS.
    pub fn tls_address(&self) -> Option<String> {
        self.tls_port.map(|port| format!("127.0.0.1:{port}"))
    }

    pub fn tls_port(&self) -> Option<u16> {
        self.tls_port
    }

    /// Send one command with `redis-cli` (authenticated as the `default` user when the server
    /// has a password) and return its answer, trimmed.
    pub fn cli(&self, args: &[&str]) -> io::Result<String> {
        let mut command = Command::new("redis-cli");
        command.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(password) = &self.options.password {
            command.env("REDISCLI_AUTH", password);
        }
        let output = command.args(args).stdin(Stdio::null()).output()?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "redis-cli {args:?} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kill the server (its data is lost); the port stays ours to start again on.
    pub fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            // Already gone is fine: either way nothing is left running.
            let _ = server.kill();
            let _ = server.wait();
        }
    }

    /// Start the server again on the same port, empty. Does nothing if it is running.
    pub fn start_again(&mut self) -> io::Result<()> {
        if self.server.is_some() {
            return Ok(());
        }
        let log = self.dir.join("redis.log");
        let mut command = Command::new("redis-server");
        if let Some(conf) = &self.sentinel_conf {
            command.arg(conf).arg("--sentinel");
        } else {
            command
                .args(["--port", &self.port.to_string()])
                .args(["--bind", "127.0.0.1"])
                .args(["--save", ""])
                .args(["--appendonly", "no"])
                .arg("--dir")
                .arg(&self.dir)
                .arg("--logfile")
                .arg(&log);
            self.add_options(&mut command);
        }
        let spawned = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let mut server = match spawned {
            Ok(server) => server,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    "redis-server is not installed: run the README's test command \
                     (`scripts/test`), which installs it",
                ));
            }
            Err(error) => return Err(error),
        };
        let started = Instant::now();
        loop {
            let probe = Probe {
                password: self.options.password.as_deref(),
                sentinel: self.sentinel_conf.is_some(),
            };
            if answers_as_ours(self.port, &self.dir, &probe) {
                self.server = Some(server);
                return Ok(());
            }
            if let Some(status) = server.try_wait()? {
                return Err(io::Error::other(format!(
                    "redis-server on port {} exited ({status}) before answering; its log: {}",
                    self.port,
                    log.display()
                )));
            }
            if started.elapsed() > STARTUP_DEADLINE {
                let _ = server.kill();
                let _ = server.wait();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("redis-server on port {} did not answer PING", self.port),
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Suspend the server (SIGSTOP): connections stay open but nothing answers, as with a
    /// Redis stuck on a slow disk or a network that drops packets.
    pub fn freeze(&self) -> io::Result<()> {
        self.signal("-STOP")
    }

    /// Resume a frozen server (SIGCONT).
    pub fn thaw(&self) -> io::Result<()> {
        self.signal("-CONT")
    }

    fn signal(&self, signal: &str) -> io::Result<()> {
        let Some(server) = &self.server else {
            return Err(io::Error::other("the test redis-server is stopped"));
        };
        let status = Command::new("kill")
            .arg(signal)
            .arg(server.id().to_string())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!("kill {signal} failed: {status}")))
        }
    }

    /// Kill the server and start it again on the same port with no data.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        self.start_again()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn add_options(&self, command: &mut Command) {
        let options = &self.options;
        if let Some(password) = &options.password {
            command.args(["--requirepass", password]);
        }
        for user in &options.acl_users {
            // One configuration line: its words are separate arguments.
            command.arg("--user").args(user.split_whitespace());
        }
        if let (Some(tls), Some(port)) = (&options.tls, self.tls_port) {
            command
                .args(["--tls-port", &port.to_string()])
                .arg("--tls-cert-file")
                .arg(&tls.server_cert)
                .arg("--tls-key-file")
                .arg(&tls.server_key)
                .arg("--tls-ca-cert-file")
                .arg(&tls.ca)
                .args(["--tls-auth-clients", "no"]);
        }
        if let Some(master) = options.replica_of {
            command.args(["--replicaof", "127.0.0.1", &master.to_string()]);
            if let Some(password) = &options.password {
                command.args(["--masterauth", password]);
            }
        }
    }
}

/// How the start-up probe talks to the server.
struct Probe<'a> {
    password: Option<&'a str>,
    /// A Sentinel has no `CONFIG`: its `INFO` names its configuration file instead.
    sentinel: bool,
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn fresh_dir() -> io::Result<PathBuf> {
    static SEQUENCE: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "careline-test-redis-{}-{}-{:08x}",
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
    Ok(listener.local_addr()?.port())
}

/// Whether the server on `port` answers and is the one working in `dir`: should our server fail
/// to bind, another test's server on the same port must not pass for ours.
fn answers_as_ours(port: u16, dir: &Path, probe: &Probe<'_>) -> bool {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut request = Vec::new();
    if let Some(password) = probe.password {
        request.extend_from_slice(
            format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{password}\r\n", password.len()).as_bytes(),
        );
    }
    request.extend_from_slice(if probe.sentinel {
        b"INFO server\r\n".as_slice()
    } else {
        b"CONFIG GET dir\r\n".as_slice()
    });
    if stream.write_all(&request).is_err() {
        return false;
    }
    let Some(name) = dir.file_name().and_then(|name| name.to_str()) else {
        return false;
    };
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    while reply.len() < 65536 {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(n) => reply.extend_from_slice(&chunk[..n]),
        }
        let mut answer = reply.as_slice();
        if probe.password.is_some() {
            match answer.strip_prefix(b"+OK\r\n") {
                Some(rest) => answer = rest,
                None if answer.starts_with(b"-") => return false,
                None => continue,
            }
        }
        if answer.starts_with(b"-") && answer.ends_with(b"\r\n") {
            return false;
        }
        if probe.sentinel {
            // `$<length>\r\n<text>\r\n`: wait for the whole text.
            let text = String::from_utf8_lossy(answer);
            let Some((length, body)) = text.strip_prefix('$').and_then(|t| t.split_once("\r\n"))
            else {
                continue;
            };
            let Ok(length) = length.parse::<usize>() else {
                return false;
            };
            if body.len() >= length {
                return body.contains(name);
            }
            continue;
        }
        if answer.ends_with(b"\r\n") && answer.starts_with(b"*2\r\n") {
            let text = String::from_utf8_lossy(answer);
            if text.matches("\r\n").count() >= 5 {
                return text.contains(name);
            }
        }
    }
    false
}
