"""What the ESP32 port's `machine`, `esp32` and `bluetooth` accept, read from its C sources.

The vendored MicroPython tree (../shared/vendor/micropython-*.tar.gz, or
$INSOLE_VENDOR_DIR) is read at test time, straight from the tarball: nothing of it
is copied into the project. For every Python-visible class, method and function this
module derives the arguments the device accepts:

- a function defined with MP_DEFINE_CONST_FUN_OBJ_0..3 / _VAR / _VAR_BETWEEN takes no
  keyword at all, and the positional counts the macro gives;
- one defined with MP_DEFINE_CONST_FUN_OBJ_KW takes the names of the `allowed_args`
  table that its C function (or a helper it calls) passes to mp_arg_parse_all*:
  MP_ARG_KW_ONLY entries only by keyword, the others also by position;
- a constructor (a type's make_new) likewise, after the leading object it takes by
  position (a pin, a bus or timer id) unless it parses all its arguments with
  mp_arg_parse_all_kw_array, capped by its mp_arg_check_num;
- BLE.config, a qstr switch rather than a table: the `case MP_QSTR_...` keys of its
  set and get branches.

The sources are preprocessed for the ESP32-S3 build (ports/esp32/mpconfigport.h, the
ESP32_GENERIC_S3 board, py/mpconfig.h and extmod/modbluetooth.h defaults, and a few
ESP-IDF target facts): an `#if` the test can decide drops its dead branch (e.g.
`config(rxbuf=)`, absent with the port's synchronous BLE events); one it cannot (an
ESP-IDF sdkconfig value, say) keeps every branch, the more permissive reading.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import re
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

from conftest import IN_CI, REPO_ROOT

VENDOR_DIR_ENV = "INSOLE_VENDOR_DIR"

# Read in this order: each file's #defines are known to the files after it.
CONFIG_HEADERS = (
    "ports/esp32/boards/ESP32_GENERIC_S3/mpconfigboard.h",
    "ports/esp32/mpconfigport.h",
    "py/mpconfig.h",
    "extmod/modbluetooth.h",
    "ports/esp32/uart.h",
)
SOURCE_PATTERNS = (
    re.compile(r"ports/esp32/[^/]+\.[ch]$"),
    re.compile(r"extmod/machine_[^/]+\.c$"),
    re.compile(r"extmod/mod(machine|bluetooth)\.c$"),
)
# ESP-IDF facts of the ESP32-S3 build that the sources test; other CONFIG_/SOC_ values
# stay unknown. (The generic S3 build enables PSRAM support, boards/sdkconfig.spiram_quad,
# and boots without it on a module that has none.)
TARGET_FACTS = {
    "CONFIG_IDF_TARGET_ESP32S3": 1,
    "CONFIG_IDF_TARGET_ARCH_XTENSA": 1,
    "CONFIG_IDF_TARGET_ARCH_RISCV": 0,
    "CONFIG_SPIRAM": 1,
    "SOC_USB_OTG_SUPPORTED": 1,
    "SOC_USB_SERIAL_JTAG_SUPPORTED": 1,
    "SOC_USB_OTG_PERIPH_NUM": 1,
    **{f"CONFIG_IDF_TARGET_{t}": 0 for t in ("ESP32", "ESP32S2", "ESP32C2", "ESP32C3", "ESP32C5", "ESP32C6",
                                              "ESP32H2", "ESP32P4")},
}
# Python names of the device modules' tables (module -> its globals table in C).
MODULE_TABLES = {
    "machine": "machine_module_globals_table",
    "esp32": "esp32_module_globals_table",
    "bluetooth": "mp_module_bluetooth_globals_table",
}


def vendor_tarball() -> Path:
    """The vendored MicroPython source; skip with a message outside CI when missing, fail in CI."""
    vendor_dir = Path(os.environ.get(VENDOR_DIR_ENV, REPO_ROOT.parent / "shared" / "vendor"))
    found = sorted(vendor_dir.glob("micropython-*.tar.gz"))
    if not found:
        message = (f"no micropython-*.tar.gz in {vendor_dir}: the ESP32 port's C sources are needed to "
                   f"check the device API (put the vendored tree there or set {VENDOR_DIR_ENV})")
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return found[-1]


# --------------------------------------------------------------------------- the C side


class Unknown(Exception):
    """An #if expression depends on a value the test does not know."""


# The keywords of a keyword function whose C code decides by itself (BLE.config's qstr
# switch, a protocol's init): not derivable from a table.
ANY_KEYWORD = frozenset({"*"})


