package org.cardshield.virtualcard.strict;

import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.util.Collections;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Supplier;
import javacard.framework.APDU;
import javacard.framework.JCSystem;
import javacard.framework.OwnerPIN;
import javacard.framework.SystemException;
import javacard.framework.TransactionException;
import javacard.framework.Util;
import javacard.security.Key;
import javacard.security.KeyBuilder;
import javacard.security.KeyPair;

/**
 * The persistent memory of the strict virtual card. The applet's classes are rewritten at
 * load time ({@link Instrumenter}) so that every persistent write they cause comes here
 * first: field stores, array stores, Util copies, fills and setShort, OwnerPIN updates,
 * key setters and key generation; so do the JCSystem transaction, transient-array and
 * memory calls. Here each write
 * <ul>
 * <li>is a tear point: the host may cut the power just before it ({@link #arm});</li>
 * <li>inside a transaction, first saves what it overwrites in the {@link Journal}, bounded by
 * the profile's commit capacity (TransactionException BUFFER_FULL beyond it);</li>
 * <li>outside one, is atomic per field or element, and Util.arrayCopy as a whole, while the
 * NonAtomic copy and fill write page by page, a tear point before each page (JCRE 7.4).</li>
 * </ul>
 * Allocations are counted against the profile's EEPROM and RAM (SystemException NO_RESOURCE),
 * so JCSystem.getAvailableMemory tells the truth.
 *
 * One card per JVM, one APDU at a time (the host holds its card lock): static state.
 */
public final class StrictCard {
    private StrictCard() {
    }

    private static CardProfile profile = CardProfile.lenient();
    private static final Set<Object> TRANSIENTS = Collections.newSetFromMap(new IdentityHashMap<>());
    private static final Journal JOURNAL = new Journal();
    private static boolean inTransaction;

    // tearing
    private static int points;
    private static int armedAt;
    private static Random randomTear;
    private static boolean powerLost;
    private static String tornAt;
    private static CommandReport last = new CommandReport(0, null, false, 0, 0);
    private static int journalPeak;

    // memory: the card's totals, and per owner (the applet instance in whose context an object
    // was allocated, JCRE 3.0.4 chapter 6) what deleting that instance gives back (chapter 11)
    private static long persistentUsed;
    private static long deselectRamUsed;
    private static long resetRamUsed;
    /** owner -> bytes it holds of each Memory (persistent, CLEAR_ON_DESELECT, CLEAR_ON_RESET) */
    private static final Map<String, long[]> OWNED = new HashMap<>();
    private static long memoryRefusals;
    private static Supplier<String> context = () -> "";

    /** The memories a card budgets separately (JCSystem.MEMORY_TYPE_*). */
    private enum Memory { PERSISTENT, DESELECT, RESET }

    /**
     * What the open transaction allocated (each allocation with its owner's account) and the
     * objects themselves: if it aborts, the memory is returned and the references the journal
     * does not restore are cleared (JCRE 3.0.4 7.6.3: a reference to an object created during
     * an aborted transaction is equivalent to a null reference).
     */
    private static final java.util.List<Allocation> ALLOCATED_IN_TRANSACTION = new java.util.ArrayList<>();
    private static final Set<Object> CREATED_IN_TRANSACTION = Collections.newSetFromMap(new IdentityHashMap<>());

    /** Bytes of one memory taken for one owner. */
    private static final class Allocation {
        final long[] owner;
        final Memory memory;
        final long bytes;

        Allocation(long[] owner, Memory memory, long bytes) {
            this.owner = owner;
            this.memory = memory;
            this.bytes = bytes;
        }
    }

    /** What the previous command did, for the host control REPORT. */
    public static final class CommandReport {
        public final int tearPoints;
        public final String tornAt;
        public final boolean armedButNotReached;
        /** The most commit buffer the command's transactions used, overhead included (bytes). */
        public final int journalPeak;
        /** The parts in which the command data reached the applet (1 when the APDU buffer held it all). */
        public final int incomingParts;

        CommandReport(int tearPoints, String tornAt, boolean armedButNotReached, int journalPeak, int incomingParts) {
            this.tearPoints = tearPoints;
            this.tornAt = tornAt;
            this.armedButNotReached = armedButNotReached;
            this.journalPeak = journalPeak;
            this.incomingParts = incomingParts;
        }

        @Override
        public String toString() {
            return "points=" + tearPoints + " torn=" + (tornAt == null ? "no" : "yes") + " unreached="
                    + (armedButNotReached ? "yes" : "no") + " journal=" + journalPeak + " incoming=" + incomingParts + (tornAt == null ? "" : " at=" + tornAt.replace(' ', '_'));
        }
    }

    // ---------------------------------------------------------------- host side

    public static synchronized void configure(CardProfile chosen) {
        profile = chosen;
    }

    public static CardProfile profile() {
        return profile;
    }

    /**
     * Who owns what is allocated now: the host's answer (the instance being installed, else
     * the selected applet instance), as an AID in hex; "" for the card itself.
     */
    public static synchronized void context(Supplier<String> currentOwner) {
        context = currentOwner;
    }

