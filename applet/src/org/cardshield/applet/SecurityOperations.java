package org.cardshield.applet;

import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.Util;
import javacard.security.CryptoException;
import javacard.security.Key;
import javacard.security.PublicKey;
import javacard.security.RSAPublicKey;
import javacard.security.Signature;
import javacardx.crypto.Cipher;

/**
 * MANAGE SECURITY ENVIRONMENT SET (ISO/IEC 7816-4 clause 11.5.11) and PERFORM SECURITY
 * OPERATION (ISO/IEC 7816-8): COMPUTE DIGITAL SIGNATURE over the server's hashed data
 * (patent steps 605-607), DECIPHER, ENCIPHER, VERIFY DIGITAL SIGNATURE.
 */
final class SecurityOperations {
    private static final byte TEMPLATE_DST = (byte) 0xB6;
    private static final byte TEMPLATE_CT = (byte) 0xB8;
    private static final byte TAG_PRIVATE_KEY_REF = (byte) 0x84;
    private static final byte TAG_PUBLIC_KEY_REF = (byte) 0x83;
    private static final byte PADDING_PKCS1 = (byte) 0x00;
    private static final byte PADDING_OAEP = (byte) 0x02;
    private static final short SHA256_LENGTH = (short) 32;
    private static final short DIGEST_INFO_HEADER = RsaSigner.DIGEST_INFO_HEADER;

    private final Persistent state;
    private final Transients t;
    private final Crypto crypto;

    SecurityOperations(Persistent state, Transients t, Crypto crypto) {
        this.state = state;
        this.t = t;
        this.crypto = crypto;
    }

    /** MSE SET header: P1 41/81, P2 B6 (DST) or B8 (CT). */
    void checkSecurityEnvironment(byte p1, byte p2) {
        if ((p1 != (byte) 0x41 && p1 != (byte) 0x81) || (p2 != TEMPLATE_DST && p2 != TEMPLATE_CT)) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
    }

