"""A minimal reader of Java class files (JVM spec, chapter 4): what the Java Card subset
checker needs - constant pool, fields, methods, Code, LocalVariableTable - and an
instruction decoder."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator


class ClassFormatError(ValueError):
    pass


# Constant pool tags (JVM spec 4.4)
UTF8, INTEGER, FLOAT, LONG, DOUBLE, CLASS, STRING = 1, 3, 4, 5, 6, 7, 8
FIELDREF, METHODREF, INTERFACE_METHODREF, NAME_AND_TYPE = 9, 10, 11, 12
METHOD_HANDLE, METHOD_TYPE, DYNAMIC, INVOKE_DYNAMIC, MODULE, PACKAGE = 15, 16, 17, 18, 19, 20

ACC_STATIC = 0x0008
ACC_SYNCHRONIZED = 0x0020
ACC_PUBLIC = 0x0001
ACC_PRIVATE = 0x0002
ACC_PROTECTED = 0x0004


@dataclass
class LocalVariable:
    start: int
    length: int
    name: str
    descriptor: str
    index: int


@dataclass
class Method:
    access: int
    name: str
    descriptor: str
    max_stack: int = 0
    max_locals: int = 0
    code: bytes = b""
    local_variables: list[LocalVariable] = field(default_factory=list)
    line_numbers: list[tuple[int, int]] = field(default_factory=list)  # (start pc, source line)
    handler_starts: set[int] = field(default_factory=set)

    def line_at(self, offset: int) -> int | None:
        line = None
        for start, number in sorted(self.line_numbers):
            if start > offset:
                break
            line = number
        return line


@dataclass
class Field:
    access: int
    name: str
    descriptor: str
    constant_value_index: int | None = None


@dataclass
class ClassFile:
    path: Path
    major: int
    access: int
    name: str
    super_name: str | None
    interfaces: list[str]
    constants: list  # index -> (tag, value...)
    fields: list[Field]
    methods: list[Method]
    source_file: str | None = None

    def utf8(self, index: int) -> str:
        tag, value = self.constants[index][:2]
        if tag != UTF8:
            raise ClassFormatError(f"constant #{index} is not UTF8")
        return value

    def class_name(self, index: int) -> str:
        return self.utf8(self.constants[index][1])

    def member_ref(self, index: int) -> tuple[str, str, str]:
        """(owner class, name, descriptor) of a Fieldref/Methodref/InterfaceMethodref."""
        _tag, class_index, nat_index = self.constants[index]
        _nat, name_index, descriptor_index = self.constants[nat_index]
        return self.class_name(class_index), self.utf8(name_index), self.utf8(descriptor_index)


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, fmt: str):
        values = struct.unpack_from(">" + fmt, self.data, self.pos)
        self.pos += struct.calcsize(">" + fmt)
        return values if len(values) > 1 else values[0]

    def raw(self, length: int) -> bytes:
        chunk = self.data[self.pos : self.pos + length]
        if len(chunk) != length:
            raise ClassFormatError("truncated class file")
        self.pos += length
        return chunk


def parse_class(path: Path) -> ClassFile:
    try:
        return _parse(path, path.read_bytes())
    except (struct.error, IndexError, UnicodeDecodeError) as error:
        raise ClassFormatError(f"{path}: malformed class file ({error})") from None


def _parse(path: Path, data: bytes) -> ClassFile:
    reader = _Reader(data)
    if reader.take("I") != 0xCAFEBABE:
        raise ClassFormatError(f"{path}: not a class file")
    _minor, major = reader.take("HH")
    count = reader.take("H")
    constants: list = [None] * count
    i = 1
    while i < count:
        tag = reader.take("B")
        if tag == UTF8:
            constants[i] = (UTF8, reader.raw(reader.take("H")).decode("utf-8", "surrogatepass"))
        elif tag in (INTEGER, FLOAT):
            constants[i] = (tag, reader.raw(4))
        elif tag in (LONG, DOUBLE):
            constants[i] = (tag, reader.raw(8))
            i += 1  # takes two slots (JVM spec 4.4.5)
        elif tag in (CLASS, STRING, METHOD_TYPE, MODULE, PACKAGE):
            constants[i] = (tag, reader.take("H"))
        elif tag in (FIELDREF, METHODREF, INTERFACE_METHODREF, NAME_AND_TYPE, DYNAMIC, INVOKE_DYNAMIC):
            constants[i] = (tag, *reader.take("HH"))
        elif tag == METHOD_HANDLE:
            constants[i] = (tag, *reader.take("BH"))
        else:
            raise ClassFormatError(f"{path}: unknown constant tag {tag}")
        i += 1
    partial = ClassFile(path, major, 0, "", None, [], constants, [], [])
    access, this_index, super_index = reader.take("HHH")
    partial.access = access
    partial.name = partial.class_name(this_index)
    partial.super_name = partial.class_name(super_index) if super_index else None
    partial.interfaces = [partial.class_name(reader.take("H")) for _ in range(reader.take("H"))]
    for _ in range(reader.take("H")):
        f_access, name, descriptor = reader.take("HHH")
        member = Field(f_access, partial.utf8(name), partial.utf8(descriptor))
        for attribute_name, body in _attributes(reader, partial):
            if attribute_name == "ConstantValue":
                member.constant_value_index = struct.unpack(">H", body)[0]
        partial.fields.append(member)
    for _ in range(reader.take("H")):
        m_access, name, descriptor = reader.take("HHH")
        method = Method(m_access, partial.utf8(name), partial.utf8(descriptor))
        for attribute_name, body in _attributes(reader, partial):
            if attribute_name == "Code":
                _parse_code(method, body, partial)
        partial.methods.append(method)
    for attribute_name, body in _attributes(reader, partial):
        if attribute_name == "SourceFile":
            partial.source_file = partial.utf8(struct.unpack(">H", body)[0])
    return partial


def _attributes(reader: _Reader, cls: ClassFile) -> Iterator[tuple[str, bytes]]:
    for _ in range(reader.take("H")):
        name_index, length = reader.take("HI")
        yield cls.utf8(name_index), reader.raw(length)


def _parse_code(method: Method, body: bytes, cls: ClassFile) -> None:
    reader = _Reader(body)
    method.max_stack, method.max_locals, code_length = reader.take("HHI")
    method.code = reader.raw(code_length)
    for _ in range(reader.take("H")):  # exception table: start, end, handler, type
        method.handler_starts.add(reader.take("HHHH")[2])
    for name, attribute in _attributes(reader, cls):
        if name == "LocalVariableTable":
            table = _Reader(attribute)
            for _ in range(table.take("H")):
                start, length, name_index, descriptor_index, index = table.take("HHHHH")
                method.local_variables.append(
                    LocalVariable(start, length, cls.utf8(name_index), cls.utf8(descriptor_index), index)
                )
        elif name == "LineNumberTable":
            table = _Reader(attribute)
            method.line_numbers = [table.take("HH") for _ in range(table.take("H"))]


# Operand bytes after the opcode for fixed-length instructions (JVM spec 6.5).
_OPERANDS = {0x10: 1, 0x11: 2, 0x12: 1, 0x13: 2, 0x14: 2, 0x15: 1, 0x16: 1, 0x17: 1, 0x18: 1, 0x19: 1,
             0x36: 1, 0x37: 1, 0x38: 1, 0x39: 1, 0x3A: 1, 0x84: 2, 0xA9: 1, 0xBC: 1, 0xBD: 2, 0xC0: 2,
             0xC1: 2, 0xB2: 2, 0xB3: 2, 0xB4: 2, 0xB5: 2, 0xB6: 2, 0xB7: 2, 0xB8: 2, 0xB9: 4, 0xBA: 4,
             0xBB: 2, 0xC5: 3, 0xC6: 2, 0xC7: 2, 0xC8: 4, 0xC9: 4, **{op: 2 for op in range(0x99, 0xA9)}}


@dataclass(frozen=True)
class Instruction:
    offset: int
    opcode: int
    operands: bytes

    def u1(self) -> int:
        return self.operands[0]

    def u2(self) -> int:
        return int.from_bytes(self.operands[:2], "big")

    def s2(self) -> int:
        return int.from_bytes(self.operands[:2], "big", signed=True)


def instructions(code: bytes) -> Iterator[Instruction]:
    pc = 0
    while pc < len(code):
        opcode = code[pc]
        if opcode == 0xC4:  # wide
            length = 6 if code[pc + 1] == 0x84 else 4
        elif opcode in (0xAA, 0xAB):  # tableswitch, lookupswitch: 0-3 pad bytes to a 4-byte boundary
            base = pc + 1 + (-(pc + 1) % 4)
            if opcode == 0xAA:
                low, high = struct.unpack_from(">ii", code, base + 4)
                length = base + 12 + 4 * (high - low + 1) - pc
            else:
                pairs = struct.unpack_from(">i", code, base + 4)[0]
                length = base + 8 + 8 * pairs - pc
        else:
            length = 1 + _OPERANDS.get(opcode, 0)
        yield Instruction(pc, opcode, code[pc + 1 : pc + length])
        pc += length


def parameter_and_return_types(descriptor: str) -> tuple[list[str], str]:
    """Split a method descriptor '(IS[B)V' into (['I', 'S', '[B'], 'V')."""
    params, i = [], 1
    while descriptor[i] != ")":
        start = i
        while descriptor[i] == "[":
            i += 1
        i = descriptor.index(";", i) + 1 if descriptor[i] == "L" else i + 1
        params.append(descriptor[start:i])
    return params, descriptor[i + 1 :]


def classes_in_descriptor(descriptor: str) -> list[str]:
    names, i = [], 0
    while i < len(descriptor):
        if descriptor[i] == "L":
            end = descriptor.index(";", i)
            names.append(descriptor[i + 1 : end])
            i = end
        i += 1
    return names
