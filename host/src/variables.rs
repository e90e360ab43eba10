//! Application variables: their values (a `SPIN_VARIABLE_<NAME>` environment variable,
//! else the manifest's default), and `{{ name }}` templates over them.

use std::collections::BTreeMap;
use std::fmt;

use anyhow::{Result, bail, ensure};

use spin_manifest::check_variable_name as check_name;

use crate::manifest::VariableDef;

/// A string with `{{ name }}` references to application variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Variable(String),
}

impl Template {
    pub fn parse(text: &str) -> Result<Template> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Literal(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                bail!("`{text}`: `{{{{` without a closing `}}}}`");
            };
            let name = after[..end].trim();
            check_name(name)?;
            parts.push(Part::Variable(name.to_owned()));
            rest = &after[end + 2..];
        }
        ensure!(
            !rest.contains("}}"),
            "`{text}`: `}}}}` without an opening `{{{{`"
        );
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    /// The variable names the template refers to.
    pub fn references(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|part| match part {
            Part::Variable(name) => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    pub fn render(&self, values: &Values) -> String {
        self.parts
            .iter()
            .map(|part| match part {
                Part::Literal(text) => text.as_str(),
                Part::Variable(name) => values.get(name),
            })
            .collect()
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Literal(text) => f.write_str(text)?,
                Part::Variable(name) => write!(f, "{{{{ {name} }}}}")?,
            }
        }
        Ok(())
    }
}

/// The resolved value of every application variable.
#[derive(Debug, Clone, Default)]
pub struct Values {
    values: BTreeMap<String, String>,
}

impl Values {
    /// Resolves every variable: the environment (`SPIN_VARIABLE_<NAME>`) wins over the
    /// default. A required variable with no value stops the app at start, as in Spin.
    pub fn resolve(
        definitions: &BTreeMap<String, VariableDef>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Values> {
        let mut values = BTreeMap::new();
        let mut missing = Vec::new();
        for (name, definition) in definitions {
            let from_env = env(&format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase()));
            match from_env.or_else(|| definition.default.clone()) {
                Some(value) => {
                    values.insert(name.clone(), value);
                }
                None => missing.push(name.as_str()),
            }
        }
        ensure!(
            missing.is_empty(),
            "no provider resolved required variable(s): [{}] (set SPIN_VARIABLE_{} or give a default)",
            missing.join(", "),
            missing[0].to_ascii_uppercase()
        );
        Ok(Values { values })
    }

    fn get(&self, name: &str) -> &str {
        // Templates are checked against the declared variables when the manifest
        // loads, and every declared variable has a value once resolved.
        self.values
            .get(name)
            .map(String::as_str)
            .expect("templates refer only to declared, resolved variables")
    }
}

/// `fermyon:spin/variables@2.0.0`: a component reads its own variables (rendered at
/// start from their templates), never the application's directly.
mod host {
    use crate::bindings::spin::variables::{Error, Host};
    use crate::state::State;

    impl Host for State {
        async fn get(&mut self, name: String) -> Result<String, Error> {
            if let Err(err) = super::check_name(&name) {
                return Err(Error::InvalidName(err.to_string()));
            }
            self.component.variables.get(&name).cloned().ok_or_else(|| {
                Error::Undefined(format!("no variable for {:?}.{name:?}", self.component.id))
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definitions() -> BTreeMap<String, VariableDef> {
        let var = |default: Option<&str>| VariableDef {
            default: default.map(str::to_owned),
            required: default.is_none(),
            secret: false,
        };
        BTreeMap::from([
            ("jwt_key".to_owned(), var(None)),
            ("redis_url".to_owned(), var(Some("redis://127.0.0.1:6379"))),
        ])
    }

    #[test]
    fn templates_render_with_environment_over_defaults() {
        let values = Values::resolve(&definitions(), |name| match name {
            "SPIN_VARIABLE_JWT_KEY" => Some("secret".into()),
            _ => None,
        })
        .unwrap();
        let template = Template::parse("key={{ jwt_key }} at {{redis_url}}/0").unwrap();
        assert_eq!(
            template.render(&values),
            "key=secret at redis://127.0.0.1:6379/0"
        );
        assert_eq!(
            template.to_string(),
            "key={{ jwt_key }} at {{ redis_url }}/0"
        );
    }

    #[test]
    fn a_missing_required_variable_stops_the_app() {
        let err = Values::resolve(&definitions(), |_| None).unwrap_err();
        assert!(
            err.to_string()
                .contains("no provider resolved required variable(s): [jwt_key]"),
            "{err}"
        );
    }

    #[test]
    fn malformed_templates_and_names_are_rejected() {
        for bad in ["{{ jwt_key", "x }}", "{{ JWT }}", "{{ }}", "{{ a-b }}"] {
            assert!(Template::parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}
