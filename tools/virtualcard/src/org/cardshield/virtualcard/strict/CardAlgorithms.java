package org.cardshield.virtualcard.strict;

import java.lang.reflect.Field;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import javacard.security.CryptoException;
import javacard.security.KeyBuilder;
import javacard.security.KeyPair;

/**
 * The algorithms a card profile has, as Java Card API constants: what Signature, Cipher,
 * MessageDigest and RandomData getInstance, KeyBuilder.buildKey and new KeyPair(byte, short)
 * may ask for. Anything else is CryptoException NO_SUCH_ALGORITHM, as on a card that lacks
 * it (Java Card 3.0.4 API, each getInstance and buildKey).
 *
 * card.properties carries the list as profile.algorithms, comma-separated entries
 * "Class.CONSTANT" or, for key types, "KeyBuilder.TYPE_X/bits+bits"; the names are resolved
 * here against the API classes, so a misspelt entry stops the card with its name.
 * Without profile.algorithms every algorithm jcardsim implements is there (lenient).
 */
final class CardAlgorithms {
    private static final Map<String, Class<?>> API = new HashMap<>();

    static {
        API.put("Signature", javacard.security.Signature.class);
        API.put("Cipher", javacardx.crypto.Cipher.class);
        API.put("MessageDigest", javacard.security.MessageDigest.class);
        API.put("RandomData", javacard.security.RandomData.class);
        API.put("KeyBuilder", KeyBuilder.class);
    }

    /** null: no list, everything allowed. Keys "Signature:40", "KeyBuilder:6/2048". */
    private final Set<String> present;

    private CardAlgorithms(Set<String> present) {
        this.present = present;
    }

    static CardAlgorithms all() {
        return new CardAlgorithms(null);
    }

    static CardAlgorithms parse(String list) {
        if (list == null) {
            return all();
        }
        Set<String> present = new HashSet<>();
        for (String raw : list.split(",")) {
            String entry = raw.trim();
            if (entry.isEmpty()) {
                continue;
            }
            String[] nameAndBits = entry.split("/", 2);
            String name = nameAndBits[0];
            int dot = name.indexOf('.');
            Class<?> api = dot < 0 ? null : API.get(name.substring(0, dot));
            if (api == null) {
                throw new IllegalArgumentException("profile.algorithms: " + entry
                        + " names no API class; use Signature., Cipher., MessageDigest., RandomData. or KeyBuilder.");
            }
            byte id = constant(api, name.substring(dot + 1), entry);
            String key = api.getSimpleName() + ":" + id;
            if (api == KeyBuilder.class) {
                if (nameAndBits.length < 2) {
                    throw new IllegalArgumentException("profile.algorithms: " + entry
                            + " needs its key sizes, such as KeyBuilder.TYPE_AES/128");
                }
                for (String bits : nameAndBits[1].split("\\+")) {
                    try {
                        present.add(key + "/" + Integer.parseInt(bits.trim()));
                    } catch (NumberFormatException e) {
                        throw new IllegalArgumentException("profile.algorithms: " + entry + ": " + bits
                                + " is not a key size in bits");
                    }
                }
            } else {
                present.add(key);
            }
        }
        return new CardAlgorithms(present);
    }

    private static byte constant(Class<?> api, String field, String entry) {
        try {
            Field f = api.getField(field);
            return ((Number) f.get(null)).byteValue();
        } catch (ReflectiveOperationException | ClassCastException e) {
            throw new IllegalArgumentException("profile.algorithms: " + entry + ": no such constant in "
                    + api.getName());
        }
    }

    /** getInstance of api (Signature, Cipher, MessageDigest, RandomData) for algorithm. */
    void requireInstance(Class<?> api, byte algorithm) {
        require(api.getSimpleName() + ":" + algorithm);
    }

    void requireKey(byte type, short bits) {
        require("KeyBuilder:" + type + "/" + (bits & 0xFFFF));
    }

    /** KeyPair.ALG_* -> its public and private key types (Java Card 3.0.4 API, KeyPair). */
    private static final Map<Byte, byte[]> KEY_PAIR_TYPES = new HashMap<>();

    static {
        KEY_PAIR_TYPES.put(KeyPair.ALG_RSA, new byte[] {KeyBuilder.TYPE_RSA_PUBLIC, KeyBuilder.TYPE_RSA_PRIVATE});
        KEY_PAIR_TYPES.put(KeyPair.ALG_RSA_CRT, new byte[] {KeyBuilder.TYPE_RSA_PUBLIC, KeyBuilder.TYPE_RSA_CRT_PRIVATE});
        KEY_PAIR_TYPES.put(KeyPair.ALG_EC_FP, new byte[] {KeyBuilder.TYPE_EC_FP_PUBLIC, KeyBuilder.TYPE_EC_FP_PRIVATE});
        KEY_PAIR_TYPES.put(KeyPair.ALG_EC_F2M, new byte[] {KeyBuilder.TYPE_EC_F2M_PUBLIC, KeyBuilder.TYPE_EC_F2M_PRIVATE});
    }

    /** new KeyPair(algorithm, bits): the card builds its public and private key types. */
    void requireKeyPair(byte algorithm, short bits) {
        if (present == null) {
            return;
        }
        byte[] types = KEY_PAIR_TYPES.get(algorithm);
        if (types == null) { // DSA and the rest: no CardShield profile lists them
            CryptoException.throwIt(CryptoException.NO_SUCH_ALGORITHM);
        }
        for (byte type : types) {
            requireKey(type, bits);
        }
    }

    private void require(String key) {
        if (present != null && !present.contains(key)) {
            CryptoException.throwIt(CryptoException.NO_SUCH_ALGORITHM);
        }
    }
}
