"""Typed values carried on ports and in node config, and their JSON codec.

On the wire a typed value is ``{"type": T, "value": v}`` (DESIGN.md section 3). Clients may
also send plain JSON, which maps to String/Number/Bool/Null, or Json for objects and arrays.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from typing import Any

from .errors import ValidationError

__all__ = [
    "TAGS",
    "CONFIG_ONLY_TAGS",
    "SECRET_PLACEHOLDER",
    "SecretRef",
    "Value",
    "json_kind",
    "NULL",
    "decode_value",
    "encodable",
    "encode_values",
    "to_value",
]

TAGS = frozenset({"Null", "Bool", "Number", "String", "Bytes", "Json", "Array", "Object"})
# Secrets name an environment variable resolved at run time; only node config may hold them.
CONFIG_ONLY_TAGS = frozenset({"Secret"})


class Value:
    """One typed value: ``type`` is a tag from TAGS (or Secret), ``value`` the Python payload.

    Payloads: Null -> None, Bool -> bool, Number -> int|float, String/Secret -> str,
    Bytes -> bytes, Json -> any JSON, Array -> list[Value], Object -> dict[str, Value].
    """

    __slots__ = ("type", "value")

    def __init__(self, type: str, value: Any) -> None:
        self.type = type
        self.value = value

    def __repr__(self) -> str:
        return f"Value({self.type!r}, {self.value!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Value) and self.type == other.type and self.value == other.value

    __hash__ = None  # type: ignore[assignment]  # mutable payloads

    def to_json(self) -> dict[str, Any]:
        """The wire form; decoding it with decode_value gives an equal Value back."""
        tag = self.type
        if tag == "Null":
            return {"type": "Null"}
        if tag == "Bytes":
            return {"type": "Bytes", "value": base64.b64encode(self.value).decode("ascii")}
        if tag == "Array":
            return {"type": "Array", "value": [item.to_json() for item in self.value]}
        if tag == "Object":
            return {"type": "Object", "value": encode_values(self.value)}
        return {"type": tag, "value": self.value}

    def to_python(self) -> Any:
        """The payload as plain Python: Arrays and Objects are unwrapped recursively."""
        tag = self.type
        if tag == "Array":
            return [item.to_python() for item in self.value]
        if tag == "Object":
            return {k: v.to_python() for k, v in self.value.items()}
        return self.value

    def to_text(self) -> str:
        """A human-readable string: Strings as they are, everything else as JSON."""
        if self.type == "String":
            return self.value
        if self.type == "Bytes":
            return self.value.decode("utf-8", errors="replace")
        return json.dumps(self.to_python(), default=_json_default, ensure_ascii=False)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, bytes):
        return base64.b64encode(obj).decode("ascii")
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


# Where a Secret's ``format`` puts the secret.
SECRET_PLACEHOLDER = "{}"


class SecretRef(Value):
    """A Secret in node config: ``value`` is the secret's name; ``format``, when set, is text
    with one ``{}`` that the resolved secret fills (``"Bearer {}"``)."""

    __slots__ = ("format",)

    def __init__(self, name: str, format: str | None = None) -> None:
        super().__init__("Secret", name)
        self.format = format

    def __repr__(self) -> str:
        return f"SecretRef({self.value!r}, format={self.format!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretRef) and self.value == other.value and self.format == other.format

    __hash__ = None

    def to_json(self) -> dict[str, Any]:
        if self.format is None:
            return {"type": "Secret", "value": self.value}
        return {"type": "Secret", "value": self.value, "format": self.format}

    def fill(self, resolved: str) -> str:
        """The text this reference stands for, given the secret's value."""
        if self.format is None:
            return resolved
        before, after = self.format.split(SECRET_PLACEHOLDER)
        return before + resolved + after


NULL = Value("Null", None)


def encode_values(values: Mapping[str, Value]) -> dict[str, Any]:
    """Named values (a node's outputs, an execution's inputs, a node's config) as typed JSON."""
    encoded = {}
    for name, value in values.items():  # a loop: a comprehension costs a call of its own
        encoded[name] = value.to_json()
    return encoded


def to_value(obj: Any) -> Value:
    """A Python object as a Value: plain JSON mapping (objects and lists become Json)."""
    if isinstance(obj, Value):
        return obj
    if obj is None:
        return NULL
    if isinstance(obj, bool):
        return Value("Bool", obj)
    if isinstance(obj, (int, float)):
        return Value("Number", obj)
    if isinstance(obj, str):
        return Value("String", obj)
    if isinstance(obj, (bytes, bytearray)):
        return Value("Bytes", bytes(obj))
    return Value("Json", obj)


def _looks_typed(obj: dict) -> bool:
    keys = obj.keys()
    tag = obj.get("type")
    return isinstance(tag, str) and (
        keys == {"type", "value"}
        or (keys == {"type"} and tag == "Null")
        or (keys == {"type", "value", "format"} and tag == "Secret")
    )


