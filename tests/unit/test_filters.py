"""KeyFilter: include/exclude globs and a prefix, checked against fnmatchcase pattern
by pattern (the filter compiles all patterns into one regex)."""

from __future__ import annotations

from fnmatch import fnmatchcase

from hypothesis import example, given
from hypothesis import strategies as st

from crosswind.sync.filters import KeyFilter

key_chars = st.sampled_from(["a", "b", "/", ".", "-", "é", "\U0001f600", "\n", "|", "("])
keys = st.text(key_chars, max_size=8)
glob_tokens = st.sampled_from(
    ["a", "b", "/", ".", "*", "?", "[ab]", "[!a]", "|", "(", "\U0001f600"]
)
globs = st.lists(glob_tokens, min_size=1, max_size=5).map("".join)
prefixes = st.sampled_from(["", "a", "a/", "b/"])


def oracle(f: KeyFilter, key: str) -> bool:
    return (
        key.startswith(f.prefix)
        and (not f.include or any(fnmatchcase(key, g) for g in f.include))
        and not any(fnmatchcase(key, g) for g in f.exclude)
    )


@given(
    st.lists(globs, max_size=3).map(tuple), st.lists(globs, max_size=3).map(tuple), prefixes,
    st.lists(keys, max_size=20),
)
@example(("a|b",), (), "", ["a|b", "a", "b"])  # regex metacharacters stay literal
@example(("*",), (), "", ["a/b\nc"])  # "*" crosses "/" and newlines
def test_filter_agrees_with_fnmatchcase(
    include: tuple[str, ...], exclude: tuple[str, ...], prefix: str, ks: list[str]
) -> None:
    f = KeyFilter(include, exclude, prefix)
    for key in ks:
        assert f(key) == oracle(f, key), key


@given(keys)
def test_empty_filter_selects_everything(key: str) -> None:
    f = KeyFilter()
    assert f.selects_all
    assert f(key)


@given(st.lists(globs, max_size=3).map(tuple), prefixes, keys)
def test_an_excluded_key_is_never_selected(include: tuple[str, ...], prefix: str,
                                           key: str) -> None:
    # Excluding a key by itself (escaped as a glob) removes it whatever the includes say.
    literal = "".join(f"[{c}]" if c in "*?[" else c for c in key)
    assert not KeyFilter(include, (literal,), prefix)(key)


def test_examples() -> None:
    f = KeyFilter(include=("flights/*.json",), exclude=("*/tmp/*",), prefix="flights/")
    assert f("flights/2024/01/BA117.json")
    assert not f("flights/2024/tmp/x.json")
    assert not f("flights/2024/01/BA117.csv")
    assert not f("archive/flights/x.json")
    assert not f.selects_all
