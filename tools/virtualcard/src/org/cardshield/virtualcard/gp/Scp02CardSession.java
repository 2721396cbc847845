package org.cardshield.virtualcard.gp;

import java.security.SecureRandom;

/**
 * SCP02, i=55 or i=15 (GPCS v2.3 Appendix E): C-MAC on the modified APDU, ICV encrypted with the
 * first half of S-MAC, three keys. The card challenge is random rather than the
 * pseudo-random derivation of i=55 - a host cannot tell the difference.
 */
final class Scp02CardSession extends CardSessionBase {
    private final byte[] sEnc;
    private final byte[] sMac;
    private final byte[] sDek;
    private final byte[] hostChallenge;
    private final byte[] sequenceCounter;
    private final byte[] cardChallenge;
    private final byte[] response;
    private byte[] icv = new byte[8];

    Scp02CardSession(KeySet keys, byte[] kdd, byte[] hostChallenge, int sequenceCounter, SecureRandom random) {
        this.sequenceCounter = new byte[] {(byte) (sequenceCounter >> 8), (byte) sequenceCounter};
        this.sEnc = sessionKey(keys.enc, 0x0182);
        this.sMac = sessionKey(keys.mac, 0x0101);
        this.sDek = sessionKey(keys.dek, 0x0181);
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

    @Override
    boolean checkMac(ShortApdu command, byte[] body, byte[] mac) {
        byte[] expected = GpCrypto.retailMac(sMac, GpCrypto.concat(command.header(command.cla, body.length + 8), body), icv);
        if (!GpCrypto.equal(expected, mac)) {
            return false;
        }
        icv = GpCrypto.desEcb(sMac, expected);  // ICV encryption for the next command (i bit 5)
        return true;
    }

    @Override
    byte[] expectedHostCryptogram() {
        return GpCrypto.des3FullMac(sEnc, GpCrypto.concat(sequenceCounter, cardChallenge, hostChallenge));
    }

    @Override
    public byte[] decryptKey(byte[] encrypted) {
        // GPCS E.4.7: key values encrypted with the session DEK, 3DES-ECB
        requireBlocks(encrypted, 8);
        return GpCrypto.des3EcbDecrypt(sDek, encrypted);
    }

    @Override
    public ShortApdu unwrap(ShortApdu command) {
        requireSecureMessaging(command);
        byte[] body = body(command);
        if ((securityLevel() & C_DECRYPTION) != 0 && body.length > 0) {
            requireBlocks(body, 8);
            body = unpadded(GpCrypto.des3CbcDecrypt(sEnc, body, new byte[8]));
        }
        // GPCS E.4.4: the MAC covers the modified header and the plaintext data
        if (!checkMac(command, body, mac(command))) {
            throw new StatusWordException(StatusWordException.SW_SECURITY_STATUS, "C-MAC does not verify");
        }
        return plain(command, body);
    }
}
