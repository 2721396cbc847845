package org.cardshield.virtualcard.strict;

import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import org.objectweb.asm.ClassReader;
import org.objectweb.asm.ClassVisitor;
import org.objectweb.asm.ClassWriter;
import org.objectweb.asm.MethodVisitor;
import org.objectweb.asm.Opcodes;
import org.objectweb.asm.Type;

/**
 * Rewrites an applet class so that its persistent writes and its transaction, memory and
 * key calls go through {@link StrictCard}. The rewrite keeps the stack effect of every
 * instruction it replaces, so the class's stack map frames stay valid; the applet's
 * sources and CAP are untouched.
 *
 * <ul>
 * <li>PUTFIELD / PUTSTATIC (not in constructors, whose object is new and unreachable if a
 * transaction aborts, nor in static initializers, the CAP's static image):
 * StrictCard.beforeFieldStore, then the store itself;</li>
 * <li>BASTORE, SASTORE, CASTORE, IASTORE, AASTORE (not in static initializers):
 * StrictCard.bastore ... aastore, which store;</li>
 * <li>Util.arrayCopy, arrayCopyNonAtomic, arrayFillNonAtomic, setShort; JCSystem transaction,
 * commit capacity, transient array and available memory calls; KeyBuilder.buildKey and the
 * getInstance(byte[, boolean]) of Signature, Cipher, MessageDigest and RandomData (the
 * profile's algorithms); new KeyPair(byte, short) checked before its constructor;
 * Signature.sign, Cipher.doFinal and update, MessageDigest.doFinal, RandomData.generateData (a
 * persistent output: tear points, journal); APDU.getBuffer, setOutgoingLength, setIncomingAndReceive and receiveBytes (command data in parts
 * of the profile's buffer size); OwnerPIN.check, update, resetAndUnblock; KeyPair.genKeyPair; the set* and
 * clearKey methods of the javacard.security and javacardx.crypto key interfaces:
 * the StrictCard method of the same purpose;</li>
 * <li>NEW, NEWARRAY, ANEWARRAY: persistent memory counted against the profile; after the
 * constructor of a NEW, StrictCard.created (objects of an aborted transaction are reclaimed).</li>
 * </ul>
 */
final class Instrumenter {
    static final String RUNTIME = Type.getInternalName(StrictCard.class);

    private static final Set<String> JCSYSTEM = new HashSet<>(Arrays.asList("beginTransaction", "commitTransaction",
            "abortTransaction", "getTransactionDepth", "getMaxCommitCapacity", "getUnusedCommitCapacity",
            "makeTransientByteArray", "makeTransientShortArray", "makeTransientBooleanArray",
            "makeTransientObjectArray", "getAvailableMemory"));
    private static final Set<String> UTIL = new HashSet<>(Arrays.asList("arrayCopy", "arrayCopyNonAtomic",
            "arrayFillNonAtomic", "setShort"));

    /** Crypto operations writing an output array (persistent: tear points, journal). */
    private static final Set<String> CRYPTO_OUTPUT = new HashSet<>(Arrays.asList(
            "javacard/security/Signature.sign([BSS[BS)S", "javacardx/crypto/Cipher.doFinal([BSS[BS)S",
            "javacardx/crypto/Cipher.update([BSS[BS)S", "javacard/security/MessageDigest.doFinal([BSS[BS)S",
            "javacard/security/RandomData.generateData([BSS)V"));

    /** getInstance(byte, boolean) / getInstance(byte) of the crypto engines: StrictCard's method checking the profile. */
    private static final Map<String, String> INSTANCES = new HashMap<>();

    static {
        INSTANCES.put("javacard/security/Signature", "signatureInstance");
        INSTANCES.put("javacardx/crypto/Cipher", "cipherInstance");
        INSTANCES.put("javacard/security/MessageDigest", "messageDigestInstance");
        INSTANCES.put("javacard/security/RandomData", "randomDataInstance");
    }

    private Instrumenter() {
    }

