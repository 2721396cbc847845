"""The project's own Java Card subset checker: a static check of the applet's class files
against what a Java Card 3.0.4 Classic platform without the optional int support accepts
(JCVM spec 3.0.4 chapter 2, "Java Card language subset"), run by every build so that code
the converter or the card would refuse fails before any test.

It rejects: long/float/double/char (opcodes and types), int in fields, parameters,
returns, locals (LocalVariableTable, so compile with -g) and arrays, int intermediate
values used without a (short)/(byte) cast where the converter demands one (array index,
array size, comparison, switch), String and StringBuilder (string constants,
concatenation), class literals, references outside java.lang's Java Card classes,
javacard.*, javacardx.* and the applet's package, synchronized and monitorenter,
multi-dimensional arrays, invokedynamic (lambdas), the JCVM format limits (2.2.4), and
API members that exist only in Java Card 3.0.5 (API_3_0_5_ONLY).

With a Java Card SDK the applet is also compiled against the SDK's API jar for the target
version, which catches 3.0.5 constants that javac inlines (e.g. RandomData.ALG_TRNG).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cardshield.errors import UserError
from cardshield.build.classfile import (
    ACC_PRIVATE,
    ACC_PROTECTED,
    ACC_PUBLIC,
    ACC_STATIC,
    ACC_SYNCHRONIZED,
    CLASS,
    FLOAT,
    INTEGER,
    LONG,
    DOUBLE,
    STRING,
    UTF8,
    ClassFile,
    Instruction,
    Method,
    classes_in_descriptor,
    instructions,
    parameter_and_return_types,
    parse_class,
)

# java.lang (and java.io, java.rmi) classes of the Java Card 3.0.4 API.
JAVA_CLASSES = frozenset(
    "java/lang/" + name
    for name in (
        "Object", "Throwable", "Exception", "RuntimeException", "ArithmeticException",
        "ArrayIndexOutOfBoundsException", "ArrayStoreException", "ClassCastException",
        "IndexOutOfBoundsException", "NegativeArraySizeException", "NullPointerException",
        "SecurityException",
    )
) | {"java/io/IOException", "java/rmi/Remote", "java/rmi/RemoteException"}

# Public API members present in the Java Card 3.0.5 API but not in 3.0.4 (from a comparison
# of the two specifications' API class files; constants are left out because javac inlines
# them). (class, member name, descriptor); member None = the whole class is new.
API_3_0_5_ONLY: frozenset[tuple[str, str | None, str | None]] = frozenset({
    ("javacard/framework/OwnerPINBuilder", None, None),
    ("javacard/framework/OwnerPINx", None, None),
    ("javacard/framework/OwnerPINxWithPredecrement", None, None),
    ("javacard/framework/SensitiveArrays", None, None),
    ("javacard/framework/Util", "arrayFill", "([BSSB)S"),
    ("javacard/security/DHKey", None, None),
    ("javacard/security/DHPrivateKey", None, None),
    ("javacard/security/DHPublicKey", None, None),
    ("javacard/security/ECKey", "copyDomainParametersFrom", "(Ljavacard/security/ECKey;)V"),
    ("javacard/security/InitializedMessageDigest$OneShot", None, None),
    ("javacard/security/KeyBuilder", "buildKeyWithSharedDomain",
     "(BBLjavacard/security/Key;Z)Ljavacard/security/Key;"),
    ("javacard/security/MessageDigest$OneShot", None, None),
    ("javacard/security/RandomData", "getAlgorithm", "()B"),
    ("javacard/security/RandomData", "nextBytes", "([BSS)S"),
    ("javacard/security/RandomData$OneShot", None, None),
    ("javacard/security/Signature", "getCipherAlgorithm", "()B"),
    ("javacard/security/Signature", "getMessageDigestAlgorithm", "()B"),
    ("javacard/security/Signature", "getPaddingAlgorithm", "()B"),
    ("javacard/security/Signature", "verifyPreComputedHash", "([BSS[BSS)Z"),
    ("javacard/security/Signature$OneShot", None, None),
    ("javacardx/apdu/util/APDUUtil", None, None),
    ("javacardx/crypto/AEADCipher", None, None),
    ("javacardx/crypto/Cipher", "getCipherAlgorithm", "()B"),
    ("javacardx/crypto/Cipher", "getPaddingAlgorithm", "()B"),
    ("javacardx/crypto/Cipher$OneShot", None, None),
    ("javacardx/framework/util/ArrayLogic", "arrayFillGeneric", "(Ljava/lang/Object;SSLjava/lang/Object;S)S"),
    ("javacardx/security/SensitiveResult", None, None),
})
_NEW_CLASSES = {owner for owner, member, _ in API_3_0_5_ONLY if member is None}
_NEW_CLASS_PREFIXES = ("javacardx/biometry1toN/",)

_TYPE_NAMES = {"J": "long", "F": "float", "D": "double", "C": "char", "I": "int"}

# Opcodes outside the subset, by family (JVM spec chapter 6 numbering).
_LONG_OPS = {0x09, 0x0A, 0x16, 0x1E, 0x1F, 0x20, 0x21, 0x2F, 0x37, 0x3F, 0x40, 0x41, 0x42, 0x50, 0x61, 0x65,
             0x69, 0x6D, 0x71, 0x75, 0x79, 0x7B, 0x7D, 0x7F, 0x81, 0x83, 0x85, 0x88, 0x94, 0xAD}
_FLOAT_OPS = {0x0B, 0x0C, 0x0D, 0x17, 0x22, 0x23, 0x24, 0x25, 0x30, 0x38, 0x43, 0x44, 0x45, 0x46, 0x51, 0x62,
              0x66, 0x6A, 0x6E, 0x72, 0x76, 0x86, 0x8B, 0x95, 0x96, 0xAE}
_DOUBLE_OPS = {0x0E, 0x0F, 0x18, 0x26, 0x27, 0x28, 0x29, 0x31, 0x39, 0x47, 0x48, 0x49, 0x4A, 0x52, 0x63, 0x67,
               0x6B, 0x6F, 0x73, 0x77, 0x87, 0x8E, 0x97, 0x98, 0xAF}
_CONVERSIONS = {0x89: "long->float", 0x8A: "long->double", 0x8C: "float->long", 0x8D: "float->double",
                0x8F: "double->long", 0x90: "double->float", 0x92: "int->char (i2c)"}
_OTHER_FORBIDDEN = {
    0x14: "ldc2_w (long/double constant)",
    0x2E: "iaload (int array)",
    0x4F: "iastore (int array)",
    0xBA: "invokedynamic (lambda or string concatenation)",
    0xC2: "monitorenter (synchronized block)",
    0xC3: "monitorexit (synchronized block)",
    0xC5: "multianewarray (multi-dimensional array)",
}
_NEWARRAY_TYPES = {4: "boolean", 5: "char", 6: "float", 7: "double", 8: "byte", 9: "short", 10: "int", 11: "long"}

# JCVM 3.0.4 2.2.4 limits.
MAX_METHOD_TABLE = 128  # public/protected, and package-visible, virtual methods each
MAX_FIELDS = 255  # instance fields; static fields
MAX_METHODS = 255
MAX_LOCALS = 255
MAX_STACK = 255
MAX_CODE = 32767
MAX_INTERFACES = 15
MAX_CLASSES = 255


@dataclass(frozen=True)
class Violation:
    class_name: str
    method: str | None
    offset: int | None
    message: str
    source: str | None = None

    def __str__(self) -> str:
        where = self.class_name.replace("/", ".")
        if self.method:
            where += "." + self.method
        if self.offset is not None:
            where += f" @{self.offset}"
        if self.source:
            where += f" ({self.source})"
        return f"{where}: {self.message}"


class SubsetError(UserError):
    def __init__(self, violations: list[Violation]):
        self.violations = violations
        lines = "\n".join(f"  {violation}" for violation in violations)
        super().__init__(f"{len(violations)} Java Card subset violation(s):\n{lines}")


def check_class_dir(class_dir: Path, package: str | None = None) -> list[Violation]:
    """Check every .class under class_dir. `package` (dotted) is the applet's package; by
    default the package of each class is allowed for itself."""
    class_files = sorted(class_dir.rglob("*.class"))
    violations: list[Violation] = []
    packages: dict[str, int] = {}
    for path in class_files:
        cls = parse_class(path)
        own = package.replace(".", "/") if package else cls.name.rpartition("/")[0]
        packages[own] = packages.get(own, 0) + 1
        violations += SubsetChecker(cls, own).check()
    for own, count in packages.items():
        if count > MAX_CLASSES:
            violations.append(Violation(own, None, None, f"{count} classes in one package; a CAP holds at most "
                                                         f"{MAX_CLASSES} (JCVM 2.2.4.2)"))
    return violations


def check_no_package(class_dir: Path, prefixes: tuple[str, ...], why: str) -> list[Violation]:
    """Every class of class_dir whose constant pool names (as a class, a member's owner or
    inside a descriptor) a package starting with one of `prefixes` (internal form, e.g.
    "javacardx/apdu/"): what a CAP variant must not import."""
    violations = []
    for path in sorted(class_dir.rglob("*.class")):
        cls = parse_class(path)
        names = {constant[1] for constant in cls.constants if constant and constant[0] == UTF8}
        for prefix in prefixes:
            if any(prefix in name for name in names):
                violations.append(Violation(cls.name, None, None,
                                            f"refers to {prefix.rstrip('/').replace('/', '.')}: {why}"))
    return violations


class SubsetChecker:
    def __init__(self, cls: ClassFile, package: str):
        self.cls = cls
        self.package = package
        self.violations: list[Violation] = []

    # -- reporting -----------------------------------------------------------------------
    def report(self, message: str, method: Method | None = None, offset: int | None = None) -> None:
        source = None
        if method is not None and offset is not None and self.cls.source_file:
            line = method.line_at(offset)
            source = f"{self.cls.source_file}:{line}" if line else self.cls.source_file
        name = f"{method.name}{method.descriptor}" if method else None
        self.violations.append(Violation(self.cls.name, name, offset, message, source))

    # -- class level ---------------------------------------------------------------------
    def check(self) -> list[Violation]:
        cls = self.cls
        if cls.major > 52:
            self.report(f"class file version {cls.major} is newer than Java 8 (52); converters read 7 or 8 "
                        "(compile with javac --release 7)")
        for name in [cls.super_name, *cls.interfaces]:
            if name:
                self.check_class_reference(name, None, None, "extends/implements")
        if len(cls.interfaces) > MAX_INTERFACES:
            self.report(f"implements {len(cls.interfaces)} interfaces; at most {MAX_INTERFACES} (JCVM 2.2.4.2)")
        self.check_limits()
        for member in cls.fields:
            self.check_type(member.descriptor, f"field {member.name}", None, None)
            if member.constant_value_index is not None and cls.constants[member.constant_value_index][0] == STRING:
                self.report(f"field {member.name}: String constant")
        for method in cls.methods:
            self.check_method(method)
        return self.violations

    def check_limits(self) -> None:
        cls = self.cls
        instance_fields = [f for f in cls.fields if not f.access & ACC_STATIC]
        static_fields = [f for f in cls.fields if f.access & ACC_STATIC]
        virtual = [m for m in cls.methods if not m.access & ACC_STATIC and m.name != "<init>"
                   and not m.access & ACC_PRIVATE]
        public_virtual = [m for m in virtual if m.access & (ACC_PUBLIC | ACC_PROTECTED)]
        checks = [
            (len(instance_fields), MAX_FIELDS, "instance fields"),
            (len(static_fields), MAX_FIELDS, "static fields"),
            (len(cls.methods), MAX_METHODS, "methods"),
            (len(public_virtual), MAX_METHOD_TABLE, "public/protected virtual methods"),
            (len(virtual) - len(public_virtual), MAX_METHOD_TABLE, "package-visible virtual methods"),
        ]
        for count, limit, what in checks:
            if count > limit:
                self.report(f"{count} {what}; the CAP format allows at most {limit} (JCVM 2.2.4)")

    def check_type(self, descriptor: str, what: str, method: Method | None, offset: int | None) -> None:
        if "[[" in descriptor:
            self.report(f"{what}: multi-dimensional array {descriptor}", method, offset)
        stripped = descriptor
        for name in classes_in_descriptor(descriptor):
            stripped = stripped.replace(f"L{name};", "")
            self.check_class_reference(name, method, offset, what)
        for code, type_name in _TYPE_NAMES.items():
            if code in stripped:
                array = "[" + code in stripped
                self.report(f"{what}: {type_name}{' array' if array else ''} type ({descriptor}) is not in the "
                            "Java Card subset" + (" without int support; use short" if code == "I" else ""),
                            method, offset)

    def check_class_reference(self, name: str, method: Method | None, offset: int | None, what: str) -> None:
        name = name.lstrip("[")
        if name.startswith("L") and name.endswith(";"):
            name = name[1:-1]
        if len(name) == 1:  # primitive array class such as [B
            return
        if name in _NEW_CLASSES or name.startswith(_NEW_CLASS_PREFIXES):
            self.report(f"{what}: {name.replace('/', '.')} exists only from Java Card 3.0.5", method, offset)
            return
        if name.startswith(("javacard/", "javacardx/")) or name in JAVA_CLASSES:
            return
        if name.rpartition("/")[0] == self.package:
            return
        hint = ""
        if name in ("java/lang/String", "java/lang/StringBuilder", "java/lang/StringBuffer"):
            hint = " (strings do not exist on the card: use byte arrays)"
        elif name == "java/lang/Class":
            hint = " (no reflection or class literals)"
        elif name == "java/lang/Integer" or name == "java/lang/Short":
            hint = " (no boxing)"
        self.report(f"{what}: refers to {name.replace('/', '.')}, which is not in the Java Card API nor the "
                    f"applet's package{hint}", method, offset)

    # -- method level --------------------------------------------------------------------
    def check_method(self, method: Method) -> None:
        if method.access & ACC_SYNCHRONIZED:
            self.report("synchronized method", method)
        params, returns = parameter_and_return_types(method.descriptor)
        for i, param in enumerate(params):
            self.check_type(param, f"parameter {i + 1}", method, None)
        self.check_type(returns, "return type", method, None)
        if not method.code:
            return
        if method.max_locals > MAX_LOCALS or method.max_stack > MAX_STACK or len(method.code) > MAX_CODE:
            self.report(f"max_locals {method.max_locals} / max_stack {method.max_stack} / code {len(method.code)} "
                        f"bytes exceed the JCVM limits ({MAX_LOCALS}/{MAX_STACK}/{MAX_CODE})", method)
        for variable in method.local_variables:
            if variable.name != "this":
                self.check_type(variable.descriptor, f"local variable {variable.name}", method, variable.start)
        decoded = list(instructions(method.code))
        for instruction in decoded:
            self.check_instruction(method, instruction)
        for offset, message in IntIntermediateFlow(self.cls, method, decoded).run():
            self.report(message, method, offset)

    def check_instruction(self, method: Method, ins: Instruction) -> None:
        op = ins.opcode
        if op in _LONG_OPS:
            self.report("long operation; long is not in the Java Card subset", method, ins.offset)
        elif op in _FLOAT_OPS or op in _DOUBLE_OPS:
            self.report("floating-point operation; float/double are not in the Java Card subset", method, ins.offset)
        elif op in _CONVERSIONS:
            self.report(f"{_CONVERSIONS[op]} conversion is not in the Java Card subset", method, ins.offset)
        elif op in _OTHER_FORBIDDEN:
            self.report(f"{_OTHER_FORBIDDEN[op]} is not in the Java Card subset", method, ins.offset)
        elif op in (0x12, 0x13):  # ldc, ldc_w
            self.check_constant(method, ins, ins.u1() if op == 0x12 else ins.u2())
        elif op == 0xBC and ins.u1() not in (4, 8, 9):  # newarray
            self.report(f"new {_NEWARRAY_TYPES.get(ins.u1(), '?')}[]: only boolean, byte and short arrays "
                        "(and object arrays) exist", method, ins.offset)
        elif op in (0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9):
            owner, name, descriptor = self.cls.member_ref(ins.u2())
            self.check_member(owner, name, descriptor, method, ins.offset)
        elif op in (0xBB, 0xBD, 0xC0, 0xC1):  # new, anewarray, checkcast, instanceof
            name = self.cls.class_name(ins.u2())
            if op == 0xBD and name.startswith("["):
                self.report(f"array of arrays ({name}); multi-dimensional arrays are not supported",
                            method, ins.offset)
            self.check_class_reference(name, method, ins.offset, "class reference")

    def check_constant(self, method: Method, ins: Instruction, index: int) -> None:
        tag, value = self.cls.constants[index][:2]
        if tag == STRING:
            text = self.cls.utf8(value)
            self.report(f"string constant {text[:40]!r}; strings do not exist on the card", method, ins.offset)
        elif tag == CLASS:
            self.report("class literal (X.class): no reflection on the card", method, ins.offset)
        elif tag in (FLOAT, LONG, DOUBLE):
            self.report("float/long/double constant", method, ins.offset)
        elif tag == INTEGER:
            number = int.from_bytes(value, "big", signed=True)
            if not -32768 <= number <= 32767:
                self.report(f"int constant {number} does not fit a short", method, ins.offset)

    def check_member(self, owner: str, name: str, descriptor: str, method: Method, offset: int) -> None:
        if (owner, name, descriptor) in API_3_0_5_ONLY:
            self.report(f"{owner.replace('/', '.')}.{name}{descriptor} exists only from Java Card 3.0.5; "
                        "the applet targets 3.0.4", method, offset)
        self.check_class_reference(owner, method, offset, f"use of {name}")
        self.check_type(descriptor, f"use of {owner.rpartition('/')[2]}.{name}", method, offset)


class IntIntermediateFlow:
    """Abstract interpretation of the operand stack, tracking which values are int
    intermediates: results of +, -, *, /, %, <<, >>> and negation that may exceed a short.
    The converter (no int support) requires those to be cast to short or byte before they are
    compared, switched on, used as array index or as array size. Values on the stack are
    'W' (wide int intermediate), 'S' (fits a short) or 'R' (reference)."""

    ARITHMETIC = {0x60: "+", 0x64: "-", 0x68: "*", 0x6C: "/", 0x70: "%", 0x78: "<<", 0x7C: ">>>"}

    def __init__(self, cls: ClassFile, method: Method, decoded: list[Instruction]):
        self.cls, self.method, self.decoded = cls, method, decoded
        self.problems: list[tuple[int, str]] = []

    def run(self) -> list[tuple[int, str]]:
        targets = self._branch_targets()
        pending: dict[int, list[list[str]]] = {}
        stack: list[str] | None = []
        for ins in self.decoded:
            if ins.offset in self.method.handler_starts:
                stack = ["R"]
            elif ins.offset in targets:
                incoming = pending.pop(ins.offset, []) + ([stack] if stack is not None else [])
                stack = self._merge(incoming)
            if stack is None:
                continue
            stack = self._step(ins, stack, pending)
        return self.problems

    def _branch_targets(self) -> set[int]:
        targets = set()
        for ins in self.decoded:
            for target in self._jumps(ins):
                targets.add(target)
        return targets

    @staticmethod
    def _jumps(ins: Instruction) -> list[int]:
        op = ins.opcode
        if 0x99 <= op <= 0xA8 or op in (0xC6, 0xC7):
            return [ins.offset + ins.s2()]
        if op == 0xC8:
            return [ins.offset + int.from_bytes(ins.operands[:4], "big", signed=True)]
        if op in (0xAA, 0xAB):
            pad = -(ins.offset + 1) % 4
            words = [int.from_bytes(ins.operands[i : i + 4], "big", signed=True)
                     for i in range(pad, len(ins.operands), 4)]
            if op == 0xAA:
                return [ins.offset + words[0]] + [ins.offset + w for w in words[3:]]
            return [ins.offset + words[0]] + [ins.offset + w for w in words[3::2]]
        return []

    @staticmethod
    def _merge(incoming: list[list[str]]) -> list[str] | None:
        if not incoming:
            return []  # reached only by a backward jump: javac leaves the stack empty there
        depth = len(incoming[0])
        if any(len(s) != depth for s in incoming):
            return None
        return ["W" if any(s[i] == "W" for s in incoming) else incoming[0][i] for i in range(depth)]

    def _require_narrow(self, value: str, offset: int, use: str) -> None:
        if value == "W":
            self.problems.append((offset, f"int intermediate value used as {use} without a (short) or (byte) "
                                          "cast: the converter refuses it (no int support)"))

    def _step(self, ins: Instruction, stack: list[str], pending) -> list[str] | None:
        op = ins.opcode

        def pop(count: int = 1) -> list[str]:
            if len(stack) < count:
                raise _Unknown
            taken = stack[len(stack) - count :]
            del stack[len(stack) - count :]
            return taken

        try:
            if op == 0x00 or op == 0x84:  # nop, iinc
                pass
            elif op == 0x01:
                stack.append("R")
            elif 0x02 <= op <= 0x08 or op in (0x10, 0x11, 0x12, 0x13):
                stack.append("R" if op in (0x12, 0x13) and self._is_reference_constant(ins) else "S")
            elif op == 0x15 or 0x1A <= op <= 0x1D:
                stack.append("S")
            elif op == 0x19 or 0x2A <= op <= 0x2D:
                stack.append("R")
            elif op in (0x33, 0x35, 0x2E):  # baload, saload, (iaload)
                _array, index = pop(2)
                self._require_narrow(index, ins.offset, "array index")
                stack.append("S")
            elif op == 0x32:  # aaload
                _array, index = pop(2)
                self._require_narrow(index, ins.offset, "array index")
                stack.append("R")
            elif op == 0x36 or 0x3B <= op <= 0x3E or op == 0x3A or 0x4B <= op <= 0x4E or op == 0x57:
                pop()
            elif op in (0x54, 0x56, 0x53, 0x4F):  # bastore, sastore, aastore, (iastore)
                _array, index, _value = pop(3)
                self._require_narrow(index, ins.offset, "array index")
            elif op == 0x58:
                pop(2)
            elif op == 0x59:
                stack.append(stack[-1])
            elif op == 0x5A:
                a, b = pop(2)
                stack.extend([b, a, b])
            elif op == 0x5B:
                a, b, c = pop(3)
                stack.extend([c, a, b, c])
            elif op == 0x5C:
                stack.extend(stack[-2:])
            elif op == 0x5D:
                a, b, c = pop(3)
                stack.extend([b, c, a, b, c])
            elif op == 0x5E:
                a, b, c, d = pop(4)
                stack.extend([c, d, a, b, c, d])
            elif op == 0x5F:
                a, b = pop(2)
                stack.extend([b, a])
            elif op in self.ARITHMETIC:
                pop(2)
                stack.append("W")
            elif op == 0x74:  # ineg
                pop()
                stack.append("W")
            elif op in (0x7A, 0x7E, 0x80, 0x82):  # ishr, iand, ior, ixor: stay within short for short inputs
                a, b = pop(2)
                stack.append("W" if "W" in (a, b) else "S")
            elif op in (0x91, 0x92, 0x93):  # i2b, i2c, i2s
                pop()
                stack.append("S")
            elif 0x99 <= op <= 0x9E:
                self._require_narrow(pop()[0], ins.offset, "comparison operand")
                pending.setdefault(ins.offset + ins.s2(), []).append(list(stack))
            elif 0x9F <= op <= 0xA4:
                for value in pop(2):
                    self._require_narrow(value, ins.offset, "comparison operand")
                pending.setdefault(ins.offset + ins.s2(), []).append(list(stack))
            elif op in (0xA5, 0xA6, 0xC6, 0xC7):
                pop(2 if op in (0xA5, 0xA6) else 1)
                pending.setdefault(ins.offset + ins.s2(), []).append(list(stack))
            elif op in (0xA7, 0xC8):  # goto
                for target in self._jumps(ins):
                    pending.setdefault(target, []).append(list(stack))
                return None
            elif op in (0xAA, 0xAB):
                self._require_narrow(pop()[0], ins.offset, "switch value")
                for target in self._jumps(ins):
                    pending.setdefault(target, []).append(list(stack))
                return None
            elif 0xAC <= op <= 0xB1 or op == 0xBF:  # returns, athrow
                return None
            elif op in (0xB2, 0xB3, 0xB4, 0xB5):
                _owner, _name, descriptor = self.cls.member_ref(ins.u2())
                pop({0xB2: 0, 0xB3: 1, 0xB4: 1, 0xB5: 2}[op])
                if op in (0xB2, 0xB4):
                    stack.append("R" if descriptor[0] in "L[" else "S")
            elif op in (0xB6, 0xB7, 0xB8, 0xB9):
                _owner, _name, descriptor = self.cls.member_ref(ins.u2())
                params, returns = parameter_and_return_types(descriptor)
                pop(len(params) + (0 if op == 0xB8 else 1))
                if returns != "V":
                    stack.append("R" if returns[0] in "L[" else "S")
            elif op == 0xBB:
                stack.append("R")
            elif op in (0xBC, 0xBD):
                self._require_narrow(pop()[0], ins.offset, "array size")
                stack.append("R")
            elif op == 0xBE:
                pop()
                stack.append("S")
            elif op == 0xC0:
                pop()
                stack.append("R")
            elif op == 0xC1:
                pop()
                stack.append("S")
            else:
                return None  # outside the subset (reported elsewhere) or rare: stop tracking this block
        except _Unknown:
            return None
        return stack

    def _is_reference_constant(self, ins: Instruction) -> bool:
        index = ins.u1() if ins.opcode == 0x12 else ins.u2()
        return self.cls.constants[index][0] in (STRING, CLASS)


class _Unknown(Exception):
    pass
