package org.cardshield.applet;

import javacard.framework.ISOException;
import javacard.framework.Util;
import javacard.security.KeyPair;
import javacardx.crypto.Cipher;

/**
 * Every RSA signature of the card: RSASSA-PKCS1-v1_5 (RFC 8017 section 8.2) with the
 * encoding built here and raw RSA (ALG_RSA_NOPAD), then checked before it leaves.
 *
 * Why not ALG_RSA_PKCS1 with the private key: the Java Card API defines that cipher's
 * padding as the encryption block (type 02); that a private key makes it produce the
 * signature block (type 01) is a property of most cards, not a guarantee. Why not
 * Signature.ALG_RSA_SHA_256_PKCS1 alone: its output cannot be checked without a second
 * engine, and the check is the point.
 *
 * The check: the signature is raised to the public exponent and must give back the
 * encoded block. A fault during the private-key operation (glitch, laser, a worn EEPROM
 * cell in a CRT parameter) yields a signature right modulo one prime and wrong modulo the
 * other, and gcd(s^e - m, n) then factors the modulus (Boneh, DeMillo, Lipton 1997). Such a
 * signature is wiped and the command fails with 6581 (docs/apdu.md, "Fault check").
 */
final class RsaSigner {
    /** DigestInfo headers (RFC 8017 section 9.2, note 1) for SHA-256, SHA-384, SHA-512. */
    static final byte[] DIGEST_INFO_PREFIXES = {
            (byte) 0x30, (byte) 0x31, (byte) 0x30, (byte) 0x0D, (byte) 0x06, (byte) 0x09, (byte) 0x60,
            (byte) 0x86, (byte) 0x48, (byte) 0x01, (byte) 0x65, (byte) 0x03, (byte) 0x04, (byte) 0x02,
            (byte) 0x01, (byte) 0x05, (byte) 0x00, (byte) 0x04, (byte) 0x20,
            (byte) 0x30, (byte) 0x41, (byte) 0x30, (byte) 0x0D, (byte) 0x06, (byte) 0x09, (byte) 0x60,
            (byte) 0x86, (byte) 0x48, (byte) 0x01, (byte) 0x65, (byte) 0x03, (byte) 0x04, (byte) 0x02,
            (byte) 0x02, (byte) 0x05, (byte) 0x00, (byte) 0x04, (byte) 0x30,
            (byte) 0x30, (byte) 0x51, (byte) 0x30, (byte) 0x0D, (byte) 0x06, (byte) 0x09, (byte) 0x60,
            (byte) 0x86, (byte) 0x48, (byte) 0x01, (byte) 0x65, (byte) 0x03, (byte) 0x04, (byte) 0x02,
            (byte) 0x03, (byte) 0x05, (byte) 0x00, (byte) 0x04, (byte) 0x40 };
    static final short DIGEST_INFO_HEADER = (short) 19;
    /** Offsets into DIGEST_INFO_PREFIXES. */
    static final short PREFIX_SHA256 = (short) 0;
    static final short PREFIX_SHA384 = (short) 19;
    static final short PREFIX_SHA512 = (short) 38;
    /**
     * Room a caller leaves after the signature for the hash (the largest, SHA-512); the
     * signer's scratch (one modulus) follows it. A buffer holds out + 2 * modulus + 64.
     */
    static final short HASH_ROOM = (short) 64;

    private final Cipher noPad;

    RsaSigner(Cipher noPad) {
        this.noPad = noPad;
    }

    /**
     * Signs DigestInfo(prefix, b[hashOff .. hashOff + hashLen)) with the pair's private key
     * into b[out .. out + modulus); returns the modulus length. The hash must lie outside
     * that area, e.g. at out + modulus (HASH_ROOM); b[out + modulus + HASH_ROOM, + modulus)
     * is scratch. 6581 and no signature left in b if the check fails.
     */
    short sign(KeyPair pair, short prefix, byte[] b, short hashOff, short hashLen, short out) {
        short modLen = trySign(pair, prefix, b, hashOff, hashLen, out);
        if (modLen < 0) {
            ISOException.throwIt(Constants.SW_FAULT_DETECTED);
        }
        return modLen;
    }

