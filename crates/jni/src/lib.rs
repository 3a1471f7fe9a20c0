//! The JNI bridge: the only crate that knows about Java.
//!
//! One native method, `NativeBridge.handle(method, path, query, modelStore,
//! properties)`, returns `"<status>\n<content type>\n<body>"`. Domain errors, and a
//! panic inside the core, come back as a status and TorchServe-style JSON
//! built by the core; only faults of the bridge itself (bad arguments, JNI
//! failures) throw, as `NativeBridgeException`, which the Java endpoint
//! turns into a 500 JSON answer.
//!
//! Keep the Java declarations in `java-plugin/.../NativeBridge.java` and
//! `TorchServeModels.java` in sync with the names and signatures here.
#![deny(clippy::unwrap_used)]

mod logging;
mod registry;

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use dragonfly_endpoint_core::api::query::Query;
use dragonfly_endpoint_core::api::{self, ApiResponse, HostContext};
use dragonfly_endpoint_core::error::ErrorBody;
use jni::errors::ErrorPolicy;
use jni::objects::{JClass, JObjectArray, JString};
use jni::{jni_str, Env, EnvUnowned};

use crate::registry::JvmRegistry;

/// Faults of the bridge itself, as opposed to errors of a request.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("JNI: {0}")]
    Jni(#[from] jni::errors::Error),
    #[error("bad argument from Java: {0}")]
    Argument(String),
    #[error("could not start the async runtime: {0}")]
    Runtime(String),
}

/// The process-wide runtime: every request of the JVM shares its threads.
fn runtime() -> Result<&'static tokio::runtime::Runtime, BridgeError> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .thread_name("dragonfly-endpoint")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| BridgeError::Runtime(e.clone()))
}

fn string_arg(env: &Env<'_>, value: &JString<'_>, name: &str) -> Result<String, BridgeError> {
    if value.is_null() {
        return Err(BridgeError::Argument(format!("{name} is null")));
    }
    Ok(value.try_to_string(env)?)
}

/// `[k1, v1, k2, v2, ...]` from Java into pairs.
fn pairs_arg(
    env: &mut Env<'_>,
    array: &JObjectArray<'_, JString<'_>>,
    name: &str,
) -> Result<Vec<(String, String)>, BridgeError> {
    if array.is_null() {
        return Ok(Vec::new());
    }
    let len = array.len(env)?;
    if len % 2 != 0 {
        return Err(BridgeError::Argument(format!(
            "{name} must hold name/value pairs"
        )));
    }
    let mut pairs = Vec::with_capacity(len / 2);
    for i in (0..len).step_by(2) {
        let key = array.get_element(env, i)?;
        let value = array.get_element(env, i + 1)?;
        pairs.push((string_arg(env, &key, name)?, string_arg(env, &value, name)?));
    }
    Ok(pairs)
}

/// `"<status>\n<content type>\n<body>"`.
fn encode(response: &ApiResponse) -> String {
    format!(
        "{}\n{}\n{}",
        response.status,
        response.content_type,
        response.text_body()
    )
}

/// `static native String handle(String method, String path, String[] query,
/// String modelStore, String[] properties)` of
/// `org.dragonflyoss.torchserve.NativeBridge`.
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_dragonflyoss_torchserve_NativeBridge_handle<'local>(
    mut unowned_env: EnvUnowned<'local>,
    _class: JClass<'local>,
    method: JString<'local>,
    path: JString<'local>,
    query: JObjectArray<'local, JString<'local>>,
    model_store: JString<'local>,
    properties: JObjectArray<'local, JString<'local>>,
) -> JString<'local> {
    unowned_env
        .with_env(|env| -> Result<JString<'local>, BridgeError> {
            logging::install();
            let method = string_arg(env, &method, "method")?;
            let path = string_arg(env, &path, "path")?;
            let mut parsed_query = Query::new();
            for (name, value) in pairs_arg(env, &query, "query")? {
                parsed_query.entry(name).or_default().push(value);
            }
            let host = HostContext {
                model_store: PathBuf::from(string_arg(env, &model_store, "modelStore")?),
                properties: pairs_arg(env, &properties, "properties")?
                    .into_iter()
                    .collect::<BTreeMap<_, _>>(),
            };
            let registry = Arc::new(JvmRegistry::new(env)?);
            let runtime = runtime()?;
            // A panic in the core is a 500 answer like any internal error;
            // the runtime and this pool thread stay usable.
            let response = std::panic::catch_unwind(AssertUnwindSafe(|| {
                runtime.block_on(api::handle(&method, &path, &parsed_query, &host, registry))
            }))
            .unwrap_or_else(|payload| {
                let body = ErrorBody::panic(payload.as_ref());
                tracing::error!("{method} {path}: {}", body.message);
                ApiResponse::json(body.code, body.json())
            });
            Ok(JString::from_str(env, encode(&response))?)
        })
        .resolve::<ThrowBridgeException>()
}

/// Throws `NativeBridgeException` (falling back to `RuntimeException`) for
/// bridge faults and panics, and returns null.
#[derive(Debug, Default)]
pub struct ThrowBridgeException;

const BRIDGE_EXCEPTION: &jni::strings::JNIStr =
    jni_str!("org/dragonflyoss/torchserve/NativeBridgeException");

fn throw(env: &mut Env<'_>, message: String) {
    if env.exception_check() {
        return;
    }
    let text = jni::strings::JNIString::new(message.as_str());
    // A successful throw reports `Err(JavaException)`: check what is pending.
    let _ = env.throw_new(BRIDGE_EXCEPTION, &text);
    if !env.exception_check() {
        let _ = env.throw_new(jni_str!("java/lang/RuntimeException"), &text);
    }
}

impl<T: Default> ErrorPolicy<T, BridgeError> for ThrowBridgeException {
    type Captures<'unowned_env_local: 'native_method, 'native_method> = ();

    fn on_error<'unowned_env_local: 'native_method, 'native_method>(
        env: &mut Env<'unowned_env_local>,
        _captures: &mut Self::Captures<'unowned_env_local, 'native_method>,
        err: BridgeError,
    ) -> jni::errors::Result<T> {
        throw(env, format!("dragonfly-endpoint bridge: {err}"));
        Ok(T::default())
    }

    fn on_panic<'unowned_env_local: 'native_method, 'native_method>(
        env: &mut Env<'unowned_env_local>,
        _captures: &mut Self::Captures<'unowned_env_local, 'native_method>,
        payload: Box<dyn std::any::Any + Send + 'static>,
    ) -> jni::errors::Result<T> {
        // A panic in the bridge's own glue (the core's are caught above).
        throw(env, ErrorBody::panic(payload.as_ref()).message);
        Ok(T::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_encode_status_then_body() {
        let response = ApiResponse::json(404, serde_json::json!({"code": 404}));
        assert_eq!(encode(&response), "404\napplication/json\n{\"code\":404}");
        let text = ApiResponse::text(200, "a 1\n".into());
        assert_eq!(encode(&text), "200\ntext/plain; version=0.0.4\na 1\n");
    }
}
