package org.cardshield.applet;

import javacard.framework.APDU;
import javacard.framework.APDUException;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.Util;

/**
 * The single I/O path of the applet, used by CardShieldCore.process() alone; handlers never
 * see the APDU. In: command data arrives in a short APDU, in ISO command chaining (ISO/IEC
 * 7816-4 clause 5.3, CLA bit 10) or in one extended APDU (clause 5.1, javacardx.apdu.ExtendedLength);
 * receive() hides the difference, so a handler gets the complete data in the transient
 * buffer. Out: respond() sends at most Ne bytes (clause 5.1), keeps the rest for GET
 * RESPONSE and answers 61xx (clause 5.3, 11.7.1). wipe() then zeroes whatever the command
 * left behind, except what an open chain or a pending response still needs.
 */
final class Io {
    private static final short SHORT_MAX_NE = (short) 256;
    /** Data field of a short APDU: what a card's APDU buffer holds of any command at once. */
    private static final short SHORT_MAX_NC = (short) 255;
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
        t.shorts[Transients.S_PENDING_LENGTH] = 0;
    }

    boolean chainOpen() {
        return t.bytes[Transients.B_CHAIN_OPEN] != 0;
    }

    /** Whether this APDU continues the open chain (same INS P1 P2). */
    boolean continuesChain(byte ins, byte p1, byte p2) {
        return t.bytes[Transients.B_CHAIN_INS] == ins && t.bytes[Transients.B_CHAIN_P1] == p1
                && t.bytes[Transients.B_CHAIN_P2] == p2;
    }

    // ---------------------------------------------------------------- in

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
        if (isT0()) {
            return;
        }
        if (apdu.setIncomingAndReceive() != 0 || apdu.getIncomingLength() != 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
    }

    /** receiveInto the transient buffer, at most max bytes (6700 beyond). */
    short receive(APDU apdu, boolean chained, short max) {
        return receiveInto(apdu, chained, t.buffer, max, ISO7816.SW_WRONG_LENGTH);
    }

    /**
     * Appends this APDU's data to what earlier APDUs of the same chain delivered, in dest
     * (the transient buffer or the certificate staging area), at most max bytes in total
     * (else the chain is dropped and overflowSw thrown). Returns the whole command's data
     * length once it is complete (an unchained APDU or the last of a chain). While a chain
     * continues the command ends here with 9000 (ISO/IEC 7816-4 clause 5.3): the handler
     * runs only on complete data.
     */
    short receiveInto(APDU apdu, boolean chained, byte[] dest, short max, short overflowSw) {
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
            ISOException.throwIt(ISO7816.SW_NO_ERROR);
        }
        t.bytes[Transients.B_CHAIN_OPEN] = 0;
        return have;
    }

    // ---------------------------------------------------------------- out

    /**
     * Where the response of the command being processed comes from: t.buffer at offset 0
     * unless a handler names a part of another array (part()). Called before each command.
     */
    void beginCommand() {
        t.responseSource[0] = null;
        t.shorts[Transients.S_RESPONSE_OFFSET] = 0;
    }

    /**
     * READ BINARY: the response is src[off ..] (a certificate), and only as much of it as Ne
     * allows is sent; the rest is not kept (ISO/IEC 7816-4 clause 11.2.3: the reader asks
     * again at the next offset), so no 61xx.
     */
    void part(byte[] src, short off) {
        t.responseSource[0] = src;
        t.shorts[Transients.S_RESPONSE_OFFSET] = off;
    }

    /** GET RESPONSE (ISO/IEC 7816-4 clause 11.7.1): the kept rest becomes this response; 6985 if none. */
    short pendingResponse() {
        short len = t.shorts[Transients.S_PENDING_LENGTH];
        if (len == 0) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        t.shorts[Transients.S_RESPONSE_OFFSET] = t.shorts[Transients.S_PENDING_OFFSET];
        t.shorts[Transients.S_PENDING_LENGTH] = 0;
        return len;
    }

    /**
     * Sends the response of len bytes: as much as Ne allows (ISO/IEC 7816-4 clause 5.1); a
     * rest in t.buffer stays pending for GET RESPONSE and the status word is 61xx (xx = 00
     * for 256 or more). Returns the status word. The command data in the APDU buffer are
     * zeroed first, while the incoming side can still be addressed.
     */
    short respond(APDU apdu, short len) {
        wipeIncoming(apdu);
        if (len == 0) {
            return ISO7816.SW_NO_ERROR;
        }
        Object source = t.responseSource[0];
        byte[] src = source == null ? t.buffer : (byte[]) source;
        short off = t.shorts[Transients.S_RESPONSE_OFFSET];
        short ne = expectedLength(apdu);
        short now = len < ne ? len : ne;
        apdu.setOutgoingLength(now);
        if (now > 0) { // Ne = 0: a case-3 command, all of it announced by 61xx
            apdu.sendBytesLong(src, off, now);
        }
        short rest = (short) (len - now);
        if (rest == 0 || source != null) {
            return ISO7816.SW_NO_ERROR;
        }
        t.shorts[Transients.S_PENDING_OFFSET] = (short) (off + now);
        t.shorts[Transients.S_PENDING_LENGTH] = rest;
        return (short) (Constants.SW_BYTES_REMAINING_BASE | (rest > (short) 0xFF ? 0 : rest));
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
        if (isT0()) {
            return false;
        }
        short cdata = incomingOffset(apdu);
        return cdata == OFFSET_EXTENDED_CDATA;
    }

    private static boolean isT0() {
        return (byte) (APDU.getProtocol() & APDU.PROTOCOL_TYPE_MASK) == APDU.PROTOCOL_T0;
    }

    /** getOffsetCdata(), or -1 where it cannot be had (nothing received, or already sending). */
    private static short incomingOffset(APDU apdu) {
        try {
            return apdu.getOffsetCdata();
        } catch (APDUException e) {
            return (short) -1;
        }
    }

    // ---------------------------------------------------------------- wipe

    /**
     * Zeroes the data field of the command in the APDU buffer, a global array (PIN, PUK,
     * personalization data in clear on a development card). At most a short APDU's 255 bytes:
     * what any card's buffer holds at once (a longer command arrives in parts, each one
     * overwriting the last); secrets are far shorter. Data a command refused before reading
     * them are read now on T=1, where they are in the buffer already; on T=0 they never
     * entered it. After sending has begun nothing is touched: the runtime may still be
     * sending from the buffer, and it zeroes the buffer before the next command (Java Card
     * API, class APDU).
     */
    void wipeIncoming(APDU apdu) {
        short cdata = incomingOffset(apdu);
        if (cdata < 0 && !isT0()) {
            try {
                apdu.setIncomingAndReceive();
            } catch (APDUException e) {
                return; // sending has begun
            }
            cdata = incomingOffset(apdu);
        }
        if (cdata < 0) {
            return;
        }
        byte[] buf = apdu.getBuffer();
        short len = apdu.getIncomingLength();
        short room = (short) (buf.length - cdata); // negative: a buffer above 32767 bytes
        if (room >= 0 && room < len) {
            len = room;
        }
        if (len > SHORT_MAX_NC || len < 0) {
            len = SHORT_MAX_NC;
        }
        Util.arrayFillNonAtomic(buf, cdata, len, (byte) 0);
    }

    /**
     * Zeroes the transient buffer after every command, whatever it held: command data
     * (PIN, PUK, unwrapped personalization data), scratch, responses already sent (a
     * DECIPHER plaintext). Kept: the rest of a response GET RESPONSE will fetch, or the data
     * an open chain has delivered so far. No list of secret commands to keep up to date;
     * the cost is one RAM fill per command.
     */
    void wipe() {
        short keepFrom = 0;
        short keepTo = 0;
        short pending = t.shorts[Transients.S_PENDING_LENGTH];
        if (pending != 0) {
            keepFrom = t.shorts[Transients.S_PENDING_OFFSET];
            keepTo = (short) (keepFrom + pending);
        } else if (chainOpen()) {
            keepTo = t.shorts[Transients.S_RECEIVED]; // PUT DATA: staging bytes, may exceed b
        }
        byte[] b = t.buffer;
        Util.arrayFillNonAtomic(b, (short) 0, keepFrom, (byte) 0);
        if (keepTo < (short) b.length) { // jcardsim refuses a fill at the array's end, even of 0 bytes
            Util.arrayFillNonAtomic(b, keepTo, (short) (b.length - keepTo), (byte) 0);
        }
    }
}
