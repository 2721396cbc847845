package org.cardshield.virtualcard.strict;

import java.util.Properties;

/**
 * The limits of the emulated card, from the profile file the harness chose
 * (tools/cardshield/sim/profiles/NAME.toml, copied into card.properties as profile.*).
 * Only what the host enforces is here; the profile file says where every value comes from.
 */
public final class CardProfile {
    public final String name;
    /** Persistent memory the applets may allocate (bytes). */
    public final int eepromBytes;
    /** Transient RAM for CLEAR_ON_DESELECT arrays (bytes; JCSystem.MEMORY_TYPE_TRANSIENT_DESELECT). */
    public final int transientDeselectBytes;
    /** Transient RAM for CLEAR_ON_RESET arrays (bytes; JCSystem.MEMORY_TYPE_TRANSIENT_RESET). */
    public final int transientResetBytes;
    /** JCSystem.getMaxCommitCapacity(): journal bytes one transaction may use, overhead included. */
    public final int commitCapacity;
    /** Journal bytes each logged write costs besides its data (address, length, tag). */
    public final int commitEntryOverhead;
    /** Bytes written at once by a non-atomic copy or fill: a tear lands between two pages. */
    public final int pageBytes;
    /** Bytes an object or array header takes in persistent memory. */
    public final int objectHeaderBytes;
    /** The card speaks T=0 only: short APDUs, case 4 by 61xx and GET RESPONSE, getProtocol T=0. */
    public final boolean t0;
    /** The optional package javacardx.apdu (ExtendedLength) is on the card; many SIM cards lack it. */
    public final boolean javacardxApdu;
    /** The algorithms and key sizes the card has (profile.algorithms); the rest is NO_SUCH_ALGORITHM. */
    final CardAlgorithms algorithms;
    /** APDU.getBuffer()'s length: applet writes past it fail as on the card. */
    public final int apduBufferBytes;

    private CardProfile(Properties p) {
        name = p.getProperty("profile.name", "lenient").trim();
        eepromBytes = number(p, "profile.eeprom.bytes", Integer.MAX_VALUE);
        transientDeselectBytes = number(p, "profile.transient.deselect.bytes", Integer.MAX_VALUE);
        transientResetBytes = number(p, "profile.transient.reset.bytes", Integer.MAX_VALUE);
        commitCapacity = number(p, "profile.commit.capacity", 32767);
        commitEntryOverhead = number(p, "profile.commit.entry.overhead", 0);
        pageBytes = Math.max(1, number(p, "profile.eeprom.page.bytes", 64));
        objectHeaderBytes = number(p, "profile.object.header.bytes", 0);
        t0 = "T=0".equals(p.getProperty("profile.protocol", "T=1").trim());
        javacardxApdu = !"false".equals(p.getProperty("profile.javacardx.apdu", "true").trim());
        algorithms = CardAlgorithms.parse(p.getProperty("profile.algorithms"));
        apduBufferBytes = number(p, "profile.apdu.buffer.bytes", Integer.MAX_VALUE);
    }

    public static CardProfile from(Properties config) {
        return new CardProfile(config);
    }

    /** jcardsim's own limits: what the virtual card did before profiles. */
    public static CardProfile lenient() {
        return new CardProfile(new Properties());
    }

    private static int number(Properties p, String key, int fallback) {
        String value = p.getProperty(key);
        if (value == null || value.trim().isEmpty()) {
            return fallback;
        }
        try {
            return Integer.parseInt(value.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(key + "=" + value + " is not a whole number of bytes");
        }
    }
}