    /**
     * An applet instance is gone (GlobalPlatform DELETE, or an install() that failed): the
     * memory of every object it owned is free again, as the applet deletion manager frees it
     * and as a failed installation is undone (JCRE 3.0.4 chapter 11). The card's own objects stay.
     */
    public static void release(String owner) {
        long[] owned = owner.isEmpty() ? null : OWNED.remove(owner);
        if (owned != null) {
            for (Memory memory : Memory.values()) {
                giveBack(memory, owned[memory.ordinal()]);
            }
        }
    }

    private static long[] ownedByContext() {
        return OWNED.computeIfAbsent(context.get(), key -> new long[Memory.values().length]);
    }

    /** Bytes of a memory taken by the current context (and by the open transaction, if any). */
    private static void take(Memory memory, long bytes) {
        giveBack(memory, -bytes);
        long[] owner = ownedByContext();
        owner[memory.ordinal()] += bytes;
        if (inTransaction) {
            ALLOCATED_IN_TRANSACTION.add(new Allocation(owner, memory, bytes));
        }
    }

    private static void giveBack(Memory memory, long bytes) {
        switch (memory) {
            case PERSISTENT:
                persistentUsed -= bytes;
                break;
            case DESELECT:
                deselectRamUsed -= bytes;
                break;
            default:
                resetRamUsed -= bytes;
        }
    }

    /** A card fresh from the factory: nothing allocated, nothing journalled. */
    public static void wipe() {
        TRANSIENTS.clear();
        JOURNAL.clear();
        inTransaction = false;
        persistentUsed = 0;
        deselectRamUsed = 0;
        resetRamUsed = 0;
        OWNED.clear();
        forgetTransactionAllocations();
        powerLost = false;
    }

    /** Cut the power at tear point n (1 = before the first persistent write) of the next command. */
    public static void arm(int n) {
        if (n < 1) {
            throw new IllegalArgumentException("tear point numbers start at 1");
        }
        armedAt = n;
        randomTear = null;
    }

    /** Cut the power at a tear point of the next command drawn with this seed (each point 1 in 8). */
    public static void armRandom(long seed) {
        armedAt = 0;
        randomTear = new Random(seed);
    }

    public static CommandReport lastCommand() {
        return last;
    }

    public static void beginCommand() {
        points = 0;
        journalPeak = 0;
        tornAt = null;
        incomingParts = 0;
        pendingIncoming = null;
    }

    /**
     * After the applet's process(): a transaction still open is aborted (JCRE 7.6.2: the
     * runtime aborts it when process() ends, normally or by an exception).
     */
    public static void endCommand() {
        boolean armed = armedAt != 0 || randomTear != null;
        if (inTransaction) {
            rollBack();
        }
        last = new CommandReport(points, tornAt, armed && tornAt == null, journalPeak, incomingParts);
        pendingIncoming = null;
        armedAt = 0;
        randomTear = null;
    }

    public static boolean powerWasLost() {
        return powerLost;
    }

    /** Power comes back: the open transaction is rolled back (JCRE 7.6.3), RAM is cleared by jcardsim. */
    public static void powerOn() {
        if (inTransaction) {
            rollBack();
        }
        powerLost = false;
    }

    public static boolean isTransientArray(Object array) {
        return TRANSIENTS.contains(array);
    }

    // ---------------------------------------------------------------- tear points

    /** A persistent write is about to happen: the power may go now. */
    private static void point(String what) {
        if (powerLost) {
            throw new PowerLoss("a write after the tear (" + what + ")");
        }
        points++;
        boolean tear = points == armedAt || (randomTear != null && randomTear.nextInt(8) == 0);
        if (tear) {
            powerLost = true;
            tornAt = points + ":" + what;
            armedAt = 0;
            randomTear = null;
            throw new PowerLoss(tornAt);
        }
    }

    /** Whether the next point is the armed one (to apply the partial effect a tear leaves there). */
    private static boolean nextPointTears() {
        return points + 1 == armedAt;
    }

    private static void journalRoom(int dataBytes) {
        if (!JOURNAL.fits(dataBytes, profile)) {
            TransactionException.throwIt(TransactionException.BUFFER_FULL);
        }
    }

    private static void notePeak() {
        journalPeak = Math.max(journalPeak, JOURNAL.used());
    }

    private static void rollBack() {
        notePeak();
        JOURNAL.rollBack();
        inTransaction = false;
        reclaimTransactionAllocations();
    }

    /**
     * The aborted transaction's objects are gone: their memory comes back, and transient
     * object arrays (not journalled, so not restored) no longer refer to them. Persistent
     * fields and arrays that referred to them were restored by the journal.
     */
    private static void reclaimTransactionAllocations() {
        for (Allocation allocation : ALLOCATED_IN_TRANSACTION) {
            giveBack(allocation.memory, allocation.bytes);
            allocation.owner[allocation.memory.ordinal()] -= allocation.bytes;
        }
        if (!CREATED_IN_TRANSACTION.isEmpty()) {
            for (Object array : TRANSIENTS) {
                if (array instanceof Object[]) {
                    Object[] references = (Object[]) array;
                    for (int i = 0; i < references.length; i++) {
                        if (references[i] != null && CREATED_IN_TRANSACTION.contains(references[i])) {
                            references[i] = null;
                        }
                    }
                }
            }
            TRANSIENTS.removeAll(CREATED_IN_TRANSACTION);
        }
        forgetTransactionAllocations();
    }

