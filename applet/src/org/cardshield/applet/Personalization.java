package org.cardshield.applet;

import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.JCSystem;

/**
 * PERSONALIZE and ISSUE (proprietary, patent's OTA module: the issuer sets PIN, PUK, slot
 * algorithms and policies and the server key, then locks the card). The attestation steps
 * P1=05/06 are not here: they exist only behind the secure channel (Attestation). Works on data that is
 * already complete and unwrapped: from plain APDUs on a development card, or from the
 * personalization secure channel (SecureChannel, install tag C0); both call
 * {@link #personalize} and {@link #issue}.
 *
 * Each step is split in two. {@link #prepare} checks the data and does the large writes
 * that need no journal: allocating a slot's key objects, setting the server key's
 * components (with the "loaded" flag cleared first). {@link #apply} and {@link #issue} then
 * make the step count with a few small writes (a policy byte, a flag, the lifecycle): the
 * secure channel runs them inside its transaction with its counter, so the commit buffer
 * holds tens of bytes, not a 256-byte modulus (docs/applet.md, "Commit buffer per
 * command"). A tear between the two leaves the step incomplete and its counter unused:
 * the issuer sends the same command again and it completes.
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

    /**
     * A plain step on a development card: prepare, then apply in its own small transaction
     * (a step's small writes, e.g. a slot's policy and its "configured" mark, are seen
     * together or not at all, as in the secure channel's transaction).
     */
    void personalize(byte p1, byte p2, byte[] buf, short off, short len) {
        prepare(p1, p2, buf, off, len);
        JCSystem.beginTransaction();
        apply(p1, p2, buf, off, len);
        JCSystem.commitTransaction(); // an exception leaves it to process(), which aborts
    }

    /** Plain ISSUE on a development card: the same split and transaction as personalize(). */
    void issuePlain() {
        prepareIssue();
        JCSystem.beginTransaction();
        issue();
        JCSystem.commitTransaction();
    }

    /**
     * The checks and the unjournalled work of a step (data buf[off .. off+len)), before the
     * secure channel's transaction: key objects allocated, server key components set.
     */
    void prepare(byte p1, byte p2, byte[] buf, short off, short len) {
        requirePersonalizationState();
        if (p1 != P1_CONFIGURE_SLOT && p2 != 0) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        if (p1 == P1_CONFIGURE_SLOT) {
            KeySlot slot = state.slot(p2);
            allocate(slot, checkSlotConfiguration(slot, buf, off, len));
        } else if (p1 == P1_SERVER_KEY) {
            loadServerKey(buf, off, len);
        }
    }

    /** The part of a step that must be atomic with the secure channel's counter: small writes. */
    void apply(byte p1, byte p2, byte[] buf, short off, short len) {
        requirePersonalizationState();
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
                KeySlot slot = state.slot(p2);
                checkSlotConfiguration(slot, buf, off, len); // allocated by prepare
                slot.policy = buf[(short) (off + 1)];
                slot.configured = true;
                break;
            case P1_SERVER_KEY:
                if (!state.serverKeyLoaded) { // components set by prepare
                    state.serverKeyLoaded = true;
                }
                break;
            default:
                ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
    }

    /** Checks algorithm || policy for the slot; returns the algorithm. */
    private byte checkSlotConfiguration(KeySlot slot, byte[] buf, short off, short len) {
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
        return algorithm;
    }

    /**
     * Fixes the slot's algorithm (outside any transaction). The RSA-2048 key objects exist
     * since install (Persistent), so the default algorithm allocates nothing here; another
     * one gets its objects once, reused if an earlier, torn step already built them, and
     * the unused RSA-2048 objects are released where the card deletes objects.
     */
    private void allocate(KeySlot slot, byte algorithm) {
        if (slot.algorithm != Constants.ALG_NONE) {
            return;
        }
        if (!crypto.holds(slot.keyPair, algorithm)) {
            slot.keyPair = crypto.buildKeyPair(algorithm);
            if (JCSystem.isObjectDeletionSupported()) {
                JCSystem.requestObjectDeletion();
            }
        }
        slot.algorithm = algorithm;
    }

    /**
     * The server (bank) key that verifies request signatures 8E, exactly one of
     * 7F49 { 81 modulus (256 bytes), 82 exponent (1-4 bytes) }   RSA-2048, or
     * 7F49 { 86 04 || X || Y (65 bytes) }                          EC P-256 (6A81 on a card without EC).
     * Not journalled: the "loaded" flag is cleared first, so a tear leaves "no server key",
     * never a mixture; apply() sets it again in the step's transaction.
     */
    private void loadServerKey(byte[] buf, short off, short len) {
        short end = (short) (off + len);
        if (len < 4 || buf[off] != (byte) 0x7F || buf[(short) (off + 1)] != (byte) 0x49) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        short inner = Tlv.valueOffset(buf, (short) (off + 2), end);
        if ((short) (inner + Tlv.length(buf, (short) (off + 2), end)) != end) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        if (buf[inner] == (byte) 0x86) {
            loadServerKeyEc(buf, inner, end);
            return;
        }
        if (buf[inner] != (byte) 0x81) {
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
        state.serverKeyAlgorithm = Constants.ALG_RSA_2048;
    }

    /** 86 41 04 || X || Y at buf[tag .. end), exactly (SEC 1 2.3.3, uncompressed). */
    private void loadServerKeyEc(byte[] buf, short tag, short end) {
        short pointLen = Tlv.length(buf, (short) (tag + 1), end);
        short point = Tlv.valueOffset(buf, (short) (tag + 1), end);
        if (pointLen != Constants.EC_P256_POINT_BYTES || (short) (point + pointLen) != end
                || buf[point] != (byte) 0x04) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        crypto.requireAvailable(Constants.ALG_EC_P256);
        if (state.serverKeyEc == null) {
            // once in the card's life, stored at once: the domain parameters are set below
            // on every load, so a tear after this store leaves a usable object, not an orphan
            state.serverKeyEc = Crypto.buildEcPublicKey();
        }
        state.serverKeyLoaded = false;
        Crypto.setP256(state.serverKeyEc);
        state.serverKeyEc.setW(buf, point, pointLen); // ILLEGAL_VALUE (6A80) where the card checks the curve
        state.serverKeyAlgorithm = Constants.ALG_EC_P256;
    }

    /**
     * ISSUE: one way to ISSUED. An unconfigured payment slot gets the bank's default, RSA-2048
     * with PIN per signature and server-signed requests, which needs the server key (6985
     * without it); only an explicit P1=03 relaxes it (and ATTEST reports what was chosen).
     * An unconfigured slot 02 gets RSA-2048 without policy flags.
     */
    void issue() {
        prepareIssue();
        KeySlot payment = state.slot1;
        if (!payment.configured) {
            payment.policy = (byte) (Constants.POLICY_PIN_PER_SIGNATURE | Constants.POLICY_SERVER_SIGNED);
        }
        state.issue();
    }

    /** ISSUE's checks and the allocation of unconfigured slots, before any transaction. */
    void prepareIssue() {
        requirePersonalizationState();
        if (!state.pinSet || !state.pukSet) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        if (!state.slot1.configured && !state.serverKeyLoaded) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        allocate(state.slot1, Constants.ALG_RSA_2048);
        allocate(state.slot2, Constants.ALG_RSA_2048);
    }
}
