"""YAML config loading that remembers line numbers and reports every problem at once.

Config files (rigs, presets) are written by hand, so an error message must say
*where* (file and line), *what* (a dotted key path such as
``sliders.body.height.max``) and, for a near-miss name, what was probably
meant. Validators therefore never raise on the first problem: they add each
one to a :class:`Problems` collector and raise a single :class:`ConfigError`
at the end.

Parsing is done with PyYAML's ``SafeLoader`` only (no arbitrary Python
objects). We compose the node tree ourselves rather than calling
``yaml.safe_load`` because the nodes carry line numbers and because PyYAML
silently keeps the last of two duplicate keys, which hides typos.
"""
from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from os import PathLike

import yaml

KeyPath = tuple
"""A path into a document: mapping keys and list indices, e.g. ``("sliders", "body.height", "max")``."""

_MERGE_TAG = "tag:yaml.org,2002:merge"


# 1. problems and the one exception type ---------------------------------------
@dataclass(frozen=True)
class Problem:
    """One thing wrong with one config input.

    ``file`` is a path or a pseudo name like ``"<values>"``; ``line`` is
    1-based or None when unknown; ``key`` is a dotted key path, "" for the
    whole document.
    """

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return ": ".join(part for part in (where, self.key, self.message) if part)


class ConfigError(ValueError):
    """Bad config or preset input; ``problems`` lists everything found, one per line in ``str()``."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(map(str, self.problems)) or "invalid configuration")


def format_key(path: Sequence) -> str:
    """``("sliders", "face.nose", "effects", 0, "at")`` -> ``"sliders.face.nose.effects[0].at"``."""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def did_you_mean(word: object, choices: Iterable[object]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices``, or "" when none is close."""
    names = [str(c) for c in choices]
    match = difflib.get_close_matches(str(word), names, n=1, cutoff=0.6)
    return f"; did you mean '{match[0]}'?" if match else ""


