"""Metrics in the Prometheus text exposition format (version 0.0.4), written by hand.

Three metric kinds -- :class:`Counter`, :class:`Gauge`, :class:`Histogram` -- held by a
:class:`Registry` whose :meth:`Registry.render` produces the body of ``GET /metrics``
(served with :data:`CONTENT_TYPE`). Counters and gauges may take their values from a callback
read at render time, for numbers something else keeps (a counter's callback must only go up).
:meth:`Registry.forget` drops every series with a given label value, so the series of a deleted
workflow do not pile up.

Recording is on the hot path (every request, node and event), so ``inc``/``set``/``observe``
do one dict lookup keyed by the tuple of label values; all formatting and sorting waits for
``render``, which is only called by a scraper. Everything runs on the event loop thread, so
there are no locks.

A server of several processes (``flowengine serve --workers N``) reports one exposition for
all of them: :meth:`Registry.snapshot` gives a registry's values as plain JSON-able data,
:func:`merge_snapshots` combines those of several processes (counters and histograms summed;
a gauge as its ``combine`` says: summed by default, or the highest or lowest value), and
:meth:`Registry.from_snapshot` renders the result.
"""

from __future__ import annotations

import itertools
import math
import re
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_BUCKETS",
    "Counter",
    "Gauge",
    "Histogram",
    "Registry",
    "Snapshot",
    "forget_in_snapshot",
    "merge_snapshots",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# The Prometheus client libraries' defaults: 5 ms to 10 s, in seconds.
DEFAULT_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

