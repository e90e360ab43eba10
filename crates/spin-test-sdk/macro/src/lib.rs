//! `#[spin_test]` (re-exported by `spin-test-sdk`): exports a test function as the
//! component function `spin-test-<name>`, the name spin-test's runner finds a test by.
//!
//! Each test gets its own little world, `export spin-test-<name>: func();`, bound by
//! `wit_bindgen::generate!` in a private module beside the function. Every such
//! `generate!` leaves a `component-type` custom section in the module; when the module
//! becomes a component, wit-component merges them (and the SDK's imports) into one
//! world that exports every test.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::{format_ident, quote};
use syn::ext::IdentExt;
use syn::{ItemFn, LitStr, ReturnType, Signature, Type};

/// The prefix of a test's export, by which spin-test tells tests from other exports.
const PREFIX: &str = "spin-test-";

/// Exports `fn <name>()` as the test `spin-test-<name>` (its `_`s as `-`s). A test
/// takes nothing, returns nothing and fails by panicking. Its name must make a WIT
/// name: each `_`-separated word starts with a lowercase letter and holds only
/// lowercase letters and digits (`status_is_402` is fine, `gives_402` is not). It must
/// be an item of a module, not of a function's body: its export, in a module of its own
/// beside it, calls it as `super::<name>`.
#[proc_macro_attribute]
pub fn spin_test(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

fn expand(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    if !attr.is_empty() {
        return Err(syn::Error::new_spanned(
            attr,
            "`#[spin_test]` takes no arguments",
        ));
    }
    let test: ItemFn = syn::parse2(item)?;
    check_signature(&test.sig)?;
    let ident = &test.sig.ident;
    let name = ident.unraw().to_string();
    let export = export_name(&name).map_err(|message| syn::Error::new(ident.span(), message))?;

    let wit = LitStr::new(
        &format!("package spin-test-sdk:{export}; world {export} {{ export {export}: func(); }}"),
        ident.span(),
    );
    // A module of the test's own, and the name `generate!` gives the export's method in
    // the trait `Guest` (`spin-test-a-b` → `spin_test_a_b`, valid names being lowercase).
    let module = format_ident!("__spin_test_{}", name);
    let method = format_ident!("{}", export.replace('-', "_"));
    Ok(quote! {
        #test

        #[doc(hidden)]
        mod #module {
            ::spin_test_sdk::wit_bindgen::generate!({
                inline: #wit,
                runtime_path: "::spin_test_sdk::wit_bindgen::rt",
            });

            struct Test;

            impl Guest for Test {
                fn #method() {
                    super::#ident()
                }
            }

            export!(Test);
        }
    })
}

/// A test is a plain `fn name()`: spin-test calls it with nothing and expects nothing.
fn check_signature(sig: &Signature) -> syn::Result<()> {
    let fail =
        |tokens: &dyn quote::ToTokens, message: &str| Err(syn::Error::new_spanned(tokens, message));
    if let Some(asyncness) = &sig.asyncness {
        return fail(asyncness, "a spin-test test cannot be `async`");
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return fail(&sig.generics, "a spin-test test cannot be generic");
    }
    if !sig.inputs.is_empty() {
        return fail(&sig.inputs, "a spin-test test takes no arguments");
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        let is_unit = matches!(&**ty, Type::Tuple(tuple) if tuple.elems.is_empty());
        if !is_unit {
            return fail(
                ty,
                "a spin-test test returns nothing: it fails by panicking",
            );
        }
    }
    Ok(())
}

