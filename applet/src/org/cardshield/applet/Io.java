package org.cardshield.applet;

import javacard.framework.APDU;
import javacard.framework.APDUException;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.Util;

/**
 * The single I/O path of the applet. Command data arrives in a short APDU, in ISO command
 * chaining (ISO/IEC 7816-4 clause 5.1.1.1) or in one extended APDU (javacardx.apdu.ExtendedLength);
 * receive() hides the difference, so handlers see the complete data. Responses longer than
 * Ne are returned in parts with 61xx and GET RESPONSE (clause 11.7.1).
 */
final class Io {
    private static final short SHORT_MAX_NE = (short) 256;
    /** ISO/IEC 7816-4 clause 5.1: CLA INS P1 P2 00 Lc1 Lc2 (javacardx.apdu's OFFSET_EXT_CDATA) */
    private static final short OFFSET_EXTENDED_CDATA = (short) 7;

    private final Transients t;

    Io(Transients t) {
        this.t = t;
    }

    /** Forget any chain and pending response (error, selection). */
    void reset() {
        t.bytes[Transients.B_CHAIN_OPEN] = 0;
        t.shorts[Transients.S_RECEIVED] = 0;
        discardResponse();
    }

    void discardResponse() {
        t.shorts[Transients.S_RESPONSE_LENGTH] = 0;
    }

    boolean chainOpen() {
        return t.bytes[Transients.B_CHAIN_OPEN] != 0;
    }

    /** Whether this APDU continues the open chain (same INS P1 P2). */
    boolean continuesChain(byte ins, byte p1, byte p2) {
        return t.bytes[Transients.B_CHAIN_INS] == ins && t.bytes[Transients.B_CHAIN_P1] == p1
                && t.bytes[Transients.B_CHAIN_P2] == p2;
    }

