//! The HTTP endpoint: `/metrics` (Prometheus text format), `/json` (the newest snapshot as
//! JSON), `/` (an index).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use tiny_http::{Header, Method, Request, Response, Server};

use super::{json_line, prometheus_text};
use crate::{Error, Snapshot};

/// Where the server gets the newest snapshot from.
pub type LatestFn = dyn Fn() -> Option<Arc<Snapshot>> + Send + Sync;

/// A running metrics endpoint. Requests are answered by a few worker threads, and
/// `tiny_http` reads each connection on its own thread, so concurrent scrapes (and a slow
/// client) do not wait for each other. Rendering reads the newest snapshot only: a scrape
/// never triggers a hardware read.
pub struct MetricsServer {
    server: Arc<Server>,
    workers: Vec<JoinHandle<()>>,
    stopping: Arc<AtomicBool>,
    addr: SocketAddr,
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

fn header(k: &str, v: &str) -> Option<Header> {
    Header::from_bytes(k.as_bytes(), v.as_bytes()).ok()
}

fn respond(rq: Request, latest: &LatestFn) {
    let path = rq.url().split('?').next().unwrap_or("").to_string();
    let method = rq.method().clone();
    let reply = |status: u16, ctype: &str, body: String| {
        let mut r = Response::from_string(body).with_status_code(status);
        if let Some(h) = header("Content-Type", ctype) {
            r = r.with_header(h);
        }
        r
    };
    let response = if method != Method::Get && method != Method::Head {
        reply(405, "text/plain; charset=utf-8", "only GET\n".into())
    } else {
        match path.as_str() {
            "/metrics" => match latest() {
                Some(s) => reply(
                    200,
                    "text/plain; version=0.0.4; charset=utf-8",
                    prometheus_text(&s),
                ),
                None => reply(503, "text/plain; charset=utf-8", "no sample yet\n".into()),
            },
            "/json" => match latest().map(|s| json_line(&s)) {
                Some(Ok(j)) => reply(200, "application/json", j + "\n"),
                Some(Err(e)) => reply(500, "text/plain; charset=utf-8", format!("{e}\n")),
                None => reply(503, "text/plain; charset=utf-8", "no sample yet\n".into()),
            },
            "/" => reply(
                200,
                "text/html; charset=utf-8",
                "<html><head><title>anekit metrics</title></head><body><h1>anekit metrics</h1>\
                 <p><a href=\"/metrics\">/metrics</a> (Prometheus) · <a href=\"/json\">/json</a></p>\
                 </body></html>\n"
                    .into(),
            ),
            _ => reply(404, "text/plain; charset=utf-8", "not found\n".into()),
        }
    };
    if let Err(e) = rq.respond(response) {
        tracing::debug!(error = %e, "metrics client went away");
    }
}

impl MetricsServer {
    /// Binds `addr` and answers with `workers` threads (at least 1), taking snapshots from
    /// `latest`. A non-loopback address is served as asked, with a warning in the log.
    pub fn start(
        addr: SocketAddr,
        workers: usize,
        latest: impl Fn() -> Option<Arc<Snapshot>> + Send + Sync + 'static,
    ) -> Result<Self, Error> {
        let server = Server::http(addr).map_err(|e| Error::Serve {
            addr: addr.to_string(),
            detail: e.to_string(),
        })?;
        let bound = server.server_addr().to_ip().ok_or_else(|| Error::Serve {
            addr: addr.to_string(),
            detail: "not an IP listener".into(),
        })?;
        if !bound.ip().is_loopback() {
            tracing::warn!(%bound, "serving metrics on a non-loopback address: anyone who can reach it can read them");
        }
        let server = Arc::new(server);
        let latest: Arc<LatestFn> = Arc::new(latest);
        let stopping = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::new();
        for i in 0..workers.max(1) {
            let (server, latest, stopping) = (
                Arc::clone(&server),
                Arc::clone(&latest),
                Arc::clone(&stopping),
            );
            let h = std::thread::Builder::new()
                .name(format!("anekit-metrics-http-{i}"))
                .spawn(move || {
                    loop {
                        match server.recv() {
                            Ok(rq) => respond(rq, &*latest),
                            Err(e) => {
                                if stopping.load(Ordering::SeqCst) {
                                    break;
                                }
                                tracing::debug!(error = %e, "metrics server accept error");
                            }
                        }
                    }
                })
                .map_err(|e| Error::Serve {
                    addr: addr.to_string(),
                    detail: format!("cannot start a worker thread: {e}"),
                })?;
            handles.push(h);
        }
        Ok(MetricsServer {
            server,
            workers: handles,
            stopping,
            addr: bound,
        })
    }

    /// The address actually bound (the port is filled in when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the workers and closes the listener.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        for _ in 0..self.workers.len() {
            self.server.unblock();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}
