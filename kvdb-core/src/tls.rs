//! TLS for KvDB's gRPC servers and the channels between its processes.
//!
//! A process is given PEM files ([`TlsFiles`]): its certificate chain and key, served on its
//! listeners and presented as its client certificate on its own calls, and the CA that signs
//! the cluster's certificates, which it trusts for the servers it calls and, with
//! [`TlsFiles::require_client_cert`], demands of every caller (mutual TLS). Without it a
//! caller's certificate is checked when one is presented, and tokens (see [`crate::auth`])
//! decide what an anonymous caller may do.
//!
//! Servers ([`ServerTls`]) pick up renewed certificate, key and CA files without a restart:
//! a new connection looks at the files' modification times at most once per
//! [`RELOAD_CHECK`], and a set that does not load is logged and the old one kept, so a
//! half-written renewal never takes a server down. Channels ([`ClientTls`]) read their files
//! once: a renewed client certificate is used by the channels made after it.
//!
//! Only rustls with the *ring* provider: no OpenSSL, no C library beyond ring's own.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
pub use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// How often, at most, a server looks whether its certificate files changed.
pub const RELOAD_CHECK: Duration = Duration::from_secs(1);

/// A process's TLS files, as its flags give them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, this process's first.
    pub cert: PathBuf,
    /// PEM private key of `cert`.
    pub key: PathBuf,
    /// PEM certificates of the CA that signs the cluster's certificates: trusted for the
    /// servers this process calls, and for the client certificates its callers present.
    pub ca: PathBuf,
    /// Refuse callers without a certificate signed by `ca` (servers only).
    pub require_client_cert: bool,
}

/// Why TLS files cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{}: {reason}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        reason: String,
    },
    /// A file holds no PEM certificate.
    #[error("{} holds no PEM certificate", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A file holds no PEM private key.
    #[error("{} holds no PEM private key ({reason})", path.display())]
    NoKey {
        /// The file.
        path: PathBuf,
        /// What the PEM parser said.
        reason: String,
    },
    /// rustls refused the files (a key that does not match the certificate, a bad CA).
    #[error("TLS configuration refused: {0}")]
    Refused(String),
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Io {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// The certificates in `pem`, read from `path` (named in errors).
fn certificates(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// The private key in `pem`, read from `path` (named in errors).
fn private_key(pem: &[u8], path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| TlsError::NoKey {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// The CA certificates in `pem`, read from `path` (named in errors), as trust anchors.
fn roots(pem: &[u8], path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(pem, path)? {
        roots
            .add(cert)
            .map_err(|e| TlsError::Refused(format!("CA {}: {e}", path.display())))?;
    }
    Ok(roots)
}

/// ring's provider: aws-lc-rs would add post-quantum key exchange, but also a C and CMake
/// build to every install, which a 2-core build box pays for in minutes.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What a server speaks over TLS, offered in the handshake (ALPN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/2 only: gRPC.
    Grpc,
    /// HTTP/1.1: the Admin API.
    Http1,
}

impl Protocol {
    fn alpn(self) -> Vec<Vec<u8>> {
        match self {
            Protocol::Grpc => vec![b"h2".to_vec()],
            Protocol::Http1 => vec![b"http/1.1".to_vec()],
        }
    }
}

/// The rustls configuration `files` describe, speaking `protocol`.
fn server_config(files: &TlsFiles, protocol: Protocol) -> Result<ServerConfig, TlsError> {
    let refused = |e: rustls::Error| TlsError::Refused(e.to_string());
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(refused)?;
    let roots = roots(&read(&files.ca)?, &files.ca)?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
    let verifier = if files.require_client_cert {
        verifier
    } else {
        verifier.allow_unauthenticated()
    };
    let verifier = verifier
        .build()
        .map_err(|e| TlsError::Refused(e.to_string()))?;
    let mut config = builder
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            certificates(&read(&files.cert)?, &files.cert)?,
            private_key(&read(&files.key)?, &files.key)?,
        )
        .map_err(refused)?;
    config.alpn_protocols = protocol.alpn();
    Ok(config)
}

/// A server's TLS: the current rustls configuration, reloaded when its files change.
pub struct ServerTls {
    files: TlsFiles,
    protocol: Protocol,
    config: ArcSwap<ServerConfig>,
    /// When the files were last looked at, and their modification times then.
    checked: Mutex<(Instant, Vec<Option<SystemTime>>)>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Loads `files` for a gRPC server; an error says which file is wrong and why.
    pub fn load(files: TlsFiles) -> Result<Arc<ServerTls>, TlsError> {
        Self::load_for(files, Protocol::Grpc)
    }

    /// Loads `files` for a server speaking `protocol`.
    pub fn load_for(files: TlsFiles, protocol: Protocol) -> Result<Arc<ServerTls>, TlsError> {
        let config = server_config(&files, protocol)?;
        let stamps = modified(&files);
        Ok(Arc::new(ServerTls {
            files,
            protocol,
            config: ArcSwap::from_pointee(config),
            checked: Mutex::new((Instant::now(), stamps)),
        }))
    }

    /// The configuration for a new connection, after reloading the files if they changed.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.reload_if_changed();
        self.config.load_full()
    }

    /// Reloads the files now if any changed since the last look, at most once per
    /// [`RELOAD_CHECK`]. A set that does not load is logged and the current one kept.
    fn reload_if_changed(&self) {
        let mut checked = self.checked.lock().unwrap_or_else(PoisonError::into_inner);
        if checked.0.elapsed() < RELOAD_CHECK {
            return;
        }
        checked.0 = Instant::now();
        let stamps = modified(&self.files);
        if stamps == checked.1 {
            return;
        }
        match server_config(&self.files, self.protocol) {
            Ok(config) => {
                self.config.store(Arc::new(config));
                checked.1 = stamps;
                tracing::info!(cert = %self.files.cert.display(), "TLS certificates reloaded");
            }
            Err(e) => tracing::warn!(
                error = %e,
                "renewed TLS files do not load; new connections keep the previous certificate"
            ),
        }
    }
}

fn modified(files: &TlsFiles) -> Vec<Option<SystemTime>> {
    [&files.cert, &files.key, &files.ca]
        .into_iter()
        .map(|path| std::fs::metadata(path).and_then(|m| m.modified()).ok())
        .collect()
}

/// What a process's channels need for TLS: the CA they trust and, for mutual TLS, the
/// certificate and key they present. The PEM bytes are read once, when this is made, and
/// keep their paths for errors.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientTls(Arc<ClientPems>);

#[derive(PartialEq, Eq)]
struct ClientPems {
    ca: Pem,
    identity: Option<(Pem, Pem)>,
}

/// A PEM file's bytes and its path.
#[derive(Clone, PartialEq, Eq)]
struct Pem {
    bytes: Vec<u8>,
    path: PathBuf,
}

impl Pem {
    fn read(path: &Path) -> Result<Pem, TlsError> {
        Ok(Pem {
            bytes: read(path)?,
            path: path.to_owned(),
        })
    }
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("client_certificate", &self.0.identity.is_some())
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Trusts the CA in `ca`; presents `cert` and `key` when given (both or neither).
    pub fn load(ca: &Path, identity: Option<(&Path, &Path)>) -> Result<ClientTls, TlsError> {
        let tls = ClientTls(Arc::new(ClientPems {
            ca: Pem::read(ca)?,
            identity: match identity {
                Some((cert, key)) => Some((Pem::read(cert)?, Pem::read(key)?)),
                None => None,
            },
        }));
        // Parse now, so that a bad file is refused at start rather than at the first call.
        http_client_config(Some(&tls))?;
        Ok(tls)
    }

    /// A server's channels: they trust its CA and present its own certificate.
    pub fn for_server(files: &TlsFiles) -> Result<ClientTls, TlsError> {
        ClientTls::load(&files.ca, Some((&files.cert, &files.key)))
    }

    /// `https://{address}` with this TLS.
    pub fn endpoint(&self, address: &str) -> Result<Endpoint, tonic::transport::Error> {
        let mut config =
            ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.0.ca.bytes));
        if let Some((cert, key)) = &self.0.identity {
            config = config.identity(Identity::from_pem(&cert.bytes, &key.bytes));
        }
        Endpoint::from_shared(format!("https://{address}"))?.tls_config(config)
    }
}