    private static void forgetTransactionAllocations() {
        ALLOCATED_IN_TRANSACTION.clear();
        CREATED_IN_TRANSACTION.clear();
    }

    /** After a constructor returned, in applet code: the new object, if a transaction is open. */
    public static void created(Object object) {
        if (inTransaction) {
            CREATED_IN_TRANSACTION.add(object);
        }
    }

    // ---------------------------------------------------------------- JCSystem

    public static void beginTransaction() {
        if (inTransaction) {
            TransactionException.throwIt(TransactionException.IN_PROGRESS);
        }
        inTransaction = true;
    }

    public static void commitTransaction() {
        if (!inTransaction) {
            TransactionException.throwIt(TransactionException.NOT_IN_PROGRESS);
        }
        point("commitTransaction");
        notePeak();
        JOURNAL.clear();
        inTransaction = false;
        forgetTransactionAllocations();
    }

    public static void abortTransaction() {
        if (!inTransaction) {
            TransactionException.throwIt(TransactionException.NOT_IN_PROGRESS);
        }
        rollBack();
    }

    public static byte getTransactionDepth() {
        return (byte) (inTransaction ? 1 : 0);
    }

    public static short getMaxCommitCapacity() {
        return (short) Math.min(profile.commitCapacity, Short.MAX_VALUE);
    }

    public static short getUnusedCommitCapacity() {
        return (short) Math.min(profile.commitCapacity - JOURNAL.used(), Short.MAX_VALUE);
    }

    public static byte[] makeTransientByteArray(short length, byte event) {
        reserveRam(length, event);
        return madeTransient(JCSystem.makeTransientByteArray(length, event));
    }

    public static short[] makeTransientShortArray(short length, byte event) {
        reserveRam(2L * length, event);
        return madeTransient(JCSystem.makeTransientShortArray(length, event));
    }

    public static boolean[] makeTransientBooleanArray(short length, byte event) {
        reserveRam(length, event);
        return madeTransient(JCSystem.makeTransientBooleanArray(length, event));
    }

    public static Object[] makeTransientObjectArray(short length, byte event) {
        reserveRam(2L * length, event);
        return madeTransient(JCSystem.makeTransientObjectArray(length, event));
    }

    private static <T> T registered(T array) {
        TRANSIENTS.add(array);
        return array;
    }

    /** A transient array just made: registered, and the open transaction's if one is. */
    private static <T> T madeTransient(T array) {
        created(array);
        return registered(array);
    }

    /**
     * RAM for a transient array, from the budget of its kind: CLEAR_ON_DESELECT and
     * CLEAR_ON_RESET arrays each have the profile's own size (an unknown event is left to
     * jcardsim, which throws SystemException ILLEGAL_VALUE).
     */
    private static void reserveRam(long bytes, byte event) {
        boolean deselect = event == JCSystem.CLEAR_ON_DESELECT;
        if (!deselect && event != JCSystem.CLEAR_ON_RESET || bytes < 0) {
            return;
        }
        long total = bytes + profile.objectHeaderBytes;
        long budget = deselect ? profile.transientDeselectBytes : profile.transientResetBytes;
        long used = deselect ? deselectRamUsed : resetRamUsed;
        if (used + total > budget) {
            refuse(deselect ? "transient RAM (CLEAR_ON_DESELECT)" : "transient RAM (CLEAR_ON_RESET)", total,
                    budget - used, budget);
        }
        take(deselect ? Memory.DESELECT : Memory.RESET, total);
    }

    public static short getAvailableMemory(byte memoryType) {
        return (short) Math.min(available(memoryType), Short.MAX_VALUE);
    }

    /** Java Card 3.0.4: the available memory as an int in two shorts (high, low). */
    public static void getAvailableMemory(short[] buffer, short offset, byte memoryType) {
        long value = Math.min(available(memoryType), Integer.MAX_VALUE);
        buffer[offset] = (short) (value >>> 16);
        buffer[(short) (offset + 1)] = (short) value;
    }

    private static long available(byte memoryType) {
        switch (memoryType) {
            case JCSystem.MEMORY_TYPE_PERSISTENT:
                return Math.max(0, profile.eepromBytes - persistentUsed);
            case JCSystem.MEMORY_TYPE_TRANSIENT_RESET:
                return Math.max(0, profile.transientResetBytes - resetRamUsed);
            case JCSystem.MEMORY_TYPE_TRANSIENT_DESELECT:
                return Math.max(0, profile.transientDeselectBytes - deselectRamUsed);
            default:
                SystemException.throwIt(SystemException.ILLEGAL_VALUE);
                return 0;
        }
    }

    // ---------------------------------------------------------------- allocation

    /** After NEWARRAY / ANEWARRAY in applet code: persistent memory (Java Card has no heap). */
    public static void allocatedArray(Object array) {
        int length = java.lang.reflect.Array.getLength(array);
        Class<?> component = array.getClass().getComponentType();
        reservePersistent((long) length * (component.isPrimitive() ? ObjectImage.elementBytes(component) : 2));
        created(array);
    }

