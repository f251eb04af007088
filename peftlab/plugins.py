"""Methods, tasks and probes from the user's own code: Python entry points and `include:` folders.

A plugin is a module that calls the same `register` a built-in calls: `peftlab.methods.register`
for a method, `peftlab.task_specs.register` for a task's declaration, and
`peftlab.config.probes.register_probe_kind` for a probe's declaration (its measuring class is
registered with `peftlab.probes.register` in the module the declaration names as `runtime`).
peftlab finds plugins two ways, as lm-eval's `TaskManager(include_path=...)` and pytest's
plugins do:

- entry points of any installed distribution, in the groups `peftlab.methods`, `peftlab.tasks`
  and `peftlab.probes` (`[project.entry-points."peftlab.methods"] mine = "mypkg.spec"`). A group
  is loaded once, the first time its registry is asked for a name, after the built-ins have
  registered, so a clash is the plugin's;
- `include:` in an experiment file: folders whose `*.py` files (not those starting with `_`)
  are imported, once each, before the file is validated. The folder is appended to `sys.path`, so
  a declaration can name a runtime module beside it (`_my_task_runtime.py`), imported by name
  only when a run needs it.

Config validation stays torch-free only if what is loaded here is: an entry point or an included
file holds a declaration (params, summary, a runtime module's name), and its heavy part imports
torch inside the functions a run calls. A plugin that fails to import, or whose name is already
taken, is a `PluginError`: one line naming the plugin and the problem, exit code 2.
"""

from __future__ import annotations

import importlib
import sys
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from peftlab.errors import UserError

GROUPS = ("peftlab.methods", "peftlab.tasks", "peftlab.probes")

_loaded_groups: set[str] = set()
_loaded_files: dict[Path, str] = {}  # included file -> the module name it was imported as
_loading: list[str] = []  # the plugin being imported now: named by a register() that finds a clash


class PluginError(UserError):
    """A plugin that cannot be imported, or whose name clashes with one already registered."""


def clash(kind: str, name: str, owner: str) -> ValueError:
    """What a registry raises for a name already taken: while a plugin loads, a `PluginError` naming it."""
    if _loading:
        return PluginError(f"{_loading[-1]}: {kind} {name!r} is already registered by {owner}; give it another name")
    return ValueError(f"{kind} {name!r} is registered twice (already by {owner})")


def load_entry_points(group: str) -> None:
    """Import every entry point of `group` (`peftlab.methods`, ...) once; each registers what it declares."""
    if group in _loaded_groups:
        return
    _loaded_groups.add(group)  # first: a plugin that asks its registry for names must not load itself again
    for point in sorted(entry_points(group=group), key=lambda p: p.name):
        _load(_describe(point), point.load)


def include(folders: list[Path], origin: str) -> None:
    """Import the `*.py` files of each folder (not `_*.py`), once per file, the folder appended to `sys.path`."""
    for folder in folders:
        folder = folder.resolve()
        if str(folder) not in sys.path:
            sys.path.append(str(folder))
        for path in sorted(folder.glob("*.py")):
            if path.name.startswith("_") or path in _loaded_files:
                continue
            where = f"{origin}: include: {path}"
            module = _load(where, lambda path=path: importlib.import_module(path.stem))
            found = Path(getattr(module, "__file__", "") or "").resolve()
            if found != path:
                raise PluginError(f"{where}: its name is taken by the module {path.stem!r} at {found}; rename the file")
            _loaded_files[path] = path.stem


def _load(where: str, load: object) -> object:
    _loading.append(where)
    try:
        return load()  # type: ignore[operator]
    except PluginError:
        raise
    except Exception as err:  # any failure of the user's module is one line naming it
        problem = str(err).splitlines()[0] if str(err) else ""
        raise PluginError(f"{where}: failed to import: {type(err).__name__}: {problem}") from None
    finally:
        _loading.pop()


def _describe(point: EntryPoint) -> str:
    dist = getattr(point, "dist", None)
    source = f" of {dist.name}" if dist is not None else ""
    return f"plugin {point.name!r} (entry point {point.group}: {point.name} = {point.value}{source})"
