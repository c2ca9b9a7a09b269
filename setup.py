"""Only the optional C extension lives here; all metadata is in pyproject.toml.

``optional=True``: where no C compiler exists the install still succeeds, and albstats reads with its
reference parser (about ten times slower), saying so once on stderr (albstats.parsing.native).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[Extension("albstats._albparse", ["albstats/_albparse.c"], optional=True, extra_compile_args=["-O3"])]
)
