//! `switchboard healthcheck`: asks this container's own process whether it is alive (`/healthz`)
//! or ready (`/readyz`) on its metrics address, and exits 0 or 1. It replaces a shell one-liner
//! in the compose file's health checks: the image has no curl, and the check should need no shell.

use anyhow::{Context as _, Result, bail};
use clap::Args;
use std::net::SocketAddr;
use std::time::Duration;
use switchboard::config::Settings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// Ask `/readyz` (broker, consumers, Postgres) instead of `/healthz` (the process answers).
    #[arg(long)]
    pub ready: bool,
    /// host:port to ask; default: the `metrics_addr` setting (SWITCHBOARD_METRICS_ADDR), with
    /// an unspecified host (0.0.0.0, [::]) asked on loopback.
    #[arg(long)]
    pub addr: Option<String>,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 3)]
    pub timeout: u64,
}

/// Where to ask: `--addr`, else `metrics_addr` with a wildcard host turned into loopback.
pub fn target(settings: &Settings, args: &HealthcheckArgs) -> Result<SocketAddr> {
    let addr = match (&args.addr, &settings.metrics_addr) {
        (Some(a), _) => a.clone(),
        (None, Some(a)) => a.clone(),
        (None, None) => bail!(
            "no address to ask: SWITCHBOARD_METRICS_ADDR (metrics_addr) is not set; set it as the process does, or pass --addr host:port"
        ),
    };
    let mut socket: SocketAddr = addr
        .parse()
        .with_context(|| format!("{addr:?} is not host:port (e.g. 127.0.0.1:9100)"))?;
    if socket.ip().is_unspecified() {
        let loopback: std::net::IpAddr = if socket.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        };
        socket.set_ip(loopback);
    }
    Ok(socket)
}

pub async fn run(settings: &Settings, args: HealthcheckArgs) -> Result<()> {
    let addr = target(settings, &args)?;
    let path = if args.ready { "/readyz" } else { "/healthz" };
    let asked = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let answer = match tokio::time::timeout(Duration::from_secs(args.timeout), asked).await {
        Ok(Ok(buf)) => String::from_utf8_lossy(&buf).into_owned(),
        Ok(Err(e)) => bail!("http://{addr}{path}: {e}; is the process running, with SWITCHBOARD_METRICS_ADDR set?"),
        Err(_) => bail!(
            "http://{addr}{path} did not answer within {} s: the process is stuck or overloaded",
            args.timeout
        ),
    };
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((answer.as_str(), ""));
    let status = head.split_whitespace().nth(1).unwrap_or("?");
    if status == "200" {
        println!("ok: http://{addr}{path} answered 200 {}", body.trim());
        Ok(())
    } else {
        bail!("http://{addr}{path} answered {status}: {}", body.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(addr: Option<&str>) -> HealthcheckArgs {
        HealthcheckArgs {
            ready: false,
            addr: addr.map(str::to_owned),
            timeout: 3,
        }
    }

    #[test]
    fn a_wildcard_metrics_address_is_asked_on_loopback() {
        let mut s = Settings {
            metrics_addr: Some("0.0.0.0:9100".into()),
            ..Settings::default()
        };
        assert_eq!(target(&s, &args(None)).unwrap().to_string(), "127.0.0.1:9100");
        s.metrics_addr = Some("[::]:9100".into());
        assert_eq!(target(&s, &args(None)).unwrap().to_string(), "[::1]:9100");
        assert_eq!(
            target(&s, &args(Some("10.0.0.5:8080"))).unwrap().to_string(),
            "10.0.0.5:8080"
        );
        s.metrics_addr = None;
        let err = target(&s, &args(None)).unwrap_err().to_string();
        assert!(err.contains("SWITCHBOARD_METRICS_ADDR"), "{err}");
    }
}
