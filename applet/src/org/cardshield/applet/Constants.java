package org.cardshield.applet;

/**
 * Bytes of the interface (docs/apdu.md) and the status words ISO7816 does not name.
 * Compile-time constants only: the converter inlines them, nothing is allocated.
 */
final class Constants {
    private Constants() {
    }

    static final byte VERSION_MAJOR = (byte) 0x01;
    static final byte VERSION_MINOR = (byte) 0x02;

    // Class bytes (ISO/IEC 7816-4 clause 5.4.1)
    static final byte CLA_ISO = (byte) 0x00;
    static final byte CLA_PROPRIETARY = (byte) 0x80;
    static final byte CLA_CHAINING_BIT = (byte) 0x10;
    static final byte CLA_SECURE_MESSAGING_BITS = (byte) 0x0C;
    /** b7: further interindustry class (40-7F), channel in b1-b4, secure messaging in b6 */
    static final byte CLA_FURTHER_BIT = (byte) 0x40;
    static final byte CLA_SECURE_MESSAGING_FURTHER = (byte) 0x20;
    /** CLA without its logical channel number (first classes: b1-b2, further: b1-b4) */
    static final byte CLA_NOT_CHANNEL_FIRST = (byte) 0xFC;
    static final byte CLA_NOT_CHANNEL_FURTHER = (byte) 0xF0;

    // Instructions
    static final byte INS_SELECT = (byte) 0xA4;
    static final byte INS_READ_BINARY = (byte) 0xB0;
    static final byte INS_PUT_DATA = (byte) 0xDA;
    static final byte INS_VERIFY = (byte) 0x20;
    static final byte INS_CHANGE_REFERENCE_DATA = (byte) 0x24;
    static final byte INS_RESET_RETRY_COUNTER = (byte) 0x2C;
    static final byte INS_GENERATE_KEY_PAIR = (byte) 0x47;
    static final byte INS_MSE = (byte) 0x22;
    static final byte INS_PSO = (byte) 0x2A;
    static final byte INS_GET_RESPONSE = (byte) 0xC0;
    static final byte INS_SIGN_TRANSACTION = (byte) 0x54;
    static final byte INS_PROVE_POSSESSION = (byte) 0x56;
    static final byte INS_ATTEST = (byte) 0x58;
    static final byte INS_PERSONALIZE = (byte) 0xE0;
    static final byte INS_ISSUE = (byte) 0xE2;

    // Lifecycle (FCI tag 81)
    static final byte LIFECYCLE_PERSONALIZATION = (byte) 0x01;
    static final byte LIFECYCLE_ISSUED = (byte) 0x02;
    static final byte LIFECYCLE_TERMINATED = (byte) 0x03;

    // Slots and references
    static final byte SLOT_COUNT = (byte) 2;
    static final byte REF_PIN = (byte) 0x81;
    static final byte REF_PUK = (byte) 0x82;
    static final byte REF_SERVER_KEY = (byte) 0x10;
    /** The payment slot: signs only through SIGN TRANSACTION once issued */
    static final byte SLOT_PAYMENT = (byte) 1;
    /** Certificate EF C1 0A: the attestation key's certificate (no slot reference reaches its key) */
    static final byte FID_ATTESTATION = (byte) 0x0A;

    // Slot algorithms (PERSONALIZE P1=03, FCI slot info)
    static final byte ALG_NONE = (byte) 0x00;
    static final byte ALG_RSA_2048 = (byte) 0x01;
    static final byte ALG_RSA_3072 = (byte) 0x02;
    static final byte ALG_RSA_4096 = (byte) 0x03;
    static final byte ALG_EC_P256 = (byte) 0x11;

    // FCI tag 82: algorithms found at install
    static final byte SUPPORT_RSA_2048 = (byte) 0x01;
    static final byte SUPPORT_RSA_3072 = (byte) 0x02;
    static final byte SUPPORT_RSA_4096 = (byte) 0x04;
    static final byte SUPPORT_EC_P256 = (byte) 0x08;
    static final byte SUPPORT_RSA_OAEP = (byte) 0x10;

    // Slot policy flags
    static final byte POLICY_PIN_PER_SIGNATURE = (byte) 0x01;
    static final byte POLICY_SERVER_SIGNED = (byte) 0x02;
    static final byte POLICY_MASK = (byte) 0x03;

    // Card flags (FCI tag 85)
    static final byte FLAG_PIN_SET = (byte) 0x01;
    static final byte FLAG_PUK_SET = (byte) 0x02;
    static final byte FLAG_SERVER_KEY = (byte) 0x04;
    static final byte FLAG_PERSO_KEYS = (byte) 0x08;
    static final byte FLAG_DEVELOPMENT = (byte) 0x10;
    /** the personalization key set was erased at ISSUE */
    static final byte FLAG_PERSO_KEYS_ERASED = (byte) 0x20;
    /** the server key (flag 04) is EC P-256: 8E is ECDSA; without this flag it is RSA-2048 */
    static final byte FLAG_SERVER_KEY_EC = (byte) 0x40;

    // PIN / PUK formats
    static final byte PIN_MIN = (byte) 4;
    static final byte PIN_MAX = (byte) 12;
    static final byte PUK_LENGTH = (byte) 8;
    static final byte PIN_TRIES = (byte) 3;
    static final byte PUK_TRIES = (byte) 10;

    // Sizes
    static final short DEFAULT_MAX_CERT = (short) 3072;
    static final short MIN_MAX_CERT = (short) 3072;
    static final short MAX_MAX_CERT = (short) 16384;
    static final short RSA_2048_BYTES = (short) 256;
    /** Uncompressed P-256 point 04 || X || Y (SEC 1 2.3.3) */
    static final short EC_P256_POINT_BYTES = (short) 65;
    /** ECDSA P-256 signature in the plain format r || s (BSI TR-03111 5.2.1): 2 x 32 bytes */
    static final short ECDSA_P256_PLAIN_BYTES = (short) 64;
    static final short CHALLENGE_MIN = (short) 16;
    static final short CHALLENGE_MAX = (short) 64;
    static final short SHA256_LENGTH = (short) 32;

    // Status words ISO7816 has no constant for
    static final short SW_VERIFICATION_FAILED = (short) 0x6300;
    /** ISO 7816-4 "memory failure": a signature failed its check with the public key (RsaSigner). */
    static final short SW_FAULT_DETECTED = (short) 0x6581;
    static final short SW_TRIES_LEFT_BASE = (short) 0x63C0;
    static final short SW_SECURE_MESSAGING_UNSUPPORTED = (short) 0x6882;
    static final short SW_LAST_COMMAND_EXPECTED = (short) 0x6883;
    static final short SW_CHAINING_UNSUPPORTED = (short) 0x6884;
    static final short SW_AUTH_BLOCKED = (short) 0x6983;
    static final short SW_REFERENCE_NOT_USABLE = (short) 0x6984;
    static final short SW_NO_CURRENT_EF = (short) 0x6986;
    static final short SW_NOT_ENOUGH_MEMORY = (short) 0x6A84;
    static final short SW_REFERENCE_NOT_FOUND = (short) 0x6A88;
    static final short SW_BYTES_REMAINING_BASE = (short) 0x6100;
}