/// The rustls configuration of an HTTP client (the Admin API's) with `tls`; without, one that
/// trusts no server, so that `https://` fails until a CA is given. The HTTP client offers its
/// protocols (ALPN) itself.
pub fn http_client_config(tls: Option<&ClientTls>) -> Result<rustls::ClientConfig, TlsError> {
    let roots = match tls {
        Some(tls) => roots(&tls.0.ca.bytes, &tls.0.ca.path)?,
        None => RootCertStore::empty(),
    };
    let refused = |e: rustls::Error| TlsError::Refused(e.to_string());
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(refused)?
        .with_root_certificates(roots);
    let config = match tls.and_then(|tls| tls.0.identity.as_ref()) {
        Some((cert, key)) => {
            let chain = certificates(&cert.bytes, &cert.path)?;
            let key = private_key(&key.bytes, &key.path)?;
            builder.with_client_auth_cert(chain, key).map_err(refused)?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(config)
}

/// Writes a throwaway CA and one certificate signed by it into `dir` (`ca.pem`, `cert.pem`,
/// `key.pem`), valid for `names` (DNS names or IP addresses) both as a server and as a client,
/// and returns them as [`TlsFiles`] that demand client certificates. For trying TLS
/// (`kvdb dev --tls`) and for tests, never for a deployment: the CA's key is thrown away, so
/// nothing can be added to this set later.
pub fn write_throwaway(dir: &Path, names: &[&str]) -> Result<TlsFiles, TlsError> {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    let refused = |e: rcgen::Error| TlsError::Refused(format!("making certificates: {e}"));
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(refused)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "KvDB throwaway CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca =
        CertifiedIssuer::self_signed(ca, KeyPair::generate().map_err(refused)?).map_err(refused)?;
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut leaf = CertificateParams::new(names).map_err(refused)?;
    leaf.distinguished_name.push(DnType::CommonName, "KvDB");
    leaf.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate().map_err(refused)?;
    let cert = leaf.signed_by(&key, &ca).map_err(refused)?;
    let files = TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        ca: dir.join("ca.pem"),
        require_client_cert: true,
    };
    let write = |path: &Path, pem: String| {
        std::fs::write(path, pem).map_err(|e| TlsError::Io {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    };
    std::fs::create_dir_all(dir).map_err(|e| TlsError::Io {
        path: dir.to_owned(),
        reason: e.to_string(),
    })?;
    write(&files.ca, ca.pem())?;
    write(&files.cert, cert.pem())?;
    write(&files.key, key.serialize_pem())?;
    Ok(files)
}

#[cfg(test)]
mod tests;