    /**
     * For commands that take no data (case 1 / case 2): 6884 if chained, 6700 if data came.
     * On T=0 the fifth header byte P3 is Lc or Le, and only the applet knows which: calling
     * setIncomingAndReceive on a case-2 command there would make the card wait for P3 data
     * bytes the reader never sends (ISO/IEC 7816-3 clause 12.2; the APDU class description
     * of the Java Card API). So on T=0 the incoming side is never touched for these
     * commands, and P3 stays Le for setOutgoing.
     */
    void requireNoData(APDU apdu, boolean chained) {
        if (chained) {
            ISOException.throwIt(Constants.SW_CHAINING_UNSUPPORTED);
        }
        if ((byte) (APDU.getProtocol() & APDU.PROTOCOL_TYPE_MASK) == APDU.PROTOCOL_T0) {
            return;
        }
        if (apdu.setIncomingAndReceive() != 0 || apdu.getIncomingLength() != 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
    }

    /**
     * Zeroes what a secret (PIN, PUK, unwrapped personalization data) left in the first len
     * bytes of the transient buffer and in the data field of the APDU buffer, which is a
     * global array: nothing of it should outlive the command.
     */
    void wipe(APDU apdu, short len) {
        Util.arrayFillNonAtomic(t.buffer, (short) 0, len, (byte) 0);
        byte[] buf = apdu.getBuffer();
        short cdata = apdu.getOffsetCdata();
        short room = (short) (buf.length - cdata); // negative: a buffer above 32767 bytes
        Util.arrayFillNonAtomic(buf, cdata, room >= 0 && room < len ? room : len, (byte) 0);
    }

    /**
     * Appends this APDU's data to what earlier APDUs of the same chain delivered, in dest
     * (the transient buffer or the certificate staging area), at most max bytes in total
     * (else the chain is dropped and overflowSw thrown). Returns true when the command is
     * complete (an unchained APDU or the last of a chain), false while the chain continues.
     */
    boolean receive(APDU apdu, boolean chained, byte[] dest, short max, short overflowSw) {
        byte[] buf = apdu.getBuffer();
        short have = chainOpen() ? t.shorts[Transients.S_RECEIVED] : (short) 0;
        short chunk = apdu.setIncomingAndReceive(); // case 3 / case 4: P3 is Lc, also on T=0
        short total = apdu.getIncomingLength();
        if (total < 0 || total > (short) (max - have)) {
            reset();
            ISOException.throwIt(overflowSw);
        }
        short cdata = apdu.getOffsetCdata();
        while (chunk > 0) {
            Util.arrayCopyNonAtomic(buf, cdata, dest, have, chunk);
            have += chunk;
            chunk = apdu.receiveBytes(cdata);
        }
        t.shorts[Transients.S_RECEIVED] = have;
        if (chained) {
            t.bytes[Transients.B_CHAIN_INS] = buf[ISO7816.OFFSET_INS];
            t.bytes[Transients.B_CHAIN_P1] = buf[ISO7816.OFFSET_P1];
            t.bytes[Transients.B_CHAIN_P2] = buf[ISO7816.OFFSET_P2];
            t.bytes[Transients.B_CHAIN_OPEN] = 1;
            return false;
        }
        t.bytes[Transients.B_CHAIN_OPEN] = 0;
        return true;
    }

    /** Total data length of the command just completed by receive(). */
    short received() {
        return t.shorts[Transients.S_RECEIVED];
    }

    /**
     * Sends buffer[off .. off+len): as much as Ne allows, the rest stays pending for
     * GET RESPONSE and the status word is 61xx (xx = 00 for 256 or more).
     */
    void send(APDU apdu, short off, short len) {
        short ne = expectedLength(apdu);
        short now = len < ne ? len : ne;
        apdu.setOutgoingLength(now);
        if (now > 0) {
            apdu.sendBytesLong(t.buffer, off, now);
        }
        short rest = (short) (len - now);
        if (rest > 0) {
            t.shorts[Transients.S_RESPONSE_OFFSET] = (short) (off + now);
            t.shorts[Transients.S_RESPONSE_LENGTH] = rest;
            ISOException.throwIt((short) (Constants.SW_BYTES_REMAINING_BASE | (rest > (short) 0xFF ? 0 : rest)));
        }
    }

    /** Sends up to Ne bytes of src[off .. off+len) and no more (READ BINARY). */
    void sendPart(APDU apdu, byte[] src, short off, short len) {
        short ne = expectedLength(apdu);
        short now = len < ne ? len : ne;
        apdu.setOutgoingLength(now);
        apdu.sendBytesLong(src, off, now);
    }

    /**
     * Ne. An extended Le above 32767 (a negative short on some runtimes) counts as 32767. A
     * short command, and any command on T=0, gets at most 256 bytes (ISO/IEC 7816-4 clause
     * 5.1: a one-byte Le of 00 means 256): the Java Card API lets setOutgoing() answer
     * 32767 on T=0 to an applet that implements ExtendedLength, where the terminal sent a
     * short Le and expects 61xx for the rest.
     */
    private static short expectedLength(APDU apdu) {
        boolean extended = extendedCommand(apdu); // before setOutgoing(), which ends getOffsetCdata()
        short ne = apdu.setOutgoing();
        if (ne < 0) {
            ne = Short.MAX_VALUE;
        }
        if (ne > SHORT_MAX_NE && !extended) {
            ne = SHORT_MAX_NE;
        }
        return ne;
    }

    /**
     * Whether the command came as an extended APDU: never on T=0, else its data (or Le)
     * starts at offset 7. The incoming side is always received on T=1 (receive() or
     * requireNoData()), which getOffsetCdata() needs.
     */
    private static boolean extendedCommand(APDU apdu) {
        if ((byte) (APDU.getProtocol() & APDU.PROTOCOL_TYPE_MASK) == APDU.PROTOCOL_T0) {
            return false;
        }
        try {
            return apdu.getOffsetCdata() == OFFSET_EXTENDED_CDATA;
        } catch (APDUException e) {
            return false; // incoming side not received: only short commands get here
        }
    }

    /** GET RESPONSE: the next part of the pending response; 6985 if none. */
    void getResponse(APDU apdu) {
        short len = t.shorts[Transients.S_RESPONSE_LENGTH];
        if (len == 0) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        short off = t.shorts[Transients.S_RESPONSE_OFFSET];
        t.shorts[Transients.S_RESPONSE_LENGTH] = 0;
        send(apdu, off, len);
    }
}
