"""Hypothesis strategies shared by the core property tests."""

from __future__ import annotations

from hypothesis import strategies as st

# What orjson can hand over: JSON scalars (with huge ints and, from a lenient
# parser, non-finite floats) nested in lists and objects.
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**64, max_value=2**70),
    st.floats(),
    st.text(max_size=5),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(st.text(max_size=3), children, max_size=3),
    ),
    max_leaves=40,
)