@dataclass(frozen=True)
class Signature:
    """What one callable accepts. Positional counts exclude `self`; max_pos None: no limit."""

    where: str  # C function (and file) the rule comes from
    keywords: frozenset[str] = frozenset()
    min_pos: int = 0
    max_pos: int | None = 0
    required: frozenset[str] = frozenset()
    positional_names: tuple[str, ...] = ()  # allowed_args entries that may come by position
    leading: int = 0  # positional arguments taken before those (a constructor's pin or id)

    def problems(self, n_pos: int | None, keywords: Iterable[str]) -> list[str]:
        """Why a call with n_pos positional arguments (None: unknown) and these keywords fails."""
        given = set(keywords)
        if self.keywords == ANY_KEYWORD:
            return [f"keywords {sorted(given)}: what this function accepts is decided in its C code, "
                    "not by a table; check by hand"] if given else []
        found = [f"keyword {k!r} is not accepted" for k in sorted(given - self.keywords)]
        if n_pos is not None:
            if self.max_pos is not None and n_pos > self.max_pos:
                found.append(f"{n_pos} positional arguments, at most {self.max_pos}")
            if n_pos < self.min_pos:
                found.append(f"{n_pos} positional arguments, at least {self.min_pos}")
            by_position = set(self.positional_names[: max(0, n_pos - self.leading)])
            twice = sorted(given & by_position)
            if twice:
                found.append(f"{twice} given by position and by keyword")
            missing = self.required - given - by_position
            if missing:
                found.append(f"required argument(s) {sorted(missing)} not given")
        return found


@dataclass
class DeviceClass:
    name: str
    constructor: Signature
    methods: dict[str, Signature] = field(default_factory=dict)
    constants: set[str] = field(default_factory=set)


@dataclass
class DeviceModule:
    name: str
    functions: dict[str, Signature] = field(default_factory=dict)
    classes: dict[str, DeviceClass] = field(default_factory=dict)
    constants: set[str] = field(default_factory=set)


@dataclass
class DeviceApi:
    modules: dict[str, DeviceModule]
    config_set_keys: frozenset[str]  # bluetooth.BLE.config(key=...)
    config_get_keys: frozenset[str]  # bluetooth.BLE.config("key")

    def cls(self, dotted: str) -> DeviceClass:
        module, _, name = dotted.partition(".")
        return self.modules[module].classes[name]


