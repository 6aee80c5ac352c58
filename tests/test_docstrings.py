"""Every docstring example in kseq runs and prints what it shows (`doctest`), so the short
examples the modules carry stay true as the code under them changes."""

import doctest
import importlib
import pkgutil

import pytest

import kseq

MODULES = sorted(module.name for module in pkgutil.walk_packages(kseq.__path__, "kseq."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_print_what_they_show(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name, globs=vars(module).copy()):
        runner.run(test)
    assert runner.failures == 0, f"{name}: {runner.failures} of {runner.tries} docstring examples printed something else"
