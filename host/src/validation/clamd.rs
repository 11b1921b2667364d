//! A client for ClamAV's daemon, clamd: the content is streamed to it with
//! the INSTREAM command (chunks of `<u32 big-endian length><bytes>`, then a
//! zero length) and clamd answers `stream: OK` or `stream: SIGNATURE FOUND`.
//! The content is read from its re-readable body a chunk at a time, never
//! whole into memory.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt as _;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use crate::body::{Body, BodyError};

/// The longest answer clamd gives; anything longer is not clamd.
const MAX_REPLY: usize = 4096;

/// Where clamd listens.
#[derive(Debug, Clone, PartialEq)]
pub enum Address {
    Unix(PathBuf),
    /// `host:port`, the host a name or an address.
    Tcp(String),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(path) => write!(f, "{}", path.display()),
            Address::Tcp(address) => f.write_str(address),
        }
    }
}

/// What clamd found.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Clean,
    /// The name of the signature that matched, e.g. `Win.Test.EICAR_HDB-1`.
    Infected(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ClamdError {
    #[error("cannot connect: {0}")]
    Connect(#[source] std::io::Error),
    #[error("no answer within {} s", .0.as_secs())]
    Timeout(Duration),
    #[error("{0}")]
    Io(#[source] std::io::Error),
    #[error("reading the upload: {0}")]
    Read(#[source] BodyError),
    /// clamd's own error, e.g. `INSTREAM size limit exceeded. ERROR`.
    #[error("clamd answered {0:?}")]
    Reply(String),
}

/// A clamd at one address.
#[derive(Debug, Clone)]
pub struct Clamd {
    pub address: Address,
    /// The longest wait for any one step: connecting, sending a chunk, the answer.
    pub timeout: Duration,
}

trait Connection: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Connection for T {}

impl Clamd {
    /// Scans the body.
    pub async fn scan(&self, body: Body) -> Result<Verdict, ClamdError> {
        let mut connection = self.connect().await?;
        self.step(connection.write_all(b"zINSTREAM\0")).await?;
        let mut chunks = body.into_stream();
        let sent = async {
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk.map_err(ClamdError::Read)?;
                if chunk.is_empty() {
                    continue;
                }
                // Chunks are at most the body's 256 KiB: they fit a u32.
                self.step(connection.write_all(&(chunk.len() as u32).to_be_bytes())).await?;
                self.step(connection.write_all(&chunk)).await?;
            }
            self.step(connection.write_all(&0u32.to_be_bytes())).await
        }
        .await;
        match sent {
            Ok(()) => parse_reply(&self.read_reply(&mut connection).await?),
            // clamd stops reading and answers when the stream passes its
            // StreamMaxLength: its answer says more than a broken pipe.
            Err(ClamdError::Io(e)) => match self.read_reply(&mut connection).await {
                Ok(reply) if !reply.is_empty() => parse_reply(&reply),
                _ => Err(ClamdError::Io(e)),
            },
            Err(e) => Err(e),
        }
    }

    /// Whether clamd answers `PING` with `PONG`.
    pub async fn ping(&self) -> Result<(), ClamdError> {
        let mut connection = self.connect().await?;
        self.step(connection.write_all(b"zPING\0")).await?;
        match self.read_reply(&mut connection).await?.as_str() {
            "PONG" => Ok(()),
            other => Err(ClamdError::Reply(other.to_string())),
        }
    }

    async fn connect(&self) -> Result<Box<dyn Connection>, ClamdError> {
        let connecting = async {
            Ok::<Box<dyn Connection>, std::io::Error>(match &self.address {
                Address::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
                Address::Tcp(address) => Box::new(tokio::net::TcpStream::connect(address.as_str()).await?),
            })
        };
        tokio::time::timeout(self.timeout, connecting)
            .await
            .map_err(|_| ClamdError::Timeout(self.timeout))?
            .map_err(ClamdError::Connect)
    }

    async fn step<T>(&self, io: impl Future<Output = std::io::Result<T>>) -> Result<T, ClamdError> {
        tokio::time::timeout(self.timeout, io)
            .await
            .map_err(|_| ClamdError::Timeout(self.timeout))?
            .map_err(ClamdError::Io)
    }

    /// The answer to a `z` command: text up to its NUL (or the end).
    async fn read_reply(&self, connection: &mut Box<dyn Connection>) -> Result<String, ClamdError> {
        let mut reply = Vec::new();
        let mut buf = [0u8; 512];
        while !reply.contains(&0) && reply.len() < MAX_REPLY {
            match self.step(connection.read(&mut buf)).await? {
                0 => break,
                n => reply.extend_from_slice(&buf[..n]),
            }
        }
        let end = reply.iter().position(|b| *b == 0).unwrap_or(reply.len());
        Ok(String::from_utf8_lossy(&reply[..end]).trim().to_string())
    }
}

fn parse_reply(reply: &str) -> Result<Verdict, ClamdError> {
    match reply.strip_prefix("stream: ") {
        Some("OK") => Ok(Verdict::Clean),
        Some(found) if found.ends_with(" FOUND") => {
            Ok(Verdict::Infected(found.trim_end_matches(" FOUND").trim().to_string()))
        }
        _ => Err(ClamdError::Reply(reply.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_understood() {
        assert_eq!(parse_reply("stream: OK").unwrap(), Verdict::Clean);
        assert_eq!(
            parse_reply("stream: Win.Test.EICAR_HDB-1 FOUND").unwrap(),
            Verdict::Infected("Win.Test.EICAR_HDB-1".into())
        );
        let err = parse_reply("INSTREAM size limit exceeded. ERROR").unwrap_err();
        assert!(err.to_string().contains("size limit exceeded"), "{err}");
        assert!(parse_reply("").is_err());
    }
}
