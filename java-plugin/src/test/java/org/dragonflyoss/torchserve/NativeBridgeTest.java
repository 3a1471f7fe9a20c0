package org.dragonflyoss.torchserve;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;

import java.io.File;
import java.nio.file.Files;
import org.junit.Test;

public class NativeBridgeTest {
    private static String store() throws Exception {
        File dir = Files.createTempDirectory("store").toFile();
        dir.deleteOnExit();
        return dir.getAbsolutePath();
    }

    @Test
    public void nativeLibraryLoadsFromTheJar() {
        assertNull(NativeBridge.loadError());
        String jar =
                NativeBridge.class.getProtectionDomain().getCodeSource().getLocation().getPath();
        assertTrue("classes come from " + jar, jar.endsWith(".jar"));
        assertTrue(NativeBridge.class.getResource(NativeBridge.resourcePath()) != null);
    }

    @Test
    public void unknownSubPathIs404Json() throws Exception {
        NativeBridge.Answer answer =
                NativeBridge.call("GET", "/dragonfly/nope", new String[0], store(), new String[0]);
        assertEquals(404, answer.status);
        assertTrue(answer.body, answer.body.contains("\"code\":404"));
        assertTrue(answer.body, answer.body.contains("\"type\":\"ResourceNotFoundException\""));
    }

    @Test
    public void unsupportedMethodIs405Json() throws Exception {
        NativeBridge.Answer answer =
                NativeBridge.call("PUT", "/dragonfly/models", new String[0], store(), new String[0]);
        assertEquals(405, answer.status);
        assertTrue(answer.body, answer.body.contains("\"code\":405"));
    }

    @Test
    public void rustErrorBecomesStatusAndJsonNotException() throws Exception {
        NativeBridge.Answer answer =
                NativeBridge.call(
                        "PUT",
                        "/dragonfly",
                        new String[] {"model", "../escape.mar"},
                        store(),
                        new String[0]);
        assertEquals(400, answer.status);
        assertTrue(answer.body, answer.body.contains("\"type\":\"InvalidParameterException\""));
        assertTrue(answer.body, answer.body.contains("'..'"));
    }

    @Test
    public void configOutsideAllowedDirectoryIs403() throws Exception {
        File dir = Files.createTempDirectory("cfg").toFile();
        File allowed = new File(dir, "allowed");
        allowed.mkdir();
        NativeBridge.Answer answer =
                NativeBridge.call(
                        "PUT",
                        "/dragonfly",
                        new String[] {"model", "a.mar", "config", "/etc/passwd"},
                        store(),
                        new String[] {
                            "dragonfly_endpoint_config", new File(allowed, "config.json").getPath()
                        });
        assertEquals(403, answer.status);
        assertTrue(answer.body, answer.body.contains("\"type\":\"ForbiddenException\""));
        assertTrue(answer.body, !answer.body.contains("root:"));
    }

    @Test
    public void bridgeFaultBecomes500JsonNotException() throws Exception {
        NativeBridge.Answer answer =
                NativeBridge.call(null, "/dragonfly", new String[0], store(), new String[0]);
        assertEquals(500, answer.status);
        assertTrue(answer.body, answer.body.contains("NativeBridgeException"));
        assertTrue(answer.body, answer.body.contains("method is null"));
    }

    @Test
    public void oddQueryArrayIsABridgeFault() throws Exception {
        NativeBridge.Answer answer =
                NativeBridge.call("GET", "/dragonfly", new String[] {"model"}, store(), new String[0]);
        assertEquals(500, answer.status);
        assertTrue(answer.body, answer.body.contains("name/value pairs"));
    }

    @Test
    public void jsonQuotingEscapesControlCharacters() {
        assertEquals("\"a\\\"b\\\\c\\u000a\"", NativeBridge.quote("a\"b\\c\n"));
    }
}
