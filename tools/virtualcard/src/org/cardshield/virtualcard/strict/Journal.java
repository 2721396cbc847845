package org.cardshield.virtualcard.strict;

import java.lang.reflect.Field;
import java.util.ArrayList;
import java.util.List;

/**
 * The before-image journal of the open transaction (JCRE specification 3.0.4 Classic,
 * chapter 7): every persistent write made inside it first saves what it overwrites, so that
 * abortTransaction, an exception leaving process() or a power loss restores all of it in
 * reverse order. Its size is bounded by the profile's commit capacity.
 */
final class Journal {
    private interface Entry {
        void undo();
    }

    private final List<Entry> entries = new ArrayList<>();
    private int used;

    int used() {
        return used;
    }

    boolean isEmpty() {
        return entries.isEmpty();
    }

    /** Reserve room for a write of dataBytes, or say it does not fit (BUFFER_FULL). */
    boolean fits(int dataBytes, CardProfile profile) {
        return used + dataBytes + profile.commitEntryOverhead <= profile.commitCapacity;
    }

    private void add(Entry entry, int dataBytes, CardProfile profile) {
        entries.add(entry);
        used += dataBytes + profile.commitEntryOverhead;
    }

    void field(Object owner, Field field, CardProfile profile) {
        final Object old;
        try {
            old = field.get(owner);
        } catch (IllegalAccessException e) {
            throw new IllegalStateException("cannot journal " + field, e);
        }
        add(() -> {
            try {
                field.set(owner, old);
            } catch (IllegalAccessException e) {
                throw new IllegalStateException("cannot roll back " + field, e);
            }
        }, ObjectImage.fieldBytes(field.getType()), profile);
    }

    void array(Object array, int offset, int length, int dataBytes, CardProfile profile) {
        Object old = java.lang.reflect.Array.newInstance(array.getClass().getComponentType(), length);
        System.arraycopy(array, offset, old, 0, length);
        add(() -> System.arraycopy(old, 0, array, offset, length), dataBytes, profile);
    }

    void image(ObjectImage image, int dataBytes, CardProfile profile) {
        add(image::restore, dataBytes, profile);
    }

    /** Abort: undo every write, newest first. */
    void rollBack() {
        for (int i = entries.size() - 1; i >= 0; i--) {
            entries.get(i).undo();
        }
        clear();
    }

    /** Commit: the writes stay, the journal is free again. */
    void clear() {
        entries.clear();
        used = 0;
    }
}
