//! The options TorchServe registers a model with: one type, one name per
//! option (TorchServe's own), from the config file through the query to the
//! registry. The pure-Java endpoint's `min_worker` is accepted as an alias
//! of `initial_workers`, in the config and the query, and nowhere else.

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct RegisterOptions {
    /// Workers started when the model registers.
    #[serde(default = "default_initial_workers", alias = "min_worker")]
    pub initial_workers: u32,
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    #[serde(default = "default_max_batch_delay")]
    pub max_batch_delay: u32,
    #[serde(default = "default_response_timeout")]
    pub response_timeout: u32,
    #[serde(default = "default_startup_timeout")]
    pub startup_timeout: u32,
    #[serde(default)]
    pub handler: Option<String>,
    #[serde(default)]
    pub runtime: Option<String>,
    /// Whether registration waits for the workers to start.
    #[serde(default = "default_synchronous")]
    pub synchronous: bool,
}

fn default_initial_workers() -> u32 {
    1
}
fn default_batch_size() -> u32 {
    1
}
fn default_max_batch_delay() -> u32 {
    100
}
fn default_response_timeout() -> u32 {
    120
}
fn default_startup_timeout() -> u32 {
    120
}
fn default_synchronous() -> bool {
    true
}

impl Default for RegisterOptions {
    fn default() -> Self {
        RegisterOptions {
            initial_workers: default_initial_workers(),
            batch_size: default_batch_size(),
            max_batch_delay: default_max_batch_delay(),
            response_timeout: default_response_timeout(),
            startup_timeout: default_startup_timeout(),
            handler: None,
            runtime: None,
            synchronous: default_synchronous(),
        }
    }
}

/// TorchServe reads every number as a Java `int`.
const MAX_NUMBER: u32 = i32::MAX as u32;

/// An option's value as a request gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionValue {
    Number(u32),
    Text(String),
    Flag(bool),
}

/// Options a request sets, checked when parsed and applied later over the
/// config's (which is read after the query is checked).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    values: Vec<(&'static str, OptionValue)>,
}

impl Overrides {
    /// Adds `name = value`, refusing what `RegisterOptions::set` refuses.
    pub fn push(&mut self, name: &'static str, value: OptionValue) -> Result<()> {
        RegisterOptions::default().set(name, &value)?;
        self.values.push((name, value));
        Ok(())
    }

    pub fn apply(&self, base: &RegisterOptions) -> Result<RegisterOptions> {
        let mut options = base.clone();
        for (name, value) in &self.values {
            options.set(name, value)?;
        }
        Ok(options)
    }
}

impl RegisterOptions {
    /// Query parameter names, aliases included: the REST API's edge.
    pub const QUERY_NAMES: &'static [&'static str] = &[
        "initial_workers",
        "min_worker",
        "batch_size",
        "max_batch_delay",
        "response_timeout",
        "startup_timeout",
        "handler",
        "runtime",
        "synchronous",
    ];

    /// Whether `name` is a number, text or flag option (None: not one).
    pub fn value_type(name: &str) -> Option<&'static str> {
        match name {
            "initial_workers" | "min_worker" | "batch_size" | "max_batch_delay"
            | "response_timeout" | "startup_timeout" => Some("number"),
            "handler" | "runtime" => Some("text"),
            "synchronous" => Some("flag"),
            _ => None,
        }
    }

    /// Overrides one option by its query name.
    pub fn set(&mut self, name: &str, value: &OptionValue) -> Result<()> {
        use OptionValue::{Flag, Number, Text};
        match (name, value) {
            ("initial_workers" | "min_worker", Number(n)) => self.initial_workers = *n,
            ("batch_size", Number(0)) => {
                return Err(CoreError::invalid("batch_size", "must be at least 1"))
            }
            (_, Number(n)) if *n > MAX_NUMBER => {
                return Err(CoreError::invalid(
                    name,
                    format!("{n} is larger than {MAX_NUMBER} (TorchServe takes a Java int)"),
                ))
            }
            ("batch_size", Number(n)) => self.batch_size = *n,
            ("max_batch_delay", Number(n)) => self.max_batch_delay = *n,
            ("response_timeout", Number(n)) => self.response_timeout = *n,
            ("startup_timeout", Number(n)) => self.startup_timeout = *n,
            ("handler", Text(t)) => self.handler = Some(t.clone()),
            ("runtime", Text(t)) => self.runtime = Some(t.clone()),
            ("synchronous", Flag(f)) => self.synchronous = *f,
            (other, _) => {
                return Err(CoreError::Internal(format!(
                    "register option {other:?} given with the wrong type"
                )))
            }
        }
        Ok(())
    }

    /// `(name, value)` pairs in TorchServe's spelling, unset ones left out:
    /// what the management API's query and the JVM registry receive.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![
            ("initial_workers", self.initial_workers.to_string()),
            ("batch_size", self.batch_size.to_string()),
            ("max_batch_delay", self.max_batch_delay.to_string()),
            ("response_timeout", self.response_timeout.to_string()),
            ("startup_timeout", self.startup_timeout.to_string()),
            ("synchronous", self.synchronous.to_string()),
        ];
        if let Some(handler) = &self.handler {
            pairs.push(("handler", handler.clone()));
        }
        if let Some(runtime) = &self.runtime {
            pairs.push(("runtime", runtime.clone()));
        }
        pairs
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.batch_size == 0 {
            return Err("key 'batch_size': must be at least 1".into());
        }
        for (key, value) in self.numbers() {
            if value > MAX_NUMBER {
                return Err(format!(
                    "key '{key}': {value} is larger than {MAX_NUMBER} (TorchServe takes a Java int)"
                ));
            }
        }
        Ok(())
    }

    fn numbers(&self) -> [(&'static str, u32); 5] {
        [
            ("initial_workers", self.initial_workers),
            ("batch_size", self.batch_size),
            ("max_batch_delay", self.max_batch_delay),
            ("response_timeout", self.response_timeout),
            ("startup_timeout", self.startup_timeout),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_query_name_has_a_type_and_a_setter() {
        for name in RegisterOptions::QUERY_NAMES {
            let mut options = RegisterOptions::default();
            let value = match RegisterOptions::value_type(name) {
                Some("number") => OptionValue::Number(7),
                Some("text") => OptionValue::Text("x".into()),
                Some("flag") => OptionValue::Flag(false),
                other => panic!("{name}: {other:?}"),
            };
            options.set(name, &value).unwrap();
            assert_ne!(
                options,
                RegisterOptions::default(),
                "{name} changed nothing"
            );
        }
    }

    #[test]
    fn pairs_use_torchserve_names_and_leave_out_unset_text() {
        let mut options = RegisterOptions::default();
        let names: Vec<_> = options.pairs().into_iter().map(|(n, _)| n).collect();
        assert!(!names.contains(&"handler"));
        options.set("min_worker", &OptionValue::Number(3)).unwrap();
        options
            .set("handler", &OptionValue::Text("h".into()))
            .unwrap();
        let pairs = options.pairs();
        assert!(pairs.contains(&("initial_workers", "3".to_string())));
        assert!(pairs.contains(&("handler", "h".to_string())));
        assert!(options.set("batch_size", &OptionValue::Number(0)).is_err());
        let mut overrides = Overrides::default();
        assert!(overrides
            .push("batch_size", OptionValue::Number(0))
            .is_err());
        overrides
            .push("batch_size", OptionValue::Number(8))
            .unwrap();
        assert_eq!(overrides.apply(&options).unwrap().batch_size, 8);
    }
}
