package org.cardshield.applet;

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
    /** CHANGE REFERENCE DATA: old and new value, each FF-padded to 12 bytes */
    static final short CHANGE_LENGTH = (short) (2 * PADDED);
    /** RESET RETRY COUNTER: PUK (8) and a new PIN (4-12) */
    static final short UNBLOCK_MAX = (short) (Constants.PUK_LENGTH + Constants.PIN_MAX);

    private final Persistent state;
    private final Transients t;

    PinHandler(Persistent state, Transients t) {
        this.state = state;
        this.t = t;
    }

    /** VERIFY header: true for P1=00 (a PIN or a status query follows), false for P1=FF (no data). */
    boolean checkVerify(byte p1, byte p2) {
        if (p2 != Constants.REF_PIN) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        if (p1 == (byte) 0xFF) {
            return false;
        }
        if (p1 != 0) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        return true;
    }

    /** VERIFY P1=FF: the PIN is no longer verified (ISO/IEC 7816-4 clause 11.5.6). */
    void logout() {
        state.pin.reset();
    }

    /** VERIFY P1=00 with the PIN (len bytes in t.buffer), or without data: the status query. */
    void verify(short len) {
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
        requireDigits(t.buffer, (short) 0, len, Constants.PIN_MIN, Constants.PIN_MAX);
        check(state.pin, t.buffer, (short) 0, len);
    }

    void checkChangeReferenceData(byte p1, byte p2) {
        if (p1 != 0 || (p2 != Constants.REF_PIN && p2 != Constants.REF_PUK)) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
    }

    /** CHANGE REFERENCE DATA: old || new, each FF-padded to 12 bytes, in t.buffer. */
    void changeReferenceData(byte p2, short len) {
        if (len != CHANGE_LENGTH) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        change(p2 == Constants.REF_PIN);
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

    void checkResetRetryCounter(byte p1, byte p2) {
        if (p1 != 0 || p2 != Constants.REF_PIN) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
    }

    /** RESET RETRY COUNTER: PUK || new PIN (len bytes in t.buffer). */
    void resetRetryCounter(short len) {
        short pinLen = (short) (len - Constants.PUK_LENGTH);
        if (pinLen < Constants.PIN_MIN) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        requireDigits(t.buffer, (short) 0, len, (short) 1, UNBLOCK_MAX);
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
