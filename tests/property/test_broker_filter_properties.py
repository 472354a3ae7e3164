"""Properties of Pushpin's content filters (broker.grip.filters): any content is rendered or refused, never
an exception, and content without a ``%`` passes through every content filter unchanged."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from broker.grip.filters import build_id, process, substitute

METAS = st.dictionaries(st.sampled_from(["user", "id_format", "id_encoding", "x"]), st.text(max_size=12), max_size=4)
IDS = st.dictionaries(st.sampled_from(["a", "b", "c"]), st.none() | st.text(max_size=6), max_size=3)
FORMATISH = st.binary(max_size=40) | st.lists(st.sampled_from([b"%", b"(", b")", b"\\", b"I", b"s", b"a", b"%%"]),
                                              max_size=20).map(b"".join)  # fmt: skip


@given(FORMATISH, METAS, IDS)
def test_content_filters_render_or_refuse_any_content(content: bytes, meta: dict[str, str],
                                                      ids: dict[str, str | None]) -> None:  # fmt: skip
    for out in (substitute(content, meta), build_id(content, meta, ids)):
        assert out is None or isinstance(out, bytes)


@given(st.binary(max_size=60).filter(lambda b: b"%" not in b), METAS, IDS)
def test_content_without_a_directive_is_unchanged(content: bytes, meta: dict[str, str],
                                                 ids: dict[str, str | None]) -> None:  # fmt: skip
    assert substitute(content, meta) == content
    if "id_format" in meta and (not ids or build_id(b"%I", meta, ids) is not None):
        if meta.get("id_encoding") in (None, "hex"):
            assert build_id(content, meta, ids) == content


@given(st.lists(st.binary(max_size=10).filter(lambda b: b"%" not in b), max_size=6))
def test_doubled_percents_become_one_and_nothing_else_changes(parts: list[bytes]) -> None:
    assert process(b"%%".join(parts), lambda _d, _a: None) == b"%".join(parts)
