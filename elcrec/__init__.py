"""elcrec: the command line (this folder) and the layers it drives, importable as elcrec.model, elcrec.training and
elcrec.service. Those live in the design card's top-level folders model/, training/ and service/; an installed
elcrec maps them under this package (pyproject.toml's package-dir), so nothing generic is taken in site-packages.

In a source checkout run without installing (PYTHONPATH=the checkout, as bench --code does), the folders sit
beside this one: the checkout's root joins the package path so that `elcrec.model` finds ./model. An installed
copy has the folders inside the package and never looks further.
"""

from pathlib import Path as _Path

_root = _Path(__file__).resolve().parent.parent
if (_root / "pyproject.toml").is_file() and (_root / "model" / "__init__.py").is_file():
    __path__.append(str(_root))  # noqa: F821 - a package's __path__, set by the import system
