//! `allowed_outbound_hosts`: which `scheme://host:port` a component may reach, with
//! Spin's syntax: `https://api.stripe.com`, `http://127.0.0.1:3000`,
//! `redis://localhost:6379`, wildcards `*://*:*`, `https://*.example.com`, port ranges
//! `http://localhost:3000..3010`. Without a port the scheme's default port is meant.

use std::fmt;

use anyhow::{Result, anyhow, bail, ensure};

/// The parsed `allowed_outbound_hosts` of one component.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    entries: Vec<AllowedHost>,
    allow_all: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowedHost {
    scheme: Pattern,
    host: HostPattern,
    ports: Ports,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Any,
    Exact(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    /// `*.example.com`: any subdomain (not the domain itself).
    Subdomains(String),
    Exact(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ports {
    Any,
    /// No port written: the scheme's default.
    Default,
    Range(u16, u16),
}

impl AllowedHosts {
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<AllowedHosts> {
        let mut hosts = AllowedHosts::default();
        for entry in entries {
            if entry == "insecure:allow-all" {
                hosts.allow_all = true;
                continue;
            }
            hosts.entries.push(
                AllowedHost::parse(entry)
                    .map_err(|err| anyhow!("`{entry}` is not a valid allowed host: {err}"))?,
            );
        }
        Ok(hosts)
    }

    /// Whether `scheme://host:port` may be reached (`port` None: the scheme's default).
    pub fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        if self.allow_all {
            return true;
        }
        let scheme = scheme.to_ascii_lowercase();
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = port.or_else(|| default_port(&scheme));
        self.entries
            .iter()
            .any(|entry| entry.allows(&scheme, &host, port))
    }

    /// Whether a URL (`https://api.stripe.com/v1/charges`, `redis://127.0.0.1:6379/0`)
    /// may be reached.
    pub fn allows_url(&self, url: &str) -> bool {
        match split_url(url) {
            Ok((scheme, host, port)) => self.allows(scheme, host, port),
            Err(_) => false,
        }
    }
}

impl AllowedHost {
    fn parse(entry: &str) -> Result<AllowedHost> {
        let (scheme, host, port) = split_url(entry)?;
        let rest_after_authority = entry
            .split_once("://")
            .map(|(_, rest)| rest)
            .and_then(|rest| rest.find('/').map(|slash| &rest[slash..]))
            .unwrap_or("");
        ensure!(
            rest_after_authority.is_empty() || rest_after_authority == "/",
            "it may not contain a path"
        );
        let scheme = match scheme {
            "*" => Pattern::Any,
            scheme => Pattern::Exact(scheme.to_ascii_lowercase()),
        };
        let host = match host {
            "*" => HostPattern::Any,
            host => match host.strip_prefix("*.") {
                Some(domain) => HostPattern::Subdomains(domain.to_ascii_lowercase()),
                None if host.contains('*') => {
                    bail!("`*` may only be the whole host or its first label")
                }
                None => HostPattern::Exact(
                    host.trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_ascii_lowercase(),
                ),
            },
        };
        let port_text = entry
            .split_once("://")
            .map(|(_, rest)| rest.split('/').next().unwrap_or(""))
            .and_then(|authority| authority.rsplit_once(':').map(|(_, port)| port))
            .filter(|port| !port.contains(']'));
        let ports = match (port, port_text) {
            (_, Some("*")) => Ports::Any,
            (Some(port), _) => Ports::Range(port, port),
            (None, Some(range)) => {
                let (low, high) = range
                    .split_once("..")
                    .ok_or_else(|| anyhow!("`{range}` is not a port, `*` or a range `a..b`"))?;
                let (low, high): (u16, u16) = (low.parse()?, high.parse()?);
                ensure!(low <= high, "the port range `{range}` is empty");
                Ports::Range(low, high)
            }
            (None, None) => {
                ensure!(
                    scheme != Pattern::Any,
                    "with scheme `*` give a port (or `*`)"
                );
                Ports::Default
            }
        };
        Ok(AllowedHost {
            scheme,
            host,
            ports,
        })
    }

    fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let scheme_ok = match &self.scheme {
            Pattern::Any => true,
            Pattern::Exact(allowed) => allowed == scheme,
        };
        let host_ok = match &self.host {
            HostPattern::Any => true,
            HostPattern::Subdomains(domain) => host
                .strip_suffix(domain.as_str())
                .is_some_and(|sub| sub.ends_with('.') && sub.len() > 1),
            HostPattern::Exact(allowed) => allowed == host,
        };
        let port_ok = match (&self.ports, port) {
            (Ports::Any, _) => true,
            (Ports::Default, Some(port)) => default_port(scheme) == Some(port),
            (Ports::Range(low, high), Some(port)) => (*low..=*high).contains(&port),
            (_, None) => false,
        };
        scheme_ok && host_ok && port_ok
    }
}

impl fmt::Display for AllowedHosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} entries", self.entries.len())
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    Some(match scheme {
        "http" => 80,
        "https" => 443,
        "redis" => 6379,
        "rediss" => 6380,
        "mysql" => 3306,
        "postgres" => 5432,
        "mqtt" => 1883,
        _ => return None,
    })
}

