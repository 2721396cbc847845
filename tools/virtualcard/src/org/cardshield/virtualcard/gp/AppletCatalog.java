package org.cardshield.virtualcard.gp;

import java.util.HashMap;
import java.util.Map;

/**
 * Which applet classes on the host's classpath stand for which loaded package: jcardsim
 * runs class files, not CAP bytecode, so a LOADed package is linked to its classes here.
 */
final class AppletCatalog {
    private final Map<String, Map<String, String>> packages = new HashMap<>();

    static String key(byte[] aid) {
        StringBuilder sb = new StringBuilder();
        for (byte b : aid) {
            sb.append(String.format("%02X", b & 0xFF));
        }
        return sb.toString();
    }

    void add(byte[] packageAid, byte[] appletAid, String className) {
        packages.computeIfAbsent(key(packageAid), k -> new HashMap<>()).put(key(appletAid), className);
    }

    boolean knowsPackage(byte[] packageAid) {
        return packages.containsKey(key(packageAid));
    }

    /** Class name of the applet (module) of the package, or null. */
    String appletClass(byte[] packageAid, byte[] appletAid) {
        Map<String, String> applets = packages.get(key(packageAid));
        return applets == null ? null : applets.get(key(appletAid));
    }
}
