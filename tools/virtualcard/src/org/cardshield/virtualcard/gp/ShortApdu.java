package org.cardshield.virtualcard.gp;

import java.util.Arrays;

/** A short command APDU split into its fields (ISO 7816-3 12.1; GP commands are short). */
final class ShortApdu {
    final int cla;
    final int ins;
    final int p1;
    final int p2;
    final byte[] data;
    final boolean hasLe;

    ShortApdu(int cla, int ins, int p1, int p2, byte[] data, boolean hasLe) {
        this.cla = cla;
        this.ins = ins;
        this.p1 = p1;
        this.p2 = p2;
        this.data = data;
        this.hasLe = hasLe;
    }

    static ShortApdu parse(byte[] apdu) {
        if (apdu.length < 4) {
            throw new StatusWordException(StatusWordException.SW_WRONG_LENGTH, "APDU shorter than 4 bytes");
        }
        int cla = apdu[0] & 0xFF, ins = apdu[1] & 0xFF, p1 = apdu[2] & 0xFF, p2 = apdu[3] & 0xFF;
        int body = apdu.length - 4;
        if (body == 0) {
            return new ShortApdu(cla, ins, p1, p2, new byte[0], false);
        }
        if (body == 1) {
            return new ShortApdu(cla, ins, p1, p2, new byte[0], true);
        }
        int lc = apdu[4] & 0xFF;
        if (lc == 0 || (body != 1 + lc && body != 2 + lc)) {
            throw new StatusWordException(StatusWordException.SW_WRONG_LENGTH, "Lc does not match the APDU length");
        }
        return new ShortApdu(cla, ins, p1, p2, Arrays.copyOfRange(apdu, 5, 5 + lc), body == 2 + lc);
    }

    ShortApdu withData(int newCla, byte[] newData) {
        return new ShortApdu(newCla, ins, p1, p2, newData, hasLe);
    }

    /** CLA INS P1 P2 Lc as the MAC covers them, for an arbitrary CLA and Lc. */
    byte[] header(int headerCla, int lc) {
        return new byte[] {(byte) headerCla, (byte) ins, (byte) p1, (byte) p2, (byte) lc};
    }
}
