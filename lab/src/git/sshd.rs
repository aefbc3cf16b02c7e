//! OpenSSH's sshd on loopback with a host key and client keys of its own.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

use crate::process::{Killed, await_port, free_port, output};
use crate::skip::Missing;

/// Where Debian's openssh-server puts sshd.
const SSHD: &str = "/usr/sbin/sshd";

/// OpenSSH's `sshd` on a loopback port, letting in the current user with one key; git runs
/// over it as over any ssh server (`git-upload-pack '/path'`). Killed on drop.
#[derive(Debug)]
pub struct Sshd {
    // Fields drop in order: the daemon before its keys.
    _daemon: Killed,
    dir: tempfile::TempDir,
    port: u16,
    user: String,
}

impl Sshd {
    /// Starts `sshd` (Debian's openssh-server) with a fresh host key and client keys. A
    /// [`Missing`] error when sshd or ssh-keygen is not installed.
    pub fn start() -> anyhow::Result<Sshd> {
        let install = "install openssh-server and openssh-client (Debian: apt-get install openssh-server openssh-client), or run .ci/test, which does";
        if !Path::new(SSHD).exists() {
            return Err(Missing::new(SSHD, install).into());
        }
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        let keygen = |args: &[&str]| -> anyhow::Result<()> {
            let status = Command::new("ssh-keygen")
                .args(["-q", "-N", ""])
                .args(args)
                .status()
                .map_err(|_| Missing::new("ssh-keygen", install))?;
            if !status.success() {
                bail!("ssh-keygen {args:?} failed ({status})");
            }
            Ok(())
        };
        let host = d.join("host_ed25519");
        keygen(&["-t", "ed25519", "-f", &host.display().to_string()])?;
        for name in ["client", "stranger"] {
            // PEM RSA keys: the format every libssh2 backend reads from memory.
            let path = d.join(name).display().to_string();
            keygen(&["-t", "rsa", "-b", "2048", "-m", "PEM", "-f", &path])?;
        }
        std::fs::copy(d.join("client.pub"), d.join("authorized_keys"))?;
        // sshd needs its privilege separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let user = output(Command::new("id").arg("-un"))?;
        for _ in 0..5 {
            let port = free_port()?;
            let config = format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nAuthorizedKeysFile {keys}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nPidFile {pid}\n",
                host = host.display(),
                keys = d.join("authorized_keys").display(),
                pid = d.join("sshd.pid").display(),
            );
            std::fs::write(d.join("sshd_config"), config)?;
            let mut daemon = Killed::spawn(
                Command::new(SSHD)
                    .args(["-D", "-e", "-f"])
                    .arg(d.join("sshd_config"))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null()),
            )
            .context("cannot start sshd")?;
            if await_port(port, daemon.child(), super::START_WITHIN)? {
                return Ok(Sshd {
                    _daemon: daemon,
                    dir,
                    port,
                    user,
                });
            }
        }
        bail!("sshd did not start on any of five free ports")
    }

    /// The ssh:// URL of a repository at an absolute path.
    pub fn url(&self, path: &Path) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            path.display()
        )
    }

    /// The private key the server lets in (`client`) or one it does not (`stranger`).
    pub fn key(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A known_hosts line trusting this server's host key.
    pub fn known_hosts(&self) -> String {
        let public =
            std::fs::read_to_string(self.dir.path().join("host_ed25519.pub")).expect("host key");
        let mut fields = public.split_whitespace();
        let (kind, key) = (fields.next().unwrap_or(""), fields.next().unwrap_or(""));
        format!("[127.0.0.1]:{} {kind} {key}\n", self.port)
    }
}
