"""
Sphinx configuration: furo, Markdown pages (MyST), autodoc with Google-style docstrings.

The docs must build with no network (``nox -s docs`` runs ``sphinx-build -W -n`` offline),
so there is no intersphinx: references to the standard library, aiohttp, attrs and anyio
cannot be resolved and are listed, by package, in ``nitpick_ignore_regex`` below.
"""

from __future__ import annotations

import builtins
from typing import Any

from sphinx import addnodes
from sphinx.application import Sphinx

import babou_async

project = "babou_async"
author = "The babou_async team"
copyright = "The babou_async team"
release = babou_async.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "sphinx.ext.viewcode",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# -- MyST -------------------------------------------------------------------------------

myst_enable_extensions = ["deflist"]
myst_heading_anchors = 3

# -- autodoc and napoleon ---------------------------------------------------------------

autodoc_member_order = "bysource"
autodoc_default_options = {"members": True}
# Types stay in the signatures: exact references there (types in the descriptions are looked
# up fuzzily, and the builtin ``bytes`` would then clash with ``DownloadResult.bytes``).
autodoc_typehints = "signature"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_attr_annotations = True

# -- nitpicky without intersphinx -------------------------------------------------------

nitpicky = True
nitpick_ignore_regex = [
    # The standard library (no intersphinx: its inventory would be fetched at build time);
    # ``dt`` is how the package imports datetime.
    (r"py:.*", r"(asyncio|collections\.abc|contextlib|datetime|dt|os|pathlib|re)\..*"),
    # Dependencies, for the same reason.
    (r"py:.*", r"(aiohttp|attrs)\..*"),
    # The type variable of the generic AsyncPager[T].
    (r"py:(class|obj)", r"babou_async\._(session|pager)\.T"),
    # The callback aliases are documented as data (``.. data:: ProgressCallback`` in
    # api.md); signatures name them by their defining module, as classes.
    (r"py:class", r"babou_async\._callbacks\.(Progress|Result|Event)Callback"),
    # ``Clock`` in a signature is babou_async.testing.Clock (documented under testing).
    (r"py:class", r"Clock"),
]
nitpick_ignore = [
    # FakeBabou's settable attributes are documented as constructor arguments only, so
    # :attr: has no target.
    ("py:attr", "export_video_size"),
    ("py:attr", "asset_seconds"),
    ("py:attr", "url_ttl"),
    # ExportStream comes from BabouSession.open_export; its constructor's runtime is private.
    ("py:class", "babou_async._runtime.Runtime"),
]

# -- doctest ----------------------------------------------------------------------------

# Examples that download write to the working directory: run them in a temporary one.
doctest_global_setup = """
import os as _os
import tempfile as _tempfile

_doctest_cwd = _os.getcwd()
_doctest_tmp = _tempfile.TemporaryDirectory()
_os.chdir(_doctest_tmp.name)
"""
doctest_global_cleanup = """
_os.chdir(_doctest_cwd)
_doctest_tmp.cleanup()
"""

# -- a Sphinx quirk ---------------------------------------------------------------------


def _exact_type_references(app: Sphinx, doctree: Any) -> None:  # a docutils document
    """
    Look up types in signatures exactly, as Sphinx intends.

    Sphinx marks every annotation reference with ``refspecific=False`` and then tests the
    attribute's presence, not its value, so ``bytes`` in ``AsyncIterator[bytes]`` is
    searched fuzzily and clashes with ``DownloadResult.bytes``/``ExportResult.bytes``.
    Builtin types named in docstring fields get the same fuzzy search on purpose; for
    them it is never wanted either.
    """
    del app
    for node in doctree.findall(addnodes.pending_xref):
        builtin = isinstance(getattr(builtins, node.get("reftarget", ""), None), type)
        if "refspecific" in node and (node["refspecific"] is False or builtin):
            del node["refspecific"]


def setup(app: Sphinx) -> None:
    """Register the hook above."""
    app.connect("doctree-read", _exact_type_references)


# -- HTML -------------------------------------------------------------------------------

html_theme = "furo"
html_title = f"babou_async {release}"
html_static_path: list[str] = []
