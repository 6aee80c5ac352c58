"""kseq: imbalanced sequence classification with Keras 3 on TensorFlow.

`import kseq` registers every kseq layer, loss, metric and schedule with Keras, so `.keras`
files that use them load with `keras.saving.load_model` and no `custom_objects`.

The one exception is a process started as one of kseq's command lines (`python -m
kseq.experiments.run`, `python -m kseq.cli.*`, or the `kseq-run` script): Python imports this
package before the command's module, and the command checks its input before TensorFlow loads
(seconds), so bad input is answered at once. It imports what it uses itself (training registers
every Keras object); the public names load on first access.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter off the terminal

__version__ = "0.1.0"


_COMMANDS = ("kseq.experiments.run", "kseq.cli.")  # modules run with `python -m`
_SCRIPTS = ("kseq-run",)  # console scripts (pyproject.toml)


def _started_as_command() -> bool:
    """True when this process is one of kseq's command lines, which run after this package loads."""
    argv = getattr(sys, "orig_argv", [])
    if "-m" in argv[:-1]:
        return argv[argv.index("-m") + 1].startswith(_COMMANDS)
    return os.path.basename(sys.argv[0]) in _SCRIPTS


if _started_as_command():

    def __getattr__(name):
        """A submodule, or a name of the public API (which then loads whole), on first use."""
        import importlib
        import importlib.util

        if importlib.util.find_spec(f"kseq.{name}") is not None:
            return importlib.import_module(f"kseq.{name}")
        api = importlib.import_module("kseq._api")
        if name not in api.__all__:
            raise AttributeError(f"module 'kseq' has no attribute {name!r}")
        return getattr(api, name)

else:
    from kseq._api import *  # noqa: E402,F401,F403
    from kseq._api import __all__  # noqa: E402,F401
