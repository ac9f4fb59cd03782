"""Tables: answers recomputed from the rows, serialisations that keep every cell, a tabular task
whose label needs interactions."""
import csv
import io
import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from mmcourse.data.tables import (FORMATS, QA_KINDS, SPLITS, WARM_COLORS, TableWorld, TabularSpec, tabular_task)

WORLD = TableWorld(seed=0)
TABLES = WORLD.tables(150)


def test_same_seed_and_index_give_identical_tables():
    a, b = TableWorld(seed=4).table(9, "test"), TableWorld(seed=4).table(9, "test")
    assert (a.title, a.columns, a.rows, a.qa) == (b.title, b.columns, b.rows, b.qa)
    assert TableWorld(seed=1).table(0).to_text("csv") != TableWorld(seed=2).table(0).to_text("csv")


def test_splits_never_share_a_table():
    seen = {}
    for split in SPLITS:
        for i in range(300):
            key = WORLD.table(i, split).to_text("csv")
            assert seen.setdefault(key, split) == split


def test_table_structure():
    kinds = set()
    for t in TABLES:
        assert 3 <= len(t.rows) <= 8 and t.title and t.columns[0] == t.key
        assert all(list(r) == t.columns for r in t.rows)
        assert len({r[t.key] for r in t.rows}) == len(t.rows)  # the key names each row once
        for r in t.rows:
            assert all(isinstance(r[c], int) for c in t.columns[1:-1]) and isinstance(r[t.columns[-1]], str)
        kinds |= {q.kind for q in t.qa}
        assert all(isinstance(q.answer, str) and q.question.endswith("?") for q in t.qa)
    assert kinds == set(QA_KINDS)


def _answer(table, question: str) -> str:
    """Recompute an answer from the rows, reading the question afresh."""
    rows, key = table.rows, table.key
    by_name = {r[key]: r for r in rows}
    if m := re.fullmatch(r"what is the (\w+) of (\w+)\?", question):
        return str(by_name[m[2]][m[1]])
    if m := re.fullmatch(r"how many \w+ have a (\w+) above (-?\d+)\?", question):
        return str(len([r for r in rows if r[m[1]] > int(m[2])]))
    if m := re.fullmatch(r"how many \w+ have (\w+) (\w+)\?", question):
        return str(len([r for r in rows if r[m[1]] == m[2]]))
    if m := re.fullmatch(r"which (\w+) has the (highest|lowest) (\w+)\?", question):
        assert m[1] == key
        values = sorted(r[m[3]] for r in rows)
        best = values[-1] if m[2] == "highest" else values[0]
        (winner,) = [r[key] for r in rows if r[m[3]] == best]  # exactly one row holds it
        return winner
    if m := re.fullmatch(r"what is the sum of the (\w+) column\?", question):
        return str(sum(r[m[1]] for r in rows))
    if m := re.fullmatch(r"which has a (higher|lower) (\w+), (\w+) or (\w+)\?", question):
        a, b = by_name[m[3]][m[2]], by_name[m[4]][m[2]]
        assert a != b
        return m[3] if (a > b) == (m[1] == "higher") else m[4]
    raise AssertionError(f"unparsed question {question!r}")


def test_every_answer_recomputed_from_the_rows():
    n = 0
    for t in TABLES:
        for q in t.qa:
            assert _answer(t, q.question) == q.answer, (t.index, q)
            n += 1
    assert n > 5 * len(TABLES)


