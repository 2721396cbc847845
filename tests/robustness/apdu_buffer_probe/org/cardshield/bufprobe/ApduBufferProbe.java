package org.cardshield.bufprobe;

import javacard.framework.APDU;
import javacard.framework.Applet;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.Util;
import javacardx.apdu.ExtendedLength;

/**
 * Writes one byte into the APDU buffer at the offset P1P2, by an array store (INS 20) or
 * Util.arrayFillNonAtomic (INS 22). An exception maps as CardShield's process() maps it:
 * ArrayIndexOutOfBoundsException and other runtime exceptions give 6985. It implements
 * ExtendedLength, as CardShield's default build does: jcardsim then hands it its 32777-byte
 * extended buffer (260 bytes otherwise), larger than the profile's.
 */
public final class ApduBufferProbe extends Applet implements ExtendedLength {
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
}
