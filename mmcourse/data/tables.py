"""Tables: small tables with questions, and a tabular classification task.

``TableWorld`` makes small relational tables (weather in cities, a fruit stall, class marks, a
sports league) with WikiTableQuestions-style questions whose answers are exact strings: a cell
lookup, a count, the row with the largest or smallest value, a column sum, a comparison of two
rows. ``Table.to_text`` writes a table in the serialisations language models are fed (Markdown,
CSV, JSON, HTML, one sentence per row), so that 39.2 and 41.6 can compare them.

``tabular_task`` is a classic tabular data set, shop orders with numeric and categorical columns,
whose label depends on interactions between columns: what feature tokenisation (FT-Transformer)
and serialising rows to text (TabLLM) are compared on.

Built in §39.2; used in §41.6 (table reasoning).
"""
from __future__ import annotations

import csv
import html
import io
import json
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from mmcourse.data.shapes import COLORS, SHAPES, _check_choice

SPLITS: tuple[str, ...] = ("train", "val", "test")
_SPLIT_IDS = {name: k for k, name in enumerate(SPLITS)}
FORMATS: tuple[str, ...] = ("markdown", "csv", "json", "html", "sentences")
QA_KINDS: tuple[str, ...] = ("lookup", "count", "max", "min", "sum", "comparison")
DAYS: tuple[str, ...] = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class _Theme:
    """What one kind of table holds: a key column naming the rows, numeric columns with their
    ranges, and one categorical column."""

    title: str
    key: str
    plural: str
    names: tuple[str, ...]
    numeric: dict[str, tuple[int, int]]
    categorical: tuple[str, tuple[str, ...]]


THEMES: tuple[_Theme, ...] = (
    _Theme("Weather on {day}", "city", "cities",
           ("Paris", "Lima", "Oslo", "Cairo", "Delhi", "Tokyo", "Quito", "Perth", "Dakar", "Seoul", "Rome",
            "Lagos", "Hanoi", "Bern", "Minsk", "Accra"),
           {"temperature": (-5, 35), "rainfall": (0, 40), "wind": (0, 60)},
           ("outlook", ("sunny", "cloudy", "rainy", "foggy"))),
    _Theme("Fruit stall on {day}", "fruit", "fruits",
           ("apple", "pear", "plum", "mango", "lemon", "kiwi", "peach", "grape", "cherry", "banana", "lime", "fig"),
           {"price": (10, 99), "stock": (0, 60), "sold": (0, 40)},
           ("colour", tuple(COLORS))),
    _Theme("Class marks, {day} test", "student", "students",
           ("Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jia", "Kofi", "Lena", "Mo",
            "Nia", "Omar", "Priya"),
           {"maths": (0, 100), "physics": (0, 100), "art": (0, 100)},
           ("house", ("north", "south", "east", "west"))),
    _Theme("League table after {day}", "team", "teams",
           ("Lions", "Tigers", "Bears", "Wolves", "Eagles", "Sharks", "Hawks", "Foxes", "Owls", "Bulls", "Rams",
            "Otters"),
           {"wins": (0, 12), "losses": (0, 12), "goals": (0, 40)},
           ("kit", ("red", "blue", "green", "yellow", "white"))),
)


class TableQA(NamedTuple):
    """A question about a table, its exact answer, and its kind (one of ``QA_KINDS``)."""

    question: str
    answer: str
    kind: str


@dataclass
class Table:
    """A generated table: ``rows`` are dicts from column name to a str or int cell; the first
    column is the key that names each row."""

    index: int
    split: str
    title: str
    columns: list[str]
    rows: list[dict]
    qa: list[TableQA] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.columns[0]

    def to_text(self, fmt: str = "markdown") -> str:
        """Serialise the table (without its title) as "markdown", "csv", "json" (a list of records),
        "html" or "sentences" (one sentence per row naming every cell)."""
        _check_choice("fmt", fmt, FORMATS)
        cells = [[str(r[c]) for c in self.columns] for r in self.rows]
        if fmt == "markdown":
            lines = [self.columns, ["---"] * len(self.columns), *cells]
            return "\n".join("| " + " | ".join(line) + " |" for line in lines)
        if fmt == "csv":
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerows([self.columns, *cells])
            return buf.getvalue().rstrip("\n")
        if fmt == "json":
            return json.dumps(self.rows)
        if fmt == "html":
            def tr(tag: str, values: list[str]) -> str:
                return "<tr>" + "".join(f"<{tag}>{html.escape(v)}</{tag}>" for v in values) + "</tr>"
            return "\n".join(["<table>", tr("th", self.columns), *(tr("td", c) for c in cells), "</table>"])
        sentences = []
        for r in self.rows:
            parts = [f"the {c} is {r[c]}" for c in self.columns[1:]]
            sentences.append(f"For {r[self.key]}, " + ", ".join(parts[:-1]) + f" and {parts[-1]}.")
        return "\n".join(sentences)


