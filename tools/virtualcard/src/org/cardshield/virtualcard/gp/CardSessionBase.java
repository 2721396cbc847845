package org.cardshield.virtualcard.gp;

import java.util.Arrays;

/**
 * What the card side of SCP02 and SCP03 share (GPCS v2.3 chapter 10): EXTERNAL AUTHENTICATE
 * (host cryptogram, C-MAC, requested security level, GPCS 11.8) and the framing of a
 * C-MAC'd command (CLA bit 0x04, the 8-byte MAC at the end of the data). Each protocol
 * supplies its cryptogram, its C-MAC and its decryption.
 */
abstract class CardSessionBase implements CardSecureChannel {
    private int level = -1;

    /** The host cryptogram the host must send, from this session's keys and challenges. */
    abstract byte[] expectedHostCryptogram();

    /** Checks the C-MAC over the header (Lc including the MAC) and `body`; advances the chaining value if it verifies. */
    abstract boolean checkMac(ShortApdu command, byte[] body, byte[] mac);

    /** Length of the C-MAC and of the host cryptogram: 8, or 16 in SCP03 S16 mode. */
    int macLength() {
        return 8;
    }

    /** Called once the session is open at `level`. */
    void opened(int level) {
    }

    @Override
    public final void externalAuthenticate(ShortApdu command) {
        if (command.data.length != 2 * macLength() || (command.cla & 0x04) == 0) {
            throw new StatusWordException(StatusWordException.SW_WRONG_LENGTH,
                    "EXTERNAL AUTHENTICATE needs host cryptogram and C-MAC");
        }
        byte[] hostCryptogram = body(command);
        boolean macOk = checkMac(command, hostCryptogram, mac(command));
        if (!macOk || !GpCrypto.equal(expectedHostCryptogram(), hostCryptogram)) {
            throw new StatusWordException(StatusWordException.SW_WARNING_AUTH_FAILED, "host cryptogram or MAC wrong");
        }
        int requested = command.p1;
        if ((requested & ~(C_MAC | C_DECRYPTION)) != 0 || (requested & C_MAC) == 0) {
            throw new StatusWordException(StatusWordException.SW_INCORRECT_P1P2,
                    "security level " + Integer.toHexString(requested) + " not supported (C-MAC, C-MAC+C-DEC)");
        }
        level = requested;
        opened(level);
    }

    /** Refuses (6982) a command without secure messaging or too short to hold a C-MAC. */
    void requireSecureMessaging(ShortApdu command) {
        if ((command.cla & 0x04) == 0 || command.data.length < macLength()) {
            throw new StatusWordException(StatusWordException.SW_SECURITY_STATUS, "secure messaging missing");
        }
    }

    /** The command data without its trailing C-MAC. */
    byte[] body(ShortApdu command) {
        return Arrays.copyOf(command.data, command.data.length - macLength());
    }

    /** The trailing C-MAC. */
    byte[] mac(ShortApdu command) {
        return Arrays.copyOfRange(command.data, command.data.length - macLength(), command.data.length);
    }

    /** Removes the 80 00.. padding of decrypted data; 6982 when it is malformed. */
    static byte[] unpadded(byte[] plain) {
        byte[] body = GpCrypto.unpad80(plain);
        if (body == null) {
            throw new StatusWordException(StatusWordException.SW_SECURITY_STATUS, "bad padding in ciphertext");
        }
        return body;
    }

    /** Refuses (6982) ciphertext that is not a whole number of cipher blocks. */
    static void requireBlocks(byte[] body, int blockSize) {
        if (body.length % blockSize != 0) {
            throw new StatusWordException(StatusWordException.SW_SECURITY_STATUS, "ciphertext not block aligned");
        }
    }

    /** The plain command: secure messaging bit cleared, `body` as data. */
    static ShortApdu plain(ShortApdu command, byte[] body) {
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
