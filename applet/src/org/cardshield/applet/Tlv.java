package org.cardshield.applet;

import javacard.framework.ISO7816;
import javacard.framework.ISOException;

/**
 * BER-TLV helpers (ISO/IEC 7816-4 clause 5.2) over byte arrays: one-byte tags, definite
 * lengths of one to three bytes. Every read is bounded by the caller's end offset; a
 * malformed or overrunning object is answered 6A80.
 */
final class Tlv {
    private Tlv() {
    }

    /** Size of the length field starting at off (1, 2 or 3), or 6A80. */
    static short lengthFieldSize(byte[] buf, short off, short end) {
        if (off >= end) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        byte first = buf[off];
        if (first >= 0) {
            return (short) 1;
        }
        if (first == (byte) 0x81) {
            return (short) 2;
        }
        if (first == (byte) 0x82) {
            return (short) 3;
        }
        ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        return (short) 0;
    }

    /** The length value at off; 6A80 unless the value fits before end. */
    static short length(byte[] buf, short off, short end) {
        short size = lengthFieldSize(buf, off, end);
        short value;
        if (size == (short) 1) {
            value = buf[off];
        } else if (size == (short) 2) {
            if ((short) (off + 1) >= end) {
                ISOException.throwIt(ISO7816.SW_WRONG_DATA);
            }
            value = (short) (buf[(short) (off + 1)] & 0xFF);
        } else {
            if ((short) (off + 2) >= end) {
                ISOException.throwIt(ISO7816.SW_WRONG_DATA);
            }
            value = javacard.framework.Util.getShort(buf, (short) (off + 1));
        }
        // value < 0 catches lengths above 32767; the comparison also catches overruns
        if (value < 0 || value > (short) (end - off - size)) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        return value;
    }

    /** Offset of the value of the TLV whose length field starts at off. */
    static short valueOffset(byte[] buf, short off, short end) {
        return (short) (off + lengthFieldSize(buf, off, end));
    }

    /** Bytes a length field for len needs. */
    static short lengthSize(short len) {
        if (len < (short) 0x80) {
            return (short) 1;
        }
        return len < (short) 0x100 ? (short) 2 : (short) 3;
    }

    /** Writes a shortest-form length at off; returns the offset after it. */
    static short putLength(byte[] buf, short off, short len) {
        if (len < (short) 0x80) {
            buf[off] = (byte) len;
            return (short) (off + 1);
        }
        if (len < (short) 0x100) {
            buf[off] = (byte) 0x81;
            buf[(short) (off + 1)] = (byte) len;
            return (short) (off + 2);
        }
        buf[off] = (byte) 0x82;
        javacard.framework.Util.setShort(buf, (short) (off + 1), len);
        return (short) (off + 3);
    }
}
