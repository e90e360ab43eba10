//! Validation that reports every failed rule at once (API.md: one entry per rule, with
//! its field, in rule order), and the rules several services share.

use contract::http::ErrorEntry;

use crate::ApiError;

/// Collects the outcome of each field's rule; `into_error` is the one 400 for all.
#[derive(Debug, Default)]
pub struct Validator {
    failed: Vec<ErrorEntry>,
}

impl Validator {
    pub fn new() -> Validator {
        Validator::default()
    }

    /// The parsed value, or `None` after noting the rule's message for `field`.
    pub fn field<T>(&mut self, field: &str, parsed: Result<T, &'static str>) -> Option<T> {
        match parsed {
            Ok(value) => Some(value),
            Err(message) => {
                self.failed.push(ErrorEntry {
                    message: message.to_owned(),
                    field: Some(field.to_owned()),
                });
                None
            }
        }
    }

    /// [`required`]'s rule on `field`: the trimmed text, or `None` after noting `message`.
    pub fn required<'a>(
        &mut self,
        field: &str,
        value: Option<&'a str>,
        message: &'static str,
    ) -> Option<&'a str> {
        self.field(field, required(value, message))
    }

    pub fn has_failed(&self) -> bool {
        !self.failed.is_empty()
    }

    /// The 400 listing every failed rule.
    pub fn into_error(self) -> ApiError {
        ApiError::Validation(self.failed)
    }
}

/// A required text field: the value trimmed, unless it is missing, not a string
/// (`None`), or blank; then `message`.
pub fn required<'a>(
    value: Option<&'a str>,
    message: &'static str,
) -> Result<&'a str, &'static str> {
    value
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .ok_or(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_every_failure_in_rule_order() {
        let mut rules = Validator::new();
        assert_eq!(rules.field("a", Ok::<_, &str>(1)), Some(1));
        assert_eq!(rules.field::<u8>("b", Err("B is wrong")), None);
        assert_eq!(rules.field::<u8>("c", Err("C is wrong")), None);
        assert!(rules.has_failed());
        let ApiError::Validation(entries) = rules.into_error() else {
            panic!("a validation error")
        };
        let fields: Vec<_> = entries
            .iter()
            .map(|entry| (entry.field.as_deref(), entry.message.as_str()))
            .collect();
        assert_eq!(
            fields,
            [(Some("b"), "B is wrong"), (Some("c"), "C is wrong")]
        );
    }

    #[test]
    fn a_required_text_is_trimmed_and_not_blank() {
        assert_eq!(required(Some("  t1 "), "Id is required"), Ok("t1"));
        assert_eq!(
            required(Some(" \t\n"), "Id is required"),
            Err("Id is required")
        );
        assert_eq!(required(None, "Id is required"), Err("Id is required"));
        let mut rules = Validator::new();
        assert_eq!(
            rules.required("id", Some(" t1"), "Id is required"),
            Some("t1")
        );
        assert_eq!(rules.required("other", Some(""), "Other is required"), None);
        let ApiError::Validation(entries) = rules.into_error() else {
            panic!("a validation error")
        };
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].field.as_deref(), Some("other"));
    }

    #[test]
    fn passes_when_every_rule_holds() {
        let mut rules = Validator::new();
        rules.field("a", Ok::<_, &str>(()));
        assert!(!rules.has_failed());
    }
}
