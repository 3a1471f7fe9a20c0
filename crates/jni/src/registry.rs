//! Registers models with the TorchServe that hosts us, through the static
//! methods of `org.dragonflyoss.torchserve.TorchServeModels` (which call
//! TorchServe's own `ApiUtils`). This works with TorchServe 0.12's defaults:
//! token auth on and the model API off, because nothing goes over HTTP.
//!
//! Java answers `"<status>\n<exception>\n<message>"` (status or exception
//! empty) and never throws; what an answer means is decided in the core's
//! `register::outcome`, the same table the HTTP registry uses.
//!
//! Calls run on tokio's blocking threads, attached to the JVM for the call,
//! so several models register at once and the runtime is never blocked.

use std::sync::OnceLock;

use dragonfly_endpoint_core::error::{CoreError, Result};
use dragonfly_endpoint_core::register::outcome::{self, Answer};
use dragonfly_endpoint_core::register::{ModelRegistry, RegisterRequest};
use dragonfly_endpoint_core::BoxFuture;
use jni::objects::{JClass, JObject, JObjectArray, JString, JValue};
use jni::refs::Global;
use jni::{jni_sig, jni_str, Env, JavaVM};

use crate::BridgeError;

/// The class, looked up once from a Java thread: JNI threads attached from
/// Rust only see the system class loader.
fn models_class(
    env: &mut Env<'_>,
) -> std::result::Result<&'static Global<JClass<'static>>, BridgeError> {
    static CLASS: OnceLock<Global<JClass<'static>>> = OnceLock::new();
    if let Some(class) = CLASS.get() {
        return Ok(class);
    }
    let local = env.find_class(jni_str!("org/dragonflyoss/torchserve/TorchServeModels"))?;
    let global = env.new_global_ref(&local)?;
    Ok(CLASS.get_or_init(|| global))
}

pub struct JvmRegistry {
    class: &'static Global<JClass<'static>>,
}

impl JvmRegistry {
    pub fn new(env: &mut Env<'_>) -> std::result::Result<Self, BridgeError> {
        Ok(JvmRegistry {
            class: models_class(env)?,
        })
    }

    /// Calls `TorchServeModels.<method>(args)` on a blocking thread attached
    /// to the JVM and reads its answer. A Java exception left pending (the
    /// Java side catches everything, but a JNI failure can still raise one)
    /// is cleared, so the pooled thread stays usable.
    async fn call(&self, model: &str, method: &'static str, args: Args) -> Result<Answer> {
        let class = self.class;
        let joined = tokio::task::spawn_blocking(move || {
            let vm = JavaVM::singleton().map_err(BridgeError::from)?;
            vm.attach_current_thread(|env| {
                let answer = invoke(env, class, method, &args);
                if env.exception_check() {
                    env.exception_clear();
                }
                answer
            })
        })
        .await;
        match joined {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(err)) => Err(CoreError::Registration {
                model: model.to_string(),
                status: 500,
                message: format!("calling TorchServe failed: {err}"),
            }),
            Err(err) => Err(CoreError::Internal(format!("registry thread: {err}"))),
        }
    }
}

/// The arguments of one call into `TorchServeModels`.
enum Args {
    /// `register(url, modelName, options)`: options as name/value pairs.
    Register {
        url: String,
        model_name: String,
        options: Vec<String>,
    },
    /// `unregister(modelName)` or `isRegistered(modelName)`.
    Model(String),
}

fn invoke(
    env: &mut Env<'_>,
    class: &Global<JClass<'static>>,
    method: &'static str,
    args: &Args,
) -> std::result::Result<Answer, BridgeError> {
    let value = match args {
        Args::Register {
            url,
            model_name,
            options,
        } => {
            let url = JString::from_str(env, url)?;
            let name = JString::from_str(env, model_name)?;
            let empty = JString::from_str(env, "")?;
            let pairs = JObjectArray::<JString>::new(env, options.len(), &empty)?;
            for (i, text) in options.iter().enumerate() {
                let element = JString::from_str(env, text)?;
                pairs.set_element(env, i, &element)?;
            }
            env.call_static_method(
                class,
                jni_str!("register"),
                jni_sig!((java.lang.String, java.lang.String, java.lang.String[]) -> java.lang.String),
                &[
                    JValue::Object(&url),
                    JValue::Object(&name),
                    JValue::Object(&pairs),
                ],
            )?
        }
        Args::Model(model_name) => {
            let name = JString::from_str(env, model_name)?;
            let method = match method {
                "unregister" => jni_str!("unregister"),
                _ => jni_str!("isRegistered"),
            };
            env.call_static_method(
                class,
                method,
                jni_sig!((java.lang.String) -> java.lang.String),
                &[JValue::Object(&name)],
            )?
        }
    };
    read_answer(env, value.l()?)
}

/// Reads `"<status>\n<exception>\n<message>"`.
fn read_answer(env: &mut Env<'_>, value: JObject<'_>) -> std::result::Result<Answer, BridgeError> {
    let text: JString = env.cast_local::<JString>(value)?;
    let text = text.try_to_string(env)?;
    parse_answer(&text)
}

fn parse_answer(text: &str) -> std::result::Result<Answer, BridgeError> {
    let mut parts = text.splitn(3, '\n');
    let (status, exception, message) = (parts.next(), parts.next(), parts.next());
    let status = match status.map(str::trim) {
        None | Some("") => None,
        Some(code) => Some(
            code.parse()
                .map_err(|_| BridgeError::Argument(format!("bad status from Java: {code:?}")))?,
        ),
    };
    Ok(Answer {
        status,
        exception: exception.filter(|e| !e.is_empty()).map(str::to_string),
        message: message.unwrap_or_default().to_string(),
    })
}

impl ModelRegistry for JvmRegistry {
    fn register<'a>(&'a self, request: &'a RegisterRequest) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let name = &request.model_name;
            let options = request
                .options
                .pairs()
                .into_iter()
                .flat_map(|(name, value)| [name.to_string(), value])
                .collect();
            let args = Args::Register {
                url: request.url.clone(),
                model_name: name.clone(),
                options,
            };
            let answer = self.call(name, "register", args).await?;
            if answer.may_leave_model_behind() && self.is_registered(name).await.unwrap_or(false) {
                // Workers failed to start: leave nothing half-registered.
                if let Err(err) = self.unregister(name).await {
                    tracing::warn!("cleaning up the failed registration of {name:?}: {err}");
                }
            }
            outcome::registered(name, answer)
        })
    }

    fn unregister<'a>(&'a self, model_name: &'a str) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let args = Args::Model(model_name.to_string());
            let answer = self.call(model_name, "unregister", args).await?;
            outcome::unregistered(model_name, answer)
        })
    }

    fn is_registered<'a>(&'a self, model_name: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let args = Args::Model(model_name.to_string());
            let answer = self.call(model_name, "isRegistered", args).await?;
            outcome::is_registered(model_name, answer)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_answers_are_read() {
        let thrown = parse_answer("\nConflictStatusException\nalready there\nsecond line")
            .expect("an exception answer");
        assert_eq!(thrown.status, None);
        assert_eq!(thrown.exception.as_deref(), Some("ConflictStatusException"));
        assert_eq!(thrown.message, "already there\nsecond line");
        let ok = parse_answer("200\n\nModel \"a\" registered").expect("a status answer");
        assert_eq!((ok.status, ok.exception), (Some(200), None));
        assert!(parse_answer("x\n\n").is_err());
    }
}
