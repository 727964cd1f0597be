"""The JSON report written value by value (provisioner.output.records.write_json): the very text of
``json.dumps(document, indent=2, ensure_ascii=False)``, with a top-level list whose items are made only as they are
written (:class:`Stream`: a run's 100,000 items are never all held at once)."""

from __future__ import annotations

import io
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from provisioner.output.records import Rows, Stream, write_json

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)
DOCUMENTS = st.one_of(st.dictionaries(st.text(), JSON_VALUES, max_size=6), JSON_VALUES)


def written(document: Any) -> str:
    out = io.StringIO()
    write_json(document, out)
    return out.getvalue()


@given(DOCUMENTS)
def test_the_text_of_json_dumps(document: Any) -> None:
    assert written(document) == json.dumps(document, indent=2, ensure_ascii=False) + "\n"


@given(st.dictionaries(st.text(), JSON_VALUES, min_size=1, max_size=6), st.data())
def test_a_streamed_list_is_written_as_the_list_would_be(document: dict[str, Any], data: Any) -> None:
    lists = [key for key, value in document.items() if isinstance(value, list)]
    streamed = set(data.draw(st.lists(st.sampled_from(lists), unique=True))) if lists else set()
    made: list[Any] = []

    def stream(items: list[Any]) -> Stream:
        def each() -> Any:
            for item in items:
                made.append(item)  # made when written, not before
                yield item
        return Stream(each)

    wrapped = {key: stream(value) if key in streamed else value for key, value in document.items()}
    assert made == []
    assert written(wrapped) == json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    assert made == [item for key in document if key in streamed for item in document[key]]


@given(st.lists(st.dictionaries(st.text(), JSON_VALUES, max_size=3), max_size=5))
def test_rows_write_and_render_agree(records: list[dict[str, Any]]) -> None:
    for document in (None, lambda: {"items": Stream(lambda: iter(records)), "count": len(records)}):
        rows = Rows(("a",), lambda: records, lambda: "table\n", document)
        for output_format in ("json", "csv", "table"):
            out = io.StringIO()
            rows.write(output_format, out)
            assert out.getvalue() == rows.render(output_format)
    expected = json.dumps({"items": records, "count": len(records)}, indent=2, ensure_ascii=False) + "\n"
    assert Rows((), [], lambda: "", lambda: {"items": Stream(lambda: iter(records)),
                                             "count": len(records)}).render("json") == expected
