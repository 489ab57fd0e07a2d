"""A strict reader of the Prometheus text exposition format (0.0.4), written from the format's
description, independent of flowengine's own renderer: every departure is an AssertionError."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

__all__ = ["Family", "parse_exposition", "samples_by_series"]

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_HELP = re.compile(rf"# HELP ({_NAME}) (.*)")
_TYPE = re.compile(rf"# TYPE ({_NAME}) (counter|gauge|histogram|summary|untyped)")
_SAMPLE_NAME = re.compile(_NAME)
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_FLOAT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|[+-]?Inf|NaN")


@dataclass
class Family:
    name: str
    help: str
    type: str = ""
    # (sample name, sorted label pairs) -> value
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)

    def get(self, sample: str, **labels: str) -> float:
        return self.samples[(sample, tuple(sorted(labels.items())))]


def _parse_labels(text: str, pos: int) -> tuple[dict[str, str], int]:
    """Labels starting after ``{`` at ``pos``; returns them and the index after ``}``."""
    labels: dict[str, str] = {}
    while True:
        if text[pos] == "}":
            return labels, pos + 1
        match = _LABEL_NAME.match(text, pos)
        assert match, f"bad label name at {text[pos:]!r}"
        name = match.group()
        pos = match.end()
        assert text[pos : pos + 2] == '="', f"expected =\" after label {name!r}"
        pos += 2
        value = []
        while text[pos] != '"':
            if text[pos] == "\\":
                escaped = text[pos + 1]
                assert escaped in '\\"n', f"bad escape \\{escaped}"
                value.append("\n" if escaped == "n" else escaped)
                pos += 2
            else:
                assert text[pos] != "\n"
                value.append(text[pos])
                pos += 1
        pos += 1
        assert name not in labels, f"label {name!r} repeated"
        labels[name] = "".join(value)
        if text[pos] == ",":
            pos += 1
        else:
            assert text[pos] == "}", f"expected , or }} at {text[pos:]!r}"


def _family_of(sample: str, families: dict[str, Family]) -> Family | None:
    if sample in families:
        return families[sample]
    for suffix in ("_bucket", "_sum", "_count"):
        base = sample[: -len(suffix)]
        if sample.endswith(suffix) and base in families and families[base].type == "histogram":
            return families[base]
    return None


def parse_exposition(text: str) -> dict[str, Family]:
    """Parse and validate a text exposition; raise AssertionError on any departure."""
    assert text.endswith("\n"), "exposition must end with a newline"
    families: dict[str, Family] = {}
    current: Family | None = None
    for line in text[:-1].split("\n"):
        assert line, "no blank lines expected"
        if line.startswith("# HELP "):
            match = _HELP.fullmatch(line)
            assert match, f"bad HELP line {line!r}"
            assert match[1] not in families, f"family {match[1]} repeated"
            assert "\\" not in match[2].replace("\\\\", "").replace("\\n", ""), "bad HELP escape"
            current = families[match[1]] = Family(match[1], match[2])
            continue
        if line.startswith("# TYPE "):
            match = _TYPE.fullmatch(line)
            assert match, f"bad TYPE line {line!r}"
            assert current and current.name == match[1] and not current.type, "TYPE must follow HELP"
            assert not current.samples, "TYPE must come before samples"
            current.type = match[2]
            continue
        assert not line.startswith("#"), f"unexpected comment {line!r}"
        match = _SAMPLE_NAME.match(line)
        assert match, f"bad sample line {line!r}"
        sample, pos = match.group(), match.end()
        labels: dict[str, str] = {}
        if line[pos : pos + 1] == "{":
            try:
                labels, pos = _parse_labels(line, pos + 1)
            except IndexError:
                raise AssertionError(f"unterminated labels in {line!r}") from None
        assert line[pos : pos + 1] == " ", f"expected one space before the value in {line!r}"
        value_text = line[pos + 1 :]
        assert _FLOAT.fullmatch(value_text), f"bad value {value_text!r}"
        family = _family_of(sample, families)
        assert family is not None and family is current, f"sample {sample} outside its family"
        assert family.type, "samples before TYPE"
        key = (sample, tuple(sorted(labels.items())))
        assert key not in family.samples, f"duplicate sample {key}"
        family.samples[key] = float(value_text)
    for family in families.values():
        if family.type == "histogram":
            _check_histogram(family)
    return families


def _check_histogram(family: Family) -> None:
    series: dict[tuple, list[tuple[float, float]]] = {}
    for (sample, labels), value in family.samples.items():
        if sample.endswith("_bucket"):
            rest = tuple(pair for pair in labels if pair[0] != "le")
            le = dict(labels)["le"]
            series.setdefault(rest, []).append((float(le), value))
    for rest, buckets in series.items():
        bounds = [b for b, _ in buckets]
        counts = [c for _, c in buckets]
        assert bounds == sorted(bounds) and len(set(bounds)) == len(bounds), "le not increasing"
        assert bounds[-1] == math.inf, "no +Inf bucket"
        assert counts == sorted(counts), f"bucket counts not cumulative: {counts}"
        assert family.samples[(family.name + "_count", rest)] == counts[-1], "+Inf != _count"
        assert (family.name + "_sum", rest) in family.samples


def samples_by_series(text: str) -> dict[str, float]:
    """Every sample of a valid exposition by its series text as written, ``name{labels}``."""
    parse_exposition(text)
    samples = {}
    for line in text.splitlines():
        if not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            samples[series] = float(value)
    return samples
