package org.dragonflyoss.torchserve;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNotNull;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import org.junit.Test;
import org.pytorch.serve.archive.model.Manifest;
import org.pytorch.serve.http.ConflictStatusException;
import org.pytorch.serve.http.StatusResponse;
import org.pytorch.serve.util.ApiUtils;

public class TorchServeVersionTest {
    /** The arguments the last fake handleRegister received. */
    static Object[] received;

    /** What the fake throws, as TorchServe refuses: null to register. */
    static RuntimeException refusal;

    /** handleRegister as in TorchServe 0.9 to 0.11. */
    public static final class Eleven {
        public static StatusResponse handleRegister(
                String url,
                String name,
                Manifest.RuntimeType runtime,
                String handler,
                int batchSize,
                int maxBatchDelay,
                int responseTimeout,
                int initialWorkers,
                boolean sync,
                boolean workflow,
                boolean sseKms) {
            if (refusal != null) {
                throw refusal;
            }
            received =
                    new Object[] {
                        url, name, runtime, handler, batchSize, maxBatchDelay, responseTimeout,
                        initialWorkers, sync, workflow, sseKms
                    };
            return new StatusResponse("registered", 200);
        }
    }

    /** A form no TorchServe has. */
    public static final class Other {
        public static StatusResponse handleRegister(String url, String name) {
            return null;
        }
    }

    @Test
    public void theCompileTimeServerHasThe12ParameterForm() {
        TorchServeVersion.Register register = TorchServeVersion.Register.find(ApiUtils.class);
        assertNotNull(register);
        assertEquals(12, register.method.getParameterCount());
    }

    @Test
    public void the11ParameterFormGetsEverythingButTheStartupTimeout() throws Exception {
        TorchServeVersion.Register register = TorchServeVersion.Register.find(Eleven.class);
        assertNotNull(register);
        StatusResponse status =
                register.call("/d/a", "a", Manifest.RuntimeType.PYTHON, "h", 4, 50, 30, 99, 2, true);
        assertEquals(200, status.getHttpResponseCode());
        assertArrayEquals(
                new Object[] {
                    "/d/a", "a", Manifest.RuntimeType.PYTHON, "h", 4, 50, 30, 2, true, false, false
                },
                received);
    }

    @Test
    public void anUnknownFormIsNotUsed() {
        assertNull(TorchServeVersion.Register.find(Other.class));
        assertNull(TorchServeVersion.Register.find(String.class));
    }

    @Test
    public void whatTheServerThrowsIsThrownAsItIs() throws Exception {
        TorchServeVersion.Register register = TorchServeVersion.Register.find(Eleven.class);
        refusal = new ConflictStatusException("Model version 1.0 is already registered");
        try {
            register.call("a.mar", "a", null, null, 1, 100, 120, 120, 1, true);
            fail("no exception");
        } catch (ConflictStatusException e) {
            assertTrue(e.getMessage().contains("already registered"));
        } finally {
            refusal = null;
        }
    }

    @Test
    public void onlyTheSupportedLinesWithAKnownFormAreSupported() {
        TorchServeVersion.Register known = TorchServeVersion.Register.find(Eleven.class);
        for (String version : new String[] {"0.9.0", "0.10.0", "0.11.0", "0.11.1", "0.12.0"}) {
            assertNull(version, TorchServeVersion.unsupported(version, known));
        }
        for (String version : new String[] {"0.8.2", "0.13.0", "1.0.0", "0.1", "0.90.0"}) {
            String why = TorchServeVersion.unsupported(version, known);
            assertNotNull(version, why);
            assertTrue(why, why.contains("TorchServe " + version + " is not supported"));
            assertTrue(why, why.contains("0.9, 0.10, 0.11, 0.12"));
        }
        assertTrue(TorchServeVersion.unsupported(null, known).contains("of unknown version"));
        String why = TorchServeVersion.unsupported("0.11.1", null);
        assertTrue(why, why.contains("0.11.1") && why.contains("handleRegister"));
    }

    @Test
    public void outsideTorchServeEveryRegistryCallAnswersTheRefusal() {
        // No ConfigManager in a unit test: the version is unknown.
        assertTrue(TorchServeVersion.UNSUPPORTED.contains("of unknown version"));
        String answer = TorchServeModels.isRegistered("a");
        assertTrue(answer, answer.startsWith("500\n\nTorchServe of unknown version"));
        assertTrue(TorchServeModels.register("a.mar", "a", new String[0]).startsWith("500\n"));
        assertTrue(TorchServeModels.unregister("a").startsWith("500\n"));
    }
}
