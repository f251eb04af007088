"""`linear_probe`: representation forgetting, a logistic regression on frozen features of a second task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from peftlab.config.probes import LinearProbeParams
from peftlab.probes.base import Probe, RunContext, classification_splits, eval_mode, pooled_features, register


@register
class LinearProbe(Probe):
    """Representation forgetting: a logistic regression on frozen pooled features of a second task."""

    name = "linear_probe"
    summary = "logistic-regression probe on frozen mean-pooled features of a second task; delta = before − after"
    params_type = LinearProbeParams
    tasks = ("classification",)
    score = "accuracy"
    better = "max"

    def load(self, tokenizer: Any, base_dir: Path | None) -> None:
        p: LinearProbeParams = self.params
        data, self.splits = classification_splits(
            p, tokenizer, base_dir, {"train": p.train_limit, "validation": None, "test": p.test_limit}
        )
        self.fingerprint = data.fingerprint

    def measure(self, model: Any, run: RunContext) -> dict[str, Any]:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        p: LinearProbeParams = self.params
        with eval_mode(model):
            train = pooled_features(model, self.splits["train"], p.batch_size, run)
            test = pooled_features(model, self.splits["test"], p.batch_size, run)
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=p.C, max_iter=2000, random_state=p.seed))
        clf.fit(train, self.splits["train"].labels)
        accuracy = float((clf.predict(test) == self.splits["test"].labels).mean())
        return {"accuracy": accuracy, "train": len(train), "test": len(test)}
