package org.dragonflyoss.torchserve;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.pytorch.serve.servingsdk.Context;
import org.pytorch.serve.servingsdk.ModelServerEndpoint;
import org.pytorch.serve.servingsdk.annotations.Endpoint;
import org.pytorch.serve.servingsdk.annotations.helpers.EndpointTypes;
import org.pytorch.serve.servingsdk.http.Request;
import org.pytorch.serve.servingsdk.http.Response;

/**
 * {@code /dragonfly} on TorchServe's management port. Hands method, path and query to the Rust
 * core and writes back the status and JSON it answers. It never reads the request body (unreliable
 * in TorchServe 0.12) and never throws: TorchServe would replace the answer with a bare 500.
 */
@Endpoint(
        urlPattern = "dragonfly",
        endpointType = EndpointTypes.MANAGEMENT,
        description = "Pull model archives through Dragonfly P2P and register them")
public final class DragonflyEndpoint extends ModelServerEndpoint {
    /** config.properties keys the core reads. */
    private static final String PROPERTY_PREFIX = "dragonfly_endpoint_";

    /** TorchServe creates the endpoint at startup: find and log which server this is then. */
    public DragonflyEndpoint() {
        TorchServeVersion.load();
    }

    @Override
    public void doGet(Request req, Response rsp, Context ctx) throws IOException {
        serve("GET", req, rsp, ctx);
    }

    @Override
    public void doPut(Request req, Response rsp, Context ctx) throws IOException {
        serve("PUT", req, rsp, ctx);
    }

    @Override
    public void doPost(Request req, Response rsp, Context ctx) throws IOException {
        serve("POST", req, rsp, ctx);
    }

    @Override
    public void doDelete(Request req, Response rsp, Context ctx) throws IOException {
        serve("DELETE", req, rsp, ctx);
    }

    private static void serve(String method, Request req, Response rsp, Context ctx)
            throws IOException {
        NativeBridge.Answer answer;
        try {
            String uri = req.getRequestURI();
            int queryStart = uri.indexOf('?');
            String path = queryStart < 0 ? uri : uri.substring(0, queryStart);
            answer =
                    NativeBridge.call(
                            method,
                            path,
                            pairs(req.getParameterMap()),
                            TorchServeModels.modelStore(ctx.getConfig()),
                            dragonflyProperties(ctx.getConfig()));
        } catch (Throwable t) {
            answer = NativeBridge.Answer.internalError(t);
        }
        rsp.setStatus(answer.status);
        rsp.setContentType(answer.contentType);
        try (OutputStream out = rsp.getOutputStream()) {
            out.write(answer.body.getBytes(StandardCharsets.UTF_8));
        }
    }

    private static String[] pairs(Map<String, List<String>> parameters) {
        List<String> flat = new ArrayList<>();
        if (parameters != null) {
            for (Map.Entry<String, List<String>> entry : parameters.entrySet()) {
                for (String value : entry.getValue()) {
                    flat.add(entry.getKey());
                    flat.add(value);
                }
            }
        }
        return flat.toArray(new String[0]);
    }

    private static String[] dragonflyProperties(Properties config) {
        List<String> flat = new ArrayList<>();
        if (config != null) {
            for (String name : config.stringPropertyNames()) {
                if (name.startsWith(PROPERTY_PREFIX)) {
                    flat.add(name);
                    flat.add(config.getProperty(name));
                }
            }
        }
        return flat.toArray(new String[0]);
    }
}
