"""Weights & Biases: a W&B run per run id, grouped by experiment (a search's trials grouped by their study).

`project` None is the experiment's name; `mode` None leaves W&B its own choice ($WANDB_MODE, online
when logged in); `offline` writes `<dir>/wandb/offline-run-*/run-*.wandb` for a later `wandb sync`.
System metrics, console capture and code saving are off: peftlab measures its own costs, and a
tracker must not add work to the step it times.
"""

from __future__ import annotations

from pathlib import Path

from peftlab.config.loggers import WandbParams
from peftlab.loggers.base import RunInfo

_EXIT = {"ok": 0, "pruned": 0}  # anything else: a failed run (exit code 1)


class WandbSink:
    def __init__(self, params: WandbParams, info: RunInfo) -> None:
        import wandb

        folder = Path(params.dir).resolve() if params.dir else info.results_dir
        folder.mkdir(parents=True, exist_ok=True)
        settings = wandb.Settings(
            console="off", silent=True, x_disable_stats=True, x_save_requirements=False, disable_code=True
        )
        self.run = wandb.init(
            project=params.project or info.experiment,
            entity=params.entity,
            name=info.run_id,
            group=info.group,
            job_type="trial" if info.study is not None else "run",
            tags=[info.method, *params.tags],
            config={**info.config, "run_id": info.run_id, **({"trial": info.trial} if info.study else {})},
            dir=str(folder),
            mode=params.mode,
            reinit="create_new",
            settings=settings,
        )
        self.where = {"project": self.run.project, "id": self.run.id, "dir": str(Path(self.run.dir).parent)}

    def log(self, step: int, values: dict[str, float]) -> None:
        self.run.log(values, step=step)

    def finish(self, step: int, metrics: dict[str, float], status: str) -> None:
        self.run.log(metrics, step=step)
        self.run.summary.update({**metrics, "status": status})
        self.run.finish(exit_code=_EXIT.get(status, 1))
