package org.cardshield.virtualcard.gp;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A received GlobalPlatform Load File (tag C4 + CAP components, GPCS 11.6.2.3; component
 * formats JCVM 3.0.4 chapter 6), checked the way a card's loader checks it before linking:
 * complete, every component's size as the Directory declares, package and applet AIDs read
 * from the Header and Applet components. The bytecode itself is not verified or executed
 * (jcardsim runs the package's class files), so corruption inside Method bytes goes unseen.
 */
final class LoadFile {
    static final int HEADER = 1, DIRECTORY = 2, APPLET = 3, IMPORT = 4, CONSTANT_POOL = 5, CLASS = 6,
            METHOD = 7, STATIC_FIELD = 8, REF_LOCATION = 9;
    static final byte[] JAVACARD_FRAMEWORK = hex("A0000000620101");
    /** javacard.framework 1.6 = Java Card 3.0.5, the API level jcardsim implements. */
    static final int MAX_FRAMEWORK_MINOR = 6;
    static final int DEV_COMPONENT_TAG = 0xC5;
    static final byte[] DEV_MARKER =
            "CARDSHIELD DEVELOPMENT LOAD FILE - NO BYTECODE - CARDSHIELD VIRTUAL CARD ONLY".getBytes(StandardCharsets.US_ASCII);

    final byte[] packageAid;
    final int packageMajor;
    final int packageMinor;
    final List<byte[]> appletAids = new ArrayList<>();
    final boolean development;
    final int size;

    private LoadFile(byte[] packageAid, int major, int minor, boolean development, int size) {
        this.packageAid = packageAid;
        this.packageMajor = major;
        this.packageMinor = minor;
        this.development = development;
        this.size = size;
    }

    static byte[] hex(String s) {
        byte[] out = new byte[s.length() / 2];
        for (int i = 0; i < out.length; i++) {
            out[i] = (byte) Integer.parseInt(s.substring(2 * i, 2 * i + 2), 16);
        }
        return out;
    }

    private static StatusWordException bad(String why) {
        return new StatusWordException(StatusWordException.SW_WRONG_DATA, "load file refused: " + why);
    }

    private static final class Reader {
        final byte[] data;
        int pos;
        final int end;

        Reader(byte[] data, int pos, int end) {
            this.data = data;
            this.pos = pos;
            this.end = end;
        }

        int u1() {
            if (pos >= end) {
                throw bad("component ends early");
            }
            return data[pos++] & 0xFF;
        }

        int u2() {
            return (u1() << 8) | u1();
        }

        byte[] take(int n) {
            if (pos + n > end) {
                throw bad("component ends early");
            }
            byte[] out = Arrays.copyOfRange(data, pos, pos + n);
            pos += n;
            return out;
        }

        byte[] aid() {
            int len = u1();
            if (len < 5 || len > 16) {
                throw bad("AID length " + len + " outside 5..16");
            }
            return take(len);
        }
    }

    /** Parses C4 L <components>; any inconsistency is 6A80 as on a real card's loader. */
    static LoadFile parse(byte[] loadFile) {
        Reader outer = new Reader(loadFile, 0, loadFile.length);
        if (outer.u1() != 0xC4) {
            throw bad("does not start with tag C4");
        }
        int len = outer.u1();
        if (len > 0x80) {
            int n = len - 0x80;
            if (n > 3) {
                throw bad("bad BER length");
            }
            len = 0;
            for (int i = 0; i < n; i++) {
                len = (len << 8) | outer.u1();
            }
        }
        if (outer.pos + len != loadFile.length) {
            throw bad("C4 length " + len + " but " + (loadFile.length - outer.pos) + " bytes received (truncated?)");
        }
        Map<Integer, byte[]> components = new HashMap<>();
        Reader r = new Reader(loadFile, outer.pos, loadFile.length);
        while (r.pos < r.end) {
            int tag = r.u1();
            int size = r.u2();
            if (components.containsKey(tag)) {
                throw bad("component " + tag + " appears twice");
            }
            components.put(tag, r.take(size));
        }
        for (int tag : new int[] {HEADER, DIRECTORY, IMPORT}) {
            if (!components.containsKey(tag)) {
                throw bad("component " + tag + " (Header/Directory/Import) missing");
            }
        }
        byte[] headerBytes = components.get(HEADER);
        Reader h = new Reader(headerBytes, 0, headerBytes.length);
        if (h.u2() != 0xDECA || h.u2() != 0xFFED) {
            throw bad("Header lacks the DECAFFED magic");
        }
        int capMinor = h.u1();
        int capMajor = h.u1();
        if (capMajor != 2) {
            throw bad("CAP format " + capMajor + "." + capMinor + " not supported");
        }
        h.u1();  // flags
        int pkgMinor = h.u1();
        int pkgMajor = h.u1();
        byte[] pkgAid = h.aid();

        byte[] dirBytes = components.get(DIRECTORY);
        Reader d = new Reader(dirBytes, 0, dirBytes.length);
        int count = capMinor <= 1 ? 11 : 12;
        int[] sizes = new int[count];
        for (int i = 0; i < count; i++) {
            sizes[i] = d.u2();
        }
        d.take(6);
        int importCount = d.u1();
        int appletCount = d.u1();
        int customCount = d.u1();
        boolean dev = false;
        for (int i = 0; i < customCount; i++) {
            int tag = d.u1();
            int size = d.u2();
            d.aid();
            byte[] custom = components.get(tag);
            if (custom == null || custom.length != size) {
                throw bad("custom component " + Integer.toHexString(tag) + " missing or of the wrong size");
            }
            if (tag == DEV_COMPONENT_TAG && Arrays.equals(custom, DEV_MARKER)) {
                dev = true;
            }
        }
        for (int tag = 1; tag <= 10; tag++) {  // Descriptor (11) and Debug (12) are not loaded
            byte[] c = components.get(tag);
            if ((c == null ? 0 : c.length) != sizes[tag - 1]) {
                throw bad("component " + tag + " has " + (c == null ? 0 : c.length) + " bytes, Directory says "
                        + sizes[tag - 1]);
            }
        }
        if (!dev) {
            for (int tag : new int[] {CONSTANT_POOL, CLASS, METHOD, STATIC_FIELD, REF_LOCATION}) {
                if (!components.containsKey(tag)) {
                    throw bad("code component " + tag + " missing");
                }
            }
        }
        byte[] impBytes = components.get(IMPORT);
        Reader im = new Reader(impBytes, 0, impBytes.length);
        int imports = im.u1();
        if (imports != importCount) {
            throw bad("Import lists " + imports + " packages, Directory " + importCount);
        }
        for (int i = 0; i < imports; i++) {
            int minor = im.u1();
            int major = im.u1();
            byte[] aid = im.aid();
            if (Arrays.equals(aid, JAVACARD_FRAMEWORK) && (major != 1 || minor > MAX_FRAMEWORK_MINOR)) {
                // a CAP for a newer Java Card than this card's (jcardsim: 3.0.5) cannot link
                throw new StatusWordException(StatusWordException.SW_CONDITIONS_OF_USE,
                        "javacard.framework " + major + "." + minor + " is newer than this card's 1."
                                + MAX_FRAMEWORK_MINOR);
            }
        }
        LoadFile file = new LoadFile(pkgAid, pkgMajor, pkgMinor, dev, loadFile.length);
        byte[] appBytes = components.get(APPLET);
        if (appBytes != null) {
            Reader a = new Reader(appBytes, 0, appBytes.length);
            int n = a.u1();
            for (int i = 0; i < n; i++) {
                file.appletAids.add(a.aid());
                a.u2();
            }
        }
        if (file.appletAids.size() != appletCount) {
            throw bad("Applet lists " + file.appletAids.size() + " applets, Directory " + appletCount);
        }
        return file;
    }
}
