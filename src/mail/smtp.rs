//! SMTP connections to the relay, opened by herald itself so each one has `TCP_NODELAY` set
//! (lettre's pool leaves Nagle's algorithm on and stalls about 43 ms per message) and so
//! the relay's 8BITMIME support is known before messages are built.
//!
//! The URLs (`smtp://`, `?tls=required`, `?tls=opportunistic`, `smtps://`) are parsed with
//! the configuration: see `config::SmtpUrl`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::extension::{ClientId, Extension};
use secrecy::ExposeSecret;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::{Outgoing, SendError};
use crate::config::Security;

/// A relay, as parsed with the configuration (`mail.transport` or `HERALD_SMTP_URL`).
pub type Target = crate::config::SmtpUrl;

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
            Security::Plain | Security::StartTls | Security::Opportunistic => {
                AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &hello)
                    .await
                    .map_err(lettre_err)?
            }
        };
        let upgrade = match target.security {
            Security::StartTls => true,
            // lettre's meaning of `tls=opportunistic`: STARTTLS when the relay offers it.
            Security::Opportunistic => inner.can_starttls(),
            Security::Plain | Security::Implicit => false,
        };
        if upgrade {
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
