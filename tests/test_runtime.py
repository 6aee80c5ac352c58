"""kseq.runtime: thread configuration and the serving caller.

Thread pools can only be set before TensorFlow's runtime starts, so those checks run in a
fresh interpreter.
"""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import kseq
from kseq import export, runtime


def _run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_configure_threads_serve_sets_one_and_one_before_start():
    out = _run("""
        from kseq import runtime
        print(runtime.configure_threads("serve"))
        print(runtime.configure_threads("serve"))  # idempotent
    """)
    assert out.splitlines() == ["{'intra_op': 1, 'inter_op': 1}"] * 2


def test_configure_threads_after_start_raises_clearly():
    out = _run("""
        import tensorflow as tf
        from kseq import runtime
        tf.constant(1.0) + 1.0
        print(runtime.configure_threads("train"))  # defaults: nothing to change, no error
        try:
            runtime.configure_threads("serve")
        except RuntimeError as e:
            print("error:", "already started" in str(e))
    """)
    assert out.splitlines()[-1] == "error: True"


def test_unknown_role():
    with pytest.raises(ValueError, match="unknown role"):
        runtime.configure_threads("inference")


@pytest.fixture(scope="module")
def serving_dir(tmp_path_factory):
    model = kseq.build_model("cnn", (187, 1), 5)
    path = tmp_path_factory.mktemp("serving") / "serving"
    export.export_serving(model, path, ["N", "S", "V", "F", "Q"])
    return path


@pytest.mark.parametrize("batch", [1, 7])
def test_serving_function_matches_public_call(serving_dir, batch):
    fast, public = runtime.ServingFunction(serving_dir), runtime.ServingFunction(serving_dir, fast=False)
    assert fast.fast and not public.fast
    x = np.random.default_rng(0).random((batch, 187, 1), dtype=np.float32)
    a, b = fast(x), public(x)
    assert set(a) == {"probabilities", "class_id", "class_name"}
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert a["probabilities"].shape == (batch, 5) and a["class_id"].dtype == np.int64
