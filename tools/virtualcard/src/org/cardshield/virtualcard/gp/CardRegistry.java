package org.cardshield.virtualcard.gp;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** The GlobalPlatform registry (GPCS v2.3 chapter 6.4): load files and applications. Lives as long as the card. */
final class CardRegistry {
    static final int LOADED = 0x01;        // Executable Load File life cycle (GPCS 5.2)
    static final int SELECTABLE = 0x07;    // Application INSTALLED | SELECTABLE (GPCS 5.3.1)

    static final class LoadFileEntry {
        final byte[] aid;
        final int major;
        final int minor;
        final List<byte[]> modules;
        final boolean development;
        final int size;

        LoadFileEntry(byte[] aid, int major, int minor, List<byte[]> modules, boolean development, int size) {
            this.size = size;
            this.aid = aid;
            this.major = major;
            this.minor = minor;
            this.modules = modules;
            this.development = development;
        }
    }

    static final class Application {
        final byte[] aid;
        final byte[] loadFileAid;
        final byte[] moduleAid;
        final byte[] privileges;
        int lifeCycle;  // SET STATUS sets and clears the LOCKED bit (b8)

        Application(byte[] aid, byte[] loadFileAid, byte[] moduleAid, byte[] privileges, int lifeCycle) {
            this.aid = aid;
            this.loadFileAid = loadFileAid;
            this.moduleAid = moduleAid;
            this.privileges = privileges;
            this.lifeCycle = lifeCycle;
        }
    }

    final Map<String, LoadFileEntry> loadFiles = new LinkedHashMap<>();
    final Map<String, Application> applications = new LinkedHashMap<>();

    LoadFileEntry loadFile(byte[] aid) {
        return loadFiles.get(AppletCatalog.key(aid));
    }

    Application application(byte[] aid) {
        return applications.get(AppletCatalog.key(aid));
    }

    List<Application> instancesOf(byte[] loadFileAid) {
        List<Application> out = new ArrayList<>();
        String key = AppletCatalog.key(loadFileAid);
        for (Application app : applications.values()) {
            if (AppletCatalog.key(app.loadFileAid).equals(key)) {
                out.add(app);
            }
        }
        return out;
    }

    void add(LoadFileEntry entry) {
        loadFiles.put(AppletCatalog.key(entry.aid), entry);
    }

    void add(Application app) {
        applications.put(AppletCatalog.key(app.aid), app);
    }

    void removeApplication(byte[] aid) {
        applications.remove(AppletCatalog.key(aid));
    }

    void removeLoadFile(byte[] aid) {
        loadFiles.remove(AppletCatalog.key(aid));
    }
}
