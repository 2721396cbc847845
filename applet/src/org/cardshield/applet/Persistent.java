package org.cardshield.applet;

import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.OwnerPIN;
import javacard.security.ECPublicKey;
import javacard.security.KeyBuilder;
import javacard.security.RSAPublicKey;

/**
 * State that lives as long as the applet instance (EEPROM/flash): lifecycle, PIN and PUK,
 * key slots and certificates, the signature counter, the server key, install parameters.
 * Everything is allocated at install; the slots' RSA-2048 key objects right after this
 * constructor (CardShieldCore), another algorithm's once during personalization, and the
 * attestation key's at the first PERSONALIZE P1=05.
 */
final class Persistent {
    /** The stored state; read it through lifecycle(), which also derives TERMINATED. */
    private byte lifecycleState = Constants.LIFECYCLE_PERSONALIZATION;

    final OwnerPIN pin = new OwnerPIN(Constants.PIN_TRIES, Constants.PIN_MAX);
    final OwnerPIN puk = new OwnerPIN(Constants.PUK_TRIES, Constants.PUK_LENGTH);
    boolean pinSet;
    boolean pukSet;

    /** Last signature counter value used (4 bytes, big-endian); strictly increasing. */
    final byte[] counter = new byte[4];

    final short maxCertificate;
    final KeySlot slot1;
    final KeySlot slot2;
    /**
     * The attestation key (PERSONALIZE P1=05) and its certificate (P1=06, EF C1 0A). Only ATTEST
     * signs with it: slot() does not return it, so no key reference can name it.
     */
    final KeySlot attestation;
    /** Certificate write staging area, shared by the slots and the attestation certificate
     * (one write at a time: PUT DATA needs ISSUED, PERSONALIZE P1=06 PERSONALIZATION). */
    byte[] staging;
    /** Attestation certificate bytes staged by P1=06 parts; -1 when no write is open. */
    short attestationStaged = (short) -1;

    /** The authentication server's RSA-2048 public key (request signatures 8E, ENCIPHER/VERIFY ref 10). */
    final RSAPublicKey serverKey;
    /**
     * The server's EC P-256 public key (8E as ECDSA), for cards whose bank key is EC: built
     * at the first PERSONALIZE P1=04 that brings one, reused by any later one.
     */
    ECPublicKey serverKeyEc;
    /** Which of the two holds the server key: Constants.ALG_RSA_2048 or ALG_EC_P256 (valid while loaded). */
    byte serverKeyAlgorithm = Constants.ALG_RSA_2048;
    boolean serverKeyLoaded;

    Persistent(short maxCertificate) {
        this.maxCertificate = maxCertificate;
        slot1 = new KeySlot((byte) 1, maxCertificate);
        slot2 = new KeySlot((byte) 2, maxCertificate);
        attestation = new KeySlot(Constants.FID_ATTESTATION, maxCertificate);
        staging = new byte[maxCertificate];
        serverKey = (RSAPublicKey) KeyBuilder.buildKey(KeyBuilder.TYPE_RSA_PUBLIC, KeyBuilder.LENGTH_RSA_2048, false);
    }

    /** Slot for a P2 / key reference byte; 6A86 for anything but 01 and 02. */
    KeySlot slot(byte id) {
        if (id == (byte) 1) {
            return slot1;
        }
        if (id == (byte) 2) {
            return slot2;
        }
        ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        return null;
    }

    /** The KeySlot whose certificate is EF C1 id (01, 02 or 0A); null for any other id. */
    KeySlot certificateFile(byte id) {
        if (id == (byte) 1) {
            return slot1;
        }
        if (id == (byte) 2) {
            return slot2;
        }
        return id == Constants.FID_ATTESTATION ? attestation : null;
    }

    /**
     * The lifecycle state. A blocked PUK means TERMINATED even if a tear struck between the
     * PUK's last try and the write of the state: the state cannot be recovered from.
     */
    byte lifecycle() {
        if (pukSet && puk.getTriesRemaining() == (byte) 0) {
            return Constants.LIFECYCLE_TERMINATED;
        }
        return lifecycleState;
    }

    /** PERSONALIZATION -> ISSUED (ISSUE); one byte, written atomically. */
    void issue() {
        lifecycleState = Constants.LIFECYCLE_ISSUED;
    }

    /** Private-key functions: ISSUED only (6985 before, 6983 once TERMINATED). */
    void requireIssued() {
        byte lifecycle = lifecycle();
        if (lifecycle == Constants.LIFECYCLE_TERMINATED) {
            ISOException.throwIt(Constants.SW_AUTH_BLOCKED);
        }
        if (lifecycle != Constants.LIFECYCLE_ISSUED) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
    }

    void requirePinVerified() {
        if (!pin.isValidated()) {
            ISOException.throwIt(ISO7816.SW_SECURITY_STATUS_NOT_SATISFIED);
        }
    }

    static void requireKey(KeySlot slot) {
        if (!slot.keyPresent) {
            ISOException.throwIt(Constants.SW_REFERENCE_NOT_FOUND);
        }
    }

    /**
     * Policy "PIN per signature": each private-key use of the slot consumes the verification.
     * Called right before the private-key operation, so a use that fails (bad padding,
     * crypto error, tear) consumes it too: one VERIFY never buys more than one attempt, which
     * keeps DECIPHER from serving as a padding oracle.
     */
    void consumePinForPrivateKeyUse(KeySlot slot) {
        if (slot.hasPolicy(Constants.POLICY_PIN_PER_SIGNATURE)) {
            pin.reset();
        }
    }

    /** A blocked PUK ends the card's private-key functions for good (also derived in lifecycle()). */
    void terminateIfPukBlocked() {
        if (puk.getTriesRemaining() == (byte) 0) {
            lifecycleState = Constants.LIFECYCLE_TERMINATED;
        }
        eraseKeysIfTerminated();
    }

    /**
     * TERMINATED ends every private key's use: the slot keys and the attestation key are
     * cleared (Key.clearKey) rather than left in EEPROM. Called when the PUK blocks and
     * again at each selection, which completes an erasure a tear interrupted.
     */
    void eraseKeysIfTerminated() {
        if (lifecycle() != Constants.LIFECYCLE_TERMINATED) {
            return;
        }
        erasePrivateKey(slot1);
        erasePrivateKey(slot2);
        erasePrivateKey(attestation);
    }

    private static void erasePrivateKey(KeySlot slot) {
        if (slot.keyPair != null && slot.keyPair.getPrivate().isInitialized()) {
            slot.keyPair.getPrivate().clearKey();
        }
    }

    /**
     * Increments the signature counter inside a transaction, byte arithmetic, no wrap:
     * at FF FF FF FF the card refuses (6985) instead of starting again at zero.
     */
    void incrementCounter() {
        short i = (short) 3;
        while (i >= 0 && counter[i] == (byte) 0xFF) {
            i--;
        }
        if (i < 0) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        javacard.framework.JCSystem.beginTransaction();
        counter[i]++;
        for (short j = (short) (i + 1); j < (short) 4; j++) {
            counter[j] = (byte) 0;
        }
        javacard.framework.JCSystem.commitTransaction();
    }
}
