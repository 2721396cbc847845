package org.cardshield.applet;

import javacard.framework.JCSystem;

/**
 * RAM state, CLEAR_ON_DESELECT: it vanishes on deselection and on card reset, which is
 * exactly the lifetime of a chain, a pending response, the selected EF and the security
 * environment. Allocated once at install.
 */
final class Transients {
    /** Command data (all chained / extended parts) and response data. */
    final byte[] buffer;

    // indexes into shorts
    static final byte S_RECEIVED = 0;       // data bytes received for the current command / chain
    static final byte S_RESPONSE_OFFSET = 1;
    static final byte S_RESPONSE_LENGTH = 2;
    static final byte SHORT_COUNT = 3;
    final short[] shorts;

    // indexes into bytes
    static final byte B_CHAIN_OPEN = 0;
    static final byte B_CHAIN_INS = 1;
    static final byte B_CHAIN_P1 = 2;
    static final byte B_CHAIN_P2 = 3;
    static final byte B_SELECTED_EF = 4;    // slot whose certificate EF is selected, 0 = none
    static final byte B_DST_PRIVATE = 5;    // MSE SET references, 0 = default
    static final byte B_DST_PUBLIC = 6;
    static final byte B_CT_PRIVATE = 7;
    static final byte B_CT_PUBLIC = 8;
    static final byte BYTE_COUNT = 9;
    final byte[] bytes;

    Transients(short bufferSize) {
        buffer = JCSystem.makeTransientByteArray(bufferSize, JCSystem.CLEAR_ON_DESELECT);
        shorts = JCSystem.makeTransientShortArray(SHORT_COUNT, JCSystem.CLEAR_ON_DESELECT);
        bytes = JCSystem.makeTransientByteArray(BYTE_COUNT, JCSystem.CLEAR_ON_DESELECT);
    }

    /** Back to the state right after selection. */
    void clear() {
        javacard.framework.Util.arrayFillNonAtomic(bytes, (short) 0, BYTE_COUNT, (byte) 0);
        for (short i = 0; i < SHORT_COUNT; i++) {
            shorts[i] = (short) 0;
        }
    }
}
