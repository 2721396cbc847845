package org.cardshield.virtualcard.strict;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import javacard.security.ECPrivateKey;
import javacard.security.ECPublicKey;
import javacard.security.Key;
import javacard.security.RSAPrivateCrtKey;
import javacard.security.RSAPrivateKey;
import javacard.security.RSAPublicKey;

/**
 * The components of a key as a card stores them, one after the other (RSA: modulus, then
 * exponent; RSA CRT: P, Q, DP1, DQ1, PQ; EC: W or S, the domain parameters being the
 * key's own from its set* calls), read and written through the key interfaces' own get* and
 * set* methods. This is how the strict card leaves a key partly written where a real card's
 * power can go: between two components of a generated key, or inside one component being
 * set.
 */
final class KeyComponents {
    private KeyComponents() {
    }

    /** The components key generation writes, in the order modelled (none for other key types). */
    static String[] of(Object key) {
        if (key instanceof RSAPrivateCrtKey) {
            return new String[] {"P", "Q", "DP1", "DQ1", "PQ"};
        }
        if (key instanceof RSAPrivateKey || key instanceof RSAPublicKey) {
            return new String[] {"Modulus", "Exponent"};
        }
        if (key instanceof ECPrivateKey) {
            return new String[] {"S"};
        }
        if (key instanceof ECPublicKey) {
            return new String[] {"W"};
        }
        return new String[0];
    }

    /** A component's value (getModulus ...), or null if the key does not hold it (uninitialized). */
    static byte[] read(Object key, String component) {
        Method getter = method(key, "get" + component, byte[].class, short.class);
        if (getter == null) {
            return null;
        }
        byte[] room = new byte[((Key) key).getSize() / 8 * 2 + 8];
        try {
            short length = (Short) getter.invoke(key, room, (short) 0);
            return java.util.Arrays.copyOf(room, length);
        } catch (InvocationTargetException e) {
            return null; // CryptoException UNINITIALIZED_KEY: nothing stored yet
        } catch (IllegalAccessException e) {
            throw new IllegalStateException("instrumentation: cannot read " + component + " of " + key, e);
        }
    }

    /** Sets a component (setModulus ...) as the applet would. */
    static void write(Object key, String component, byte[] value) {
        Method setter = method(key, "set" + component, byte[].class, short.class, short.class);
        if (setter == null) {
            throw new IllegalStateException("instrumentation: " + key.getClass().getName() + " has no set" + component);
        }
        try {
            setter.invoke(key, value, (short) 0, (short) value.length);
        } catch (InvocationTargetException e) {
            Throwable cause = e.getCause();
            throw cause instanceof RuntimeException ? (RuntimeException) cause : new IllegalStateException(cause);
        } catch (IllegalAccessException e) {
            throw new IllegalStateException("instrumentation: cannot set " + component + " of " + key, e);
        }
    }

    /**
     * The component as a tear at `written` bytes leaves it: partlyWritten. Where jcardsim
     * refuses to hold such a value (it checks an EC point against the curve; a card's key
     * store would keep the bytes), the key is left cleared (uninitialized) instead: unusable
     * either way.
     */
    static void writePartly(Object key, String component, byte[] newValue, int written) {
        byte[] mixed = partlyWritten(newValue, read(key, component), written);
        try {
            write(key, component, mixed);
        } catch (javacard.security.CryptoException refused) {
            ((Key) key).clearKey();
        }
    }

    /**
     * What a component holds when its write stopped after `written` bytes: the new value's
     * first bytes, then what the old value had there (zeros where there was none).
     */
    static byte[] partlyWritten(byte[] newValue, byte[] oldValue, int written) {
        byte[] mixed = newValue.clone();
        for (int i = written; i < mixed.length; i++) {
            mixed[i] = oldValue != null && i < oldValue.length ? oldValue[i] : 0;
        }
        return mixed;
    }

    private static Method method(Object key, String name, Class<?>... parameters) {
        for (Class<?> type : key.getClass().getInterfaces()) {
            Method found = find(type, name, parameters);
            if (found != null) {
                return found;
            }
        }
        for (Class<?> c = key.getClass(); c != null; c = c.getSuperclass()) {
            for (Class<?> type : c.getInterfaces()) {
                Method found = find(type, name, parameters);
                if (found != null) {
                    return found;
                }
            }
        }
        return null;
    }

    private static Method find(Class<?> type, String name, Class<?>... parameters) {
        try {
            return type.getMethod(name, parameters);
        } catch (NoSuchMethodException e) {
            return null;
        }
    }
}
