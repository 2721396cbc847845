"""The Java Card subset checker, fed real class files compiled from bad (and good) Java."""

import textwrap

import pytest

from cardshield.build.classfile import parse_class
from cardshield.build.javac import compile_tree
from cardshield.build.jcsubset import SubsetChecker
from cardshield.setup import maven

SNIPPETS: dict[str, str] = {}  # class name -> body; all compiled by ONE javac run (JVM start-up is slow)


def snippet(body: str) -> str:
    name = f"Bad{len(SNIPPETS)}"
    SNIPPETS[name] = textwrap.dedent(body)
    return name


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    root = tmp_path_factory.mktemp("jcsubset")
    for name, body in SNIPPETS.items():
        source = root / "src" / "bad" / f"{name}.java"
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text(f"package bad;\npublic class {name} {{\n{body}\n}}\n")
    classes = root / "classes"
    compile_tree(root / "src", classes, classpath=maven.classpath(maven.JCARDSIM), release="7",
                 extra=["-g", "-Xlint:-options", "-nowarn"])
    return classes


def check(classes, name: str):
    """Check class bad.<name> (javac --release 7 -g, like the applet)."""
    return SubsetChecker(parse_class(classes / "bad" / f"{name}.class"), "bad").check()


def messages(violations):
    return "\n".join(str(v) for v in violations)


CASES = [
    ("long counter;\nvoid add() { counter = counter + 1; }", "long operation"),
    ("long counter;", "field counter: long type"),
    ("void f() { float a = 1.5f; a = a * 2; }", "floating-point operation"),
    ("double g(short a) { return a / 3.0; }", "return type: double type"),
    ("int value;", "field value: int type (I) is not in the Java Card subset without int support"),
    ("void f(int x) { }", "parameter 1: int type"),
    ("int f() { return 1; }", "return type: int type"),
    ("void f(short a) { int local = a; local++; }", "local variable local: int type"),
    ("short[] s; int[] ints = new int[3];", "new int[]"),
    ("void f() { char c = 'x'; c++; }", "local variable c: char type"),
    ("byte[] f() { return \"PIN\".getBytes(); }", "string constant 'PIN'"),
    ("Object f(short a) { return \"n=\" + a; }", "java.lang.StringBuilder"),
    ("synchronized void f() { }", "synchronized method"),
    ("void f(Object o) { synchronized (o) { o.hashCode(); } }", "monitorenter"),
    ("byte[][] table = new byte[2][3];", "multi-dimensional array"),
    ("Object f() { return String.class; }", "class literal"),
    ("java.util.Vector v;", "refers to java.util.Vector"),
    ("byte f(byte[] b, short o) { return b[o + 1]; }", "int intermediate value used as array index"),
    ("boolean f(short a, short b) { return a + b > 10; }", "int intermediate value used as comparison operand"),
    ("void f(short a) { switch (a * 2) { case 1: return; default: } }", "used as switch value"),
    ("Object f(short n) { return new byte[n + 1]; }", "used as array size"),
    ("short f() { return (short) 100000; }", None),  # javac folds the constant cast: legal
    ("void f(javacard.security.RandomData r, byte[] b) { r.nextBytes(b, (short) 0, (short) 8); }",
     "nextBytes([BSS)S exists only from Java Card 3.0.5"),
    ("boolean f(javacard.security.Signature s, byte[] b) {\n"
     "  return s.verifyPreComputedHash(b, (short) 0, (short) 32, b, (short) 0, (short) 64); }",
     "verifyPreComputedHash"),
    ("javacardx.crypto.AEADCipher cipher;", "javacardx.crypto.AEADCipher exists only from Java Card 3.0.5"),
]
NAMED_CASES = [(snippet(body), expected) for body, expected in CASES]
LINE_CASE = snippet("byte f(byte[] b, short o) {\n return b[o + 1];\n}")
TOO_MANY_METHODS = snippet("\n".join(f"public void m{i}() {{ }}" for i in range(130)))
IDIOMATIC = snippet("""
    private final byte[] buffer = new byte[16];
    private short count;
    private static final short LIMIT = (short) 0x7FFF;

    short sum(byte[] data, short offset, short length) {
        short total = 0;
        for (short i = 0; i < length; i++) {
            total = (short) (total + (data[(short) (offset + i)] & 0xFF));
        }
        if ((short) (total + count) > LIMIT || (data[offset] & 0x80) != 0) {
            javacard.framework.ISOException.throwIt(javacard.framework.ISO7816.SW_WRONG_DATA);
        }
        switch (data[offset]) {
            case 1: count++; break;
            default: count = (short) (count << 1);
        }
        buffer[(short) (count & 0x0F)] = (byte) (total >> 8);
        return javacard.framework.Util.getShort(buffer, (short) 0);
    }
""")


@pytest.mark.parametrize("name, expected", NAMED_CASES)
def test_violation_is_reported_with_class_method_and_place(compiled, name, expected):
    found = messages(check(compiled, name))
    if expected is None:
        assert found == ""
    else:
        assert expected in found, found
        assert found.startswith(f"bad.{name}")


def test_violation_names_method_offset_and_source_line(compiled):
    [violation] = [v for v in check(compiled, LINE_CASE) if "array index" in v.message]
    assert violation.method == "f([BS)B" and violation.offset is not None
    assert violation.source == f"{LINE_CASE}.java:4"


def test_idiomatic_java_card_code_passes(compiled):
    assert check(compiled, IDIOMATIC) == []


def test_too_many_methods_hit_the_cap_format_limit(compiled):
    assert "130 public/protected virtual methods; the CAP format allows at most 128" in messages(
        check(compiled, TOO_MANY_METHODS))
