//! Outbound `wasi:http`: only to the component's `allowed_outbound_hosts`; anything
//! else fails in the guest with `HttpRequestDenied`, as in Spin.

use std::sync::Arc;

use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::state::ComponentRuntime;

pub struct OutboundHttp {
    component: Arc<ComponentRuntime>,
}

impl OutboundHttp {
    pub fn new(component: Arc<ComponentRuntime>) -> OutboundHttp {
        OutboundHttp { component }
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
