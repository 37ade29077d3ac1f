//! The transport under `Emulator::spawn` and `Emulator::serve`, and the answers that break
//! HTTP clients on purpose (fault injection).
//!
//! **Resetting a connection.** A handler cannot close its TCP connection in axum: it only
//! returns a response. So the emulator serves through its own `Listener` whose streams carry
//! a per-connection kill switch, handed to handlers as `ConnectInfo<Connection>`. A `Reset`
//! fault flips the switch and returns a dummy response; hyper's first attempt to write it
//! fails (the stream refuses every read and write once killed, after setting `SO_LINGER` to
//! zero), hyper drops the connection, and the kernel sends a TCP RST. No byte of the dummy
//! response reaches the client: it sees "connection reset" (or "connection closed before
//! message completed"). This is deterministic and panics nowhere.
//!
//! A router embedded elsewhere (`Emulator::router()` served by someone else's server) has no
//! such stream; there a reset unwinds the connection task instead (`resume_unwind`, which
//! skips the panic hook), which tokio catches and which also drops the connection, unless
//! the host server catches panics in handlers.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::extract::connect_info::Connected;
use axum::http::{Extensions, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::faults::HANG_CAP;

/// The body of a `MalformedJson` fault.
pub(crate) const MALFORMED_JSON: &str = "{\"value\": [";

/// A 502 page such as a reverse proxy in front of Graph shows.
const BAD_GATEWAY_PAGE: &str = "<!DOCTYPE html>\n<html>\n<head><title>502 Bad Gateway</title></head>\n<body>\n<h1>502 Bad Gateway</h1>\n<p>The proxy server received an invalid response from an upstream server.</p>\n<hr><address>graph-emulator</address>\n</body>\n</html>\n";

/// A TCP listener whose connections can be reset by a handler.
pub(crate) struct FaultListener(TcpListener);

impl FaultListener {
    pub(crate) fn new(listener: TcpListener) -> FaultListener {
        FaultListener(listener)
    }
}

/// What a handler knows about its connection (`ConnectInfo<Connection>`).
#[derive(Clone, Debug)]
pub(crate) struct Connection {
    #[allow(dead_code)] // kept for logs and debugging
    pub remote: SocketAddr,
    killed: Arc<AtomicBool>,
}

impl Connection {
    /// From now on the connection refuses all I/O; hyper drops it at its next write.
    fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
    }
}

/// A TCP stream with a kill switch.
pub(crate) struct FaultStream {
    inner: TcpStream,
    killed: Arc<AtomicBool>,
}

impl FaultStream {
    fn refuse(&self) -> Option<io::Error> {
        if !self.killed.load(Ordering::SeqCst) {
            return None;
        }
        // Zero linger: closing the socket sends RST instead of FIN, and drops unsent data.
        let _ = self.inner.set_zero_linger();
        Some(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "connection reset by a fault rule",
        ))
    }
}

impl AsyncRead for FaultStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(err) = self.refuse() {
            return Poll::Ready(Err(err));
        }
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for FaultStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(err) = self.refuse() {
            return Poll::Ready(Err(err));
        }
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Some(err) = self.refuse() {
            return Poll::Ready(Err(err));
        }
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(err) = self.refuse() {
            return Poll::Ready(Err(err));
        }
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(err) = self.refuse() {
            return Poll::Ready(Err(err));
        }
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl Listener for FaultListener {
    type Io = FaultStream;
    type Addr = Connection;

    async fn accept(&mut self) -> (FaultStream, Connection) {
        loop {
            match self.0.accept().await {
                Ok((inner, remote)) => {
                    let killed = Arc::new(AtomicBool::new(false));
                    let connection = Connection {
                        remote,
                        killed: Arc::clone(&killed),
                    };
                    return (FaultStream { inner, killed }, connection);
                }
                Err(err) => handle_accept_error(err).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Connection> {
        Ok(Connection {
            remote: self.0.local_addr()?,
            killed: Arc::default(),
        })
    }
}

impl Connected<IncomingStream<'_, FaultListener>> for Connection {
    fn connect_info(stream: IncomingStream<'_, FaultListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// As axum's own `TcpListener` does: a failed handshake is the peer's problem; anything
/// else (e.g. out of file descriptors) is logged and retried a second later.
async fn handle_accept_error(err: io::Error) {
    if matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(%err, "accept error");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Drops the connection this request came on, without an answer (see the module doc).
pub(crate) fn reset(extensions: &Extensions) -> Response {
    match extensions.get::<ConnectInfo<Connection>>() {
        Some(ConnectInfo(connection)) => {
            connection.kill();
            // Never reaches the client: the write fails and hyper drops the connection.
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        None => std::panic::resume_unwind(Box::new(
            "graph-emulator: a Reset fault aborts the connection task",
        )),
    }
}

/// Never answers; after `HANG_CAP` the connection is dropped. When the client gives up
/// first, hyper notices the closed connection and drops this future.
pub(crate) async fn hang(extensions: &Extensions) -> Response {
    tokio::time::sleep(HANG_CAP).await;
    reset(extensions)
}

/// The answer with its body cut in half (at a byte boundary, whatever it splits).
pub(crate) async fn truncate(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    let cut = bytes.slice(..bytes.len() / 2);
    Response::from_parts(parts, Body::from(cut))
}

/// 200, a JSON content type, and a body that is not JSON.
pub(crate) fn malformed_json(mut response: Response) -> Response {
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().remove(header::CONTENT_LENGTH);
    *response.body_mut() = Body::from(MALFORMED_JSON);
    response
}

/// The HTML page of an `HtmlError` fault.
pub(crate) fn bad_gateway_page() -> &'static str {
    BAD_GATEWAY_PAGE
}

/// 502 with a proxy's HTML page and none of Graph's headers.
pub(crate) fn html_error() -> Response {
    let mut response = (StatusCode::BAD_GATEWAY, BAD_GATEWAY_PAGE).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    response
}
