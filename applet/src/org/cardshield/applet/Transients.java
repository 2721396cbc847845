package org.cardshield.applet;

import javacard.framework.JCSystem;
import javacard.framework.Util;

/**
 * The applet's RAM, allocated once at install, all CLEAR_ON_DESELECT. By lifetime:
 *
 * - One command (owned by Io): the command/response buffer, the chain state and the
 *   response being sent or kept for GET RESPONSE. It outlives an APDU only while a chain
 *   is open or a response is pending; process() zeroes the buffer at the end of every
 *   command (Io.wipe) and an error drops the chain and the pending response (Io.reset).
 * - One selection (a session): the selected certificate EF and the security environment
 *   (MSE SET references). select() clears them (clear()), deselection and card reset too.
 *   The PIN's "verified" state has the same lifetime but is the OwnerPIN's own.
 * - One card reset (CLEAR_ON_RESET, surviving a deselection): none. The applet is not
 *   multiselectable and nothing may outlive its session, so deselection, which a reset
 *   implies, ends all of it.
 *
 * Persistent holds everything that outlives a card reset; SecureChannel keeps its own
 * scratch (CLEAR_ON_DESELECT, one secured command).
 */
final class Transients {
    /** Command data (all chained / extended parts), handler scratch and response data. */
    final byte[] buffer;
    /** Response source other than buffer (READ BINARY's certificate), this command only; null: buffer. */
    final Object[] responseSource;

    // indexes into shorts: one command (Io)
    static final byte S_RECEIVED = 0;        // data bytes received for the current command / chain
    static final byte S_RESPONSE_OFFSET = 1; // where this command's response starts in its source
    static final byte S_PENDING_OFFSET = 2;  // the rest GET RESPONSE will send: buffer[offset ..
    static final byte S_PENDING_LENGTH = 3;  // .. offset + length); 0 = nothing pending
    static final byte SHORT_COUNT = 4;
    final short[] shorts;

    // indexes into bytes: one command (Io)
    static final byte B_CHAIN_OPEN = 0;
    static final byte B_CHAIN_INS = 1;
    static final byte B_CHAIN_P1 = 2;
    static final byte B_CHAIN_P2 = 3;
    // one selection
    static final byte B_SELECTED_EF = 4;    // slot whose certificate EF is selected, 0 = none
    static final byte B_DST_PRIVATE = 5;    // MSE SET references, 0 = default
    static final byte B_DST_PUBLIC = 6;
    static final byte B_CT_PRIVATE = 7;
    static final byte B_CT_PUBLIC = 8;
    static final byte BYTE_COUNT = 9;
    final byte[] bytes;

    Transients(short bufferSize) {
        buffer = JCSystem.makeTransientByteArray(bufferSize, JCSystem.CLEAR_ON_DESELECT);
        responseSource = JCSystem.makeTransientObjectArray((short) 1, JCSystem.CLEAR_ON_DESELECT);
        shorts = JCSystem.makeTransientShortArray(SHORT_COUNT, JCSystem.CLEAR_ON_DESELECT);
        bytes = JCSystem.makeTransientByteArray(BYTE_COUNT, JCSystem.CLEAR_ON_DESELECT);
    }

    /** Back to the state right after selection: no chain, no pending response, no EF, default references. */
    void clear() {
        Util.arrayFillNonAtomic(bytes, (short) 0, BYTE_COUNT, (byte) 0);
        for (short i = 0; i < SHORT_COUNT; i++) {
            shorts[i] = (short) 0;
        }
    }

    /**
     * A handler's response: buffer[off .. off + len) moved to offset 0, where process()
     * sends it from (Util copies overlapping ranges as if through a temporary array).
     * Returns len, for "return t.response(out, n);".
     */
    short response(short off, short len) {
        Util.arrayCopyNonAtomic(buffer, off, buffer, (short) 0, len);
        return len;
    }
}
