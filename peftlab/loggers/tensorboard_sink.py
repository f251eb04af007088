"""TensorBoard: event files under `<dir>/<experiment>/[<study>/]<run_id>/`, so one `--logdir` shows them all.

`dir` None is `<output_dir>/tensorboard` (`tensorboard --logdir results/tensorboard`). The resolved
config is the run's hyperparameters (the HParams tab, with the final metrics beside them) and a
JSON text; steps and evaluations are scalars at their optimiser step.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from peftlab.config.loggers import TensorBoardParams
from peftlab.loggers.base import RunInfo, flat_params


def log_dir(params: TensorBoardParams, info: RunInfo) -> Path:
    base = Path(params.dir).resolve() if params.dir else info.output_dir / "tensorboard"
    group = base / info.experiment / info.study if info.study else base / info.experiment
    return group / info.run_id


class TensorBoardSink:
    def __init__(self, params: TensorBoardParams, info: RunInfo) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.info = info
        self.dir = log_dir(params, info)
        self.writer = SummaryWriter(log_dir=str(self.dir))
        self.where = {"log_dir": str(self.dir)}
        self.writer.add_text("config", "```json\n" + json.dumps(info.config, indent=2, default=str) + "\n```", 0)

    def log(self, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def finish(self, step: int, metrics: dict[str, float], status: str) -> None:
        from torch.utils.tensorboard.summary import hparams

        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
        hparam_dict: dict[str, Any] = {**flat_params(self.info.config), "run_id": self.info.run_id, "status": status}
        for summary in hparams(hparam_dict, metrics):  # the HParams tab: config beside the final metrics
            self.writer.file_writer.add_summary(summary)
        self.writer.close()