    /** Before NEW in applet code: the instance's fields in persistent memory. */
    public static void allocatingObject(Class<?> type) {
        reservePersistent(instanceBytes(type));
    }

    private static final Map<Class<?>, Integer> INSTANCE_BYTES = new ConcurrentHashMap<>();

    private static int instanceBytes(Class<?> type) {
        return INSTANCE_BYTES.computeIfAbsent(type, t -> {
            int bytes = 0;
            for (Class<?> c = t; c != null && c != Object.class; c = c.getSuperclass()) {
                for (Field field : c.getDeclaredFields()) {
                    if (!Modifier.isStatic(field.getModifiers())) {
                        bytes += ObjectImage.fieldBytes(field.getType());
                    }
                }
            }
            return bytes;
        });
    }

    // ---------------------------------------------------------------- algorithms of the profile

    public static Key buildKey(byte type, short bits, boolean externalAccess) {
        profile.algorithms.requireKey(type, bits);
        Key key = KeyBuilder.buildKey(type, bits, externalAccess);
        reservePersistent(keyBytes(type, bits));
        created(key);
        return key;
    }

    public static javacard.security.Signature signatureInstance(byte algorithm, boolean externalAccess) {
        profile.algorithms.requireInstance(javacard.security.Signature.class, algorithm);
        return javacard.security.Signature.getInstance(algorithm, externalAccess);
    }

    public static javacardx.crypto.Cipher cipherInstance(byte algorithm, boolean externalAccess) {
        profile.algorithms.requireInstance(javacardx.crypto.Cipher.class, algorithm);
        return javacardx.crypto.Cipher.getInstance(algorithm, externalAccess);
    }

    public static javacard.security.MessageDigest messageDigestInstance(byte algorithm, boolean externalAccess) {
        profile.algorithms.requireInstance(javacard.security.MessageDigest.class, algorithm);
        return javacard.security.MessageDigest.getInstance(algorithm, externalAccess);
    }

    public static javacard.security.RandomData randomDataInstance(byte algorithm) {
        profile.algorithms.requireInstance(javacard.security.RandomData.class, algorithm);
        return javacard.security.RandomData.getInstance(algorithm);
    }

    /** Before the constructor new KeyPair(algorithm, bits) runs: the card must have its key types. */
    public static void keyPairAlgorithm(byte algorithm, short bits) {
        profile.algorithms.requireKeyPair(algorithm, bits);
    }

    /** The persistent bytes a key of this type keeps: its components. */
    static long keyBytes(byte type, short bits) {
        long unit = ((bits & 0xFFFF) + 7) / 8;
        switch (type) {
            case KeyBuilder.TYPE_RSA_PUBLIC:
                return unit + 4; // modulus, public exponent
            case KeyBuilder.TYPE_RSA_PRIVATE:
                return 2 * unit;
            case KeyBuilder.TYPE_RSA_CRT_PRIVATE:
                return 5 * (unit / 2); // P, Q, DP1, DQ1, PQ
            case KeyBuilder.TYPE_EC_FP_PUBLIC:
            case KeyBuilder.TYPE_EC_F2M_PUBLIC:
                return 7 * unit; // field, A, B, G (2), R, W (compressed ignored)
            case KeyBuilder.TYPE_EC_FP_PRIVATE:
            case KeyBuilder.TYPE_EC_F2M_PRIVATE:
                return 6 * unit;
            default:
                return unit;
        }
    }

    private static void reservePersistent(long bytes) {
        long total = bytes + profile.objectHeaderBytes;
        if (persistentUsed + total > profile.eepromBytes) {
            refuse("persistent memory", total, profile.eepromBytes - persistentUsed, profile.eepromBytes);
        }
        take(Memory.PERSISTENT, total);
    }

    /** How many allocations were refused so far (the host tells a failed install's cause by it). */
    public static long memoryRefusals() {
        return memoryRefusals;
    }

    /** SystemException NO_RESOURCE, and the log line that says which memory ran out. */
    private static void refuse(String memory, long asked, long left, long total) {
        memoryRefusals++;
        System.err.println("virtualcard: NO_RESOURCE: " + memory + ": " + asked + " bytes asked, " + left + " left of "
                + total + " (profile " + profile.name + ")");
        SystemException.throwIt(SystemException.NO_RESOURCE);
    }

    // ---------------------------------------------------------------- field and array stores

    private static final Map<String, Field> FIELDS = new ConcurrentHashMap<>();

    /** Before PUTFIELD / PUTSTATIC (owner null) in applet code. */
    public static void beforeFieldStore(Object owner, Class<?> declaring, String name) {
        Field field = FIELDS.computeIfAbsent(declaring.getName() + "." + name, key -> {
            try {
                Field f = declaring.getDeclaredField(name);
                f.setAccessible(true);
                return f;
            } catch (NoSuchFieldException e) {
                return inherited(declaring, name);
            }
        });
        if (inTransaction) {
            journalRoom(ObjectImage.fieldBytes(field.getType()));
        }
        point("field " + field.getDeclaringClass().getSimpleName() + "." + name);
        if (inTransaction) {
            JOURNAL.field(owner, field, profile);
        }
    }

