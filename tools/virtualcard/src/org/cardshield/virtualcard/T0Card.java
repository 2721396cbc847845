package org.cardshield.virtualcard;

/**
 * The card side of ISO/IEC 7816-3 T=0 (12.2), for profiles whose card speaks T=0 only: no
 * extended APDUs (6700), and a case-4 command is a case-3 TPDU whose answer the card holds
 * and announces with 61xx, for the reader to fetch with GET RESPONSE (7816-4 5.3.4,
 * 7816-3 12.2.2). The Le of a case-4 command never reaches the applet, as on a T=0 card;
 * after the held data the applet's own status word comes (its own 61xx included).
 */
final class T0Card implements ApduHandler {
    private static final int INS_GET_RESPONSE = 0xC0;

    private final ApduHandler next;
    private byte[] held = new byte[0];
    private int heldOffset;
    private byte[] heldStatus;

    T0Card(ApduHandler next) {
        this.next = next;
    }

    @Override
    public byte[] process(byte[] command) {
        if (heldStatus != null && isGetResponse(command)) {
            return serveHeld(command.length == 5 ? command[4] & 0xFF : 0);
        }
        heldStatus = null;
        if (command.length > 5 && command[4] == 0) {
            return AppletRuntime.sw(javacard.framework.ISO7816.SW_WRONG_LENGTH); // extended: not on T=0
        }
        int lc = command.length > 5 ? command[4] & 0xFF : 0;
        if (command.length > 5 && command.length == 6 + lc) {
            byte[] tpdu = java.util.Arrays.copyOf(command, 5 + lc); // case 4: Le stays with the reader
            byte[] response = next.process(tpdu);
            if (response.length > 2) {
                held = java.util.Arrays.copyOf(response, response.length - 2);
                heldOffset = 0;
                heldStatus = java.util.Arrays.copyOfRange(response, response.length - 2, response.length);
                return status61();
            }
            return response;
        }
        return next.process(command);
    }

    private static boolean isGetResponse(byte[] command) {
        return command.length <= 5 && command.length >= 4 && (command[1] & 0xFF) == INS_GET_RESPONSE
                && command[2] == 0 && command[3] == 0;
    }

    private byte[] status61() {
        int left = held.length - heldOffset;
        return new byte[] {0x61, (byte) (left >= 256 ? 0 : left)};
    }

    /** GET RESPONSE with Le (0 = 256): that much of the held data, then 61xx or the final status. */
    private byte[] serveHeld(int le) {
        int want = le == 0 ? 256 : le;
        int left = held.length - heldOffset;
        int n = Math.min(want, left);
        byte[] out = new byte[n + 2];
        System.arraycopy(held, heldOffset, out, 0, n);
        heldOffset += n;
        byte[] status = heldOffset < held.length ? status61() : heldStatus;
        out[n] = status[0];
        out[n + 1] = status[1];
        if (heldOffset >= held.length) {
            heldStatus = null;
        }
        return out;
    }

    @Override
    public void reset() {
        heldStatus = null;
        next.reset();
    }

    @Override
    public void pristine() {
        heldStatus = null;
        next.pristine();
    }
}
