//! Mutual TLS 1.3: a node's identity is its certificate. Both sides verify that the other's
//! certificate chains to the cluster CA (rustls, ring provider); the dialer also verifies that it
//! names the node it dialled (the server name), and the listener that it names the node the
//! dialer's Hello claims ([`certificate_names`]).

use std::io;
use std::path::Path;
use std::sync::Arc;

use rhizo_clock::NodeId;
use rustls::client::ClientConfig;
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls::{CertificateError, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::{NetError, RefusalReason, Result, TlsFiles};

/// The loaded TLS identity of this node, ready for both directions.
#[derive(Clone)]
pub(crate) struct TlsContext {
    pub(crate) connector: tokio_rustls::TlsConnector,
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
}

impl TlsContext {
    /// Reads the PEM files and builds the client and server configurations: TLS 1.3 only, the
    /// cluster CA as the only root, a client certificate required.
    pub(crate) fn load(files: &TlsFiles) -> Result<Self> {
        // ring, not aws-lc: it builds with a C compiler alone (no cmake, no Go, no NASM). rustls
        // marks ring's provider deprecated for lacking post-quantum key exchange; TLS 1.3 with
        // X25519 and ECDSA/Ed25519 certificates is what this transport needs from it.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for ca in read_certificates(&files.ca_cert)? {
            roots.add(ca)?;
        }
        let roots = Arc::new(roots);
        let chain = read_certificates(&files.node_cert)?;
        let key = PrivateKeyDer::from_pem_file(&files.node_key)
            .map_err(|error| tls_file(&files.node_key, error.to_string()))?;

        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                .build()
                .map_err(|error| NetError::TlsFile {
                    path: files.ca_cert.display().to_string(),
                    reason: error.to_string(),
                })?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(chain.clone(), key.clone_key())?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        Ok(Self {
            connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
        })
    }
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|error| tls_file(path, error.to_string()))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|error| tls_file(path, error.to_string()))?;
    if certificates.is_empty() {
        return Err(tls_file(path, "no certificate in the file".into()));
    }
    Ok(certificates)
}

fn tls_file(path: &Path, reason: String) -> NetError {
    NetError::TlsFile {
        path: path.display().to_string(),
        reason,
    }
}

/// The server name a dialer asks for: the peer's node id as a DNS name. `validate` checked that
/// every member's id is one.
pub(crate) fn server_name(node: NodeId) -> Option<ServerName<'static>> {
    ServerName::try_from(node.name().as_str().to_owned()).ok()
}

/// Whether `certificate` (already verified against the CA) names `node` as a DNS subject
/// alternative name.
pub(crate) fn certificate_names(certificate: &CertificateDer<'_>, node: NodeId) -> bool {
    let Some(name) = server_name(node) else {
        return false;
    };
    match webpki::EndEntityCert::try_from(certificate) {
        Ok(cert) => cert.verify_is_valid_for_subject_name(&name).is_ok(),
        Err(_) => false,
    }
}

/// The refusal reason a failed TLS handshake stands for.
pub(crate) fn refusal_of(error: &io::Error) -> RefusalReason {
    let Some(tls) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return match error.kind() {
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => {
                RefusalReason::RejectedByPeer
            }
            _ => RefusalReason::Tls,
        };
    };
    match tls {
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => RefusalReason::CertificateNamesAnotherNode,
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
            RefusalReason::UntrustedCertificate
        }
        rustls::Error::AlertReceived(_) => RefusalReason::RejectedByPeer,
        _ => RefusalReason::Tls,
    }
}
