package org.cardshield.applet;

import javacard.framework.APDU;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.OwnerPIN;

/**
 * The patent's security module user verification: VERIFY (ISO/IEC 7816-4 clause 11.5.6),
 * CHANGE REFERENCE DATA (11.5.7), RESET RETRY COUNTER (11.5.10). PIN 81: 4-12 ASCII digits,
 * 3 tries; PUK 82: 8 digits, 10 tries; a blocked PUK terminates the card.
 */
final class PinHandler {
    private static final short PADDED = (short) 12;

    private final Persistent state;
    private final Transients t;
    private final Io io;

    PinHandler(Persistent state, Transients t, Io io) {
        this.state = state;
        this.t = t;
        this.io = io;
    }

    void verify(APDU apdu, byte p1, byte p2, boolean chained) {
        if (p2 != Constants.REF_PIN) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        if (p1 == (byte) 0xFF) {
            io.requireNoData(apdu, chained);
            state.pin.reset();
            return;
        }
        if (p1 != 0) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        if (!io.receive(apdu, chained, t.buffer, Constants.PIN_MAX, ISO7816.SW_WRONG_LENGTH)) {
            return;
        }
        short len = io.received();
        if (!state.pinSet) {
            ISOException.throwIt(Constants.SW_REFERENCE_NOT_USABLE);
        }
        if (len == 0) {
            // status query: verified in this session, or the tries left
            if (!state.pin.isValidated()) {
                throwTries(state.pin);
            }
            return;
        }
        try {
            requireDigits(t.buffer, (short) 0, len, Constants.PIN_MIN, Constants.PIN_MAX);
            check(state.pin, t.buffer, (short) 0, len);
        } finally {
            io.wipe(apdu, len);
        }
    }

    void changeReferenceData(APDU apdu, byte p1, byte p2, boolean chained) {
        if (p1 != 0 || (p2 != Constants.REF_PIN && p2 != Constants.REF_PUK)) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        if (!io.receive(apdu, chained, t.buffer, (short) (2 * PADDED), ISO7816.SW_WRONG_LENGTH)) {
            return;
        }
        try {
            if (io.received() != (short) (2 * PADDED)) {
                ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
            }
            change(p2 == Constants.REF_PIN);
        } finally {
            io.wipe(apdu, io.received());
        }
    }

    private void change(boolean isPin) {
        byte min = isPin ? Constants.PIN_MIN : Constants.PUK_LENGTH;
        byte max = isPin ? Constants.PIN_MAX : Constants.PUK_LENGTH;
        short oldLen = unpaddedDigits(t.buffer, (short) 0, min, max);
        short newLen = unpaddedDigits(t.buffer, PADDED, min, max);
        OwnerPIN ref = isPin ? state.pin : state.puk;
        if (!(isPin ? state.pinSet : state.pukSet)) {
            ISOException.throwIt(Constants.SW_REFERENCE_NOT_USABLE);
        }
        check(ref, t.buffer, (short) 0, oldLen);
        ref.update(t.buffer, PADDED, (byte) newLen);
    }

    void resetRetryCounter(APDU apdu, byte p1, byte p2, boolean chained) {
        if (p1 != 0 || p2 != Constants.REF_PIN) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        short max = (short) (Constants.PUK_LENGTH + Constants.PIN_MAX);
        if (!io.receive(apdu, chained, t.buffer, max, ISO7816.SW_WRONG_LENGTH)) {
            return;
        }
        short len = io.received();
        try {
            unblock(len);
        } finally {
            io.wipe(apdu, len);
        }
    }

    private void unblock(short len) {
        short max = (short) (Constants.PUK_LENGTH + Constants.PIN_MAX);
        short pinLen = (short) (len - Constants.PUK_LENGTH);
        if (pinLen < Constants.PIN_MIN) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        requireDigits(t.buffer, (short) 0, len, (short) 1, max);
        if (!state.pukSet || !state.pinSet) {
            ISOException.throwIt(Constants.SW_REFERENCE_NOT_USABLE);
        }
        check(state.puk, t.buffer, (short) 0, Constants.PUK_LENGTH);
        state.puk.reset();
        state.pin.update(t.buffer, Constants.PUK_LENGTH, (byte) pinLen);
    }

    /** OwnerPIN check with the ISO answers: 6983 blocked, 63Cx wrong (x tries left). */
    private void check(OwnerPIN ref, byte[] buf, short off, short len) {
        if (ref.getTriesRemaining() == 0) {
            ISOException.throwIt(Constants.SW_AUTH_BLOCKED);
        }
        if (!ref.check(buf, off, (byte) len)) {
            if (ref == state.puk) {
                state.terminateIfPukBlocked();
            }
            // 63C0 on the try that blocks it (ISO/IEC 7816-4 clause 11.5.6); 6983 afterwards
            ISOException.throwIt((short) (Constants.SW_TRIES_LEFT_BASE | ref.getTriesRemaining()));
        }
    }

    private static void throwTries(OwnerPIN ref) {
        byte tries = ref.getTriesRemaining();
        if (tries == 0) {
            ISOException.throwIt(Constants.SW_AUTH_BLOCKED);
        }
        ISOException.throwIt((short) (Constants.SW_TRIES_LEFT_BASE | tries));
    }

    /** 6700 unless min <= len <= max, 6A80 unless all ASCII digits. */
    static void requireDigits(byte[] buf, short off, short len, short min, short max) {
        if (len < min || len > max) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        for (short i = off; i < (short) (off + len); i++) {
            if (buf[i] < (byte) '0' || buf[i] > (byte) '9') {
                ISOException.throwIt(ISO7816.SW_WRONG_DATA);
            }
        }
    }

    /** Length of an FF-padded 12-byte digit field; 6A80 if malformed or outside min..max. */
    private static short unpaddedDigits(byte[] buf, short off, short min, short max) {
        short len = 0;
        while (len < PADDED && buf[(short) (off + len)] != (byte) 0xFF) {
            len++;
        }
        for (short i = len; i < PADDED; i++) {
            if (buf[(short) (off + i)] != (byte) 0xFF) {
                ISOException.throwIt(ISO7816.SW_WRONG_DATA);
            }
        }
        if (len < min || len > max) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        requireDigits(buf, off, len, min, max);
        return len;
    }
}