def decode_value(obj: Any, path: str, *, strict: bool, allow_secret: bool = False) -> Value:
    """Decode wire JSON into a Value.

    An object whose keys are exactly ``type`` and ``value`` (or just ``type: "Null"``) is a
    typed value. With ``strict`` (workflow documents) an unknown tag there is an error; without
    it (execution inputs) such an object is plain Json, as DESIGN.md section 3 says.
    """
    if not (isinstance(obj, dict) and _looks_typed(obj)):
        return to_value(obj)
    tag = obj["type"]
    if tag not in TAGS and not (allow_secret and tag in CONFIG_ONLY_TAGS):
        if not strict:
            return Value("Json", obj)
        known = sorted(TAGS | CONFIG_ONLY_TAGS) if allow_secret else sorted(TAGS)
        raise ValidationError(f"{path}: unknown value type {tag!r} (known: {', '.join(known)})")
    payload = obj.get("value")
    if tag == "Null":
        if payload is not None:
            raise ValidationError(f"{path}.value: Null holds no value")
        return NULL
    if tag == "Bool":
        if not isinstance(payload, bool):
            raise ValidationError(f"{path}.value: Bool must hold true or false")
        return Value(tag, payload)
    if tag == "Number":
        if isinstance(payload, bool) or not isinstance(payload, (int, float)):
            raise ValidationError(f"{path}.value: Number must hold a number, got {json_kind(payload)}")
        if isinstance(payload, float) and not math.isfinite(payload):
            raise ValidationError(f"{path}.value: Number must be finite, got {payload!r}")
        return Value(tag, payload)
    if tag == "String":
        if not isinstance(payload, str):
            raise ValidationError(f"{path}.value: String must hold a string, got {json_kind(payload)}")
        return Value(tag, payload)
    if tag == "Secret":
        return _decode_secret(obj, path)
    if tag == "Bytes":
        if isinstance(payload, list):
            return Value(tag, _byte_array(payload, path))
        if not isinstance(payload, str):
            raise ValidationError(
                f"{path}.value: Bytes must hold a base64 string or an array of byte numbers 0-255,"
                f" got {json_kind(payload)}"
            )
        try:
            return Value(tag, base64.b64decode(payload, validate=True))
        except (binascii.Error, ValueError):
            raise ValidationError(f"{path}.value: Bytes must hold valid base64") from None
    if tag == "Json":
        return Value(tag, payload)
    if tag == "Array":
        if not isinstance(payload, list):
            raise ValidationError(f"{path}.value: Array must hold a list, got {json_kind(payload)}")
        return Value(
            tag,
            [
                decode_value(item, f"{path}.value[{i}]", strict=strict, allow_secret=allow_secret)
                for i, item in enumerate(payload)
            ],
        )
    # Object
    if not isinstance(payload, dict):
        raise ValidationError(f"{path}.value: Object must hold an object, got {json_kind(payload)}")
    return Value(
        tag,
        {
            key: decode_value(item, f"{path}.value.{key}", strict=strict, allow_secret=allow_secret)
            for key, item in payload.items()
        },
    )


def _byte_array(payload: list[Any], path: str) -> bytes:
    """Bytes in the upstream server's serde form, a list of byte numbers (``[104, 105]``).
    Accepted on input only: Bytes are always sent back as base64."""
    for i, item in enumerate(payload):
        # bool is an int in Python, but true is not a byte; 1.0 is not one either (serde's u8 refuses it).
        if isinstance(item, bool) or not isinstance(item, int) or not 0 <= item <= 255:
            raise ValidationError(f"{path}.value[{i}]: a Bytes array holds byte numbers 0-255, got {_shown(item)}")
    return bytes(payload)


def _shown(item: Any) -> str:
    # Only short numbers are quoted back: a huge integer's text is long (or refused by Python).
    if isinstance(item, (int, float)) and not isinstance(item, bool) and abs(item) < 1e15:
        return repr(item)
    return json_kind(item)


def _decode_secret(obj: dict[str, Any], path: str) -> SecretRef:
    name = obj.get("value")
    if not isinstance(name, str):
        raise ValidationError(f"{path}.value: Secret must hold a string, got {json_kind(name)}")
    if not name:
        raise ValidationError(f"{path}.value: Secret must name a secret")
    # The name becomes part of an environment variable's name: it must be encodable text
    # without '=' or NUL, which no environment can hold.
    if "=" in name or "\0" in name or not encodable(name):
        raise ValidationError(
            f"{path}.value: {name!r} cannot name an environment variable (use letters, digits and _)"
        )
    text_format = obj.get("format")
    if text_format is None:
        return SecretRef(name)
    if not isinstance(text_format, str):
        raise ValidationError(f"{path}.format: expected a string with one {SECRET_PLACEHOLDER}, got {json_kind(text_format)}")
    if text_format.count(SECRET_PLACEHOLDER) != 1:
        raise ValidationError(
            f"{path}.format: must contain {SECRET_PLACEHOLDER} exactly once (where the secret goes),"
            f" e.g. \"Bearer {SECRET_PLACEHOLDER}\""
        )
    if not encodable(text_format):
        raise ValidationError(f"{path}.format: must be valid Unicode text")
    return SecretRef(name, text_format)


def encodable(text: str) -> bool:
    """Whether the text is valid Unicode (no lone surrogates), so it can be sent and stored."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def json_kind(obj: Any) -> str:
    """The JSON name of a Python object's type, for error messages."""
    if obj is None:
        return "null"
    if isinstance(obj, bool):
        return "a boolean"
    if isinstance(obj, (int, float)):
        return "a number"
    if isinstance(obj, str):
        return "a string"
    if isinstance(obj, list):
        return "an array"
    return "an object"
