//! Servers a test starts for itself: PgBouncer in front of the test server, and a Postgres of
//! its own that speaks TLS. Neither will run as root, so under root they run as `postgres`.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// A server process, killed and its directory removed when dropped.
pub struct Daemon {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Daemon {
    /// What the server wrote to its log so far, for a failing assertion.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }
}

/// A directory of this test's own that the service user may write to.
pub fn scratch_dir(name: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("linkrunner-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

/// A port for a child server that can only be given a number (Postgres, PgBouncer, `openssl
/// s_server`): free when asked, and a clash shows as the server failing to start, with its log.
/// Servers in the test process itself bind port 0 once and pass the listener on.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The user and group a server runs as: `postgres` under root, else the test's own.
fn service_user() -> Option<(u32, u32)> {
    // SAFETY: getpwnam reads a static entry; its fields are copied out at once.
    unsafe {
        if libc::geteuid() != 0 {
            return None;
        }
        let entry = libc::getpwnam(c"postgres".as_ptr());
        assert!(
            !entry.is_null(),
            "no postgres user (scripts/test installs PostgreSQL)"
        );
        Some(((*entry).pw_uid, (*entry).pw_gid))
    }
}

fn as_service_user(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    if let Some((uid, gid)) = service_user() {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

/// Gives a file to the service user, with only it able to read it (as Postgres wants its key).
fn hand_over(path: &Path) {
    if let Some((uid, gid)) = service_user() {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn spawn(mut cmd: Command, port: u16, dir: PathBuf) -> Daemon {
    let log = std::fs::File::create(dir.join("log")).unwrap();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    let daemon = Daemon { child, port, dir };
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return daemon;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{cmd:?} did not listen on {port}: {}", daemon.log());
}

/// PgBouncer on a port of its own in front of the test server, in `pool_mode` (session,
/// transaction or statement), for every database and the users the tests connect as.
pub fn pgbouncer(pool_mode: &str) -> Daemon {
    let dir = scratch_dir("pgbouncer");
    let port = free_port();
    let server = url::Url::parse(&std::env::var("DATABASE_URL").unwrap()).unwrap();
    let host = server.host_str().unwrap_or("127.0.0.1").to_string();
    let server_port = server.port().unwrap_or(5432);
    std::fs::write(dir.join("users.txt"), "\"postgres\" \"\"\n\"root\" \"\"\n").unwrap();
    let config = format!(
        "[databases]\n* = host={host} port={server_port}\n\n[pgbouncer]\n\
         listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
         auth_type = trust\nauth_file = {users}\npool_mode = {pool_mode}\n\
         max_client_conn = 100\ndefault_pool_size = 20\npidfile = {pid}\n",
        users = dir.join("users.txt").display(),
        pid = dir.join("pgbouncer.pid").display(),
    );
    let ini = dir.join("pgbouncer.ini");
    std::fs::write(&ini, config).unwrap();
    // Debian puts it in /usr/sbin, which not every user's PATH holds.
    let program = Path::new("/usr/sbin/pgbouncer");
    let mut cmd = as_service_user(if program.exists() {
        program
    } else {
        Path::new("pgbouncer")
    });
    cmd.arg(&ini);
    spawn(cmd, port, dir)
}

/// A database URL of `url` pointed at another port, as PgBouncer serves it.
pub fn through(url: &str, port: u16) -> String {
    let mut url = url::Url::parse(url).unwrap();
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(port)).unwrap();
    url.to_string()
}

/// A certificate authority made with the openssl command: its certificate and key.
pub struct Authority {
    pub cert: PathBuf,
    key: PathBuf,
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command (scripts/test installs it)");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

const EC_KEY: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

impl Authority {
    pub fn new(dir: &Path, name: &str) -> Authority {
        let (cert, key) = (format!("{name}.crt"), format!("{name}.key"));
        let subject = format!("/CN={name}");
        let mut args = vec!["req", "-x509", "-nodes", "-days", "2", "-subj", &subject];
        args.extend(EC_KEY);
        args.extend(["-keyout", &key, "-out", &cert]);
        openssl(&args, dir);
        Authority {
            cert: dir.join(cert),
            key: dir.join(key),
        }
    }

    /// A certificate for `localhost` and 127.0.0.1, signed by this authority: its file and key.
    fn server_certificate(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let mut args = vec!["req", "-new", "-nodes", "-subj", "/CN=localhost"];
        args.extend(EC_KEY);
        args.extend(["-keyout", "server.key", "-out", "server.csr"]);
        openssl(&args, dir);
        std::fs::write(
            dir.join("san.ext"),
            "subjectAltName = DNS:localhost, IP:127.0.0.1\n",
        )
        .unwrap();
        let (ca, ca_key) = (self.cert.to_str().unwrap(), self.key.to_str().unwrap());
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                ca,
                "-CAkey",
                ca_key,
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "san.ext",
                "-out",
                "server.crt",
            ],
            dir,
        );
        (dir.join("server.crt"), dir.join("server.key"))
    }
}

/// The directory of the newest PostgreSQL server programs installed.
fn postgres_bin() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server programs under /usr/lib/postgresql")
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .collect();
    versions.sort();
    versions.pop().expect("a PostgreSQL version").1
}

/// A Postgres server of the test's own that takes connections over TLS only, with a
/// certificate signed by `ca`; user `postgres`, no password.
pub fn tls_postgres(ca: &Authority, dir: &Path) -> Daemon {
    let (cert, key) = ca.server_certificate(dir);
    hand_over(&cert);
    hand_over(&key);
    let data = scratch_dir("pgdata");
    let bin = postgres_bin();
    let init = as_service_user(bin.join("initdb"))
        .args(["--auth=trust", "--username=postgres", "--no-sync", "-D"])
        .arg(data.join("db"))
        .output()
        .unwrap();
    assert!(init.status.success(), "initdb: {init:?}");
    // Plain connections are turned away, so a run that succeeds proves TLS was used.
    std::fs::write(
        data.join("db/pg_hba.conf"),
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n\
         hostnossl all all 0.0.0.0/0 reject\nhostnossl all all ::/0 reject\n",
    )
    .unwrap();
    let port = free_port();
    let mut cmd = as_service_user(bin.join("postgres"));
    cmd.arg("-D")
        .arg(data.join("db"))
        .args(["-p", &port.to_string(), "-k"])
        .arg(&data)
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "ssl=on",
            "-c",
            "fsync=off",
        ])
        .arg("-c")
        .arg(format!("ssl_cert_file={}", cert.display()))
        .arg("-c")
        .arg(format!("ssl_key_file={}", key.display()));
    spawn(cmd, port, data)
}