/// `scheme://[user@]host[:port][/...]` → (scheme, host, port). A port that is not a
/// number (`*`, a range) comes back as None.
fn split_url(url: &str) -> Result<(&str, &str, Option<u16>)> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| anyhow!("it has no scheme (`scheme://host`)"))?;
    ensure!(!scheme.is_empty(), "it has an empty scheme");
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit('@').next().unwrap_or("");
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| anyhow!("unclosed `[` in the host"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    ensure!(!host.is_empty(), "it has no host");
    Ok((scheme, host, port.and_then(|port| port.parse().ok())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(entries: &[&str]) -> AllowedHosts {
        AllowedHosts::parse(entries.iter().copied()).unwrap()
    }

    #[test]
    fn exact_hosts_use_the_scheme_default_port() {
        let allowed = hosts(&["https://api.stripe.com"]);
        assert!(allowed.allows_url("https://api.stripe.com/v1/charges"));
        assert!(allowed.allows_url("https://API.stripe.com:443/"));
        assert!(!allowed.allows_url("https://api.stripe.com:8443/"));
        assert!(!allowed.allows_url("http://api.stripe.com/"));
        assert!(!allowed.allows_url("https://evil.com/?x=api.stripe.com"));
    }

    #[test]
    fn explicit_ports_ranges_and_wildcards() {
        let allowed = hosts(&[
            "http://127.0.0.1:3000",
            "redis://localhost:6379",
            "http://localhost:4000..4002",
            "https://*.example.com",
            "*://*.internal:*",
        ]);
        assert!(allowed.allows_url("http://127.0.0.1:3000/x"));
        assert!(!allowed.allows_url("http://127.0.0.1/x"));
        assert!(allowed.allows_url("redis://localhost:6379/0"));
        assert!(allowed.allows_url("redis://localhost"));
        assert!(allowed.allows_url("http://localhost:4001"));
        assert!(!allowed.allows_url("http://localhost:4003"));
        assert!(allowed.allows_url("https://a.b.example.com"));
        assert!(!allowed.allows_url("https://example.com"));
        assert!(allowed.allows_url("ftp://db.internal:21"));
    }

    #[test]
    fn allow_all_and_invalid_entries() {
        assert!(hosts(&["insecure:allow-all"]).allows_url("http://anything:1"));
        for bad in [
            "api.stripe.com",
            "https://",
            "https://a.com/path",
            "https://a*.com",
            "*://a.com",
        ] {
            assert!(
                AllowedHosts::parse([bad]).is_err(),
                "{bad} should be rejected"
            );
        }
        assert!(!hosts(&[]).allows_url("http://127.0.0.1"));
    }
}
