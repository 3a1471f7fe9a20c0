package org.dragonflyoss.torchserve;

import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import org.pytorch.serve.archive.model.Manifest;
import org.pytorch.serve.http.StatusResponse;
import org.pytorch.serve.util.ApiUtils;
import org.pytorch.serve.util.ConfigManager;
import org.pytorch.serve.wlm.ModelManager;

/**
 * TorchServe's model registry, called from Rust ({@code crates/jni/src/registry.rs}). Goes
 * through TorchServe's own ApiUtils inside this JVM, so it works with the model API off and token
 * authorization on. Every call answers {@code "<status>\n<exception>\n<message>"} (status or
 * exception left empty) and never throws: what an answer means is decided in Rust, in one table
 * shared with the HTTP registry ({@code crates/core/src/register/outcome.rs}). What differs
 * between TorchServe versions is {@link TorchServeVersion}'s; on a server it does not support,
 * every call answers its 500.
 */
final class TorchServeModels {
    private TorchServeModels() {}

    static String modelStore(Properties config) {
        String store = config == null ? null : config.getProperty("model_store");
        return store != null ? store : ConfigManager.getInstance().getModelStore();
    }

    /**
     * Registers a model.
     *
     * @param options name/value pairs, flattened, in TorchServe's names ({@code
     *     RegisterOptions::pairs} in Rust)
     */
    static String register(String url, String modelName, String[] options) {
        if (TorchServeVersion.UNSUPPORTED != null) {
            return unsupported();
        }
        try {
            Map<String, String> option = new HashMap<>();
            for (int i = 0; i + 1 < options.length; i += 2) {
                option.put(options[i], options[i + 1]);
            }
            String runtime = option.get("runtime");
            StatusResponse status =
                    TorchServeVersion.HANDLE_REGISTER.call(
                            url,
                            modelName,
                            runtime == null ? null : Manifest.RuntimeType.fromValue(runtime),
                            option.get("handler"),
                            Integer.parseInt(option.get("batch_size")),
                            Integer.parseInt(option.get("max_batch_delay")),
                            Integer.parseInt(option.get("response_timeout")),
                            Integer.parseInt(option.get("startup_timeout")),
                            Integer.parseInt(option.get("initial_workers")),
                            Boolean.parseBoolean(option.get("synchronous")));
            return answer(Integer.toString(status.getHttpResponseCode()), "", status.getStatus());
        } catch (Throwable t) {
            return thrown(t);
        }
    }

    static String unregister(String modelName) {
        if (TorchServeVersion.UNSUPPORTED != null) {
            return unsupported();
        }
        try {
            ApiUtils.unregisterModel(modelName, null);
            return answer("200", "", "Model \"" + modelName + "\" unregistered");
        } catch (Throwable t) {
            return thrown(t);
        }
    }

    static String isRegistered(String modelName) {
        if (TorchServeVersion.UNSUPPORTED != null) {
            return unsupported();
        }
        try {
            boolean known = ModelManager.getInstance().getDefaultModels().containsKey(modelName);
            return answer(known ? "200" : "404", "", "");
        } catch (Throwable t) {
            return thrown(t);
        }
    }

    private static String unsupported() {
        return answer("500", "", TorchServeVersion.UNSUPPORTED);
    }

    private static String thrown(Throwable t) {
        if (t instanceof InterruptedException) {
            Thread.currentThread().interrupt();
        }
        return answer("", t.getClass().getSimpleName(), String.valueOf(t.getMessage()));
    }

    private static String answer(String status, String exception, String message) {
        return status + "\n" + exception + "\n" + (message == null ? "" : message);
    }
}
