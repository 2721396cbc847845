package org.cardshield.applet;

import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.Util;
import javacard.security.Signature;

/**
 * SIGN TRANSACTION (patent steps 605-607 with PSD2 dynamic linking: amount, currency, payee,
 * order reference and server nonce are bound into the signature together with the card's
 * own counter) and PROVE POSSESSION (claim 7, enrollment steps 507-510).
 */
final class TransactionSigner {
    private static final byte[] TRANSACTION_MAGIC = { (byte) 'C', (byte) 'S', (byte) 'T', (byte) 'X', (byte) '1' };
    private static final byte[] REQUEST_MAGIC = { (byte) 'C', (byte) 'S', (byte) 'R', (byte) 'Q', (byte) '1' };
    private static final byte[] POSSESSION_MAGIC = { (byte) 'C', (byte) 'S', (byte) 'P', (byte) 'O', (byte) 'P',
            (byte) '1' };
    private static final byte TAG_SERVER_SIGNATURE = (byte) 0x8E;
    private static final byte TAG_COUNTER = (byte) 0x86;
    private static final byte TAG_SIGNATURE = (byte) 0x9E;
    /** Tags 81..85 in order, with their minimum and maximum value lengths. */
    private static final byte[] FIELD_LIMITS = { 1, 8, 3, 3, 1, 64, 1, 64, 16, 32 };

    private final Persistent state;
    private final Transients t;
    private final Crypto crypto;

    TransactionSigner(Persistent state, Transients t, Crypto crypto) {
        this.state = state;
        this.t = t;
        this.crypto = crypto;
    }

    private KeySlot signingSlot(byte p1, byte p2) {
        if (p1 != 0) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        KeySlot slot = state.slot(p2);
        state.requireIssued();
        Persistent.requireKey(slot);
        state.requirePinVerified();
        return slot;
    }

    /** SIGN TRANSACTION on len bytes of 81..85 [8E] in t.buffer; response 86 04 counter || 9E signature. */
    short signTransaction(byte p1, byte p2, short len) {
        KeySlot slot = signingSlot(p1, p2);
        byte[] b = t.buffer;
        short fieldsEnd = parseFields(b, len);

        // optional / required server authorisation of the request (8E over "CSRQ1" || 81..85)
        if (fieldsEnd < len) {
            verifyServerSignature(b, fieldsEnd, len);
        } else if (slot.hasPolicy(Constants.POLICY_SERVER_SIGNED)) {
            ISOException.throwIt(ISO7816.SW_SECURITY_STATUS_NOT_SATISFIED);
        }

        state.consumePinForPrivateKeyUse(slot);
        state.incrementCounter();
        // response 86 04 counter || 9E L signature, built where the 8E object was
        short out = fieldsEnd;
        b[out] = TAG_COUNTER;
        b[(short) (out + 1)] = 4;
        Util.arrayCopyNonAtomic(state.counter, (short) 0, b, (short) (out + 2), (short) 4);
        // signed: "CSTX1" || 81..85 || 86 04 counter, contiguous in b
        short sigAt = (short) (out + 10);
        short sigLen = crypto.signMessage(slot.keyPair, slot.isRsa(), TRANSACTION_MAGIC, b, (short) 0,
                (short) (out + 6), sigAt);
        return t.response(out, wrapSignature(b, out, sigAt, sigLen));
    }

    /** PROVE POSSESSION of the len-byte challenge in t.buffer; response: the signature. */
    short provePossession(byte p1, byte p2, short len) {
        KeySlot slot = signingSlot(p1, p2);
        if (len < Constants.CHALLENGE_MIN) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        state.consumePinForPrivateKeyUse(slot);
        short out = Constants.CHALLENGE_MAX;
        short sigLen = crypto.signMessage(slot.keyPair, slot.isRsa(), POSSESSION_MAGIC, t.buffer, (short) 0, len, out);
        return t.response(out, sigLen);
    }

    /**
     * Checks 81..85: each once, in order, one-byte lengths within FIELD_LIMITS, currency
     * A-Z. The fields are signed exactly as received, so this strictness makes the signed
     * bytes a unique encoding of the transaction. Returns the offset after 85.
     */
    private static short parseFields(byte[] b, short len) {
        short p = 0;
        for (short i = 0; i < (short) 5; i++) {
            if ((short) (p + 2) > len || b[p] != (byte) (0x81 + i)) {
                ISOException.throwIt(ISO7816.SW_WRONG_DATA);
            }
            short fieldLen = b[(short) (p + 1)]; // negative: long form, refused below
            if (fieldLen < FIELD_LIMITS[(short) (2 * i)] || fieldLen > FIELD_LIMITS[(short) (2 * i + 1)]
                    || (short) (p + 2 + fieldLen) > len) {
                ISOException.throwIt(ISO7816.SW_WRONG_DATA);
            }
            if (i == 1) {
                for (short c = (short) (p + 2); c < (short) (p + 5); c++) {
                    if (b[c] < (byte) 'A' || b[c] > (byte) 'Z') {
                        ISOException.throwIt(ISO7816.SW_WRONG_DATA);
                    }
                }
            }
            p = (short) (p + 2 + fieldLen);
        }
        return p;
    }