class TableWorld:
    """A deterministic generator of small tables with questions.

    Args:
        seed: the world's seed; ``(seed, split, index)`` fixes a table.
        min_rows, max_rows: each table has between ``min_rows`` and ``max_rows`` rows (3 and 8 by default).

    Example:
        >>> table = TableWorld(seed=0).table(0)
        >>> print(table.to_text("markdown")); table.qa[0]
    """

    def __init__(self, seed: int = 0, min_rows: int = 3, max_rows: int = 8) -> None:
        if not (isinstance(min_rows, int) and isinstance(max_rows, int) and 2 <= min_rows <= max_rows <= 12):
            raise ValueError(f"min_rows and max_rows must be ints with 2 <= min_rows <= max_rows <= 12; "
                             f"got {min_rows!r}, {max_rows!r}")
        self.seed = seed
        self.min_rows, self.max_rows = min_rows, max_rows

    def table(self, index: int, split: str = "train") -> Table:
        """Generate table ``index`` of ``split`` ("train", "val" or "test")."""
        _check_choice("split", split, SPLITS)
        if not isinstance(index, (int, np.integer)) or index < 0:
            raise ValueError(f"index must be a non-negative int; got {index!r}")
        rng = np.random.default_rng([self.seed, _SPLIT_IDS[split], int(index), 7])
        theme = THEMES[rng.integers(len(THEMES))]
        n = int(rng.integers(self.min_rows, self.max_rows + 1))
        names = [theme.names[k] for k in rng.choice(len(theme.names), size=n, replace=False)]
        cat, values = theme.categorical
        rows = []
        for name in names:
            row = {theme.key: name}
            row.update({c: int(rng.integers(lo, hi + 1)) for c, (lo, hi) in theme.numeric.items()})
            row[cat] = values[rng.integers(len(values))]
            rows.append(row)
        columns = [theme.key, *theme.numeric, cat]
        table = Table(int(index), split, theme.title.format(day=DAYS[rng.integers(7)]), columns, rows)
        table.qa = _questions(rng, table, theme)
        return table

    def tables(self, n: int, split: str = "train", start: int = 0) -> list[Table]:
        """Tables ``start .. start+n-1`` of ``split``."""
        return [self.table(i, split) for i in range(start, start + n)]


def _questions(rng: np.random.Generator, table: Table, theme: _Theme) -> list[TableQA]:
    """One question of each kind in ``QA_KINDS`` (a kind is left out when the table has no
    unambiguous question of it)."""
    rows, key, numeric = table.rows, theme.key, list(theme.numeric)
    cat, cat_values = theme.categorical
    items = []
    # lookup: one cell
    r, c = rows[rng.integers(len(rows))], table.columns[1 + rng.integers(len(table.columns) - 1)]
    items.append(TableQA(f"what is the {c} of {r[key]}?", str(r[c]), "lookup"))
    # count: rows above a threshold that no cell equals, or rows with one category
    c = numeric[rng.integers(len(numeric))]
    if rng.random() < 0.5:
        v = int(rng.integers(*theme.numeric[c]))
        while any(row[c] == v for row in rows):
            v += 1
        items.append(TableQA(f"how many {theme.plural} have a {c} above {v}?",
                             str(sum(row[c] > v for row in rows)), "count"))
    else:
        value = cat_values[rng.integers(len(cat_values))]
        items.append(TableQA(f"how many {theme.plural} have {cat} {value}?",
                             str(sum(row[cat] == value for row in rows)), "count"))
    # max and min: a column whose extreme is held by one row only
    for kind, word, pick in (("max", "highest", max), ("min", "lowest", min)):
        cols = [c for c in numeric if sum(row[c] == pick(x[c] for x in rows) for row in rows) == 1]
        if cols:
            c = cols[rng.integers(len(cols))]
            best = pick(rows, key=lambda row: row[c])
            items.append(TableQA(f"which {key} has the {word} {c}?", best[key], kind))
    # sum of a column
    c = numeric[rng.integers(len(numeric))]
    items.append(TableQA(f"what is the sum of the {c} column?", str(sum(row[c] for row in rows)), "sum"))
    # comparison of two rows that differ
    c = numeric[rng.integers(len(numeric))]
    pairs = [(a, b) for a in rows for b in rows if a[c] != b[c]]
    if pairs:
        a, b = pairs[rng.integers(len(pairs))]
        word, pick = (("higher", max), ("lower", min))[rng.integers(2)]
        winner = pick((a, b), key=lambda row: row[c])
        items.append(TableQA(f"which has a {word} {c}, {a[key]} or {b[key]}?", winner[key], "comparison"))
    return items


