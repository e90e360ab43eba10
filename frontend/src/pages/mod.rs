//! One module per page, and the small pieces they share.

pub mod auth;
pub mod home;
pub mod new_ticket;
pub mod order;
pub mod orders;
pub mod ticket;

use yew::prelude::*;

use crate::api::ApiError;

/// The messages of an error that belong to no field, as an alert.
#[derive(Properties, PartialEq)]
pub struct ErrorsProps {
    pub error: Option<ApiError>,
}

#[function_component(Errors)]
pub fn errors(props: &ErrorsProps) -> Html {
    let Some(error) = &props.error else {
        return html! {};
    };
    let messages = error.general_messages();
    if messages.is_empty() {
        return html! {};
    }
    html! {
        <div class="alert" role="alert">
            <ul>{ for messages.into_iter().map(|message| html! { <li>{ message }</li> }) }</ul>
        </div>
    }
}

/// A labelled input with its field's error under it.
#[derive(Properties, PartialEq)]
pub struct FieldProps {
    pub id: AttrValue,
    pub label: AttrValue,
    #[prop_or(AttrValue::Static("text"))]
    pub kind: AttrValue,
    pub value: AttrValue,
    pub oninput: Callback<String>,
    #[prop_or_default]
    pub onblur: Option<Callback<()>>,
    #[prop_or_default]
    pub error: Option<AttrValue>,
    #[prop_or_default]
    pub autocomplete: Option<AttrValue>,
    #[prop_or_default]
    pub inputmode: Option<AttrValue>,
    #[prop_or_default]
    pub hint: Option<AttrValue>,
}

#[function_component(Field)]
pub fn field(props: &FieldProps) -> Html {
    let oninput = {
        let oninput = props.oninput.clone();
        Callback::from(move |event: InputEvent| {
            let input: web_sys::HtmlInputElement = event.target_unchecked_into();
            oninput.emit(input.value());
        })
    };
    let onblur = props
        .onblur
        .clone()
        .map(|onblur| Callback::from(move |_: FocusEvent| onblur.emit(())));
    let error_id = format!("{}-error", props.id);
    let hint_id = format!("{}-hint", props.id);
    let described = [
        props.error.as_ref().map(|_| error_id.clone()),
        props.hint.as_ref().map(|_| hint_id.clone()),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    html! {
        <div class={classes!("field", props.error.as_ref().map(|_| "invalid"))}>
            <label for={props.id.clone()}>{ props.label.clone() }</label>
            <input
                id={props.id.clone()}
                name={props.id.clone()}
                type={props.kind.clone()}
                value={props.value.clone()}
                autocomplete={props.autocomplete.clone()}
                inputmode={props.inputmode.clone()}
                aria-invalid={props.error.as_ref().map(|_| "true")}
                aria-describedby={(!described.is_empty()).then_some(described)}
                {oninput}
                {onblur}
            />
            if let Some(hint) = &props.hint {
                <p class="hint" id={hint_id}>{ hint.clone() }</p>
            }
            if let Some(error) = &props.error {
                <p class="field-error" id={error_id}>{ error.clone() }</p>
            }
        </div>
    }
}

/// "Loading…", for screen readers too.
#[function_component(Loading)]
pub fn loading() -> Html {
    html! { <p class="loading" role="status">{ "Loading…" }</p> }
}

/// The field's message in an error, as a prop.
pub fn field_error(error: &Option<ApiError>, field: &str) -> Option<AttrValue> {
    error
        .as_ref()
        .and_then(|error| error.for_field(field))
        .map(|message| AttrValue::from(message.to_owned()))
}
