package org.cardshield.virtualcard.strict;

import java.io.IOException;
import java.io.InputStream;
import java.util.List;

/**
 * Loads the applets' classes (those of the given packages) from the parent's class path,
 * rewritten by {@link Instrumenter}; everything else (the Java Card API, jcardsim, the host)
 * comes from the parent, so the applet and the host share one StrictCard.
 */
public final class InstrumentingClassLoader extends ClassLoader {
    static {
        registerAsParallelCapable();
    }

    /** The optional package a card without javacardx.apdu lacks (internal name, as in class files). */
    private static final String JAVACARDX_APDU = "javacardx/apdu/";

    private final List<String> packagePrefixes;
    private final CardProfile profile;

    public InstrumentingClassLoader(ClassLoader parent, List<String> packages, CardProfile profile) {
        super("applets", parent);
        this.packagePrefixes = packages.stream().map(p -> p + ".").collect(java.util.stream.Collectors.toList());
        this.profile = profile;
    }

    private boolean instrumented(String name) {
        return packagePrefixes.stream().anyMatch(name::startsWith);
    }

    @Override
    protected Class<?> loadClass(String name, boolean resolve) throws ClassNotFoundException {
        if (!profile.javacardxApdu && name.startsWith("javacardx.apdu.")) {
            throw new ClassNotFoundException(name + " is not on this card (profile " + profile.name
                    + " has no javacardx.apdu)");
        }
        if (!instrumented(name)) {
            return super.loadClass(name, resolve);
        }
        synchronized (getClassLoadingLock(name)) {
            Class<?> loaded = findLoadedClass(name);
            if (loaded == null) {
                loaded = findClass(name);
            }
            if (resolve) {
                resolveClass(loaded);
            }
            return loaded;
        }
    }

    @Override
    protected Class<?> findClass(String name) throws ClassNotFoundException {
        String resource = name.replace('.', '/') + ".class";
        byte[] original;
        try (InputStream in = getParent().getResourceAsStream(resource)) {
            if (in == null) {
                throw new ClassNotFoundException(name);
            }
            original = in.readAllBytes();
        } catch (IOException e) {
            throw new ClassNotFoundException(name, e);
        }
        refuseMissingPackages(name, original);
        byte[] rewritten;
        try {
            rewritten = Instrumenter.instrument(original);
        } catch (RuntimeException e) {
            throw new IllegalStateException("cannot instrument " + name + " for the strict card (" + e
                    + "); run the card with --profile lenient to load it unmodified", e);
        }
        return defineClass(name, rewritten, 0, rewritten.length);
    }

    /**
     * A card links a CAP against the packages it has when the CAP is loaded, whatever code path
     * runs later: a CAP importing javacardx.apdu fails to load on a card without that package.
     * The same here, at class load, for any reference in the constant pool (class names and
     * descriptors are modified UTF-8, plain bytes for these ASCII names).
     */
    private void refuseMissingPackages(String name, byte[] classFile) {
        if (profile.javacardxApdu) {
            return;
        }
        String missing = referenceTo(classFile, JAVACARDX_APDU);
        if (missing != null) {
            throw new IllegalStateException("applet class " + name + " references " + missing
                    + ", but card profile " + profile.name + " has no javacardx.apdu (a card refuses such a CAP"
                    + " at link time): load the sim build of the applet (applet/variants/sim,"
                    + " build/cardshield-sim.cap; ./cardshield sim --profile " + profile.name + " does)");
        }
    }

    private static boolean nameByte(byte b) {
        return (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') || b == '_' || b == '$'
                || b == '/';
    }

    /** The first class name under the package prefix the class file names, or null. */
    static String referenceTo(byte[] classFile, String packagePrefix) {
        byte[] needle = packagePrefix.getBytes(java.nio.charset.StandardCharsets.US_ASCII);
        outer:
        for (int i = 0; i + needle.length <= classFile.length; i++) {
            for (int j = 0; j < needle.length; j++) {
                if (classFile[i + j] != needle[j]) {
                    continue outer;
                }
            }
            int end = i + needle.length;
            while (end < classFile.length && nameByte(classFile[end])) {
                end++;
            }
            return new String(classFile, i, end - i, java.nio.charset.StandardCharsets.US_ASCII).replace('/', '.');
        }
        return null;
    }
}
