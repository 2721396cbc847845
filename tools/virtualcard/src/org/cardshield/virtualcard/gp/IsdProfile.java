package org.cardshield.virtualcard.gp;

import java.util.ArrayList;
import java.util.List;

/**
 * How the virtual Issuer Security Domain behaves: one profile per family of real cards the
 * GlobalPlatform client must cope with. Chosen by the host property gp.isd.profile
 * (`./cardshield sim --isd NAME`); default "plain".
 *
 *   plain    GP 2.3 ISD A000000151000000: SCP02 i=55 (key set 20) and SCP03 S8 i=10 (key set 30),
 *            tagged GET STATUS, FCI with 9F65 = FF
 *   gp211    a GP 2.1.1 card: ISD A000000003000000, one SCP02 i=15 key set (version 01) used
 *            whatever version INITIALIZE UPDATE asks for, legacy (non-TLV) GET STATUS only,
 *            no P1=10, no 9F65, and a firmware bug: the last GET STATUS page ends with 6310
 *            and every GET STATUS [next] after it answers 6310 with no data
 *   s16      SCP03 S16 only (i=11, 16-byte challenges, cryptograms and MACs), key set 30, at a
 *            proprietary ISD AID A0000001515350 found only through the default selection's FCI
 *   dm       a security domain that requires the SHA-256 Load File Data Block Hash in
 *            INSTALL [for load] (Delegated Management / DAP verification, GPCS 9.3.5, C.2)
 *   locked   card life cycle CARD_LOCKED from the start (SELECT of the ISD answers 6283)
 *   small    9F65 = 64: command data at most 64 bytes, so LOAD blocks must be small
 */
final class IsdProfile {
    final String name;
    byte[] isdAid = LoadFile.hex("A000000151000000");
    final List<KeySet> keySets = new ArrayList<>();
    int defaultScp = 0x03;
    /** Answer INITIALIZE UPDATE with this key set whatever version is asked for (old cards). */
    boolean ignoresKeyVersion;
    boolean taggedStatus = true;
    boolean statusP1Modules = true;
    boolean emptyMoreDataBug;
    /** 9F65 in the FCI and the largest command data accepted; -1: not announced (255). */
    int maxCommandData = 0xFF;
    boolean requiresLoadFileHash;
    boolean startsLocked;
    String gpVersion = "2.3.1";

    private IsdProfile(String name) {
        this.name = name;
    }

    static IsdProfile named(String name) {
        IsdProfile p = new IsdProfile(name);
        byte[] k = IssuerSecurityDomain.TEST_KEY;
        switch (name) {
            case "plain":
            case "dm":
            case "locked":
            case "small":
                p.keySets.add(new KeySet(0x20, 0x02, 0x55, k, k, k));
                p.keySets.add(new KeySet(0x30, 0x03, Scp03CardSession.I_PSEUDO_RANDOM, k, k, k));
                p.requiresLoadFileHash = name.equals("dm");
                p.startsLocked = name.equals("locked");
                p.maxCommandData = name.equals("small") ? 64 : 0xFF;
                return p;
            case "gp211":
                p.isdAid = LoadFile.hex("A000000003000000");
                p.keySets.add(new KeySet(0x01, 0x02, 0x15, k, k, k));
                p.defaultScp = 0x02;
                p.ignoresKeyVersion = true;
                p.taggedStatus = false;
                p.statusP1Modules = false;
                p.emptyMoreDataBug = true;
                p.maxCommandData = -1;
                p.gpVersion = "2.1.1";
                return p;
            case "s16":
                p.isdAid = LoadFile.hex("A0000001515350");
                p.keySets.add(new KeySet(0x30, 0x03, Scp03CardSession.I_PSEUDO_RANDOM | Scp03CardSession.I_S16,
                        k, k, k));
                return p;
            default:
                throw new IllegalArgumentException("unknown ISD profile " + name
                        + " (plain, gp211, s16, dm, locked, small)");
        }
    }

    /** The largest command data field this ISD takes (9F65, else a short APDU's 255). */
    int commandDataLimit() {
        return maxCommandData < 0 ? 0xFF : maxCommandData;
    }
}
