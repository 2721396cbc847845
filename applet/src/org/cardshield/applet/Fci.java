package org.cardshield.applet;

import javacard.framework.JCSystem;
import javacard.framework.Util;

/**
 * The FCI returned on SELECT (ISO/IEC 7816-4 clause 7.4.1): 6F { 84 AID, A5 { ... } } with
 * what tools need to adapt to this card (docs/apdu.md, "FCI").
 */
final class Fci {
    private final Persistent state;
    private final Crypto crypto;
    private final Transients t;
    private final SecureChannel secureChannel;

    Fci(Persistent state, Crypto crypto, Transients t, SecureChannel secureChannel) {
        this.state = state;
        this.crypto = crypto;
        this.t = t;
        this.secureChannel = secureChannel;
    }

    /** Writes the FCI at buffer offset 0 and returns its length. */
    short build() {
        byte[] b = t.buffer;
        b[0] = (byte) 0x6F;
        b[2] = (byte) 0x84;
        byte aidLen = JCSystem.getAID().getBytes(b, (short) 4);
        b[3] = aidLen;
        short a5 = (short) (4 + aidLen);
        b[a5] = (byte) 0xA5;
        short p = (short) (a5 + 2);
        p = put2(b, p, (byte) 0x80, Util.makeShort(Constants.VERSION_MAJOR, Constants.VERSION_MINOR));
        p = put1(b, p, (byte) 0x81, state.lifecycle());
        p = put1(b, p, (byte) 0x82, crypto.supported);
        p = put2(b, p, (byte) 0x83, state.maxCertificate);
        p = putSlot(b, p, state.slot1);
        p = putSlot(b, p, state.slot2);
        byte flags = 0;
        if (state.pinSet) {
            flags |= Constants.FLAG_PIN_SET;
        }
        if (state.pukSet) {
            flags |= Constants.FLAG_PUK_SET;
        }
        if (state.serverKeyLoaded) {
            flags |= Constants.FLAG_SERVER_KEY;
            if (state.serverKeyAlgorithm == Constants.ALG_EC_P256) {
                flags |= Constants.FLAG_SERVER_KEY_EC;
            }
        }
        flags |= secureChannel.isActive() ? Constants.FLAG_PERSO_KEYS : Constants.FLAG_DEVELOPMENT;
        if (secureChannel.isErased()) {
            flags |= Constants.FLAG_PERSO_KEYS_ERASED;
        }
        p = put1(b, p, (byte) 0x85, flags);
        p = put2(b, p, (byte) 0x86, Util.makeShort(state.pin.getTriesRemaining(), state.puk.getTriesRemaining()));
        b[p] = (byte) 0x87;
        b[(short) (p + 1)] = 4;
        Util.arrayCopyNonAtomic(state.counter, (short) 0, b, (short) (p + 2), (short) 4);
        p += 6;
        // free memory as the 3.0.4 API reports it (saturated at 7FFF): lets a tool see that
        // key regeneration does not consume persistent memory
        b[p] = (byte) 0x88;
        b[(short) (p + 1)] = 6;
        Util.setShort(b, (short) (p + 2), JCSystem.getAvailableMemory(JCSystem.MEMORY_TYPE_PERSISTENT));
        Util.setShort(b, (short) (p + 4), JCSystem.getAvailableMemory(JCSystem.MEMORY_TYPE_TRANSIENT_RESET));
        Util.setShort(b, (short) (p + 6), JCSystem.getAvailableMemory(JCSystem.MEMORY_TYPE_TRANSIENT_DESELECT));
        p += 8;
        p = put2(b, p, (byte) 0x89, (short) b.length);
        p = secureChannel.appendFci(b, p); // 8A card identity, 8B channel state (perso cards)
        b[(short) (a5 + 1)] = (byte) (p - a5 - 2);
        b[1] = (byte) (p - 2);
        return p;
    }

    private static short put1(byte[] b, short p, byte tag, byte value) {
        b[p] = tag;
        b[(short) (p + 1)] = 1;
        b[(short) (p + 2)] = value;
        return (short) (p + 3);
    }

    private static short put2(byte[] b, short p, byte tag, short value) {
        b[p] = tag;
        b[(short) (p + 1)] = 2;
        Util.setShort(b, (short) (p + 2), value);
        return (short) (p + 4);
    }

    private static short putSlot(byte[] b, short p, KeySlot slot) {
        b[p] = (byte) 0x84;
        b[(short) (p + 1)] = 6;
        b[(short) (p + 2)] = slot.id;
        b[(short) (p + 3)] = slot.algorithm;
        b[(short) (p + 4)] = slot.policy;
        byte status = 0;
        if (slot.keyPresent) {
            status |= 0x01;
        }
        if (slot.certificateLength != 0) {
            status |= 0x02;
        }
        b[(short) (p + 5)] = status;
        Util.setShort(b, (short) (p + 6), slot.certificateLength);
        return (short) (p + 8);
    }
}
