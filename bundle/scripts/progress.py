"""A training progress bar with ETA and the running loss, for the configs' ``train#handlers``."""
from __future__ import annotations

from ignite.engine import Engine
from ignite.handlers import ProgressBar


class LossProgressBar(ProgressBar):
    """ignite's tqdm :class:`ProgressBar` (elapsed < remaining time per epoch) that also shows the iteration loss.

    MONAI engines call ``handler.attach(engine)`` with no further arguments, so the loss read-out is fixed here.
    """

    def __init__(self, loss_key: str = "loss", persist: bool = True, **tqdm_kwargs) -> None:
        super().__init__(persist=persist, **tqdm_kwargs)
        self.loss_key = loss_key

    def attach(self, engine: Engine, *args, **kwargs) -> None:  # type: ignore[override]
        def loss_of(output):
            first = output[0] if isinstance(output, (list, tuple)) else output
            return {"loss": float(first[self.loss_key])}

        kwargs.setdefault("output_transform", loss_of)
        super().attach(engine, *args, **kwargs)
