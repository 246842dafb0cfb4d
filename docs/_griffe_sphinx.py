"""A small griffe extension: render quiv's reST-flavoured docstrings as Markdown.

quiv's docstrings follow anyio's conventions: ``:param x:`` field lists (which
mkdocstrings parses itself with ``docstring_style: sphinx``), inline roles such
as ``:class:`~quiv.QuivError``` and a few directives (``.. note::``,
``.. versionadded::``). mkdocstrings renders docstrings as Markdown, where those
roles and directives would show up verbatim. This extension rewrites them
before rendering:

* ``:class:`~quiv.Task``` becomes an *optional* cross-reference: a link to the
  API reference when the target is documented, plain code text when it is not
  (so a docstring that names a not-yet-exported object never breaks
  ``mkdocs build --strict``);
* ``.. note::`` / ``.. warning::`` / ``.. seealso::`` become admonitions;
* ``.. versionadded:: X`` / ``.. versionchanged:: X`` / ``.. deprecated:: X``
  become a short italic line;
* a paragraph ending in ``::`` (reST's "literal block follows") ends in ``:``;
* an attribute documented Sphinx-style, with ``#:`` comment lines right above
  it, gets those lines as its docstring.

It is loaded by ``mkdocs.yml`` (``extensions: [docs/_griffe_sphinx.py]``) and
is not part of the quiv package.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

_ROLE = re.compile(
    r":(?:py:)?(?P<role>class|func|meth|attr|exc|mod|data|obj|const|deco)"
    r":`(?P<tilde>~?)(?P<target>[^`<>]+?)(?:\s*<(?P<explicit>[^`>]+)>)?`"
)
_DIRECTIVE = re.compile(
    r"^(?P<indent>[ \t]*)\.\. (?P<name>note|warning|tip|important|seealso|caution"
    r"|versionadded|versionchanged|deprecated)::[ \t]*(?P<arg>.*)$"
)
_ADMONITIONS = {
    "note": "note",
    "tip": "tip",
    "important": "important",
    "warning": "warning",
    "caution": "warning",
    "seealso": "info",
}
_VERSION_WORDS = {
    "versionadded": "Added in version",
    "versionchanged": "Changed in version",
    "deprecated": "Deprecated since version",
}


def _role_to_autoref(match: re.Match[str]) -> str:
    role = match["role"]
    if match["explicit"]:
        title, target = match["target"].strip(), match["explicit"].strip()
    else:
        target = match["target"].strip()
        title = target.rsplit(".", 1)[-1] if match["tilde"] else target
    if role in {"func", "meth", "deco"} and not title.endswith(")"):
        title += "()"
    identifier = target.lstrip("~").lstrip(".")
    head = identifier.split(".", 1)[0]
    if role != "mod" and head != "quiv" and ("." not in identifier or head[:1].isupper()):
        # A bare name (``current_job``) or a class-relative one
        # (``AsyncQuiv.add_task``) in a quiv docstring means the public quiv name.
        identifier = f"quiv.{identifier}"
    return (
        f'<autoref identifier="{html.escape(identifier, quote=True)}" optional>'
        f"<code>{html.escape(title)}</code></autoref>"
    )


def _rewrite_directives(text: str) -> str:
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = _DIRECTIVE.match(lines[i])
        if match is None:
            line = lines[i]
            # reST "paragraph::" introduces a literal block; Markdown wants ":".
            if line.rstrip().endswith("::") and not line.lstrip().startswith(".."):
                stripped = line.rstrip()[:-2].rstrip()
                line = f"{stripped}:" if stripped else ""
            out.append(line)
            i += 1
            continue
        indent, name, arg = match["indent"], match["name"], match["arg"].strip()
        # The directive's body: following lines indented deeper than the directive.
        body: list[str] = []
        i += 1
        while i < len(lines) and (
            not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > len(indent)
        ):
            body.append(lines[i].strip())
            i += 1
        while body and not body[-1]:
            body.pop()
        if name in _VERSION_WORDS:
            version, _, rest = arg.partition(" ")
            sentence = " ".join(part for part in (rest, *body) if part)
            out.append(
                f"{indent}*{_VERSION_WORDS[name]} {version}.*"
                + (f" {sentence}" if sentence else "")
            )
        else:
            out.append(f"{indent}!!! {_ADMONITIONS[name]}")
            parts = (arg, *body) if arg else tuple(body)
            out.extend(f"{indent}    {part}" if part else "" for part in parts)
        out.append("")
    return "\n".join(out)


def _to_markdown(text: str) -> str:
    return _rewrite_directives(_ROLE.sub(_role_to_autoref, text))


def _comment_docstring(obj: griffe.Object) -> griffe.Docstring | None:
    """Build a docstring from the ``#:`` comment lines just above *obj*."""
    if obj.lineno is None or obj.filepath is None:
        return None
    try:
        lines = obj.lines_collection[obj.filepath]
    except (KeyError, TypeError):
        return None
    comment: list[str] = []
    index = obj.lineno - 2
    while index >= 0 and lines[index].strip().startswith("#:"):
        comment.insert(0, lines[index].strip()[2:].strip())
        index -= 1
    if not comment:
        return None
    return griffe.Docstring(
        _to_markdown("\n".join(comment)),
        lineno=index + 2,
        endlineno=obj.lineno - 1,
        parent=obj,
    )


class SphinxMarkupToMarkdown(griffe.Extension):
    """Rewrite reST roles and directives in every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        docstring = obj.docstring
        if docstring is None or not docstring.value:
            return
        docstring.value = _to_markdown(docstring.value)

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.is_attribute and obj.docstring is None:
            obj.docstring = _comment_docstring(obj)