    /** MSE SET: 84 01 n private key of slot n; 83 01 r public key of slot r or the server (10). */
    void manageSecurityEnvironment(byte p2, short end) {
        byte[] b = t.buffer;
        if (end == 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        byte privateRef = 0;
        byte publicRef = 0;
        for (short p = 0; p < end; p = (short) (p + 3)) {
            if ((short) (p + 3) > end || b[(short) (p + 1)] != 1) {
                ISOException.throwIt(ISO7816.SW_WRONG_DATA);
            }
            byte ref = b[(short) (p + 2)];
            if (b[p] == TAG_PRIVATE_KEY_REF) {
                if (ref != 1 && ref != 2) {
                    ISOException.throwIt(Constants.SW_REFERENCE_NOT_FOUND);
                }
                privateRef = ref;
            } else if (b[p] == TAG_PUBLIC_KEY_REF) {
                if (ref != 1 && ref != 2 && ref != Constants.REF_SERVER_KEY) {
                    ISOException.throwIt(Constants.SW_REFERENCE_NOT_FOUND);
                }
                publicRef = ref;
            } else {
                ISOException.throwIt(ISO7816.SW_WRONG_DATA);
            }
        }
        boolean dst = p2 == TEMPLATE_DST;
        if (privateRef != 0) {
            t.bytes[dst ? Transients.B_DST_PRIVATE : Transients.B_CT_PRIVATE] = privateRef;
        }
        if (publicRef != 0) {
            t.bytes[dst ? Transients.B_DST_PUBLIC : Transients.B_CT_PUBLIC] = publicRef;
        }
    }

    /** PSO header: P1 P2 (the output and input data object tags) name the operation. */
    short operation(byte p1, byte p2) {
        short op = Util.makeShort(p1, p2);
        if (op != (short) 0x9E9A && op != (short) 0x8086 && op != (short) 0x8680 && op != (short) 0x00A8) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        return op;
    }

    /** PSO on len bytes of data in t.buffer; returns the response length. */
    short performSecurityOperation(short op, short len) {
        switch (op) {
            case (short) 0x9E9A:
                return computeDigitalSignature(len);
            case (short) 0x8086:
                return decipher(len);
            case (short) 0x8680:
                return encipher(len);
            default:
                verifyDigitalSignature(len);
                return 0;
        }
    }

    /**
     * The slot of COMPUTE DIGITAL SIGNATURE and DECIPHER. Never the payment slot (6985),
     * whatever its policy: a bare hash can be SHA-256 of a forged "CSTX1" transaction with
     * any counter, and PKCS#1 v1.5 decryption is a raw-RSA signing oracle, both bypassing
     * SIGN TRANSACTION's server signature and counter. Refused before the PIN is looked at.
     */
    private KeySlot privateKeySlot(byte index, byte defaultSlot) {
        state.requireIssued();
        byte ref = t.bytes[index];
        KeySlot slot = state.slot(ref == 0 ? defaultSlot : ref);
        if (slot.id == Constants.SLOT_PAYMENT) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        Persistent.requireKey(slot);
        state.requirePinVerified();
        return slot;
    }

    private PublicKey publicKey(byte index, byte defaultSlot) {
        byte ref = t.bytes[index];
        if (ref == Constants.REF_SERVER_KEY) {
            if (!state.serverKeyLoaded) {
                ISOException.throwIt(Constants.SW_REFERENCE_NOT_FOUND);
            }
            if (state.serverKeyAlgorithm != Constants.ALG_RSA_2048) {
                ISOException.throwIt(ISO7816.SW_FUNC_NOT_SUPPORTED); // EC: as an EC slot's key
            }
            return state.serverKey;
        }
        KeySlot slot = state.slot(ref == 0 ? defaultSlot : ref);
        Persistent.requireKey(slot);
        if (!slot.isRsa()) {
            ISOException.throwIt(ISO7816.SW_FUNC_NOT_SUPPORTED);
        }
        return slot.keyPair.getPublic();
    }

    private static short modulusBytes(Key key) {
        return (short) (key.getSize() / 8);
    }

    /**
     * The bare-hash or DigestInfo signature: RSASSA-PKCS1-v1_5 through RsaSigner (encoding
     * built by the applet, checked with the public key before it leaves).
     */
    private short computeDigitalSignature(short len) {
        KeySlot slot = privateKeySlot(Transients.B_DST_PRIVATE, (byte) 1);
        if (slot.hasPolicy(Constants.POLICY_SERVER_SIGNED)) {
            // the slot signs only what the server authorised: a bare hash would bypass that
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        byte[] b = t.buffer;
        if (!slot.isRsa()) {
            return signHashEcdsa(slot, len);
        }
        // a bare SHA-256 hash, or a DigestInfo for SHA-256/384/512 (its header must be exact)
        short prefix = RsaSigner.PREFIX_SHA256;
        short hashOff = 0;
        short hashLen = len;
        if (len != SHA256_LENGTH) {
            if (len == (short) (DIGEST_INFO_HEADER + 32)) {
                prefix = RsaSigner.PREFIX_SHA256;
            } else if (len == (short) (DIGEST_INFO_HEADER + 48)) {
                prefix = RsaSigner.PREFIX_SHA384;
            } else if (len == (short) (DIGEST_INFO_HEADER + 64)) {
                prefix = RsaSigner.PREFIX_SHA512;
            } else {
                ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
                return 0;
            }
            if (Util.arrayCompare(b, (short) 0, RsaSigner.DIGEST_INFO_PREFIXES, prefix, DIGEST_INFO_HEADER) != 0) {
                ISOException.throwIt(ISO7816.SW_WRONG_DATA);
            }
            hashOff = DIGEST_INFO_HEADER;
            hashLen = (short) (len - DIGEST_INFO_HEADER);
        }
        short out = (short) 128; // after the longest DigestInfo (83 bytes)
        state.consumePinForPrivateKeyUse(slot);
        short sigLen = crypto.rsaSigner.sign(slot.keyPair, prefix, b, hashOff, hashLen, out);
        return t.response(out, sigLen);
    }

    /** ECDSA over a bare SHA-256 hash (Signature.signPreComputedHash); DER signature out. */
    private short signHashEcdsa(KeySlot slot, short len) {
        if (len != SHA256_LENGTH) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        Signature ecdsa = crypto.ecdsaSha256;
        short sigLen = 0;
        state.consumePinForPrivateKeyUse(slot);
        try {
            ecdsa.init(slot.keyPair.getPrivate(), Signature.MODE_SIGN);
            sigLen = ecdsa.signPreComputedHash(t.buffer, (short) 0, len, t.buffer, SHA256_LENGTH);
        } catch (CryptoException e) {
            // a card whose ECDSA cannot start from a hash
            ISOException.throwIt(ISO7816.SW_FUNC_NOT_SUPPORTED);
        }
        return t.response(SHA256_LENGTH, sigLen);
    }

    /** DECIPHER: padding indicator || cryptogram of exactly the modulus length. */
    private short decipher(short len) {
        KeySlot slot = privateKeySlot(Transients.B_CT_PRIVATE, (byte) 2);
        if (!slot.isRsa()) {
            ISOException.throwIt(ISO7816.SW_FUNC_NOT_SUPPORTED);
        }
        if (slot.hasPolicy(Constants.POLICY_SERVER_SIGNED)) {
            // key separation: PKCS#1 v1.5 decryption with a signing key is a Bleichenbacher
            // oracle that yields raw RSA signatures, past the 8E check and the counter
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        byte[] b = t.buffer;
        short modLen = modulusBytes(slot.keyPair.getPrivate());
        if (len != (short) (modLen + 1)) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        Cipher cipher;
        if (b[0] == PADDING_PKCS1) {
            cipher = crypto.rsaPkcs1;
        } else if (b[0] == PADDING_OAEP) {
            if (crypto.rsaOaep == null) {
                ISOException.throwIt(ISO7816.SW_FUNC_NOT_SUPPORTED);
            }
            cipher = crypto.rsaOaep;
        } else {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
            return 0;
        }
        cipher.init(slot.keyPair.getPrivate(), Cipher.MODE_DECRYPT);
        short out = len;
        state.consumePinForPrivateKeyUse(slot);
        short plainLen = cipher.doFinal(b, (short) 1, modLen, b, out);
        return t.response(out, plainLen);
    }

    /** ENCIPHER: PKCS#1 v1.5 with the CT public key (slot 2 by default, or the server's). */
    private short encipher(short len) {
        PublicKey key = publicKey(Transients.B_CT_PUBLIC, (byte) 2);
        short modLen = modulusBytes(key);
        if (len == 0 || len > (short) (modLen - 11)) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        Cipher cipher = crypto.rsaPkcs1;
        cipher.init(key, Cipher.MODE_ENCRYPT);
        short out = len;
        return t.response(out, cipher.doFinal(t.buffer, (short) 0, len, t.buffer, out));
    }

    /**
     * VERIFY DIGITAL SIGNATURE: 90 20 hash || 9E L signature, PKCS#1 v1.5 with SHA-256. The
     * EMSA-PKCS1-v1_5 block (00 01 FF..FF 00 DigestInfo) is recomputed and compared whole.
     */
    private void verifyDigitalSignature(short len) {
        byte[] b = t.buffer;
        if (len < (short) 36 || b[0] != (byte) 0x90 || b[1] != (byte) SHA256_LENGTH || b[34] != (byte) 0x9E) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        short sigLen = Tlv.length(b, (short) 35, len);
        short sigOff = Tlv.valueOffset(b, (short) 35, len);
        if ((short) (sigOff + sigLen) != len) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        PublicKey key = publicKey(Transients.B_DST_PUBLIC, (byte) 1);
        short modLen = modulusBytes(key);
        if (sigLen != modLen) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        if (!emsaMatches((RSAPublicKey) key, b, sigOff, modLen, len)) {
            ISOException.throwIt(Constants.SW_VERIFICATION_FAILED);
        }
    }

    /**
     * Decrypts the signature with the public key and compares the result with
     * 00 01 FF..FF 00 DigestInfo(SHA-256, hash), aligned on its end: some runtimes return
     * the raw RSA result without its leading zero byte.
     */
    private boolean emsaMatches(RSAPublicKey key, byte[] b, short sigOff, short modLen, short out) {
        // RSA is only defined for values below the modulus (RFC 8017 5.2.2); checked here
        // because runtimes differ in how they refuse a larger one
        key.getModulus(b, out);
        if (!unsignedLess(b, sigOff, out, modLen)) {
            return false;
        }
        Cipher cipher = crypto.rsaNoPad;
        cipher.init(key, Cipher.MODE_DECRYPT);
        short emLen = cipher.doFinal(b, sigOff, modLen, b, out);
        return RsaSigner.emsaMatches(b, out, emLen, modLen, RsaSigner.PREFIX_SHA256, b, (short) 2, SHA256_LENGTH);
    }

    /** Whether b[a .. a+len) < b[m .. m+len) as big-endian unsigned numbers. */
    private static boolean unsignedLess(byte[] b, short a, short m, short len) {
        for (short i = 0; i < len; i++) {
            short x = (short) (b[(short) (a + i)] & 0xFF);
            short y = (short) (b[(short) (m + i)] & 0xFF);
            if (x != y) {
                return x < y;
            }
        }
        return false;
    }
}
