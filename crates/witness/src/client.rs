//! The submitting side of tlog-witness: what the ledger calls to have a remote witness cosign a
//! checkpoint.
//!
//! [`RemoteWitness::add_checkpoint`] sends one `add-checkpoint` request (HTTP/1.1, over TLS for an
//! `https://` URL, trusting the CA file it was given) and reads the answer: the cosignature lines of a
//! `200`, kept only if they verify with the witness key it was configured with (the protocol says to
//! ignore the others); the recorded size of a `409`; any other status as a refusal with the witness's
//! message. Every call has a deadline ([`RemoteWitness::with_timeout`]).

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use hazchem_verify::witness::{
    ADD_CHECKPOINT_PATH, AddCheckpoint, SIZE_CONTENT_TYPE, WitnessKey, add_cosignatures,
    verify_cosignatures,
};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::{Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::error::Error;

/// The default deadline of one call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest answer read (a few cosignature lines, or a message).
const MAX_ANSWER: usize = 64 * 1024;

/// Why a remote witness gave no cosignature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The witness answered with a refusal: `409` carries the size it recorded.
    #[error("{url}: {status} {}", if let Some(size) = recorded { format!("(the witness recorded size {size})") } else { message.clone() })]
    Refused {
        url: String,
        status: u16,
        recorded: Option<u64>,
        message: String,
    },
    /// It could not be reached, or did not answer in time.
    #[error("{url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// It answered `200` without a good cosignature by its key.
    #[error("{url}: the answer carries no good cosignature by {key}: {reason}")]
    NoCosignature {
        url: String,
        key: String,
        reason: String,
    },
}

impl CallError {
    /// For a `409 Conflict`: the size the witness recorded.
    pub fn recorded_size(&self) -> Option<u64> {
        match self {
            CallError::Refused {
                status: 409,
                recorded,
                ..
            } => *recorded,
            _ => None,
        }
    }
}

/// A witness reached over HTTP(S), and the key its cosignatures must verify with.
#[derive(Debug, Clone)]
pub struct RemoteWitness {
    url: String,
    https: bool,
    host: String,
    port: u16,
    /// The submission prefix: `<path>/add-checkpoint` is posted to.
    prefix: String,
    key: WitnessKey,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    timeout: Duration,
}

impl RemoteWitness {
    /// The witness at `url` (`http://host:port[/prefix]` or `https://…`; the submission prefix is the
    /// path), whose cosignatures verify with `key`. An `https` URL needs `ca`, the CA file (PEM) its
    /// certificate chains to.
    pub fn new(url: &str, key: WitnessKey, ca: Option<&Path>) -> Result<Self, Error> {
        let bad = |problem: &str| {
            Error::Config(hazchem_kit::ConfigError::new(
                "url",
                format!("{url:?} {problem}"),
            ))
        };
        let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(bad("is not an http:// or https:// URL"));
        };
        let (authority, path) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => (
                host,
                port.parse::<u16>()
                    .map_err(|_| bad("has a port that is not a number"))?,
            ),
            _ => (authority, if https { 443 } else { 80 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("names no host"));
        }
        let tls = match (https, ca) {
            (true, Some(ca)) => Some(crate::tls::client_config(ca)?),
            (true, None) => {
                return Err(bad(
                    "is https: give the CA file its certificate chains to (`ca`)",
                ));
            }
            (false, _) => None,
        };
        Ok(RemoteWitness {
            url: url.to_owned(),
            https,
            host: host.to_owned(),
            port,
            prefix: path.trim_end_matches('/').to_owned(),
            key,
            tls,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Gives each call this deadline instead of [`DEFAULT_TIMEOUT`].
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The witness's key.
    pub fn key(&self) -> &WitnessKey {
        &self.key
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Submits `request`; returns the cosignature lines by this witness's key (each ending in a newline).
    pub async fn add_checkpoint(&self, request: &AddCheckpoint) -> Result<Vec<String>, CallError> {
        let (status, content_type, body) =
            tokio::time::timeout(self.timeout, self.post(request.to_body()))
                .await
                .map_err(|_| self.unreachable(format!("no answer within {:?}", self.timeout)))??;
        let body = String::from_utf8_lossy(&body).into_owned();
        if status == StatusCode::OK {
            return self.cosignatures(&request.note, &body);
        }
        let recorded = (status == StatusCode::CONFLICT
            && content_type.as_deref() == Some(SIZE_CONTENT_TYPE))
        .then(|| body.strip_suffix('\n').and_then(|n| n.parse().ok()))
        .flatten();
        Err(CallError::Refused {
            url: self.url.clone(),
            status: status.as_u16(),
            recorded,
            message: body.trim_end().chars().take(300).collect(),
        })
    }

    /// The lines of a `200` answer that are cosignatures of `note` by this witness's key.
    fn cosignatures(&self, note: &str, body: &str) -> Result<Vec<String>, CallError> {
        let none = |reason: &str| CallError::NoCosignature {
            url: self.url.clone(),
            key: self.key.to_string(),
            reason: reason.to_owned(),
        };
        let lines: Vec<String> = body
            .split_inclusive('\n')
            .filter(|line| line.starts_with('\u{2014}') && line.ends_with('\n'))
            .map(str::to_owned)
            .collect();
        let good: Vec<String> = lines
            .into_iter()
            .filter(|line| {
                verify_cosignatures(
                    &add_cosignatures(note, std::slice::from_ref(line)),
                    std::slice::from_ref(&self.key),
                )
                .is_ok_and(|found| !found.is_empty())
            })
            .collect();
        if good.is_empty() {
            return Err(none(&format!(
                "{:?}",
                body.chars().take(200).collect::<String>()
            )));
        }
        Ok(good)
    }

    fn unreachable(&self, reason: impl Into<String>) -> CallError {
        CallError::Unreachable {
            url: self.url.clone(),
            reason: reason.into(),
        }
    }

    async fn post(&self, body: String) -> Result<(StatusCode, Option<String>, Bytes), CallError> {
        let stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| self.unreachable(format!("connecting: {e}")))?;
        let _ = stream.set_nodelay(true);
        match &self.tls {
            Some(config) => {
                let connector = tokio_rustls::TlsConnector::from(config.clone());
                let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|e| self.unreachable(format!("server name: {e}")))?;
                let tls = connector
                    .connect(name, stream)
                    .await
                    .map_err(|e| self.unreachable(format!("TLS: {e}")))?;
                self.exchange(TokioIo::new(tls), body).await
            }
            None => self.exchange(TokioIo::new(stream), body).await,
        }
    }

    async fn exchange<I>(
        &self,
        io: I,
        body: String,
    ) -> Result<(StatusCode, Option<String>, Bytes), CallError>
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| self.unreachable(format!("HTTP: {e}")))?;
        let connection = tokio::spawn(connection);
        let authority = if (self.https && self.port == 443) || (!self.https && self.port == 80) {
            self.host.clone()
        } else if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        };
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("{}{ADD_CHECKPOINT_PATH}", self.prefix))
            .header(header::HOST, authority)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| self.unreachable(format!("HTTP request: {e}")))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| self.unreachable(format!("HTTP: {e}")))?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| self.unreachable(format!("reading the answer: {e}")))?
            .to_bytes();
        // One request per connection: dropping the sender ends it.
        drop(sender);
        let _ = connection.await;
        Ok((status, content_type, body))
    }
}
