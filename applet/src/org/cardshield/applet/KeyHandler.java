package org.cardshield.applet;

import javacard.framework.APDU;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.JCSystem;
import javacard.framework.Util;
import javacard.security.ECPublicKey;
import javacard.security.PublicKey;
import javacard.security.RSAPublicKey;

/**
 * GENERATE ASYMMETRIC KEY PAIR (ISO/IEC 7816-8 clause 5.1): P1=80 regenerates a slot's key
 * pair on the card (patent steps 502-505), P1=81 reads its public key (steps 507-509).
 * The public key goes out as 7F49 {81 modulus, 82 exponent} or 7F49 {86 point}.
 */
final class KeyHandler {
    private static final byte P1_GENERATE = (byte) 0x80;
    private static final byte P1_READ = (byte) 0x81;

    private final Persistent state;
    private final Transients t;
    private final Io io;

    KeyHandler(Persistent state, Transients t, Io io) {
        this.state = state;
        this.t = t;
        this.io = io;
    }

    void generateOrRead(APDU apdu, byte p1, byte p2, boolean chained) {
        if (p1 != P1_GENERATE && p1 != P1_READ) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        KeySlot slot = state.slot(p2);
        io.requireNoData(apdu, chained);
        if (p1 == P1_GENERATE) {
            state.requireIssued();
            state.requirePinVerified();
            // the old key and its certificate are gone before generation starts: a torn
            // generation leaves an empty slot, never a certificate for another key
            JCSystem.beginTransaction();
            slot.keyPresent = false;
            CertificateStore.discard(slot);
            JCSystem.commitTransaction();
            slot.keyPair.genKeyPair();
            slot.keyPresent = true;
        } else {
            Persistent.requireKey(slot);
        }
        io.send(apdu, (short) 0, encodePublicKey(slot.keyPair.getPublic(), t.buffer, (short) 0));
    }

    /** Writes the 7F49 data object at off; returns its length. */
    static short encodePublicKey(PublicKey key, byte[] buf, short off) {
        if (key instanceof ECPublicKey) {
            // 7F49 43 86 41 04||X||Y
            short pointLen = ((ECPublicKey) key).getW(buf, (short) (off + 5));
            buf[off] = (byte) 0x7F;
            buf[(short) (off + 1)] = (byte) 0x49;
            buf[(short) (off + 2)] = (byte) (pointLen + 2);
            buf[(short) (off + 3)] = (byte) 0x86;
            buf[(short) (off + 4)] = (byte) pointLen;
            return (short) (pointLen + 5);
        }
        RSAPublicKey rsa = (RSAPublicKey) key;
        short expLen = rsa.getExponent(buf, off); // parked at off, moved below
        short modLen = (short) (rsa.getSize() / 8);
        short modTlv = (short) (1 + Tlv.lengthSize(modLen) + modLen);
        short inner = (short) (modTlv + 2 + expLen);
        short p = (short) (off + 2 + Tlv.lengthSize(inner));
        short expValue = (short) (p + modTlv + 2);
        Util.arrayCopyNonAtomic(buf, off, buf, expValue, expLen);
        buf[off] = (byte) 0x7F;
        buf[(short) (off + 1)] = (byte) 0x49;
        Tlv.putLength(buf, (short) (off + 2), inner);
        buf[p] = (byte) 0x81;
        p = Tlv.putLength(buf, (short) (p + 1), modLen);
        rsa.getModulus(buf, p);
        p += modLen;
        buf[p] = (byte) 0x82;
        buf[(short) (p + 1)] = (byte) expLen;
        return (short) (expValue + expLen - off);
    }
}
