//! Card entry through Stripe.js, used only when payments says the provider is Stripe:
//! the one outside script, loaded only then. The card number never touches this app;
//! Stripe.js turns it into a token, which the API charges.

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::JsCast;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;

const SCRIPT: &str = "https://js.stripe.com/v3/";

/// Stripe.js's objects for one card field.
#[derive(Clone)]
pub struct Card {
    stripe: JsValue,
    element: JsValue,
}

impl PartialEq for Card {
    fn eq(&self, other: &Card) -> bool {
        self.element == other.element
    }
}

fn get(target: &JsValue, name: &str) -> Result<JsValue, String> {
    Reflect::get(target, &JsValue::from_str(name)).map_err(|_| format!("Stripe.js has no {name}"))
}

fn call(target: &JsValue, name: &str, args: &[JsValue]) -> Result<JsValue, String> {
    let function: Function = get(target, name)?
        .dyn_into()
        .map_err(|_| format!("Stripe.js's {name} is not a function"))?;
    let args: js_sys::Array = args.iter().collect();
    function
        .apply(target, &args)
        .map_err(|_| format!("Stripe.js's {name} failed"))
}

/// Loads Stripe.js (once per page) and resolves when `window.Stripe` exists.
pub async fn load() -> Result<(), String> {
    let window = web_sys::window().ok_or("no window")?;
    if get(&window, "Stripe").is_ok_and(|stripe| stripe.is_function()) {
        return Ok(());
    }
    let document = window.document().ok_or("no document")?;
    let script = document
        .create_element("script")
        .map_err(|_| "no script element")?;
    script.set_attribute("src", SCRIPT).map_err(|_| "no src")?;
    let loaded = Promise::new(&mut |resolve, reject| {
        let _ = Reflect::set(&script, &"onload".into(), &resolve);
        let _ = Reflect::set(&script, &"onerror".into(), &reject);
    });
    document
        .head()
        .ok_or("no head")?
        .append_child(&script)
        .map_err(|_| "the script could not be added")?;
    JsFuture::from(loaded)
        .await
        .map(drop)
        .map_err(|_| "Stripe.js could not be loaded. Check your connection.".to_owned())
}

/// Mounts Stripe's card field into the element with `selector`.
pub fn mount(publishable_key: &str, selector: &str) -> Result<Card, String> {
    let window: JsValue = web_sys::window().ok_or("no window")?.into();
    let stripe = call(&window, "Stripe", &[publishable_key.into()])?;
    let elements = call(&stripe, "elements", &[])?;
    let element = call(&elements, "create", &["card".into()])?;
    call(&element, "mount", &[selector.into()])?;
    Ok(Card { stripe, element })
}

impl Card {
    /// The card's token, or Stripe's message for the buyer.
    pub async fn token(&self) -> Result<String, String> {
        let promise: Promise = call(
            &self.stripe,
            "createToken",
            std::slice::from_ref(&self.element),
        )?
        .dyn_into()
        .map_err(|_| "Stripe.js gave no promise".to_owned())?;
        let result = JsFuture::from(promise)
            .await
            .map_err(|_| "The card could not be checked.".to_owned())?;
        if let Ok(error) = get(&result, "error")
            && !error.is_undefined()
        {
            let message = get(&error, "message").ok().and_then(|m| m.as_string());
            return Err(message.unwrap_or_else(|| "The card was not accepted.".to_owned()));
        }
        get(&get(&result, "token")?, "id")?
            .as_string()
            .ok_or_else(|| "Stripe.js gave no token".to_owned())
    }
}
