//! A throwaway `redis-server` for tests and benchmarks (a test utility, not used in service).
//!
//! [`TestRedis::start`] runs its own `redis-server` on a free loopback port with its data in a
//! fresh temporary directory, nothing saved to disk, and waits until it answers `PING`; dropping
//! it kills the server and removes the directory. It never connects to a server it did not
//! start (the usual 127.0.0.1:6379 included). [`TestRedis::restart`] brings the server back on
//! the same port with no data, as a Redis that crashed without persistence would; with
//! [`TestRedis::stop`] and [`TestRedis::start_again`] a test can keep it down for a while, and
//! [`TestRedis::freeze`] makes it stop answering without closing connections.

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
}

impl TestRedis {
    /// Start a `redis-server` of our own on a free port.
    pub fn start() -> io::Result<TestRedis> {
        let mut last_error = None;
        // Another process may take the free port between our probe and the server's bind.
        for _ in 0..5 {
            let mut redis = TestRedis {
                port: free_port()?,
                dir: fresh_dir()?,
                server: None,
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
        let spawned = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
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
            if answers_as_ours(self.port, &self.dir) {
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
fn answers_as_ours(port: u16, dir: &Path) -> bool {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"CONFIG GET dir\r\n").is_err() {
        return false;
    }
    let Some(name) = dir.file_name().and_then(|name| name.to_str()) else {
        return false;
    };
    let mut reply = Vec::new();
    let mut chunk = [0u8; 512];
    while reply.len() < 4096 {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(n) => reply.extend_from_slice(&chunk[..n]),
        }
        if reply.ends_with(b"\r\n") && reply.starts_with(b"*2\r\n") {
            let text = String::from_utf8_lossy(&reply);
            if text.matches("\r\n").count() >= 5 {
                return text.contains(name);
            }
        }
        if reply.starts_with(b"-") && reply.ends_with(b"\r\n") {
            return false;
        }
    }
    false
}
