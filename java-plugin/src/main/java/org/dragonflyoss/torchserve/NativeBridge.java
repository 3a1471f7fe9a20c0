package org.dragonflyoss.torchserve;

import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.StandardCopyOption;
import java.util.Locale;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The one native entry point, and the loading of the Rust library that travels inside this jar.
 * Keep the declarations in sync with {@code crates/jni/src/lib.rs}.
 */
public final class NativeBridge {
    /**
     * TorchServe's log4j2 config sends the root logger (INFO and up) to ts_log.log and stdout. A
     * logger under {@code org.pytorch.serve} would be written to ts_log.log twice (that logger and
     * root both name the appender), so the plugin's logger lives outside it.
     */
    private static final Logger LOG = LoggerFactory.getLogger("org.dragonflyoss.torchserve");

    private static final String LIBRARY = "dragonfly_endpoint";

    /** Null when the library loaded; else why not, reported by every call. */
    private static final String LOAD_ERROR = load();

    private NativeBridge() {}

    /** A status, content type and body to send back. */
    public static final class Answer {
        public final int status;
        public final String contentType;
        public final String body;

        Answer(int status, String contentType, String body) {
            this.status = status;
            this.contentType = contentType;
            this.body = body;
        }

        static Answer internalError(Throwable t) {
            LOG.error("dragonfly endpoint failed", t);
            return error(
                    500, "InternalServerException", t.getClass().getSimpleName() + ": " + t.getMessage());
        }

        /**
         * TorchServe's error body, for the two cases Rust cannot answer: the library did not load,
         * or the bridge itself failed. Every other body is built in Rust.
         */
        static Answer error(int code, String type, String message) {
            return new Answer(
                    code,
                    "application/json",
                    "{\"code\": "
                            + code
                            + ", \"type\": "
                            + quote(type)
                            + ", \"message\": "
                            + quote(message)
                            + "}");
        }
    }

    /**
     * Runs one request in Rust. Never throws: bridge faults become a 500 answer.
     *
     * @param query name/value pairs, flattened
     * @param properties the {@code dragonfly_endpoint_*} entries of config.properties, flattened
     */
    public static Answer call(
            String method, String path, String[] query, String modelStore, String[] properties) {
        if (LOAD_ERROR != null) {
            return Answer.error(500, "NativeLibraryException", LOAD_ERROR);
        }
        try {
            String answer = handle(method, path, query, modelStore, properties);
            int first = answer.indexOf('\n');
            int second = answer.indexOf('\n', first + 1);
            return new Answer(
                    Integer.parseInt(answer.substring(0, first)),
                    answer.substring(first + 1, second),
                    answer.substring(second + 1));
        } catch (Throwable t) {
            return Answer.internalError(t);
        }
    }

    /** Returns {@code "<status>\n<content type>\n<body>"}. */
    private static native String handle(
            String method, String path, String[] query, String modelStore, String[] properties);

    /** Called from Rust for each log line; levels as in {@code crates/jni/src/logging.rs}. */
    static void log(int level, String message) {
        if (level >= 40) {
            LOG.error(message);
        } else if (level >= 30) {
            LOG.warn(message);
        } else if (level >= 20) {
            LOG.info(message);
        } else {
            LOG.debug(message);
        }
    }

    /** Where this jar carries the library for the running platform. */
    static String resourcePath() {
        String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
        String arch = System.getProperty("os.arch", "").toLowerCase(Locale.ROOT);
        if (arch.equals("amd64") || arch.equals("x86_64")) {
            arch = "x86_64";
        } else if (arch.equals("aarch64") || arch.equals("arm64")) {
            arch = "aarch64";
        }
        String platform = (os.startsWith("linux") ? "linux" : os.replace(' ', '_')) + "-" + arch;
        return "/native/" + platform + "/lib" + LIBRARY + ".so";
    }

    /** Extracts the library to a private temporary file and loads it, once per JVM. */
    private static String load() {
        String resource = resourcePath();
        try (InputStream in = NativeBridge.class.getResourceAsStream(resource)) {
            if (in == null) {
                try {
                    System.loadLibrary(LIBRARY);
                    return null;
                } catch (UnsatisfiedLinkError e) {
                    return "this jar has no native library for this platform ("
                            + resource
                            + " is missing) and none is on java.library.path";
                }
            }
            File file = Files.createTempFile("dragonfly-endpoint-", ".so").toFile();
            file.deleteOnExit();
            Files.copy(in, file.toPath(), StandardCopyOption.REPLACE_EXISTING);
            System.load(file.getAbsolutePath());
            LOG.info("dragonfly endpoint: loaded native library from " + resource);
            return null;
        } catch (IOException | UnsatisfiedLinkError | SecurityException e) {
            LOG.error("dragonfly endpoint: cannot load native library " + resource, e);
            return "cannot load native library " + resource + ": " + e.getMessage();
        }
    }

    static String loadError() {
        return LOAD_ERROR;
    }

    /** A JSON string literal. */
    static String quote(String text) {
        StringBuilder out = new StringBuilder("\"");
        for (char c : String.valueOf(text).toCharArray()) {
            switch (c) {
                case '"':
                    out.append("\\\"");
                    break;
                case '\\':
                    out.append("\\\\");
                    break;
                default:
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
            }
        }
        return out.append('"').toString();
    }
}
