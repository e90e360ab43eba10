//! The web app in a real browser: headless Chromium over WebDriver, against the real
//! app (host, every component, Redis, SQLite) serving the app that `cargo xtask build`
//! wrote to target/web/. Each test is what a person does, clicking and typing.
//!
//! Screenshots of the main pages go to target/browser/screenshots/ (and to the
//! directory in `TICKETING_SCREENSHOTS`, which `cargo xtask screenshots` points at
//! docs/screenshots/). A failing test leaves the page's screenshot and HTML in
//! target/browser/<test>/.

use std::path::PathBuf;
use std::time::Duration;

use harness::{App, Browser, Runtime, StripeStub, eventually, on_every_runtime};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);
/// A phone's viewport, for the screenshots that show the layout on one.
const PHONE: (u32, u32) = (390, 844);

/// The whole app on the host, with a payment window of `window_seconds`.
fn spawn(window_seconds: u64) -> App {
    spawn_with(Runtime::Host, window_seconds, |app| app)
}

fn spawn_with(
    runtime: Runtime,
    window_seconds: u64,
    configure: impl FnOnce(harness::AppBuilder) -> harness::AppBuilder,
) -> App {
    let app = harness::spawn_app_with(runtime, |app| {
        configure(app.variable("order_expiration_seconds", &window_seconds.to_string()))
    });
    app.wait_for_listeners(&["ticket:created", "order:created", "payment:created"]);
    app
}

/// Saves a screenshot of what `browser` shows as `<name>.png`.
fn capture(browser: &Browser, name: &str) {
    let file = format!("{name}.png");
    browser.screenshot(
        &harness::workspace_root()
            .join("target/browser/screenshots")
            .join(&file),
    );
    if let Some(dir) = std::env::var_os("TICKETING_SCREENSHOTS") {
        browser.screenshot(&PathBuf::from(dir).join(&file));
    }
}

/// Signs up through the form (from any page); waits for the signed-in header.
fn sign_up(browser: &Browser, email: &str) {
    browser.click_text("Sign up");
    browser.wait_for_path("/auth/signup");
    browser.fill("#email", email);
    browser.fill("#password", "secret1");
    browser.click("form button[type=submit]");
    browser.wait_for_path("/");
    browser.wait_for_text("Sell tickets");
}

fn sign_out(browser: &Browser) {
    browser.click_text("Sign out");
    browser.wait_for_path("/");
    browser.wait_for_text("Sign in");
    assert!(!browser.page_text().contains("My orders"));
}

/// Waits until the orders service has every ticket listed so far (it learns of them
/// through `ticket:created`), so that ordering one cannot meet a 404.
fn wait_until_orders_knows_the_tickets(app: &App) {
    eventually("orders to hear of every ticket", WAIT, || {
        app.redis()
            .group_caught_up("events:ticket:created", "orders")
            .then_some(())
    });
}

/// A new buyer `<name>@example.com`, signed up in a browser of its own, who has just
/// ordered `ticket`: the browser shows the order page.
fn buyer_ordering(app: &App, name: &str, ticket: &Value) -> Browser {
    wait_until_orders_knows_the_tickets(app);
    let browser = Browser::open(name, app.base_url());
    browser.goto("/");
    sign_up(&browser, &format!("{name}@example.com"));
    browser.goto(&format!(
        "/tickets/{}",
        ticket["id"].as_str().expect("an id")
    ));
    browser.click_text("Purchase");
    browser.wait_for_text("Time left to pay");
    browser
}

/// What every page shows while payments charge through the sandbox.
const TEST_MODE: &str = "Test mode: no real charges";

/// The sandbox's notice is on the page, as a status, inside the window and not
/// cut off, also after scrolling far down a long page (the page is made long here).
fn assert_test_mode_shown(browser: &Browser) {
    browser.wait_for_text(TEST_MODE);
    assert_eq!(
        browser.wait_for(".test-mode[role=status]"),
        TEST_MODE,
        "one status line, with nothing else in it"
    );
    let seen = browser.execute(
        "const notice = document.querySelector('.test-mode');
         const inWindow = () => {
           const box = notice.getBoundingClientRect();
           return box.top >= 0 && box.left >= 0 && box.height > 0
             && box.bottom <= window.innerHeight && box.right <= window.innerWidth
             && notice.scrollWidth <= notice.clientWidth;
         };
         const atTop = inWindow();
         const spacer = document.createElement('div');
         spacer.style.height = '5000px';
         document.body.appendChild(spacer);
         window.scrollTo(0, 4000);
         const scrolled = inWindow() && window.scrollY > 0;
         spacer.remove();
         window.scrollTo(0, 0);
         return [atTop, scrolled];",
    );
    assert_eq!(
        seen,
        json!([true, true]),
        "the notice is in the window, scrolled or not"
    );
}

