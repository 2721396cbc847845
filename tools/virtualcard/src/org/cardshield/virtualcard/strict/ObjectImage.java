package org.cardshield.virtualcard.strict;

import java.lang.reflect.Array;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.ArrayDeque;
import java.util.Collections;
import java.util.Deque;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A copy of the state of a framework object whose fields the applet cannot write itself
 * (a key, a key pair, an OwnerPIN): every object reachable from it through fields of
 * Java Card API or jcardsim classes, with the contents of its arrays. restore() puts all
 * of it back. This is how the journal covers key setters, key generation and PIN updates,
 * whose writes happen inside jcardsim.
 *
 * Not followed: BouncyCastle objects (jcardsim's crypto engines: parameters and generators,
 * replaced whole, never changed in place), and transient arrays (RAM is not journalled).
 */
final class ObjectImage {
    private final Map<Object, Object[]> fieldValues = new IdentityHashMap<>();
    private final Map<Object, Object> arrayContents = new IdentityHashMap<>();
    private final Set<Object> transients;

    private ObjectImage(Set<Object> transients) {
        this.transients = transients;
    }

    static ObjectImage capture(Object root, Set<Object> transients) {
        ObjectImage image = new ObjectImage(transients);
        Deque<Object> todo = new ArrayDeque<>();
        todo.add(root);
        while (!todo.isEmpty()) {
            Object next = todo.poll();
            if (image.fieldValues.containsKey(next) || image.arrayContents.containsKey(next)) {
                continue;
            }
            if (next.getClass().isArray()) {
                if (!transients.contains(next) && next.getClass().getComponentType().isPrimitive()) {
                    int length = Array.getLength(next);
                    Object copy = Array.newInstance(next.getClass().getComponentType(), length);
                    System.arraycopy(next, 0, copy, 0, length);
                    image.arrayContents.put(next, copy);
                }
                continue;
            }
            List<Field> fields = stateFields(next.getClass());
            Object[] values = new Object[fields.size()];
            for (int i = 0; i < values.length; i++) {
                values[i] = read(fields.get(i), next);
                if (values[i] != null && followed(values[i])) {
                    todo.add(values[i]);
                }
            }
            image.fieldValues.put(next, values);
        }
        return image;
    }

    void restore() {
        for (Map.Entry<Object, Object[]> entry : fieldValues.entrySet()) {
            List<Field> fields = stateFields(entry.getKey().getClass());
            for (int i = 0; i < fields.size(); i++) {
                try {
                    fields.get(i).set(entry.getKey(), entry.getValue()[i]);
                } catch (IllegalAccessException e) {
                    throw new IllegalStateException("cannot restore " + fields.get(i), e);
                }
            }
        }
        for (Map.Entry<Object, Object> entry : arrayContents.entrySet()) {
            System.arraycopy(entry.getValue(), 0, entry.getKey(), 0, Array.getLength(entry.getValue()));
        }
    }

    private static boolean followed(Object value) {
        if (value.getClass().isArray()) {
            return true;
        }
        String name = value.getClass().getName();
        return (name.startsWith("javacard.") || name.startsWith("javacardx.") || name.startsWith("com.licel.jcardsim."))
                && !name.startsWith("com.licel.jcardsim.bouncycastle.");
    }

    private static final Map<Class<?>, List<Field>> FIELDS = Collections.synchronizedMap(new IdentityHashMap<>());

    private static List<Field> stateFields(Class<?> type) {
        return FIELDS.computeIfAbsent(type, t -> {
            List<Field> fields = new ArrayList<>();
            for (Class<?> c = t; c != null && c != Object.class; c = c.getSuperclass()) {
                for (Field field : c.getDeclaredFields()) {
                    if (!Modifier.isStatic(field.getModifiers())) {
                        field.setAccessible(true);
                        fields.add(field);
                    }
                }
            }
            return fields;
        });
    }

    private static Object read(Field field, Object owner) {
        try {
            return field.get(owner);
        } catch (IllegalAccessException e) {
            throw new IllegalStateException("cannot read " + field, e);
        }
    }

    static int elementBytes(Class<?> type) {
        if (type == byte.class || type == boolean.class) {
            return 1;
        }
        if (type == int.class || type == float.class) {
            return 4;
        }
        if (type == long.class || type == double.class) {
            return 8;
        }
        return 2; // short, char, and a Java Card reference
    }

    static int fieldBytes(Class<?> type) {
        return type.isPrimitive() ? elementBytes(type) : 2;
    }
}
