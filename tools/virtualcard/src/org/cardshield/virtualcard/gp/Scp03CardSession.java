package org.cardshield.virtualcard.gp;

import java.util.Arrays;

/**
 * SCP03 with a pseudo-random card challenge (GPCS v2.3 Amendment D), S8 (i=10) or S16
 * (i=11: 16-byte challenges, cryptograms and C-MACs): KDF-derived session keys and
 * cryptograms, C-MAC chaining, C-DECRYPTION with the encryption counter ICV. R-MAC/R-ENC
 * are not offered (i bits 6 and 7 clear).
 */
final class Scp03CardSession extends CardSessionBase {
    static final int I_S16 = 0x01;            // Amendment D 5.1 (i parameter b1): S16 mode
    static final int I_PSEUDO_RANDOM = 0x10;  // b5: pseudo-random card challenge
    private final byte[] sEnc;
    private final byte[] sMac;
    private final byte[] dek;
    private final byte[] context;
    private final byte[] response;
    private final int macLength;
    private byte[] chaining = new byte[16];
    private int encryptionCounter;

    /** Host challenge length INITIALIZE UPDATE must carry for this key set. */
    static int challengeLength(KeySet keys) {
        return (keys.i & I_S16) != 0 ? 16 : 8;
    }

    Scp03CardSession(KeySet keys, byte[] kdd, byte[] hostChallenge, int sequenceCounter, byte[] isdAid) {
        this.macLength = challengeLength(keys);
        int challengeBits = macLength * 8;
        byte[] counter = {(byte) (sequenceCounter >> 16), (byte) (sequenceCounter >> 8), (byte) sequenceCounter};
        // Amendment D 6.2.2.1: pseudo-random card challenge from the static ENC key
        byte[] cardChallenge = GpCrypto.scp03Kdf(keys.enc, 0x02, GpCrypto.concat(counter, isdAid), challengeBits);
        this.context = GpCrypto.concat(hostChallenge, cardChallenge);
        int bits = keys.enc.length * 8;
        this.sEnc = GpCrypto.scp03Kdf(keys.enc, 0x04, context, bits);
        this.sMac = GpCrypto.scp03Kdf(keys.mac, 0x06, context, bits);
        this.dek = keys.dek;
        byte[] cardCryptogram = GpCrypto.scp03Kdf(sMac, 0x00, context, challengeBits);
        this.response = GpCrypto.concat(kdd, new byte[] {(byte) keys.version, 0x03, (byte) keys.i},
                cardChallenge, cardCryptogram, counter);
    }

    @Override
    public byte[] initializeUpdateResponse() {
        return response.clone();
    }

    @Override
    int macLength() {
        return macLength;
    }

    @Override
    boolean checkMac(ShortApdu command, byte[] body, byte[] mac) {
        byte[] full = GpCrypto.aesCmac(sMac,
                GpCrypto.concat(chaining, command.header(command.cla, body.length + macLength), body));
        if (!GpCrypto.equal(Arrays.copyOf(full, macLength), mac)) {
            return false;
        }
        chaining = full;
        return true;
    }

    @Override
    byte[] expectedHostCryptogram() {
        return GpCrypto.scp03Kdf(sMac, 0x01, context, macLength * 8);
    }

    @Override
    void opened(int level) {
        encryptionCounter = 0;
    }

    @Override
    public byte[] decryptKey(byte[] encrypted) {
        // Amendment D 7.2.2: key values encrypted with the static DEK, AES-CBC, ICV zero
        requireBlocks(encrypted, 16);
        return GpCrypto.aesCbcDecrypt(dek, encrypted, new byte[16]);
    }

    @Override
    public ShortApdu unwrap(ShortApdu command) {
        requireSecureMessaging(command);
        byte[] body = body(command);
        if (!checkMac(command, body, mac(command))) {
            throw new StatusWordException(StatusWordException.SW_SECURITY_STATUS, "C-MAC does not verify");
        }
        if ((securityLevel() & C_DECRYPTION) != 0) {
            encryptionCounter++;  // 6.2.6: every command counts, with or without data
            if (body.length > 0) {
                requireBlocks(body, 16);
                byte[] counterBlock = new byte[16];
                for (int i = 0; i < 4; i++) {
                    counterBlock[15 - i] = (byte) (encryptionCounter >> (8 * i));
                }
                body = unpadded(GpCrypto.aesCbcDecrypt(sEnc, body, GpCrypto.aesEcb(sEnc, counterBlock)));
            }
        }
        return plain(command, body);
    }
}
