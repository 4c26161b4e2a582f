"""mkdocs hook: publish the repository files that docs pages link outside docs/ (mkdocs.yml's `hooks:`).

The pages are written to read on GitHub, where `../benchmarks/README.md` or
`../results/figures/x.png` is a file beside docs/. mkdocs only knows docs/, so each such target
that exists in the repository is added to the site at its repository path (`benchmarks/`,
`results/figures/x.png`). A target that does not exist is not added, so mkdocs still reports
the broken link (and `--strict` fails): this hook supplies files, it never silences a warning.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files, InclusionLevel

# An inline link or image `](target)` and a reference definition `[name]: target`.
LINK = re.compile(r"\]\(\s*<?([^)\s>#?]+)|^\s{0,3}\[[^\]]+\]:\s*<?([^\s>#?]+)", re.MULTILINE)


def outside_targets(page: str, text: str) -> set[str]:
    """The relative link targets of a page at `page` (a path in docs/) that leave docs/, as `../PATH`."""
    found = set()
    for inline, reference in LINK.findall(text):
        target = inline or reference
        if "://" in target or target.startswith(("/", "mailto:")):
            continue
        uri = posixpath.normpath(posixpath.join(posixpath.dirname(page), target))
        if uri.startswith("../") and not uri.startswith("../../"):
            found.add(uri)
    return found


def on_files(files: Files, config) -> Files:
    """Add each repository file a page links to outside docs/, at its repository path in the site."""
    docs = Path(config.docs_dir).resolve()
    root = docs.parent
    taken = {f.dest_uri for f in files}
    wanted = set()
    for f in files.documentation_pages():
        wanted |= outside_targets(f.src_uri, Path(f.abs_src_path).read_text(encoding="utf-8"))
    for uri in sorted(wanted):
        path = (docs / uri).resolve()
        if not path.is_file() or root not in path.parents or docs in path.parents:
            continue  # missing (mkdocs reports the link) or not a file of the repository
        dest = File(uri[3:], None, config.site_dir, config.use_directory_urls).dest_uri
        if dest in taken:
            raise PluginError(f"docs/mkdocs_hooks.py: {uri} would overwrite {dest} in the site")
        taken.add(dest)
        # INCLUDED: mkdocs would exclude a `../` path as a dotfile; it was linked on purpose.
        files.append(File(uri, config.docs_dir, config.site_dir, config.use_directory_urls, dest_uri=dest,
                          inclusion=InclusionLevel.INCLUDED))
    return files
