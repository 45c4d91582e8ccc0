"""Whether and how two evaluation records compare: the one rule ``biohicl evaluate --compare``, the paired test, the
model card and ``biohicl publish`` use before a Δ.

Two records compare on a task when they scored it on the same split and data files, under the same query cap (or
both scored as many items: :func:`cut_by_cap`), at one max length (unless two different base models each at its own:
:func:`own_lengths`) and with the same query and document prompts. Plain dict logic over the records, so the hub can
use it without loading the evaluation harness (or torch).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from biohicl.errors import DataError
from biohicl.evaluation.results import AGREEMENT_TASK as AGREEMENT
from biohicl.evaluation.results import UNCAPPED_TASKS
from biohicl.field_types import int_or_none, is_int


def query_cap(record: Mapping[str, Any]) -> int | None:
    """A record's ``settings.limit_queries``, or None (no cap, or not a number)."""
    return int_or_none((record.get("settings") or {}).get("limit_queries"))


def _scored(entry: Mapping[str, Any]) -> int | None:
    return int_or_none(entry.get("num_queries"))


def _data_difference(a: Mapping[str, Any], b: Mapping[str, Any], pair: str) -> str | None:
    """Another split, or a data file both task entries name with another sha256 (what one does not say is not)."""
    if a.get("split") and b.get("split") and a["split"] != b["split"]:
        return f"split {a['split']} vs {b['split']} ({pair})"
    files_a, files_b = a.get("data_files") or {}, b.get("data_files") or {}
    if differ := [name for name in files_a if name in files_b and files_a[name] != files_b[name]]:
        return f"the records scored different data ({', '.join(differ)} differs: {pair})"
    return None


class Cut(NamedTuple):
    """A task a record may have scored only part of: its ``cap`` (``settings.limit_queries``), the items it
    ``scored``, and the task's ``full`` number of items where another record shows it (None: nothing does)."""

    cap: int
    scored: int | None
    full: int | None


def cut_by_cap(task: str, record: Mapping[str, Any], others: Iterable[Mapping[str, Any]] = ()) -> Cut | None:
    """Whether ``record``'s ``limit_queries`` cut ``task``: None when it scored the whole task (no cap; a task that
    ignores it, :data:`~biohicl.evaluation.results.UNCAPPED_TASKS`; fewer items than the cap; or as many as one of
    ``others`` scored uncut on the same split and data), else a :class:`Cut`. A task is cut only when the cap is
    below its full number of items; where no record shows that number, as many items as the cap counts as cut
    (``full`` None), the conservative call. The items are what the cap limits: the SimL agreement's documents
    (``num_documents``; its ``num_queries`` counts their pairs, compared only where a record gives no documents),
    another task's queries.

    >>> cut_by_cap("scifact", {"settings": {"limit_queries": 300}, "tasks": {"scifact": {"num_queries": 300}}})
    Cut(cap=300, scored=300, full=None)
    >>> print(cut_by_cap("siml-agreement", {"settings": {"limit_queries": 20},
    ...                                     "tasks": {"siml-agreement": {"num_queries": 91, "num_documents": 14}}}))
    None
    """
    cap, entry = query_cap(record), (record.get("tasks") or {}).get(task)
    if cap is None or not isinstance(entry, Mapping) or task in UNCAPPED_TASKS:
        return None
    key = "num_documents" if task == AGREEMENT else "num_queries"

    def counted(item: Mapping[str, Any]) -> int | None:  # a record without its documents: its pairs, as before
        return _scored({"num_queries": item.get(key)}) or _scored(item)

    scored = counted(entry)
    if scored is not None and scored < cap:
        return None
    for other in others:
        whole = (other.get("tasks") or {}).get(task)
        if not isinstance(whole, Mapping) or _data_difference(entry, whole, "") or cut_by_cap(task, other):
            continue
        if (full := counted(whole)) is not None and scored is not None and scored <= full:
            return None if scored == full else Cut(cap, scored, full)
    return Cut(cap, scored, None)


#: the settings besides the data, split and query cap that change a task's numbers, compared where both records give
#: them (:func:`compared_settings`)
COMPARED_SETTINGS = ("max_length", "query_prompt", "document_prompt")
#: what a refused max length suggests (:func:`check_comparable`)
LENGTH_HINT = "score both at one max length (--max_length N; from Python, model.max_seq_length = N)"


def prompt_hint(key: str, values: Sequence[Any], names: Sequence[str]) -> str:
    """What a refused ``query_prompt`` or ``document_prompt`` (``key``) suggests: evaluate the model of the file
    (of ``names``) whose record has none (``''``) again with the other's prompt as ``--key`` (shell-quoted); where
    both have one, either way round.

    >>> prompt_hint("query_prompt", ["", "query: "], ["a.json", "b.json"])
    "score both with one query prompt (evaluate the model of a.json again with --query_prompt 'query: ')"
    """
    options = [f"the model of {names[i]} again with --{key} {shlex.quote(str(values[1 - i]))}" for i in (0, 1)]
    if "" in values[:2]:
        options = [options[values.index("")]]
    return f"score both with one {key.replace('_', ' ')} (evaluate {', or '.join(options)})"


def compared_settings(record: Mapping[str, Any]) -> dict[str, Any]:
    """What of :data:`COMPARED_SETTINGS` a record gives: its ``settings``, else its model's ``config`` (a
    SentenceTransformer's ``max_seq_length`` as its max length, in a record written before its config said
    ``max_length``)."""
    settings, model = record.get("settings"), record.get("model")
    settings = settings if isinstance(settings, Mapping) else {}
    config = model.get("config") if isinstance(model, Mapping) else None
    config = config if isinstance(config, Mapping) else {}
    if config.get("max_length") is None and config.get("max_seq_length") is not None:
        config = {**config, "max_length": config["max_seq_length"]}
    given = {key: settings[key] if settings.get(key) is not None else config.get(key) for key in COMPARED_SETTINGS}
    return {key: value for key, value in given.items() if value is not None}