def _strip_comments(text: str) -> str:
    # Comments become spaces (newlines kept); string and char literals are kept.
    out = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "/" and text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append("".join("\n" if ch == "\n" else " " for ch in text[i:end]))
            i = end
        elif c == "/" and text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            out.append(" " * (end - i))
            i = end
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _blank_literals(text: str) -> str:
    # String and char literals' contents become spaces: brackets inside them (format
    # strings) must not count when matching brackets.
    def blank(m: re.Match[str]) -> str:
        return m.group(0)[0] + " " * (len(m.group(0)) - 2) + m.group(0)[-1]

    return re.sub(r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', blank, text)


_TOKEN = re.compile(r"\s*(?:(\d+)[uUlL]*|(\w+)|(&&|\|\||==|!=|<=|>=|<<|>>|[()!<>+\-*/,]))")


class _Conditions:
    """Three-valued evaluation of #if expressions: True, False, or Unknown raised."""

    def __init__(self, macros: dict[str, str]) -> None:
        self.macros = macros
        self._evaluating: set[str] = set()

    def defined(self, name: str) -> bool:
        if name in self.macros or name in TARGET_FACTS:
            return True
        if name.startswith("MICROPY_") or name.startswith("MP_"):
            return False  # every MicroPython option is defined by the headers read
        raise Unknown(name)

    def value(self, name: str) -> int:
        if name in TARGET_FACTS:
            return TARGET_FACTS[name]
        if name in self.macros:
            if name in self._evaluating:
                raise Unknown(name)
            self._evaluating.add(name)
            try:
                return self.evaluate(self.macros[name] or "1")
            finally:
                self._evaluating.discard(name)
        if name.startswith("MICROPY_") or name.startswith("MP_"):
            return 0
        raise Unknown(name)

    def evaluate(self, expr: str) -> int:
        tokens = []
        pos = 0
        expr = expr.strip()
        while pos < len(expr):
            m = _TOKEN.match(expr, pos)
            if not m or m.end() == pos:
                raise Unknown(expr)
            tokens.append(m.group(1) or m.group(2) or m.group(3))
            pos = m.end()
        parser = _ExprParser(tokens, self)
        result = parser.parse_or()
        if parser.i != len(tokens):
            raise Unknown(expr)
        return result


class _ExprParser:
    # C precedence for what #if lines use; an Unknown operand is absorbed by && with a
    # false side and || with a true side, as the compiler would.
    def __init__(self, tokens: list[str], conditions: _Conditions) -> None:
        self.tokens = tokens
        self.i = 0
        self.conditions = conditions

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise Unknown("unexpected end")
        self.i += 1
        return token

    def _side(self, parse: str) -> int | None:
        try:
            return int(getattr(self, parse)())
        except Unknown:
            self._skip_operand()
            return None

    def _skip_operand(self) -> None:
        # After an Unknown, move to the next && / || / ) at this depth.
        depth = 0
        while self.peek() is not None:
            token = self.peek()
            if token == "(":
                depth += 1
            elif token == ")":
                if depth == 0:
                    return
                depth -= 1
            elif token in ("&&", "||") and depth == 0:
                return
            self.i += 1

    def parse_or(self) -> int:
        left = self._side("parse_and")
        while self.peek() == "||":
            self.take()
            right = self._side("parse_and")
            if left or right:
                left = 1
            elif left is None or right is None:
                left = None
            else:
                left = 0
        if left is None:
            raise Unknown("||")
        return left

    def parse_and(self) -> int:
        left = self._side("parse_compare")
        while self.peek() == "&&":
            self.take()
            right = self._side("parse_compare")
            if left == 0 or right == 0:
                left = 0
            elif left is None or right is None:
                left = None
            else:
                left = 1
        if left is None:
            raise Unknown("&&")
        return left

    def parse_compare(self) -> int:
        left = self.parse_sum()
        ops = {"==": int.__eq__, "!=": int.__ne__, "<": int.__lt__, ">": int.__gt__, "<=": int.__le__,
               ">=": int.__ge__}
        while self.peek() in ops:
            op = ops[self.take()]
            left = int(op(left, self.parse_sum()))
        return left

    def parse_sum(self) -> int:
        left = self.parse_unary()
        while self.peek() in ("+", "-", "*", "/", "<<", ">>"):
            op = self.take()
            right = self.parse_unary()
            if op == "+":
                left += right
            elif op == "-":
                left -= right
            elif op == "*":
                left *= right
            elif op == "/":
                left = left // right if right else 0
            elif op == "<<":
                left <<= right
            else:
                left >>= right
        return left

    def parse_unary(self) -> int:
        token = self.take()
        if token == "!":
            return int(not self.parse_unary())
        if token == "-":
            return -self.parse_unary()
        if token == "(":
            value = self.parse_or()
            if self.take() != ")":
                raise Unknown("(")
            return value
        if token.isdigit():
            return int(token)
        if token == "defined":
            paren = self.peek() == "("
            if paren:
                self.take()
            name = self.take()
            if paren and self.take() != ")":
                raise Unknown("defined")
            return int(self.conditions.defined(name))
        if self.peek() == "(":  # a function-like macro (ESP_IDF_VERSION_VAL, ...)
            raise Unknown(token)
        return self.conditions.value(token)


def _preprocess(text: str, macros: dict[str, str]) -> str:
    """Blanks the lines of branches that are false for the ESP32-S3; collects #defines."""
    conditions = _Conditions(macros)
    lines = text.split("\n")
    out: list[str] = []
    # Per open #if: (enclosing region active, a branch known taken, a branch possibly taken)
    stack: list[tuple[bool, bool, bool]] = []
    active = True
    i = 0
    while i < len(lines):
        line = lines[i]
        logical = line
        consumed = 1
        while logical.endswith("\\") and i + consumed < len(lines):
            logical = logical[:-1] + " " + lines[i + consumed]
            consumed += 1
        m = re.match(r"\s*#\s*(\w+)\s*(.*)", logical)
        directive = m.group(1) if m else ""
        rest = m.group(2).strip() if m else ""
        value: bool | None
        if directive in ("if", "ifdef", "ifndef"):
            if directive == "if":
                expr = rest
            elif directive == "ifdef":
                expr = f"defined({rest.split()[0]})"
            else:
                expr = f"!defined({rest.split()[0]})"
            value = _decide(conditions, expr) if active else False
            stack.append((active, value is True, value is not False))
            active = active and value is not False
        elif directive == "elif" and stack:
            outer, taken, maybe = stack[-1]
            value = False if taken or not outer else _decide(conditions, rest)
            stack[-1] = (outer, taken or value is True, maybe or value is not False)
            active = outer and value is not False
        elif directive == "else" and stack:
            outer, taken, maybe = stack[-1]
            value = False if taken else None if maybe else True
            stack[-1] = (outer, True, True)
            active = outer and value is not False
        elif directive == "endif" and stack:
            active = stack.pop()[0]
        elif directive == "define" and active:
            d = re.match(r"(\w+)(\([^)]*\))?\s*(.*)", rest)
            if d and not d.group(2):
                macros[d.group(1)] = d.group(3).strip()
        elif directive == "undef" and active:
            macros.pop(rest.split()[0], None)
        keep = active and not directive
        for k in range(consumed):
            out.append(lines[i + k] if keep else "")
        i += consumed
    return "\n".join(out)


def _decide(conditions: _Conditions, expr: str) -> bool | None:
    try:
        return bool(conditions.evaluate(expr))
    except (Unknown, ZeroDivisionError):
        return None


def _matching(text: str, start: int, open_: str, close: str) -> int:
    """Index just after the bracket that closes the one at text[start]."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == open_:
            depth += 1
        elif text[i] == close:
            depth -= 1
            if depth == 0:
                return i + 1
    raise ValueError(f"unbalanced {open_} at {start}")


def _split_args(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for c in text:
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if c == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(c)
    if "".join(current).strip():
        parts.append("".join(current).strip())
    return parts


@dataclass
class _CSources:
    functions: dict[str, list[tuple[str, str]]]  # name -> [(file, body)]
    tables: dict[str, list[tuple[str, list[tuple[str, str]]]]]  # allowed_args name -> [(file, [(name, flags)])]
    fun_objs: dict[str, tuple[str, list[str], str]]  # obj -> (macro kind, args, file)
    dict_tables: dict[str, list[tuple[str, str, str]]]  # table -> [(name, kind, target)]
    dicts: dict[str, str]  # dict symbol -> table symbol
    types: dict[str, dict[str, str]]  # type symbol -> {"name":..., slot: value}
    macros: dict[str, str]


_FUNCTION_DEF = re.compile(r"^[A-Za-z_][\w \t\*]*?\b(\w+)\s*\(([^;{}]*)\)\s*\{", re.MULTILINE)
_TABLE_DEF = re.compile(r"(?:static\s+)?(?:const\s+)?mp_arg_t\s+(\w+)\s*\[\s*\]\s*=\s*\{")
_TABLE_ENTRY = re.compile(r"\{\s*MP_QSTR_(\w+)\s*,\s*([^,{}]+?)\s*,\s*\{")
_FUN_OBJ = re.compile(r"MP_DEFINE_CONST_FUN_OBJ_(0|1|2|3|VAR_BETWEEN|VAR|KW)\s*\(")
_DICT_TABLE = re.compile(r"mp_rom_map_elem_t\s+(\w+)\s*\[\s*\]\s*=\s*\{")
_DICT_ENTRY = re.compile(r"\{\s*MP_ROM_QSTR\s*\(\s*MP_QSTR_(\w+)\s*\)\s*,\s*MP_ROM_(\w+)\s*\(\s*&?\s*(\w*)")
_DICT_DEF = re.compile(r"MP_DEFINE_CONST_DICT\s*\(\s*(\w+)\s*,\s*(\w+)\s*\)")
_TYPE_DEF = re.compile(r"MP_DEFINE_CONST_OBJ_TYPE\s*\(")


def _expand(text: str, macros: dict[str, str], rounds: int = 4) -> str:
    # Object-like macros inside a table body (class constants, extra globals).
    for _ in range(rounds):
        expanded = re.sub(r"\b([A-Z][A-Z0-9_]{3,})\b(?!\s*\()",
                          lambda m: macros[m.group(1)] if m.group(1) in macros and "{" in macros[m.group(1)]
                          else m.group(0), text)
        if expanded == text:
            break
        text = expanded
    return text


def _parse_sources(files: dict[str, str]) -> _CSources:
    macros: dict[str, str] = {}
    for path in CONFIG_HEADERS:
        if path in files:
            _preprocess(_strip_comments(files[path]), macros)
    texts: dict[str, str] = {}

    def preprocess(path: str) -> None:
        if path in texts:
            return
        texts[path] = ""
        text = _strip_comments(files[path])
        # A port file that an extmod file #includes (MICROPY_PY_MACHINE_*_INCLUDEFILE)
        # defines macros the includer uses: read it first.
        for name in re.findall(r"#\s*include\s+(\w+)", text):
            included = macros.get(name, "").strip('"')
            if included in files:
                preprocess(included)
        texts[path] = _blank_literals(_preprocess(text, macros))

    # Headers before C files, so that a .c file sees its port's macros.
    for path in sorted(files, key=lambda p: (not p.endswith(".h"), p)):
        if any(p.search(path) for p in SOURCE_PATTERNS):
            preprocess(path)
    src = _CSources({}, {}, {}, {}, {}, {}, macros)
    raw_tables: dict[str, str] = {}
    for path, text in texts.items():
        for m in _FUNCTION_DEF.finditer(text):
            if m.group(1) in ("if", "for", "while", "switch", "return"):
                continue
            brace = m.end() - 1
            body = text[brace : _matching(text, brace, "{", "}")]
            src.functions.setdefault(m.group(1), []).append((path, body))
        for m in _TABLE_DEF.finditer(text):
            brace = m.end() - 1
            body = text[brace : _matching(text, brace, "{", "}")]
            entries = [(e.group(1), e.group(2)) for e in _TABLE_ENTRY.finditer(body)]
            src.tables.setdefault(m.group(1), []).append((path, entries))
        for m in _FUN_OBJ.finditer(text):
            paren = m.end() - 1
            args = _split_args(text[paren + 1 : _matching(text, paren, "(", ")") - 1])
            src.fun_objs[args[0]] = (m.group(1), args[1:], path)
        for m in _DICT_TABLE.finditer(text):
            brace = m.end() - 1
            raw_tables[m.group(1)] = text[brace : _matching(text, brace, "{", "}")]
        for m in _DICT_DEF.finditer(text):
            src.dicts[m.group(1)] = m.group(2)
        for m in _TYPE_DEF.finditer(text):
            paren = m.end() - 1
            args = _split_args(text[paren + 1 : _matching(text, paren, "(", ")") - 1])
            slots = {"name": args[1].removeprefix("MP_QSTR_"), "file": path}
            for key, value in zip(args[3::2], args[4::2], strict=False):
                slots[key] = value.lstrip("&").strip()
            src.types[args[0]] = slots
    # Expanded once every file's macros are known: a port's file that defines them is
    # #included by the extmod file whose table uses them.
    for name, body in raw_tables.items():
        expanded = _expand(body, macros)
        src.dict_tables[name] = [(e.group(1), e.group(2), e.group(3)) for e in _DICT_ENTRY.finditer(expanded)]
    return src


def _body(src: _CSources, function: str) -> tuple[str, str] | None:
    found = src.functions.get(function)
    return found[0] if found else None


def _table_of(src: _CSources, function: str, depth: int = 3) -> tuple[str, list[tuple[str, str]], bool] | None:
    """(where, allowed_args entries, parsed with mp_arg_parse_all_kw_array) for a function.

    The table passed to mp_arg_parse_all* in the function itself, else in the first of
    its callees (breadth first) that has one."""
    queue = [(function, 0)]
    seen = set()
    while queue:
        name, level = queue.pop(0)
        if name in seen or level > depth:
            continue
        seen.add(name)
        found = _body(src, name)
        if not found:
            continue
        path, body = found
        call = re.search(r"mp_arg_parse_all(_kw_array)?\s*\(", body)
        if call:
            args = body[call.end() : _matching(body, call.end() - 1, "(", ")")]
            table = re.search(r"MP_ARRAY_SIZE\s*\(\s*(\w+)\s*\)", args)
            if table:
                entries = _local_table(body, table.group(1))
                if entries is None:  # a file-level table (I2C's memory methods share one)
                    candidates = src.tables.get(table.group(1), [])
                    entries = next((e for p, e in candidates if p == path), None)
                if entries is not None:
                    return f"{path}: {name}", entries, call.group(1) is not None
        for callee in re.findall(r"\b(\w+)\s*\(", body):
            if callee in src.functions and callee != name:
                queue.append((callee, level + 1))
    return None


def _local_table(body: str, name: str) -> list[tuple[str, str]] | None:
    for m in _TABLE_DEF.finditer(body):
        if m.group(1) == name:
            brace = m.end() - 1
            table = body[brace : _matching(body, brace, "{", "}")]
            return [(e.group(1), e.group(2)) for e in _TABLE_ENTRY.finditer(table)]
    return None


def _check_num(body: str) -> tuple[int | None, int | None, bool] | None:
    m = re.search(r"mp_arg_check_num\s*\([^,]+,[^,]+,\s*([^,]+?)\s*,\s*([^,]+?)\s*,\s*(true|false)\s*\)", body)
    if not m:
        return None

    def number(text: str) -> int | None:
        return int(text) if text.isdigit() else None

    return number(m.group(1)), number(m.group(2)), m.group(3) == "true"


def _from_table(where: str, entries: list[tuple[str, str]], leading: int, min_pos: int) -> Signature:
    positional = tuple(n for n, flags in entries if "MP_ARG_KW_ONLY" not in flags)
    return Signature(
        where=where,
        keywords=frozenset(n for n, _ in entries),
        min_pos=min_pos,
        max_pos=leading + len(positional),
        required=frozenset(n for n, flags in entries if "MP_ARG_REQUIRED" in flags),
        positional_names=positional,
        leading=leading,
    )


def _function_signature(src: _CSources, obj: str, is_method: bool) -> Signature | None:
    if obj not in src.fun_objs:
        return None
    kind, args, path = src.fun_objs[obj]
    function = args[-1]
    where = f"{path}: {function}"
    self_args = 1 if is_method else 0
    if kind in "0123":
        n = int(kind) - self_args
        return Signature(where, min_pos=n, max_pos=n)
    low = int(args[0]) - self_args if args[0].isdigit() else 0
    if kind == "VAR":
        return Signature(where, min_pos=low, max_pos=None)
    if kind == "VAR_BETWEEN":
        high = int(args[1]) - self_args if args[1].isdigit() else None
        return Signature(where, min_pos=low, max_pos=high)
    table = _table_of(src, function)
    if table is None:
        # A keyword function without a table (BLE.config): accepts keywords its body
        # decides; described separately.
        return Signature(where, min_pos=low, max_pos=None, keywords=ANY_KEYWORD)
    table_where, entries, _ = table
    return _from_table(table_where, entries, 0, low)


def _constructor(src: _CSources, type_slots: dict[str, str]) -> Signature:
    make_new = type_slots.get("make_new")
    if not make_new:
        return Signature(f"{type_slots['file']}: (no make_new)", max_pos=0)
    found = _body(src, make_new)
    body = found[1] if found else ""
    check = _check_num(body)
    table = _table_of(src, make_new)
    where = f"{type_slots['file']}: {make_new}"
    if table is None:
        if check is None:  # it looks at no argument (BLE(): the one radio, whatever is passed)
            return Signature(where, keywords=ANY_KEYWORD, max_pos=None)
        return Signature(where, min_pos=check[0] or 0, max_pos=check[1])
    table_where, entries, all_args = table
    # The object the constructor takes by position first (a pin, an id), unless all
    # its arguments go through the table.
    leading = 0 if all_args and table_where.endswith(make_new) else 1
    low = check[0] if check and check[0] is not None else 0
    signature = _from_table(f"{where} -> {table_where.split(': ')[-1]}", entries, leading, low)
    if check and check[1] is not None and signature.max_pos is not None:
        signature = dataclasses.replace(signature, max_pos=min(signature.max_pos, check[1]))
    return signature


def _device_class(src: _CSources, type_symbol: str) -> DeviceClass:
    slots = src.types[type_symbol]
    cls = DeviceClass(slots["name"], _constructor(src, slots))
    table = src.dicts.get(slots.get("locals_dict", ""), "")
    for name, kind, target in src.dict_tables.get(table, []):
        if kind == "PTR" and target in src.fun_objs:
            signature = _function_signature(src, target, is_method=True)
            if signature:
                cls.methods[name] = signature
        elif kind == "INT":
            cls.constants.add(name)
    call = slots.get("call")
    if call:
        found = _body(src, call)
        check = _check_num(found[1]) if found else None
        if check:
            cls.methods["__call__"] = Signature(f"{slots['file']}: {call}", min_pos=check[0] or 0, max_pos=check[1])
    return cls


def _config_keys(src: _CSources) -> tuple[frozenset[str], frozenset[str]]:
    found = _body(src, "bluetooth_ble_config")
    assert found, "bluetooth_ble_config not found in extmod/modbluetooth.c"
    body = found[1]
    split = re.search(r"\}\s*else\s*\{", body)
    assert split, "BLE.config: no get/set branches"
    get_part, set_part = body[: split.start()], body[split.end() :]
    return (frozenset(re.findall(r"case\s+MP_QSTR_(\w+)\s*:", set_part)),
            frozenset(re.findall(r"case\s+MP_QSTR_(\w+)\s*:", get_part)))


def read_vendor_files(tarball: Path) -> dict[str, str]:
    """The C sources and headers the API comes from, by path inside the tree."""
    wanted = set(CONFIG_HEADERS)
    files: dict[str, str] = {}
    with tarfile.open(tarball) as tar:
        for member in tar:
            if not member.isfile():
                continue
            path = member.name.split("/", 1)[1] if "/" in member.name else member.name
            if path in wanted or any(p.search(path) for p in SOURCE_PATTERNS):
                handle = tar.extractfile(member)
                if handle is not None:
                    files[path] = handle.read().decode("utf-8", "replace")
    return files


@cache
def device_api(tarball: Path) -> DeviceApi:
    src = _parse_sources(read_vendor_files(tarball))
    modules: dict[str, DeviceModule] = {}
    for module_name, table in MODULE_TABLES.items():
        module = DeviceModule(module_name)
        for name, kind, target in src.dict_tables.get(table, []):
            if kind == "PTR" and target in src.types:
                module.classes[name] = _device_class(src, target)
            elif kind == "PTR" and target in src.fun_objs:
                signature = _function_signature(src, target, is_method=False)
                if signature:
                    module.functions[name] = signature
            elif kind == "INT":
                module.constants.add(name)
        modules[module_name] = module
    set_keys, get_keys = _config_keys(src)
    return DeviceApi(modules, set_keys, get_keys)


# --------------------------------------------------------------------------- the Python side


@dataclass(frozen=True)
class StandIn:
    """What a Python function of a stand-in accepts (MicroPython has no "/": a parameter
    named with a leading underscore stands for one the device takes only by position)."""

    keywords: frozenset[str]
    min_pos: int
    max_pos: int | None
    any_keyword: bool

    @classmethod
    def of(cls, function: ast.FunctionDef, is_method: bool) -> StandIn:
        params = [a.arg for a in function.args.args][1 if is_method else 0 :]
        keywords = {p for p in params if not p.startswith("_")} | {a.arg for a in function.args.kwonlyargs}
        max_pos: int | None = len(params)
        if function.args.vararg:
            # *rest: optional positional-only arguments, bounded only if the body refuses
            # more with `if len(rest) > K: raise TypeError(...)`.
            max_pos = None
            for node in ast.walk(function):
                if (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
                        and isinstance(node.test.left, ast.Call) and ast.unparse(node.test.left)
                        == f"len({function.args.vararg.arg})" and isinstance(node.test.ops[0], ast.Gt)
                        and isinstance(node.test.comparators[0], ast.Constant)
                        and isinstance(node.test.comparators[0].value, int)
                        and any(isinstance(n, ast.Raise) and "TypeError" in ast.unparse(n) for n in node.body)):
                    max_pos = len(params) + int(node.test.comparators[0].value)
        return cls(
            keywords=frozenset(keywords),
            min_pos=len(params) - len(function.args.defaults),
            max_pos=max_pos,
            any_keyword=function.args.kwarg is not None,
        )

    def differences(self, device: Signature) -> list[str]:
        found = []
        if self.any_keyword:
            found.append(f"takes any keyword (**kwargs); the device takes {sorted(device.keywords) or 'none'}")
        elif self.keywords != device.keywords:
            extra, missing = sorted(self.keywords - device.keywords), sorted(device.keywords - self.keywords)
            if extra:
                found.append(f"takes keyword(s) {extra} that the device refuses")
            if missing:
                found.append(f"refuses keyword(s) {missing} that the device takes")
        if self.max_pos != device.max_pos:
            most = "any number of" if self.max_pos is None else f"at most {self.max_pos}"
            found.append(f"takes {most} positional arguments, the device "
                         f"{'any number' if device.max_pos is None else f'at most {device.max_pos}'}")
        if self.min_pos != device.min_pos:
            found.append(f"needs at least {self.min_pos} positional arguments, the device {device.min_pos}")
        return found


@dataclass
class Call:
    file: str
    line: int
    target: str  # "machine.Pin", "machine.Pin.irq", "bluetooth.BLE.config", "esp32.idf_heap_info"
    n_pos: int | None  # None: a *args call
    keywords: tuple[str, ...]
    any_keyword: bool  # a **kwargs call
    first_arg: str | None  # a string constant as first positional argument (BLE.config queries)

    def where(self) -> str:
        return f"{self.file}:{self.line}"


# Receivers the firmware names without constructing them in the same module (the BLE
# object is passed in): attribute or variable name -> device class, in modules that
# import that class's module.
RECEIVER_NAMES = {"ble": "bluetooth.BLE", "_ble": "bluetooth.BLE"}
DEVICE_MODULES = ("machine", "esp32", "bluetooth")


class _Resolver(ast.NodeVisitor):
    """Finds the device calls and attribute reads of one firmware file."""

    def __init__(self, file: str, tree: ast.Module, api: DeviceApi) -> None:
        self.file = file
        self.api = api
        self.names: dict[str, str] = {}  # local name -> "machine" / "machine.Pin" (module or class)
        self.instances: dict[str, str] = {}  # variable or "self.attr" -> class of the object it holds
        self.calls: list[Call] = []
        self.unresolved: list[str] = []
        self.reads: list[tuple[int, str, str]] = []  # (line, class or module, attribute)
        self.method_names = {m for module in api.modules.values() for c in module.classes.values() for m in c.methods}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in DEVICE_MODULES:
                        self.names[alias.asname or alias.name] = alias.name
            elif isinstance(node, ast.ImportFrom) and node.module in DEVICE_MODULES:
                for alias in node.names:
                    self.names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        # Aliases of device classes (UUID = bluetooth.UUID).
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Attribute):
                dotted = self.dotted(node.value)
                if self.is_class(dotted):
                    for target in node.targets:
                        if isinstance(target, ast.Name):
                            self.names[target.id] = dotted or ""
        # Receivers known by name, in a module that imports their device module.
        imported = {d.partition(".")[0] for d in self.names.values()}
        self.receiver_names = {n: c for n, c in RECEIVER_NAMES.items() if c.partition(".")[0] in imported}
        # Assignments, flow-insensitively, until nothing new is learnt (x = Pin(...); y = x).
        for _ in range(4):
            before = dict(self.instances)
            for node in ast.walk(tree):
                if isinstance(node, ast.Assign):
                    cls = self.instance_of(node.value)
                    if cls:
                        for target in node.targets:
                            key = self.key(target)
                            if key:
                                self.instances[key] = cls
            if self.instances == before:
                break

    @staticmethod
    def key(node: ast.expr) -> str | None:
        if isinstance(node, ast.Name):
            return node.id
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
            return "self." + node.attr
        return None

    def dotted(self, node: ast.expr) -> str | None:
        """A device module or class that node names (machine, machine.Pin, bluetooth.BLE)."""
        if isinstance(node, ast.Name):
            return self.names.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self.dotted(node.value)
            if base in DEVICE_MODULES:
                return f"{base}.{node.attr}"
        return None

    def is_class(self, dotted: str | None) -> bool:
        if not dotted or "." not in dotted:
            return False
        module, _, name = dotted.partition(".")
        return name in self.api.modules[module].classes

    def instance_of(self, node: ast.expr) -> str | None:
        """The device class of the object node evaluates to, if the test can tell."""
        if isinstance(node, ast.Call):
            dotted = self.dotted(node.func)
            if self.is_class(dotted):
                return dotted
            # bluetooth.BLE() on the unix port's stand-in is a function; BLE() a class on the device
            return None
        key = self.key(node)
        if key and key in self.instances:
            return self.instances[key]
        name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
        if name in self.receiver_names:
            return self.receiver_names[name]
        return None

    def visit_Call(self, node: ast.Call) -> None:
        n_pos: int | None = len(node.args)
        if any(isinstance(a, ast.Starred) for a in node.args):
            n_pos = None
        keywords = tuple(k.arg for k in node.keywords if k.arg is not None)
        any_keyword = any(k.arg is None for k in node.keywords)
        first = node.args[0] if node.args else None
        first_arg = first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None
        target = None
        dotted = self.dotted(node.func)
        if dotted and "." in dotted:
            target = dotted  # a class (constructor) or a module function
        elif isinstance(node.func, ast.Attribute):
            cls = self.instance_of(node.func.value)
            if cls:
                target = f"{cls}.{node.func.attr}"
            elif (node.keywords and node.func.attr in self.method_names
                  and self.dotted(node.func.value) is None):
                self.unresolved.append(f"{self.file}:{node.lineno}: .{node.func.attr}(...) with keywords on an "
                                       f"object the test cannot identify ({ast.unparse(node.func.value)})")
        if target:
            self.calls.append(Call(self.file, node.lineno, target, n_pos, keywords, any_keyword, first_arg))
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        dotted = self.dotted(node.value)
        if dotted and self.is_class(dotted) and node.attr[:1].isupper():
            self.reads.append((node.lineno, dotted, node.attr))
        elif dotted in DEVICE_MODULES and node.attr[:1].isupper() and not self.is_class(f"{dotted}.{node.attr}"):
            self.reads.append((node.lineno, dotted, node.attr))
        self.generic_visit(node)


def firmware_files() -> Iterator[Path]:
    yield from sorted((REPO_ROOT / "firmware").rglob("*.py"))


def device_uses(path: Path, api: DeviceApi) -> _Resolver:
    tree = ast.parse(path.read_text(), str(path))
    name = path.relative_to(REPO_ROOT).as_posix() if path.is_relative_to(REPO_ROOT) else path.name
    resolver = _Resolver(name, tree, api)
    resolver.visit(tree)
    return resolver


def call_problems(call: Call, api: DeviceApi) -> list[str]:
    """Why the device would refuse this call ([] if it accepts it)."""
    parts = call.target.split(".")
    module = api.modules[parts[0]]
    if len(parts) == 2:
        name = parts[1]
        if name in module.classes:
            signature = module.classes[name].constructor
        elif name in module.functions:
            signature = module.functions[name]
        else:
            return [f"{call.target} does not exist on the device"]
    else:
        cls = module.classes.get(parts[1])
        if cls is None:
            return [f"{parts[0]}.{parts[1]} does not exist on the device"]
        if parts[2] not in cls.methods:
            return [f"{call.target} does not exist on the device"]
        signature = cls.methods[parts[2]]
    if call.target == "bluetooth.BLE.config":
        return config_problems(call, api)
    if call.any_keyword:
        return [] if signature.keywords else ["**kwargs passed to a function that takes no keyword"]
    return [f"{p} ({signature.where})" for p in signature.problems(call.n_pos, call.keywords)]


def config_problems(call: Call, api: DeviceApi) -> list[str]:
    where = "extmod/modbluetooth.c: bluetooth_ble_config"
    if call.keywords or call.any_keyword:
        found = [f"config key {k!r} is not accepted ({where})" for k in call.keywords if k not in api.config_set_keys]
        if call.n_pos:
            found.append(f"positional and keyword arguments together ({where})")
        return found
    if call.n_pos != 1:
        return [f"config() queries exactly one key ({where})"]
    if call.first_arg is not None and call.first_arg not in api.config_get_keys:
        return [f"config({call.first_arg!r}) is not a key the device reports ({where})"]
    return []


def stand_in_classes(source: str) -> dict[str, ast.ClassDef]:
    return {n.name: n for n in ast.parse(source).body if isinstance(n, ast.ClassDef)}


def stand_in_functions(body: Iterable[ast.stmt]) -> dict[str, ast.FunctionDef]:
    return {n.name: n for n in body if isinstance(n, ast.FunctionDef)}


def stand_in_constants(body: Iterable[ast.stmt]) -> set[str]:
    names = set()
    for node in body:
        if isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name) and t.id.isupper()}
    return names
