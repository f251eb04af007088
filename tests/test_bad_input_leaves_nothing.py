"""A user's mistake caught before the first run leaves no results folder behind, and a
max_length above the model's position limit is a one-line config error."""

from __future__ import annotations

import pytest

from peftlab.cli.run import main


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ("text,label\n", "0 distinct value"),  # empty file
        ("text,label\na,1\nb,1\nc,1\n", "1 distinct value"),  # one class
        ("text,label\na,\nb,\n", "label"),  # missing labels
        ("\x00\x01\x02garbage", ""),  # unreadable
        (None, "no such file"),  # missing file
    ],
    ids=["empty", "one-class", "missing-labels", "unreadable", "missing-file"],
)
def test_a_data_error_leaves_no_results_folder(tmp_path, tiny_bert, capsys, data, says):
    source = tmp_path / "d.csv"
    if data is not None:
        source.write_text(data)
    exp = tmp_path / "e.yaml"
    exp.write_text(
        f"name: bad\nmodel: {tiny_bert}\ndata: {{source: {source}, max_length: 32}}\n"
        f"train: {{steps: 2, batch_size: 2}}\nseeds: [0]\noutput_dir: {tmp_path / 'results'}\n"
        "methods: [{method: lora, lr: 1.0e-3}]\n"
    )
    assert main([str(exp)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and says in err[0]
    assert not (tmp_path / "results").exists()  # not even the parent the command created for it


def test_a_target_that_matches_nothing_leaves_no_results_folder(tmp_path, experiment_file, capsys):
    exp = experiment_file("  - {method: lora, lr: 1.0e-3, target_modules: [nowhere]}\n")
    assert main([str(exp)]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert not (tmp_path / "results" / "tiny").exists()


def test_a_parent_that_holds_other_results_is_kept(tmp_path, experiment_file):
    exp = experiment_file("  - {method: lora, lr: 1.0e-3, target_modules: [nowhere]}\n")
    (tmp_path / "results" / "other").mkdir(parents=True)
    assert main([str(exp)]) == 2
    assert not (tmp_path / "results" / "tiny").exists() and (tmp_path / "results" / "other").is_dir()


def test_an_existing_results_folder_is_left_as_it_was(tmp_path, experiment_file):
    exp = experiment_file("  - {method: lora, lr: 1.0e-3, target_modules: [nowhere]}\n")
    (tmp_path / "results" / "tiny").mkdir(parents=True)
    assert main([str(exp)]) == 2
    assert (tmp_path / "results" / "tiny").is_dir()


def test_max_length_above_the_position_limit_names_the_limit(tmp_path, experiment_file, capsys):
    exp = experiment_file()
    exp.write_text(exp.read_text().replace("max_length: 32", "max_length: 100000"))
    assert main([str(exp)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "data.max_length: 100000 is above the model's position limit of 128 tokens" in err
    assert "allowed: 1..128" in err
    assert not (tmp_path / "results" / "tiny").exists()
