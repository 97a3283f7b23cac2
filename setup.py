"""Build of the optional C accelerator; everything else is in pyproject.toml.

``mailseal.dkim._canon`` speeds up relaxed body canonicalization. It is
optional: where there is no C compiler or no Python headers the build warns and
goes on, and ``mailseal.dkim.canon`` uses its pure-Python version instead
(same output; MAILSEAL_PURE_PYTHON=1 forces that version where the module is built).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "mailseal.dkim._canon",
            sources=["mailseal/dkim/_canon.c"],
            optional=True,
        )
    ],
)