    /** sign(), but a failed check returns -1 (key generation's pairwise test retries). */
    short trySign(KeyPair pair, short prefix, byte[] b, short hashOff, short hashLen, short out) {
        short modLen = (short) (pair.getPrivate().getSize() / 8);
        short scratch = (short) (out + modLen + HASH_ROOM);
        encode(prefix, b, hashOff, hashLen, modLen, out);
        noPad.init(pair.getPrivate(), Cipher.MODE_ENCRYPT);
        leftAlign(b, noPad.doFinal(b, out, modLen, b, scratch), modLen, scratch);
        if (!check(pair, prefix, b, hashOff, hashLen, out, modLen, scratch)) {
            Util.arrayFillNonAtomic(b, out, modLen, (byte) 0);
            Util.arrayFillNonAtomic(b, scratch, modLen, (byte) 0);
            return (short) -1;
        }
        Util.arrayCopyNonAtomic(b, scratch, b, out, modLen);
        Util.arrayFillNonAtomic(b, scratch, modLen, (byte) 0);
        return modLen;
    }

    /** EMSA-PKCS1-v1_5 (RFC 8017 section 9.2): 00 01 FF..FF 00 DigestInfo, modLen bytes at out. */
    private static void encode(short prefix, byte[] b, short hashOff, short hashLen, short modLen, short out) {
        short digestInfo = (short) (out + modLen - hashLen - DIGEST_INFO_HEADER);
        Util.arrayCopyNonAtomic(b, hashOff, b, (short) (digestInfo + DIGEST_INFO_HEADER), hashLen);
        Util.arrayCopyNonAtomic(DIGEST_INFO_PREFIXES, prefix, b, digestInfo, DIGEST_INFO_HEADER);
        b[out] = 0;
        b[(short) (out + 1)] = 1;
        Util.arrayFillNonAtomic(b, (short) (out + 2), (short) (digestInfo - 1 - out - 2), (byte) 0xFF);
        b[(short) (digestInfo - 1)] = 0;
    }

    /**
     * The signature from the scratch area, raised to e with the public key, into out; it
     * must equal the block. The hash is compared where the caller left it.
     */
    private boolean check(KeyPair pair, short prefix, byte[] b, short hashOff, short hashLen, short out,
                          short modLen, short scratch) {
        noPad.init(pair.getPublic(), Cipher.MODE_DECRYPT);
        short emLen = noPad.doFinal(b, scratch, modLen, b, out);
        return emsaMatches(b, out, emLen, modLen, prefix, b, hashOff, hashLen);
    }

    /**
     * Whether b[at .. at + emLen) is 00 01 FF..FF 00 DigestInfo(prefix, hash) for a modulus
     * of modLen bytes, aligned on its end: some runtimes return a raw RSA result without
     * its leading zero byte. Also VERIFY DIGITAL SIGNATURE's check.
     */
    static boolean emsaMatches(byte[] b, short at, short emLen, short modLen, short prefix,
                               byte[] hash, short hashOff, short hashLen) {
        short end = (short) (at + emLen);
        short start = (short) (end - modLen); // where the leading 00 is, or would be
        if (emLen == modLen) {
            if (b[at] != 0) {
                return false;
            }
        } else if (emLen != (short) (modLen - 1)) {
            return false;
        }
        short separator = (short) (end - hashLen - DIGEST_INFO_HEADER - 1);
        if (b[(short) (start + 1)] != 1 || b[separator] != 0) {
            return false;
        }
        for (short i = (short) (start + 2); i < separator; i++) {
            if (b[i] != (byte) 0xFF) {
                return false;
            }
        }
        return Util.arrayCompare(b, (short) (separator + 1), DIGEST_INFO_PREFIXES, prefix, DIGEST_INFO_HEADER) == 0
                && Util.arrayCompare(b, (short) (end - hashLen), hash, hashOff, hashLen) == 0;
    }

    /** A raw RSA result shorter than the modulus (leading zeros dropped) is left-padded (I2OSP). */
    private static void leftAlign(byte[] b, short len, short modLen, short at) {
        if (len == modLen) {
            return;
        }
        short pad = (short) (modLen - len);
        Util.arrayCopyNonAtomic(b, at, b, (short) (at + pad), len);
        Util.arrayFillNonAtomic(b, at, pad, (byte) 0);
    }
}
