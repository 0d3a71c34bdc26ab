//! The node's side of the client protocol: an accept loop with a cap on connections, and one
//! task per connection answering its requests in order through the node's handle.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use rhizo_commit::wire::MAX_FRAME_LEN;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::protocol::{CLIENT_PROTOCOL_VERSION, Request, Response, WireError, decode, encode};
use crate::metrics::RequestKind;
use crate::socket::Io;
use crate::tls::TlsContext;
use crate::{NetError, NodeHandle, Result};

/// How the node serves clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientListenerConfig {
    /// The address to listen on, e.g. `127.0.0.1:7100` (`127.0.0.1:0` picks a free port).
    pub listen: String,
    /// Connections served at once; more are closed on accept.
    pub max_connections: usize,
    /// A connection with no request for this long is closed.
    pub idle_timeout: Duration,
}

impl ClientListenerConfig {
    /// Listening at `listen`, with at most 256 connections idle for at most a minute.
    pub fn new(listen: impl Into<String>) -> Self {
        Self {
            listen: listen.into(),
            max_connections: 256,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// A running client listener: its tasks end when `stop` is cancelled.
pub(crate) struct ClientListener {
    pub(crate) local_addr: std::net::SocketAddr,
    stop: CancellationToken,
    tasks: TaskTracker,
}

type Conn = Framed<Box<dyn Io>, LengthDelimitedCodec>;

/// A bound client listener, not serving yet: binding and loading TLS are what can fail, so a
/// node does them before it starts anything else.
pub(crate) struct BoundClientListener {
    listener: TcpListener,
    serving: Serving,
}

impl BoundClientListener {
    /// Binds `config.listen` on the current runtime. Under TLS a client must present a
    /// certificate from the cluster's CA (any name).
    pub(crate) fn bind(
        config: &ClientListenerConfig,
        tls: Option<TlsContext>,
        handshake_timeout: Duration,
    ) -> Result<Self> {
        if config.max_connections == 0 || config.idle_timeout.is_zero() {
            return Err(NetError::InvalidConfig {
                field: "client",
                reason: "max_connections and idle_timeout must be positive".into(),
            });
        }
        let bind = |source| NetError::Bind {
            address: config.listen.clone(),
            source,
        };
        let std_listener = std::net::TcpListener::bind(&config.listen).map_err(bind)?;
        std_listener.set_nonblocking(true).map_err(bind)?;
        let listener = TcpListener::from_std(std_listener).map_err(bind)?;
        let serving = Serving {
            node: None,
            tls,
            handshake_timeout,
            idle_timeout: config.idle_timeout,
            slots: Arc::new(Semaphore::new(config.max_connections)),
        };
        Ok(Self { listener, serving })
    }

    /// Serves `node`'s clients until stopped.
    pub(crate) fn serve(self, node: NodeHandle) -> ClientListener {
        let Self {
            listener,
            mut serving,
        } = self;
        serving.node = Some(node);
        let local_addr = listener
            .local_addr()
            .unwrap_or_else(|_| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        let accept = accept_loop(Arc::new(serving), listener, tasks.clone(), stop.clone());
        tasks.spawn(accept);
        ClientListener {
            local_addr,
            stop,
            tasks,
        }
    }
}

impl ClientListener {
    /// Closes the listener and every client connection, and waits for their tasks.
    pub(crate) async fn stop(&self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

struct Serving {
    /// Set by `serve`, before any connection is accepted.
    node: Option<NodeHandle>,
    tls: Option<TlsContext>,
    handshake_timeout: Duration,
    idle_timeout: Duration,
    slots: Arc<Semaphore>,
}

async fn accept_loop(
    serving: Arc<Serving>,
    listener: TcpListener,
    tasks: TaskTracker,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(%error, "client accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Ok(slot) = serving.slots.clone().try_acquire_owned() else {
            warn!(%remote, "closed a client connection: too many clients");
            continue;
        };
        let serving = serving.clone();
        let stop = stop.clone();
        tasks.spawn(async move {
            tokio::select! {
                biased;
                () = stop.cancelled() => {}
                () = serve_connection(&serving, stream, remote) => {}
            }
            drop(slot);
        });
    }
}

async fn serve_connection(
    serving: &Serving,
    stream: tokio::net::TcpStream,
    remote: std::net::SocketAddr,
) {
    let Some(node) = &serving.node else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let stream: Box<dyn Io> = match &serving.tls {
        Some(tls) => {
            let accepted =
                tokio::time::timeout(serving.handshake_timeout, tls.acceptor.accept(stream)).await;
            match accepted {
                Ok(Ok(stream)) => Box::new(stream),
                Ok(Err(error)) => {
                    warn!(%remote, %error, "refused a client: TLS handshake failed");
                    crate::metrics::client_refused(node.node_id(), "tls");
                    return;
                }
                Err(_) => {
                    warn!(%remote, "refused a client: no TLS handshake in time");
                    crate::metrics::client_refused(node.node_id(), "handshake_timeout");
                    return;
                }
            }
        }
        None => Box::new(stream),
    };
    let codec = LengthDelimitedCodec::builder()
        .length_field_type::<u32>()
        .max_frame_length(MAX_FRAME_LEN)
        .new_codec();
    let mut conn: Conn = Framed::new(stream, codec);
    let ready = Response::Ready {
        protocol_version: CLIENT_PROTOCOL_VERSION,
        node: node.node_id(),
    };
    if send(&mut conn, &ready).await.is_err() {
        return;
    }
    loop {
        let block = match tokio::time::timeout(serving.idle_timeout, conn.next()).await {
            Err(_) | Ok(None) => return,
            Ok(Some(Err(error))) => {
                debug!(%remote, %error, "client connection closed");
                let refusal = WireError::MalformedRequest {
                    reason: error.to_string(),
                };
                let _ = send(&mut conn, &Response::Refused(refusal)).await;
                return;
            }
            Ok(Some(Ok(block))) => block,
        };
        let request = match decode::<Request>(&block) {
            Ok(request) => request,
            Err(reason) => {
                warn!(%remote, reason, "closed a client connection: malformed request");
                let refusal = WireError::MalformedRequest { reason };
                let _ = send(&mut conn, &Response::Refused(refusal)).await;
                return;
            }
        };
        let response = answer(node, request).await;
        if send(&mut conn, &response).await.is_err() {
            return;
        }
    }
}

async fn send(conn: &mut Conn, response: &Response) -> std::io::Result<()> {
    let mut bytes = encode(response).map_err(std::io::Error::other)?;
    if bytes.len() > MAX_FRAME_LEN {
        // An answer larger than a frame (a huge set read whole) is refused, not cut: the
        // client's decoder would refuse the length anyway.
        let refusal = WireError::NodeFailure {
            reason: format!(
                "the answer is {} bytes, more than a frame ({MAX_FRAME_LEN} bytes)",
                bytes.len()
            ),
        };
        bytes = encode(&Response::Refused(refusal)).map_err(std::io::Error::other)?;
    }
    conn.send(Bytes::from(bytes)).await
}

/// Does what the request asks through the node's handle.
async fn answer(node: &NodeHandle, request: Request) -> Response {
    let kind = RequestKind::of(&request);
    let answered = match request {
        Request::Commit { mode, tx } => node.commit_async(mode, tx).await.map(Response::Committed),
        Request::Read { table, row, column } => {
            node.read(&table, &row, &column).map(Response::Value)
        }
        Request::ReadCells { consistency, keys } => node
            .read_cells_async(consistency, &keys)
            .await
            .map(Response::Values),
        Request::ReadCellsAfter {
            consistency,
            keys,
            after,
        } => node
            .read_cells_after_async(consistency, &keys, &after)
            .await
            .map(Response::Values),
        Request::Status => Ok(Response::Status(Box::new(node.status()))),
        Request::DeclareColumn {
            table,
            column,
            spec,
        } => node
            .declare_column_async(&table, &column, spec)
            .await
            .map(|()| Response::Declared),
        Request::Schema => Ok(Response::Schema(node.with_engine(|e| e.schema().clone()))),
        Request::Members => Ok(Response::Members(node.members())),
        Request::ChangeMembers(change) => node
            .change_members_async(change)
            .await
            .map(|()| Response::MembersChanged),
    };
    crate::metrics::client_request(node.node_id(), kind, answered.is_ok());
    answered.unwrap_or_else(|err| Response::Refused(WireError::of(&err)))
}
