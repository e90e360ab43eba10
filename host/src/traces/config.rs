//! Whether and where traces go, from the environment variables Spin 3.6 reads (its
//! `spin-telemetry` crate, after the OpenTelemetry exporter spec).

use http::uri::{Scheme, Uri};
use http::{HeaderName, HeaderValue};

const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
const TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
const PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
const TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
const HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
const TRACES_HEADERS: &str = "OTEL_EXPORTER_OTLP_TRACES_HEADERS";
const SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
const SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
const RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";

/// What the environment asks for.
#[derive(Debug)]
pub enum Setup {
    /// No endpoint set (or `OTEL_SDK_DISABLED`): nothing is traced.
    Off,
    /// Traces were asked for in a way Spin exports and this host does not (gRPC, an
    /// `https://` endpoint): said once at start, nothing is traced.
    Unsupported(String),
    On(Config),
}

/// Where and how to export: OTLP over HTTP with protobuf bodies.
#[derive(Debug)]
pub struct Config {
    pub endpoint: Endpoint,
    /// `OTEL_EXPORTER_OTLP_HEADERS`, then `..._TRACES_HEADERS` over it.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The resource's attributes, `service.name` first.
    pub resource: Vec<(String, String)>,
    /// What was wrong but not fatal (an unknown protocol, a header that is not one):
    /// for the start-up log.
    pub warnings: Vec<String>,
}

/// A plain-HTTP collector URL, taken apart for the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port`, to connect to.
    pub address: String,
    /// The `Host` header.
    pub authority: String,
    /// The request target, `/v1/traces` under a base endpoint.
    pub path: String,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.authority, self.path)
    }
}

/// Reads the configuration through `var` (the process environment, or a test's).
/// Err, as with Spin, for what Spin refuses to start with: the `http/json` protocol or
/// an endpoint that is not a URL.
pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Setup, String> {
    let set = |name: &str| var(name).filter(|value| !value.trim().is_empty());
    if set(SDK_DISABLED).is_some() {
        return Ok(Setup::Off);
    }
    // The signal's own endpoint is used as it is; the general one is a base URL.
    let (endpoint, is_base) = match (set(TRACES_ENDPOINT), set(ENDPOINT)) {
        (Some(traces), _) => (traces, false),
        (None, Some(base)) => (base, true),
        (None, None) => return Ok(Setup::Off),
    };
    let mut warnings = Vec::new();
    let protocol = var(TRACES_PROTOCOL)
        .or_else(|| var(PROTOCOL))
        .unwrap_or_else(|| "http/protobuf".to_owned());
    match protocol.as_str() {
        "http/protobuf" => {}
        "grpc" => {
            return Ok(Setup::Unsupported(
                "the OTLP protocol `grpc` is not supported by this host (Spin's is); \
                 set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf and the collector's \
                 OTLP/HTTP endpoint (port 4318 by convention)"
                    .to_owned(),
            ));
        }
        "http/json" => return Err("the OTLP protocol `http/json` is not supported".to_owned()),
        other => warnings.push(format!(
            "`{other}` is not a valid OTLP protocol, defaulting to http/protobuf"
        )),
    }
    let endpoint = match parse_endpoint(&endpoint, is_base)? {
        Ok(endpoint) => endpoint,
        Err(unsupported) => return Ok(Setup::Unsupported(unsupported)),
    };
    let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
    for name in [HEADERS, TRACES_HEADERS] {
        for (key, value) in pairs(&var(name).unwrap_or_default()) {
            match (
                HeaderName::from_bytes(key.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                (Ok(key), Ok(value)) => {
                    headers.retain(|(known, _)| *known != key);
                    headers.push((key, value));
                }
                _ => warnings.push(format!("{name}: `{key}` is not a valid header; left out")),
            }
        }
    }
    Ok(Setup::On(Config {
        endpoint,
        headers,
        resource: resource(&var),
        warnings,
    }))
}

/// Ok(Err(why)) for a URL the host cannot export to; Err for one that is no URL.
fn parse_endpoint(url: &str, is_base: bool) -> Result<Result<Endpoint, String>, String> {
    let uri: Uri = url
        .trim()
        .parse()
        .map_err(|err| format!("the OTLP endpoint `{url}` is not a URL: {err}"))?;
    let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
        return Err(format!(
            "the OTLP endpoint `{url}` is not a URL like http://localhost:4318"
        ));
    };
    if *scheme != Scheme::HTTP {
        return Ok(Err(format!(
            "the OTLP endpoint `{url}` is not plain http://, the only kind this host \
             exports to (it has no TLS client); Spin's exporter takes https:// too"
        )));
    }
    let path = if is_base {
        // The spec's join: `/v1/traces` below the base's path, one slash between.
        format!("{}/v1/traces", uri.path().trim_end_matches('/'))
    } else {
        uri.path_and_query()
            .map_or_else(|| "/".to_owned(), |path| path.as_str().to_owned())
    };
    Ok(Ok(Endpoint {
        address: format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(80)
        ),
        authority: authority.as_str().to_owned(),
        path,
    }))
}

