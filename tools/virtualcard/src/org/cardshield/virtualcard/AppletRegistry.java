package org.cardshield.virtualcard;

import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The executable load files "on" the card: package AID -> applet module AID and Java class.
 * Stands in for the load files a real card receives with GlobalPlatform LOAD; INSTALL
 * [for install] names the package and module AIDs found here.
 */
public final class AppletRegistry {
    /** One executable load file with its one applet module. */
    public static final class LoadFile {
        public final byte[] packageAid;
        public final byte[] moduleAid;
        public final String appletClass;

        LoadFile(byte[] packageAid, byte[] moduleAid, String appletClass) {
            this.packageAid = packageAid.clone();
            this.moduleAid = moduleAid.clone();
            this.appletClass = appletClass;
        }
    }

    private final Map<String, LoadFile> byPackage = new LinkedHashMap<>();

    public void register(byte[] packageAid, byte[] moduleAid, String appletClass) {
        byPackage.put(Hex.encode(packageAid), new LoadFile(packageAid, moduleAid, appletClass));
    }

    public LoadFile find(byte[] packageAid) {
        return byPackage.get(Hex.encode(packageAid));
    }

    public Collection<LoadFile> all() {
        return byPackage.values();
    }
}