    static byte[] instrument(byte[] classBytes) {
        ClassReader reader = new ClassReader(classBytes);
        ClassWriter writer = new ClassWriter(reader, ClassWriter.COMPUTE_MAXS);
        reader.accept(new ClassVisitor(Opcodes.ASM9, writer) {
            private int version;

            @Override
            public void visit(int v, int access, String name, String signature, String superName, String[] interfaces) {
                // a class constant (LDC of a type) needs class file version 49 or later
                version = v < Opcodes.V1_5 ? Opcodes.V1_5 : v;
                super.visit(version, access, name, signature, superName, interfaces);
            }

            @Override
            public MethodVisitor visitMethod(int access, String name, String descriptor, String signature,
                    String[] exceptions) {
                MethodVisitor next = super.visitMethod(access, name, descriptor, signature, exceptions);
                if (name.equals("<clinit>")) {
                    return next;
                }
                return new Rewriter(next, name.equals("<init>"));
            }
        }, 0);
        return writer.toByteArray();
    }

    private static final class Rewriter extends MethodVisitor {
        private final boolean constructor;
        /** Types of NEW instructions whose constructor call has not come yet (innermost first). */
        private final java.util.ArrayDeque<String> pendingNew = new java.util.ArrayDeque<>();

        Rewriter(MethodVisitor next, boolean constructor) {
            super(Opcodes.ASM9, next);
            this.constructor = constructor;
        }

        @Override
        public void visitFieldInsn(int opcode, String owner, String name, String descriptor) {
            boolean wide = descriptor.equals("J") || descriptor.equals("D");
            if (!constructor && !wide && opcode == Opcodes.PUTFIELD) {
                // [obj, value] -> [obj, value, obj]
                super.visitInsn(Opcodes.DUP2);
                super.visitInsn(Opcodes.POP);
                before(owner, name);
            } else if (!constructor && !wide && opcode == Opcodes.PUTSTATIC) {
                super.visitInsn(Opcodes.ACONST_NULL);
                before(owner, name);
            }
            super.visitFieldInsn(opcode, owner, name, descriptor);
        }

        private void before(String owner, String name) {
            super.visitLdcInsn(Type.getObjectType(owner));
            super.visitLdcInsn(name);
            super.visitMethodInsn(Opcodes.INVOKESTATIC, RUNTIME, "beforeFieldStore",
                    "(Ljava/lang/Object;Ljava/lang/Class;Ljava/lang/String;)V", false);
        }

        @Override
        public void visitInsn(int opcode) {
            switch (opcode) {
                case Opcodes.BASTORE:
                    store("bastore", "(Ljava/lang/Object;II)V");
                    return;
                case Opcodes.SASTORE:
                    store("sastore", "([SII)V");
                    return;
                case Opcodes.CASTORE:
                    store("castore", "([CII)V");
                    return;
                case Opcodes.IASTORE:
                    store("iastore", "([III)V");
                    return;
                case Opcodes.AASTORE:
                    store("aastore", "([Ljava/lang/Object;ILjava/lang/Object;)V");
                    return;
                default:
                    super.visitInsn(opcode);
            }
        }

        private void store(String method, String descriptor) {
            super.visitMethodInsn(Opcodes.INVOKESTATIC, RUNTIME, method, descriptor, false);
        }

        @Override
        public void visitIntInsn(int opcode, int operand) {
            super.visitIntInsn(opcode, operand);
            if (opcode == Opcodes.NEWARRAY) {
                allocatedArray();
            }
        }

        @Override
        public void visitTypeInsn(int opcode, String type) {
            if (opcode == Opcodes.NEW) {
                pendingNew.push(type);
                super.visitLdcInsn(Type.getObjectType(type));
                super.visitMethodInsn(Opcodes.INVOKESTATIC, RUNTIME, "allocatingObject", "(Ljava/lang/Class;)V", false);
            }
            super.visitTypeInsn(opcode, type);
            if (opcode == Opcodes.ANEWARRAY) {
                allocatedArray();
            }
        }

        private void allocatedArray() {
            super.visitInsn(Opcodes.DUP);
            super.visitMethodInsn(Opcodes.INVOKESTATIC, RUNTIME, "allocatedArray", "(Ljava/lang/Object;)V", false);
        }