/// `service.name` (from `OTEL_SERVICE_NAME`, else `OTEL_RESOURCE_ATTRIBUTES`, else
/// `spin`, as in Spin), the other `OTEL_RESOURCE_ATTRIBUTES`, and `service.version`
/// (the host's, where Spin gives its own) unless those name one.
fn resource(var: &impl Fn(&str) -> Option<String>) -> Vec<(String, String)> {
    let mut attributes = pairs(&var(RESOURCE_ATTRIBUTES).unwrap_or_default());
    let named = var(SERVICE_NAME)
        .filter(|name| !name.is_empty())
        .or_else(|| {
            attributes
                .iter()
                .find(|(key, _)| key == "service.name")
                .map(|(_, value)| value.clone())
        })
        .unwrap_or_else(|| "spin".to_owned());
    attributes.retain(|(key, _)| key != "service.name");
    if !attributes.iter().any(|(key, _)| key == "service.version") {
        attributes.push((
            "service.version".to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        ));
    }
    attributes.insert(0, ("service.name".to_owned(), named));
    attributes
}

/// `key=value,key=value` (W3C Baggage's shape, values percent-encoded), as the OTLP
/// headers and resource attributes are written. A part without `=` is left out.
fn pairs(text: &str) -> Vec<(String, String)> {
    text.split(',')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            let key = key.trim();
            (!key.is_empty()).then(|| (key.to_owned(), percent_decoded(value.trim())))
        })
        .collect()
}

