package org.cardshield.virtualcard.gp;

import java.util.Arrays;

/**
 * SCP03 in S8 mode with a pseudo-random card challenge, i=10 (GPCS v2.3 Amendment D):
 * KDF-derived session keys and cryptograms, C-MAC chaining, C-DECRYPTION with the
 * encryption counter ICV. R-MAC/R-ENC are not offered (i bits 6 and 7 clear).
 */
final class Scp03CardSession implements CardSecureChannel {
    static final int I_PARAMETER = 0x10;
    private final byte[] sEnc;
    private final byte[] sMac;
    private final byte[] context;
    private final byte[] response;
    private byte[] chaining = new byte[16];
    private int encryptionCounter;
    private int level = -1;

    Scp03CardSession(KeySet keys, byte[] kdd, byte[] hostChallenge, int sequenceCounter, byte[] isdAid) {
        byte[] counter = {(byte) (sequenceCounter >> 16), (byte) (sequenceCounter >> 8), (byte) sequenceCounter};
        // Amendment D 6.2.2.1: pseudo-random card challenge from the static ENC key
        byte[] cardChallenge = GpCrypto.scp03Kdf(keys.enc, 0x02, GpCrypto.concat(counter, isdAid), 64);
        this.context = GpCrypto.concat(hostChallenge, cardChallenge);
        int bits = keys.enc.length * 8;
        this.sEnc = GpCrypto.scp03Kdf(keys.enc, 0x04, context, bits);
        this.sMac = GpCrypto.scp03Kdf(keys.mac, 0x06, context, bits);
        byte[] cardCryptogram = GpCrypto.scp03Kdf(sMac, 0x00, context, 64);
        this.response = GpCrypto.concat(kdd, new byte[] {(byte) keys.version, 0x03, (byte) I_PARAMETER},
                cardChallenge, cardCryptogram, counter);
    }

    @Override
    public byte[] initializeUpdateResponse() {
        return response.clone();
    }

    private boolean checkMac(ShortApdu command, byte[] body, byte[] mac) {
        byte[] full = GpCrypto.aesCmac(sMac, GpCrypto.concat(chaining, command.header(command.cla, body.length + 8), body));
        if (!GpCrypto.equal(Arrays.copyOf(full, 8), mac)) {
            return false;
        }
        chaining = full;
        return true;
    }

    @Override
    public void externalAuthenticate(ShortApdu command) {
        if (command.data.length != 16 || (command.cla & 0x04) == 0) {
            throw new StatusWordException(StatusWordException.SW_WRONG_LENGTH,
                    "EXTERNAL AUTHENTICATE needs host cryptogram and C-MAC");
        }
        byte[] hostCryptogram = Arrays.copyOf(command.data, 8);
        boolean macOk = checkMac(command, hostCryptogram, Arrays.copyOfRange(command.data, 8, 16));
        byte[] expected = GpCrypto.scp03Kdf(sMac, 0x01, context, 64);
        if (!macOk || !GpCrypto.equal(expected, hostCryptogram)) {
            throw new StatusWordException(StatusWordException.SW_WARNING_AUTH_FAILED, "host cryptogram or MAC wrong");
        }
        int requested = command.p1;
        if ((requested & ~(C_MAC | C_DECRYPTION)) != 0 || (requested & C_MAC) == 0) {
            throw new StatusWordException(StatusWordException.SW_INCORRECT_P1P2,
                    "security level " + Integer.toHexString(requested) + " not supported (C-MAC, C-MAC+C-DEC)");
        }
        level = requested;
        encryptionCounter = 0;
    }

    @Override
    public ShortApdu unwrap(ShortApdu command) {
        if ((command.cla & 0x04) == 0 || command.data.length < 8) {
            throw new StatusWordException(StatusWordException.SW_SECURITY_STATUS, "secure messaging missing");
        }
        byte[] body = Arrays.copyOf(command.data, command.data.length - 8);
        if (!checkMac(command, body, Arrays.copyOfRange(command.data, command.data.length - 8, command.data.length))) {
            throw new StatusWordException(StatusWordException.SW_SECURITY_STATUS, "C-MAC does not verify");
        }
        if ((level & C_DECRYPTION) != 0) {
            encryptionCounter++;  // 6.2.6: every command counts, with or without data
            if (body.length > 0) {
                if (body.length % 16 != 0) {
                    throw new StatusWordException(StatusWordException.SW_SECURITY_STATUS, "ciphertext not block aligned");
                }
                byte[] counterBlock = new byte[16];
                for (int i = 0; i < 4; i++) {
                    counterBlock[15 - i] = (byte) (encryptionCounter >> (8 * i));
                }
                body = GpCrypto.unpad80(GpCrypto.aesCbcDecrypt(sEnc, body, GpCrypto.aesEcb(sEnc, counterBlock)));
                if (body == null) {
                    throw new StatusWordException(StatusWordException.SW_SECURITY_STATUS, "bad padding in ciphertext");
                }
            }
        }
        return command.withData(command.cla & ~0x04, body);
    }

    @Override
    public int securityLevel() {
        return level;
    }

    @Override
    public boolean authenticated() {
        return level > 0;
    }
}