/// `status_is_ok` → `spin-test-status-is-ok`, or why the name cannot make a WIT name
/// (whose words, `-`-separated, each start with a letter).
fn export_name(name: &str) -> Result<String, String> {
    let bad_word = name.split('_').find(|word| {
        !word.starts_with(|c: char| c.is_ascii_lowercase())
            || !word
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    });
    match bad_word {
        None => Ok(format!("{PREFIX}{}", name.replace('_', "-"))),
        Some(word) => {
            let problem = if word.is_empty() {
                "one is empty (a leading, trailing or doubled `_`)".to_owned()
            } else {
                format!("`{word}` does not")
            };
            Err(format!(
                "`{name}` cannot name a spin-test test: it is exported as \
                 `{PREFIX}{kebab}`, which must be a WIT name: every `_`-separated word \
                 starts with a lowercase letter and holds only lowercase letters and \
                 digits, and {problem} (`status_is_402`, say, not `gives_402`)",
                kebab = name.replace('_', "-"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_kebab_case_exports() {
        assert_eq!(export_name("config").unwrap(), "spin-test-config");
        assert_eq!(
            export_name("config_names_the_provider").unwrap(),
            "spin-test-config-names-the-provider"
        );
        assert_eq!(export_name("http2_is_ok").unwrap(), "spin-test-http2-is-ok");
    }

    #[test]
    fn names_that_are_not_wit_names_are_refused() {
        for (name, word) in [
            ("gives_402", "`402`"),
            ("Config", "`Config`"),
            ("config_OK", "`OK`"),
            ("_config", "one is empty"),
            ("config__ok", "one is empty"),
            ("config_", "one is empty"),
            ("café", "`café`"),
        ] {
            let err = export_name(name).unwrap_err();
            assert!(err.contains(word), "{name}: {err}");
            assert!(err.contains(&format!("`{name}` cannot name")), "{err}");
        }
    }

    #[test]
    fn a_test_gets_its_own_world_and_export() {
        let tokens = expand(
            TokenStream2::new(),
            quote! { fn config_is_ok() { assert!(true); } },
        )
        .unwrap()
        .to_string();
        assert!(tokens.contains("fn config_is_ok ()"), "{tokens}");
        assert!(tokens.contains("mod __spin_test_config_is_ok"), "{tokens}");
        assert!(
            tokens.contains(
                r#""package spin-test-sdk:spin-test-config-is-ok; world spin-test-config-is-ok { export spin-test-config-is-ok: func(); }""#
            ),
            "{tokens}"
        );
        assert!(
            tokens.contains("fn spin_test_config_is_ok () { super :: config_is_ok () }"),
            "{tokens}"
        );
        assert!(tokens.contains("export ! (Test)"), "{tokens}");
    }

    #[test]
    fn raw_identifiers_lose_their_prefix() {
        let tokens = expand(TokenStream2::new(), quote! { fn r#match() {} })
            .unwrap()
            .to_string();
        assert!(
            tokens.contains("export spin-test-match: func();"),
            "{tokens}"
        );
        assert!(tokens.contains("super :: r#match ()"), "{tokens}");
    }

    #[test]
    fn an_invalid_name_is_an_error_at_the_name() {
        let err = expand(TokenStream2::new(), quote! { fn gives_402() {} }).unwrap_err();
        assert!(err.to_string().contains("`gives_402` cannot name"), "{err}");
        let compile_error = err.into_compile_error().to_string();
        assert!(compile_error.contains("compile_error"), "{compile_error}");
    }

    #[test]
    fn only_plain_functions_are_tests() {
        for (item, expected) in [
            (quote! { async fn config() {} }, "cannot be `async`"),
            (quote! { fn config<T>() {} }, "cannot be generic"),
            (quote! { fn config(x: u32) {} }, "takes no arguments"),
            (quote! { fn config() -> bool { true } }, "returns nothing"),
        ] {
            let err = expand(TokenStream2::new(), item).unwrap_err();
            assert!(err.to_string().contains(expected), "{err}");
        }
        assert!(expand(TokenStream2::new(), quote! { fn config() -> () {} }).is_ok());
        let err = expand(quote! { name = "x" }, quote! { fn config() {} }).unwrap_err();
        assert!(err.to_string().contains("takes no arguments"), "{err}");
    }
}