# ---------------------------------------------------------------------- tabular classification
WEEKDAYS: tuple[str, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
WARM_COLORS: tuple[str, ...] = ("red", "orange", "yellow")
LARGE_ORDER = 40.0  #: an order is large when quantity x price exceeds this


@dataclass(frozen=True)
class TabularSpec:
    """What the columns of ``tabular_task`` are: names in order, ``kinds[name]`` "numeric" or
    "categorical", ``categories[name]`` the values of each categorical column, the label's name and
    the rule that makes it."""

    names: tuple[str, ...]
    kinds: dict[str, str]
    categories: dict[str, tuple[str, ...]]
    label: str
    rule: str

    @property
    def numeric(self) -> tuple[str, ...]:
        return tuple(n for n in self.names if self.kinds[n] == "numeric")

    @property
    def categorical(self) -> tuple[str, ...]:
        return tuple(n for n in self.names if self.kinds[n] == "categorical")

    def encode(self, features: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Numeric columns as (N, n_numeric) float32 and categorical ones as category indices
        (N, n_categorical) int64: the inputs of a feature tokeniser."""
        x_num = np.stack([np.asarray(features[n], dtype=np.float32) for n in self.numeric], axis=1)
        x_cat = np.stack([_category_index(self.categories[n], features[n], n) for n in self.categorical], axis=1)
        return x_num, x_cat

    def row_text(self, features: dict[str, np.ndarray], i: int) -> str:
        """Row ``i`` as text ("quantity is 3, price is 12.5, colour is red, ..."), TabLLM's
        serialisation of a row."""
        return ", ".join(f"{n} is {_fmt(features[n][i])}" for n in self.names)


def _category_index(categories: tuple[str, ...], values: np.ndarray, name: str) -> np.ndarray:
    lookup = {c: k for k, c in enumerate(categories)}
    bad = sorted({str(v) for v in values} - set(lookup))
    if bad:
        raise ValueError(f"unknown {name} values {bad}; allowed values: {', '.join(categories)}")
    return np.array([lookup[str(v)] for v in values], dtype=np.int64)


def _fmt(value) -> str:
    return f"{value:g}" if isinstance(value, (float, np.floating)) else str(value)


def tabular_task(n: int, seed: int = 0, split: str = "train",
                 label_noise: float = 0.05) -> tuple[dict[str, np.ndarray], np.ndarray, TabularSpec]:
    """Shop orders and whether each one is returned.

    Columns: ``quantity`` (1-10), ``price`` (1.00-20.00), ``colour`` (ShapesWorld's six),
    ``shape`` (ShapesWorld's five), ``weekday`` ("Mon".."Sun"). The label is 1 ("returned") when the
    order is large (quantity x price > 40) *or* it is a warm-coloured item bought at the weekend,
    but not both; then ``label_noise`` of the labels are flipped. Neither part can be read off a
    single column: a model that adds up per-column effects misses both interactions.

    Returns ``(features, labels, spec)``: features maps each column to an (n,) array (int64,
    float32 or str), labels is (n,) int64, spec a ``TabularSpec``.
    """
    _check_choice("split", split, SPLITS)
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive int; got {n!r}")
    if not 0.0 <= label_noise <= 0.5:
        raise ValueError(f"label_noise must be in [0, 0.5]; got {label_noise!r}")
    rng = np.random.default_rng([seed, _SPLIT_IDS[split], 11])
    colors = tuple(COLORS)
    features = {
        "quantity": rng.integers(1, 11, size=n).astype(np.int64),
        "price": (rng.integers(100, 2001, size=n) / 100).astype(np.float32),
        "colour": np.array(colors)[rng.integers(len(colors), size=n)],
        "shape": np.array(SHAPES)[rng.integers(len(SHAPES), size=n)],
        "weekday": np.array(WEEKDAYS)[rng.integers(7, size=n)],
    }
    large = features["quantity"] * features["price"].astype(np.float64) > LARGE_ORDER
    warm_weekend = np.isin(features["colour"], WARM_COLORS) & np.isin(features["weekday"], ("Sat", "Sun"))
    labels = (large ^ warm_weekend) ^ (rng.random(n) < label_noise)
    spec = TabularSpec(
        names=("quantity", "price", "colour", "shape", "weekday"),
        kinds={"quantity": "numeric", "price": "numeric", "colour": "categorical", "shape": "categorical",
               "weekday": "categorical"},
        categories={"colour": colors, "shape": SHAPES, "weekday": WEEKDAYS},
        label="returned",
        rule=f"returned = (quantity * price > {LARGE_ORDER:g}) XOR (colour in {{{', '.join(WARM_COLORS)}}} "
             f"and weekday in {{Sat, Sun}}), with {label_noise:g} of the labels flipped",
    )
    return features, labels.astype(np.int64), spec
