package org.cardshield.virtualcard;

import javacard.security.KeyPair;

/**
 * Test facility of the virtual card host: resolves a path of field names from an applet
 * instance ("state.slot1.keyPair.private") by reflection. The segments "private" and
 * "public" after a KeyPair name its keys. Used by the host-only controls alone.
 */
final class InstanceFields {
    private InstanceFields() {
    }

    static Object resolve(Object instance, String fieldPath) {
        Object target = instance;
        for (String name : fieldPath.split("\\.")) {
            target = step(target, name, fieldPath);
        }
        return target;
    }

    private static Object step(Object owner, String name, String fieldPath) {
        if (owner == null) {
            throw new IllegalArgumentException(fieldPath + ": null before field " + name);
        }
        if (owner instanceof KeyPair && (name.equals("private") || name.equals("public"))) {
            KeyPair pair = (KeyPair) owner;
            return name.equals("private") ? pair.getPrivate() : pair.getPublic();
        }
        for (Class<?> type = owner.getClass(); type != null; type = type.getSuperclass()) {
            try {
                java.lang.reflect.Field field = type.getDeclaredField(name);
                field.setAccessible(true);
                return field.get(owner);
            } catch (NoSuchFieldException e) {
                // declared further up the hierarchy, if at all
            } catch (ReflectiveOperationException | RuntimeException e) {
                throw new IllegalArgumentException(fieldPath + ": cannot read field " + name + ": " + e, e);
            }
        }
        throw new IllegalArgumentException(fieldPath + ": " + owner.getClass().getName() + " has no field " + name);
    }
}
