//! A throwaway PostgreSQL cluster on a free loopback port.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::wait::free_port;

/// A real PostgreSQL cluster in its own temporary directory, with a database
/// named `relay`, trusting local connections.
///
/// When the tests run as root (initdb refuses root), every server command
/// runs as the `postgres` user through `runuser`; the temporary directory is
/// made world-writable for it. Stopped (immediate mode) and removed when
/// dropped.
pub struct TestPostgres {
    port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
    running: bool,
}

impl TestPostgres {
    /// Runs `initdb`, starts the server on a free port listening on
    /// 127.0.0.1 only (socket in the temporary directory, `fsync=off`), and
    /// creates the database `relay`.
    pub fn start() -> TestPostgres {
        let bin = find_bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("relay-pg-")
            .tempdir_in("/tmp")
            .expect("temp dir for postgres");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod postgres temp dir");
        let mut pg = TestPostgres {
            port: 0,
            dir,
            bin,
            running: false,
        };
        let out = pg.as_server_user(
            "initdb",
            &[
                "-D",
                &pg.data_dir().to_string_lossy(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            lossy(&out.stdout),
            lossy(&out.stderr)
        );
        let mut last = String::new();
        for _ in 0..5 {
            pg.port = free_port();
            match pg.pg_ctl_start() {
                Ok(()) => {
                    pg.create_database();
                    return pg;
                }
                Err(e) => last = e,
            }
        }
        panic!("postgres did not start: {last}\n{}", pg.log());
    }

    /// `postgres://postgres@127.0.0.1:PORT/relay`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/relay", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (fast mode: connections are closed), keeping its data.
    pub fn stop(&mut self) {
        if self.running {
            let data = self.data_dir();
            let out = self.as_server_user(
                "pg_ctl",
                &[
                    "-D",
                    &data.to_string_lossy(),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    "30",
                    "stop",
                ],
            );
            assert!(
                out.status.success(),
                "pg_ctl stop failed: {}{}",
                lossy(&out.stdout),
                lossy(&out.stderr)
            );
            self.running = false;
        }
    }

    /// Starts the stopped server again on the same port with the same data.
    pub fn start_again(&mut self) {
        if let Err(e) = self.pg_ctl_start() {
            panic!(
                "postgres did not start again on port {}: {e}\n{}",
                self.port,
                self.log()
            );
        }
    }

    /// Runs one SQL statement with `psql` against `relay` and returns its
    /// unaligned output (for inspecting what the processes stored).
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "relay",
            ])
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql:?} failed: {}",
            lossy(&out.stderr)
        );
        lossy(&out.stdout)
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn pg_ctl_start(&mut self) -> Result<(), String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            self.port,
            self.dir.path().display()
        );
        let data = self.data_dir();
        let log = self.dir.path().join("postgres.log");
        let out = self.as_server_user(
            "pg_ctl",
            &[
                "-D",
                &data.to_string_lossy(),
                "-l",
                &log.to_string_lossy(),
                "-o",
                &options,
                "-w",
                "-t",
                "30",
                "start",
            ],
        );
        if out.status.success() {
            self.running = true;
            Ok(())
        } else {
            Err(format!("{}{}", lossy(&out.stdout), lossy(&out.stderr)))
        }
    }

    fn create_database(&self) {
        let out = Command::new(self.bin.join("createdb"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "relay",
            ])
            .output()
            .expect("run createdb");
        assert!(
            out.status.success(),
            "createdb failed: {}",
            lossy(&out.stderr)
        );
    }

    /// Runs one of the server programs as the `postgres` user when we are root.
    fn as_server_user(&self, program: &str, args: &[&str]) -> Output {
        let program = self.bin.join(program);
        let mut cmd = if nix::unistd::getuid().is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        cmd.args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", program.display()))
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "----- postgres log (port {}) -----\n{}",
                self.port,
                self.log()
            );
        }
        if self.running {
            let data = self.data_dir();
            let _ = self.as_server_user(
                "pg_ctl",
                &[
                    "-D",
                    &data.to_string_lossy(),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
            );
            self.running = false;
        }
    }
}

/// The directory of `initdb`, `pg_ctl`, `createdb` and `psql`: the newest
/// `/usr/lib/postgresql/<v>/bin`, else the directory `initdb` resolves to.
fn find_bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    for candidate in ["/usr/local/bin/initdb", "/usr/bin/initdb"] {
        if let Ok(real) = std::fs::canonicalize(candidate) {
            if let Some(dir) = real.parent() {
                return dir.to_path_buf();
            }
        }
    }
    panic!("no PostgreSQL binaries found (initdb in /usr/lib/postgresql/*/bin or /usr/local/bin)");
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl TestPostgres {
    /// The cluster's temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_stops_and_starts_again_with_its_data() {
        let mut pg = TestPostgres::start();
        assert!(pg.url().ends_with("/relay"));
        pg.psql("CREATE TABLE t (x int); INSERT INTO t VALUES (7)");
        pg.stop();
        pg.start_again();
        assert_eq!(pg.psql("SELECT x FROM t").trim(), "7");
    }
}
