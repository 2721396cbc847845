package org.cardshield.applet;

import javacard.framework.ISO7816;
import javacard.framework.ISOException;

/**
 * PERSONALIZE and ISSUE (proprietary, patent's OTA module: the issuer sets PIN, PUK, slot
 * algorithms and policies and the server key, then locks the card). The attestation steps
 * P1=05/06 are not here: they exist only behind the secure channel (Attestation). Works on data that is
 * already complete and unwrapped: from plain APDUs on a development card, or from the
 * personalization secure channel (SecureChannel, install tag C0); both call
 * {@link #personalize} and {@link #issue}. Both may run inside the secure channel's
 * transaction, so neither opens one.
 */
final class Personalization {
    static final byte P1_SET_PIN = (byte) 0x01;
    static final byte P1_SET_PUK = (byte) 0x02;
    static final byte P1_CONFIGURE_SLOT = (byte) 0x03;
    static final byte P1_SERVER_KEY = (byte) 0x04;

    private final Persistent state;
    private final Crypto crypto;

    Personalization(Persistent state, Crypto crypto) {
        this.state = state;
        this.crypto = crypto;
    }

    /** 6985 unless the card is still in PERSONALIZATION. */
    void requirePersonalizationState() {
        if (state.lifecycle() != Constants.LIFECYCLE_PERSONALIZATION) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
    }

    /** Entry point of every personalization step: data is buf[off .. off+len). */
    void personalize(byte p1, byte p2, byte[] buf, short off, short len) {
        requirePersonalizationState();
        if (p1 != P1_CONFIGURE_SLOT && p2 != 0) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        switch (p1) {
            case P1_SET_PIN:
                PinHandler.requireDigits(buf, off, len, Constants.PIN_MIN, Constants.PIN_MAX);
                state.pin.update(buf, off, (byte) len);
                state.pinSet = true;
                break;
            case P1_SET_PUK:
                PinHandler.requireDigits(buf, off, len, Constants.PUK_LENGTH, Constants.PUK_LENGTH);
                state.puk.update(buf, off, (byte) len);
                state.pukSet = true;
                break;
            case P1_CONFIGURE_SLOT:
                configureSlot(state.slot(p2), buf, off, len);
                break;
            case P1_SERVER_KEY:
                loadServerKey(buf, off, len);
                break;
            default:
                ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
    }

    /** algorithm || policy. The key objects are built here, once in the slot's life. */
    private void configureSlot(KeySlot slot, byte[] buf, short off, short len) {
        if (len != 2) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        byte algorithm = buf[off];
        byte policy = buf[(short) (off + 1)];
        crypto.requireAvailable(algorithm);
        if ((byte) (policy & ~Constants.POLICY_MASK) != 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        if ((byte) (policy & Constants.POLICY_SERVER_SIGNED) != 0 && !state.serverKeyLoaded) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        if (slot.algorithm != Constants.ALG_NONE && slot.algorithm != algorithm) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        allocate(slot, algorithm);
        slot.policy = policy;
    }

    private void allocate(KeySlot slot, byte algorithm) {
        if (slot.algorithm == Constants.ALG_NONE) {
            slot.keyPair = crypto.buildKeyPair(algorithm);
            slot.algorithm = algorithm;
        }
    }

    /** 7F49 { 81 modulus (256 bytes), 82 exponent (1-4 bytes) }, exactly. */
    private void loadServerKey(byte[] buf, short off, short len) {
        short end = (short) (off + len);
        if (len < 4 || buf[off] != (byte) 0x7F || buf[(short) (off + 1)] != (byte) 0x49) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        short inner = Tlv.valueOffset(buf, (short) (off + 2), end);
        if ((short) (inner + Tlv.length(buf, (short) (off + 2), end)) != end || buf[inner] != (byte) 0x81) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        short modLen = Tlv.length(buf, (short) (inner + 1), end);
        short mod = Tlv.valueOffset(buf, (short) (inner + 1), end);
        short expTag = (short) (mod + modLen);
        if (modLen != Constants.RSA_2048_BYTES || buf[mod] >= 0 || (short) (expTag + 2) > end
                || buf[expTag] != (byte) 0x82) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        short expLen = Tlv.length(buf, (short) (expTag + 1), end);
        short exp = (short) (expTag + 2);
        if (expLen < 1 || expLen > 4 || (short) (exp + expLen) != end) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        state.serverKeyLoaded = false;
        state.serverKey.setModulus(buf, mod, modLen);
        state.serverKey.setExponent(buf, exp, expLen);
        state.serverKeyLoaded = true;
    }

    /**
     * ISSUE: one way to ISSUED. An unconfigured payment slot gets the bank's default, RSA-2048
     * with PIN per signature and server-signed requests, which needs the server key (6985
     * without it); only an explicit P1=03 relaxes it (and ATTEST reports what was chosen).
     * An unconfigured slot 02 gets RSA-2048 without policy flags.
     */
    void issue() {
        requirePersonalizationState();
        if (!state.pinSet || !state.pukSet) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        KeySlot payment = state.slot1;
        if (payment.algorithm == Constants.ALG_NONE) {
            if (!state.serverKeyLoaded) {
                ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
            }
            allocate(payment, Constants.ALG_RSA_2048);
            payment.policy = (byte) (Constants.POLICY_PIN_PER_SIGNATURE | Constants.POLICY_SERVER_SIGNED);
        }
        allocate(state.slot2, Constants.ALG_RSA_2048);
        state.issue();
    }
}
