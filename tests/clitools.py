"""Drive the real `xstilts` entry point in-process, as a user's shell would."""

import sys

from xstilts.cli import main


def run(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """Run `xstilts ARGS`; return (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["xstilts", *map(str, args)])
    code = 0
    try:
        main()
    except SystemExit as exit_:
        code = exit_.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def cli(monkeypatch, capsys, *args) -> str:
    """Run `xstilts ARGS`; assert it succeeded and return what it printed on stdout."""
    code, out, err = run(monkeypatch, capsys, *args)
    assert code == 0, err
    return out
