//! HTTP routing as Spin does it: exact routes (`/health`), routes with parameters
//! (`/users/:id`) and trailing wildcards (`/api/users/...`). An exact route beats a
//! parameterized one, which beats a wildcard; among wildcards the longest prefix wins.
//! `{ private = true }` components have no route.

use std::fmt;

use anyhow::{Result, ensure};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutePattern {
    /// Segments, each literal or `:name`; no wildcard.
    Exact(Vec<Segment>),
    /// `<segments>/...`: the segments, then anything (including nothing).
    Wildcard(Vec<Segment>),
    /// Reachable only from inside the app, never from outside.
    Private,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Literal(String),
    Parameter(String),
}

impl RoutePattern {
    pub fn parse(route: &str) -> Result<RoutePattern> {
        ensure!(route.starts_with('/'), "a route must start with `/`");
        let (body, is_wildcard) = match route.strip_suffix("/...") {
            Some(body) => (body, true),
            None if route == "..." => ("", true),
            None => (route, false),
        };
        let segments: Vec<Segment> = body
            .split('/')
            .filter(|segment| !segment.is_empty())
            .map(|segment| match segment.strip_prefix(':') {
                Some(name) => Segment::Parameter(name.to_owned()),
                None => Segment::Literal(segment.to_owned()),
            })
            .collect();
        for segment in &segments {
            if let Segment::Literal(text) = segment {
                ensure!(
                    !text.contains("..."),
                    "`...` may only end a route (`/prefix/...`)"
                );
            }
        }
        Ok(if is_wildcard {
            RoutePattern::Wildcard(segments)
        } else {
            RoutePattern::Exact(segments)
        })
    }

    /// Matches a request path; on success, the parameters and the path info (the
    /// part matched by `...`, starting with `/`, or empty).
    pub fn matches(&self, path: &str) -> Option<Match> {
        let (segments, is_wildcard) = match self {
            RoutePattern::Exact(segments) => (segments, false),
            RoutePattern::Wildcard(segments) => (segments, true),
            RoutePattern::Private => return None,
        };
        let mut rest = path;
        let mut parameters = Vec::new();
        for segment in segments {
            let trimmed = rest.strip_prefix('/')?;
            let (part, after) = trimmed.split_at(trimmed.find('/').unwrap_or(trimmed.len()));
            match segment {
                Segment::Literal(text) if text == part => {}
                Segment::Parameter(name) if !part.is_empty() => {
                    parameters.push((name.clone(), part.to_owned()));
                }
                _ => return None,
            }
            rest = after;
        }
        if is_wildcard {
            Some(Match {
                parameters,
                path_info: rest.to_owned(),
            })
        } else {
            // An exact route also takes its path with a trailing slash.
            (rest.is_empty() || rest == "/").then(|| Match {
                parameters,
                path_info: String::new(),
            })
        }
    }

    /// Sort key: higher is more specific.
    fn specificity(&self) -> (u8, usize) {
        match self {
            RoutePattern::Exact(segments) => {
                let has_parameters = segments
                    .iter()
                    .any(|segment| matches!(segment, Segment::Parameter(_)));
                (if has_parameters { 2 } else { 3 }, segments.len())
            }
            RoutePattern::Wildcard(segments) => (1, segments.len()),
            RoutePattern::Private => (0, 0),
        }
    }

    /// The route without its wildcard: Spin's `spin-component-route`.
    pub fn base(&self) -> String {
        match self {
            RoutePattern::Exact(segments) | RoutePattern::Wildcard(segments) => segments
                .iter()
                .map(|segment| format!("/{segment}"))
                .collect(),
            RoutePattern::Private => String::new(),
        }
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Segment::Literal(text) => f.write_str(text),
            Segment::Parameter(name) => write!(f, ":{name}"),
        }
    }
}

impl fmt::Display for RoutePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoutePattern::Exact(segments) if segments.is_empty() => f.write_str("/"),
            RoutePattern::Exact(_) => f.write_str(&self.base()),
            RoutePattern::Wildcard(_) => write!(f, "{}/...", self.base()),
            RoutePattern::Private => f.write_str("(private)"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub parameters: Vec<(String, String)>,
    pub path_info: String,
}

/// The routes of an app, most specific first.
pub struct Router<T> {
    routes: Vec<(RoutePattern, T)>,
}

impl<T> Router<T> {
    pub fn new(mut routes: Vec<(RoutePattern, T)>) -> Router<T> {
        // Stable: among equally specific routes, manifest order decides.
        routes.sort_by_key(|(pattern, _)| std::cmp::Reverse(pattern.specificity()));
        Router { routes }
    }

    /// The target of the most specific route matching `path`, and what it matched.
    pub fn route(&self, path: &str) -> Option<(&T, Match)> {
        self.routes
            .iter()
            .find_map(|(pattern, target)| pattern.matches(path).map(|matched| (target, matched)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router<&'static str> {
        let routes = [
            ("/...", "web"),
            ("/api/users/...", "auth"),
            ("/api/users/currentuser", "current"),
            ("/api/tickets/:id", "ticket"),
            ("/api/...", "api"),
        ];
        Router::new(
            routes
                .into_iter()
                .map(|(route, target)| (RoutePattern::parse(route).unwrap(), target))
                .collect(),
        )
    }

    fn target(path: &str) -> Option<&'static str> {
        router().route(path).map(|(target, _)| *target)
    }

    #[test]
    fn exact_beats_parameters_beats_wildcard_and_longest_prefix_wins() {
        assert_eq!(target("/api/users/currentuser"), Some("current"));
        assert_eq!(target("/api/users/signin"), Some("auth"));
        assert_eq!(target("/api/users"), Some("auth"));
        assert_eq!(target("/api/tickets/42"), Some("ticket"));
        assert_eq!(target("/api/tickets/42/x"), Some("api"));
        assert_eq!(target("/api/orders"), Some("api"));
        assert_eq!(target("/orders/7"), Some("web"));
        assert_eq!(target("/"), Some("web"));
    }

    #[test]
    fn wildcards_match_whole_segments_and_report_path_info() {
        let pattern = RoutePattern::parse("/api/users/...").unwrap();
        assert_eq!(pattern.matches("/api/usersx"), None);
        assert_eq!(
            pattern.matches("/api/users/signin").unwrap().path_info,
            "/signin"
        );
        assert_eq!(pattern.matches("/api/users").unwrap().path_info, "");
        assert_eq!(pattern.to_string(), "/api/users/...");
        assert_eq!(pattern.base(), "/api/users");
    }

    #[test]
    fn parameters_are_captured() {
        let pattern = RoutePattern::parse("/api/tickets/:id").unwrap();
        let matched = pattern.matches("/api/tickets/abc").unwrap();
        assert_eq!(matched.parameters, [("id".to_owned(), "abc".to_owned())]);
        assert_eq!(pattern.matches("/api/tickets/"), None);
    }

    #[test]
    fn private_routes_match_nothing() {
        assert_eq!(RoutePattern::Private.matches("/"), None);
    }

    #[test]
    fn bad_routes_are_rejected() {
        assert!(RoutePattern::parse("api").is_err());
        assert!(RoutePattern::parse("/a/.../b").is_err());
    }
}
