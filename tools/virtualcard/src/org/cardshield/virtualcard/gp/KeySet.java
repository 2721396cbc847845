package org.cardshield.virtualcard.gp;

/** A static key set of the ISD: version number, protocol and its i parameter, ENC/MAC/DEK (GPCS 11.1.8). */
final class KeySet {
    static final int TYPE_DES = 0x80;  // GPCS Table 11-16
    static final int TYPE_AES = 0x88;
    final int version;
    final int scp;
    final int i;
    final byte[] enc;
    final byte[] mac;
    final byte[] dek;

    KeySet(int version, int scp, int i, byte[] enc, byte[] mac, byte[] dek) {
        this.version = version;
        this.scp = scp;
        this.i = i;
        this.enc = enc;
        this.mac = mac;
        this.dek = dek;
    }

    int keyType() {
        return scp == 0x03 ? TYPE_AES : TYPE_DES;
    }

    /** GPCS 11.3.3.1 key information data, one C0 entry per key (basic format). */
    byte[] keyInformation() {
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        for (int id = 1; id <= 3; id++) {
            out.write(0xC0);
            out.write(4);
            out.write(id);
            out.write(version);
            out.write(keyType());
            out.write(enc.length);
        }
        return out.toByteArray();
    }
}
