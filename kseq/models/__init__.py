"""Model builders, each registered by name: `build_model(name, input_shape, num_classes, **hp)`.

Every model is an encoder, `(inputs) -> features`, followed by the one classification head in
`head.py`. Each architecture's module holds its encoder (`resnet.py`: `resnet_encoder`) and its
registered builder (`build_resnet`), which puts the two together:

    inputs "sequence" (B, T, F) -> <name>_encoder -> features (B, D) -> classification_head -> logits (B, C)

so `dense_units` (the head's hidden widths) and `dropout` (the head's dropout) mean the same in
every model. `build_model` rejects unknown arguments by name (`registry.py`) and the builders
reject bad values by name (`arguments.py`).
"""

from kseq.models import cnn  # noqa: F401  (registers "cnn")
from kseq.models import recurrent  # noqa: F401  (registers "rnn")
from kseq.models import hybrid  # noqa: F401  (registers "hybrid")
from kseq.models import attention  # noqa: F401  (registers "attention")
from kseq.models import fcn  # noqa: F401  (registers "fcn")
from kseq.models import resnet  # noqa: F401  (registers "resnet")
from kseq.models import inception_time  # noqa: F401  (registers "inception_time")
from kseq.models import random_kernels  # noqa: F401  (registers "minirocket", "multirocket_hydra")
from kseq.models import preprocessing  # noqa: F401  (registers the in-graph preprocessing layers)
from kseq.models import voting  # noqa: F401  (registers the ensemble vote layers)
from kseq.models import decision  # noqa: F401  (registers the export's decision layer)
from kseq.models.registry import accepts_any_length, build_model, model_names, register_model

__all__ = ["accepts_any_length", "build_model", "model_names", "register_model"]