    private static Field inherited(Class<?> type, String name) {
        for (Class<?> c = type.getSuperclass(); c != null; c = c.getSuperclass()) {
            try {
                Field f = c.getDeclaredField(name);
                f.setAccessible(true);
                return f;
            } catch (NoSuchFieldException e) {
                // further up
            }
        }
        throw new IllegalStateException("instrumentation: no field " + name + " in " + type.getName());
    }

    /** Before a write of count elements at offset of a persistent array, inside or outside a transaction. */
    private static void atomicWrite(Object array, int offset, int count, String what) {
        int dataBytes = count * ObjectImage.elementBytes(array.getClass().getComponentType());
        if (inTransaction) {
            journalRoom(dataBytes);
        }
        point(what);
        if (inTransaction) {
            JOURNAL.array(array, offset, count, dataBytes, profile);
        }
    }

    private static boolean persistent(Object array) {
        return array != null && !TRANSIENTS.contains(array);
    }

    private static void checkIndex(Object array, int index) {
        if (array == null) {
            throw new NullPointerException();
        }
        if (index < 0 || index >= length(array)) {
            throw new ArrayIndexOutOfBoundsException(index);
        }
    }

    /** BASTORE: byte[] and boolean[] alike. */
    public static void bastore(Object array, int index, int value) {
        checkIndex(array, index);
        if (persistent(array)) {
            atomicWrite(array, index, 1, "array element");
        }
        if (array instanceof boolean[]) {
            ((boolean[]) array)[index] = (value & 1) != 0;
        } else {
            ((byte[]) array)[index] = (byte) value;
        }
    }

    public static void sastore(short[] array, int index, int value) {
        checkIndex(array, index);
        if (persistent(array)) {
            atomicWrite(array, index, 1, "array element");
        }
        array[index] = (short) value;
    }

    public static void castore(char[] array, int index, int value) {
        checkIndex(array, index);
        if (persistent(array)) {
            atomicWrite(array, index, 1, "array element");
        }
        array[index] = (char) value;
    }

    public static void iastore(int[] array, int index, int value) {
        checkIndex(array, index);
        if (persistent(array)) {
            atomicWrite(array, index, 1, "array element");
        }
        array[index] = value;
    }

    public static void aastore(Object[] array, int index, Object value) {
        checkIndex(array, index);
        if (persistent(array)) {
            atomicWrite(array, index, 1, "array element");
        }
        array[index] = value;
    }

    // ---------------------------------------------------------------- Util

    private static void checkRange(byte[] array, short offset, short length) {
        if (array == null) {
            throw new NullPointerException();
        }
        if (offset < 0 || length < 0 || offset + length > array.length) {
            throw new ArrayIndexOutOfBoundsException();
        }
    }

    /** checkRange for a write: into the APDU buffer, only within the profile's size. */
    private static void checkWriteRange(byte[] array, short offset, short length) {
        checkRange(array, offset, length);
        if (offset + length > length(array)) {
            throw new ArrayIndexOutOfBoundsException();
        }
    }

    /**
     * An array's length as the card's stores see it: the APDU buffer is the profile's size
     * (jcardsim's is larger), so an applet that writes past it fails as on the card.
     */
    private static int length(Object array) {
        if (array == apduBufferArray) {
            return Math.min(profile.apduBufferBytes, apduBufferArray.length);
        }
        return java.lang.reflect.Array.getLength(array);
    }

    /** Atomic as a whole outside a transaction, journalled inside one (Util.arrayCopy). */
    public static short arrayCopy(byte[] src, short srcOff, byte[] dest, short destOff, short length) {
        checkRange(src, srcOff, length);
        checkWriteRange(dest, destOff, length);
        if (persistent(dest) && length > 0) {
            atomicWrite(dest, destOff, length, "Util.arrayCopy " + length + " bytes");
        }
        System.arraycopy(src, srcOff, dest, destOff, length);
        return (short) (destOff + length);
    }

    /** Not journalled even inside a transaction; a tear can land between two pages. */
    public static short arrayCopyNonAtomic(byte[] src, short srcOff, byte[] dest, short destOff, short length) {
        checkRange(src, srcOff, length);
        checkWriteRange(dest, destOff, length);
        if (!persistent(dest)) {
            System.arraycopy(src, srcOff, dest, destOff, length);
            return (short) (destOff + length);
        }
        // a copy within one array reads its source before the pages overwrite it
        byte[] source = src == dest ? java.util.Arrays.copyOfRange(src, srcOff, srcOff + length) : src;
        int from = source == src ? srcOff : 0;
        for (int done = 0; done < length; ) {
            int page = Math.min(profile.pageBytes - (destOff + done) % profile.pageBytes, length - done);
            point("Util.arrayCopyNonAtomic page at " + (destOff + done));
            System.arraycopy(source, from + done, dest, destOff + done, page);
            done += page;
        }
        return (short) (destOff + length);
    }

