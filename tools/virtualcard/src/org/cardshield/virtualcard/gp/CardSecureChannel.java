package org.cardshield.virtualcard.gp;

/**
 * The card side of an SCP02 or SCP03 session, from INITIALIZE UPDATE to the end of the session
 * (GPCS v2.3 chapter 10). Security level bits: EXTERNAL AUTHENTICATE P1 (GPCS Table 11-19).
 */
interface CardSecureChannel {
    int C_MAC = 0x01;
    int C_DECRYPTION = 0x02;
    int R_MAC = 0x10;
    int R_ENCRYPTION = 0x20;

    /** The INITIALIZE UPDATE response data. */
    byte[] initializeUpdateResponse();

    /** Checks EXTERNAL AUTHENTICATE's C-MAC and host cryptogram; throws 6300 when wrong. */
    void externalAuthenticate(ShortApdu command);

    /** Verifies the C-MAC and decrypts; returns the plain command or throws 6982. */
    ShortApdu unwrap(ShortApdu command);

    /** A key value of PUT KEY decrypted with this protocol's data encryption key (GPCS 11.8.2.3). */
    byte[] decryptKey(byte[] encrypted);

    int securityLevel();

    boolean authenticated();
}
