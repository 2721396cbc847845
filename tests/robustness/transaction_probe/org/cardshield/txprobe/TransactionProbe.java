package org.cardshield.txprobe;

import javacard.framework.APDU;
import javacard.framework.Applet;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.JCSystem;
import javacard.framework.TransactionException;
import javacard.framework.Util;

/**
 * Test applet of the strict virtual card's transaction semantics (JCRE 3.0.4 chapter 7).
 *
 * 80 10 P1 P2 Lc N(2) V(1): in a transaction, write V into data[0..N) and into the field
 *   stamp; P2 = how the bytes go: 0 element stores, 1 Util.arrayCopy, 2 Util.arrayCopyNonAtomic.
 *   P1 = how the transaction ends: 0 commit, 1 abortTransaction, 2 an exception leaving
 *   process() (6A81), 3 process() returning with it open. A TransactionException is
 *   answered with its reason (2 bytes), the transaction aborted.
 * 80 12: stamp, data[0], data[last], getMaxCommitCapacity (2), getUnusedCommitCapacity (2),
 *   getTransactionDepth.
 */
public final class TransactionProbe extends Applet {
    private final byte[] data = new byte[1024];
    private final byte[] source = new byte[1024];
    private byte stamp;

    public static void install(byte[] bArray, short bOffset, byte bLength) {
        new TransactionProbe().register();
    }

    public void process(APDU apdu) {
        if (selectingApplet()) {
            return;
        }
        byte[] buf = apdu.getBuffer();
        if (buf[ISO7816.OFFSET_INS] == 0x12) {
            buf[0] = stamp;
            buf[1] = data[0];
            buf[2] = data[(short) (data.length - 1)];
            Util.setShort(buf, (short) 3, JCSystem.getMaxCommitCapacity());
            Util.setShort(buf, (short) 5, JCSystem.getUnusedCommitCapacity());
            buf[7] = JCSystem.getTransactionDepth();
            apdu.setOutgoingAndSend((short) 0, (short) 8);
            return;
        }
        if (buf[ISO7816.OFFSET_INS] != 0x10) {
            ISOException.throwIt(ISO7816.SW_INS_NOT_SUPPORTED);
        }
        apdu.setIncomingAndReceive();
        short n = Util.getShort(buf, ISO7816.OFFSET_CDATA);
        byte value = buf[(short) (ISO7816.OFFSET_CDATA + 2)];
        byte ending = buf[ISO7816.OFFSET_P1];
        Util.arrayFillNonAtomic(source, (short) 0, n, value);
        try {
            JCSystem.beginTransaction();
            stamp = value;
            if (buf[ISO7816.OFFSET_P2] == 0) {
                for (short i = 0; i < n; i++) {
                    data[i] = value;
                }
            } else if (buf[ISO7816.OFFSET_P2] == 1) {
                Util.arrayCopy(source, (short) 0, data, (short) 0, n);
            } else {
                Util.arrayCopyNonAtomic(source, (short) 0, data, (short) 0, n);
            }
        } catch (TransactionException e) {
            JCSystem.abortTransaction();
            Util.setShort(buf, (short) 0, e.getReason());
            apdu.setOutgoingAndSend((short) 0, (short) 2);
            return;
        }
        if (ending == 0) {
            JCSystem.commitTransaction();
        } else if (ending == 1) {
            JCSystem.abortTransaction();
        } else if (ending == 2) {
            ISOException.throwIt(ISO7816.SW_FUNC_NOT_SUPPORTED);
        }
    }
}
