//! Turning a wasip1 module into a component: the preview1 adapter (the reactor
//! flavour, as Spin components export functions rather than `_start`), as Spin does
//! when it loads a module.

use std::borrow::Cow;

use anyhow::Result;

/// `wasm` as a component: a component as it is, a wasip1 module componentized.
pub fn component_of(wasm: &[u8]) -> Result<Cow<'_, [u8]>> {
    if wasmparser::Parser::is_component(wasm) {
        Ok(Cow::Borrowed(wasm))
    } else {
        componentize(wasm).map(Cow::Owned)
    }
}

/// Wraps a wasip1 module into a component with the preview1 adapter.
pub fn componentize(module: &[u8]) -> Result<Vec<u8>> {
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(module)?
        .adapter(
            "wasi_snapshot_preview1",
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )?
        .encode()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest wasip1 module: no imports, no exports.
    const EMPTY_MODULE: &[u8] = b"\0asm\x01\0\0\0";

    #[test]
    fn a_module_becomes_a_component_and_a_component_stays_as_it_is() {
        let component = component_of(EMPTY_MODULE).unwrap();
        assert!(matches!(component, Cow::Owned(_)));
        assert!(wasmparser::Parser::is_component(&component));
        let again = component_of(&component).unwrap();
        assert!(matches!(again, Cow::Borrowed(_)));
        assert_eq!(&again[..], &component[..]);
    }

    #[test]
    fn what_is_not_wasm_is_an_error() {
        assert!(component_of(b"not wasm").is_err());
    }
}
