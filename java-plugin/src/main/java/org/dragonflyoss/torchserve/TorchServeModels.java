package org.dragonflyoss.torchserve;

import java.util.Properties;
import org.pytorch.serve.archive.DownloadArchiveException;
import org.pytorch.serve.archive.model.InvalidModelException;
import org.pytorch.serve.archive.model.Manifest;
import org.pytorch.serve.archive.model.ModelException;
import org.pytorch.serve.archive.model.ModelNotFoundException;
import org.pytorch.serve.http.ConflictStatusException;
import org.pytorch.serve.http.StatusResponse;
import org.pytorch.serve.util.ApiUtils;
import org.pytorch.serve.util.ConfigManager;
import org.pytorch.serve.wlm.ModelManager;
import org.pytorch.serve.wlm.WorkerInitializationException;

/**
 * TorchServe's model registry, called from Rust ({@code crates/jni/src/registry.rs}). Goes
 * through TorchServe's own ApiUtils inside this JVM, so it works with the model API off and token
 * authorization on. Answers are {@code "<status>\n<message>"}; nothing here throws.
 */
final class TorchServeModels {
    private TorchServeModels() {}

    static String modelStore(Properties config) {
        String store = config == null ? null : config.getProperty("model_store");
        return store != null ? store : ConfigManager.getInstance().getModelStore();
    }

    static String register(
            String url,
            String modelName,
            String handler,
            String runtime,
            int batchSize,
            int maxBatchDelay,
            int responseTimeout,
            int startupTimeout,
            int initialWorkers,
            boolean synchronous) {
        try {
            Manifest.RuntimeType runtimeType =
                    runtime == null ? null : Manifest.RuntimeType.fromValue(runtime);
            StatusResponse status =
                    ApiUtils.handleRegister(
                            url,
                            modelName,
                            runtimeType,
                            handler,
                            batchSize,
                            maxBatchDelay,
                            responseTimeout,
                            startupTimeout,
                            initialWorkers,
                            synchronous,
                            false,
                            false);
            int code = status.getHttpResponseCode();
            if (code >= 300 && isRegistered(modelName)) {
                // Workers failed to start: leave nothing half-registered behind.
                unregister(modelName);
            }
            return answer(code, status.getStatus());
        } catch (ConflictStatusException e) {
            return answer(409, e.getMessage());
        } catch (ModelNotFoundException e) {
            return answer(404, e.getMessage());
        } catch (InvalidModelException | DownloadArchiveException | IllegalArgumentException e) {
            return answer(400, e.getMessage());
        } catch (WorkerInitializationException e) {
            cleanUp(modelName);
            return answer(500, "workers failed to start: " + e.getMessage());
        } catch (ModelException e) {
            return answer(400, e.getMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            cleanUp(modelName);
            return answer(500, "interrupted while registering");
        } catch (Throwable t) {
            cleanUp(modelName);
            return answer(500, t.getClass().getSimpleName() + ": " + t.getMessage());
        }
    }

    static String unregister(String modelName) {
        try {
            ApiUtils.unregisterModel(modelName, null);
            return answer(200, "Model \"" + modelName + "\" unregistered");
        } catch (ModelNotFoundException e) {
            return answer(404, e.getMessage());
        } catch (Throwable t) {
            return answer(500, t.getClass().getSimpleName() + ": " + t.getMessage());
        }
    }

    static boolean isRegistered(String modelName) {
        return ModelManager.getInstance().getDefaultModels().containsKey(modelName);
    }

    private static void cleanUp(String modelName) {
        try {
            if (isRegistered(modelName)) {
                ApiUtils.unregisterModel(modelName, null);
            }
        } catch (Throwable ignored) {
            // Best effort: the original failure is what the caller needs.
        }
    }

    private static String answer(int status, String message) {
        return status + "\n" + (message == null ? "" : message);
    }
}
