//! The router, the header, and what every page shares: the session, and which
//! provider payments charge through.

use yew::prelude::*;
use yew_router::prelude::*;

use crate::api::{self, ApiError, PaymentsConfig, Provider};
use crate::pages;
use crate::session::{Session, SessionEvent, SessionHandle, use_session};

/// The original client's paths.
#[derive(Debug, Clone, PartialEq, Routable)]
pub enum Route {
    #[at("/")]
    Home,
    #[at("/auth/signup")]
    SignUp,
    #[at("/auth/signin")]
    SignIn,
    #[at("/auth/signout")]
    SignOut,
    #[at("/tickets/new")]
    NewTicket,
    #[at("/tickets/:id")]
    Ticket { id: String },
    #[at("/orders")]
    Orders,
    #[at("/orders/:id")]
    Order { id: String },
    #[not_found]
    #[at("/404")]
    NotFound,
}

fn switch(route: Route) -> Html {
    match route {
        Route::Home => html! { <pages::home::Home /> },
        Route::SignUp => html! { <pages::auth::AuthForm mode={pages::auth::Mode::SignUp} /> },
        Route::SignIn => html! { <pages::auth::AuthForm mode={pages::auth::Mode::SignIn} /> },
        Route::SignOut => html! { <pages::auth::SignOut /> },
        Route::NewTicket => html! { <pages::new_ticket::NewTicket /> },
        Route::Ticket { id } => html! { <pages::ticket::TicketPage {id} /> },
        Route::Orders => html! { <pages::orders::Orders /> },
        Route::Order { id } => html! { <pages::order::OrderPage {id} /> },
        Route::NotFound => html! {
            <section class="card">
                <h1>{ "Page not found" }</h1>
                <p><Link<Route> to={Route::Home}>{ "Back to the tickets" }</Link<Route>></p>
            </section>
        },
    }
}

/// What payments said of its provider (`GET /api/payments/config`), asked once when
/// the app starts: the test-mode notice on every page and the order page's card entry
/// both follow it. `None` while asking.
#[derive(Debug, Clone, PartialEq)]
pub struct Payments(pub Option<Result<PaymentsConfig, ApiError>>);

impl Payments {
    pub fn is_sandbox(&self) -> bool {
        matches!(&self.0, Some(Ok(config)) if config.provider == Provider::Sandbox)
    }
}

/// The payments setup of the app (set by `App`).
#[hook]
pub fn use_payments() -> Payments {
    use_context::<Payments>().expect("App provides the payments setup")
}

#[function_component(App)]
pub fn app() -> Html {
    let session: SessionHandle = use_reducer(|| Session::Loading);
    let payments = use_state(|| Payments(None));
    {
        let session = session.clone();
        use_effect_with((), move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                // Signed out, or the API is not answering: the pages say so.
                let user = api::current_user().await.ok().flatten();
                session.dispatch(SessionEvent::Found(user));
            });
        });
    }
    {
        let payments = payments.clone();
        use_effect_with((), move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                payments.set(Payments(Some(api::payments_config().await)));
            });
        });
    }
    html! {
        <ContextProvider<SessionHandle> context={session}>
            <ContextProvider<Payments> context={(*payments).clone()}>
                <BrowserRouter>
                    <TestModeNotice />
                    <Header />
                    <main class="page">
                        <Switch<Route> render={switch} />
                    </main>
                </BrowserRouter>
            </ContextProvider<Payments>>
        </ContextProvider<SessionHandle>>
    }
}

/// While payments charge through the sandbox, every page says that no money moves
/// (it stays at the top of the window as the page scrolls).
#[function_component(TestModeNotice)]
fn test_mode_notice() -> Html {
    if !use_payments().is_sandbox() {
        return html! {};
    }
    html! {
        <p class="test-mode" role="status">
            <strong>{ "Test mode:" }</strong>{ " no real charges" }
        </p>
    }
}

#[function_component(Header)]
fn header() -> Html {
    let session = use_session();
    let links = match &*session {
        Session::Loading => html! {},
        Session::SignedOut => html! {
            <>
                <li><Link<Route> to={Route::SignUp}>{ "Sign up" }</Link<Route>></li>
                <li><Link<Route> to={Route::SignIn}>{ "Sign in" }</Link<Route>></li>
            </>
        },
        Session::SignedIn(_) => html! {
            <>
                <li><Link<Route> to={Route::NewTicket}>{ "Sell tickets" }</Link<Route>></li>
                <li><Link<Route> to={Route::Orders}>{ "My orders" }</Link<Route>></li>
                <li><Link<Route> to={Route::SignOut}>{ "Sign out" }</Link<Route>></li>
            </>
        },
    };
    html! {
        <header class="header">
            <nav aria-label="Main">
                <Link<Route> to={Route::Home} classes="brand">{ "Ticketing" }</Link<Route>>
                <ul>{ links }</ul>
            </nav>
        </header>
    }
}
