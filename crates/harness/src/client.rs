//! An HTTP client for one user of the app: its own cookie jar, no proxies (traffic
//! goes to 127.0.0.1 only), answers read whole.

use std::time::Duration;

use serde_json::Value;

/// One user's session with the app.
pub struct Client {
    base_url: String,
    http: reqwest::blocking::Client,
}

/// A whole answer: status, headers, body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics (showing the body) when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|err| panic!("the body is not JSON ({err}): {}", self.text()))
    }

    /// The `errors` of the error body (`{"errors": [{"message", "field"?}]}`).
    pub fn errors(&self) -> Value {
        self.json()["errors"].clone()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
    }
}

impl Client {
    pub(crate) fn new(base_url: &str) -> Client {
        let http = reqwest::blocking::Client::builder()
            .cookie_store(true)
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("an HTTP client");
        Client {
            base_url: base_url.to_owned(),
            http,
        }
    }

    /// `http://127.0.0.1:<port>` of the app.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn get(&self, path: &str) -> Reply {
        self.send(self.http.get(self.url(path)))
    }

    pub fn delete(&self, path: &str) -> Reply {
        self.send(self.http.delete(self.url(path)))
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.send(self.http.post(self.url(path)).json(body))
    }

    /// A POST of JSON with more headers (`traceparent`, say).
    pub fn post_json_with(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Reply {
        let mut request = self.http.post(self.url(path)).json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request)
    }

    pub fn put_json(&self, path: &str, body: &Value) -> Reply {
        self.send(self.http.put(self.url(path)).json(body))
    }

    /// A POST with a raw body and content type.
    pub fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> Reply {
        self.send(
            self.http
                .post(self.url(path))
                .header("content-type", content_type)
                .body(body),
        )
    }

    /// Any request, built on this client (its cookies are added).
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::blocking::RequestBuilder {
        self.http.request(method, self.url(path))
    }

    pub fn send(&self, request: reqwest::blocking::RequestBuilder) -> Reply {
        let response = request.send().expect("the app answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().expect("the whole body arrives").to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }
}
