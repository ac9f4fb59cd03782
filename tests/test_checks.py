"""The notebooks' checks: strict mode raises, a reader's session prints, record mode logs."""
import ast
import json

import pytest

from mmcourse import checks


def run_cell(code: str, namespace: dict | None = None) -> dict:
    """Run ``code`` as a notebook cell would after :func:`checks.install`."""
    tree = ast.fix_missing_locations(checks.AssertRewriter().visit(ast.parse(code)))
    namespace = {checks.AssertRewriter.MODULE: checks} if namespace is None else namespace
    namespace.setdefault(checks.AssertRewriter.MODULE, checks)
    exec(compile(tree, "<cell>", "exec"), namespace)  # test code written here, not generated
    return namespace


def test_strict_mode_raises_with_the_values(monkeypatch):
    monkeypatch.setenv("MMCOURSE_STRICT", "1")
    monkeypatch.delenv("MMCOURSE_CHECK_LOG", raising=False)
    with pytest.raises(AssertionError, match=r"acc >= 0.95; acc = 0.931"):
        run_cell("acc = 0.931\nassert acc >= 0.95")
    with pytest.raises(AssertionError, match="why not"):
        run_cell("assert [] , 'why not'")
    run_cell("acc = 0.97\nassert 0.9 <= acc < 1.0, acc\nassert acc")  # passes quietly


def test_reader_session_prints_and_goes_on(monkeypatch, capsys):
    monkeypatch.delenv("MMCOURSE_STRICT", raising=False)
    monkeypatch.delenv("MMCOURSE_CHECK_LOG", raising=False)
    ns = run_cell("acc = 0.931\nassert 0.95 <= acc, ('flamingo', acc)\nafter = True")
    out = capsys.readouterr().out
    assert ns["after"] is True
    assert "0.95 <= acc" in out and "acc = 0.931" in out and "0.95 =" not in out
    assert "flamingo" in out and "hardware" in out


def test_message_is_evaluated_only_on_failure(monkeypatch):
    monkeypatch.setenv("MMCOURSE_STRICT", "1")
    monkeypatch.delenv("MMCOURSE_CHECK_LOG", raising=False)
    run_cell("assert 1 == 1, undefined_name")
    with pytest.raises(NameError):
        run_cell("assert 1 == 2, undefined_name")


def test_chained_comparisons_evaluate_each_operand_once(monkeypatch):
    monkeypatch.setenv("MMCOURSE_STRICT", "1")
    monkeypatch.delenv("MMCOURSE_CHECK_LOG", raising=False)
    ns = run_cell("calls = []\ndef f():\n    calls.append(1)\n    return 2\n"
                  "assert 1 < f() <= 2 != 3\nassert 'a' in 'cat' and 3 not in [1]\n"
                  "def inner(x):\n    assert x is not None\n    return x\ninner(1)")
    assert ns["calls"] == [1]
    with pytest.raises(AssertionError, match="x is not None"):
        ns["inner"](None)


def test_record_mode_logs_every_check_and_never_raises(monkeypatch, tmp_path):
    log = tmp_path / "checks.jsonl"
    monkeypatch.setenv("MMCOURSE_STRICT", "1")
    monkeypatch.setenv("MMCOURSE_CHECK_LOG", str(log))
    monkeypatch.setenv("MMCOURSE_NOTEBOOK", "nb.ipynb")
    run_cell("import numpy as np\nacc = np.float32(0.5)\nassert acc >= 0.95\nassert True")
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["passed"] for r in rows] == [False, True]
    assert rows[0]["values"] == [["acc", 0.5], ["0.95", 0.95]]
    assert rows[0]["notebook"] == "nb.ipynb" and rows[0]["source"] == "acc >= 0.95"


def test_install_outside_ipython_is_a_no_op():
    assert checks.install() is False


def test_a_conjunction_is_checked_part_by_part(monkeypatch, tmp_path):
    log = tmp_path / "checks.jsonl"
    monkeypatch.setenv("MMCOURSE_CHECK_LOG", str(log))
    run_cell("a, b = 0.99, 0.5\nassert a >= 0.9 and b >= 0.9, (a, b)")
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["source"], r["passed"]) for r in rows] == [("a >= 0.9", True), ("b >= 0.9", False)]


def test_only_check_cells_are_rewritten_in_ipython(monkeypatch, capsys):
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.delenv("MMCOURSE_STRICT", raising=False)
    monkeypatch.delenv("MMCOURSE_CHECK_LOG", raising=False)
    shell = InteractiveShell.instance()
    assert checks.install(shell) and checks.install(shell)  # twice is harmless
    assert sum(isinstance(t, checks.AssertRewriter) for t in shell.ast_transformers) == 1
    result = shell.run_cell(f"{checks.MARKER}\nacc = 0.5\nassert acc > 0.9\nafter = 1")
    assert result.success and shell.user_ns["after"] == 1
    assert "acc = 0.5" in capsys.readouterr().out
    result = shell.run_cell("assert 1 == 2, 'a reader assert'")  # not a check cell
    assert isinstance(result.error_in_exec, AssertionError)