/// No test-mode notice: checked once the payments config has arrived (the caller
/// waits for something that follows it).
fn assert_no_test_mode(browser: &Browser) {
    assert!(!browser.has(".test-mode"));
    assert!(!browser.page_text().contains("Test mode"));
}

/// The seconds the order page's countdown shows ("14:59" → 899).
fn countdown_seconds(browser: &Browser) -> i64 {
    let shown = browser.wait_for(".countdown strong");
    let (minutes, seconds) = shown
        .split_once(':')
        .unwrap_or_else(|| panic!("a countdown like 14:59, not {shown:?}"));
    let minutes: i64 = minutes.trim().parse().expect("minutes");
    let seconds: i64 = seconds.trim().parse().expect("seconds");
    minutes * 60 + seconds
}

/// The whole journey, on the host and on real Spin where it is installed.
#[test]
fn a_seller_lists_a_ticket_and_a_buyer_buys_it_end_to_end() {
    on_every_runtime(|runtime| spawn_with(runtime, 900, |app| app), journey);
}

fn journey(app: &App) {
    let browser = Browser::open(&format!("journey-{}", app.runtime.name()), app.base_url());

    // Signed out, nothing for sale yet; payments run the sandbox, and every page says so.
    browser.goto("/");
    browser.wait_for_text("No tickets for sale right now.");
    assert_test_mode_shown(&browser);
    assert!(browser.page_text().contains("Sign in"));
    assert!(!browser.page_text().contains("Sell tickets"));

    // The seller signs up and lists a ticket; the price is shown with two decimals
    // once the field loses focus.
    sign_up(&browser, "seller@example.com");
    browser.click_text("Sell tickets");
    browser.wait_for_path("/tickets/new");
    assert_test_mode_shown(&browser);
    browser.fill("#title", "Jazz in the park");
    browser.fill("#price", "49.9");
    browser.click("#title");
    assert_eq!(browser.value("#price"), "49.90");
    capture(&browser, "sell-a-ticket");
    browser.click("form button[type=submit]");
    browser.wait_for_path("/");
    browser.wait_for_text("Jazz in the park");
    browser.wait_for_text("$49.90");
    let listed = app.get("/api/tickets").json();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["title"], "Jazz in the park");
    assert_eq!(listed[0]["price"], json!(49.9));
    sign_out(&browser);

    // A buyer signs up, opens the ticket and buys it.
    wait_until_orders_knows_the_tickets(app);
    sign_up(&browser, "buyer@example.com");
    capture(&browser, "tickets");
    browser.resize(PHONE);
    assert_test_mode_shown(&browser);
    capture(&browser, "tickets-phone");
    browser.resize(harness::DESKTOP);
    browser.click_text("View Jazz in the park");
    browser.wait_for_text("$49.90");
    assert_test_mode_shown(&browser);
    capture(&browser, "ticket");
    browser.click_text("Purchase");
    browser.wait_for_text("Time left to pay");
    let order_path = browser.path();
    assert!(order_path.starts_with("/orders/"), "{order_path}");

    // The countdown runs: 15 minutes, counting down every second.
    let first = countdown_seconds(&browser);
    assert!((890..=900).contains(&first), "{first} seconds left");
    eventually("the countdown to tick", WAIT, || {
        (countdown_seconds(&browser) < first).then_some(())
    });

    // The sandbox's card token is filled in; paying leads to "My orders", where the
    // order turns "Paid" once the payment's event reaches orders.
    assert_eq!(browser.value("#token"), "tok_visa");
    assert_test_mode_shown(&browser);
    capture(&browser, "order");
    browser.click_text("Pay");
    browser.wait_for_path("/orders");
    browser.wait_for_text("Jazz in the park");
    browser.wait_for_text("Paid");
    assert_test_mode_shown(&browser);
    capture(&browser, "my-orders");

    // The order and its payment were sent in one trace: their events carry it.
    let order_id = order_path.trim_start_matches("/orders/");
    let trace_of = |subject: &str, matches: &dyn Fn(&Value) -> bool| -> String {
        let envelope = app
            .redis()
            .envelopes(subject)
            .into_iter()
            .find(|envelope| matches(envelope))
            .unwrap_or_else(|| panic!("no {subject} of order {order_id}"));
        envelope["traceparent"].as_str().expect("a traceparent")[3..35].to_owned()
    };
    assert_eq!(
        trace_of("order:created", &|e| e["data"]["id"] == order_id),
        trace_of("payment:created", &|e| e["data"]["orderId"] == order_id),
    );

    // The order page says so too, and the ticket is no longer for sale.
    browser.goto(&order_path);
    browser.wait_for_text("Status: Paid");
    assert!(!browser.has(".countdown"));
    browser.goto("/");
    browser.wait_for_text("No tickets for sale right now.");
}