/// `%XX` escapes decoded; a `%` not followed by two hex digits stays as it is.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'%')
            .then(|| bytes.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                index += 3;
            }
            None => {
                decoded.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(vars: &[(&str, &str)]) -> Result<Setup, String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        from_env(|name| {
            vars.iter()
                .find(|(known, _)| known == name)
                .map(|(_, value)| value.clone())
        })
    }

    fn config(vars: &[(&str, &str)]) -> Config {
        match setup(vars) {
            Ok(Setup::On(config)) => config,
            other => panic!("not on: {other:?}"),
        }
    }

    #[test]
    fn nothing_is_traced_without_an_endpoint_or_when_disabled() {
        assert!(matches!(setup(&[]), Ok(Setup::Off)));
        assert!(matches!(setup(&[(ENDPOINT, "")]), Ok(Setup::Off)));
        assert!(matches!(setup(&[(ENDPOINT, "  ")]), Ok(Setup::Off)));
        assert!(matches!(
            setup(&[(ENDPOINT, "http://localhost:4318"), (SDK_DISABLED, "true")]),
            Ok(Setup::Off)
        ));
        // Set but empty does not disable, as in Spin.
        assert!(matches!(
            setup(&[(ENDPOINT, "http://localhost:4318"), (SDK_DISABLED, "")]),
            Ok(Setup::On(_))
        ));
        // Other signals' endpoints do not turn traces on.
        assert!(matches!(
            setup(&[("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://x:4318")]),
            Ok(Setup::Off)
        ));
    }

    #[test]
    fn the_base_endpoint_gets_v1_traces_and_the_traces_endpoint_is_used_as_it_is() {
        let cases = [
            (
                ENDPOINT,
                "http://localhost:4318",
                "localhost:4318",
                "/v1/traces",
            ),
            (
                ENDPOINT,
                "http://localhost:4318/",
                "localhost:4318",
                "/v1/traces",
            ),
            (
                ENDPOINT,
                "http://collector/otlp/",
                "collector:80",
                "/otlp/v1/traces",
            ),
            (
                ENDPOINT,
                "http://10.0.0.1:4318/otlp",
                "10.0.0.1:4318",
                "/otlp/v1/traces",
            ),
            (
                TRACES_ENDPOINT,
                "http://localhost:4318",
                "localhost:4318",
                "/",
            ),
            (
                TRACES_ENDPOINT,
                "http://x:9/custom/path",
                "x:9",
                "/custom/path",
            ),
        ];
        for (name, url, address, path) in cases {
            let endpoint = config(&[(name, url)]).endpoint;
            assert_eq!(
                (endpoint.address.as_str(), endpoint.path.as_str()),
                (address, path),
                "{name}={url}"
            );
        }
        let both = config(&[
            (ENDPOINT, "http://base:1"),
            (TRACES_ENDPOINT, "http://traces:2/t"),
        ]);
        assert_eq!(both.endpoint.to_string(), "http://traces:2/t");
    }

    #[test]
    fn grpc_and_https_are_refused_with_a_reason_and_http_json_fails_as_in_spin() {
        let grpc = setup(&[(ENDPOINT, "http://x:4317"), (PROTOCOL, "grpc")]);
        assert!(matches!(grpc, Ok(Setup::Unsupported(why)) if why.contains("grpc")));
        // The traces protocol wins over the general one.
        let traces_grpc = setup(&[
            (ENDPOINT, "http://x:4317"),
            (PROTOCOL, "http/protobuf"),
            (TRACES_PROTOCOL, "grpc"),
        ]);
        assert!(matches!(traces_grpc, Ok(Setup::Unsupported(_))));
        let https = setup(&[(ENDPOINT, "https://x:4318")]);
        assert!(matches!(https, Ok(Setup::Unsupported(why)) if why.contains("https://x:4318")));
        let json = setup(&[(ENDPOINT, "http://x:4318"), (PROTOCOL, "http/json")]);
        assert!(json.is_err_and(|why| why.contains("http/json")));
        assert!(setup(&[(ENDPOINT, "localhost:4318")]).is_err());
        assert!(setup(&[(ENDPOINT, "not a url")]).is_err());

        let unknown = config(&[(ENDPOINT, "http://x:4318"), (PROTOCOL, "carrier-pigeon")]);
        assert_eq!(unknown.warnings.len(), 1, "{:?}", unknown.warnings);
    }

    #[test]
    fn headers_are_pairs_and_the_traces_ones_win() {
        let config = config(&[
            (ENDPOINT, "http://x:4318"),
            (
                HEADERS,
                "api-key=one, x-scope = tenant%201 ,broken,bad name=v",
            ),
            (TRACES_HEADERS, "API-Key=two"),
        ]);
        let headers: Vec<(&str, &str)> = config
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.to_str().unwrap()))
            .collect();
        assert_eq!(headers, [("x-scope", "tenant 1"), ("api-key", "two")]);
        assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
    }

    #[test]
    fn the_service_name_comes_from_its_variable_then_the_resource_then_spin() {
        let name = |vars: &[(&str, &str)]| {
            let mut all = vec![(ENDPOINT, "http://x:4318")];
            all.extend_from_slice(vars);
            config(&all).resource
        };
        let resource = name(&[]);
        assert_eq!(resource[0], ("service.name".into(), "spin".into()));
        assert!(resource.iter().any(|(key, _)| key == "service.version"));

        let resource = name(&[(
            RESOURCE_ATTRIBUTES,
            "service.name=tickets,deployment.environment=dev%2Fone,service.version=9",
        )]);
        assert_eq!(
            resource,
            [
                ("service.name".to_owned(), "tickets".to_owned()),
                ("deployment.environment".to_owned(), "dev/one".to_owned()),
                ("service.version".to_owned(), "9".to_owned()),
            ]
        );

        let resource = name(&[
            (SERVICE_NAME, "orders"),
            (RESOURCE_ATTRIBUTES, "service.name=tickets"),
        ]);
        assert_eq!(resource[0], ("service.name".into(), "orders".into()));
        assert_eq!(
            resource
                .iter()
                .filter(|(key, _)| key == "service.name")
                .count(),
            1
        );
    }

    #[test]
    fn percent_escapes_are_decoded_and_stray_percents_kept() {
        assert_eq!(percent_decoded("a%20b%2Cc"), "a b,c");
        assert_eq!(percent_decoded("100%"), "100%");
        assert_eq!(percent_decoded("%zz"), "%zz");
    }
}
