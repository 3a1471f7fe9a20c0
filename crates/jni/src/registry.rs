//! Registers models with the TorchServe that hosts us, through the static
//! methods of `org.dragonflyoss.torchserve.TorchServeModels` (which call
//! TorchServe's own `ApiUtils`). This works with TorchServe 0.12's defaults:
//! token auth on and the model API off, because nothing goes over HTTP.
//!
//! Calls run on tokio's blocking threads, attached to the JVM for the call,
//! so several models register at once and the runtime is never blocked.

use std::sync::OnceLock;

use dragonfly_endpoint_core::error::{CoreError, Result};
use dragonfly_endpoint_core::registry::{BoxFuture, ModelRegistry, RegisterRequest};
use jni::objects::{JClass, JObject, JString, JValue};
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

    /// Runs `call` on a blocking thread attached to the JVM.
    async fn with_jvm<T, F>(&self, model: &str, call: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Env<'_>, &Global<JClass<'static>>) -> std::result::Result<T, BridgeError>
            + Send
            + 'static,
    {
        let class = self.class;
        let model = model.to_string();
        let joined = tokio::task::spawn_blocking(move || {
            let vm = JavaVM::singleton().map_err(BridgeError::from)?;
            vm.attach_current_thread(|env| call(env, class))
        })
        .await;
        match joined {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(CoreError::Registration {
                model,
                status: 500,
                message: format!("calling TorchServe failed: {err}"),
            }),
            Err(err) => Err(CoreError::Internal(format!("registry thread: {err}"))),
        }
    }
}

fn java_string<'local>(
    env: &mut Env<'local>,
    value: Option<&str>,
) -> jni::errors::Result<JObject<'local>> {
    match value {
        Some(text) => Ok(JString::from_str(env, text)?.into()),
        None => Ok(JObject::null()),
    }
}

/// Reads the `"<status>\n<message>"` the Java side answers.
fn status_and_message(
    env: &mut Env<'_>,
    value: JObject<'_>,
) -> std::result::Result<(u16, String), BridgeError> {
    let text: JString = env.cast_local::<JString>(value)?;
    let text = text.try_to_string(env)?;
    let (status, message) = text.split_once('\n').unwrap_or(("500", text.as_str()));
    let status = status
        .trim()
        .parse()
        .map_err(|_| BridgeError::Argument(format!("bad status from Java: {status:?}")))?;
    Ok((status, message.to_string()))
}

fn outcome(model: &str, (status, message): (u16, String)) -> Result<String> {
    match status {
        200..=299 => Ok(message),
        404 => Err(CoreError::NotFound(format!("model {model:?}: {message}"))),
        _ => Err(CoreError::Registration {
            model: model.to_string(),
            status,
            message,
        }),
    }
}

impl ModelRegistry for JvmRegistry {
    fn register<'a>(&'a self, request: &'a RegisterRequest) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let r = request.clone();
            let answer = self
                .with_jvm(&request.model_name, move |env, class| {
                    let url = java_string(env, Some(&r.url))?;
                    let name = java_string(env, Some(&r.model_name))?;
                    let handler = java_string(env, r.handler.as_deref())?;
                    let runtime = java_string(env, r.runtime.as_deref())?;
                    let to_int = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
                    let value = env.call_static_method(
                        class,
                        jni_str!("register"),
                        jni_sig!(
                            (java.lang.String, java.lang.String, java.lang.String, java.lang.String,
                             jint, jint, jint, jint, jint, jboolean) -> java.lang.String
                        ),
                        &[
                            JValue::Object(&url),
                            JValue::Object(&name),
                            JValue::Object(&handler),
                            JValue::Object(&runtime),
                            JValue::Int(to_int(r.batch_size)),
                            JValue::Int(to_int(r.max_batch_delay)),
                            JValue::Int(to_int(r.response_timeout)),
                            JValue::Int(to_int(r.startup_timeout)),
                            JValue::Int(to_int(r.initial_workers)),
                            JValue::Bool(r.synchronous),
                        ],
                    )?;
                    status_and_message(env, value.l()?)
                })
                .await?;
            outcome(&request.model_name, answer)
        })
    }

    fn unregister<'a>(&'a self, model_name: &'a str) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let name_arg = model_name.to_string();
            let answer = self
                .with_jvm(model_name, move |env, class| {
                    let name = java_string(env, Some(&name_arg))?;
                    let value = env.call_static_method(
                        class,
                        jni_str!("unregister"),
                        jni_sig!((java.lang.String) -> java.lang.String),
                        &[JValue::Object(&name)],
                    )?;
                    status_and_message(env, value.l()?)
                })
                .await?;
            outcome(model_name, answer)
        })
    }

    fn is_registered<'a>(&'a self, model_name: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let name_arg = model_name.to_string();
            self.with_jvm(model_name, move |env, class| {
                let name = java_string(env, Some(&name_arg))?;
                let value = env.call_static_method(
                    class,
                    jni_str!("isRegistered"),
                    jni_sig!((java.lang.String) -> jboolean),
                    &[JValue::Object(&name)],
                )?;
                Ok(value.z()?)
            })
            .await
        })
    }
}