    public static short arrayFillNonAtomic(byte[] array, short offset, short length, byte value) {
        checkWriteRange(array, offset, length);
        if (!persistent(array)) {
            java.util.Arrays.fill(array, offset, offset + length, value);
            return (short) (offset + length);
        }
        for (int done = 0; done < length; ) {
            int page = Math.min(profile.pageBytes - (offset + done) % profile.pageBytes, length - done);
            point("Util.arrayFillNonAtomic page at " + (offset + done));
            java.util.Arrays.fill(array, offset + done, offset + done + page, value);
            done += page;
        }
        return (short) (offset + length);
    }

    public static short setShort(byte[] array, short offset, short value) {
        checkWriteRange(array, offset, (short) 2);
        if (persistent(array)) {
            atomicWrite(array, offset, 2, "Util.setShort");
        }
        return Util.setShort(array, offset, value);
    }

    // ---------------------------------------------------------------- APDU buffer

    /** jcardsim's APDU buffer, as getBuffer last returned it (its length is not the card's). */
    private static byte[] apduBufferArray;

    /**
     * The APDU buffer is a global transient array: writes to it are neither tears nor
     * journalled. Its size is the profile's (apdu_buffer_bytes): instrumented stores, copies
     * and fills into it past that throw ArrayIndexOutOfBoundsException. Reads and .length
     * still see jcardsim's larger array, which also receives an extended command whole
     * (a card may deliver it in buffer-sized parts through receiveBytes).
     */
    public static byte[] apduBuffer(APDU apdu) {
        apduBufferArray = registered(apdu.getBuffer());
        return apduBufferArray;
    }

    /** Command data jcardsim received whole that the card's buffer could not hold yet: receiveBytes hands it over. */
    private static byte[] pendingIncoming;
    private static int pendingAt;
    /** In how many parts the last command's data reached the applet (setIncomingAndReceive, then receiveBytes). */
    private static int incomingParts;

    /**
     * APDU.setIncomingAndReceive on a card whose APDU buffer is smaller than the command:
     * only what fits behind the header comes now (Java Card 3.0.4 API, APDU: "the number of
     * bytes read is limited by the buffer size"), the rest through receiveBytes. jcardsim
     * receives the whole command into its larger buffer; the bytes past the profile's size
     * are taken out of it (zeroed), so an applet that skips receiveBytes sees none of them,
     * as on the card.
     */
    public static short setIncomingAndReceive(APDU apdu) {
        short received = apdu.setIncomingAndReceive();
        pendingIncoming = null;
        incomingParts = received > 0 ? 1 : 0;
        byte[] buffer = apdu.getBuffer();
        int cdata = apdu.getOffsetCdata();
        int fits = Math.min(profile.apduBufferBytes, buffer.length) - cdata;
        if (received > fits && fits > 0) {
            pendingIncoming = java.util.Arrays.copyOfRange(buffer, cdata + fits, cdata + received);
            pendingAt = 0;
            java.util.Arrays.fill(buffer, cdata + fits, cdata + received, (byte) 0);
            return (short) fits;
        }
        return received;
    }

    /** APDU.receiveBytes: the next part of the command data that fits at bOff, 0 when all came. */
    public static short receiveBytes(APDU apdu, short bOff) {
        if (pendingIncoming == null || pendingAt >= pendingIncoming.length) {
            pendingIncoming = null;
            return apdu.receiveBytes(bOff);
        }
        int size = Math.min(profile.apduBufferBytes, apdu.getBuffer().length);
        if (bOff < 0 || bOff >= size) {
            javacard.framework.APDUException.throwIt(javacard.framework.APDUException.BUFFER_BOUNDS);
        }
        int part = Math.min(size - bOff, pendingIncoming.length - pendingAt);
        System.arraycopy(pendingIncoming, pendingAt, apdu.getBuffer(), bOff, part);
        pendingAt += part;
        incomingParts++;
        return (short) part;
    }

    /**
     * On a T=0 card one response carries at most 256 bytes: APDU.setOutgoingLength above
     * that throws APDUException BAD_LENGTH (Java Card 3.0.4 API, APDU.setOutgoingLength).
     */
    public static void setOutgoingLength(APDU apdu, short length) {
        if (profile.t0 && length > 256) {
            javacard.framework.APDUException.throwIt(javacard.framework.APDUException.BAD_LENGTH);
        }
        apdu.setOutgoingLength(length);
    }

    // ---------------------------------------------------------------- crypto output

    /*
     * A crypto operation whose output array is persistent (Signature.sign, Cipher.doFinal and
     * update, MessageDigest.doFinal, RandomData.generateData into an EEPROM array) writes its
     * result there as the card's crypto library does, after computing it: outside a
     * transaction page by page, a tear point before each page (the output partly written);
     * inside one journalled as one write (modelled as Util.arrayCopy). Output into RAM or the
     * APDU buffer is no tear point. The engine computes into a copy of the output array, so
     * an operation in place (input and output the same array) still reads its input whole.
     */

    /** One crypto operation writing its output into the array it is given. */
    private interface CryptoOperation {
        short run(byte[] output);
    }

    public static short sign(javacard.security.Signature engine, byte[] in, short inOff, short inLen, byte[] out,
            short outOff) {
        return cryptoOutput(out, outOff, "Signature.sign", target -> engine.sign(in, inOff, inLen, target, outOff));
    }

