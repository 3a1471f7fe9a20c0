//! Sends the core's log lines to TorchServe's own log: every `tracing` event
//! becomes a call of `NativeBridge.log(level, message)`, which logs through
//! the plugin's logger, so lines land in `ts_log.log` with their level.

use std::fmt::Write as _;
use std::sync::OnceLock;

use jni::objects::{JClass, JString, JValue};
use jni::refs::Global;
use jni::{jni_sig, jni_str, JavaVM};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

static BRIDGE_CLASS: OnceLock<Global<JClass<'static>>> = OnceLock::new();

/// Installs the forwarding subscriber once per process. Called on the first
/// native call, from a Java thread, which can see the plugin's classes.
pub fn install() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let class = JavaVM::singleton().ok().and_then(|vm| {
            vm.attach_current_thread(|env| -> jni::errors::Result<_> {
                let local = env.find_class(jni_str!("org/dragonflyoss/torchserve/NativeBridge"))?;
                env.new_global_ref(&local)
            })
            .ok()
        });
        if let Some(class) = class {
            let _ = BRIDGE_CLASS.set(class);
        }
        let subscriber = tracing_subscriber::registry().with(JavaLogLayer);
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}

/// Levels as `NativeBridge.log` numbers them.
fn level_number(level: &Level) -> i32 {
    match *level {
        Level::ERROR => 40,
        Level::WARN => 30,
        Level::INFO => 20,
        Level::DEBUG => 10,
        Level::TRACE => 0,
    }
}

struct JavaLogLayer;

#[derive(Default)]
struct MessageVisitor(String);

impl Visit for MessageVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for JavaLogLayer {
    fn enabled(&self, metadata: &tracing::Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        // Dependencies' debug chatter (hyper, rustls, aws) stays out.
        *metadata.level() <= Level::INFO || metadata.target().starts_with("dragonfly_endpoint")
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let Some(class) = BRIDGE_CLASS.get() else {
            return;
        };
        let metadata = event.metadata();
        if *metadata.level() > Level::INFO && !metadata.target().starts_with("dragonfly_endpoint") {
            return;
        }
        let mut message = MessageVisitor::default();
        event.record(&mut message);
        let level = level_number(metadata.level());
        let Ok(vm) = JavaVM::singleton() else {
            return;
        };
        // Logging must never fail a request: errors are dropped, and an
        // exception the call raised is cleared so the thread stays usable.
        let _ = vm.attach_current_thread(|env| -> jni::errors::Result<()> {
            let sent = JString::from_str(env, &message.0).and_then(|text| {
                env.call_static_method(
                    class,
                    jni_str!("log"),
                    jni_sig!((jint, java.lang.String) -> void),
                    &[JValue::Int(level), JValue::Object(&text)],
                )
            });
            if env.exception_check() {
                env.exception_clear();
            }
            sent.map(|_| ())
        });
    }
}
