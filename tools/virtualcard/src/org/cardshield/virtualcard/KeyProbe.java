package org.cardshield.virtualcard;

import javacard.security.ECPrivateKey;
import javacard.security.Key;
import javacard.security.RSAPrivateCrtKey;

/**
 * Host-only test controls about an applet's keys (ControlServer; never reachable by APDU,
 * no counterpart on a real card). They let tests prove what the applet does to its keys:
 *
 *   FAULT-KEY instanceAID path -> a fault in the private key at path, as a glitch or a
 *       worn EEPROM cell would cause, through the Java Card key API only: for an RSA CRT
 *       key one bit of dP (d mod p-1) flips, so every signature is right modulo q and wrong
 *       modulo p, and one such signature factors the modulus (Boneh, DeMillo, Lipton 1997);
 *       for an EC key one bit of the private scalar S flips (signatures no longer verify).
 *   INSPECT instanceAID path -> "initialized=yes|no" for a key object (Key.isInitialized),
 *       "length=N zero=yes|no" for a byte array (with "nonzero=FIRST-LAST", the offsets of
 *       the first and last non-zero byte, when it is not all zero), the value for anything
 *       else. The path APDU_BUFFER names the APDU buffer (a global array, not the
 *       instance's) as the last command left it; jcardsim zeroes it at the next command.
 */
final class KeyProbe {
    static final String APDU_BUFFER = "APDU_BUFFER";

    static boolean handles(String command) {
        return command.equals("FAULT-KEY") || command.equals("INSPECT");
    }

    private final AppletRuntime runtime;

    KeyProbe(AppletRuntime runtime) {
        this.runtime = runtime;
    }

    /** words: the command and its two arguments. Returns the reply's data ("" for none). */
    String handle(String[] words) {
        if (words.length != 3) {
            throw new IllegalArgumentException("usage: " + words[0] + " instanceAID field.path");
        }
        Object target = words[2].equals(APDU_BUFFER) ? runtime.apduBuffer()
                : runtime.field(Hex.decode(words[1]), words[2]);
        if (words[0].equals("FAULT-KEY")) {
            fault(target, words[2]);
            return "";
        }
        return describe(target);
    }

    private static void fault(Object target, String path) {
        if (!(target instanceof RSAPrivateCrtKey) && !(target instanceof ECPrivateKey)) {
            throw new IllegalArgumentException(path + " is not an RSA CRT or EC private key");
        }
        if (!((Key) target).isInitialized()) {
            throw new IllegalArgumentException(path + " holds no key");
        }
        byte[] value = new byte[(((Key) target).getSize() + 7) / 8 + 1];
        if (target instanceof RSAPrivateCrtKey) {
            RSAPrivateCrtKey key = (RSAPrivateCrtKey) target;
            short length = key.getDP1(value, (short) 0);
            value[length - 1] ^= 0x02; // even a one-bit fault is enough
            key.setDP1(value, (short) 0, length);
        } else {
            ECPrivateKey key = (ECPrivateKey) target;
            short length = key.getS(value, (short) 0);
            value[length - 1] ^= 0x02;
            key.setS(value, (short) 0, length);
        }
    }

    private static String describe(Object target) {
        if (target instanceof Key) {
            return "initialized=" + (((Key) target).isInitialized() ? "yes" : "no");
        }
        if (target instanceof byte[]) {
            byte[] bytes = (byte[]) target;
            int first = -1;
            int last = -1;
            for (int i = 0; i < bytes.length; i++) {
                if (bytes[i] != 0) {
                    first = first < 0 ? i : first;
                    last = i;
                }
            }
            return "length=" + bytes.length + (first < 0 ? " zero=yes" : " zero=no nonzero=" + first + "-" + last);
        }
        return String.valueOf(target);
    }
}