    public static short doFinal(javacardx.crypto.Cipher engine, byte[] in, short inOff, short inLen, byte[] out,
            short outOff) {
        return cryptoOutput(out, outOff, "Cipher.doFinal", target -> engine.doFinal(in, inOff, inLen, target, outOff));
    }

    public static short update(javacardx.crypto.Cipher engine, byte[] in, short inOff, short inLen, byte[] out,
            short outOff) {
        return cryptoOutput(out, outOff, "Cipher.update", target -> engine.update(in, inOff, inLen, target, outOff));
    }

    public static short doFinal(javacard.security.MessageDigest engine, byte[] in, short inOff, short inLen,
            byte[] out, short outOff) {
        return cryptoOutput(out, outOff, "MessageDigest.doFinal",
                target -> engine.doFinal(in, inOff, inLen, target, outOff));
    }

    public static void generateData(javacard.security.RandomData engine, byte[] out, short offset, short length) {
        cryptoOutput(out, offset, "RandomData.generateData", target -> {
            engine.generateData(target, offset, length);
            return length;
        });
    }

    /**
     * Runs the operation; an output into a persistent array is computed into a copy of it
     * and then written as the card writes EEPROM (cryptoResult).
     */
    private static short cryptoOutput(byte[] out, short outOff, String what, CryptoOperation operation) {
        if (!persistent(out)) {
            return operation.run(out);
        }
        byte[] result = out.clone();
        return cryptoResult(operation.run(result), result, out, outOff, what);
    }

    /** Writes result[off .. off+length) into the persistent out: journalled, or page by page. */
    private static short cryptoResult(short length, byte[] result, byte[] out, short off, String what) {
        if (length <= 0) {
            return length;
        }
        if (inTransaction) {
            atomicWrite(out, off, length, what + " output");
            System.arraycopy(result, off, out, off, length);
            return length;
        }
        for (int done = 0; done < length; ) {
            int page = Math.min(profile.pageBytes - (off + done) % profile.pageBytes, length - done);
            point(what + " output page at " + (off + done));
            System.arraycopy(result, off + done, out, off + done, page);
            done += page;
        }
        return length;
    }

    // ---------------------------------------------------------------- OwnerPIN

    private static Field triesLeft;

    /**
     * OwnerPIN.check: the try is spent before the comparison (as jcardsim's OwnerPIN and a
     * real card do), and neither is part of a transaction (Java Card API, OwnerPIN.check).
     * Two tear points: before anything, and with the try spent but no result yet.
     */
    public static boolean pinCheck(OwnerPIN pin, byte[] candidate, short offset, byte length) {
        point("OwnerPIN.check before the try is spent");
        if (nextPointTears() && pin.getTriesRemaining() > 0) {
            byte[] tries = (byte[]) read(pinTriesField(), pin);
            tries[0]--;
        }
        point("OwnerPIN.check with the try spent, before the comparison");
        return pin.check(candidate, offset, length);
    }

    private static Field pinTriesField() {
        if (triesLeft == null) {
            try {
                triesLeft = OwnerPIN.class.getDeclaredField("triesLeft");
                triesLeft.setAccessible(true);
            } catch (NoSuchFieldException e) {
                throw new IllegalStateException("this jcardsim's OwnerPIN has no triesLeft field: update StrictCard", e);
            }
        }
        return triesLeft;
    }

    public static void pinUpdate(OwnerPIN pin, byte[] value, short offset, byte length) {
        framework(pin, "OwnerPIN.update", length + 2); // value, size, try counter
        pin.update(value, offset, length);
    }

    public static void pinResetAndUnblock(OwnerPIN pin) {
        framework(pin, "OwnerPIN.resetAndUnblock", 2);
        pin.resetAndUnblock();
    }

    /**
     * A write of `written` bytes inside a framework object: one tear point; in a transaction
     * the object's image is journalled (how the host undoes it) and charged the bytes written
     * (what a card journals: the old value of the component it overwrites, whatever
     * jcardsim holds before).
     */
    private static void framework(Object target, String what, int written) {
        ObjectImage image = inTransaction ? ObjectImage.capture(target, TRANSIENTS) : null;
        int charge = written;
        if (image != null) {
            journalRoom(charge);
        }
        point(what);
        if (image != null) {
            JOURNAL.image(image, charge, profile);
        }
    }

    // ---------------------------------------------------------------- keys

    private static final Map<String, Method> METHODS = new ConcurrentHashMap<>();

    private static Object invoke(Object target, String owner, String name, Class<?>[] types, Object... args) {
        Method method = METHODS.computeIfAbsent(owner + "." + name + java.util.Arrays.toString(types), key -> {
            try {
                return Class.forName(owner.replace('/', '.')).getMethod(name, types);
            } catch (ReflectiveOperationException e) {
                throw new IllegalStateException("instrumentation: no method " + owner + "." + name, e);
            }
        });
        try {
            return method.invoke(target, args);
        } catch (java.lang.reflect.InvocationTargetException e) {
            Throwable cause = e.getCause();
            if (cause instanceof RuntimeException) {
                throw (RuntimeException) cause;
            }
            if (cause instanceof Error) {
                throw (Error) cause;
            }
            throw new IllegalStateException(cause);
        } catch (IllegalAccessException e) {
            throw new IllegalStateException(e);
        }
    }

