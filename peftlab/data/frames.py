"""What every data source module shares: the builtin prefix, the one-line error, the canonical split frame.

A leaf of its own so `data/builtin.py` and `data/sources.py` can both use it without importing
each other (sources dispatches to builtin; builtin needs only these).
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from peftlab.errors import UserError

BUILTIN_PREFIX = "builtin:"


class DataSourceError(UserError, ValueError):
    """A user-facing problem with a data source; str(err) is ONE line naming the source and what is allowed.

    A UserError so the CLI prints it as one line (no traceback); a ValueError for callers
    that only know the standard hierarchy.
    """


def make_frame(texts: Iterable[str], labels: Iterable[int]) -> pd.DataFrame:
    """Build a split in the canonical shape (``text`` str, ``label`` int64, fresh index)."""
    frame = pd.DataFrame({"text": list(texts), "label": list(labels)})
    frame["text"] = frame["text"].astype(str)
    frame["label"] = frame["label"].astype("int64")
    return frame.reset_index(drop=True)
