package org.dragonflyoss.torchserve;

/** A fault of the bridge itself (bad arguments, JNI failure, Rust panic), thrown by Rust. */
public final class NativeBridgeException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public NativeBridgeException(String message) {
        super(message);
    }
}
