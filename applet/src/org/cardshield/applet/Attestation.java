package org.cardshield.applet;

import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.JCSystem;
import javacard.framework.Util;
import javacard.security.RSAPublicKey;

/**
 * Card attestation (docs/apdu.md: PERSONALIZE P1=05 and P1=06, ATTEST). The issuer has the
 * card generate an attestation key under the personalization secure channel, gets its
 * public key back under the receipt MAC, certifies it and writes the certificate (EF C1 0A).
 * ATTEST then signs, with that key only, a statement about a slot key: its hash, algorithm
 * and policy, the card id, the applet version, the counter and the server's challenge
 * (like a YubiKey PIV attestation by slot F9). Persistent.slot() never returns the
 * attestation key, so no other command can use it; the steps P1=05/06 are reached only
 * from SecureChannel (CardShieldApplet refuses them in plain).
 */
final class Attestation {
    static final byte P1_KEY = (byte) 0x05;
    static final byte P1_CERTIFICATE = (byte) 0x06;
    private static final byte P2_LAST_PART = (byte) 0x80;
    private static final byte P2_NEXT_PART = (byte) 0x01;

    /** Domain separation: no other signature of the card starts with "CSATT1". */
    private static final byte[] STATEMENT_PREFIX = { (byte) 'C', (byte) 'S', (byte) 'A', (byte) 'T', (byte) 'T',
            (byte) '1' };
    private static final byte STATEMENT_VERSION = (byte) 1;
    private static final byte TAG_STATEMENT = (byte) 0x70;
    private static final byte TAG_SIGNATURE = (byte) 0x9E;
    /** where ATTEST writes the statement: after the challenge */
    private static final short STATEMENT = Constants.CHALLENGE_MAX;
    /** scratch for the slot's public key DO being hashed: after the longest statement */
    private static final short KEY_SCRATCH = (short) 256;

    private final Persistent state;
    private final Transients t;
    private final Crypto crypto;
    private final KeyHandler keys;
    private final SecureChannel secureChannel;

    Attestation(Persistent state, Transients t, Crypto crypto, KeyHandler keys, SecureChannel secureChannel) {
        this.state = state;
        this.t = t;
        this.crypto = crypto;
        this.keys = keys;
        this.secureChannel = secureChannel;
    }

    // ------------------------------------------------ PERSONALIZE P1=05: the attestation key

    /**
     * Before the secure channel's transaction: the key objects are built once (first P1=05),
     * the old key and certificate are dropped in a small transaction, then the pair is
     * generated and tested outside any transaction (a torn generation leaves no key and an
     * unconsumed counter: the issuer sends the same command again).
     */
    void prepareKey(byte p2, short len, short scratch) {
        requirePersonalization();
        if (p2 != 0) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        if (len != 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        KeySlot key = state.attestation;
        if (key.algorithm == Constants.ALG_NONE) {
            key.keyPair = crypto.buildKeyPair(Constants.ALG_RSA_2048);
            key.algorithm = Constants.ALG_RSA_2048;
        }
        JCSystem.beginTransaction();
        key.keyPresent = false;
        CertificateStore.discard(key);
        state.attestationStaged = (short) -1;
        JCSystem.commitTransaction();
        keys.generateConsistentPair(key, scratch);
    }

    /** Inside the transaction: the key counts from now on; response 7F49 {81, 82}. */
    short applyKey(byte[] out, short outOff) {
        KeySlot key = state.attestation;
        key.keyPresent = true;
        return KeyHandler.encodePublicKey(key.keyPair.getPublic(), out, outOff);
    }

    // ------------------------------------------------ PERSONALIZE P1=06: its certificate

    /**
     * One part of the attestation certificate, inside the secure channel's transaction.
     * P2 00 starts a new write, 01 continues it; bit 80 marks the last part, which checks
     * the whole (one DER SEQUENCE holding the attestation key's modulus) and swaps it in.
     * The parts are copied without journalling (the staged count is journalled): a torn
     * or refused write keeps the previous certificate. scratch: 256 free bytes.
     */
    void applyCertificatePart(byte p2, byte[] buf, short off, short len, byte[] scratch, short scratchOff) {
        requirePersonalization();
        byte sequence = (byte) (p2 & ~P2_LAST_PART);
        if (sequence != 0 && sequence != P2_NEXT_PART) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        KeySlot key = state.attestation;
        if (!key.keyPresent) {
            ISOException.throwIt(Constants.SW_REFERENCE_NOT_FOUND);
        }
        short have = sequence == 0 ? 0 : state.attestationStaged;
        if (have < 0) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED); // a next part without a first
        }
        if (len > (short) (state.maxCertificate - have)) {
            ISOException.throwIt(Constants.SW_NOT_ENOUGH_MEMORY);
        }
        Util.arrayCopyNonAtomic(buf, off, state.staging, have, len);
        have += len;
        if ((byte) (p2 & P2_LAST_PART) == 0) {
            state.attestationStaged = have;
            return;
        }
        if (have == 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        CertificateStore.requireSingleDerSequence(state.staging, have);
        requireModulus(state.staging, have, scratch, scratchOff);
        CertificateStore.hashStaging(crypto, state, have, scratch, scratchOff);
        CertificateStore.swapIn(state, key, have, scratch, scratchOff);
        state.attestationStaged = (short) -1;
    }

