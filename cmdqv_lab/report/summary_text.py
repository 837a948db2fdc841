"""``summary.txt``: the answers as plain text for a mail to the list (at most 80 columns).

The questions with their short answers (wrapped), each question's key numbers in an aligned
table with what they are (measured, fitted, PREDICTION, computed), then the sources with their
Message-IDs or links.

>>> text = summary_text([{"qid": "Q9", "text": "Sharing a queue costs, the algorithm does not.",
...                       "numbers": [{"label": "cmpxchg success at 64 CPUs", "value": "0.008",
...                                    "kind": "predicted"}]}], smoke=False, built="2026-01-01")
>>> max(len(line) for line in text.splitlines()) <= 80, "PREDICTION" in text
(True, True)
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping
from typing import Any

from cmdqv_lab.report import sources as _sources

WIDTH = 80
_KIND = {"measured": "measured", "fitted": "fitted", "predicted": "PREDICTION", "computed": "computed"}


def _wrap(text: str, indent: str = "", first: str | None = None) -> list[str]:
    return textwrap.wrap(
        " ".join(text.replace("**", "").split()), WIDTH, initial_indent=first if first is not None else indent,
        subsequent_indent=indent, break_long_words=True, break_on_hyphens=False,
    )  # fmt: skip


def _numbers(numbers: list[Mapping[str, str]]) -> list[str]:
    if not numbers:
        return []
    kind_w = max(len(_KIND.get(n["kind"], n["kind"])) for n in numbers)
    val_w = min(24, max(len(n["value"]) for n in numbers))
    label_w = WIDTH - 4 - val_w - kind_w - 4
    out = []
    for n in numbers:
        label = textwrap.wrap(n["label"], label_w) or [""]
        value = textwrap.wrap(n["value"], val_w, break_long_words=True) or [""]
        kind = _KIND.get(n["kind"], n["kind"])
        for i in range(max(len(label), len(value))):
            lab = label[i] if i < len(label) else ""
            val = value[i] if i < len(value) else ""
            k = kind if i == 0 else ""
            out.append(f"    {lab:<{label_w}}  {val:>{val_w}}  {k}".rstrip())
    return out


def summary_text(
    answers: Iterable[Mapping[str, Any]],
    *,
    smoke: bool,
    built: str,
    questions: Mapping[str, str] | None = None,
) -> str:
    """The text of ``summary.txt`` (every line at most 80 columns)."""
    from cmdqv_lab.report.pages import QUESTIONS, qkey

    qs = dict(questions or QUESTIONS)
    by_q: dict[str, list[Mapping[str, Any]]] = {}
    for a in answers:
        by_q.setdefault(str(a["qid"]), []).append(a)
    seed = _sources.seed_thread()
    lines = ["cmdqv-lab: SMMUv3 command queues, ECMDQ and Tegra241 CMDQV", "=" * 58, ""]
    lines += _wrap(
        f"Answers to the ten design questions of the Tegra241 CMDQV v3 review ({seed.author}, {seed.date}) "
        "and to questions asked on the lists since (Q11 on), "
        "computed by a functional model of the queues and a timing model calibrated to public measurements. "
        "Key numbers say what they are: measured (public data), fitted (the model at the rows it was fitted "
        "to), PREDICTION (the model anywhere else; not a finding about hardware) or computed (exact "
        "consequences of the functional model)."
    )
    lines.append("")
    lines += _wrap(
        f"Built {built}." + (" SMOKE BUILD: reduced runs, not the published numbers." if smoke else "")
    )
    for q in sorted(set(qs) | set(by_q), key=qkey):
        lines += ["", "-" * WIDTH]
        lines += _wrap(f"{q}. {qs.get(q, '')}")
        got = by_q.get(q, [])
        if not got:
            lines += ["", "    Not answered yet."]
        for a in got:
            lines.append("")
            lines += _wrap(str(a["text"]), "    ")
            nums = _numbers(list(a.get("numbers", [])))
            if nums:
                lines += ["", "    Key numbers:", *nums]
    lines += ["", "-" * WIDTH, "Sources", ""]
    for s in _sources.load().values():
        lines += _wrap(f"[{s.short}] {s.author}, {s.date}: {s.title}", "      ", "  ")
        if s.message_id:
            lines += _wrap(f"Message-ID <{s.message_id}>", "      ", "      ")
        elif len(s.link) <= WIDTH - 6:
            lines.append(f"      {s.link}")
        else:
            lines.append(f"      (link: sources.html#{s.id} in the report)")
        if s.commit:
            lines.append(f"      commit {s.commit}")
    lines.append("")
    text = "\n".join(lines)
    too_long = [ln for ln in text.splitlines() if len(ln) > WIDTH]
    if too_long:  # pragma: no cover - the wrapping above makes this impossible
        raise AssertionError(f"summary.txt line over {WIDTH} columns: {too_long[0]!r}")
    return text
