package org.cardshield.applet;

import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.JCSystem;
import javacard.framework.Util;
import javacard.security.CryptoException;
import javacard.security.ECKey;
import javacard.security.ECPrivateKey;
import javacard.security.ECPublicKey;
import javacard.security.KeyBuilder;
import javacard.security.KeyPair;
import javacard.security.MessageDigest;
import javacard.security.PrivateKey;
import javacard.security.PublicKey;
import javacard.security.Signature;
import javacardx.crypto.Cipher;

/**
 * Crypto engines (allocated once at install) and what the card's crypto can do, probed at
 * install with try/catch of CryptoException so cards lacking an algorithm install fine
 * and say so in the FCI. Also the one place that builds a slot's key objects.
 */
final class Crypto {
    /** SHA256withRSA, PKCS#1 v1.5, public-key side only: the server request check (8E). */
    final Signature rsaSha256;
    /** SHA256withECDSA for EC P-256 slots, or null. */
    final Signature ecdsaSha256;
    /** RSA PKCS#1 v1.5 encryption blocks (type 02): DECIPHER, ENCIPHER. Never used to sign. */
    final Cipher rsaPkcs1;
    /** Raw RSA: every RSA signature (RsaSigner) and VERIFY DIGITAL SIGNATURE; the applet builds and checks the encoding. */
    final Cipher rsaNoPad;
    /** RSA signatures with the encoding built by the applet and the fault check. */
    final RsaSigner rsaSigner;
    /** RSA OAEP (SHA-1) for DECIPHER padding indicator 02, or null. */
    final Cipher rsaOaep;
    /** SHA-256: certificate references (FCP tag 85) and the key hash in ATTEST statements. */
    final MessageDigest sha256;
    /** Constants.SUPPORT_* bits (FCI tag 82). */
    final byte supported;

