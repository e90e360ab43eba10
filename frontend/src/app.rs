//! The router, the header, and the session every page shares.

use yew::prelude::*;
use yew_router::prelude::*;

use crate::api;
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

#[function_component(App)]
pub fn app() -> Html {
    let session: SessionHandle = use_reducer(|| Session::Loading);
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
    html! {
        <ContextProvider<SessionHandle> context={session}>
            <BrowserRouter>
                <Header />
                <main class="page">
                    <Switch<Route> render={switch} />
                </main>
            </BrowserRouter>
        </ContextProvider<SessionHandle>>
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