LabelKey = tuple[str, ...]
# A callback metric returns a number, or (when it has labels) a mapping of label values to
# numbers; a single label's value may be given as a plain string instead of a 1-tuple.
GaugeCallback = Callable[[], float | Mapping[str | LabelKey, float]]
ValueCallback = GaugeCallback
# A registry's values as plain data (Registry.snapshot): one dict per metric, JSON-able.
Snapshot = list[dict[str, Any]]
COMBINES = ("sum", "max", "min")


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    # HELP text escapes backslash and newline only; quotes are literal there.
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _format_value(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (math.inf, -math.inf):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _format_le(bound: float) -> str:
    # Always a float spelling ("1.0", "0.005", "+Inf"), as the official clients write it, so
    # the same bucket has the same label value whichever library produced it.
    return "+Inf" if bound == math.inf else repr(float(bound))


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        if not _METRIC_NAME.fullmatch(name):
            raise ValueError(f"invalid metric name {name!r}")
        labelnames = tuple(labelnames)
        for label in labelnames:
            if not _LABEL_NAME.fullmatch(label) or label.startswith("__"):
                raise ValueError(f"metric {name!r}: invalid label name {label!r}")
        if len(set(labelnames)) != len(labelnames):
            raise ValueError(f"metric {name!r}: duplicate label names")
        self.name = name
        self.help = help
        self.labelnames: LabelKey = labelnames

    def _key(self, labels: Mapping[str, object]) -> LabelKey:
        names = self.labelnames
        if not names and not labels:
            return ()
        try:
            key = tuple([str(labels[n]) for n in names])
        except KeyError:
            key = None
        if key is None or len(labels) != len(names):
            raise ValueError(
                f"metric {self.name!r} takes labels ({', '.join(names)}), got ({', '.join(labels)})"
            )
        return key

    def _labels(self, key: LabelKey, extra: str = "") -> str:
        parts = [f'{n}="{_escape_label(v)}"' for n, v in zip(self.labelnames, key)]
        if extra:
            parts.append(extra)
        return "{" + ",".join(parts) + "}" if parts else ""

    def sample_names(self) -> tuple[str, ...]:
        return (self.name,)

    def _samples(self) -> Iterator[str]:
        raise NotImplementedError

    def render(self) -> str:
        head = f"# HELP {self.name} {_escape_help(self.help)}\n# TYPE {self.name} {self.kind}\n"
        return head + "".join(line + "\n" for line in self._samples())

    def _stored(self) -> dict[LabelKey, object]:
        """The series this metric keeps itself (callback values are not kept)."""
        raise NotImplementedError

    def forget(self, label: str, value: str) -> int:
        """Drop every kept series whose ``label`` equals ``value``; how many were dropped."""
        if label not in self.labelnames:
            return 0
        index = self.labelnames.index(label)
        stored = self._stored()
        doomed = [key for key in stored if key[index] == value]
        for key in doomed:
            del stored[key]
        return len(doomed)


def _read_callback(metric: _Metric, callback: ValueCallback) -> dict[LabelKey, float]:
    """A callback's current values, keyed like stored series."""
    result = callback()
    if not metric.labelnames:
        return {(): float(result)}  # type: ignore[arg-type]
    if not isinstance(result, Mapping):
        raise TypeError(f"{metric.kind} {metric.name!r}: a labelled callback must return a mapping")
    current: dict[LabelKey, float] = {}
    for labelvalues, number in result.items():
        key = (labelvalues,) if isinstance(labelvalues, str) else tuple(map(str, labelvalues))
        if len(key) != len(metric.labelnames):
            raise ValueError(f"{metric.kind} {metric.name!r}: callback gave labels {key!r}")
        current[key] = float(number)
    return current


class Counter(_Metric):
    """A value that only goes up (requests served, events published).

    With ``callback`` the value is read when rendering (a total kept elsewhere, such as the
    event bus's count of published events); such a counter is read-only.
    """

    kind = "counter"

    def __init__(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        callback: ValueCallback | None = None,
    ) -> None:
        super().__init__(name, help, labelnames)
        self._values: dict[LabelKey, float] = {}
        self._callback = callback
        if not self.labelnames and callback is None:
            self._values[()] = 0.0  # an unlabelled counter reads 0 before its first inc

    def inc(self, amount: float = 1, **labels: object) -> None:
        if self._callback is not None:
            raise ValueError(f"counter {self.name!r} takes its value from a callback")
        if amount < 0:
            raise ValueError(f"counter {self.name!r} cannot go down (inc by {amount})")
        self.inc_labels(self._key(labels), amount)

    def inc_labels(self, values: LabelKey, amount: float = 1) -> None:
        """``inc`` for a hot path that has the label values as strings, in the declared order,
        and a non-negative amount: nothing is checked (a quarter of ``inc``'s cost)."""
        counts = self._values
        counts[values] = counts.get(values, 0.0) + amount

    def value(self, **labels: object) -> float:
        """The current value (0 for a label set never incremented); for tests and callers."""
        return self._current().get(self._key(labels), 0.0)

    def _current(self) -> dict[LabelKey, float]:
        return self._values if self._callback is None else _read_callback(self, self._callback)

    def _stored(self) -> dict[LabelKey, object]:
        return self._values  # type: ignore[return-value]

    def _samples(self) -> Iterator[str]:
        current = self._current()
        for key in sorted(current):
            yield f"{self.name}{self._labels(key)} {_format_value(current[key])}"


class Gauge(_Metric):
    """A value that goes up and down (executions running, listeners connected).

    With ``callback`` the value is read when rendering instead of being set; such a gauge is
    read-only. For a labelled gauge the callback returns ``{label values: number}``.
    """

    kind = "gauge"

    def __init__(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        callback: GaugeCallback | None = None,
        combine: str = "sum",
    ) -> None:
        super().__init__(name, help, labelnames)
        if combine not in COMBINES:
            raise ValueError(f"gauge {name!r}: combine must be one of {', '.join(COMBINES)}")
        # How the values of several processes make the server's (merge_snapshots): summed
        # (executions running, memory), or the highest / lowest (a value every process reads
        # from the same place, a start time).
        self.combine = combine
        self._values: dict[LabelKey, float] = {}
        self._callback = callback
        if not self.labelnames and callback is None:
            self._values[()] = 0.0

    def _writable_key(self, labels: Mapping[str, object]) -> LabelKey:
        if self._callback is not None:
            raise ValueError(f"gauge {self.name!r} takes its value from a callback")
        return self._key(labels)

    def set(self, value: float, **labels: object) -> None:
        self._values[self._writable_key(labels)] = float(value)

    def inc(self, amount: float = 1, **labels: object) -> None:
        key = self._writable_key(labels)
        self._values[key] = self._values.get(key, 0.0) + amount

    def dec(self, amount: float = 1, **labels: object) -> None:
        key = self._writable_key(labels)
        self._values[key] = self._values.get(key, 0.0) - amount

    def value(self, **labels: object) -> float:
        """The current value (from the callback, if there is one)."""
        key = self._key(labels)
        return self._current().get(key, 0.0)

    def _current(self) -> dict[LabelKey, float]:
        return self._values if self._callback is None else _read_callback(self, self._callback)

    def _stored(self) -> dict[LabelKey, object]:
        return self._values  # type: ignore[return-value]

    def _samples(self) -> Iterator[str]:
        current = self._current()
        for key in sorted(current):
            yield f"{self.name}{self._labels(key)} {_format_value(current[key])}"


class _Series:
    """One label set of a histogram: per-bucket (not cumulative) counts, sum, count."""

    __slots__ = ("count", "counts", "sum")

    def __init__(self, size: int) -> None:
        self.counts = [0] * size
        self.sum = 0.0
        self.count = 0


class Histogram(_Metric):
    """Observations counted into ``le`` buckets (durations, sizes), plus their sum and count."""

    kind = "histogram"

    def __init__(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        buckets: Iterable[float] = DEFAULT_BUCKETS,
    ) -> None:
        super().__init__(name, help, labelnames)
        if "le" in self.labelnames:
            raise ValueError(f"histogram {name!r}: 'le' is reserved for the bucket label")
        bounds = [float(b) for b in buckets]
        if bounds and bounds[-1] == math.inf:
            bounds.pop()  # +Inf is always added; accept it being passed explicitly
        if not bounds or any(not math.isfinite(b) for b in bounds):
            raise ValueError(f"histogram {name!r}: buckets must be finite numbers, at least one")
        if any(a >= b for a, b in itertools.pairwise(bounds)):
            raise ValueError(f"histogram {name!r}: buckets must be strictly increasing")
        self.buckets: tuple[float, ...] = tuple(bounds)
        self._series: dict[LabelKey, _Series] = {}
        if not self.labelnames:
            self._series[()] = _Series(len(bounds) + 1)

    def observe(self, value: float, **labels: object) -> None:
        if value != value:
            raise ValueError(f"histogram {self.name!r}: cannot observe NaN")
        self.observe_labels(self._key(labels), value)

    def observe_labels(self, values: LabelKey, value: float) -> None:
        """``observe`` for a hot path that has the label values as strings, in the declared
        order, and a number that is not NaN: nothing is checked."""
        series = self._series.get(values)
        if series is None:
            series = self._series[values] = _Series(len(self.buckets) + 1)
        # bisect_left: the first bound >= value, i.e. the smallest bucket with value <= le.
        # Past the last bound it lands on the +Inf slot.
        series.counts[bisect_left(self.buckets, value)] += 1
        series.sum += value
        series.count += 1

    def snapshot(self, **labels: object) -> tuple[int, float]:
        """``(count, sum)`` for one label set; for tests and callers."""
        series = self._series.get(self._key(labels))
        return (series.count, series.sum) if series else (0, 0.0)

    def sample_names(self) -> tuple[str, ...]:
        return (self.name, f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count")

    def _stored(self) -> dict[LabelKey, object]:
        return self._series  # type: ignore[return-value]

    def _samples(self) -> Iterator[str]:
        les = [f'"{_format_le(b)}"' for b in self.buckets] + ['"+Inf"']
        for key in sorted(self._series):
            series = self._series[key]
            running = 0
            for le, count in zip(les, series.counts):
                running += count
                yield f"{self.name}_bucket{self._labels(key, 'le=' + le)} {running}"
            labels = self._labels(key)
            yield f"{self.name}_sum{labels} {_format_value(series.sum)}"
            yield f"{self.name}_count{labels} {series.count}"


M = TypeVar("M", bound=_Metric)


class Registry:
    """The metrics one app exposes, rendered in registration order."""

    def __init__(self) -> None:
        self._metrics: list[_Metric] = []
        self._names: set[str] = set()

    def register(self, metric: M) -> M:
        names = metric.sample_names()
        clash = self._names.intersection(names)
        if clash:
            raise ValueError(f"metric name {sorted(clash)[0]!r} is already registered")
        self._names.update(names)
        self._metrics.append(metric)
        return metric

    def counter(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        callback: ValueCallback | None = None,
    ) -> Counter:
        return self.register(Counter(name, help, labelnames, callback))

    def gauge(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        callback: GaugeCallback | None = None,
        combine: str = "sum",
    ) -> Gauge:
        return self.register(Gauge(name, help, labelnames, callback, combine))

    def histogram(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        buckets: Iterable[float] = DEFAULT_BUCKETS,
    ) -> Histogram:
        return self.register(Histogram(name, help, labelnames, buckets))

    def forget(self, label: str, value: str) -> int:
        """Drop every kept series, in every metric, whose ``label`` equals ``value`` (e.g. all
        series of a deleted workflow); how many were dropped."""
        return sum(metric.forget(label, value) for metric in self._metrics)

    def render(self) -> str:
        """The whole exposition, one block per metric, ending with a newline."""
        return "".join(metric.render() for metric in self._metrics)

    def snapshot(self) -> Snapshot:
        """Every metric's current values (callbacks read now) as JSON-able data."""
        result: Snapshot = []
        for metric in self._metrics:
            entry: dict[str, Any] = {
                "name": metric.name, "help": metric.help, "kind": metric.kind, "labelnames": list(metric.labelnames)
            }  # fmt: skip
            if isinstance(metric, Histogram):
                entry["buckets"] = list(metric.buckets)
                entry["series"] = [[list(key), list(s.counts), s.sum, s.count] for key, s in metric._series.items()]
            elif isinstance(metric, (Counter, Gauge)):
                entry["series"] = [[list(key), value] for key, value in metric._current().items()]
                if isinstance(metric, Gauge):
                    entry["combine"] = metric.combine
            result.append(entry)
        return result

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot) -> Registry:
        """A registry holding the snapshot's values, to render them."""
        registry = cls()
        for entry in snapshot:
            name, help, labelnames = entry["name"], entry["help"], entry["labelnames"]
            if entry["kind"] == "histogram":
                histogram = registry.histogram(name, help, labelnames, entry["buckets"])
                histogram._series = {}
                for key, counts, total, count in entry["series"]:
                    series = histogram._series[tuple(key)] = _Series(len(counts))
                    series.counts, series.sum, series.count = list(counts), total, count
            else:
                metric: Counter | Gauge
                if entry["kind"] == "counter":
                    metric = registry.counter(name, help, labelnames)
                else:
                    metric = registry.gauge(name, help, labelnames, combine=entry.get("combine", "sum"))
                metric._values = {tuple(key): value for key, value in entry["series"]}
        return registry


def merge_snapshots(snapshots: Iterable[Snapshot]) -> Snapshot:
    """One snapshot for several processes: each series of a counter or histogram summed, of a
    gauge combined as its ``combine`` says. Metrics keep the order they first appear in; a
    histogram series whose buckets differ from the first one seen is left out (it cannot be
    added up)."""
    merged: dict[str, dict[str, Any]] = {}
    for snapshot in snapshots:
        for entry in snapshot:
            into = merged.get(entry["name"])
            if into is None:
                into = merged[entry["name"]] = {**entry, "series": {}}
            if into["kind"] != entry["kind"]:
                continue
            series: dict[tuple[str, ...], Any] = into["series"]
            if entry["kind"] == "histogram":
                if entry["buckets"] != into["buckets"]:
                    continue
                for key, counts, total, count in entry["series"]:
                    known = series.get(tuple(key))
                    if known is None:
                        series[tuple(key)] = [list(counts), total, count]
                    else:
                        known[0] = [a + b for a, b in zip(known[0], counts)]
                        known[1] += total
                        known[2] += count
                continue
            combine = {"max": max, "min": min}.get(into.get("combine", "sum"), _add)
            for key, value in entry["series"]:
                known = series.get(tuple(key))
                series[tuple(key)] = value if known is None else combine(known, value)
    result: Snapshot = []
    for entry in merged.values():
        if entry["kind"] == "histogram":
            entry["series"] = [[list(key), *rest] for key, rest in entry["series"].items()]
        else:
            entry["series"] = [[list(key), value] for key, value in entry["series"].items()]
        result.append(entry)
    return result


def forget_in_snapshot(snapshot: Snapshot, label: str, value: str) -> Snapshot:
    """The snapshot without the series whose ``label`` equals ``value`` (Registry.forget for
    values kept as a snapshot)."""
    result: Snapshot = []
    for entry in snapshot:
        if label in entry["labelnames"]:
            index = entry["labelnames"].index(label)
            entry = {**entry, "series": [series for series in entry["series"] if series[0][index] != value]}
        result.append(entry)
    return result


def _add(a: float, b: float) -> float:
    return a + b