def _own_length(record: Mapping[str, Any]) -> tuple[str, int] | None:
    """(base model id, max length) of a record scored at its own model's max length (``settings.max_length_source``
    ``"model"``, as ``biohicl evaluate`` writes it when no ``--max_length`` other than the model's own was given),
    else None: an explicit other length, or a record that does not say (one written before that field)."""
    settings, model = record.get("settings"), record.get("model")
    config = model.get("config") if isinstance(model, Mapping) else None
    base = config.get("base_model") if isinstance(config, Mapping) else None
    length = compared_settings(record).get("max_length")
    if not isinstance(settings, Mapping) or settings.get("max_length_source") != "model":
        return None
    if not isinstance(base, str) or not base or not is_int(length):
        return None
    return base, length


def own_lengths(records: Sequence[Mapping[str, Any]]) -> tuple[int, int] | None:
    """The two max lengths when two records are of different base models (``model.config.base_model``) and each was
    scored at its own model's max length: then a different max length is part of the models compared (MiniLM at 256
    against mpnet at 384), not a difference in how they were scored. None otherwise: one base (a tuned model against
    its base), an explicit other ``--max_length``, or a record that does not say."""
    own = [_own_length(record) for record in records]
    if len(own) != 2 or own[0] is None or own[1] is None or own[0][0] == own[1][0]:
        return None
    return own[0][1], own[1][1]


def own_length_note(records: Sequence[Mapping[str, Any]]) -> str | None:
    """One note line for a comparison whose records differ in max length only as :func:`own_lengths` allows (each
    later record against the first), naming each record's length; None when all share one length or one pair is
    not so allowed."""
    lengths = [compared_settings(record).get("max_length") for record in records]
    if all(length == lengths[0] for length in lengths):
        return None
    if not all(
        length == lengths[0] or own_lengths((records[0], r)) for length, r in zip(lengths, records, strict=True)
    ):
        return None
    return "note: each model was scored at its own max length (" + " vs ".join(map(str, lengths)) + " tokens)"


def scoring_difference(
    task: str,
    records: Sequence[Mapping[str, Any]],
    names: Sequence[str],
    *,
    settings: bool = True,
    hint: bool = False,
) -> str | None:
    """How two records (``names``: their files, for the message) scored ``task`` differently, as the tail of one
    line, or None: another split; a data file both name with another sha256; another ``limit_queries`` unless both
    scored as many items (a cap above the task's size, or one the task ignores: :func:`cut_by_cap`'s rule, a cap
    cuts a task only below its full number of items); another of :data:`COMPARED_SETTINGS` (max length, query or
    document prompt; ``settings=False`` leaves these out, for a study whose variants are those settings), except a
    max length :func:`own_lengths` allows (two base models, each at its own). What a record does not say (an old
    record without ``data_files``, a max length neither its settings nor its model's config give) is not a
    difference. ``hint``: a max length or prompt difference ends with how to score the two alike
    (:data:`LENGTH_HINT`, :func:`prompt_hint`)."""
    (a, b), pair = (r["tasks"][task] for r in records), f"{names[0]} vs {names[1]}"
    if (why := _data_difference(a, b, pair)) is not None:
        return why
    caps, counts = [query_cap(r) for r in records], (_scored(a), _scored(b))
    if caps[0] != caps[1] and (None in counts or counts[0] != counts[1]):
        return "limit_queries " + " vs ".join("none" if cap is None else str(cap) for cap in caps) + f" ({pair})"
    if None not in counts and counts[0] != counts[1]:
        return f"the records scored {counts[0]} and {counts[1]} items ({pair})"
    ours, theirs = (compared_settings(r) if settings else {} for r in records)
    differ = [key for key in ours if key in theirs and ours[key] != theirs[key]]
    if differ[:1] == ["max_length"] and own_lengths(records):
        differ = differ[1:]  # two base models, each at its own max length
    if differ:
        key, values = differ[0], (ours[differ[0]], theirs[differ[0]])
        tail = (LENGTH_HINT if key == "max_length" else prompt_hint(key, values, names)) if hint else ""
        return f"{key} {values[0]!r} vs {values[1]!r} ({pair})" + (f"; {tail}" if tail else "")
    return None


def check_comparable(
    records: Sequence[Mapping[str, Any]],
    sources: Sequence[str | Path] = (),
    tasks: Iterable[str] | None = None,
    *,
    settings: bool = True,
) -> None:
    """Before a Δ: a :class:`DataError` naming the first task (of ``tasks``, default all) that the first record and
    a later one both hold but scored differently (:func:`scoring_difference`: data, split, query cap, max length or
    prompts; ``settings=False``: not the last three; a refused max length suggests :data:`LENGTH_HINT`, a refused
    prompt :func:`prompt_hint`); ``sources`` name the records' files."""
    names = [str(s) for s in sources] + [f"record {i + 1}" for i in range(len(sources), len(records))]
    for task in list(tasks) if tasks is not None else list(records[0].get("tasks", {})):
        for i, other in enumerate(records[1:], start=1):
            pair = (records[0], other)
            if not all(isinstance(r.get("tasks", {}).get(task), Mapping) for r in pair):
                continue
            if (why := scoring_difference(task, pair, (names[0], names[i]), settings=settings, hint=True)) is not None:
                raise DataError(f"{task}: {why}")