#[test]
fn a_second_buyer_cannot_buy_a_reserved_ticket() {
    let app = spawn(900);
    let seller = app.signed_up("seller");
    let ticket = seller.sell("Opera night", 80.0);
    let ticket_path = format!("/tickets/{}", ticket["id"].as_str().expect("an id"));
    wait_until_orders_knows_the_tickets(&app);

    let browser = Browser::open("reserved", app.base_url());
    browser.goto("/");
    sign_up(&browser, "second@example.com");
    browser.goto(&ticket_path);
    browser.wait_for_text("Purchase");

    // Someone else orders it while the page is open; the purchase is refused.
    let first_buyer = app.signed_up("first");
    first_buyer.order(&ticket);
    browser.click_text("Purchase");
    browser.wait_for_text("Ticket is already reserved");
    assert_eq!(browser.path(), ticket_path);

    // Once tickets has heard of the order, the page says it is reserved, without a
    // Purchase button, and the ticket has left the list.
    eventually("tickets to mark the ticket reserved", WAIT, || {
        let now = app.get(&ticket_path.replacen("/tickets", "/api/tickets", 1));
        now.json().get("orderId").map(|_| ())
    });
    browser.goto(&ticket_path);
    browser.wait_for_text("Reserved: a buyer is paying for this ticket.");
    assert!(!browser.page_text().contains("Purchase"));
    browser.goto("/");
    browser.wait_for_text("No tickets for sale right now.");
}

#[test]
fn forms_show_the_apis_errors_next_to_their_fields() {
    let app = spawn(900);
    let browser = Browser::open("validation", app.base_url());
    browser.goto("/auth/signup");
    browser.fill("#email", "not an email");
    browser.fill("#password", "abc");
    browser.click("form button[type=submit]");
    browser.wait_for("#email-error");
    assert_eq!(browser.wait_for("#email-error"), "Email must be valid");
    assert_eq!(
        browser.wait_for("#password-error"),
        "Password must be between 4 and 20 characters"
    );
    assert_eq!(
        browser.execute("return document.getElementById('email').getAttribute('aria-invalid')"),
        json!("true")
    );
    capture(&browser, "sign-up-errors");

    // A rule that belongs to no field is shown above the button.
    app.signed_up("taken");
    browser.fill("#email", "taken@example.com");
    browser.fill("#password", "secret1");
    browser.click("form button[type=submit]");
    browser.wait_for_text("Email in use");
    assert!(!browser.has("#email-error"));

    // Sign in: the same credentials error for an unknown email and a wrong password.
    browser.goto("/auth/signin");
    browser.fill("#email", "taken@example.com");
    browser.fill("#password", "wrong password");
    browser.click("form button[type=submit]");
    browser.wait_for_text("Invalid credentials");
    browser.fill("#password", "secret1");
    browser.click("form button[type=submit]");
    browser.wait_for_path("/");
    browser.wait_for_text("Sell tickets");

    // Selling: both rules at once, then a fix.
    browser.goto("/tickets/new");
    browser.fill("#title", "   ");
    browser.fill("#price", "0");
    browser.click("form button[type=submit]");
    assert_eq!(browser.wait_for("#title-error"), "Title is required");
    assert_eq!(
        browser.wait_for("#price-error"),
        "Price must be greater than 0"
    );
    // A price is padded to two decimals when the field is left, never rounded.
    browser.fill("#title", "Chamber music");
    browser.fill("#price", "12.345");
    browser.click("#title");
    assert_eq!(browser.value("#price"), "12.345");
    browser.click("form button[type=submit]");
    // The previous error stays until the answer comes: wait for the new one.
    browser.wait_for_text("Price must have at most 2 decimals");
    assert_eq!(
        browser.wait_for("#price-error"),
        "Price must have at most 2 decimals"
    );
    assert!(!browser.has("#title-error"));
    browser.fill("#price", "12");
    browser.click("#title");
    assert_eq!(browser.value("#price"), "12.00");
    browser.click("form button[type=submit]");
    browser.wait_for_path("/");
    browser.wait_for_text("Chamber music");
    browser.wait_for_text("$12.00");
}

