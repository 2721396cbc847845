package org.cardshield.virtualcard;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Host-only control of the VIRTUAL card, on a Unix socket in the harness's private
 * directory (never an APDU: nothing sent to the card can trigger it). One line per command:
 *   PING       -> OK
 *   PRISTINE   -> wipe every applet instance and install the configured ones again
 *                 (a card fresh from personalization's starting point)
 *   REMOVE     -> pull the card out of the reader (vpcd connection closed)
 *   INSERT     -> put it back (persistent state kept, as with a real card)
 *   SET-BYTES instanceAID field.path HEX
 *              -> TEST FACILITY, no counterpart on a real card: overwrite a byte array of an
 *                 applet instance's persistent state (AppletRuntime.overwriteBytes), to reach
 *                 states too far away by APDU, e.g. a signature counter at FF FF FF FF
 *   TEAR-AT N  -> STRICT PROFILES ONLY: the power goes at tear point N (1 = before the first
 *                 persistent write) of the next command; the card answers nothing to it,
 *                 leaves the reader and comes back at INSERT as after a power cycle
 *                 (docs/virtual-card.md)
 *   TEAR-RANDOM SEED -> the same at tear points drawn with SEED (each point 1 in 8)
 *   REPORT     -> "OK points=P torn=yes|no unreached=yes|no journal=J incoming=K [at=N:what]" about
 *                 the last command: its tear points, whether it was torn, whether an armed tear
 *                 was beyond its last point, the peak commit-buffer use (bytes), the parts in
 *                 which its data reached the applet (more than 1: larger than the APDU buffer)
 *   FAULT-KEY instanceAID path, INSPECT instanceAID path
 *              -> TEST FACILITIES about keys, see KeyProbe
 * Replies are "OK" (REPORT, INSPECT: "OK <data>") or "ERROR <reason>".
 */
final class ControlServer {
    interface Commands {
        void pristine();

        void remove();

        void insert() throws Exception;

        void setBytes(byte[] instanceAid, String fieldPath, byte[] value);

        void tearAt(int point);

        void tearRandom(long seed);

        String report();

        /** KeyProbe's commands; returns the reply's data, "" for none. */
        String probe(String[] words);
    }

    private final Path path;
    private final Commands commands;

    ControlServer(Path path, Commands commands) {
        this.path = path;
        this.commands = commands;
    }

    void start() throws IOException {
        Files.deleteIfExists(path);
        ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        server.bind(UnixDomainSocketAddress.of(path));
        Thread thread = new Thread(() -> acceptLoop(server), "virtualcard-control");
        thread.setDaemon(true);
        thread.start();
    }

    private void acceptLoop(ServerSocketChannel server) {
        while (true) {
            try (SocketChannel client = server.accept()) {
                BufferedReader in = new BufferedReader(
                        new InputStreamReader(Channels.newInputStream(client), StandardCharsets.US_ASCII));
                Writer out = new OutputStreamWriter(Channels.newOutputStream(client), StandardCharsets.US_ASCII);
                String line;
                while ((line = in.readLine()) != null) {
                    out.write(handle(line.trim()) + "\n");
                    out.flush();
                }
            } catch (IOException e) {
                System.err.println("virtualcard: control connection failed: " + e.getMessage());
            }
        }
    }

    private String handle(String line) {
        String[] words = line.split("\\s+");
        String command = words[0];
        try {
            if (command.equals("TEAR-AT") || command.equals("TEAR-RANDOM")) {
                if (words.length != 2 || !words[1].matches("[0-9]{1,9}")) {
                    return "ERROR usage: " + command + (command.equals("TEAR-AT") ? " N (tear point, from 1)" : " SEED");
                }
                if (command.equals("TEAR-AT")) {
                    commands.tearAt(Integer.parseInt(words[1]));
                } else {
                    commands.tearRandom(Long.parseLong(words[1]));
                }
                return "OK";
            }
            if (command.equals("REPORT") && words.length == 1) {
                return "OK " + commands.report();
            }
            if (KeyProbe.handles(command)) {
                String data = commands.probe(words);
                return data.isEmpty() ? "OK" : "OK " + data;
            }
            if (!command.equals("SET-BYTES") && words.length != 1) {
                return "ERROR " + command + " takes no arguments";
            }
            switch (command) {
                case "PING":
                    break;
                case "PRISTINE":
                    commands.pristine();
                    break;
                case "REMOVE":
                    commands.remove();
                    break;
                case "INSERT":
                    commands.insert();
                    break;
                case "SET-BYTES":
                    if (words.length != 4) {
                        return "ERROR usage: SET-BYTES instanceAID field.path HEX";
                    }
                    commands.setBytes(Hex.decode(words[1]), words[2], Hex.decode(words[3]));
                    break;
                default:
                    return "ERROR unknown command " + command;
            }
            return "OK";
        } catch (Exception e) {
            return "ERROR " + e;
        }
    }
}
