"""app.codecs.fastjson: the fast reader keeps its parser only as long as the budget allows."""

from __future__ import annotations

from app import codecs
from app.codecs import fastjson
from app.main import create_app
from app.settings import Settings


def test_the_loop_keeps_its_parser_after_a_batch_and_drops_it_after_a_bigger_body() -> (
    None
):
    reserve = fastjson.keep_parsers(256 * 1024 * 1024)
    try:
        assert (
            reserve == fastjson.KEEP_PARSER_BYTES * fastjson.PARSER_BYTES_PER_BODY_BYTE
        )
        # Only the event loop's thread parses bodies this small (codecs.run_sized).
        assert fastjson.KEEP_PARSER_BYTES <= codecs.INLINE_BYTES
        row = ",".join(["0.35294117647058826"] * 784)
        batch = ('{"x":[' + ",".join([f"[{row}]"] * 40) + "]}").encode()
        assert len(batch) <= fastjson.KEEP_PARSER_BYTES
        assert fastjson.fast_numbers(batch, ("x",)) is not None
        kept = fastjson._parsers.parser
        assert kept is not None
        assert fastjson.fast_numbers(batch, ("x",)) is not None
        assert fastjson._parsers.parser is kept  # the same buffers, no new pages
        big = ('{"x":[' + ",".join(["0"] * fastjson.KEEP_PARSER_BYTES) + "]}").encode()
        assert fastjson.fast_numbers(big, ("x",)) is not None
        assert fastjson._parsers.parser is None
    finally:
        fastjson.keep_parsers(Settings().memory_budget)


def test_a_small_budget_keeps_smaller_parsers_and_reserves_a_sixteenth_at_most() -> (
    None
):
    mib = 1024 * 1024
    try:
        for budget in (16 * mib, 64 * mib, 256 * mib, 4096 * mib):
            reserve = fastjson.keep_parsers(budget)
            assert 0 < reserve <= budget // 16
            assert reserve % fastjson.PARSER_BYTES_PER_BODY_BYTE == 0
        small = fastjson.keep_parsers(16 * mib) // fastjson.PARSER_BYTES_PER_BODY_BYTE
        body = (
            '{"x":[' + ",".join(["1"] * small) + "]}"
        ).encode()  # over the keep size
        assert fastjson.fast_numbers(body, ("x",)) is not None
        assert fastjson._parsers.parser is None
    finally:
        fastjson.keep_parsers(Settings().memory_budget)


def test_the_app_reserves_what_its_parser_may_keep() -> None:
    settings = Settings(memory_budget=64 * 1024 * 1024)
    app = create_app(settings)
    try:
        assert app.state.budget.reserved == fastjson.keep_parsers(64 * 1024 * 1024)
        assert app.state.budget.used == app.state.budget.reserved
    finally:
        fastjson.keep_parsers(Settings().memory_budget)