#[test]
fn an_unpaid_order_shows_order_expired_and_then_its_cancellation() {
    let app = spawn(6);
    let seller = app.signed_up("seller");
    let ticket = seller.sell("Last-minute gig", 15.0);

    let browser = buyer_ordering(&app, "expiry", &ticket);
    let left = countdown_seconds(&browser);
    assert!((1..=6).contains(&left), "{left} seconds left");

    // At 0 the page says so, and once expiration has cancelled the order it says
    // that the ticket is for sale again.
    browser.wait_for_text("Order expired");
    assert!(!browser.has("form.pay"), "no payment after the deadline");
    browser.wait_for_text("Order expired. The ticket is for sale again.");
    browser.wait_for_text("Status: Cancelled");
    browser.goto("/orders");
    browser.wait_for_text("Cancelled");
    browser.goto("/");
    browser.wait_for_text("Last-minute gig");
}

#[test]
fn unknown_pages_and_ids_are_explained_not_broken() {
    let app = spawn(900);
    let browser = Browser::open("not-found", app.base_url());
    browser.goto("/no/such/page");
    browser.wait_for_text("Page not found");
    browser.goto("/tickets/does-not-exist");
    browser.wait_for_text("Ticket not found");
    browser.goto("/");
    sign_up(&browser, "curious@example.com");
    browser.goto("/orders/does-not-exist");
    browser.wait_for_text("Order not found");
    browser.goto("/orders");
    browser.wait_for_text("No orders yet.");
    // Signed out, the pages that need a session say how to get one.
    browser.goto("/auth/signout");
    browser.wait_for_text("Sign in");
    browser.goto("/tickets/new");
    browser.wait_for_text("to sell tickets.");
}

#[test]
fn with_stripe_the_card_field_comes_from_stripe_js_and_nothing_else_is_fetched() {
    let stripe = StripeStub::start("sk_test_browser");
    let app = spawn_with(Runtime::Host, 900, |app| {
        app.variable("payment_provider", "stripe")
            .variable("stripe_secret_key", "sk_test_browser")
            .variable("stripe_publishable_key", "pk_test_browser")
            .variable("stripe_api_base", &stripe.api_base())
    });
    let seller = app.signed_up("seller");
    let ticket = seller.sell("Stripe night", 30.0);

    let browser = buyer_ordering(&app, "stripe", &ticket);

    // No typed token: a card field for Stripe.js. The test's Chromium reaches only
    // 127.0.0.1, so Stripe.js cannot load, and the page says so instead of breaking.
    browser.wait_for_text("Stripe.js could not be loaded.");
    assert!(!browser.has("#token"));
    assert!(browser.has("#card-element"));
    // Real charges: no test-mode notice (the card field shows that the app has the
    // payments config the notice follows).
    assert_no_test_mode(&browser);
    let scripts: Value = browser
        .execute("return Array.from(document.scripts).map(s => s.src).filter(s => s.length > 0)");
    assert_eq!(scripts, json!(["https://js.stripe.com/v3/"]));
    assert!(stripe.charges().is_empty());
}

#[test]
fn without_a_payment_provider_the_order_page_says_so_and_claims_no_test_mode() {
    // Stripe named, and no secret key: payments refuse every payment.
    let app = spawn_with(Runtime::Host, 900, |app| {
        app.variable("payment_provider", "stripe")
            .variable("stripe_publishable_key", "pk_test_browser")
    });
    let seller = app.signed_up("seller");
    let ticket = seller.sell("Nobody pays tonight", 30.0);

    let browser = buyer_ordering(&app, "unconfigured", &ticket);
    browser.wait_for_text("Payments are not available: no payment provider is configured.");
    assert!(!browser.has("form.pay"), "no form that can only fail");
    assert!(!browser.has("#card-element"));
    assert_no_test_mode(&browser);
}
