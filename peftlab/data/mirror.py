"""Local copies of hub datasets: how a hub id is read offline through the very same `load_dataset` call.

`PEFTLAB_DATASETS_MIRROR=/dir` points hub ids at local copies laid out exactly as the hub's
repositories (`/dir/nyu-mll/glue/README.md` with its `configs:` block, and
`/dir/nyu-mll/glue/mnli/train-00000-of-00001.parquet`, ...): `datasets.load_dataset(path, config)`
then reads them as it reads the hub's, config names and split names included. Ids without a copy
there still go to the hub (or, offline, fail with peftlab's one-line error). The tests use it;
so can a cluster without internet, with copies fetched once (`huggingface-cli download
--repo-type dataset nyu-mll/glue --local-dir /dir/nyu-mll/glue`). A leaf: no `datasets` import.
"""

from __future__ import annotations

import os

MIRROR_ENV = "PEFTLAB_DATASETS_MIRROR"


def dataset_location(hub_id: str) -> tuple[str, bool]:
    """(what `datasets.load_dataset` is given for `hub_id`, whether it is a local copy)."""
    root = os.environ.get(MIRROR_ENV)
    if root:
        local = os.path.join(os.path.expanduser(root), hub_id)
        if os.path.isdir(local):
            return local, True
    return hub_id, False
