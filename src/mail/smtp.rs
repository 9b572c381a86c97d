//! SMTP connections to the relay, opened by herald itself so each one has `TCP_NODELAY` set
//! (lettre's pool leaves Nagle's algorithm on and stalls about 43 ms per message) and so
//! the relay's 8BITMIME support is known before messages are built.
//!
//! URLs: `smtp://host[:port]` (plaintext; fine for a relay on loopback),
//! `smtp://host[:port]?tls=required` (STARTTLS, default port 587), `smtps://host[:port]`
//! (implicit TLS, default port 465); `user:password@` (URL-encoded) turns on AUTH.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::extension::{ClientId, Extension};
use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::{Outgoing, SendError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    Plain,
    StartTls,
    Implicit,
}

/// A relay, parsed from its URL.
#[derive(Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub security: Security,
    user: Option<String>,
    password: Option<SecretString>,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Target {
    /// Never shows the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.security == Security::Implicit {
            "smtps"
        } else {
            "smtp"
        };
        let user = self
            .user
            .as_deref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let tls = if self.security == Security::StartTls {
            "?tls=required"
        } else {
            ""
        };
        write!(f, "{scheme}://{user}{}:{}{tls}", self.host, self.port)
    }
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, String> {
        let u = url::Url::parse(url.trim())
            .map_err(|e| format!("{:?} is not a URL: {e}", redact(url)))?;
        let host = u
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("the SMTP URL names no host")?;
        let host = host.trim_matches(['[', ']']).to_string();
        let tls = u
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let security = match (u.scheme(), tls.as_deref()) {
            ("smtps", _) => Security::Implicit,
            ("smtp", None | Some("none")) => Security::Plain,
            ("smtp", Some("required")) => Security::StartTls,
            ("smtp", Some("opportunistic")) => {
                return Err("tls=opportunistic is open to downgrade attacks; use tls=required (or plain smtp:// for a relay on loopback)".into());
            }
            ("smtp", Some(other)) => {
                return Err(format!("unknown tls={other:?} (use tls=required)"));
            }
            (other, _) => return Err(format!("unknown scheme {other:?}: use smtp:// or smtps://")),
        };
        let port = u.port().unwrap_or(match security {
            Security::Plain => 25,
            Security::StartTls => 587,
            Security::Implicit => 465,
        });
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let user = (!u.username().is_empty()).then(|| decode(u.username()));
        let password = u.password().map(|p| SecretString::from(decode(p)));
        Ok(Target {
            host,
            port,
            security,
            user,
            password,
        })
    }

    /// A plaintext connection to anything but loopback exposes mail (and passwords).
    pub fn is_plaintext_remote(&self) -> bool {
        self.security == Security::Plain
            && !matches!(self.host.as_str(), "localhost" | "127.0.0.1" | "::1")
    }
}

fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// One open SMTP session.
pub struct Connection {
    inner: AsyncSmtpConnection,
}

impl Connection {
    pub async fn open(target: &Target) -> Result<Connection, SendError> {
        let tcp = TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(|e| SendError::network(format!("cannot connect to {target}: {e}")))?;
        tcp.set_nodelay(true)
            .map_err(|e| SendError::network(format!("setting TCP_NODELAY: {e}")))?;
        let hello = ClientId::default();
        let lettre_err = |e: lettre::transport::smtp::Error| SendError::from_lettre(&e);
        let mut inner = match target.security {
            Security::Implicit => {
                let tls = implicit_tls(&target.host, tcp).await?;
                AsyncSmtpConnection::connect_with_transport(Box::new(tls), &hello)
                    .await
                    .map_err(lettre_err)?
            }
            Security::Plain | Security::StartTls => {
                AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &hello)
                    .await
                    .map_err(lettre_err)?
            }
        };
        if target.security == Security::StartTls {
            let params = TlsParameters::new(target.host.clone()).map_err(lettre_err)?;
            inner.starttls(params, &hello).await.map_err(lettre_err)?;
        }
        if let (Some(user), Some(password)) = (&target.user, &target.password) {
            let creds = Credentials::new(user.clone(), password.expose_secret().to_string());
            inner
                .auth(&[Mechanism::Plain, Mechanism::Login], &creds)
                .await
                .map_err(lettre_err)?;
        }
        Ok(Connection { inner })
    }

    /// Whether the relay accepts 8bit bodies (RFC 6152).
    pub fn eight_bit(&self) -> bool {
        self.inner
            .server_info()
            .supports_feature(Extension::EightBitMime)
    }

    pub fn is_broken(&self) -> bool {
        self.inner.has_broken()
    }

    pub async fn send(&mut self, out: &Outgoing) -> Result<(), SendError> {
        match self.inner.send(&out.envelope, &out.bytes).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = SendError::from_lettre(&e);
                // After a refused RCPT or DATA the transaction is over but the session is
                // fine; RSET makes sure the next MAIL starts clean.
                if err.code.is_some() && !self.inner.has_broken() {
                    let _ = self
                        .inner
                        .command(lettre::transport::smtp::commands::Rset)
                        .await;
                }
                Err(err)
            }
        }
    }

    pub async fn quit(&mut self) {
        let _ = self.inner.quit().await;
    }

    pub async fn abort(&mut self) {
        self.inner.abort().await;
    }
}

/// Implicit TLS (`smtps://`) over a socket we opened, verified against the platform's roots.
async fn implicit_tls(host: &str, tcp: TcpStream) -> Result<TlsStream, SendError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
        .map_err(|e| SendError::network(format!("TLS setup: {e}")))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SendError::network(format!("TLS setup: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| SendError::network(format!("{host:?} is not a TLS server name: {e}")))?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| SendError::network(format!("TLS handshake with {host}: {e}")))?;
    Ok(TlsStream(stream))
}

/// A TLS session lettre can drive as its transport.
#[derive(Debug)]
struct TlsStream(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncRead for TlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for TlsStream {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_urls_are_understood() {
        let t = Target::parse("smtp://127.0.0.1:2525").unwrap();
        assert_eq!((t.port, t.security), (2525, Security::Plain));
        assert!(!t.is_plaintext_remote());
        let t = Target::parse("smtp://me%40x.org:p%40ss@relay.example.com?tls=required").unwrap();
        assert_eq!((t.port, t.security), (587, Security::StartTls));
        assert_eq!(t.user.as_deref(), Some("me@x.org"));
        assert_eq!(t.password.as_ref().unwrap().expose_secret(), "p@ss");
        assert_eq!(
            t.to_string(),
            "smtp://me@x.org@relay.example.com:587?tls=required"
        );
        let t = Target::parse("smtps://relay.example.com").unwrap();
        assert_eq!((t.port, t.security), (465, Security::Implicit));
        assert!(Target::parse("smtp://relay.example.com?tls=opportunistic").is_err());
        assert!(Target::parse("http://relay").is_err());
        assert!(
            Target::parse("smtp://relay.example.com")
                .unwrap()
                .is_plaintext_remote()
        );
    }
}
