"""The `peftlab` console command: subcommands dispatch to each module's own `main`."""

from __future__ import annotations

import pytest

from peftlab.cli import COMMANDS, main


def test_run_subcommand_is_python_m_peftlab_run(experiment_file, capsys):
    path = experiment_file()
    assert main(["run", str(path), "--dry-run"]) == 0
    via_run = capsys.readouterr().out
    from peftlab.cli.run import main as run_main

    assert run_main([str(path), "--dry-run"]) == 0
    assert capsys.readouterr().out == via_run and "runs →" in via_run


def test_an_experiment_file_without_a_subcommand_still_runs(experiment_file, capsys):
    assert main([str(experiment_file()), "--dry-run"]) == 0
    assert "runs →" in capsys.readouterr().out


def test_unknown_command_is_a_one_line_error(capsys):
    assert main(["trian"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown command 'trian'") and len(err.splitlines()) == 1


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert "usage:" in capsys.readouterr().out
