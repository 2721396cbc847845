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

    private final List<String> packagePrefixes;

    public InstrumentingClassLoader(ClassLoader parent, List<String> packages) {
        super("applets", parent);
        this.packagePrefixes = packages.stream().map(p -> p + ".").collect(java.util.stream.Collectors.toList());
    }

    private boolean instrumented(String name) {
        return packagePrefixes.stream().anyMatch(name::startsWith);
    }

    @Override
    protected Class<?> loadClass(String name, boolean resolve) throws ClassNotFoundException {
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
        byte[] rewritten;
        try {
            rewritten = Instrumenter.instrument(original);
        } catch (RuntimeException e) {
            throw new IllegalStateException("cannot instrument " + name + " for the strict card (" + e
                    + "); run the card with --profile lenient to load it unmodified", e);
        }
        return defineClass(name, rewritten, 0, rewritten.length);
    }
}
