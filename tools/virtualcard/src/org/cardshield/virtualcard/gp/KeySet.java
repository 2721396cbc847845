package org.cardshield.virtualcard.gp;

/** A static key set of the ISD: version number, protocol, ENC/MAC/DEK (GPCS 11.1.8). */
final class KeySet {
    final int version;
    final int scp;
    final byte[] enc;
    final byte[] mac;
    final byte[] dek;

    KeySet(int version, int scp, byte[] enc, byte[] mac, byte[] dek) {
        this.version = version;
        this.scp = scp;
        this.enc = enc;
        this.mac = mac;
        this.dek = dek;
    }

    /** GPCS 11.3.3.1 key information data, one C0 entry per key (basic format). */
    byte[] keyInformation() {
        int type = scp == 0x03 ? 0x88 : 0x80;  // AES : DES (Table 11-16)
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        for (int id = 1; id <= 3; id++) {
            out.write(0xC0);
            out.write(4);
            out.write(id);
            out.write(version);
            out.write(type);
            out.write(enc.length);
        }
        return out.toByteArray();
    }
}
