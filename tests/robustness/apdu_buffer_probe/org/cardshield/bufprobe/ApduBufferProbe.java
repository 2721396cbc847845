package org.cardshield.bufprobe;

import javacard.framework.APDU;
import javacard.framework.Applet;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.Util;
import javacard.security.MessageDigest;
import javacardx.apdu.ExtendedLength;

/**
 * Writes one byte into the APDU buffer at the offset P1P2, by an array store (INS 20) or
 * Util.arrayFillNonAtomic (INS 22). Receives the command data and answers its length and
 * SHA-256 (INS 24: setIncomingAndReceive, then receiveBytes until all came, as CardShield's
 * Io.receive does; INS 26: the mistake, setIncomingAndReceive alone, then the whole Lc read
 * from the buffer as if it held it). An exception maps as CardShield's process() maps it:
 * ArrayIndexOutOfBoundsException and other runtime exceptions give 6985. It implements
 * ExtendedLength, as CardShield's default build does: jcardsim then hands it its 32777-byte
 * extended buffer (260 bytes otherwise), larger than the profile's.
 */
public final class ApduBufferProbe extends Applet implements ExtendedLength {
    private final MessageDigest sha256 = MessageDigest.getInstance(MessageDigest.ALG_SHA_256, false);

    public static void install(byte[] array, short offset, byte length) {
        new ApduBufferProbe().register(array, (short) (offset + 1), array[offset]);
    }

    public void process(APDU apdu) {
        if (selectingApplet()) {
            return;
        }
        byte[] buffer = apdu.getBuffer();
        short offset = Util.getShort(buffer, ISO7816.OFFSET_P1);
        try {
            switch (buffer[ISO7816.OFFSET_INS]) {
                case 0x20:
                    buffer[offset] = 1;
                    return;
                case 0x22:
                    Util.arrayFillNonAtomic(buffer, offset, (short) 1, (byte) 1);
                    return;
                case 0x24:
                    receiveAll(apdu, buffer);
                    return;
                case 0x26:
                    receiveAssumingOnePart(apdu, buffer);
                    return;
                default:
                    ISOException.throwIt(ISO7816.SW_INS_NOT_SUPPORTED);
            }
        } catch (RuntimeException e) {
            if (e instanceof ISOException) {
                throw e;
            }
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
    }

    private void receiveAll(APDU apdu, byte[] buffer) {
        short received = 0;
        short chunk = apdu.setIncomingAndReceive();
        short cdata = apdu.getOffsetCdata();
        while (chunk > 0) {
            sha256.update(buffer, cdata, chunk);
            received += chunk;
            chunk = apdu.receiveBytes(cdata);
        }
        answer(apdu, buffer, received);
    }

    private void receiveAssumingOnePart(APDU apdu, byte[] buffer) {
        apdu.setIncomingAndReceive();
        short total = apdu.getIncomingLength();
        sha256.update(buffer, apdu.getOffsetCdata(), total);
        answer(apdu, buffer, total);
    }

    /** Length (2 bytes) and SHA-256 of the data (32 bytes). */
    private void answer(APDU apdu, byte[] buffer, short length) {
        sha256.doFinal(buffer, (short) 0, (short) 0, buffer, (short) 2);
        Util.setShort(buffer, (short) 0, length);
        apdu.setOutgoingAndSend((short) 0, (short) 34);
    }
}
