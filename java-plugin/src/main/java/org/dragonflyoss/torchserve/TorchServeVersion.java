package org.dragonflyoss.torchserve;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.util.Arrays;
import org.pytorch.serve.archive.model.Manifest;
import org.pytorch.serve.http.StatusResponse;
import org.pytorch.serve.util.ApiUtils;
import org.pytorch.serve.util.ConfigManager;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The one place that knows TorchServe versions differ (docs/compatibility.md). Of what the plugin
 * calls, only {@code ApiUtils.handleRegister} changed between 0.9 and 0.12: 0.12 added {@code int
 * startupTimeout} before {@code initialWorkers}. The server's version and that method's form are
 * found once, when this class loads (TorchServe loading the plugin does it), and logged; on a
 * server outside the supported lines every registry call answers a 500 naming the version found.
 */
final class TorchServeVersion {
    /** The TorchServe lines the plugin is tested with. */
    static final String SUPPORTED = "0.9, 0.10, 0.11, 0.12";

    private static final Logger LOG = LoggerFactory.getLogger("org.dragonflyoss.torchserve");

    /** {@code handleRegister} of 0.9 to 0.11: no startupTimeout. */
    private static final Class<?>[] WITHOUT_STARTUP_TIMEOUT = {
        String.class, String.class, Manifest.RuntimeType.class, String.class,
        int.class, int.class, int.class, int.class,
        boolean.class, boolean.class, boolean.class
    };

    /** {@code handleRegister} of 0.12: int startupTimeout before initialWorkers. */
    private static final Class<?>[] WITH_STARTUP_TIMEOUT = {
        String.class, String.class, Manifest.RuntimeType.class, String.class,
        int.class, int.class, int.class, int.class, int.class,
        boolean.class, boolean.class, boolean.class
    };

    /** The server's {@code handleRegister}; null when the server is not supported. */
    static final Register HANDLE_REGISTER;

    /** Null when the server is supported; else what every registry call answers. */
    static final String UNSUPPORTED;

    static {
        String version = null;
        Register register = null;
        String why;
        try {
            ConfigManager config = ConfigManager.getInstance();
            version = config == null ? null : config.getVersion();
            register = Register.find(ApiUtils.class);
            why = unsupported(version, register);
        } catch (Throwable t) {
            why = "cannot inspect this TorchServe: " + t;
        }
        HANDLE_REGISTER = why == null ? register : null;
        UNSUPPORTED = why;
        if (why == null) {
            LOG.info(
                    "dragonfly endpoint: TorchServe "
                            + version
                            + ", registering through ApiUtils.handleRegister ("
                            + register.method.getParameterCount()
                            + " parameters)");
        } else {
            LOG.error("dragonfly endpoint: " + why);
        }
    }

    private TorchServeVersion() {}

    /** Runs the static initializer: TorchServe's plugin loading logs which server this is. */
    static void load() {}

    /**
     * Why the plugin cannot run in this server, or null when it can: a supported line and a
     * handleRegister of a known form.
     */
    static String unsupported(String version, Register register) {
        String found = version == null ? "of unknown version" : version;
        if (version == null || !version.matches("0\\.(9|10|11|12)(\\..*)?")) {
            return "TorchServe "
                    + found
                    + " is not supported by the dragonfly endpoint (supported: TorchServe "
                    + SUPPORTED
                    + ")";
        }
        if (register == null) {
            return "TorchServe "
                    + found
                    + " has no ApiUtils.handleRegister of a known form; the dragonfly endpoint"
                    + " supports TorchServe "
                    + SUPPORTED;
        }
        return null;
    }

    /** One form of {@code handleRegister}. */
    static final class Register {
        final Method method;
        private final boolean withStartupTimeout;

        private Register(Method method, boolean withStartupTimeout) {
            this.method = method;
            this.withStartupTimeout = withStartupTimeout;
        }

        /** The public static handleRegister of {@code api} of a known form, or null. */
        static Register find(Class<?> api) {
            for (Method method : api.getMethods()) {
                if (!method.getName().equals("handleRegister")
                        || !Modifier.isStatic(method.getModifiers())
                        || method.getReturnType() != StatusResponse.class) {
                    continue;
                }
                Class<?>[] types = method.getParameterTypes();
                if (Arrays.equals(types, WITH_STARTUP_TIMEOUT)) {
                    return new Register(method, true);
                }
                if (Arrays.equals(types, WITHOUT_STARTUP_TIMEOUT)) {
                    return new Register(method, false);
                }
            }
            return null;
        }

        /**
         * Calls it: not a workflow model, no S3 SSE-KMS. {@code startupTimeout} is dropped where
         * the server has no such option (before 0.12).
         */
        StatusResponse call(
                String url,
                String modelName,
                Manifest.RuntimeType runtime,
                String handler,
                int batchSize,
                int maxBatchDelay,
                int responseTimeout,
                int startupTimeout,
                int initialWorkers,
                boolean synchronous)
                throws Exception {
            Object[] args =
                    withStartupTimeout
                            ? new Object[] {
                                url, modelName, runtime, handler, batchSize, maxBatchDelay,
                                responseTimeout, startupTimeout, initialWorkers, synchronous,
                                false, false
                            }
                            : new Object[] {
                                url, modelName, runtime, handler, batchSize, maxBatchDelay,
                                responseTimeout, initialWorkers, synchronous, false, false
                            };
            try {
                return (StatusResponse) method.invoke(null, args);
            } catch (InvocationTargetException e) {
                Throwable cause = e.getCause();
                if (cause instanceof Exception) {
                    throw (Exception) cause;
                }
                if (cause instanceof Error) {
                    throw (Error) cause;
                }
                throw e;
            }
        }
    }
}
