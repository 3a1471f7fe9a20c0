//! The JNI bridge under faults, inside real TorchServe with the test build
//! of the jar: a panic inside the native call is a 500 JSON answer, and the
//! plugin keeps serving afterwards (the runtime and TorchServe's threads are
//! not lost).

use dragonfly_endpoint_testbed::*;

#[test]
fn a_panic_in_the_core_is_a_500_answer_and_the_plugin_keeps_serving() {
    let stack = Stack::builder().start_with_torchserve();
    let Stack {
        work, origin, ts, ..
    } = stack;
    let mar = make_mar("after", 1.0, &work.path().join("mars"), 51);
    origin.upload(&format!("{PREFIX}after.mar"), &mar.path);

    ts.arm_hooks("api.handle panic\n");
    // Several calls in a row: a handler thread lost to the panic would show
    // as a hang or as TorchServe's bare 500 without our JSON.
    for _ in 0..6 {
        let (status, body) = call(&ts, "PUT", "/dragonfly?model=after.mar");
        let message = assert_error(status, &body, 500);
        assert_eq!(body["type"], "InternalServerException", "{body:#}");
        // Answered by the core, not by the bridge's fallback for its own
        // faults (which would name NativeBridgeException).
        assert!(
            message.starts_with("dragonfly-endpoint panicked: test hook api.handle"),
            "{message}"
        );
    }
    assert!(store_entries(&ts.model_store()).is_empty());

    ts.arm_hooks("");
    let (status, body) = call(&ts, "GET", "/dragonfly");
    assert_eq!(status, 200, "{body:#}");
    let (status, report) = call(&ts, "PUT", "/dragonfly?model=after.mar");
    assert_eq!(status, 200, "{report:#}");
    assert_close(infer(&ts, "after").unwrap(), mar.expected);
}
