"""Import TensorFlow for a command-line tool without its C++ start-up notices.

Only for the tools: `import kseq` in a user's own process imports TensorFlow as usual.

TensorFlow's native libraries log through absl before Python can configure anything
(`WARNING: All log messages before absl::InitializeLog() ...`, oneDNN and CUDA notices), and
`TF_CPP_MIN_LOG_LEVEL` no longer silences them. The import therefore runs with file descriptor 2
pointed at a temporary file; afterwards every captured line that is not such a notice (Python
warnings, errors) is written to the real stderr, so nothing that matters is lost. Set
`KSEQ_VERBOSE=1` (or pass a tool's `--verbose`) to see the notices.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

# absl's log line prefix (`I0000 00:00:1796035626.058824  6893 port.cc:153] ...`) and its preamble.
_NOTICE = re.compile(r"^([IWEF]\d{4} [\d:.]+ +\d+ \S+:\d+\] |WARNING: All log messages before absl)")


def import_tensorflow(verbose: bool = False) -> None:
    """Import tensorflow, keras and kseq's public API (which registers every kseq Keras object, so
    saved models load), and discover devices; C++ start-up notices are dropped unless `verbose`."""
    if "tensorflow" in sys.modules or verbose or os.environ.get("KSEQ_VERBOSE"):
        import kseq._api  # noqa: F401

        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import keras  # noqa: F401
            import tensorflow

            tensorflow.config.list_physical_devices()  # device discovery logs its own notices (cuInit)
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode(errors="replace").splitlines(keepends=True)
                    if not _NOTICE.match(line)]
            sys.stderr.write("".join(kept))
    import kseq._api  # noqa: F401
