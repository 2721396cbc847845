package org.cardshield.virtualcard.gp;

import java.security.GeneralSecurityException;
import java.util.Arrays;
import javax.crypto.Cipher;
import javax.crypto.spec.IvParameterSpec;
import javax.crypto.spec.SecretKeySpec;

/**
 * Card-side primitives of SCP02 (GPCS v2.3 Appendix B.1, E) and SCP03 (Amendment D).
 * AES-CMAC (NIST SP 800-38B) is written out because the JDK has none.
 */
final class GpCrypto {
    private GpCrypto() {
    }

    static byte[] pad80(byte[] data, int block) {
        int len = (data.length / block + 1) * block;
        byte[] out = Arrays.copyOf(data, len);
        out[data.length] = (byte) 0x80;
        return out;
    }

    /** Removes ISO 9797-1 method 2 padding; null if the padding is malformed. */
    static byte[] unpad80(byte[] data) {
        int i = data.length - 1;
        while (i >= 0 && data[i] == 0) {
            i--;
        }
        if (i < 0 || data[i] != (byte) 0x80) {
            return null;
        }
        return Arrays.copyOf(data, i);
    }

    private static byte[] des3Key(byte[] key) {
        if (key.length == 8) {
            byte[] k = new byte[24];
            for (int i = 0; i < 3; i++) {
                System.arraycopy(key, 0, k, 8 * i, 8);
            }
            return k;
        }
        byte[] k = Arrays.copyOf(key, 24);
        System.arraycopy(key, 0, k, 16, 8);
        return k;
    }

    private static byte[] run(String transformation, String alg, byte[] key, byte[] iv, int mode, byte[] data) {
        try {
            Cipher c = Cipher.getInstance(transformation);
            SecretKeySpec spec = new SecretKeySpec(key, alg);
            if (iv == null) {
                c.init(mode, spec);
            } else {
                c.init(mode, spec, new IvParameterSpec(iv));
            }
            return c.doFinal(data);
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("JCE cipher " + transformation + " unavailable", e);
        }
    }

    static byte[] des3Ecb(byte[] key, byte[] data) {
        return run("DESede/ECB/NoPadding", "DESede", des3Key(key), null, Cipher.ENCRYPT_MODE, data);
    }

    static byte[] des3EcbDecrypt(byte[] key, byte[] data) {
        return run("DESede/ECB/NoPadding", "DESede", des3Key(key), null, Cipher.DECRYPT_MODE, data);
    }

    static byte[] sha256(byte[] data) {
        try {
            return java.security.MessageDigest.getInstance("SHA-256").digest(data);
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("SHA-256 unavailable", e);
        }
    }

    /** Key check value (GPCS B.6 / Amendment D 7.2.2): DES over 8 x 00, AES over 16 x 01; 3 bytes. */
    static byte[] kcv(int keyType, byte[] key) {
        byte[] check = keyType == KeySet.TYPE_AES ? aesEcb(key, filled(16, (byte) 0x01)) : des3Ecb(key, new byte[8]);
        return Arrays.copyOf(check, 3);
    }

    private static byte[] filled(int n, byte value) {
        byte[] out = new byte[n];
        Arrays.fill(out, value);
        return out;
    }

    /** An RSA public key from its X.509 SubjectPublicKeyInfo DER. */
    static java.security.PublicKey rsaPublicKey(byte[] der) {
        try {
            return java.security.KeyFactory.getInstance("RSA").generatePublic(new java.security.spec.X509EncodedKeySpec(der));
        } catch (GeneralSecurityException e) {
            throw new IllegalArgumentException("gp.isd.dap.publickey is not an RSA SubjectPublicKeyInfo", e);
        }
    }

    /** RSA PKCS#1 v1.5 with SHA-256 over `message`. */
    static boolean rsaVerify(java.security.PublicKey key, byte[] message, byte[] signature) {
        try {
            java.security.Signature s = java.security.Signature.getInstance("SHA256withRSA");
            s.initVerify(key);
            s.update(message);
            return s.verify(signature);
        } catch (GeneralSecurityException e) {
            return false;
        }
    }

    static byte[] desEcb(byte[] key8, byte[] data) {
        return des3Ecb(Arrays.copyOf(key8, 8), data);
    }

    static byte[] des3Cbc(byte[] key, byte[] data, byte[] iv) {
        return run("DESede/CBC/NoPadding", "DESede", des3Key(key), iv, Cipher.ENCRYPT_MODE, data);
    }

    static byte[] des3CbcDecrypt(byte[] key, byte[] data, byte[] iv) {
        return run("DESede/CBC/NoPadding", "DESede", des3Key(key), iv, Cipher.DECRYPT_MODE, data);
    }

