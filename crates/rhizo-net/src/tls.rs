//! Mutual TLS 1.3: a node's identity is its certificate. Both sides verify that the other's
//! certificate chains to the cluster CA (rustls, ring provider); the dialer also verifies that it
//! names the node it dialled (the server name), and the listener that it names the node the
//! dialer's Hello claims ([`certificate_names`]).

use std::io;
use std::path::Path;
use std::sync::Arc;

use rhizo_clock::NodeId;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConfig, WebPkiServerVerifier};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls::{CertificateError, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::{ClientTls, NetError, RefusalReason, Result, TlsFiles};

// ring, not aws-lc: it builds with a C compiler alone (no cmake, no Go, no NASM). rustls marks
// ring's provider deprecated for lacking post-quantum key exchange; TLS 1.3 with X25519 and
// ECDSA/Ed25519 certificates is what this crate needs from it.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca_cert: &Path) -> Result<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    for ca in read_certificates(ca_cert)? {
        roots.add(ca)?;
    }
    Ok(Arc::new(roots))
}

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
        let provider = provider();
        let roots = roots(&files.ca_cert)?;
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

/// The TLS client side of the client protocol: the cluster CA as the only root, the client's
/// certificate if it has one, and the server name to ask for. Without an expected node, any
/// certificate the CA issued for a server is accepted ([`AnyClusterNode`]).
pub(crate) fn client_connector(
    tls: &ClientTls,
) -> Result<(tokio_rustls::TlsConnector, ServerName<'static>)> {
    let provider = provider();
    let roots = roots(&tls.ca_cert)?;
    let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|error| tls_file(&tls.ca_cert, error.to_string()))?;
    let name = match tls.node {
        Some(node) => server_name(node),
        None => ServerName::try_from(ANY_NODE).ok(),
    }
    .ok_or_else(|| tls_file(&tls.ca_cert, "the node id is not a DNS name".into()))?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?;
    let builder = if tls.node.is_some() {
        builder.with_webpki_verifier(verifier)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyClusterNode(verifier)))
    };
    let config = match &tls.identity {
        Some((cert, key)) => {
            let chain = read_certificates(cert)?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|error| tls_file(key, error.to_string()))?;
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    };
    Ok((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
}

/// The server name a client asks for when it accepts any node of the cluster.
const ANY_NODE: &str = "rhizo-node";

/// Verifies a node's certificate like webpki does — chain to the cluster CA, validity, the
/// server-authentication usage, signatures — except the name: every certificate the cluster CA
/// issued for a server is a node of the cluster, and a client dialling an address need not know
/// which node listens there.
#[derive(Debug)]
struct AnyClusterNode(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyClusterNode {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        // webpki checks the name last, after the chain, validity and usage all held.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The expiry of the first certificate in the PEM file `path`, in seconds since the Unix epoch.
pub(crate) fn certificate_expiry(path: &Path) -> Result<i64> {
    let certificate = read_certificates(path)?.remove(0);
    let (_, parsed) = x509_parser::parse_x509_certificate(&certificate)
        .map_err(|error| tls_file(path, error.to_string()))?;
    Ok(parsed.validity().not_after.timestamp())
}