    /**
     * A key setter taking (byte[], short, short), e.g. RSAPublicKey.setModulus. Inside a
     * transaction the key's image is journalled. Outside one a component longer than a page
     * is not written at once: a tear point before each further page, where the power leaves
     * the component partly written (the new value's first pages, the old value's rest), as a
     * card's key store outside a transaction does (the Java Card API makes key setters no
     * promise of atomicity).
     */
    public static void keySet(Object key, byte[] value, short offset, short length, String owner, String name) {
        framework(key, owner + "." + name, length);
        if (!inTransaction && length > profile.pageBytes && name.startsWith("set")) {
            String component = name.substring(3);
            byte[] newValue = java.util.Arrays.copyOfRange(value, offset, offset + length);
            for (int written = profile.pageBytes; written < length; written += profile.pageBytes) {
                if (nextPointTears()) {
                    KeyComponents.writePartly(key, component, newValue, written);
                }
                point(owner + "." + name + " with " + written + " of " + length + " bytes written");
            }
        }
        invoke(key, owner, name, new Class<?>[] {byte[].class, short.class, short.class}, value, offset, length);
    }

    /** A key setter taking (byte[], short), e.g. AESKey.setKey. */
    public static void keySet(Object key, byte[] value, short offset, String owner, String name) {
        framework(key, owner + "." + name, keyBytes(key));
        invoke(key, owner, name, new Class<?>[] {byte[].class, short.class}, value, offset);
    }

    /** A key setter taking a short, e.g. ECKey.setK. */
    public static void keySet(Object key, short value, String owner, String name) {
        framework(key, owner + "." + name, 2);
        invoke(key, owner, name, new Class<?>[] {short.class}, value);
    }

    /** Key.clearKey. */
    public static void keySet(Object key, String owner, String name) {
        framework(key, owner + "." + name, keyBytes(key));
        invoke(key, owner, name, new Class<?>[0]);
    }

    /**
     * KeyPair.genKeyPair writes two keys. Inside a transaction both are journalled. Outside,
     * the card writes the generated components one after the other, public key first (RSA:
     * modulus, exponent, then P, Q, DP1, DQ1, PQ; EC: W, then S): a tear point before each,
     * where the power leaves the components before it new and the rest as they were (the
     * old key's, or none). An applet must not trust a key whose generation was torn
     * (CardShield: keyPresent, the empty slot).
     */
    public static void genKeyPair(KeyPair pair) {
        if (inTransaction) {
            framework(pair, "KeyPair.genKeyPair", keyBytes(pair.getPublic()) + keyBytes(pair.getPrivate()));
            pair.genKeyPair();
            return;
        }
        point("KeyPair.genKeyPair before any key is written");
        writtenInParts(pair, pair.getPublic(), "public", false);
        writtenInParts(pair, pair.getPrivate(), "private", true);
        pair.genKeyPair();
    }

    /**
     * The tear points between the components of one key of a pair being generated (the
     * first component's point is the one before it: before any key for the public key, "the
     * public key written, the private key not" for the private one).
     */
    private static void writtenInParts(KeyPair pair, Object key, String which, boolean publicWritten) {
        String[] components = KeyComponents.of(key);
        for (int done = 0; done < Math.max(1, components.length); done++) {
            if (done == 0 && !publicWritten) {
                continue; // the point before any key is written, passed already
            }
            if (nextPointTears()) {
                tornGeneration(pair, key, components, done);
            }
            point(done == 0 ? "KeyPair.genKeyPair with the public key written, the private key not"
                    : "KeyPair.genKeyPair with " + done + " of " + components.length + " " + which + " key components written");
        }
    }

    /** The pair as a tear leaves it: the other key as it was or new, `done` components of `key` new. */
    private static void tornGeneration(KeyPair pair, Object key, String[] components, int done) {
        boolean privateKey = key == pair.getPrivate();
        ObjectImage oldPublic = ObjectImage.capture(pair.getPublic(), TRANSIENTS);
        ObjectImage oldPrivate = ObjectImage.capture(pair.getPrivate(), TRANSIENTS);
        pair.genKeyPair();
        byte[][] fresh = new byte[done][];
        for (int i = 0; i < done; i++) {
            fresh[i] = KeyComponents.read(key, components[i]);
        }
        oldPrivate.restore();
        if (!privateKey) {
            oldPublic.restore();
        }
        for (int i = 0; i < done; i++) {
            KeyComponents.write(key, components[i], fresh[i]);
        }
    }

    /** The bytes a key's components take (KeyBuilder sizes). */
    private static int keyBytes(Object key) {
        if (!(key instanceof Key)) {
            return 0;
        }
        Key k = (Key) key;
        return (int) keyBytes(k.getType(), k.getSize());
    }

    private static Object read(Field field, Object owner) {
        try {
            return field.get(owner);
        } catch (IllegalAccessException e) {
            throw new IllegalStateException(e);
        }
    }
}
