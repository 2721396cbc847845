package org.cardshield.probe;

import javacard.framework.APDU;
import javacard.framework.Applet;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.JCSystem;
import javacard.framework.Util;
import javacard.security.RandomData;
import javacardx.apdu.ExtendedLength;

/**
 * Test-only applet that exercises the transport and the virtual card host independently of
 * the CardShield applet: echo (short, extended, chained), long responses through 61xx +
 * GET RESPONSE, wrong-Le 6Cxx, persistent vs transient state, on-card randomness.
 * Compiled by the tests into a temporary directory; never part of a CAP.
 */
public final class ProbeApplet extends Applet implements ExtendedLength {
    private static final byte INS_ECHO = (byte) 0x10;
    private static final byte INS_LONG_RESPONSE = (byte) 0x12;
    private static final byte INS_EXACT_LE = (byte) 0x14;
    private static final byte INS_COUNTERS = (byte) 0x16;
    private static final byte INS_RANDOM = (byte) 0x18;
    private static final byte INS_GET_RESPONSE = (byte) 0xC0;
    private static final short BUFFER = (short) 1024;

    private final byte[] buffer;
    private final short[] state; // [0] bytes chained so far, [1] response length, [2] response offset, [3] transient counter
    private short persistentCounter;
    private final RandomData random;

    private ProbeApplet() {
        buffer = JCSystem.makeTransientByteArray(BUFFER, JCSystem.CLEAR_ON_DESELECT);
        state = JCSystem.makeTransientShortArray((short) 4, JCSystem.CLEAR_ON_RESET);
        random = RandomData.getInstance(RandomData.ALG_SECURE_RANDOM);
    }

    public static void install(byte[] parameters, short offset, byte length) {
        new ProbeApplet().register(parameters, (short) (offset + 1), parameters[offset]);
    }

    public void process(APDU apdu) {
        byte[] header = apdu.getBuffer();
        if (selectingApplet()) {
            return;
        }
        boolean chained = (header[ISO7816.OFFSET_CLA] & (byte) 0x10) != 0;
        switch (header[ISO7816.OFFSET_INS]) {
            case INS_ECHO:
                echo(apdu, chained);
                return;
            case INS_LONG_RESPONSE:
                fill(Util.getShort(header, ISO7816.OFFSET_P1));
                sendChunk(apdu);
                return;
            case INS_GET_RESPONSE:
                sendChunk(apdu);
                return;
            case INS_EXACT_LE:
                exactLe(apdu, (short) (header[ISO7816.OFFSET_P2] & 0xFF));
                return;
            case INS_COUNTERS:
                counters(apdu);
                return;
            case INS_RANDOM:
                random.generateData(header, (short) 0, (short) 32);
                apdu.setOutgoingAndSend((short) 0, (short) 32);
                return;
            default:
                ISOException.throwIt(ISO7816.SW_INS_NOT_SUPPORTED);
        }
    }

    private void echo(APDU apdu, boolean chained) {
        short received = apdu.setIncomingAndReceive();
        short offset = apdu.getOffsetCdata();
        short total = state[0];
        while (received > 0) {
            if ((short) (total + received) > BUFFER) {
                state[0] = 0;
                ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
            }
            Util.arrayCopyNonAtomic(apdu.getBuffer(), offset, buffer, total, received);
            total += received;
            received = apdu.receiveBytes(offset);
        }
        if (chained) {
            state[0] = total;
            return;
        }
        state[0] = 0;
        state[1] = total;
        state[2] = 0;
        short le = apdu.setOutgoing();
        if (total <= le) {
            apdu.setOutgoingLength(total);
            apdu.sendBytesLong(buffer, (short) 0, total);
            state[1] = 0;
            return;
        }
        sendPrepared(apdu, le);
    }

    /** Response of `length` bytes 00 01 02 ... for the 61xx path. */
    private void fill(short length) {
        if (length > BUFFER) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        for (short i = 0; i < length; i++) {
            buffer[i] = (byte) i;
        }
        state[1] = length;
        state[2] = 0;
    }

    private void sendChunk(APDU apdu) {
        sendPrepared(apdu, apdu.setOutgoing());
    }

    /** Send at most min(Le, 256) of the prepared bytes; announce the rest with 61xx. */
    private void sendPrepared(APDU apdu, short le) {
        short remaining = (short) (state[1] - state[2]);
        if (remaining <= 0) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        short chunk = le == 0 || le > 256 ? 256 : le;
        if (chunk > remaining) {
            chunk = remaining;
        }
        apdu.setOutgoingLength(chunk);
        apdu.sendBytesLong(buffer, state[2], chunk);
        state[2] += chunk;
        remaining -= chunk;
        if (remaining > 0) {
            ISOException.throwIt((short) (0x6100 | (remaining > 255 ? 0 : remaining)));
        }
    }

    /** Answers 6Cxx unless Le is exactly `length` (ISO 7816-3 wrong-length procedure). */
    private void exactLe(APDU apdu, short length) {
        short le = apdu.setOutgoing();
        if (le != length) {
            ISOException.throwIt((short) (0x6C00 | length));
        }
        fill(length);
        apdu.setOutgoingLength(length);
        apdu.sendBytesLong(buffer, (short) 0, length);
    }

    /** Increments and returns a persistent and a CLEAR_ON_RESET counter. */
    private void counters(APDU apdu) {
        byte[] out = apdu.getBuffer();
        persistentCounter++;
        state[3]++;
        Util.setShort(out, (short) 0, persistentCounter);
        Util.setShort(out, (short) 2, state[3]);
        apdu.setOutgoingAndSend((short) 0, (short) 4);
    }
}