    private static final byte[] P256_P = {
            (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x01,
            (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00,
            (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF,
            (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF
    };
    private static final byte[] P256_A = {
            (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x01,
            (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00,
            (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF,
            (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFC
    };
    private static final byte[] P256_B = {
            (byte) 0x5A, (byte) 0xC6, (byte) 0x35, (byte) 0xD8, (byte) 0xAA, (byte) 0x3A, (byte) 0x93, (byte) 0xE7,
            (byte) 0xB3, (byte) 0xEB, (byte) 0xBD, (byte) 0x55, (byte) 0x76, (byte) 0x98, (byte) 0x86, (byte) 0xBC,
            (byte) 0x65, (byte) 0x1D, (byte) 0x06, (byte) 0xB0, (byte) 0xCC, (byte) 0x53, (byte) 0xB0, (byte) 0xF6,
            (byte) 0x3B, (byte) 0xCE, (byte) 0x3C, (byte) 0x3E, (byte) 0x27, (byte) 0xD2, (byte) 0x60, (byte) 0x4B
    };
    private static final byte[] P256_G = {
            (byte) 0x04, (byte) 0x6B, (byte) 0x17, (byte) 0xD1, (byte) 0xF2, (byte) 0xE1, (byte) 0x2C, (byte) 0x42,
            (byte) 0x47, (byte) 0xF8, (byte) 0xBC, (byte) 0xE6, (byte) 0xE5, (byte) 0x63, (byte) 0xA4, (byte) 0x40,
            (byte) 0xF2, (byte) 0x77, (byte) 0x03, (byte) 0x7D, (byte) 0x81, (byte) 0x2D, (byte) 0xEB, (byte) 0x33,
            (byte) 0xA0, (byte) 0xF4, (byte) 0xA1, (byte) 0x39, (byte) 0x45, (byte) 0xD8, (byte) 0x98, (byte) 0xC2,
            (byte) 0x96, (byte) 0x4F, (byte) 0xE3, (byte) 0x42, (byte) 0xE2, (byte) 0xFE, (byte) 0x1A, (byte) 0x7F,
            (byte) 0x9B, (byte) 0x8E, (byte) 0xE7, (byte) 0xEB, (byte) 0x4A, (byte) 0x7C, (byte) 0x0F, (byte) 0x9E,
            (byte) 0x16, (byte) 0x2B, (byte) 0xCE, (byte) 0x33, (byte) 0x57, (byte) 0x6B, (byte) 0x31, (byte) 0x5E,
            (byte) 0xCE, (byte) 0xCB, (byte) 0xB6, (byte) 0x40, (byte) 0x68, (byte) 0x37, (byte) 0xBF, (byte) 0x51,
            (byte) 0xF5
    };
    private static final byte[] P256_N = {
            (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00,
            (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF,
            (byte) 0xBC, (byte) 0xE6, (byte) 0xFA, (byte) 0xAD, (byte) 0xA7, (byte) 0x17, (byte) 0x9E, (byte) 0x84,
            (byte) 0xF3, (byte) 0xB9, (byte) 0xCA, (byte) 0xC2, (byte) 0xFC, (byte) 0x63, (byte) 0x25, (byte) 0x51
    };

    Crypto() {
        rsaSha256 = Signature.getInstance(Signature.ALG_RSA_SHA_256_PKCS1, false);
        rsaPkcs1 = Cipher.getInstance(Cipher.ALG_RSA_PKCS1, false);
        rsaNoPad = Cipher.getInstance(Cipher.ALG_RSA_NOPAD, false);
        sha256 = MessageDigest.getInstance(MessageDigest.ALG_SHA_256, false);
        rsaSigner = new RsaSigner(rsaNoPad);
        byte found = 0;
        if (!canBuild(KeyBuilder.TYPE_RSA_CRT_PRIVATE, KeyBuilder.LENGTH_RSA_2048)) {
            // the card cannot hold the key the product is about: refuse to install
            ISOException.throwIt(ISO7816.SW_FUNC_NOT_SUPPORTED);
        }
        found |= Constants.SUPPORT_RSA_2048;
        if (canBuild(KeyBuilder.TYPE_RSA_CRT_PRIVATE, (short) 3072)) {
            found |= Constants.SUPPORT_RSA_3072;
        }
        if (canBuild(KeyBuilder.TYPE_RSA_CRT_PRIVATE, (short) 4096)) {
            found |= Constants.SUPPORT_RSA_4096;
        }
        Signature ecdsa = null;
        if (canBuild(KeyBuilder.TYPE_EC_FP_PRIVATE, KeyBuilder.LENGTH_EC_FP_256)) {
            try {
                ecdsa = Signature.getInstance(Signature.ALG_ECDSA_SHA_256, false);
                found |= Constants.SUPPORT_EC_P256;
            } catch (CryptoException e) {
                ecdsa = null;
            }
        }
        ecdsaSha256 = ecdsa;
        Cipher oaep = null;
        try {
            oaep = Cipher.getInstance(Cipher.ALG_RSA_PKCS1_OAEP, false);
            found |= Constants.SUPPORT_RSA_OAEP;
        } catch (CryptoException e) {
            oaep = null;
        }
        rsaOaep = oaep;
        supported = found;
        // the probe keys are garbage now; reclaim them where the card can
        if (JCSystem.isObjectDeletionSupported()) {
            JCSystem.requestObjectDeletion();
        }
    }

    private static boolean canBuild(byte type, short bits) {
        try {
            KeyBuilder.buildKey(type, bits, false);
            return true;
        } catch (CryptoException e) {
            return false;
        }
    }

    /** Whether a slot algorithm byte is known (6A80 otherwise) and on this card (6A81 otherwise). */
    void requireAvailable(byte algorithm) {
        byte bit;
        switch (algorithm) {
            case Constants.ALG_RSA_2048:
                bit = Constants.SUPPORT_RSA_2048;
                break;
            case Constants.ALG_RSA_3072:
                bit = Constants.SUPPORT_RSA_3072;
                break;
            case Constants.ALG_RSA_4096:
                bit = Constants.SUPPORT_RSA_4096;
                break;
            case Constants.ALG_EC_P256:
                bit = Constants.SUPPORT_EC_P256;
                break;
            default:
                ISOException.throwIt(ISO7816.SW_WRONG_DATA);
                return;
        }
        if ((byte) (supported & bit) == 0) {
            ISOException.throwIt(ISO7816.SW_FUNC_NOT_SUPPORTED);
        }
    }

    /** Largest RSA modulus in bytes this card supports (sizes the transient buffer). */
    short maxModulusBytes() {
        if ((byte) (supported & Constants.SUPPORT_RSA_4096) != 0) {
            return (short) 512;
        }
        if ((byte) (supported & Constants.SUPPORT_RSA_3072) != 0) {
            return (short) 384;
        }
        return Constants.RSA_2048_BYTES;
    }

    /**
     * The key objects of a slot. Called once per slot in the card's life (personalization or
     * ISSUE); GENERATE then regenerates these same objects in place.
     */
    KeyPair buildKeyPair(byte algorithm) {
        if (algorithm == Constants.ALG_EC_P256) {
            ECPublicKey pub = (ECPublicKey) KeyBuilder.buildKey(KeyBuilder.TYPE_EC_FP_PUBLIC,
                    KeyBuilder.LENGTH_EC_FP_256, false);
            ECPrivateKey priv = (ECPrivateKey) KeyBuilder.buildKey(KeyBuilder.TYPE_EC_FP_PRIVATE,
                    KeyBuilder.LENGTH_EC_FP_256, false);
            setP256(pub);
            setP256(priv);
            return new KeyPair(pub, priv);
        }
        short bits = rsaBits(algorithm);
        PublicKey pub = (PublicKey) KeyBuilder.buildKey(KeyBuilder.TYPE_RSA_PUBLIC, bits, false);
        PrivateKey priv = (PrivateKey) KeyBuilder.buildKey(KeyBuilder.TYPE_RSA_CRT_PRIVATE, bits, false);
        return new KeyPair(pub, priv);
    }

    /**
     * An EC P-256 public key object without values: the server's EC key, built once in the
     * card's life (its first PERSONALIZE P1=04 with an EC key), which sets the values.
     */
    static ECPublicKey buildEcPublicKey() {
        return (ECPublicKey) KeyBuilder.buildKey(KeyBuilder.TYPE_EC_FP_PUBLIC, KeyBuilder.LENGTH_EC_FP_256, false);
    }

    /** Whether pair holds key objects of the slot algorithm (type and size); false for null. */
    boolean holds(KeyPair pair, byte algorithm) {
        if (pair == null) {
            return false;
        }
        PublicKey pub = pair.getPublic();
        if (algorithm == Constants.ALG_EC_P256) {
            return pub.getType() == KeyBuilder.TYPE_EC_FP_PUBLIC;
        }
        return pub.getType() == KeyBuilder.TYPE_RSA_PUBLIC && pub.getSize() == rsaBits(algorithm);
    }

    /** The modulus size in bits of an RSA slot algorithm. */
    private static short rsaBits(byte algorithm) {
        if (algorithm == Constants.ALG_RSA_3072) {
            return (short) 3072;
        }
        if (algorithm == Constants.ALG_RSA_4096) {
            return (short) 4096;
        }
        return KeyBuilder.LENGTH_RSA_2048;
    }

    /**
     * Java Card 3.0.4 has no named curves: set NIST P-256 (FIPS 186-4 D.1.2.3) domain
     * parameters (slot keys; the server's EC key at each PERSONALIZE P1=04).
     */
    static void setP256(ECKey key) {
        key.setFieldFP(P256_P, (short) 0, (short) P256_P.length);
        key.setA(P256_A, (short) 0, (short) P256_A.length);
        key.setB(P256_B, (short) 0, (short) P256_B.length);
        key.setG(P256_G, (short) 0, (short) P256_G.length);
        key.setR(P256_N, (short) 0, (short) P256_N.length);
        key.setK((short) 1);
    }

    /**
     * A key's signature over magic || b[off .. off + len), written at out; returns its length
     * (SIGN TRANSACTION, PROVE POSSESSION, ATTEST). RSA: SHA-256 here, then RsaSigner (needs
     * b[out .. out + 2 * modulus + HASH_ROOM)); EC: SHA256withECDSA, DER, verified with the
     * public key before it is returned (6581 if it does not verify).
     */
    short signMessage(KeyPair pair, boolean rsa, byte[] magic, byte[] b, short off, short len, short out) {
        if (!rsa) {
            ecdsaSha256.init(pair.getPrivate(), Signature.MODE_SIGN);
            ecdsaSha256.update(magic, (short) 0, (short) magic.length);
            short sigLen = ecdsaSha256.sign(b, off, len, b, out);
            // the same check as RsaSigner's: a signature that does not verify never leaves
            ecdsaSha256.init(pair.getPublic(), Signature.MODE_VERIFY);
            ecdsaSha256.update(magic, (short) 0, (short) magic.length);
            if (!ecdsaSha256.verify(b, off, len, b, out, sigLen)) {
                Util.arrayFillNonAtomic(b, out, sigLen, (byte) 0);
                ISOException.throwIt(Constants.SW_FAULT_DETECTED);
            }
            return sigLen;
        }
        short hashAt = (short) (out + pair.getPrivate().getSize() / 8);
        sha256.update(magic, (short) 0, (short) magic.length);
        sha256.doFinal(b, off, len, b, hashAt);
        return rsaSigner.sign(pair, RsaSigner.PREFIX_SHA256, b, hashAt, Constants.SHA256_LENGTH, out);
    }
}