    /** 6A80 unless der[0..length) contains the attestation key's modulus: the card refuses a
     * certificate for any other key. */
    private void requireModulus(byte[] der, short length, byte[] scratch, short scratchOff) {
        short modLen = ((RSAPublicKey) state.attestation.keyPair.getPublic()).getModulus(scratch, scratchOff);
        byte first = scratch[scratchOff];
        short last = (short) (length - modLen);
        for (short i = 0; i <= last; i++) {
            if (der[i] == first && Util.arrayCompare(der, i, scratch, scratchOff, modLen) == 0) {
                return;
            }
        }
        ISOException.throwIt(ISO7816.SW_WRONG_DATA);
    }

    private void requirePersonalization() {
        if (state.lifecycle() != Constants.LIFECYCLE_PERSONALIZATION) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
    }

    // ------------------------------------------------ ATTEST 80 58 00 0n challenge

    /**
     * The statement 70 { 80 version, 8A card id, 81 applet version, 82 slot, 83 algorithm,
     * 84 policy, 85 SHA-256(slot public key DO), 86 challenge, 87 counter } followed by
     * 9E signature = RSA PKCS#1 v1.5 SHA-256 over "CSATT1" || statement. No PIN: it reveals
     * only what READ PUBLIC KEY and the FCI show, signed.
     */
    short attest(byte p1, byte p2, short challengeLen) {
        if (p1 != 0) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        KeySlot slot = state.slot(p2);
        state.requireIssued();
        if (challengeLen < Constants.CHALLENGE_MIN) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        Persistent.requireKey(slot);
        KeySlot key = state.attestation;
        if (!key.keyPresent) {
            ISOException.throwIt(Constants.SW_REFERENCE_NOT_FOUND);
        }
        byte[] b = t.buffer;
        short cardIdLen = secureChannel.getCardId(b, KEY_SCRATCH);
        // 80 01 | 8A n | 81 02 | 82 01 | 83 01 | 84 01 | 85 20 | 86 n | 87 04: 60 bytes + card id + challenge
        short bodyLen = (short) (60 + cardIdLen + challengeLen);
        b[STATEMENT] = TAG_STATEMENT;
        short p = Tlv.putLength(b, (short) (STATEMENT + 1), bodyLen); // shortest form (84..140 bytes)
        p = put1(b, p, (byte) 0x80, STATEMENT_VERSION);
        b[p++] = SecureChannel.FCI_TAG_CARD_ID;
        b[p++] = (byte) cardIdLen;
        p = Util.arrayCopyNonAtomic(b, KEY_SCRATCH, b, p, cardIdLen);
        b[p++] = (byte) 0x81;
        b[p++] = 2;
        b[p++] = Constants.VERSION_MAJOR;
        b[p++] = Constants.VERSION_MINOR;
        p = put1(b, p, (byte) 0x82, slot.id);
        p = put1(b, p, (byte) 0x83, slot.algorithm);
        p = put1(b, p, (byte) 0x84, slot.policy);
        b[p++] = (byte) 0x85;
        b[p++] = (byte) Constants.SHA256_LENGTH;
        short doLen = KeyHandler.encodePublicKey(slot.keyPair.getPublic(), b, KEY_SCRATCH);
        crypto.sha256.doFinal(b, KEY_SCRATCH, doLen, b, p);
        p += Constants.SHA256_LENGTH;
        b[p++] = (byte) 0x86;
        b[p++] = (byte) challengeLen;
        p = Util.arrayCopyNonAtomic(b, (short) 0, b, p, challengeLen);
        b[p++] = (byte) 0x87;
        b[p++] = 4;
        p = Util.arrayCopyNonAtomic(state.counter, (short) 0, b, p, (short) 4);
        short statementLen = (short) (p - STATEMENT);
        // 9E 82 01 00 || signature (RSA-2048)
        short sigAt = (short) (p + 4);
        short sigLen = crypto.signMessage(key.keyPair, true, STATEMENT_PREFIX, b, STATEMENT, statementLen, sigAt);
        b[p] = TAG_SIGNATURE;
        Tlv.putLength(b, (short) (p + 1), sigLen);
        return t.response(STATEMENT, (short) (statementLen + 4 + sigLen));
    }

    private static short put1(byte[] b, short p, byte tag, byte value) {
        b[p] = tag;
        b[(short) (p + 1)] = 1;
        b[(short) (p + 2)] = value;
        return (short) (p + 3);
    }
}