class _Cells(HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows, self._in = [], False

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        self._in = tag in ("td", "th")

    def handle_endtag(self, tag):
        self._in = False

    def handle_data(self, data):
        if self._in:
            self.rows[-1].append(data)


@pytest.mark.parametrize("fmt", FORMATS)
def test_serialisations_round_trip_or_contain_every_cell(fmt):
    for t in TABLES[:60]:
        text = t.to_text(fmt)
        grid = [t.columns] + [[str(r[c]) for c in t.columns] for r in t.rows]
        if fmt == "json":
            assert json.loads(text) == t.rows
        elif fmt == "csv":
            assert list(csv.reader(io.StringIO(text))) == grid
        elif fmt == "markdown":
            lines = text.split("\n")
            assert set(lines[1].replace("|", "").split()) == {"---"}
            assert [[c.strip() for c in line.strip("|").split("|")] for line in lines[:1] + lines[2:]] == grid
        elif fmt == "html":
            parser = _Cells()
            parser.feed(text)
            assert parser.rows == grid
        else:  # one sentence per row naming every cell
            sentences = text.split("\n")
            assert len(sentences) == len(t.rows)
            for s, r in zip(sentences, t.rows):
                assert s.startswith(f"For {r[t.key]},") and s.endswith(".")
                for c in t.columns[1:]:
                    assert re.search(rf"the {c} is {re.escape(str(r[c]))}\b", s), (s, c)


def test_tabular_task_format_and_determinism():
    f, y, spec = tabular_task(500)
    assert isinstance(spec, TabularSpec) and spec.names == tuple(f)
    assert spec.numeric == ("quantity", "price") and spec.categorical == ("colour", "shape", "weekday")
    assert f["quantity"].dtype == np.int64 and f["price"].dtype == np.float32 and f["colour"].dtype.kind == "U"
    assert all(v.shape == (500,) for v in f.values()) and y.shape == (500,) and y.dtype == np.int64
    assert f["quantity"].min() >= 1 and f["quantity"].max() <= 10 and 1 <= f["price"].min() <= f["price"].max() <= 20
    for c in spec.categorical:
        assert set(f[c]) <= set(spec.categories[c])
    g, z, _ = tabular_task(500)
    assert np.array_equal(y, z) and all(np.array_equal(f[c], g[c]) for c in f)
    h, _, _ = tabular_task(500, split="val")
    assert not np.array_equal(f["price"], h["price"])
    assert 0.4 < y.mean() < 0.6
    x_num, x_cat = spec.encode(f)
    assert x_num.shape == (500, 2) and x_cat.shape == (500, 3) and x_cat.dtype == np.int64
    assert spec.categories["weekday"][x_cat[7, 2]] == f["weekday"][7]
    assert spec.row_text(f, 0).startswith(f"quantity is {f['quantity'][0]}, price is ")


def test_the_label_follows_the_rule_and_needs_the_interactions():
    f, y, _ = tabular_task(4000, label_noise=0.0)
    large = f["quantity"] * f["price"].astype(np.float64) > 40
    warm_weekend = np.isin(f["colour"], WARM_COLORS) & np.isin(f["weekday"], ["Sat", "Sun"])
    assert np.array_equal(y, (large ^ warm_weekend).astype(np.int64))
    _, noisy, _ = tabular_task(4000)
    assert 0.03 < (noisy != y).mean() < 0.07  # 5 % flipped by default

    def design(f, interactions: bool) -> np.ndarray:
        onehot = [(f[c][:, None] == np.unique(f[c])[None]).astype(float) for c in ("colour", "shape", "weekday")]
        cols = [f["quantity"][:, None] / 10, f["price"][:, None] / 20, *onehot]
        if interactions:  # the products of columns the rule uses
            qp = (f["quantity"] * f["price"])[:, None] / 40
            ww = (np.isin(f["colour"], WARM_COLORS) & np.isin(f["weekday"], ["Sat", "Sun"]))[:, None]
            cols += [qp, ww, qp * ww]
        return np.concatenate(cols, axis=1)

    train, y_train, _ = tabular_task(3000)
    test, y_test, _ = tabular_task(2000, split="test")
    acc = {}
    for inter in (False, True):
        model = LogisticRegression(max_iter=2000).fit(design(train, inter), y_train)
        acc[inter] = model.score(design(test, inter), y_test)
    assert acc[False] < 0.82 and acc[True] > 0.9, acc


def test_bad_arguments_name_the_argument_and_the_allowed_values():
    cases = [
        (lambda: WORLD.table(0, "heldout"), "split", "'train'"),
        (lambda: WORLD.table(-1), "index", "non-negative"),
        (lambda: TABLES[0].to_text("xml"), "fmt", "'markdown'"),
        (lambda: TableWorld(min_rows=5, max_rows=3), "min_rows", "<= max_rows"),
        (lambda: tabular_task(0), "n", "positive"),
        (lambda: tabular_task(10, split="dev"), "split", "'val'"),
        (lambda: tabular_task(10, label_noise=0.9), "label_noise", "[0, 0.5]"),
    ]
    for fn, name, allowed in cases:
        with pytest.raises(ValueError) as err:
            fn()
        assert name in str(err.value) and allowed in str(err.value), str(err.value)
    f, _, spec = tabular_task(3)
    f["colour"] = np.array(["red", "pink", "red"])
    with pytest.raises(ValueError, match="unknown colour values.*pink.*allowed values: red"):
        spec.encode(f)