    /**
     * 8E must be the only object after 85 and a valid server signature, by the key loaded
     * with PERSONALIZE P1=04: RSA-2048 PKCS#1 v1.5 (exactly the modulus length) or ECDSA
     * P-256 in the plain format r || s (exactly 64 bytes; 6-8 bytes shorter on the wire
     * than DER, which the card rebuilds for Java Card 3.0.4's verifier). A signature of the
     * wrong size for that key is 6A80, one that does not verify 6982.
     */
    private void verifyServerSignature(byte[] b, short fieldsEnd, short len) {
        if (b[fieldsEnd] != TAG_SERVER_SIGNATURE) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        short sigLen = Tlv.length(b, (short) (fieldsEnd + 1), len);
        short sigOff = Tlv.valueOffset(b, (short) (fieldsEnd + 1), len);
        if ((short) (sigOff + sigLen) != len) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        if (!state.serverKeyLoaded) {
            ISOException.throwIt(Constants.SW_REFERENCE_NOT_FOUND);
        }
        Signature verifier;
        if (state.serverKeyAlgorithm == Constants.ALG_EC_P256) {
            if (sigLen != Constants.ECDSA_P256_PLAIN_BYTES) {
                ISOException.throwIt(ISO7816.SW_WRONG_DATA);
            }
            // the DER form goes after the command data: fields and r || s end at len, and
            // the buffer holds 2 x modulus + 320 bytes, far more than 247 + 72
            sigLen = plainToDer(b, sigOff, len);
            sigOff = len;
            verifier = crypto.ecdsaSha256; // present: P1=04 takes an EC key only on a card with ECDSA
            verifier.init(state.serverKeyEc, Signature.MODE_VERIFY);
        } else {
            if (sigLen != Constants.RSA_2048_BYTES) {
                ISOException.throwIt(ISO7816.SW_WRONG_DATA);
            }
            verifier = crypto.rsaSha256;
            verifier.init(state.serverKey, Signature.MODE_VERIFY);
        }
        verifier.update(REQUEST_MAGIC, (short) 0, (short) REQUEST_MAGIC.length);
        if (!verifier.verify(b, (short) 0, fieldsEnd, b, sigOff, sigLen)) {
            ISOException.throwIt(ISO7816.SW_SECURITY_STATUS_NOT_SATISFIED);
        }
    }

    /**
     * ECDSA r || s (32 bytes each) at b[sig..] as DER SEQUENCE { INTEGER r, INTEGER s }
     * (SEC 1 C.8, minimal unsigned encodings) at b[out..]; returns the DER length (8-72).
     */
    private static short plainToDer(byte[] b, short sig, short out) {
        short p = derInteger(b, sig, (short) (out + 2));
        p = derInteger(b, (short) (sig + 32), p);
        b[out] = (byte) 0x30;
        b[(short) (out + 1)] = (byte) (p - out - 2);
        return (short) (p - out);
    }

    /** The 32-byte unsigned big-endian b[v..v+32) as a DER INTEGER at b[p..]; returns its end. */
    private static short derInteger(byte[] b, short v, short p) {
        short end = (short) (v + 32);
        short start = v;
        while (start < (short) (end - 1) && b[start] == 0) {
            start++;
        }
        short valueLen = (short) (end - start);
        boolean pad = b[start] < 0; // high bit set: a 00 keeps the INTEGER positive
        b[p] = (byte) 0x02;
        b[(short) (p + 1)] = (byte) (pad ? valueLen + 1 : valueLen);
        p = (short) (p + 2);
        if (pad) {
            b[p] = 0;
            p++;
        }
        return Util.arrayCopyNonAtomic(b, start, b, p, valueLen);
    }

    /** Puts the 9E header right before the signature written at sigAt; returns the response length. */
    private static short wrapSignature(byte[] b, short out, short sigAt, short sigLen) {
        short header = (short) (1 + Tlv.lengthSize(sigLen));
        short valueAt = (short) (out + 6 + header);
        if (valueAt != sigAt) {
            Util.arrayCopyNonAtomic(b, sigAt, b, valueAt, sigLen);
        }
        b[(short) (out + 6)] = TAG_SIGNATURE;
        Tlv.putLength(b, (short) (out + 7), sigLen);
        return (short) (6 + header + sigLen);
    }
}
