"""The docs stay true to the code: the methods page is generated, generated tables have a home.

These check the mechanics (a stale generated page, a lost marker, a broken link), not prose.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"scripts_{name}", ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_methods_page_matches_the_registry() -> None:
    gen_docs = _script("gen_docs")
    assert gen_docs.main(["--check"]) == 0, "docs/methods.md is stale: run python scripts/gen_docs.py"


def test_methods_page_lists_every_method_with_its_defaults() -> None:
    from peftlab.methods import get_method, method_names

    text = _script("gen_docs").render_methods()
    for name in method_names():
        assert f"## `{name}`" in text
        assert f"default `lr`: {get_method(name).default_lr:g}" in text
    lora = text.split("## `lora`", 1)[1].split("\n## ", 1)[0]
    assert "| `r` | int | `8` |" in lora
    assert "| `bias` | none \\| all \\| lora_only | `none` |" in lora


def test_every_generated_block_has_its_markers_in_its_page() -> None:
    update = _script("update_readme")
    for name, (_, page) in update.BLOCKS.items():
        text = (ROOT / page).read_text()
        assert update.marker_pattern(name).search(text), f"{page} lacks the <!-- {name}:start/end --> markers"


def test_update_pastes_each_block_into_its_own_page_and_keeps_the_prose(tmp_path: Path) -> None:
    update = _script("update_readme")
    for name, (source, page) in update.BLOCKS.items():
        (tmp_path / source).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / source).write_text(f"| fresh {name} |\n")
        (tmp_path / page).parent.mkdir(parents=True, exist_ok=True)
        old = (tmp_path / page).read_text() if (tmp_path / page).is_file() else ""
        (tmp_path / page).write_text(old + f"reading of {name}\n<!-- {name}:start -->\nold\n<!-- {name}:end -->\n")
    assert update.main([], root=tmp_path) == 0
    for name, (_, page) in update.BLOCKS.items():
        text = (tmp_path / page).read_text()
        assert f"reading of {name}\n<!-- {name}:start -->\n| fresh {name} |\n<!-- {name}:end -->" in text
        assert "old" not in text


def test_update_writes_nothing_when_a_block_cannot_be_pasted(tmp_path: Path) -> None:
    update = _script("update_readme")
    names = list(update.BLOCKS)
    first, second = names[0], names[1]
    for name in (first, second):
        source, page = update.BLOCKS[name]
        (tmp_path / source).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / source).write_text("new\n")
        (tmp_path / page).parent.mkdir(parents=True, exist_ok=True)
    first_page = tmp_path / update.BLOCKS[first][1]
    first_page.write_text(f"<!-- {first}:start -->\nold\n<!-- {first}:end -->\n")
    second_page = tmp_path / update.BLOCKS[second][1]
    if second_page != first_page:
        second_page.write_text("no markers here\n")
    else:
        pytest.skip("the first two blocks share a page")
    assert update.main([first, second], root=tmp_path) == 2
    assert "old" in first_page.read_text()


DOC_PAGES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md"))]


@pytest.mark.parametrize("page", DOC_PAGES)
def test_relative_links_point_at_files_that_exist(page: str) -> None:
    path = ROOT / page
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
        if "://" in target:
            continue
        resolved = (path.parent / target).resolve()
        assert resolved.exists(), f"{page} links to {target}, which does not exist"
