//! A TCP proxy on loopback that can cut the network between its two ends the way a partition
//! does: bytes stop flowing both ways, with no RST and no FIN, and new connections are taken
//! but never answered, until it heals. What was sent meanwhile arrives after the heal, as
//! retransmissions would (unless an end gave up on its connection first).

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A proxy to one address that can be cut and healed.
#[derive(Debug)]
pub struct Partition {
    addr: SocketAddr,
    cut: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Partition {
    /// A proxy to `upstream`, open.
    pub async fn start(upstream: SocketAddr) -> anyhow::Result<Partition> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (cut, watching) = watch::channel(false);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let watching = watching.clone();
                tokio::spawn(async move {
                    opened(&watching).await;
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::join!(
                        pipe(client_read, server_write, watching.clone()),
                        pipe(server_read, client_write, watching),
                    );
                });
            }
        });
        Ok(Partition { addr, cut, task })
    }

    /// Where to connect instead of the upstream.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Nothing passes from now on, in either direction, on any connection.
    pub fn cut(&self) {
        let _ = self.cut.send(true);
    }

    /// Everything passes again.
    pub fn heal(&self) {
        let _ = self.cut.send(false);
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Returns once the network is not cut.
async fn opened(watching: &watch::Receiver<bool>) {
    let mut watching = watching.clone();
    let _ = watching.wait_for(|cut| !cut).await;
}

/// Copies `from` to `to` while the network is open; holds what it read while it is cut.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    watching: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        opened(&watching).await;
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        opened(&watching).await;
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
