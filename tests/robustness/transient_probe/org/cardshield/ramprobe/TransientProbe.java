package org.cardshield.ramprobe;

import javacard.framework.APDU;
import javacard.framework.Applet;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.JCSystem;
import javacard.framework.SystemException;
import javacard.framework.Util;

/**
 * Test applet of the strict virtual card's transient RAM (JCRE 3.0.4 chapter 5) and of the
 * objects of an aborted transaction (7.6.3). Holds a CLEAR_ON_DESELECT and a CLEAR_ON_RESET
 * array of 16 bytes and a CLEAR_ON_DESELECT object array, made at install.
 *
 * 80 30 P1 P2 01 E: make a transient byte array of (P1 P2) bytes with event E (1 CLEAR_ON_RESET,
 *   2 CLEAR_ON_DESELECT); SystemException (NO_RESOURCE) answers 6A84.
 * 80 32: available memory, 4 bytes each (JCSystem.getAvailableMemory, the int form):
 *   persistent, CLEAR_ON_DESELECT, CLEAR_ON_RESET.
 * 80 34 P1: write P1 into both 16-byte arrays and into the persistent field stamp.
 * 80 36: the first byte of the CLEAR_ON_DESELECT array, of the CLEAR_ON_RESET one, and stamp.
 * 80 38 P1: in a transaction, a new 200-byte array, kept in the persistent field kept and in
 *   the transient object array; P1 = 0 commits, 1 aborts. Answers 2 bytes: whether kept and
 *   the transient reference are still non-null (1) after the transaction ended.
 */
public final class TransientProbe extends Applet {
    private final byte[] clearOnDeselect = JCSystem.makeTransientByteArray((short) 16, JCSystem.CLEAR_ON_DESELECT);
    private final byte[] clearOnReset = JCSystem.makeTransientByteArray((short) 16, JCSystem.CLEAR_ON_RESET);
    private final Object[] references = JCSystem.makeTransientObjectArray((short) 1, JCSystem.CLEAR_ON_DESELECT);
    private final short[] memory = JCSystem.makeTransientShortArray((short) 2, JCSystem.CLEAR_ON_DESELECT);
    private byte stamp;
    private byte[] kept;

    public static void install(byte[] array, short offset, byte length) {
        new TransientProbe().register(array, (short) (offset + 1), array[offset]);
    }

    public void process(APDU apdu) {
        if (selectingApplet()) {
            return;
        }
        byte[] buffer = apdu.getBuffer();
        switch (buffer[ISO7816.OFFSET_INS]) {
            case 0x30:
                apdu.setIncomingAndReceive();
                try {
                    JCSystem.makeTransientByteArray(Util.getShort(buffer, ISO7816.OFFSET_P1),
                            buffer[ISO7816.OFFSET_CDATA]);
                } catch (SystemException e) {
                    ISOException.throwIt(ISO7816.SW_FILE_FULL);
                }
                return;
            case 0x32:
                available(buffer, (short) 0, JCSystem.MEMORY_TYPE_PERSISTENT);
                available(buffer, (short) 4, JCSystem.MEMORY_TYPE_TRANSIENT_DESELECT);
                available(buffer, (short) 8, JCSystem.MEMORY_TYPE_TRANSIENT_RESET);
                apdu.setOutgoingAndSend((short) 0, (short) 12);
                return;
            case 0x34:
                clearOnDeselect[0] = buffer[ISO7816.OFFSET_P1];
                clearOnReset[0] = buffer[ISO7816.OFFSET_P1];
                stamp = buffer[ISO7816.OFFSET_P1];
                return;
            case 0x36:
                buffer[0] = clearOnDeselect[0];
                buffer[1] = clearOnReset[0];
                buffer[2] = stamp;
                apdu.setOutgoingAndSend((short) 0, (short) 3);
                return;
            case 0x38:
                JCSystem.beginTransaction();
                kept = new byte[200];
                references[0] = kept;
                if (buffer[ISO7816.OFFSET_P1] == 0) {
                    JCSystem.commitTransaction();
                } else {
                    JCSystem.abortTransaction();
                }
                buffer[0] = (byte) (kept != null ? 1 : 0);
                buffer[1] = (byte) (references[0] != null ? 1 : 0);
                kept = null; // the next round starts without it (a committed array is garbage now)
                references[0] = null;
                apdu.setOutgoingAndSend((short) 0, (short) 2);
                return;
            default:
                ISOException.throwIt(ISO7816.SW_INS_NOT_SUPPORTED);
        }
    }

    private void available(byte[] buffer, short offset, byte type) {
        JCSystem.getAvailableMemory(memory, (short) 0, type);
        Util.setShort(buffer, offset, memory[0]);
        Util.setShort(buffer, (short) (offset + 2), memory[1]);
    }
}
