package org.cardshield.applet;

import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.JCSystem;
import javacard.framework.Util;

/**
 * The patent's file system module: one DER X.509 certificate per slot, read as EF C1 0n
 * (SELECT 11.1.1, READ BINARY 11.2.3) and written with PUT DATA (11.4.6). Writes stream into
 * a staging area; only the last APDU commits, swapping staging and slot buffer and setting
 * the length in one transaction, so a torn write leaves the previous certificate intact.
 * The SHA-256 of each certificate is computed once, before that transaction, and stored in
 * it: SELECT returns it as the certificate reference (FCP tag 85) without hashing again.
 * EF C1 0A, the attestation certificate, is read the same way (written by Attestation).
 */
final class CertificateStore {
    private static final byte FID_HIGH = (byte) 0xC1;

    private static final byte TAG_REFERENCE = (byte) 0x85;

    private final Persistent state;
    private final Transients t;
    private final Io io;
    private final Crypto crypto;

    CertificateStore(Persistent state, Transients t, Io io, Crypto crypto) {
        this.state = state;
        this.t = t;
        this.io = io;
        this.crypto = crypto;
    }

    /** SELECT 00 A4 02 P2 header: no chaining (6884), P1 02 and P2 00/04/0C (6A86). */
    void checkSelect(byte p1, byte p2, boolean chained) {
        if (chained) {
            ISOException.throwIt(Constants.SW_CHAINING_UNSUPPORTED);
        }
        if (p1 != (byte) 0x02 || (p2 != 0x00 && p2 != 0x04 && p2 != 0x0C)) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
    }

    /** SELECT 00 A4 02 P2 02 C1 0n (n = 01, 02 or 0A); the FCP is the response unless P2=0C. */
    short selectFile(byte p2, short len) {
        if (len != 2) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        byte id = t.buffer[1];
        KeySlot slot = t.buffer[0] == FID_HIGH ? state.certificateFile(id) : null;
        if (slot == null || slot.certificateLength == 0) {
            ISOException.throwIt(ISO7816.SW_FILE_NOT_FOUND);
        }
        t.bytes[Transients.B_SELECTED_EF] = id;
        if (p2 == 0x0C) {
            return 0;
        }
        // FCP template (ISO/IEC 7816-4 clause 5.3.3): 80 size, 82 descriptor (transparent EF), 83 FID,
        // 85 (proprietary information) the certificate reference SHA-256(certificate)
        byte[] b = t.buffer;
        b[0] = (byte) 0x62;
        b[1] = (byte) 0x2D;
        b[2] = (byte) 0x80;
        b[3] = (byte) 0x02;
        Util.setShort(b, (short) 4, slot.certificateLength);
        b[6] = (byte) 0x82;
        b[7] = (byte) 0x01;
        b[8] = (byte) 0x01;
        b[9] = (byte) 0x83;
        b[10] = (byte) 0x02;
        b[11] = FID_HIGH;
        b[12] = id;
        b[13] = TAG_REFERENCE;
        b[14] = (byte) Constants.SHA256_LENGTH;
        Util.arrayCopyNonAtomic(slot.certificateHash, (short) 0, b, (short) 15, Constants.SHA256_LENGTH);
        return (short) (15 + Constants.SHA256_LENGTH);
    }

    /**
     * READ BINARY 00 B0 offset: the selected certificate from the offset on, of which
     * process() sends at most Ne bytes (Io.part: the response is a part, never 61xx).
     */
    short readBinary(byte p1, byte p2) {
        if (p1 < 0) {
            // b8 set: short EF identifier addressing, not offered
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        byte id = t.bytes[Transients.B_SELECTED_EF];
        if (id == 0) {
            ISOException.throwIt(Constants.SW_NO_CURRENT_EF);
        }
        KeySlot slot = state.certificateFile(id);
        short offset = Util.makeShort(p1, p2);
        if (slot.certificateLength == 0) {
            ISOException.throwIt(ISO7816.SW_FILE_NOT_FOUND);
        }
        if (offset >= slot.certificateLength) {
            ISOException.throwIt(ISO7816.SW_WRONG_P1P2);
        }
        io.part(slot.certificate, offset);
        return (short) (slot.certificateLength - offset);
    }

    /** PUT DATA 00/10 DA C1 0n header and state, checked at every APDU of the chain; returns the slot. */
    KeySlot checkPutData(byte p1, byte p2) {
        if (p1 != FID_HIGH || (p2 != 1 && p2 != 2)) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        state.requireIssued();
        state.requirePinVerified();
        return state.slot(p2);
    }

    /** PUT DATA, all parts streamed into the staging area (length bytes): validate and commit. */
    void putData(KeySlot slot, short length) {
        if (length != 0) {
            requireSingleDerSequence(state.staging, length);
            hashStaging(crypto, state, length, t.buffer, (short) 0);
        }
        JCSystem.beginTransaction();
        if (length == 0) {
            discard(slot);
        } else {
            swapIn(state, slot, length, t.buffer, (short) 0);
        }
        JCSystem.commitTransaction();
    }

    /** SHA-256 of the staged certificate into out[off..off+32), outside any transaction. */
    static void hashStaging(Crypto crypto, Persistent state, short length, byte[] out, short off) {
        crypto.sha256.doFinal(state.staging, (short) 0, length, out, off);
    }

    /**
     * Makes the staged certificate the slot's, with its reference hash (hashStaging), inside
     * the caller's transaction: two references, a length and 32 hash bytes are journalled,
     * never the certificate itself.
     */
    static void swapIn(Persistent state, KeySlot slot, short length, byte[] hash, short hashOff) {
        byte[] previous = slot.certificate;
        slot.certificate = state.staging;
        state.staging = previous;
        Util.arrayCopy(hash, hashOff, slot.certificateHash, (short) 0, Constants.SHA256_LENGTH);
        slot.certificateLength = length;
    }

    /** Remove a slot's certificate (key regeneration), inside the caller's transaction. */
    static void discard(KeySlot slot) {
        slot.certificateLength = 0;
    }

    /** 30 || DER length || content, exactly length bytes: 6A80 otherwise. */
    static void requireSingleDerSequence(byte[] der, short length) {
        if (der[0] != (byte) 0x30) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        short content = Tlv.length(der, (short) 1, length);
        if ((short) (1 + Tlv.lengthFieldSize(der, (short) 1, length) + content) != length) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
    }
}