        @Override
        public void visitMethodInsn(int opcode, String owner, String name, String descriptor, boolean isInterface) {
            if (opcode == Opcodes.INVOKESTATIC && owner.equals("javacard/framework/JCSystem") && JCSYSTEM.contains(name)
                    || opcode == Opcodes.INVOKESTATIC && owner.equals("javacard/framework/Util") && UTIL.contains(name)
                    || opcode == Opcodes.INVOKESTATIC && owner.equals("javacard/security/KeyBuilder")
                            && name.equals("buildKey") && descriptor.equals("(BSZ)Ljavacard/security/Key;")) {
                super.visitMethodInsn(Opcodes.INVOKESTATIC, RUNTIME, name, descriptor, false);
                return;
            }
            String instance = opcode == Opcodes.INVOKESTATIC && name.equals("getInstance") ? INSTANCES.get(owner) : null;
            if (instance != null && (descriptor.startsWith("(BZ)") || descriptor.startsWith("(B)"))) {
                super.visitMethodInsn(Opcodes.INVOKESTATIC, RUNTIME, instance, descriptor, false);
                return;
            }
            if (opcode == Opcodes.INVOKESPECIAL && owner.equals("javacard/security/KeyPair") && name.equals("<init>")
                    && descriptor.equals("(BS)V")) {
                // [.., pair, pair, alg, bits] -> check (alg, bits) -> the constructor
                super.visitInsn(Opcodes.DUP2);
                super.visitMethodInsn(Opcodes.INVOKESTATIC, RUNTIME, "keyPairAlgorithm", "(BS)V", false);
            }
            if (opcode == Opcodes.INVOKESPECIAL && name.equals("<init>") && owner.equals(pendingNew.peek())) {
                // javac's NEW, DUP, arguments, <init>: the new object is on the stack after the call
                pendingNew.pop();
                super.visitMethodInsn(opcode, owner, name, descriptor, isInterface);
                super.visitInsn(Opcodes.DUP);
                super.visitMethodInsn(Opcodes.INVOKESTATIC, RUNTIME, "created", "(Ljava/lang/Object;)V", false);
                return;
            }
            if (opcode == Opcodes.INVOKEVIRTUAL && receiverCall(owner, name, descriptor)) {
                return;
            }
            if (opcode == Opcodes.INVOKEINTERFACE && isKeyInterface(owner)
                    && (name.startsWith("set") || name.equals("clearKey")) && keySetterShape(descriptor)) {
                super.visitLdcInsn(owner);
                super.visitLdcInsn(name);
                String args = descriptor.substring(1, descriptor.indexOf(')'));
                super.visitMethodInsn(Opcodes.INVOKESTATIC, RUNTIME, "keySet",
                        "(Ljava/lang/Object;" + args + "Ljava/lang/String;Ljava/lang/String;)V", false);
                return;
            }
            super.visitMethodInsn(opcode, owner, name, descriptor, isInterface);
        }

        /** An instance method of the framework replaced by a static one taking the receiver first. */
        private boolean receiverCall(String owner, String name, String descriptor) {
            String target = null;
            if (owner.equals("javacard/framework/APDU") && name.equals("getBuffer")) {
                target = "apduBuffer";
            } else if (owner.equals("javacard/framework/APDU") && name.equals("setOutgoingLength")) {
                target = "setOutgoingLength";
            } else if (owner.equals("javacard/framework/APDU") && name.equals("setIncomingAndReceive")) {
                target = "setIncomingAndReceive";
            } else if (owner.equals("javacard/framework/APDU") && name.equals("receiveBytes")) {
                target = "receiveBytes";
            } else if (owner.equals("javacard/framework/OwnerPIN")) {
                if (name.equals("check")) {
                    target = "pinCheck";
                } else if (name.equals("update")) {
                    target = "pinUpdate";
                } else if (name.equals("resetAndUnblock")) {
                    target = "pinResetAndUnblock";
                }
            } else if (owner.equals("javacard/security/KeyPair") && name.equals("genKeyPair")) {
                target = "genKeyPair";
            } else if (CRYPTO_OUTPUT.contains(owner + "." + name + descriptor)) {
                target = name; // StrictCard.sign, doFinal, update, generateData: the output's tear points
            }
            if (target == null) {
                return false;
            }
            super.visitMethodInsn(Opcodes.INVOKESTATIC, RUNTIME, target, "(L" + owner + ";" + descriptor.substring(1),
                    false);
            return true;
        }

        private static boolean isKeyInterface(String owner) {
            return (owner.startsWith("javacard/security/") || owner.startsWith("javacardx/crypto/"))
                    && owner.endsWith("Key");
        }

        private static boolean keySetterShape(String descriptor) {
            return descriptor.equals("([BSS)V") || descriptor.equals("([BS)V") || descriptor.equals("(S)V")
                    || descriptor.equals("()V");
        }
    }
}