    /** Full triple-DES MAC, GPCS B.1.2.1. */
    static byte[] des3FullMac(byte[] key, byte[] data) {
        byte[] c = des3Cbc(key, pad80(data, 8), new byte[8]);
        return Arrays.copyOfRange(c, c.length - 8, c.length);
    }

    /** ISO 9797-1 MAC algorithm 3 with ICV, GPCS B.1.2.2. */
    static byte[] retailMac(byte[] key, byte[] data, byte[] icv) {
        byte[] padded = pad80(data, 8);
        byte[] chain = icv.clone();
        if (padded.length > 8) {
            byte[] head = Arrays.copyOf(padded, padded.length - 8);
            byte[] c = des3Cbc(Arrays.copyOf(key, 8), head, icv);
            chain = Arrays.copyOfRange(c, c.length - 8, c.length);
        }
        byte[] last = new byte[8];
        for (int i = 0; i < 8; i++) {
            last[i] = (byte) (chain[i] ^ padded[padded.length - 8 + i]);
        }
        return des3Ecb(key, last);
    }

    static byte[] aesEcb(byte[] key, byte[] data) {
        return run("AES/ECB/NoPadding", "AES", key, null, Cipher.ENCRYPT_MODE, data);
    }

    static byte[] aesCbc(byte[] key, byte[] data, byte[] iv) {
        return run("AES/CBC/NoPadding", "AES", key, iv, Cipher.ENCRYPT_MODE, data);
    }

    static byte[] aesCbcDecrypt(byte[] key, byte[] data, byte[] iv) {
        return run("AES/CBC/NoPadding", "AES", key, iv, Cipher.DECRYPT_MODE, data);
    }

    private static byte[] doubleBlock(byte[] b) {
        byte[] out = new byte[16];
        int carry = 0;
        for (int i = 15; i >= 0; i--) {
            int v = ((b[i] & 0xFF) << 1) | carry;
            out[i] = (byte) v;
            carry = (b[i] & 0x80) != 0 ? 1 : 0;
        }
        if ((b[0] & 0x80) != 0) {
            out[15] ^= (byte) 0x87;
        }
        return out;
    }

    /** AES-CMAC, NIST SP 800-38B. */
    static byte[] aesCmac(byte[] key, byte[] data) {
        byte[] k1 = doubleBlock(aesEcb(key, new byte[16]));
        byte[] k2 = doubleBlock(k1);
        int blocks = Math.max(1, (data.length + 15) / 16);
        boolean complete = data.length > 0 && data.length % 16 == 0;
        byte[] last = complete ? Arrays.copyOfRange(data, 16 * (blocks - 1), 16 * blocks)
                : pad80(Arrays.copyOfRange(data, 16 * (blocks - 1), data.length), 16);
        byte[] subkey = complete ? k1 : k2;
        byte[] x = new byte[16];
        for (int b = 0; b < blocks - 1; b++) {
            for (int i = 0; i < 16; i++) {
                x[i] ^= data[16 * b + i];
            }
            x = aesEcb(key, x);
        }
        for (int i = 0; i < 16; i++) {
            x[i] ^= (byte) (last[i] ^ subkey[i]);
        }
        return aesEcb(key, x);
    }

    /** SCP03 KDF, Amendment D 6.2.2: NIST SP 800-108 counter mode with AES-CMAC. */
    static byte[] scp03Kdf(byte[] key, int constant, byte[] context, int bits) {
        byte[] out = new byte[bits / 8];
        int done = 0;
        for (int counter = 1; done < out.length; counter++) {
            byte[] input = new byte[16 + context.length];
            input[11] = (byte) constant;
            input[13] = (byte) (bits >> 8);
            input[14] = (byte) bits;
            input[15] = (byte) counter;
            System.arraycopy(context, 0, input, 16, context.length);
            byte[] block = aesCmac(key, input);
            int n = Math.min(16, out.length - done);
            System.arraycopy(block, 0, out, done, n);
            done += n;
        }
        return out;
    }

    static byte[] concat(byte[]... parts) {
        int len = 0;
        for (byte[] p : parts) {
            len += p.length;
        }
        byte[] out = new byte[len];
        int off = 0;
        for (byte[] p : parts) {
            System.arraycopy(p, 0, out, off, p.length);
            off += p.length;
        }
        return out;
    }

    /** Constant-time comparison for cryptograms and MACs. */
    static boolean equal(byte[] a, byte[] b) {
        return java.security.MessageDigest.isEqual(a, b);
    }
}