def describe(value: object) -> str:
    """A value as the user wrote it in YAML, for messages (``true``, ``'abc'``, ``a list``)."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, numbers.Real):
        return format_number(float(value))
    return type(value).__name__


def kind_of(value: object) -> str:
    """What kind of value this is (``text``, ``a list``, ``a number``), never the value itself."""
    if isinstance(value, str):
        return "text (is this a YAML file?)"
    if isinstance(value, bool) or value is None:
        return describe(value)
    if isinstance(value, numbers.Real):
        return "a number"
    return describe(value) if isinstance(value, (Mapping, list, tuple)) else type(value).__name__


def format_number(x: float) -> str:
    """``175.0`` -> ``"175"``, ``0.35`` -> ``"0.35"`` (no trailing ``.0`` noise in messages)."""
    x = float(x)
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else repr(x)


# 2. line numbers ----------------------------------------------------------------
class LineMap:
    """Key path -> 1-based line where that key (or list item) is written."""

    def __init__(self, lines: Mapping[KeyPath, int] | None = None):
        self._lines = dict(lines or {})

    def line_of(self, path: Sequence) -> int | None:
        """Line of ``path``, else of its nearest ancestor that exists (a missing
        key is best reported where its parent mapping is)."""
        path = tuple(path)
        while True:
            if path in self._lines:
                return self._lines[path]
            if not path:
                return None
            path = path[:-1]


class Problems:
    """Collects problems for one input so a validator can report them all at once."""

    def __init__(self, file: str, lines: LineMap | None = None, items: Iterable[Problem] = ()):
        self.file = str(file)
        self.lines = lines or LineMap()
        self.items: list[Problem] = list(items)

    def add(self, path: Sequence, message: str, line: int | None = None) -> None:
        """Record ``message`` about key ``path``, at its line unless ``line`` is given."""
        line = self.lines.line_of(path) if line is None else line
        self.items.append(Problem(self.file, line, format_key(path), message))

    def line_of(self, path: Sequence) -> int | None:
        return self.lines.line_of(path)

    def __len__(self) -> int:
        return len(self.items)

    def raise_if_any(self) -> None:
        """Raise one ConfigError with every problem, in file order (validators find them out of order)."""
        if self.items:
            raise ConfigError(sorted(self.items, key=lambda p: p.line or 0))


# 3. loading ---------------------------------------------------------------------
def _construct_key(loader: yaml.SafeLoader, node: yaml.Node) -> object:
    """The Python value of a scalar mapping key (``1`` and ``"1"`` differ), None for others."""
    if not isinstance(node, yaml.ScalarNode):
        return None  # construction will report the unhashable key itself
    try:
        return loader.construct_object(node)
    except yaml.YAMLError:
        return node.value


def _index_nodes(loader: yaml.SafeLoader, root: yaml.Node, file: str) -> tuple[LineMap, list[Problem]]:
    """Walk the node tree: the line of every key path, and every duplicate key."""
    lines: dict[KeyPath, int] = {(): root.start_mark.line + 1}
    problems: list[Problem] = []
    seen: set[int] = set()  # an alias reuses a node; walk it once (and never loop)

    def walk(node: yaml.Node, path: KeyPath) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[object, int] = {}
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue  # `<<: *base` overrides are intended, not duplicates
                key = _construct_key(loader, key_node)
                line = key_node.start_mark.line + 1
                sub = path + (key,)
                try:
                    if key in first:
                        problems.append(Problem(file, line, format_key(sub), (
                            f"duplicate key '{key}' (first at line {first[key]}, again at line {line});"
                            " each key may appear only once")))
                    else:
                        first[key] = line
                except TypeError:  # unhashable key: construction reports it
                    continue
                lines[sub] = line
                walk(value_node, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines[path + (i,)] = item.start_mark.line + 1
                walk(item, path + (i,))

    walk(root, ())
    return LineMap(lines), sorted(problems, key=lambda p: p.line or 0)


def _yaml_problem(file: str, err: yaml.YAMLError) -> Problem:
    """A PyYAML error as a Problem with its line."""
    if isinstance(err, yaml.composer.ComposerError) and err.context == "expected a single document in the stream":
        line = err.problem_mark.line + 1 if err.problem_mark else None
        return Problem(file, line, "", "a second YAML document starts here; a config file holds exactly one")
    if isinstance(err, YAMLDepthError):
        return Problem(file, err.problem_mark.line + 1 if err.problem_mark else None, "", err.problem)
    if isinstance(err, yaml.MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        what = err.problem or err.context or "invalid YAML"
        if err.context and err.problem:  # e.g. an unclosed bracket: say where it was opened
            start = f" at line {err.context_mark.line + 1}" if err.context_mark else ""
            what += f" ({err.context}{start})"
        label = "YAML error" if isinstance(err, yaml.constructor.ConstructorError) else "YAML syntax error"
        return Problem(file, mark.line + 1 if mark else None, "", f"{label}: {what}")
    return Problem(file, None, "", f"YAML error: {err}")


MAX_DEPTH = 64
"""Deepest nesting of lists and mappings any YAML we read may have (configs are a few levels deep;
thousands of levels would exhaust Python's recursion in PyYAML's composer, and in our walkers)."""


class YAMLDepthError(yaml.MarkedYAMLError):
    """A document nested deeper than :data:`MAX_DEPTH`."""


class GuardedLoader(yaml.SafeLoader):
    """PyYAML's ``SafeLoader`` (``yaml.safe_load`` semantics) that refuses nesting deeper than
    :data:`MAX_DEPTH` while composing, before any recursion can overflow. Every YAML the package
    reads goes through it (via :func:`parse_yaml_lenient`)."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise YAMLDepthError(None, None, f"nested deeper than {MAX_DEPTH} levels (lists or mappings "
                                     "inside each other); a config is never that deep", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _compose(text: str):
    """(loader, root node) of one YAML document. libyaml's parser composes it when PyYAML has one
    (a 3,400-line rig in 0.15 s instead of 0.6 s), after a flat pass over its events has checked the
    depth (its composer recurses in C). Any problem is reported by :class:`GuardedLoader`, so the
    messages are the same either way."""
    if getattr(yaml, "__with_libyaml__", False):
        loader = None
        try:
            depth = 0
            for event in yaml.parse(text, Loader=yaml.CSafeLoader):
                if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                    depth += 1
                    if depth > MAX_DEPTH:
                        raise YAMLDepthError()
                elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                    depth -= 1
            loader = yaml.CSafeLoader(text)
            return loader, loader.get_single_node()
        except yaml.YAMLError:
            if loader is not None:
                loader.dispose()
    loader = GuardedLoader(text)
    return loader, loader.get_single_node()


def parse_yaml(text: str, file: str = "<string>") -> tuple[dict, LineMap]:
    """Parse one YAML document that must be a mapping; duplicate keys are errors.

    Returns
    -------
    data : dict
        The document as plain Python data (``yaml.safe_load`` semantics).
    lines : LineMap
        Where each key path is written.

    Raises
    ------
    ConfigError
        Syntax error, several documents, empty document, duplicate keys, or a
        top-level value that is not a mapping; every problem found.
    """
    data, lines, duplicates = parse_yaml_lenient(text, file)
    if duplicates:
        raise ConfigError(duplicates)
    return data, lines


def parse_yaml_lenient(text: str, file: str = "<string>") -> tuple[dict, LineMap, list[Problem]]:
    """Like :func:`parse_yaml`, but duplicate keys come back as a list instead of raising.

    Validators use it so a duplicate key is reported together with every
    other problem in the file (the later value is the one kept).
    """
    loader = None
    try:
        loader, root = _compose(text)
        if root is None:
            raise ConfigError([Problem(file, None, "", "the file is empty (no YAML content)")])
        lines, problems = _index_nodes(loader, root, file)
        data = loader.construct_document(root)
    except yaml.YAMLError as err:
        raise ConfigError([_yaml_problem(file, err)]) from None
    finally:
        if loader is not None:
            loader.dispose()
    if data is None:
        raise ConfigError([Problem(file, None, "", "the file is empty (no YAML content)")])
    if not isinstance(data, dict):
        # the kind only, never the content: a file that is not YAML (``base: /etc/shadow``) reads as
        # one long string, and an error message must not echo a file we did not ask to show
        raise ConfigError(problems + [Problem(file, lines.line_of(()), "",
                                      f"the document must be a mapping of keys to values, got {kind_of(data)}")])
    return data, lines, problems


def load_yaml(path: str | PathLike) -> tuple[dict, LineMap]:
    """Read and parse a YAML config file; see :func:`parse_yaml`. Unreadable files raise ConfigError."""
    return parse_yaml(read_text(path), str(path))


def load_yaml_lenient(path: str | PathLike) -> tuple[dict, LineMap, list[Problem]]:
    """Read and parse a YAML config file; see :func:`parse_yaml_lenient`."""
    return parse_yaml_lenient(read_text(path), str(path))


def read_text(path: str | PathLike) -> str:
    file = str(path)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise ConfigError([Problem(file, None, "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError([Problem(file, None, "", f"cannot read the file: {err}")]) from None
    return text


# 4. value checks shared by the validators -------------------------------------
def to_number(value: object) -> tuple[float | None, str | None]:
    """A finite float from a config value, or ``(None, why not)``.

    Strings that ``float()`` parses count as numbers: PyYAML's YAML 1.1
    resolver reads ``1e-3`` (no dot) as a string. Booleans do not, although
    ``bool`` is an ``int`` subclass: ``true`` where a number belongs is a typo.
    """
    if isinstance(value, bool):
        return None, f"expected a number, got {describe(value)}"
    if isinstance(value, numbers.Real):
        try:
            x = float(value)
        except OverflowError:
            return None, f"the number {value} is too large"
    elif isinstance(value, str):
        try:
            x = float(value.strip())
        except ValueError:
            return None, f"expected a number, got {describe(value)}"
    else:
        return None, f"expected a number, got {describe(value)}"
    if math.isnan(x):
        return None, "NaN (not a number) is not allowed; expected a finite number"
    if math.isinf(x):
        return None, "infinity is not allowed; expected a finite number"
    return x, None


def check_number(problems: Problems, path: Sequence, value: object, *, integral: bool = False) -> float | None:
    """``value`` as a finite float (whole if ``integral``); else record a problem and return None."""
    x, why = to_number(value)
    if why is None and integral and not x.is_integer():
        why = f"expected a whole number, got {format_number(x)}"
    if why is not None:
        problems.add(path, why)
        return None
    return x


def check_str(problems: Problems, path: Sequence, value: object, *, one_line: bool = False) -> str | None:
    """A non-empty string (one line if asked); else record a problem and return None."""
    if not isinstance(value, str):
        problems.add(path, f"expected text, got {describe(value)}")
        return None
    text = value.strip()  # folded/literal YAML blocks end with a newline
    if not text:
        problems.add(path, "must not be empty")
        return None
    if one_line and "\n" in text:
        problems.add(path, "must be a single line")
        return None
    return text


def check_choice(problems: Problems, path: Sequence, value: object, choices: Sequence[str], what: str) -> str | None:
    """``value`` if it is one of ``choices``; else record 'unknown <what>' with a suggestion."""
    if isinstance(value, str) and value in choices:
        return value
    hint = did_you_mean(value, choices) if isinstance(value, str) else ""
    listing = "" if hint or len(choices) > 12 else f"; expected one of: {', '.join(choices)}"
    problems.add(path, f"unknown {what} {describe(value)}{hint}{listing}")
    return None


def check_keys(problems: Problems, path: Sequence, mapping: Mapping, allowed: Iterable[str],
               required: Iterable[str] = ()) -> None:
    """Record unknown keys of ``mapping`` (with suggestions) and missing required ones."""
    allowed = list(allowed)
    unknown = [key for key in mapping if key not in allowed]
    if not path and unknown and len(unknown) == len(mapping) and not any(did_you_mean(k, allowed) for k in unknown):
        # not one key of ours, none even close: not the file we asked for (``base: /etc/shadow`` reads
        # as a mapping of its lines). Say so once, without quoting a file we must not show.
        problems.add(path, f"this is not the kind of file expected here: none of its {len(mapping)} top-level "
                     f"keys is one of: {', '.join(allowed)}")
        return
    for key in mapping:
        if key not in allowed:
            hint = did_you_mean(key, allowed) or f"; allowed keys: {', '.join(allowed)}"
            problems.add(tuple(path) + (key,), f"unknown key '{key}'{hint}")
    for key in required:
        if key not in mapping:
            problems.add(path, f"missing required key '{key}'")
