package org.cardshield.virtualcard.gp;

import java.security.SecureRandom;
import java.util.Arrays;

/**
 * SCP02, i=55 (GPCS v2.3 Appendix E): C-MAC on the modified APDU, ICV encrypted with the
 * first half of S-MAC, three keys. The card challenge is random rather than the
 * pseudo-random derivation of i=55 - a host cannot tell the difference.
 */
final class Scp02CardSession implements CardSecureChannel {
    private final byte[] sEnc;
    private final byte[] sMac;
    private final byte[] hostChallenge;
    private final byte[] sequenceCounter;
    private final byte[] cardChallenge;
    private final byte[] response;
    private byte[] icv = new byte[8];
    private int level = -1;

    Scp02CardSession(KeySet keys, byte[] kdd, byte[] hostChallenge, int sequenceCounter, SecureRandom random) {
        this.sequenceCounter = new byte[] {(byte) (sequenceCounter >> 8), (byte) sequenceCounter};
        this.sEnc = sessionKey(keys.enc, 0x0182);
        this.sMac = sessionKey(keys.mac, 0x0101);
        this.hostChallenge = hostChallenge;
        this.cardChallenge = new byte[6];
        random.nextBytes(cardChallenge);
        byte[] cardCryptogram = GpCrypto.des3FullMac(sEnc,
                GpCrypto.concat(hostChallenge, this.sequenceCounter, cardChallenge));
        this.response = GpCrypto.concat(kdd, new byte[] {(byte) keys.version, 0x02},
                this.sequenceCounter, cardChallenge, cardCryptogram);
    }

    private byte[] sessionKey(byte[] key, int constant) {
        byte[] derivation = new byte[16];
        derivation[0] = (byte) (constant >> 8);
        derivation[1] = (byte) constant;
        derivation[2] = sequenceCounter[0];
        derivation[3] = sequenceCounter[1];
        return GpCrypto.des3Cbc(key, derivation, new byte[8]);
    }

    @Override
    public byte[] initializeUpdateResponse() {
        return response.clone();
    }

    private boolean checkMac(byte[] macInput, byte[] mac) {
        byte[] expected = GpCrypto.retailMac(sMac, macInput, icv);
        if (!GpCrypto.equal(expected, mac)) {
            return false;
        }
        icv = GpCrypto.desEcb(sMac, expected);  // ICV encryption for the next command (i bit 5)
        return true;
    }

    @Override
    public void externalAuthenticate(ShortApdu command) {
        if (command.data.length != 16 || (command.cla & 0x04) == 0) {
            throw new StatusWordException(StatusWordException.SW_WRONG_LENGTH,
                    "EXTERNAL AUTHENTICATE needs host cryptogram and C-MAC");
        }
        byte[] hostCryptogram = Arrays.copyOf(command.data, 8);
        byte[] mac = Arrays.copyOfRange(command.data, 8, 16);
        byte[] expected = GpCrypto.des3FullMac(sEnc, GpCrypto.concat(sequenceCounter, cardChallenge, hostChallenge));
        boolean macOk = checkMac(GpCrypto.concat(command.header(command.cla, 16), hostCryptogram), mac);
        if (!macOk || !GpCrypto.equal(expected, hostCryptogram)) {
            throw new StatusWordException(StatusWordException.SW_WARNING_AUTH_FAILED, "host cryptogram or MAC wrong");
        }
        int requested = command.p1;
        if ((requested & ~(C_MAC | C_DECRYPTION)) != 0 || (requested & C_MAC) == 0) {
            throw new StatusWordException(StatusWordException.SW_INCORRECT_P1P2,
                    "security level " + Integer.toHexString(requested) + " not supported (C-MAC, C-MAC+C-DEC)");
        }
        level = requested;
    }

    @Override
    public ShortApdu unwrap(ShortApdu command) {
        if ((command.cla & 0x04) == 0 || command.data.length < 8) {
            throw new StatusWordException(StatusWordException.SW_SECURITY_STATUS, "secure messaging missing");
        }
        byte[] body = Arrays.copyOf(command.data, command.data.length - 8);
        byte[] mac = Arrays.copyOfRange(command.data, command.data.length - 8, command.data.length);
        if ((level & C_DECRYPTION) != 0 && body.length > 0) {
            if (body.length % 8 != 0) {
                throw new StatusWordException(StatusWordException.SW_SECURITY_STATUS, "ciphertext not block aligned");
            }
            body = GpCrypto.unpad80(GpCrypto.des3CbcDecrypt(sEnc, body, new byte[8]));
            if (body == null) {
                throw new StatusWordException(StatusWordException.SW_SECURITY_STATUS, "bad padding in ciphertext");
            }
        }
        // GPCS E.4.4: the MAC covers the modified header and the plaintext data
        if (!checkMac(GpCrypto.concat(command.header(command.cla, body.length + 8), body), mac)) {
            throw new StatusWordException(StatusWordException.SW_SECURITY_STATUS, "C-MAC does not verify");
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
