package org.cardshield.applet;

import javacard.security.KeyPair;

/**
 * One key slot (01 payment signing, 02 authentication/decryption): the patent's RSA module
 * key pair plus, from the file system module, the slot's certificate. Persistent; the key
 * objects are allocated once (personalization) and regenerated in place afterwards.
 * The card's attestation key (id 0A) is held in a KeySlot too, but Persistent.slot()
 * never returns it: only ATTEST and PERSONALIZE P1=05/06 reach it.
 */
final class KeySlot {
    final byte id;
    /** Constants.ALG_*; ALG_NONE until the key objects exist. */
    byte algorithm;
    byte policy;
    /** Set by PERSONALIZE P1=03: ISSUE then keeps the policy instead of the bank's default. */
    boolean configured;
    boolean keyPresent;
    KeyPair keyPair;
    /** Committed certificate: certificate[0 .. certificateLength). Swapped with the staging area on commit. */
    byte[] certificate;
    short certificateLength;
    /** SHA-256 of the committed certificate (FCP tag 85), valid while certificateLength != 0. */
    final byte[] certificateHash = new byte[Constants.SHA256_LENGTH];

    KeySlot(byte id, short maxCertificate) {
        this.id = id;
        certificate = new byte[maxCertificate];
    }

    boolean isRsa() {
        return algorithm != Constants.ALG_EC_P256;
    }

    boolean hasPolicy(byte flag) {
        return (byte) (policy & flag) != 0;
    }
}
