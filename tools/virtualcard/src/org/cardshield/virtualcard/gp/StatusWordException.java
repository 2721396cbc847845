package org.cardshield.virtualcard.gp;

/** A refusal of a GlobalPlatform command: carries the ISO 7816-4 / GPCS status word. */
class StatusWordException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    static final int SW_WARNING_AUTH_FAILED = 0x6300;      // GPCS 11.8.3: host cryptogram wrong
    static final int SW_WRONG_LENGTH = 0x6700;
    static final int SW_LOGICAL_CHANNEL_NOT_SUPPORTED = 0x6881;
    static final int SW_SECURITY_STATUS = 0x6982;
    static final int SW_AUTH_METHOD_BLOCKED = 0x6983;      // card locked after failed authentications
    static final int SW_CONDITIONS_OF_USE = 0x6985;
    static final int SW_WRONG_DATA = 0x6A80;
    static final int SW_FUNC_NOT_SUPPORTED = 0x6A81;
    static final int SW_NOT_FOUND = 0x6A82;
    static final int SW_NOT_ENOUGH_MEMORY = 0x6A84;
    static final int SW_INCORRECT_P1P2 = 0x6A86;
    static final int SW_REFERENCED_DATA_NOT_FOUND = 0x6A88;
    static final int SW_INS_NOT_SUPPORTED = 0x6D00;
    static final int SW_CLA_NOT_SUPPORTED = 0x6E00;

    final int sw;

    StatusWordException(int sw, String why) {
        super(String.format("%04X: %s", sw, why));
        this.sw = sw;
    }
}
