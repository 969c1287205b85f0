"""ordering.py: Azure's UTF-16 listing order brought to code-point order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable

from hypothesis import example, given
from hypothesis import strategies as st

from crosswind.ordering import is_astral, utf16_sort_key, utf16_to_codepoint

# Characters where the two orders disagree (astral vs U+E000-U+FFFF), plus ASCII
# and the rest of the BMP, so that keys share prefixes often.
chars = st.one_of(
    st.sampled_from("ab/-_.~ 0"),
    st.characters(min_codepoint=0xE000, max_codepoint=0xFFFF, exclude_categories=("Cs",)),
    st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF),
    st.characters(min_codepoint=0x80, max_codepoint=0xD7FF),
)
key_text = st.text(chars, min_size=0, max_size=6)


async def _aiter(items: Iterable[str]) -> AsyncIterator[str]:
    for item in items:
        await asyncio.sleep(0)
        yield item


def _reorder(items: list[str]) -> list[str]:
    async def go() -> list[str]:
        return [k async for k in utf16_to_codepoint(_aiter(items), key=lambda k: k)]

    return asyncio.run(go())


@given(st.sets(key_text, max_size=40))
@example({"\U0001f600", "\uff21"})
@example({"a\U00010000", "a\ue000", "a", "ab", "a\U00010000b"})
def test_utf16_listing_becomes_code_point_order(keys: set[str]) -> None:
    azure_order = sorted(keys, key=utf16_sort_key)
    assert _reorder(azure_order) == sorted(keys)


@given(st.lists(key_text, max_size=40))
def test_duplicates_and_objects_survive(keys: list[str]) -> None:
    """A listing is not always a set (same key, other items): nothing lost or invented."""
    azure_order = sorted(keys, key=utf16_sort_key)
    out = _reorder(azure_order)
    assert sorted(out) == sorted(keys)
    assert out == sorted(out)


def test_the_orders_really_differ() -> None:
    """The fixture this module is about: UTF-16 puts an astral key before U+FF21."""
    keys = ["\uff21", "\U0001f600"]
    assert sorted(keys, key=utf16_sort_key) == ["\U0001f600", "\uff21"]
    assert sorted(keys) == ["\uff21", "\U0001f600"]
    assert _reorder(["\U0001f600", "\uff21"]) == ["\uff21", "\U0001f600"]


@given(key_text)
def test_is_astral(key: str) -> None:
    assert is_astral(key) == any(ord(c) > 0xFFFF for c in key)


@given(key_text, key_text)
def test_utf16_sort_key_is_utf16_code_unit_order(a: str, b: str) -> None:
    def units(s: str) -> list[int]:
        raw = s.encode("utf-16-be", "surrogatepass")
        return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]

    assert (utf16_sort_key(a) < utf16_sort_key(b)) == (units(a) < units(b))


@given(st.lists(st.tuples(key_text, st.integers()), max_size=30))
def test_items_are_passed_through_unchanged(pairs: list[tuple[str, int]]) -> None:
    """Items other than strings, ordered by a key function, with ties never compared."""

    class Item:
        def __init__(self, key: str, n: int) -> None:
            self.key, self.n = key, n

    items = [Item(k, n) for k, n in pairs]
    azure_order = sorted(items, key=lambda i: utf16_sort_key(i.key))

    async def src() -> AsyncIterator[Item]:
        for i in azure_order:
            yield i

    async def go() -> list[Item]:
        return [i async for i in utf16_to_codepoint(src(), key=lambda i: i.key)]

    out = asyncio.run(go())
    assert sorted(id(i) for i in out) == sorted(id(i) for i in items)
    assert [i.key for i in out] == sorted(i.key for i in items)
