package org.cardshield.virtualcard;

import javacard.security.Key;
import javacard.security.RSAPrivateCrtKey;

/**
 * Host-only test controls about an applet's keys (ControlServer; never reachable by APDU,
 * no counterpart on a real card). They let tests prove what the applet does to its keys:
 *
 *   FAULT-CRT instanceAID path -> flips one bit of dP (d mod p-1) of the RSA CRT private
 *       key at path, as a glitch or a fault in EEPROM would: every signature with it is
 *       then right modulo q and wrong modulo p, and one such signature factors the modulus
 *       (Boneh, DeMillo, Lipton 1997). Uses only the Java Card key API (getDP1/setDP1).
 *   INSPECT instanceAID path -> "initialized=yes|no" for a key object (Key.isInitialized),
 *       "length=N zero=yes|no" for a byte array, the value for anything else.
 */
final class KeyProbe {
    static boolean handles(String command) {
        return command.equals("FAULT-CRT") || command.equals("INSPECT");
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
        Object target = runtime.field(Hex.decode(words[1]), words[2]);
        if (words[0].equals("FAULT-CRT")) {
            faultCrt(target, words[2]);
            return "";
        }
        return describe(target);
    }

    private static void faultCrt(Object target, String path) {
        if (!(target instanceof RSAPrivateCrtKey)) {
            throw new IllegalArgumentException(path + " is not an RSA CRT private key");
        }
        RSAPrivateCrtKey key = (RSAPrivateCrtKey) target;
        if (!key.isInitialized()) {
            throw new IllegalArgumentException(path + " holds no key");
        }
        byte[] dp = new byte[(key.getSize() + 7) / 8];
        short length = key.getDP1(dp, (short) 0);
        dp[length - 1] ^= 0x02; // even a one-bit fault is enough
        key.setDP1(dp, (short) 0, length);
    }

    private static String describe(Object target) {
        if (target instanceof Key) {
            return "initialized=" + (((Key) target).isInitialized() ? "yes" : "no");
        }
        if (target instanceof byte[]) {
            byte[] bytes = (byte[]) target;
            boolean zero = true;
            for (byte b : bytes) {
                zero &= b == 0;
            }
            return "length=" + bytes.length + " zero=" + (zero ? "yes" : "no");
        }
        return String.valueOf(target);
    }
}
