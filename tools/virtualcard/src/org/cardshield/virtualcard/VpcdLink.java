package org.cardshield.virtualcard;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.net.ConnectException;
import java.net.InetSocketAddress;
import java.net.Socket;

/**
 * The card side of vpcd's TCP protocol (vsmartcard): every message is a 2-byte big-endian
 * length and a payload. A 1-byte payload is a control from the reader (0 power off,
 * 1 power on, 2 reset, 4 get ATR, answered with the ATR); anything longer is a command APDU,
 * answered with the response APDU. While the socket is open, pcscd sees a card inserted.
 */
final class VpcdLink {
    private static final int POWER_OFF = 0;
    private static final int POWER_ON = 1;
    private static final int RESET = 2;
    private static final int GET_ATR = 4;

    private final String host;
    private final int port;
    private final byte[] atr;
    private final Object cardLock;
    private volatile Socket socket;

    VpcdLink(String host, int port, byte[] atr, Object cardLock) {
        this.host = host;
        this.port = port;
        this.atr = atr.clone();
        this.cardLock = cardLock;
    }

    /** Connect, retrying while vpcd (inside pcscd) is not listening yet. */
    void connect(long timeoutMillis) throws IOException, InterruptedException {
        long deadline = System.currentTimeMillis() + timeoutMillis;
        while (true) {
            Socket candidate = new Socket();
            try {
                candidate.setTcpNoDelay(true);
                candidate.connect(new InetSocketAddress(host, port), 1000);
                socket = candidate;
                return;
            } catch (ConnectException e) {
                candidate.close();
                if (System.currentTimeMillis() > deadline) {
                    throw new IOException("vpcd not listening on " + host + ":" + port + " after "
                            + timeoutMillis + " ms (is pcscd running with the vpcd reader.conf?)", e);
                }
                Thread.sleep(50);
            }
        }
    }

    /** Simulate card removal: pcscd sees the reader empty. */
    void disconnect() {
        Socket current = socket;
        socket = null;
        if (current != null) {
            try {
                current.close();
            } catch (IOException ignored) {
                // already closed: the card is out either way
            }
        }
    }

    boolean connected() {
        return socket != null;
    }

    /**
     * Serve reader requests until the socket closes. Returns false on card removal, true
     * when the card lost power inside a command (strict profiles' tear control): the link
     * is dropped with no answer (vpcd gives the reader an empty frame and sees the card
     * leave), and the card stays out until the control INSERT. powerLost runs before the
     * link drops: whoever sees the card leave (pcscd, then a test sending INSERT) must find
     * it already marked out, or an INSERT that overtook the marking would be undone by it
     * and the card would stay out for good.
     */
    boolean serve(ApduHandler card, Runnable powerLost) throws IOException {
        Socket current = socket;
        if (current == null) {
            return false;
        }
        try {
            DataInputStream in = new DataInputStream(current.getInputStream());
            DataOutputStream out = new DataOutputStream(current.getOutputStream());
            while (true) {
                quickAck(current);
                int length = in.readUnsignedShort();
                byte[] payload = new byte[length];
                in.readFully(payload);
                if (length == 1) {
                    switch (payload[0]) {
                        case POWER_OFF:
                        case POWER_ON:
                        case RESET:
                            synchronized (cardLock) {
                                card.reset();
                            }
                            break;
                        case GET_ATR:
                            send(out, atr);
                            break;
                        default:
                            System.err.println("virtualcard: unknown vpcd control " + payload[0]);
                    }
                } else if (length > 1) {
                    byte[] response;
                    synchronized (cardLock) {
                        try {
                            response = card.process(payload);
                        } catch (org.cardshield.virtualcard.strict.PowerLoss e) {
                            powerLost.run();
                            return true; // the finally below drops the link
                        }
                    }
                    send(out, response);
                }
            }
        } catch (EOFException | java.net.SocketException e) {
            // vpcd closed the connection or the card was "removed" by the control socket
            return false;
        } finally {
            if (socket == current) {
                disconnect();
            }
        }
    }

    /**
     * vpcd writes the 2-byte length and the payload in two send() calls without TCP_NODELAY:
     * Nagle holds the payload until the length is acknowledged, and Linux delays that ACK by
     * 40 ms. Acknowledging at once (TCP_QUICKACK; Linux clears it after each receive, so it is
     * set before every read) takes each APDU from about 50 ms to well under 1 ms.
     */
    private static void quickAck(Socket socket) {
        try {
            if (socket.supportedOptions().contains(jdk.net.ExtendedSocketOptions.TCP_QUICKACK)) {
                socket.setOption(jdk.net.ExtendedSocketOptions.TCP_QUICKACK, Boolean.TRUE);
            }
        } catch (IOException | UnsupportedOperationException e) {
            // only slower without it
        }
    }

    private static void send(DataOutputStream out, byte[] payload) throws IOException {
        out.writeShort(payload.length);
        out.write(payload);
        out.flush();
    }
}
