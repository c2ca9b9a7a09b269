"""Only the optional C extension lives here; all metadata is in pyproject.toml.

``optional=True``: where no C compiler exists the install still succeeds, and albstats.parse falls back
to its Arrow engine.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("albstats._albparse", ["albstats/_albparse.c"], optional=True,
                             extra_compile_args=["-O3"])])
