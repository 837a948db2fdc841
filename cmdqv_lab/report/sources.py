"""The project's bibliography (``sources.toml`` beside this module) and how pages cite it.

Every measurement, statement, patch and piece of code the model and the notebooks rely on is one
entry: where to read it (a lore.kernel.org link from its Message-ID, a commit, a URL) and what
was taken from it. Notebook Markdown cites an entry with a link to ``../docs/sources.md#<id>``,
which works in JupyterLab (the generated Markdown file) and which the report turns into a link
to its own ``sources.html#<id>``; an unknown id fails the build. ``docs/sources.md`` is generated:
``python -m cmdqv_lab.report.sources > docs/sources.md`` (a test checks it is current).

>>> s = load()["c1-garry-2020"]
>>> s.link
'https://lore.kernel.org/r/37734fe9-8b67-3cf3-2925-2fee549cb45a@huawei.com'
>>> cite("c1-garry-2020")
'[C1 (Garry 2020)](../docs/sources.md#c1-garry-2020)'
"""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import quote

from cmdqv_lab.errors import ReportError

KINDS = ("thread", "measurement", "statement", "patch", "code")

#: How notebook Markdown links to an entry (relative to ``notebooks/``).
DOCS_HREF = "../docs/sources.md#"
#: The report's page of sources.
SITE_PAGE = "sources.html"

_ID = re.compile(r"^[a-z0-9][a-z0-9.-]*$")


@dataclass(frozen=True)
class Source:
    """One bibliography entry."""

    id: str
    title: str
    author: str
    date: str
    kind: str
    taken: str
    used_in: tuple[str, ...] = ()
    message_id: str | None = None
    commit: str | None = None
    url: str | None = None
    note: str | None = None
    label: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def link(self) -> str:
        """Where a reader goes: the lore.kernel.org page of its Message-ID, else its URL."""
        if self.message_id:
            return f"https://lore.kernel.org/r/{quote(self.message_id, safe='@.-_+')}"
        if self.url:
            return self.url
        raise ReportError(f"sources.toml: {self.id} has neither message_id nor url")

    @property
    def short(self) -> str:
        """A short citation label: "C1 (Garry 2020)" for calibration rows, else "Author year"."""
        if self.label:
            return self.label
        first = re.split(r"[ ,(]", self.author.strip())
        name = first[1] if len(first) > 1 and first[0][:1].isupper() and first[1][:1].isupper() else first[0]
        label = f"{name} {self.date[:4]}"
        m = re.match(r"^(c\d)-", self.id)
        return f"{m.group(1).upper()} ({label})" if m else label


@functools.cache
def load() -> dict[str, Source]:
    """Every entry of ``sources.toml`` by id, validated."""
    text = (resources.files("cmdqv_lab.report") / "sources.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    out: dict[str, Source] = {}
    for i, raw in enumerate(data.get("source", []), start=1):
        where = f"sources.toml entry {i}"
        for key in ("id", "title", "author", "date", "kind", "taken"):
            if not isinstance(raw.get(key), str) or not raw[key].strip():
                raise ReportError(f"{where}: field {key!r} is missing or empty")
        sid = raw["id"]
        if not _ID.match(sid) or sid in out:
            raise ReportError(f"{where}: id {sid!r} is not a unique lowercase anchor")
        if raw["kind"] not in KINDS:
            raise ReportError(f"{where} ({sid}): kind {raw['kind']!r} is not one of {', '.join(KINDS)}")
        known = {
            "id",
            "title",
            "author",
            "date",
            "kind",
            "taken",
            "used_in",
            "message_id",
            "commit",
            "url",
            "note",
            "label",
        }
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ReportError(f"{where} ({sid}): unknown field {unknown[0]!r}")
        s = Source(
            id=sid, title=raw["title"], author=raw["author"], date=raw["date"], kind=raw["kind"],
            taken=raw["taken"], used_in=tuple(raw.get("used_in", ())), message_id=raw.get("message_id"),
            commit=raw.get("commit"), url=raw.get("url"), note=raw.get("note"), label=raw.get("label"),
        )  # fmt: skip
        s.link  # noqa: B018  (validates that the entry has somewhere to go)
        out[sid] = s
    return out


def get(sid: str) -> Source:
    """One entry; an unknown id is a one-line error naming the closest ids."""
    src = load()
    if sid not in src:
        import difflib

        close = difflib.get_close_matches(sid, list(src), n=2)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise ReportError(f"unknown source {sid!r}{hint}; the bibliography is cmdqv_lab/report/sources.toml")
    return src[sid]


def cite(sid: str, label: str | None = None) -> str:
    """A Markdown link citing an entry (works in JupyterLab and in the report)."""
    s = get(sid)
    return f"[{label or s.short}]({DOCS_HREF}{sid})"


def seed_thread() -> Source:
    """The thread the project grew from (linked from the index)."""
    return get("seed-thread")


def locators(s: Source) -> list[tuple[str, str]]:
    """(label, text) pairs naming where the entry lives: Message-ID, commit, URL."""
    out = []
    if s.message_id:
        out.append(("Message-ID", f"<{s.message_id}>"))
    if s.commit:
        out.append(("commit", s.commit))
    if s.url and not s.message_id:
        out.append(("URL", s.url))
    return out


def markdown() -> str:
    """``docs/sources.md``: the bibliography as Markdown, one section per entry."""
    lines = [
        "# Sources",
        "",
        "Every measurement, statement, patch and piece of code cmdqv-lab relies on, with where to read it",
        "and what was taken from it. Generated from `cmdqv_lab/report/sources.toml` by",
        "`python -m cmdqv_lab.report.sources > docs/sources.md`; the report renders the same list as",
        "`sources.html`. A mail is cited by its Message-ID, readable as `https://lore.kernel.org/r/<id>`.",
        "",
    ]
    for s in load().values():
        lines += [f'<a id="{s.id}"></a>', f"## {s.short}: {s.title}", ""]
        lines.append(f"- **{s.kind}**, {s.author}, {s.date}: <{s.link}>")
        lines += [f"- {k}: `{v}`" for k, v in locators(s)]
        if s.note:
            lines.append(f"- note: {s.note}")
        lines.append(f"- taken: {s.taken}")
        if s.used_in:
            lines.append(f"- used in: {', '.join(s.used_in)}")
        lines.append("")
    return "\n".join(lines)


def used_by(qid: str) -> list[Source]:
    """Entries a question relies on."""
    return [s for s in load().values() if qid in s.used_in]


if __name__ == "__main__":  # pragma: no cover
    print(markdown(), end="")
