package org.cardshield.applet;

import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.JCSystem;
import javacard.framework.Util;
import javacard.security.ECPublicKey;
import javacard.security.PublicKey;
import javacard.security.RSAPublicKey;
import javacard.security.Signature;

/**
 * GENERATE ASYMMETRIC KEY PAIR (ISO/IEC 7816-8 clause 5.1): P1=80 regenerates a slot's key
 * pair on the card (patent steps 502-505), P1=81 reads its public key (steps 507-509).
 * The public key goes out as 7F49 {81 modulus, 82 exponent} or 7F49 {86 point}.
 */
final class KeyHandler {
    private static final byte P1_GENERATE = (byte) 0x80;
    private static final byte P1_READ = (byte) 0x81;
    /** key pairs generated before giving up on a card whose pairs keep failing the test */
    private static final short MAX_GENERATIONS = 5;
    private static final short TEST_MESSAGE_LENGTH = 32;

    private final Persistent state;
    private final Transients t;
    private final Crypto crypto;

    KeyHandler(Persistent state, Transients t, Crypto crypto) {
        this.state = state;
        this.t = t;
        this.crypto = crypto;
    }

    /** Header: P1 80 (generate) or 81 (read), P2 the slot; returns the slot. */
    KeySlot check(byte p1, byte p2) {
        if (p1 != P1_GENERATE && p1 != P1_READ) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        return state.slot(p2);
    }

    /** Generates (P1=80) or reads the slot's key; the response is its 7F49 public key. */
    short generateOrRead(byte p1, KeySlot slot) {
        if (p1 == P1_GENERATE) {
            state.requireIssued();
            state.requirePinVerified();
            // the old key and its certificate are gone before generation starts: a torn
            // generation leaves an empty slot, never a certificate for another key
            JCSystem.beginTransaction();
            slot.keyPresent = false;
            CertificateStore.discard(slot);
            JCSystem.commitTransaction();
            generateConsistentPair(slot, (short) 0);
            slot.keyPresent = true;
        } else {
            Persistent.requireKey(slot);
        }
        return encodePublicKey(slot.keyPair.getPublic(), t.buffer, (short) 0);
    }

    /**
     * Pairwise consistency test (FIPS 140-2 4.9.2): a signature made with the new private key
     * must verify with the new public key before the pair is used, else the pair is generated
     * again. Found needed on the virtual card, where about 2 % of jcardsim's RSA-2048 pairs
     * give SHA256withRSA signatures that never verify; a faulty RSA-CRT signature can also
     * reveal a prime factor, so a card must never release one. The slot stays empty (6985)
     * if MAX_GENERATIONS pairs in a row fail. Uses t.buffer[scratch .. scratch + 32 + modulus)
     * (the attestation key is generated while the secure channel's counter is still there);
     * an RSA pair needs scratch + 32 + 2 * modulus + RsaSigner.HASH_ROOM.
     */
    void generateConsistentPair(KeySlot slot, short scratch) {
        Signature ecdsa = crypto.ecdsaSha256;
        short sigAt = (short) (scratch + TEST_MESSAGE_LENGTH);
        for (short attempt = 0; attempt < MAX_GENERATIONS; attempt++) {
            slot.keyPair.genKeyPair();
            if (slot.isRsa()) {
                // the signing path itself, fault check included (RsaSigner)
                if (crypto.rsaSigner.trySign(slot.keyPair, RsaSigner.PREFIX_SHA256, t.buffer, scratch,
                        TEST_MESSAGE_LENGTH, sigAt) >= 0) {
                    return;
                }
                continue;
            }
            ecdsa.init(slot.keyPair.getPrivate(), Signature.MODE_SIGN);
            short sigLen = ecdsa.sign(t.buffer, scratch, TEST_MESSAGE_LENGTH, t.buffer, sigAt);
            ecdsa.init(slot.keyPair.getPublic(), Signature.MODE_VERIFY);
            if (ecdsa.verify(t.buffer, scratch, TEST_MESSAGE_LENGTH, t.buffer, sigAt, sigLen)) {
                return;
            }
        }
        ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
    }

    /** Writes the 7F49 data object at off; returns its length. */
    static short encodePublicKey(PublicKey key, byte[] buf, short off) {
        if (key instanceof ECPublicKey) {
            // 7F49 43 86 41 04||X||Y
            short pointLen = ((ECPublicKey) key).getW(buf, (short) (off + 5));
            buf[off] = (byte) 0x7F;
            buf[(short) (off + 1)] = (byte) 0x49;
            buf[(short) (off + 2)] = (byte) (pointLen + 2);
            buf[(short) (off + 3)] = (byte) 0x86;
            buf[(short) (off + 4)] = (byte) pointLen;
            return (short) (pointLen + 5);
        }
        RSAPublicKey rsa = (RSAPublicKey) key;
        short expLen = rsa.getExponent(buf, off); // parked at off, moved below
        short modLen = (short) (rsa.getSize() / 8);
        short modTlv = (short) (1 + Tlv.lengthSize(modLen) + modLen);
        short inner = (short) (modTlv + 2 + expLen);
        short p = (short) (off + 2 + Tlv.lengthSize(inner));
        short expValue = (short) (p + modTlv + 2);
        Util.arrayCopyNonAtomic(buf, off, buf, expValue, expLen);
        buf[off] = (byte) 0x7F;
        buf[(short) (off + 1)] = (byte) 0x49;
        Tlv.putLength(buf, (short) (off + 2), inner);
        buf[p] = (byte) 0x81;
        p = Tlv.putLength(buf, (short) (p + 1), modLen);
        rsa.getModulus(buf, p);
        p += modLen;
        buf[p] = (byte) 0x82;
        buf[(short) (p + 1)] = (byte) expLen;
        return (short) (expValue + expLen - off);
    }
}
