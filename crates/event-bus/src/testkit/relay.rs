//! [`TcpRelay`]: a TCP relay between a client and a server that can cut
//! every connection through it at once, as a network failure or a server
//! dropping its clients would: both ends see their socket close.

use std::{net::SocketAddr, sync::Arc};

use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
};

/// Relays TCP connections from a local port to `upstream`; [`cut`](Self::cut)
/// closes every connection open through it (new ones are accepted again).
#[derive(Debug, Clone)]
pub struct TcpRelay {
    addr: SocketAddr,
    cuts: Arc<watch::Sender<u64>>,
}

impl TcpRelay {
    /// Starts relaying from an ephemeral loopback port to `upstream`.
    ///
    /// # Panics
    ///
    /// When no loopback port can be bound.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port for the relay");
        let addr = listener.local_addr().expect("the relay's address");
        let cuts = Arc::new(watch::channel(0u64).0);
        let relay = Self {
            addr,
            cuts: Arc::clone(&cuts),
        };
        let weak = Arc::downgrade(&cuts);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Some(cuts) = weak.upgrade() else { return };
                let mut cut = cuts.subscribe();
                cut.mark_unchanged();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut client, mut server) = (client, server);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        relay
    }

    /// The local address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every connection open through the relay now.
    pub fn cut(&self) {
        self.cuts.send_modify(|n| *n += 1);
    }
}
