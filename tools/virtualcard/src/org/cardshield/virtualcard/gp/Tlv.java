package org.cardshield.virtualcard.gp;

import java.util.Arrays;

/** Minimal BER-TLV (ISO 7816-4 5.2) for GlobalPlatform data objects: 1-2 byte tags, lengths up to 65535. */
final class Tlv {
    private Tlv() {
    }

    static byte[] of(int tag, byte[]... values) {
        byte[] value = GpCrypto.concat(values);
        byte[] t = tag > 0xFF ? new byte[] {(byte) (tag >> 8), (byte) tag} : new byte[] {(byte) tag};
        byte[] l;
        if (value.length < 0x80) {
            l = new byte[] {(byte) value.length};
        } else if (value.length < 0x100) {
            l = new byte[] {(byte) 0x81, (byte) value.length};
        } else {
            l = new byte[] {(byte) 0x82, (byte) (value.length >> 8), (byte) value.length};
        }
        return GpCrypto.concat(t, l, value);
    }

    private static int tagEnd(byte[] data, int pos) {
        if ((data[pos] & 0x1F) == 0x1F) {
            pos++;
            while ((data[pos] & 0x80) != 0) {
                pos++;
            }
        }
        return pos + 1;
    }

    /** {valueStart, valueEnd} of the TLV at pos. */
    private static int[] bounds(byte[] data, int pos) {
        try {
            int p = tagEnd(data, pos);
            int len = data[p] & 0xFF;
            p++;
            if (len > 0x80) {
                int n = len - 0x80;
                len = 0;
                for (int i = 0; i < n; i++) {
                    len = (len << 8) | (data[p++] & 0xFF);
                }
            }
            if (p + len > data.length) {
                throw new StatusWordException(StatusWordException.SW_WRONG_DATA, "TLV length beyond the data");
            }
            return new int[] {p, p + len};
        } catch (ArrayIndexOutOfBoundsException e) {
            throw new StatusWordException(StatusWordException.SW_WRONG_DATA, "truncated TLV");
        }
    }

    static int end(byte[] data, int pos) {
        return bounds(data, pos)[1];
    }

    private static int tagAt(byte[] data, int pos) {
        int end = tagEnd(data, pos);
        int tag = 0;
        for (int i = pos; i < end; i++) {
            tag = (tag << 8) | (data[i] & 0xFF);
        }
        return tag;
    }

    /** Value of the first top-level TLV with this tag, or null. */
    static byte[] find(byte[] data, int tag) {
        int pos = 0;
        while (pos < data.length) {
            int[] b = bounds(data, pos);
            if (tagAt(data, pos) == tag) {
                return Arrays.copyOfRange(data, b[0], b[1]);
            }
            pos = b[1];
        }
        return null;
    }

    static byte[] findOrEmpty(byte[] data, int tag) {
        byte[] v = find(data, tag);
        return v == null ? new byte[0] : v;
    }

    /** Reads the length-prefixed fields of INSTALL command data (GPCS 11.5.2). */
    static final class LengthValueReader {
        private final byte[] data;
        private int pos;

        LengthValueReader(byte[] data) {
            this.data = data;
        }

        byte[] next() {
            if (pos >= data.length) {
                throw new StatusWordException(StatusWordException.SW_WRONG_DATA, "INSTALL data ends early");
            }
            int len = data[pos++] & 0xFF;
            if (pos + len > data.length) {
                throw new StatusWordException(StatusWordException.SW_WRONG_DATA, "INSTALL field beyond the data");
            }
            byte[] out = Arrays.copyOfRange(data, pos, pos + len);
            pos += len;
            return out;
        }

        byte[] aid() {
            byte[] aid = next();
            if (aid.length < 5 || aid.length > 16) {
                throw new StatusWordException(StatusWordException.SW_WRONG_DATA, "AID length outside 5..16");
            }
            return aid;
        }
    }
}
