//! Outbound `wasi:http`: only to the component's `allowed_outbound_hosts`; anything
//! else fails in the guest with `HttpRequestDenied`, as in Spin.
//!
//! When traces are exported, each request is a `spin_outbound_http.send_request` span
//! (until the response head) and carries its `traceparent`, as Spin injects it.

use std::sync::Arc;

use http::HeaderValue;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::state::ComponentRuntime;
use crate::traces::{Kind, Span};

pub struct OutboundHttp {
    component: Arc<ComponentRuntime>,
    /// The instance's execution span (see `State::trace`).
    trace: Option<Span>,
}

impl OutboundHttp {
    pub fn new(component: Arc<ComponentRuntime>, trace: Option<Span>) -> OutboundHttp {
        OutboundHttp { component, trace }
    }
}

type SendFuture = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<WasiBody>,
                Box<dyn Future<Output = Result<(), Error>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        let Some(execution) = &self.trace else {
            return self.send_untraced(request, options, fut);
        };
        let span = execution.child(request.method().to_string(), Kind::Client);
        let uri = request.uri();
        span.set_attribute("url.full", uri.to_string());
        span.set_attribute("http.request.method", request.method().to_string());
        if let Some(host) = uri.host() {
            span.set_attribute("server.address", host.to_owned());
        }
        if let Some(port) = uri.port_u16() {
            span.set_attribute("server.port", port);
        }
        let context = span.context();
        if let Ok(traceparent) = HeaderValue::from_str(&context.traceparent()) {
            request.headers_mut().insert("traceparent", traceparent);
        }
        if let Some(state) = context.state.as_deref()
            && let Ok(state) = HeaderValue::from_str(state)
        {
            request.headers_mut().insert("tracestate", state);
        }
        let sending = Box::into_pin(self.send_untraced(request, options, fut));
        Box::new(async move {
            let outcome = sending.await;
            match &outcome {
                Ok((response, _)) => {
                    span.set_attribute("http.response.status_code", response.status().as_u16())
                }
                Err(err) => span.set_error(format!("{err:?}")),
            }
            outcome
        })
    }
}

impl OutboundHttp {
    fn send_untraced(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("https");
        let host = uri.host().unwrap_or_default();
        if !self
            .component
            .allowed_hosts
            .allows(scheme, host, uri.port_u16())
        {
            let target = format!("{scheme}://{}", uri.authority().map_or("", |a| a.as_str()));
            self.component.log_denied("HTTP", &target);
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        if let Some(test) = &self.component.test {
            // Under a component test, the test answers (spin-test's `http-handler`).
            let answering = test.answer(request);
            return Box::new(async move {
                let response = answering.await?;
                let done: Box<dyn Future<Output = Result<(), Error>> + Send> =
                    Box::new(async { Ok(()) });
                Ok((response, done))
            });
        }
        let default = wasmtime_wasi_http::default_hooks();
        default.send_request(request, options, fut)
    }
}
