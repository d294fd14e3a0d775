"""Every docstring example in the installed package runs, with ELLIPSIS and NORMALIZE_WHITESPACE.

The modules are imported once, normally, and their doctests run from there: collecting the source
files with --doctest-modules would import a second copy of each module next to the first one.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import coelho
import coelho.producers
import coelho_ui

FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
MODULES = sorted(
    info.name
    for package in (coelho, coelho.producers, coelho_ui)  # producers and UI: eventing/ and ui/, mapped
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
    if info.name != "coelho_ui.main"  # NiceGUI's User fixture runs it as its main file; it has no examples
)


def test_every_package_module_is_found():
    assert {"coelho.core.schema", "coelho.producers.tfd", "coelho.dispatch.records", "coelho_ui.fmt"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for test in finder.find(module, name):
        runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, f"{results.failed} failing example(s) in {name}; see the output above"
