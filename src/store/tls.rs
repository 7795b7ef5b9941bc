//! TLS to Postgres, with rustls. The database URL says what it wants the way libpq does:
//! `sslmode=require`, `verify-ca` or `verify-full`, and `sslrootcert=/path/ca.pem` for a private
//! CA (`postgres://switchboard@db:5432/switchboard?sslmode=verify-full&sslrootcert=/etc/ca.pem`).
//!
//! Switchboard always verifies the server: with any of the three modes the certificate must
//! chain to `sslrootcert` (or to the system's roots without it) and name the host, which is
//! libpq's `verify-full` (stricter than libpq's `require`, which encrypts without checking whom
//! it talks to). Without an `sslmode` (or with `disable`/`prefer`) no TLS is attempted.

use super::StoreError;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use tokio_postgres::Config;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// A parsed database URL and the TLS connector it asks for.
pub struct Target {
    pub config: Config,
    /// `None`: plain TCP (or a Unix socket).
    pub tls: Option<MakeRustlsConnect>,
}

/// The TLS parameters of a URL, and the URL without the ones tokio-postgres does not know.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsParams {
    pub mode: Option<String>,
    pub root_cert: Option<PathBuf>,
}

/// Splits `sslmode` and `sslrootcert` off a URL (`postgres://…?a=b` or `key=value …` form).
pub fn split_tls_params(url: &str) -> (String, TlsParams) {
    let mut params = TlsParams::default();
    let mut take = |key: &str, value: &str| match key {
        "sslmode" => {
            params.mode = Some(value.to_owned());
            true
        }
        "sslrootcert" => {
            params.root_cert = Some(PathBuf::from(value));
            true
        }
        _ => false,
    };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return (url.to_owned(), params);
        };
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                !take(k, v)
            })
            .collect();
        let cleaned = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        (cleaned, params)
    } else {
        let kept: Vec<&str> = url
            .split_whitespace()
            .filter(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                !take(k, v)
            })
            .collect();
        (kept.join(" "), params)
    }
}

/// Parses a database URL into its config and TLS connector.
pub fn parse(url: &str) -> Result<Target, StoreError> {
    let bad = |message: String| StoreError::BadUrl {
        url: super::redact(url),
        message,
    };
    let (cleaned, params) = split_tls_params(url);
    let mut config = Config::from_str(&cleaned).map_err(|e| bad(e.to_string()))?;
    let wants_tls = match params.mode.as_deref() {
        None | Some("disable") | Some("prefer") | Some("allow") => false,
        Some("require") | Some("verify-ca") | Some("verify-full") => true,
        Some(other) => {
            return Err(bad(format!(
                "sslmode={other:?} is not one of disable, prefer, require, verify-ca, verify-full"
            )));
        }
    };
    if !wants_tls {
        config.ssl_mode(SslMode::Disable);
        return Ok(Target { config, tls: None });
    }
    config.ssl_mode(SslMode::Require);
    let mut roots = rustls::RootCertStore::empty();
    match &params.root_cert {
        Some(path) => {
            use rustls::pki_types::CertificateDer;
            use rustls::pki_types::pem::PemObject;
            let certs =
                CertificateDer::pem_file_iter(path).map_err(|e| bad(format!("sslrootcert {}: {e}", path.display())))?;
            for cert in certs {
                let cert = cert.map_err(|e| bad(format!("sslrootcert {}: {e}", path.display())))?;
                roots
                    .add(cert)
                    .map_err(|e| bad(format!("sslrootcert {}: {e}", path.display())))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for cert in native.certs {
                let _ = roots.add(cert);
            }
        }
    }
    if roots.is_empty() {
        return Err(bad(
            "TLS was asked for but no CA certificate is known: set sslrootcert=/path/ca.pem".into(),
        ));
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Target {
        config,
        tls: Some(MakeRustlsConnect::new(tls)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_split_off_either_url_form() {
        let (url, p) =
            split_tls_params("postgres://u@db:5432/sb?sslmode=verify-full&application_name=x&sslrootcert=/etc/ca.pem");
        assert_eq!(url, "postgres://u@db:5432/sb?application_name=x");
        assert_eq!(p.mode.as_deref(), Some("verify-full"));
        assert_eq!(p.root_cert, Some(PathBuf::from("/etc/ca.pem")));
        let (url, p) = split_tls_params("host=db user=u sslmode=require dbname=sb");
        assert_eq!(url, "host=db user=u dbname=sb");
        assert_eq!(p.mode.as_deref(), Some("require"));
        let (url, p) = split_tls_params("postgres://u@db/sb");
        assert_eq!((url.as_str(), p), ("postgres://u@db/sb", TlsParams::default()));
    }

    #[test]
    fn an_unknown_mode_or_a_missing_ca_file_is_a_clear_error() {
        let err = parse("postgres://u@db/sb?sslmode=maybe").err().unwrap().to_string();
        assert!(err.contains("sslmode"), "{err}");
        let err = parse("postgres://u@db/sb?sslmode=require&sslrootcert=/nonexistent/ca.pem")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
        assert!(parse("postgres://u@db/sb").unwrap().tls.is_none());
    }
}
