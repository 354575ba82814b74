"""A griffe extension that adapts ncsn's docstrings to mkdocstrings.

The library's docstrings are Google style with a few habits from Sphinx. Before rendering, this
extension rewrites every docstring of the package:

* Sphinx roles (``:class:`~ncsn.ScoreModel```, ``:func:`dsm```, ``:meth:`Trainer.fit```) become
  autorefs links ``[`title`][canonical.path]`` when the target is a documented object of the
  ``ncsn`` package (relative names are looked up from the object outward, as Sphinx does), and
  inline code otherwise (``torch.nn.Module``, undocumented attributes). A leading ``~`` keeps only
  the last component as the title.
* An ``Example:`` section header becomes ``Examples:``, the header griffe parses into doctest
  code blocks (griffe renders ``Example:`` as a plain admonition, where ``>>>`` lines would be
  rendered as prose).
* An ``Args:`` entry that documents several parameters at once (``a, b, c: as in f``) is split
  into one entry per parameter, so that each is matched with the signature.

It also shows the signature of a dataclass whose fields are ``Checked`` descriptors (the
samplers) as a user calls it: a parameter ``step_size: Checked[float] = Checked(positive_float)``
becomes ``step_size: float`` (required), ``Checked[SigmaGrid, SigmaGridLike]`` shows the type it
takes, ``SigmaGridLike``, and ``Checked(check_bool, default=False)`` the default ``False``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import griffe

_DIRECTIVE = re.compile(r"^::: *([\w.]+)[ \t]*$")
_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj|const):`(~?)([^`<>]+?)`")
_CALLABLE_ROLES = (":func:", ":meth:", ":py:func:", ":py:meth:")
_ARGS_HEADERS = ("Args:", "Arguments:", "Parameters:", "Params:")
_GROUPED = re.compile(r"^(\s+)(\*{0,2}\w+(?:\s*,\s*\*{0,2}\w+)+)\s*:\s?(.*)$")


def _lookup(pkg: griffe.Module, path: str) -> griffe.Object | griffe.Alias | None:
    if path == pkg.path:
        return pkg
    prefix = pkg.path + "."
    if not path.startswith(prefix):
        return None
    try:
        obj = pkg[path[len(prefix) :]]
        return obj.final_target if isinstance(obj, griffe.Alias) else obj
    except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None


def _documented(pkg: griffe.Module) -> set[str]:
    """Canonical paths of the objects the reference pages render (``::: path`` and members)."""
    paths: list[str] = []
    for page in sorted(Path("docs/reference").glob("*.md")):
        lines = page.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            match = _DIRECTIVE.match(line)
            if not match:
                continue
            paths.append(match.group(1))
            in_members = False
            for option in lines[i + 1 :]:
                if option and not option.startswith(" "):
                    break
                stripped = option.strip()
                if stripped == "members:":
                    in_members = True
                elif in_members and stripped.startswith("- "):
                    paths.append(f"{match.group(1)}.{stripped[2:].strip()}")
                elif in_members and stripped:
                    in_members = False
    found = (_lookup(pkg, path) for path in paths)
    return {obj.path for obj in found if obj is not None}


def _rendered(obj: griffe.Object | griffe.Alias, documented: set[str]) -> bool:
    """Whether the reference pages render ``obj``: documented itself, or a documented public
    member of a documented class."""
    if obj.path in documented:
        return True
    parent = obj.parent
    return (
        obj.docstring is not None
        and not obj.name.startswith("_")
        and parent is not None
        and parent.is_class
        and parent.path in documented
    )


def _scopes(obj: griffe.Object) -> list[str]:
    scopes: list[str] = []
    current: Any = obj
    while current is not None:
        scopes.append(current.path)
        current = current.parent
    return scopes


def _split_grouped_args(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    header_indent: int | None = None
    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if stripped in _ARGS_HEADERS:
            header_indent = indent
            out.append(line)
            continue
        if header_indent is not None and stripped and indent <= header_indent:
            header_indent = None
        match = _GROUPED.match(line) if header_indent is not None else None
        if match and len(match.group(1)) == header_indent + 4:  # type: ignore[operator]
            for name in match.group(2).split(","):
                out.append(f"{match.group(1)}{name.strip()}: {match.group(3)}")
            continue
        out.append(line)
    return "\n".join(out)


def _examples_header(text: str) -> str:
    return re.sub(r"(?m)^(\s*)Example:[ \t]*$", r"\1Examples:", text)


def _named(expr: object, name: str) -> bool:
    return isinstance(expr, griffe.ExprName) and expr.name == name


def _unwrap_checked(function: griffe.Function) -> None:
    """``x: Checked[Out, In] = Checked(check, default=d)`` → ``x: In = d`` (no default without d)."""
    for parameter in function.parameters:
        annotation, default = parameter.annotation, parameter.default
        if isinstance(annotation, griffe.ExprSubscript) and _named(annotation.left, "Checked"):
            given = annotation.slice
            parameter.annotation = (
                given.elements[-1] if isinstance(given, griffe.ExprTuple) else given
            )
        if isinstance(default, griffe.ExprCall) and _named(default.function, "Checked"):
            parameter.default = next(
                (
                    argument.value
                    for argument in default.arguments
                    if isinstance(argument, griffe.ExprKeyword) and argument.name == "default"
                ),
                None,
            )


class SphinxRoles(griffe.Extension):
    """Rewrite every docstring of the package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._documented = _documented(pkg)
        self._walk(pkg, pkg, set())

    def _walk(self, pkg: griffe.Module, obj: griffe.Object, seen: set[int]) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, griffe.Function):
            _unwrap_checked(obj)
        if obj.docstring is not None:
            text = _split_grouped_args(_examples_header(obj.docstring.value))
            obj.docstring.value = self._roles(pkg, obj, text)
        for member in obj.members.values():
            if not isinstance(member, griffe.Alias):
                self._walk(pkg, member, seen)

    def _roles(self, pkg: griffe.Module, obj: griffe.Object, text: str) -> str:
        def replace(match: re.Match[str]) -> str:
            short, target = match.group(1) == "~", match.group(2).strip()
            bare = target.removesuffix("()")
            title = bare.rsplit(".", 1)[-1] if short else bare
            if match.group(0).startswith(_CALLABLE_ROLES):
                title += "()"
            candidates = [bare, *(f"{scope}.{bare}" for scope in _scopes(obj)), f"{pkg.path}.{bare}"]
            for candidate in candidates:
                found = _lookup(pkg, candidate)
                if found is not None:
                    if _rendered(found, self._documented):
                        return f"[`{title}`][{found.path}]"
                    return f"`{title}`"
            return f"`{title}`"

        return _ROLE.sub(replace, text)
